//go:build linux

package propletreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

func startReceiver(t *testing.T, cfg *Config) *consumertest.MetricsSink {
	t.Helper()
	return startReceiverWithLogger(t, cfg, zaptest.NewLogger(t))
}

// startReceiverWithLogger is startReceiver logging to logger.
func startReceiverWithLogger(t *testing.T, cfg *Config, logger *zap.Logger) *consumertest.MetricsSink {
	t.Helper()
	sink := new(consumertest.MetricsSink)
	set := receivertest.NewNopSettings(metadata.Type)
	set.Logger = logger
	rcv, err := NewFactory().CreateMetrics(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	return sink
}

// resources returns every measurement emitted so far whose attribute key has value (not the
// lookup samples of a task that is not found yet).
func resources(sink *consumertest.MetricsSink, key, value string) []pmetric.ResourceMetrics {
	var out []pmetric.ResourceMetrics
	for _, md := range sink.AllMetrics() {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			rm := md.ResourceMetrics().At(i)
			if lookup, ok := metricsByName(rm)["propeller.task.lookup"]; ok && lookup.Gauge().DataPoints().At(0).IntValue() == 0 {
				continue
			}
			if v, ok := rm.Resource().Attributes().Get(key); ok && v.AsString() == value {
				out = append(out, rm)
			}
		}
	}
	return out
}

func metricsByName(rm pmetric.ResourceMetrics) map[string]pmetric.Metric {
	out := map[string]pmetric.Metric{}
	ms := rm.ScopeMetrics().At(0).Metrics()
	for i := 0; i < ms.Len(); i++ {
		out[ms.At(i).Name()] = ms.At(i)
	}
	return out
}

func TestReceiverEmitsTaskAndPropletResources(t *testing.T) {
	cmd := testworkload.Start(t, testworkload.Files, 0)
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	cfg.StartJitter = 0
	cfg.Profiles = map[string]profile.Overrides{"fast": {Interval: ptr(300 * time.Millisecond), HistorySize: ptr(20)}}
	cfg.Proplet = PropletConfig{Self: true, Interval: 300 * time.Millisecond}
	cfg.Tasks = []TaskConfig{{ID: "550e8400-e29b-41d4-a716-446655440001", Name: "compute", ProcessLocator: ProcessLocator{PID: int32(cmd.Process.Pid)}, Profile: "fast"}}
	sink := startReceiver(t, cfg)

	require.Eventually(t, func() bool {
		return len(resources(sink, "propeller.task.id", "550e8400-e29b-41d4-a716-446655440001")) > 0 &&
			len(resources(sink, "process.pid", itoa(os.Getpid()))) > 0
	}, 10*time.Second, 20*time.Millisecond)

	task := resources(sink, "propeller.task.id", "550e8400-e29b-41d4-a716-446655440001")[0]
	attrs := task.Resource().Attributes().AsRaw()
	assert.Equal(t, map[string]any{
		"propeller.task.id":                           "550e8400-e29b-41d4-a716-446655440001",
		"propeller.task.name":                         "compute",
		"propeller.proplet.id":                        "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		"propeller.monitoring_profile.name":           "fast",
		"propeller.monitoring_profile.interval":       0.3,
		"propeller.monitoring_profile.history_size":   int64(20),
		"propeller.monitoring_profile.retain_history": true,
		"propeller.monitoring_profile.export_to_mqtt": true,
		"process.pid":                                 int64(cmd.Process.Pid),
		"process.executable.name":                     attrs["process.executable.name"],
		"process.owner":                               attrs["process.owner"],
	}, attrs)
	assert.NotEmpty(t, attrs["process.executable.name"])

	ms := metricsByName(task)
	type want struct {
		unit       string
		typ        pmetric.MetricType
		monotonic  bool
		attrValues []string
	}
	for name, w := range map[string]want{
		"process.cpu.time":                   {"s", pmetric.MetricTypeSum, true, []string{"user", "system"}},
		"process.cpu.utilization":            {"1", pmetric.MetricTypeGauge, false, []string{"user", "system"}},
		"process.memory.usage":               {"By", pmetric.MetricTypeSum, false, nil},
		"process.memory.virtual":             {"By", pmetric.MetricTypeSum, false, nil},
		"process.memory.utilization":         {"1", pmetric.MetricTypeGauge, false, nil},
		"process.disk.io":                    {"By", pmetric.MetricTypeSum, true, []string{"read", "write"}},
		"process.uptime":                     {"s", pmetric.MetricTypeGauge, false, nil},
		"process.thread.count":               {"{thread}", pmetric.MetricTypeSum, false, nil},
		"process.unix.file_descriptor.count": {"{file_descriptor}", pmetric.MetricTypeSum, false, nil},
	} {
		m, ok := ms[name]
		if !assert.True(t, ok, name) {
			continue
		}
		assert.Equal(t, w.unit, m.Unit(), name)
		assert.Equal(t, w.typ, m.Type(), name)
		if w.typ == pmetric.MetricTypeSum {
			assert.Equal(t, pmetric.AggregationTemporalityCumulative, m.Sum().AggregationTemporality(), name)
			assert.Equal(t, w.monotonic, m.Sum().IsMonotonic(), name)
			dp := m.Sum().DataPoints().At(0)
			assert.InDelta(t, float64(time.Now().UnixNano()), float64(dp.StartTimestamp()), float64(time.Minute), "%s starts at the process start", name)
		}
		var got []string
		dps := dataPoints(m)
		for i := 0; i < dps.Len(); i++ {
			dps.At(i).Attributes().Range(func(_ string, v pcommon.Value) bool { got = append(got, v.Str()); return true })
		}
		assert.ElementsMatch(t, w.attrValues, got, name)
	}
	assert.NotContains(t, ms, "process.network.io", "no network for a task in the collector's namespace")
	assert.GreaterOrEqual(t, ms["process.unix.file_descriptor.count"].Sum().DataPoints().At(0).IntValue(), int64(100))

	proplet := resources(sink, "process.pid", itoa(os.Getpid()))[0]
	_, hasTask := proplet.Resource().Attributes().Get("propeller.task.id")
	assert.False(t, hasTask, "the proplet resource has no task id")
	pm := metricsByName(proplet)
	for _, name := range []string{"process.cpu.time", "process.memory.usage", "system.cpu.utilization"} {
		assert.Contains(t, pm, name)
	}
	assert.Equal(t, 7, pm["system.cpu.utilization"].Gauge().DataPoints().Len(), "one point per CPU mode")
}

func dataPoints(m pmetric.Metric) pmetric.NumberDataPointSlice {
	if m.Type() == pmetric.MetricTypeSum {
		return m.Sum().DataPoints()
	}
	return m.Gauge().DataPoints()
}

func itoa(i int) string { return pcommon.NewValueInt(int64(i)).AsString() }

func TestTaskAPI(t *testing.T) {
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	api := defaultAPIConfig()
	api.Server.NetAddr.Endpoint = addr
	api.BearerTokenFile = tokenFile
	cfg.API = configoptional.Some(api)
	sink := startReceiver(t, cfg)

	body := fmt.Sprintf(`{"id":"api-task","name":"compute","pid":%d,"monitoring_profile":{"interval":1}}`, cmd.Process.Pid)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/tasks", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	require.Eventually(t, func() bool { return len(resources(sink, "propeller.task.id", "api-task")) > 0 }, 10*time.Second, 20*time.Millisecond)
	rm := resources(sink, "propeller.task.id", "api-task")[0]
	name, _ := rm.Resource().Attributes().Get("propeller.monitoring_profile.name")
	assert.Equal(t, "inline", name.Str())

	resp, err = http.Get("http://" + addr + "/tasks")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the token from the file is required")
}

// TestFollowsThePropellerManager plays the Propeller manager against a real broker.
func TestFollowsThePropellerManager(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{})
	apiAddr := mqtttest.FreeAddress(t)
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "proplet-1"
	cfg.Proplet = PropletConfig{Self: true, Interval: 10 * time.Second}
	cfg.StartJitter = 0
	cfg.DiscoveryInterval = 200 * time.Millisecond
	api := defaultAPIConfig()
	api.Server.NetAddr.Endpoint = apiAddr
	cfg.API = configoptional.Some(api)
	pc := defaultPropellerConfig()
	pc.Endpoint, pc.DomainID, pc.ChannelID = broker.Endpoint(), "d", "c"
	pc.TaskMatch = procmatch.Spec{Cmdline: "--task-id={task_id}$"}
	cfg.Propeller = configoptional.Some(pc)
	sink := startReceiver(t, cfg)

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(broker.Endpoint()).SetClientID("manager"))
	require.True(t, pub.Connect().WaitTimeout(5*time.Second))
	defer pub.Disconnect(100)
	publish := func(path, payload string) {
		tok := pub.Publish("m/d/c/c/control/manager/"+path, 1, false, payload)
		require.True(t, tok.WaitTimeout(5*time.Second))
		require.NoError(t, tok.Error())
	}
	tasks := func() map[string]map[string]any {
		resp, err := http.Get("http://" + apiAddr + "/tasks")
		require.NoError(t, err)
		defer resp.Body.Close()
		var list []map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		out := map[string]map[string]any{}
		for _, v := range list {
			out[v["id"].(string)] = v
		}
		return out
	}
	// Wait until the receiver is subscribed: a probe task appears.
	require.Eventually(t, func() bool {
		publish("start", `{"id":"probe","name":"probe"}`)
		_, ok := tasks()["probe"]
		return ok
	}, 10*time.Second, 200*time.Millisecond)
	publish("stop", `{"id":"probe"}`)

	requested := time.Now()
	publish("start", `{"id":"full","name":"full","state":0,"cli_args":[],"daemon":false,"monitoring_profile":{"enabled":true,"interval":1,"collect_cpu":true,"collect_memory":true,"collect_disk_io":true,"collect_threads":true,"collect_file_descriptors":true,"export_to_mqtt":true,"retain_history":true,"history_size":50}}`)
	publish("start", `{"id":"partial","name":"partial","monitoring_profile":{"interval":2000000000,"collect_disk_io":false}}`)
	publish("start", `{"id":"daemon","name":"daemon","daemon":true}`)
	publish("start", `{"id":"zero","name":"zero","monitoring_profile":{"interval":0}}`)
	publish("start", `{"id":"elsewhere","proplet_id":"proplet-2"}`)
	publish("start", `not json at all`)

	// The tasks' processes appear a little later, as when the proplet is still compiling.
	require.Eventually(t, func() bool { ts := tasks(); return ts["full"] != nil && ts["partial"] != nil && ts["daemon"] != nil }, patience, 50*time.Millisecond)
	assert.Equal(t, "pending", tasks()["full"]["state"])
	for _, id := range []string{"full", "partial", "daemon"} {
		c := testworkload.Command(t, testworkload.Sleep, 0)
		c.Args = append(c.Args, "--task-id="+id)
		testworkload.StartCmd(t, c)
	}

	require.Eventually(t, func() bool { return len(resources(sink, "propeller.task.id", "partial")) >= 3 }, 15*time.Second, 50*time.Millisecond)
	ts := tasks()
	assert.Equal(t, "active", ts["full"]["state"])
	assert.InDelta(t, 1.0, ts["full"]["monitoring_profile"].(map[string]any)["interval"], 0, "whole seconds")
	assert.InDelta(t, 50.0, ts["full"]["monitoring_profile"].(map[string]any)["history_size"], 0)
	assert.InDelta(t, 2.0, ts["partial"]["monitoring_profile"].(map[string]any)["interval"], 0, "nanoseconds")
	assert.Equal(t, false, ts["partial"]["monitoring_profile"].(map[string]any)["collect_disk_io"])
	assert.Equal(t, true, ts["partial"]["monitoring_profile"].(map[string]any)["collect_cpu"], "missing keys take the defaults")
	assert.Equal(t, "long_running_daemon", ts["daemon"]["profile"], "no profile and daemon: long_running_daemon")
	assert.Equal(t, "active", ts["daemon"]["state"])
	assert.NotContains(t, ts, "zero", "interval 0 is rejected")
	assert.NotContains(t, ts, "elsewhere", "a request for another proplet is ignored")
	assert.NotContains(t, ts, "probe", "stopped")

	full, partial := resources(sink, "propeller.task.id", "full"), resources(sink, "propeller.task.id", "partial")
	// Each on its own interval: no more samples than the interval allows since the requests
	// (a lookup sample besides), and the 1 s task sampled more often than the 2 s one.
	elapsed := time.Since(requested)
	assert.LessOrEqual(t, len(full), int(elapsed/time.Second)+2, "full every 1 s: %d in %s", len(full), elapsed)
	assert.LessOrEqual(t, len(partial), int(elapsed/(2*time.Second))+2, "partial every 2 s: %d in %s", len(partial), elapsed)
	assert.Greater(t, len(full), len(partial), "full every 1 s, partial every 2 s: %d and %d", len(full), len(partial))
	assert.Contains(t, metricsByName(full[0]), "process.disk.io")
	assert.NotContains(t, metricsByName(partial[0]), "process.disk.io")

	publish("stop", `{"id":"full","proplet_id":"proplet-1"}`)
	require.Eventually(t, func() bool { _, ok := tasks()["full"]; return !ok }, patience, 50*time.Millisecond)
	// The stop's last sample is flushed well before the next partial sample; count after that.
	advance := func() {
		before := len(resources(sink, "propeller.task.id", "partial"))
		require.Eventually(t, func() bool { return len(resources(sink, "propeller.task.id", "partial")) > before }, 10*time.Second, 50*time.Millisecond,
			"the receiver keeps sampling after bad requests and stops")
	}
	advance()
	n := len(resources(sink, "propeller.task.id", "full"))
	advance()
	assert.Len(t, resources(sink, "propeller.task.id", "full"), n, "nothing after the stop")
}

func TestInProcessTasksAreSaidSo(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{})
	apiAddr := mqtttest.FreeAddress(t)
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "proplet-1"
	api := defaultAPIConfig()
	api.Server.NetAddr.Endpoint = apiAddr
	cfg.API = configoptional.Some(api)
	pc := defaultPropellerConfig()
	pc.Endpoint, pc.DomainID, pc.ChannelID, pc.InProcess = broker.Endpoint(), "d", "c", true
	cfg.Propeller = configoptional.Some(pc)
	startReceiver(t, cfg)

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(broker.Endpoint()).SetClientID("manager"))
	require.True(t, pub.Connect().WaitTimeout(5*time.Second))
	defer pub.Disconnect(100)
	require.Eventually(t, func() bool {
		pub.Publish("m/d/c/c/control/manager/start", 1, false, `{"id":"inproc","name":"f"}`).WaitTimeout(time.Second)
		resp, err := http.Get("http://" + apiAddr + "/tasks/inproc")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return v["state"] == "in_process"
	}, 10*time.Second, 200*time.Millisecond, "a task run inside the proplet is registered as in_process")
}

// TestAPIBearerTokenThroughTheConfiguration decodes the api block from YAML as the Collector
// does and asks the running API: no token, a wrong one, the right one, from the key or a file.
func TestAPIBearerTokenThroughTheConfiguration(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("from-file\n"), 0o600))
	for _, tc := range []struct {
		name, key, value, token string
	}{
		{"bearer_token", "bearer_token", "s3cret", "s3cret"},
		{"bearer_token_file", "bearer_token_file", tokenFile, "from-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := mqtttest.FreeAddress(t)
			cfg := doorConfig(t, map[string]any{"api": map[string]any{"endpoint": addr, tc.key: tc.value}, "propeller": nil})
			cfg.Propeller = configoptional.None[PropellerConfig]()
			require.NoError(t, confmap.Validate(cfg))
			startReceiver(t, cfg)
			call := func(method, path, token string) int {
				req, err := http.NewRequest(method, "http://"+addr+path, nil)
				require.NoError(t, err)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				return resp.StatusCode
			}
			assert.Equal(t, http.StatusUnauthorized, call(http.MethodGet, "/tasks", ""), "no token")
			assert.Equal(t, http.StatusUnauthorized, call(http.MethodGet, "/tasks", "wrong"), "wrong token")
			assert.Equal(t, http.StatusUnauthorized, call(http.MethodDelete, "/tasks/x", ""), "no token, delete")
			assert.Equal(t, http.StatusOK, call(http.MethodGet, "/tasks", tc.token), "right token")
			assert.Equal(t, http.StatusNotFound, call(http.MethodDelete, "/tasks/x", tc.token), "right token, delete")
			assert.Equal(t, http.StatusOK, call(http.MethodGet, "/health", ""), "health needs no token")
		})
	}
}
