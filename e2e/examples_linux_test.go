package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// exampleFamilies are the example configurations, grouped by the job they do: the members of
// one family are alternatives for one host (and may share ports), the members of two
// families run on one host side by side (and must not).
var exampleFamilies = map[string][]string{
	"agent":         {"agent.yaml", "agent-complement.yaml", "edge.yaml"},
	"fleet gateway": {"fleet-gateway.yaml", "production/fleet-gateway.yaml"},
	"gateway":       {"gateway.yaml", "production/gateway.yaml"},
}

// listenPorts lists the TCP ports an example configuration listens on: the health check, the
// prometheus exporter, the Collector's own metrics (8888 unless said otherwise), OTLP
// receivers and the task API.
func listenPorts(t *testing.T, c *confmap.Conf) map[string]string {
	t.Helper()
	ports := map[string]string{}
	add := func(what string, endpoint any) {
		s, ok := endpoint.(string)
		if !ok || s == "" {
			return
		}
		_, port, err := net.SplitHostPort(s)
		require.NoError(t, err, "%s: %q", what, s)
		ports[port] = what
	}
	add("health_check", c.Get("extensions::health_check::endpoint"))
	add("prometheus exporter", c.Get("exporters::prometheus::endpoint"))
	add("OTLP/gRPC", c.Get("receivers::otlp::protocols::grpc::endpoint"))
	add("OTLP/HTTP", c.Get("receivers::otlp::protocols::http::endpoint"))
	add("task API", c.Get("receivers::proplet::api::endpoint"))
	readers, _ := c.Get("service::telemetry::metrics::readers").([]any)
	for _, r := range readers {
		prom, _ := confmap.NewFromStringMap(map[string]any{"r": r}).Get("r::pull::exporter::prometheus").(map[string]any)
		if prom != nil {
			add("own metrics", net.JoinHostPort(fmt.Sprint(prom["host"]), fmt.Sprint(prom["port"])))
		}
	}
	if len(readers) == 0 && c.Get("service::telemetry::metrics::level") != "none" {
		add("own metrics (the Collector's default)", "localhost:8888")
	}
	return ports
}

// TestExamplePortsDoNotClash: examples of different families listen on different ports, so
// that an agent, a fleet gateway and a gateway run on one host as shipped.
func TestExamplePortsDoNotClash(t *testing.T) {
	owner := map[string]string{} // port -> family and example
	for family, files := range exampleFamilies {
		for _, f := range files {
			c, err := confmaptest.LoadConf(filepath.Join("../examples", f))
			require.NoError(t, err, f)
			for port, what := range listenPorts(t, c) {
				if prev, ok := owner[port]; ok && !strings.HasPrefix(prev, family+" ") {
					t.Errorf("port %s: %s of %s, and of %s", port, what, f, prev)
				}
				owner[port] = family + " " + f
			}
		}
	}
}

// example is a collector running an example configuration until the test ends.
type example struct {
	name string
	logs syncBuffer
}

// runExample runs bin on examples/name as it is, with env added to the test's environment and
// args after --config (only --set of a broker address), and stops it with SIGTERM when the
// test ends.
func runExample(t *testing.T, bin, name string, env []string, args ...string) *example {
	t.Helper()
	e := &example{name: name}
	cmd := exec.Command(bin, append([]string{"--config", filepath.Join("../examples", name)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &e.logs, &e.logs
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop within 30 s of SIGTERM", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, e.logs.String())
		}
	})
	return e
}

// requirePortsFree skips the test when a port an example listens on is taken on this host:
// the examples run with the ports they ship with.
func requirePortsFree(t *testing.T, files ...string) {
	t.Helper()
	for _, f := range files {
		c, err := confmaptest.LoadConf(filepath.Join("../examples", f))
		require.NoError(t, err)
		for port, what := range listenPorts(t, c) {
			l, err := net.Listen("tcp", "127.0.0.1:"+port)
			if err != nil {
				t.Skipf("port %s (%s of %s) is in use on this host: the examples run on the ports they ship with", port, what, f)
			}
			_ = l.Close()
		}
	}
}

// seriesOf waits until the Prometheus endpoint url serves a series named name with the task
// id label, and returns its value. send is called at once and again every 2 s while the
// series is missing: what it sends before a subscriber has subscribed is lost, and sending it
// again changes nothing.
func seriesOf(t *testing.T, url, name, taskID string, send func()) float64 {
	t.Helper()
	var value float64
	var sent time.Time
	require.Eventually(t, func() bool {
		if time.Since(sent) > 2*time.Second {
			send()
			sent = time.Now()
		}
		body, err := scrape(url)
		if err != nil {
			return false
		}
		for _, s := range parseExposition(t, body) {
			if s.name == name && s.labels["propeller_task_id"] == taskID {
				value = s.value
				return true
			}
		}
		return false
	}, 60*time.Second, 100*time.Millisecond, "%s{propeller_task_id=%q} on %s", name, taskID, url)
	return value
}

// hostRunsAProplet reports whether a process named proplet runs on this host (another
// program's, or a person's trying the docs): agent.yaml may then bind it and its children.
func hostRunsAProplet(t *testing.T) bool {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, d := range dirs {
		if comm, err := os.ReadFile(filepath.Join("/proc", d.Name(), "comm")); err == nil && strings.TrimSpace(string(comm)) == "proplet" {
			t.Logf("a process named proplet runs here (pid %s): the lookup of the documented tasks is not checked", d.Name())
			return true
		}
	}
	return false
}

// agentEnv is the proplet's environment examples/agent.yaml reads, with the proplet id the
// start request of docs/control-plane.md is addressed to.
func agentEnv(t *testing.T, broker string) []string {
	return []string{
		"PROPLET_TENANT_ID=t", "PROPLET_CHANNEL_ID=c", "PROPLET_ENTITY_ID=7c9e6679-7425-40de-944b-e07fc1f90ae7",
		"PROPLET_API_KEY=k", "PROPLET_MQTT_ADDRESS=" + broker,
		"OTELCOL_PROPELLER_QUEUE_DIR=" + filepath.Join(t.TempDir(), "queue"),
	}
}

// publishDocRequests publishes the requests of docs/control-plane.md whose topic ends in
// suffix, with the topic's variables filled in as agentEnv sets them.
func publishDocRequests(t *testing.T, broker, suffix string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("docs-" + strconv.FormatInt(time.Now().UnixNano(), 36)))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer c.Disconnect(100)
	n := 0
	for _, r := range docRequests(t, controlPlaneDoc) {
		if !strings.HasSuffix(r.topic, suffix) {
			continue
		}
		topic := strings.NewReplacer("$PROPLET_TENANT_ID", "t", "$PROPLET_CHANNEL_ID", "c").Replace(r.topic)
		tok := c.Publish(topic, 1, false, r.payload)
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
		n++
	}
	require.Positive(t, n, "no request on %s in %s", suffix, controlPlaneDoc)
}

// waitLog waits until a collector's output holds s.
func waitLog(t *testing.T, e *example, s string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(e.logs.String(), s) }, 60*time.Second, 100*time.Millisecond,
		"%s never logged %q", e.name, s)
}

// waitHTTP waits until url answers 200.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "%s never answered", url)
}

// TestExamplesRunAsShipped runs examples/agent.yaml, examples/fleet-gateway.yaml and
// examples/gateway.yaml as they are, side by side on their own ports, against one broker (the
// only change: its address, the test's own broker's). The agent follows the start and stop
// requests of docs/control-plane.md, and shows the started tasks in Prometheus as that page
// says; a task sample sent to the gateway over OTLP reaches the broker as a Propeller message,
// which the fleet gateway serves to Prometheus.
func TestExamplesRunAsShipped(t *testing.T) {
	bin := binary(t)
	requirePortsFree(t, "agent.yaml", "fleet-gateway.yaml", "gateway.yaml")
	broker := mqtttest.Start(t, mqtttest.Options{}).Endpoint()

	agent := runExample(t, bin, "agent.yaml", agentEnv(t, broker))
	fleet := runExample(t, bin, "fleet-gateway.yaml", nil, "--set=receivers::propeller_mqtt::endpoint="+broker)
	runExample(t, bin, "gateway.yaml", []string{"PROPLET_TENANT_ID=t", "PROPLET_CHANNEL_ID=c"}, "--set=exporters::mqtt::endpoint="+broker)
	waitHTTP(t, "http://127.0.0.1:13133/")
	waitHTTP(t, "http://127.0.0.1:13134/")
	waitHTTP(t, "http://127.0.0.1:8889/metrics")
	waitLog(t, fleet, "Everything is ready")

	// The agent: the page's start requests, then its stop request.
	waitLog(t, agent, "Everything is ready")
	start := func() { publishDocRequests(t, broker, "/start") }
	// Registered at once, and not found: no proplet runs here, so no wasmtime child of one
	// (unless this host runs a proplet of its own, whose children the agent may rightly find).
	proplet := hostRunsAProplet(t)
	for _, id := range []string{"550e8400-e29b-41d4-a716-446655440042", "550e8400-e29b-41d4-a716-446655440043"} {
		lookup := seriesOf(t, "http://127.0.0.1:9464/metrics", "propeller_task_lookup", id, start)
		if !proplet {
			assert.Zero(t, lookup, "task %s has no wasmtime process here: registered, not found", id)
		}
	}
	waitLog(t, agent, "Task started by the manager")
	publishDocRequests(t, broker, "/stop")
	waitLog(t, agent, "Task stopped by the manager")

	// The gateway, then the fleet gateway: OTLP in, a Propeller message on the broker, a series.
	const taskID = "550e8400-e29b-41d4-a716-446655440044"
	req := pmetricotlp.NewExportRequest()
	rm := req.Metrics().ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("propeller.task.id", taskID)
	rm.Resource().Attributes().PutStr("propeller.proplet.id", "7c9e6679-7425-40de-944b-e07fc1f90ae7")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("process.memory.usage")
	m.SetUnit("By")
	dp := m.SetEmptySum().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	dp.SetIntValue(64 << 20)
	m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	send := func() {
		dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
		body, err := req.MarshalProto()
		require.NoError(t, err)
		resp, err := http.Post("http://127.0.0.1:4318/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.Equal(t, float64(64<<20), seriesOf(t, "http://127.0.0.1:9465/metrics", "process_memory_usage_bytes", taskID, send),
		"the gateway's message, read back by the fleet gateway")
}

// TestAgentComplementRunsAsShipped runs examples/agent-complement.yaml as it is against a
// broker: it follows the start requests of docs/control-plane.md and shows the tasks in
// Prometheus.
func TestAgentComplementRunsAsShipped(t *testing.T) {
	bin := binary(t)
	requirePortsFree(t, "agent-complement.yaml")
	broker := mqtttest.Start(t, mqtttest.Options{}).Endpoint()
	agent := runExample(t, bin, "agent-complement.yaml", agentEnv(t, broker))
	waitLog(t, agent, "Everything is ready")
	start := func() { publishDocRequests(t, broker, "/start") }
	assert.Zero(t, seriesOf(t, "http://127.0.0.1:9464/metrics", "propeller_task_lookup", "550e8400-e29b-41d4-a716-446655440043", start))
}
