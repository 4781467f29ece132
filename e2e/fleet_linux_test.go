//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/encoding/protowire"

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

// TestFleetThroughput measures the gateway through the built distribution: task messages
// queued on a Mosquitto for a persistent session, drained by the collector
// (propeller_mqtt -> otlp_http) into an OTLP/HTTP sink, beside a bare paho subscriber
// draining the same number the same way. Run with FLEET_BENCH=1 (make bench-fleet).
func TestFleetThroughput(t *testing.T) {
	if os.Getenv("FLEET_BENCH") == "" {
		t.Skip("set FLEET_BENCH=1 to measure (make bench-fleet)")
	}
	bin := binary(t)
	broker := mqtttest.StartMosquitto(t)
	const n = 50000
	const filter = "m/+/c/+/control/proplet/task_metrics"
	pub := fleetPublisher(t, broker.Endpoint())
	fill := func() {
		t.Helper()
		base := time.Now().Add(-time.Hour)
		toks := make([]paho.Token, 0, n)
		for seq := range n {
			toks = append(toks, pub.Publish(fmt.Sprintf("m/d%d/c/c/control/proplet/task_metrics", seq%3), 1, false,
				fleetTask(seq%50, seq, base.Add(time.Duration(seq)*time.Microsecond))))
		}
		for _, tok := range toks {
			require.True(t, tok.WaitTimeout(60*time.Second))
			require.NoError(t, tok.Error())
		}
	}

	// The bare subscriber: a persistent session, the stream queued while it is away, then
	// drained by paho's default handler counting messages.
	var got atomic.Int64
	var first, last atomic.Int64
	bare := func(connect bool) paho.Client {
		o := paho.NewClientOptions().AddBroker(broker.Endpoint()).SetClientID("bare-subscriber").SetCleanSession(false).
			SetDefaultPublishHandler(func(paho.Client, paho.Message) {
				now := time.Now().UnixNano()
				if got.Add(1) == 1 {
					first.Store(now)
				}
				last.Store(now)
			})
		c := paho.NewClient(o)
		tok := c.Connect()
		require.True(t, tok.WaitTimeout(5*time.Second))
		require.NoError(t, tok.Error())
		if connect {
			st := c.Subscribe(filter, 1, nil)
			require.True(t, st.WaitTimeout(5*time.Second))
		}
		return c
	}
	bare(true).Disconnect(100)
	fill()
	c := bare(false)
	waitUntil(t, 120*time.Second, func() bool { return got.Load() >= n })
	c.Disconnect(100)
	bareRate := float64(n-1) / time.Duration(last.Load()-first.Load()).Seconds()

	// The gateway, the same way: subscribe once, stop, queue the stream, start again.
	var points, resources atomic.Int64
	var gFirst, gLast, firstBatch atomic.Int64
	sink := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// Counted by walking the protobuf, not by decoding it into pdata: the sink shares the
		// machine with the collector, and must cost it as little as it can.
		nr, np, err := countOTLP(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now().UnixNano()
		if gFirst.CompareAndSwap(0, now) {
			// The rate is taken from this request on: what it carries was read before.
			firstBatch.Store(int64(nr))
		}
		points.Add(int64(np))
		resources.Add(int64(nr))
		gLast.Store(now)
		out, _ := pmetricotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = sink.Serve(l) }()
	t.Cleanup(func() { _ = sink.Close() })
	pprofPort := freePort(t)
	cfg := fmt.Sprintf(`
extensions:
  pprof: { endpoint: 127.0.0.1:%d }
receivers:
  propeller_mqtt: { endpoint: %s, client_id: bench-gateway, topics: [%s] }
exporters:
  otlp_http:
    endpoint: http://%s
    compression: none
    sending_queue: { batch: { flush_timeout: 200ms, min_size: 8192 }, num_consumers: 4 }
service:
  extensions: [pprof]
  telemetry: { metrics: { level: none } }
  pipelines:
    metrics: { receivers: [propeller_mqtt], exporters: [otlp_http] }
`, pprofPort, broker.Endpoint(), filter, l.Addr())
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	run := func() *exec.Cmd {
		col := exec.Command(bin, "--config", path)
		var logs syncBuffer
		col.Stdout, col.Stderr = &logs, &logs
		require.NoError(t, col.Start())
		t.Cleanup(func() { _ = col.Process.Kill(); _ = col.Wait() })
		return col
	}
	// The first run creates the session; a probe message proves the subscription.
	col := run()
	waitUntil(t, 30*time.Second, func() bool {
		pub.Publish("m/probe/c/c/control/proplet/task_metrics", 1, false, fleetTask(0, 0, time.Now())).WaitTimeout(time.Second)
		time.Sleep(300 * time.Millisecond) //nolint:forbidigo // the batch's flush timeout
		return resources.Load() > 0
	})
	require.NoError(t, col.Process.Signal(os.Interrupt))
	_ = col.Wait()
	points.Store(0)
	resources.Store(0)
	gFirst.Store(0)
	fill()
	run()
	if out := os.Getenv("FLEET_PROFILE"); out != "" {
		// A CPU profile of the collector while it drains: FLEET_PROFILE=/tmp/gateway.pprof.
		waitUntil(t, 30*time.Second, func() bool { return resources.Load() > 0 })
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=1", pprofPort))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, os.WriteFile(out, b, 0o600))
	}
	waitUntil(t, 180*time.Second, func() bool { return resources.Load() >= n })
	gatewayRate := float64(resources.Load()-firstBatch.Load()) / time.Duration(gLast.Load()-gFirst.Load()).Seconds()
	t.Logf("%d task messages queued on Mosquitto: bare paho subscriber %.0f messages/s; gateway (propeller_mqtt -> otlp_http -> sink) %.0f messages/s (%.0f data points/s, %.2f of the bare rate)",
		n, bareRate, gatewayRate, gatewayRate*float64(points.Load())/float64(resources.Load()), gatewayRate/bareRate)
	assert.Equal(t, int64(n), resources.Load(), "every message reached the sink once")
}

// countOTLP counts the resources and number data points of an OTLP ExportMetricsServiceRequest
// (resource_metrics = 1, scope_metrics = 2, metrics = 2, gauge = 5 / sum = 7, data_points = 1).
func countOTLP(b []byte) (resources, points int, err error) {
	var walk func(b []byte, path []protowire.Number) error
	walk = func(b []byte, path []protowire.Number) error {
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			if typ != protowire.BytesType {
				n = protowire.ConsumeFieldValue(num, typ, b)
				if n < 0 {
					return protowire.ParseError(n)
				}
				b = b[n:]
				continue
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			depth := len(path)
			switch {
			case depth == 0 && num == 1:
				resources++
			case depth == 1 && num == 2, depth == 2 && num == 2, depth == 3 && (num == 5 || num == 7):
			case depth == 4 && num == 1:
				points++
				continue
			default:
				continue
			}
			if err := walk(v, append(path, num)); err != nil {
				return err
			}
		}
		return nil
	}
	err = walk(b, nil)
	return resources, points, err
}

func waitUntil(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out after %s", within)
		time.Sleep(50 * time.Millisecond) //nolint:forbidigo // polling a condition with a deadline
	}
}

// TestCountOTLP: the throughput sink counts what pdata counts, on the golden output.
func TestCountOTLP(t *testing.T) {
	b, err := os.ReadFile("../receiver/propellermqttreceiver/testdata/golden.json")
	require.NoError(t, err)
	req := pmetricotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalJSON(b))
	raw, err := req.MarshalProto()
	require.NoError(t, err)
	resources, points, err := countOTLP(raw)
	require.NoError(t, err)
	assert.Equal(t, req.Metrics().ResourceMetrics().Len(), resources)
	assert.Equal(t, req.Metrics().DataPointCount(), points)
}
