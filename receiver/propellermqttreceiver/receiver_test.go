package propellermqttreceiver

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propellermqttreceiver/internal/metadata"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json")

// broker starts a mosquitto on a free port (an embedded broker where mosquitto is not
// installed): the tests never depend on a broker on 1883.
func broker(t *testing.T) string {
	t.Helper()
	if mqtttest.MosquittoAvailable() {
		return mqtttest.StartMosquitto(t).Endpoint()
	}
	return mqtttest.Start(t, mqtttest.Options{}).Endpoint()
}

type gateway struct {
	r    receiver.Metrics
	sink *consumertest.MetricsSink
	tel  *componenttest.Telemetry
	// probes is the number of proplet messages waitSubscribed sent this gateway.
	probes int64
}

func startGateway(t *testing.T, endpoint, clientID string, mutate func(*Config)) *gateway {
	t.Helper()
	g, err := newGateway(t, endpoint, clientID, mutate, zap.NewNop())
	require.NoError(t, err)
	return g
}

// newGateway starts a gateway logging to log; a start that fails is returned.
func newGateway(t *testing.T, endpoint, clientID string, mutate func(*Config), log *zap.Logger) (*gateway, error) {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.Endpoint = endpoint
	cfg.ClientID = clientID
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	set.BuildInfo.Version = "test"
	set.Logger = log
	sink := new(consumertest.MetricsSink)
	r, err := NewFactory().CreateMetrics(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	if err := r.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		return nil, err
	}
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	return &gateway{r: r, sink: sink, tel: tel}, nil
}

// waitSubscribed publishes a proplet message until every gateway has had one (the
// subscriptions are in place), then empties their sinks. Each gateway's proplet counter then
// holds at least one probe.
func waitSubscribed(t *testing.T, pub paho.Client, gws ...*gateway) {
	t.Helper()
	probe := []byte(`{"proplet_id":"` + uuid(9, 9) + `","cpu_metrics":{"percent":1}}`)
	deadline := time.Now().Add(10 * time.Second)
	for _, g := range gws {
		for counterBy(t, g.tel, "receiver_propeller_mqtt_messages", "kind", "proplet") == 0 {
			require.True(t, time.Now().Before(deadline), "gateway did not subscribe")
			publish(t, pub, "m/probe/c/probe/control/proplet/metrics", probe)
			time.Sleep(50 * time.Millisecond) //nolint:forbidigo // waiting for the probe
		}
	}
	time.Sleep(2 * linger) //nolint:forbidigo // the last batch of probes is handed on
	for _, g := range gws {
		g.sink.Reset()
		g.probes = counterBy(t, g.tel, "receiver_propeller_mqtt_messages", "kind", "proplet")
	}
}

func publisher(t *testing.T, endpoint string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(endpoint).SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano())).SetOrderMatters(false))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c paho.Client, topic string, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
}

// publishAll publishes at QoS 1 and waits for every acknowledgement at the end.
func publishAll(t *testing.T, c paho.Client, topics []string, payloads [][]byte) {
	t.Helper()
	toks := make([]paho.Token, len(payloads))
	for i := range payloads {
		toks[i] = c.Publish(topics[i], 1, false, payloads[i])
	}
	for _, tok := range toks {
		require.True(t, tok.WaitTimeout(30*time.Second))
		require.NoError(t, tok.Error())
	}
}

func uuid(kind, n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", kind, n) }

// taskMessage is the task message of task seq of proplet p at t, in this project's form.
func taskMessage(p, seq int, at time.Time) []byte {
	return fmt.Appendf(nil, `{"task_id":%q,"proplet_id":%q,"metrics":{"cpu_percent":%d,"memory_bytes":%d,"memory_percent":1.5,"disk_read_bytes":4096,"disk_write_bytes":8192,"network_rx_bytes":1,"network_tx_bytes":2,"uptime_seconds":60,"thread_count":3,"file_descriptor_count":9},"aggregated":null,"timestamp":%q}`,
		uuid(1, seq), uuid(2, p), seq%400, 1<<20+seq, at.UTC().Format(time.RFC3339Nano))
}

func taskTopic(p int) string {
	return fmt.Sprintf("m/domain-%d/c/channel/control/proplet/task_metrics", p%3)
}

// keys returns the (task id, timestamp) of every task resource received, with repeats.
func keys(sinks ...*consumertest.MetricsSink) []string {
	var out []string
	for _, s := range sinks {
		for _, md := range s.AllMetrics() {
			rms := md.ResourceMetrics()
			for i := range rms.Len() {
				rm := rms.At(i)
				id, ok := rm.Resource().Attributes().Get(schema.TaskID)
				if !ok {
					continue
				}
				ts := rm.ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).Timestamp()
				out = append(out, fmt.Sprintf("%s@%d", id.Str(), ts))
			}
		}
	}
	return out
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // polling a condition with a deadline
	}
}

// TestGolden: one message of each shape through a real broker, the exact OTLP out.
func TestGolden(t *testing.T) {
	t.Parallel()
	endpoint := broker(t)
	g := startGateway(t, endpoint, "gateway-golden", func(c *Config) { c.MaxAge = 1 << 62 })
	pub := publisher(t, endpoint)
	waitSubscribed(t, pub, g)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "internal", "propeller", "testdata", name))
		require.NoError(t, err)
		return b
	}
	before := time.Now()
	publish(t, pub, "m/d1/c/c1/control/proplet/task_metrics", read("task_ours.json"))
	publish(t, pub, "m/d1/c/c1/control/proplet/task_metrics", read("task_rust.json"))
	publish(t, pub, "m/d1/c/c1/control/proplet/metrics", read("proplet.json"))
	waitFor(t, 10*time.Second, "three resources", func() bool { return resources(g.sink) == 3 })
	after := time.Now()

	got := pmetric.NewMetrics()
	for _, md := range g.sink.AllMetrics() {
		md.ResourceMetrics().MoveAndAppendTo(got.ResourceMetrics())
	}
	// The Rust proplet's timestamp is not an RFC 3339 string: its points carry the receive
	// time (the manager's rule), checked here and then fixed for the comparison.
	rust := got.ResourceMetrics().At(1)
	forEachPoint(rust, func(dp pmetric.NumberDataPoint) {
		ts := dp.Timestamp().AsTime()
		assert.False(t, ts.Before(before) || ts.After(after), "receive time %s not in [%s, %s]", ts, before, after)
		const received = 1736937400000000000
		dp.SetStartTimestamp(received - (dp.Timestamp() - dp.StartTimestamp()))
		dp.SetTimestamp(received)
	})
	b, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(got)
	require.NoError(t, err)
	var pretty any
	require.NoError(t, json.Unmarshal(b, &pretty))
	b, err = json.MarshalIndent(pretty, "", "  ")
	require.NoError(t, err)
	golden := filepath.Join("testdata", "golden.json")
	if *update {
		require.NoError(t, os.WriteFile(golden, append(b, '\n'), 0o600))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(b))
	assert.Equal(t, int64(1), counterBy(t, g.tel, "receiver_propeller_mqtt_repaired_messages", "source", "rust_proplet"))
	assert.Equal(t, int64(2), counterBy(t, g.tel, "receiver_propeller_mqtt_messages", "kind", "task"))
	assert.Equal(t, int64(1), counterBy(t, g.tel, "receiver_propeller_mqtt_messages", "kind", "proplet")-g.probes)
}

func resources(s *consumertest.MetricsSink) int {
	n := 0
	for _, md := range s.AllMetrics() {
		n += md.ResourceMetrics().Len()
	}
	return n
}

func forEachPoint(rm pmetric.ResourceMetrics, f func(pmetric.NumberDataPoint)) {
	ms := rm.ScopeMetrics().At(0).Metrics()
	for i := range ms.Len() {
		m := ms.At(i)
		var dps pmetric.NumberDataPointSlice
		if m.Type() == pmetric.MetricTypeGauge {
			dps = m.Gauge().DataPoints()
		} else {
			dps = m.Sum().DataPoints()
		}
		for j := range dps.Len() {
			f(dps.At(j))
		}
	}
}

// TestSharedGroupConvertsEveryMessageOnce: two gateways in one shared group, 10,000 messages
// from 50 proplets, each converted exactly once across the two.
func TestSharedGroupConvertsEveryMessageOnce(t *testing.T) {
	t.Parallel()
	if !mqtttest.MosquittoAvailable() {
		t.Skip("shared subscriptions over MQTT 3.1.1 are Mosquitto's; mosquitto is not installed")
	}
	endpoint := broker(t)
	shared := func(c *Config) { c.SharedGroup = "fleet" }
	g1 := startGateway(t, endpoint, "gateway-1", shared)
	g2 := startGateway(t, endpoint, "gateway-2", shared)
	pub := publisher(t, endpoint)
	waitSubscribed(t, pub, g1, g2)

	const proplets, perProplet = 50, 200
	start := time.Now().Add(-time.Hour)
	var topics []string
	var payloads [][]byte
	for i := range perProplet {
		for p := range proplets {
			seq := p*perProplet + i
			topics = append(topics, taskTopic(p))
			payloads = append(payloads, taskMessage(p, seq, start.Add(time.Duration(seq)*time.Millisecond)))
		}
	}
	publishAll(t, pub, topics, payloads)
	waitFor(t, 60*time.Second, "10,000 messages across the two gateways", func() bool {
		return len(keys(g1.sink, g2.sink)) >= proplets*perProplet
	})
	time.Sleep(200 * time.Millisecond) //nolint:forbidigo // a duplicate, if any, has time to arrive
	all := keys(g1.sink, g2.sink)
	seen := map[string]int{}
	for _, k := range all {
		seen[k]++
	}
	assert.Equal(t, proplets*perProplet, len(seen), "every message converted")
	assert.Equal(t, proplets*perProplet, len(all), "no message converted twice")
	n1, n2 := len(keys(g1.sink)), len(keys(g2.sink))
	t.Logf("gateway-1 converted %d, gateway-2 %d", n1, n2)
	assert.Positive(t, n1)
	assert.Positive(t, n2)
	assert.Equal(t, int64(n1), counterBy(t, g1.tel, "receiver_propeller_mqtt_messages", "kind", "task"))
}

// TestRestartLosesNothing: a gateway stops mid-stream; what is published while it is down
// reaches it when it is back, through the broker's persistent session.
func TestRestartLosesNothing(t *testing.T) {
	t.Parallel()
	endpoint := broker(t)
	pub := publisher(t, endpoint)
	var sinks []*consumertest.MetricsSink
	send := func(from, to int) {
		var topics []string
		var payloads [][]byte
		base := time.Now().Add(-time.Hour)
		for seq := from; seq < to; seq++ {
			topics = append(topics, taskTopic(seq))
			payloads = append(payloads, taskMessage(seq%50, seq, base.Add(time.Duration(seq)*time.Millisecond)))
		}
		publishAll(t, pub, topics, payloads)
	}
	first := startGateway(t, endpoint, "gateway-restart", nil)
	sinks = append(sinks, first.sink)
	waitSubscribed(t, pub, first)
	send(0, 1000)
	waitFor(t, 30*time.Second, "the first 1,000", func() bool { return len(keys(sinks...)) >= 1000 })
	require.NoError(t, first.r.Shutdown(context.Background()))

	send(1000, 2000) // the gateway is down
	second := startGateway(t, endpoint, "gateway-restart", nil)
	sinks = append(sinks, second.sink)
	send(2000, 3000)
	waitFor(t, 30*time.Second, "all 3,000", func() bool {
		seen := map[string]bool{}
		for _, k := range keys(sinks...) {
			seen[k] = true
		}
		return len(seen) == 3000
	})
	assert.GreaterOrEqual(t, len(keys(second.sink)), 2000, "the 1,000 published while down and the 1,000 after")
}

// counter sums one of the receiver's own counters over its attributes.
func counter(t *testing.T, tel *componenttest.Telemetry, name string) int64 {
	return counterBy(t, tel, name, "", "")
}

// counterBy reads a counter's point whose attribute key has value ("" for the sum of all).
func counterBy(t *testing.T, tel *componenttest.Telemetry, name, key, value string) int64 {
	t.Helper()
	m, err := tel.GetMetric("otelcol_" + name)
	if err != nil {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is an int sum", name)
	var total int64
	for _, dp := range sum.DataPoints {
		if v, _ := dp.Attributes.Value(attribute.Key(key)); key == "" || v.AsString() == value {
			total += dp.Value
		}
	}
	return total
}
