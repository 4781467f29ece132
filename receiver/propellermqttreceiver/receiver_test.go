package propellermqttreceiver

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/fleet"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propellermqttreceiver/internal/metadata"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json")

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	def := createDefaultConfig().(*Config)
	sub, err := cm.Sub("propeller_mqtt")
	require.NoError(t, err)
	require.NoError(t, sub.Unmarshal(def))
	require.NoError(t, def.Validate())
	assert.Equal(t, "gateway-1", def.ClientID)
	assert.Equal(t, DefaultTopics, def.Topics)
	assert.True(t, def.RepairRustProplet)
	assert.Equal(t, "tcp://127.0.0.1:1883", def.Endpoint)

	custom := createDefaultConfig().(*Config)
	sub, err = cm.Sub("propeller_mqtt/custom")
	require.NoError(t, err)
	require.NoError(t, sub.Unmarshal(custom))
	require.NoError(t, custom.Validate())
	assert.Equal(t, "ssl://broker.example:8883", custom.Endpoint)
	assert.Equal(t, "gateway-entity", custom.Username)
	assert.Equal(t, "secret", string(custom.Password))
	assert.Equal(t, []string{"m/d1/c/+/control/proplet/task_metrics"}, custom.Topics)
	assert.Equal(t, []string{"$share/fleet/m/d1/c/+/control/proplet/task_metrics"}, custom.filters())
	assert.False(t, custom.RepairRustProplet)
	assert.Equal(t, 24*time.Hour, custom.MaxAge)
	assert.Equal(t, 5*time.Minute, custom.MaxAhead)
	assert.Equal(t, fleet.Limits{MaxTasks: 50000, MaxProplets: 5000, Expiration: 10 * time.Minute}, custom.limits())
	assert.Equal(t, fleet.DefaultLimits(), def.limits())
}

func TestValidateNamesKeyAndValue(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"no client id":     {func(c *Config) { c.ClientID = "" }, "client_id: must be set"},
		"bad session":      {func(c *Config) { c.Session = "x" }, `session: must be prefer_persistent, persistent or clean, got "x"`},
		"no topics":        {func(c *Config) { c.Topics = nil }, "topics: must list"},
		"bad filter":       {func(c *Config) { c.Topics = []string{"m/#/x"} }, `topics[0]: not a topic filter of Propeller ids: "m/#/x" has # before its last level`},
		"share in filter":  {func(c *Config) { c.Topics = []string{"$share/g/m/+"} }, "topics[0]: \"$share/g/m/+\": write the filter alone"},
		"bad group":        {func(c *Config) { c.SharedGroup = "a/b" }, `shared_group: "a/b"`},
		"no max age":       {func(c *Config) { c.MaxAge = 0 }, "max_age: must be positive"},
		"negative ahead":   {func(c *Config) { c.MaxAhead = -time.Second }, "max_ahead: must be positive"},
		"no task cap":      {func(c *Config) { c.MaxTasks = 0 }, "max_tasks: must be positive, got 0"},
		"no proplet cap":   {func(c *Config) { c.MaxProplets = -1 }, "max_proplets: must be positive, got -1"},
		"short expiration": {func(c *Config) { c.TrackingExpiration = time.Millisecond }, "tracking_expiration: must be at least 1s, got 1ms"},
		"bad domain level": {func(c *Config) { c.Topics = []string{"m/d\x01/c/+/control/proplet/metrics"} }, "level 2 (\"d\\x01\"): control character"},
		"endpoint, shared": {func(c *Config) { c.Endpoint = "127.0.0.1:1883" }, "endpoint: \"127.0.0.1:1883\" has no scheme"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.ClientID = "g"
			tt.mutate(cfg)
			err := cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

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

// TestBadInputIsCountedByReason: every kind of bad message through the broker, each dropped
// and counted under its reason; the good ones around them go through.
func TestBadInputIsCountedByReason(t *testing.T) {
	t.Parallel()
	endpoint := broker(t)
	g := startGateway(t, endpoint, "gateway-bad", func(c *Config) {
		c.Topics = []string{"m/+/c/+/control/proplet/#"}
	})
	pub := publisher(t, endpoint)
	waitSubscribed(t, pub, g)

	good := string(taskMessage(1, 1, time.Now()))
	id := uuid(1, 1)
	stamp := func(s string) string {
		i := strings.LastIndex(good, `"timestamp":`)
		return good[:i] + `"timestamp":` + s + "}"
	}
	cases := map[propeller.DropReason][]string{
		propeller.DropNotJSON:   {"not json", good[:50], "[1]"},
		propeller.DropWrongType: {strings.Replace(good, `"thread_count":3`, `"thread_count":"3"`, 1), strings.Replace(good, `"cpu_percent":1`, `"cpu_percent":"NaN"`, 1)},
		propeller.DropMissingID: {strings.Replace(good, id, "", 1)},
		propeller.DropIDTooLong: {strings.Replace(good, id, id+"-0000", 1)},
		propeller.DropIDNotUUID: {strings.Replace(good, id, "task-1", 1)},
		propeller.DropTimestamp: {stamp(`"2099-01-01T00:00:00Z"`), stamp(`"1999-01-01T00:00:00Z"`)},
		propeller.DropValue:     {strings.Replace(good, `"cpu_percent":1`, `"cpu_percent":1e999`, 1), strings.Replace(good, `"thread_count":3`, `"thread_count":-3`, 1)},
		propeller.DropNoMetrics: {`{"task_id":"` + id + `","proplet_id":"` + id + `"}`},
		propeller.DropTooLarge:  {`{"pad":"` + strings.Repeat("x", propeller.MaxPayload) + `"}`},
	}
	topic := "m/d/c/c/control/proplet/task_metrics"
	total := 0
	for _, payloads := range cases {
		for _, p := range payloads {
			publish(t, pub, topic, []byte(p))
			total++
		}
	}
	// Heartbeats under the wide filter are not metrics: ignored, not dropped.
	publish(t, pub, "m/d/c/c/control/proplet/alive", []byte(`{"proplet_id":"`+id+`","status":"alive"}`))
	publish(t, pub, topic, []byte(good))
	waitFor(t, 10*time.Second, "the good message", func() bool { return resources(g.sink) == 1 })
	for reason, payloads := range cases {
		assert.Equal(t, int64(len(payloads)), counterBy(t, g.tel, "receiver_propeller_mqtt_dropped_messages", "reason", string(reason)), "reason %s", reason)
	}
	assert.Equal(t, int64(total), counter(t, g.tel, "receiver_propeller_mqtt_dropped_messages"))
	assert.Equal(t, int64(1), counter(t, g.tel, "receiver_propeller_mqtt_ignored_messages"), "the heartbeat")
	for _, r := range propeller.DropReasons {
		if r == propeller.DropTopicID {
			continue // brokers refuse such topics themselves; TestTopicIDsAreChecked sends them
		}
		assert.Contains(t, cases, r, "a case for every reason")
	}
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

// TestTopicsOutsideTheFiltersAreIgnored: a persistent session keeps the subscriptions of an
// earlier configuration; what they bring that no configured filter matches is ignored.
func TestTopicsOutsideTheFiltersAreIgnored(t *testing.T) {
	t.Parallel()
	if !mqtttest.MosquittoAvailable() {
		t.Skip("needs mosquitto's persistent sessions")
	}
	endpoint := broker(t)
	pub := publisher(t, endpoint)
	before := startGateway(t, endpoint, "gateway-reconfigured", nil)
	waitSubscribed(t, pub, before)
	require.NoError(t, before.r.Shutdown(context.Background()))

	// Reconfigured to one domain: the broker still holds the session's wildcard subscriptions.
	after := startGateway(t, endpoint, "gateway-reconfigured", func(c *Config) {
		c.Topics = []string{"m/d1/c/+/control/proplet/task_metrics"}
	})
	publish(t, pub, "m/d2/c/c/control/proplet/task_metrics", taskMessage(2, 2, time.Now()))
	publish(t, pub, "m/d1/c/c/control/proplet/task_metrics", taskMessage(1, 1, time.Now()))
	waitFor(t, 10*time.Second, "the d1 message", func() bool { return resources(after.sink) == 1 })
	waitFor(t, 10*time.Second, "the d2 message ignored", func() bool {
		return counter(t, after.tel, "receiver_propeller_mqtt_ignored_messages") == 1
	})
	md := after.sink.AllMetrics()
	v, _ := md[0].ResourceMetrics().At(0).Resource().Attributes().Get(schema.DomainID)
	assert.Equal(t, "d1", v.Str())
}
