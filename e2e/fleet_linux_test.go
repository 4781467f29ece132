//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// fleetEnv is what examples/fleet-gateway.yaml reads from the environment.
var fleetEnv = []string{"GATEWAY_ENTITY_ID=gateway-entity", "GATEWAY_API_KEY=key"}

// TestFleetGatewayExampleValidates: the built distribution accepts examples/fleet-gateway.yaml,
// and refuses it without a client id, naming the key.
func TestFleetGatewayExampleValidates(t *testing.T) {
	bin := binary(t)
	cmd := exec.Command(bin, "validate", "--config", "../examples/fleet-gateway.yaml")
	cmd.Env = append(os.Environ(), fleetEnv...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	b, err := os.ReadFile("../examples/fleet-gateway.yaml")
	require.NoError(t, err)
	broken := filepath.Join(t.TempDir(), "no-client-id.yaml")
	require.NoError(t, os.WriteFile(broken, []byte(strings.Replace(string(b), "client_id: gateway-1", "", 1)), 0o600))
	cmd = exec.Command(bin, "validate", "--config", broken)
	cmd.Env = append(os.Environ(), fleetEnv...)
	out, err = cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "client_id: must be set")
}

// startCollector runs the distribution with cfg until the test ends.
func startCollector(t *testing.T, bin, cfg string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	var logs syncBuffer
	col := exec.Command(bin, "--config", path)
	col.Stdout, col.Stderr = &logs, &logs
	require.NoError(t, col.Start())
	t.Cleanup(func() {
		_ = col.Process.Kill()
		_ = col.Wait()
		if t.Failed() {
			t.Logf("collector output:\n%s", logs.String())
		}
	})
}

func fleetPublisher(t testing.TB, endpoint string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(endpoint).SetClientID(fmt.Sprintf("fleet-pub-%d", time.Now().UnixNano())).
		SetOrderMatters(false).SetMaxResumePubInFlight(1000))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func fleetUUID(kind, n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", kind, n) }

// fleetTask is a task message of this project's exporter's form, at t.
func fleetTask(proplet, seq int, at time.Time) []byte {
	return fmt.Appendf(nil, `{"task_id":%q,"proplet_id":%q,"metrics":{"cpu_percent":12.5,"memory_bytes":%d,"memory_percent":1.5,"disk_read_bytes":4096,"disk_write_bytes":8192,"network_rx_bytes":1,"network_tx_bytes":2,"uptime_seconds":60,"thread_count":3,"file_descriptor_count":9},"aggregated":{"avg_cpu_usage":10,"max_cpu_usage":20,"avg_memory_usage":1,"max_memory_usage":2,"total_disk_read":0,"total_disk_write":0,"total_network_rx":0,"total_network_tx":0,"sample_count":2},"timestamp":%q}`,
		fleetUUID(1, seq), fleetUUID(2, proplet), 1<<20+seq, at.UTC().Format(time.RFC3339Nano))
}

// TestFleetDashboardLabels runs the distribution as a fleet gateway (the prometheus exporter
// configured as examples/fleet-gateway.yaml does) on messages of both task shapes and a
// proplet message, and checks every query of the Grafana dashboard against the series it
// serves: each query's metric exists with every label the query selects or groups by. The
// panels bridged data cannot fill are listed, with why.
func TestFleetDashboardLabels(t *testing.T) {
	bin := binary(t)
	if !mqtttest.MosquittoAvailable() {
		t.Skip("mosquitto is not installed")
	}
	broker := mqtttest.StartMosquitto(t)
	promPort := freePort(t)
	ex, err := confmaptest.LoadConf("../examples/fleet-gateway.yaml")
	require.NoError(t, err)
	labels, ok := ex.Get("exporters::prometheus::resource_constant_labels::included").([]any)
	require.True(t, ok)
	var names []string
	for _, l := range labels {
		names = append(names, fmt.Sprint(l))
	}
	startCollector(t, bin, fmt.Sprintf(`
receivers:
  propeller_mqtt: { endpoint: %s, client_id: dashboard-gateway }
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
    resource_constant_labels: { included: [%s] }
service:
  telemetry: { metrics: { level: none } }
  pipelines:
    metrics: { receivers: [propeller_mqtt], exporters: [prometheus] }
`, broker.Endpoint(), promPort, strings.Join(names, ", ")))

	pub := fleetPublisher(t, broker.Endpoint())
	const propletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	rust := fmt.Sprintf(`{"task_id":%q,"proplet_id":%q,"metrics":{"cpu_percent":12.5,"memory_bytes":53687091200,"memory_percent":0.0,"disk_read_bytes":4096,"disk_write_bytes":0,"uptime_seconds":30,"thread_count":4,"file_descriptor_count":12},"aggregated":null,"timestamp":{"secs_since_epoch":%d,"nanos_since_epoch":0}}`,
		fleetUUID(3, 1), propletID, time.Now().Unix())
	proplet := fmt.Sprintf(`{"proplet_id":%q,"namespace":"default","timestamp":%q,"cpu_metrics":{"user_seconds":12.5,"system_seconds":3.1,"percent":17.0},"memory_metrics":{"rss_bytes":41943040,"container_usage_bytes":73400320,"container_limit_bytes":536870912}}`,
		propletID, time.Now().UTC().Format(time.RFC3339Nano))
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort)
	var served []sample
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Until the gateway has subscribed, what is published is not kept for it.
		for topic, payload := range map[string]string{
			"m/d1/c/c1/control/proplet/task_metrics": string(fleetTask(1, 1, time.Now())),
			"m/d1/c/c1/control/proplet/metrics":      proplet,
		} {
			pub.Publish(topic, 1, false, payload).WaitTimeout(5 * time.Second)
		}
		pub.Publish("m/d1/c/c1/control/proplet/task_metrics", 1, false, rust).WaitTimeout(5 * time.Second)
		body, err := scrape(url)
		if err == nil {
			served = parseExposition(t, body)
			if len(bySeries(served, "process_uptime_seconds")) == 2 && len(bySeries(served, "system_cpu_utilization_ratio")) == 1 {
				break
			}
		}
		require.True(t, time.Now().Before(deadline), "the gateway served no bridged series")
		time.Sleep(200 * time.Millisecond) //nolint:forbidigo // polling the exporter
	}

	// The repaired Rust message: memory_bytes / 1024.
	for _, s := range bySeries(served, "process_memory_usage_bytes") {
		if s.labels["propeller_task_id"] == fleetUUID(3, 1) {
			assert.InDelta(t, 52428800, s.value, 0)
		}
	}

	notBridged := map[string]string{
		"Firing alerts":   "alert rules, not data",
		"Tasks not found": "propeller_task_lookup: a proplet sends metrics only for a task it found",
		// The Waiting row: the proplet receiver reads waits from the kernel; Propeller's
		// messages carry none.
		"CPU wait and CPU time (s per s)": "waits: read from the kernel by the proplet receiver only",
		"Disk I/O wait (s per s)":         "waits: read from the kernel by the proplet receiver only",
		"Pressure stall (s per s)":        "waits: read from the kernel by the proplet receiver only",
		"CPU throttled (s per s)":         "waits: read from the kernel by the proplet receiver only",
		"Throttled periods":               "waits: read from the kernel by the proplet receiver only",
	}
	// A query is filled when one of its alternatives (either side of an "or") has every
	// selector met.
	met := map[[2]int]bool{}    // target, alternative -> every selector met so far
	targets := map[int]string{} // target -> panel
	for _, q := range dashboardQueries(t) {
		k := [2]int{q.target, q.alt}
		if _, seen := met[k]; !seen {
			met[k] = true
		}
		targets[q.target] = q.panel
		if missing := unmet(q, served); missing != "" {
			met[k] = false
			t.Logf("panel %q: %s", q.panel, missing)
		}
	}
	var unfilled []string
	for target, panel := range targets {
		filled := false
		for k, ok := range met {
			filled = filled || (k[0] == target && ok)
		}
		if !filled {
			unfilled = append(unfilled, panel)
		}
	}
	want := make([]string, 0, len(notBridged))
	for p := range notBridged {
		want = append(want, p)
	}
	sort.Strings(want)
	sort.Strings(unfilled)
	assert.Equal(t, want, dedupe(unfilled), "the panels bridged data cannot fill")
}

func bySeries(served []sample, name string) []sample {
	var out []sample
	for _, s := range served {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// dashboardQuery is one selector of a dashboard query: a metric, the labels it matches with
// a value that must be set (=~ "$var"), those it requires empty (=""), and those it groups by.
type dashboardQuery struct {
	panel    string
	target   int // the query it is part of, counted over the dashboard
	alt      int // which side of an "or" in that query
	metric   string
	set      []string
	empty    []string
	grouping []string
}

var (
	selectorRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-z_]+)(=~|=|!=)"([^"]*)"`)
	byRE       = regexp.MustCompile(`by \(([^)]*)\)`)
)

func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	b, err := os.ReadFile("../examples/grafana/propeller-tasks.json")
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(b, &d))
	var out []dashboardQuery
	n := 0
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			n++
			var grouping []string
			for _, m := range byRE.FindAllStringSubmatch(target.Expr, -1) {
				for _, l := range strings.Split(m[1], ",") {
					grouping = append(grouping, strings.TrimSpace(l))
				}
			}
			for alt, side := range strings.Split(target.Expr, " or ") {
				for _, sel := range selectorRE.FindAllStringSubmatch(side, -1) {
					q := dashboardQuery{panel: p.Title, target: n, alt: alt, metric: sel[1], grouping: grouping}
					for _, m := range matcherRE.FindAllStringSubmatch(sel[2], -1) {
						switch {
						case m[2] == "=" && m[3] == "":
							q.empty = append(q.empty, m[1])
						case strings.HasPrefix(m[3], "$") && !strings.HasSuffix(m[3], "|"):
							q.set = append(q.set, m[1])
						}
					}
					out = append(out, q)
				}
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}

// unmet says why no served series satisfies q ("" when one does). A label grouped by may be
// absent (Prometheus groups it as empty: a bridged task has no name); one a template variable
// selects must be set.
func unmet(q dashboardQuery, served []sample) string {
	series := bySeries(served, q.metric)
	if len(series) == 0 {
		return "no series " + q.metric
	}
next:
	for _, s := range series {
		for _, l := range q.set {
			if s.labels[l] == "" {
				continue next
			}
		}
		for _, l := range q.empty {
			if s.labels[l] != "" {
				continue next
			}
		}
		return ""
	}
	return fmt.Sprintf("no series %s with %v set and %v empty", q.metric, q.set, q.empty)
}
