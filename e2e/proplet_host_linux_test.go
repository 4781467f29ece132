//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// propletEnv is the environment of a proplet host: the variables the Rust proplet reads, and
// none of those the test runner may have set besides.
func propletEnv(vars ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PROPLET_") {
			env = append(env, kv)
		}
	}
	return append(env, vars...)
}

// TestRecommendedConfigReplacesTheProplet runs examples/agent.yaml, the recommended
// configuration of a proplet host, with the proplet's environment variables, against a broker,
// and plays the manager: tasks started with export_to_mqtt false (the replace mode, in which the
// Rust proplet publishes nothing for them) are published by the collector, and every other key
// of their profiles is honoured: interval, collect flags, history size, enabled. Only what a
// test cannot use is overridden by a second configuration file: the proplet process (the test
// itself, not an executable named proplet), the queue directory, the ports, the task API.
func TestRecommendedConfigReplacesTheProplet(t *testing.T) {
	bin := binary(t)
	broker := mqtttest.Start(t, mqtttest.Options{})
	sub := mqtttest.Subscribe(t, broker.Endpoint(), "m/tenant-e2e/c/channel-e2e/#", mqtttest.SubscriberOptions{})
	apiAddr := mqtttest.FreeAddress(t)

	override := fmt.Sprintf(`
extensions:
  file_storage: { directory: %s }
receivers:
  proplet:
    proplet: { match: null, pid: %d }
    discovery_interval: 200ms
    start_jitter: 0s
    api: { endpoint: %s }
exporters:
  prometheus: { endpoint: 127.0.0.1:%d }
service:
  telemetry: { metrics: { readers: [ { pull: { exporter: { prometheus: { host: 127.0.0.1, port: %d } } } } ] } }
`, t.TempDir(), os.Getpid(), apiAddr, freePort(t), freePort(t))
	overridePath := filepath.Join(t.TempDir(), "override.yaml")
	require.NoError(t, os.WriteFile(overridePath, []byte(override), 0o600))

	var logs syncBuffer
	col := exec.Command(bin, "--config", "../examples/agent.yaml", "--config", overridePath)
	col.Env = propletEnv("PROPLET_MQTT_ADDRESS="+broker.Endpoint(), "PROPLET_TENANT_ID=tenant-e2e", "PROPLET_CHANNEL_ID=channel-e2e",
		"PROPLET_ENTITY_ID="+propletID, "PROPLET_API_KEY=key", "PROPLET_MQTT_QOS=1", "PROPLET_METRICS_INTERVAL=1",
		"PROPLET_MANAGER_K8S_NAMESPACE=ns-e2e")
	col.Stdout, col.Stderr = &logs, &logs
	require.NoError(t, col.Start())
	t.Cleanup(func() {
		_ = col.Process.Kill()
		_ = col.Wait()
		if t.Failed() {
			t.Logf("collector output:\n%s", logs.String())
		}
	})

	manager := paho.NewClient(paho.NewClientOptions().AddBroker(broker.Endpoint()).SetClientID("manager"))
	require.True(t, manager.Connect().WaitTimeout(5*time.Second))
	defer manager.Disconnect(100)
	publish := func(path, payload string) {
		tok := manager.Publish("m/tenant-e2e/c/channel-e2e/control/manager/"+path, 2, false, payload)
		require.True(t, tok.WaitTimeout(5*time.Second))
		require.NoError(t, tok.Error())
	}
	tasks := func() map[string]map[string]any {
		resp, err := http.Get("http://" + apiAddr + "/tasks")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var list []map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		out := map[string]map[string]any{}
		for _, v := range list {
			out[v["id"].(string)] = v
		}
		return out
	}
	// Wait until the collector follows the manager: a probe task appears.
	require.Eventually(t, func() bool {
		publish("start", `{"id":"probe","name":"probe"}`)
		_, ok := tasks()["probe"]
		return ok
	}, 30*time.Second, 200*time.Millisecond)
	publish("stop", `{"id":"probe"}`)

	const (
		fullID    = "11111111-0000-4000-8000-000000000001" // every key, as the real manager sends a profile
		partialID = "11111111-0000-4000-8000-000000000002" // a partial profile: other keys from standard
		offID     = "11111111-0000-4000-8000-000000000003" // enabled false: not sampled, whatever the option
	)
	publish("start", `{"id":"`+fullID+`","name":"full","state":0,"cli_args":[],"daemon":false,"monitoring_profile":{"enabled":true,"interval":1,"collect_cpu":true,"collect_memory":true,"collect_disk_io":false,"collect_threads":true,"collect_file_descriptors":true,"export_to_mqtt":false,"retain_history":true,"history_size":3}}`)
	publish("start", `{"id":"`+partialID+`","name":"partial","monitoring_profile":{"interval":2,"collect_file_descriptors":false,"export_to_mqtt":false}}`)
	publish("start", `{"id":"`+offID+`","name":"off","monitoring_profile":{"enabled":false,"interval":1,"export_to_mqtt":false}}`)
	// As the Rust proplet runs a task with an external runtime: wasmtime run ... /tmp/proplet_<id>.wasm
	procs := map[string]*exec.Cmd{}
	for _, id := range []string{fullID, partialID, offID} {
		c := testworkload.Command(t, testworkload.Sleep, 0)
		c.Args = append(c.Args, "run", "/tmp/proplet_"+id+".wasm")
		procs[id] = testworkload.StartCmd(t, c)
	}

	byTask := func(msgs []mqtttest.Message) map[string][]map[string]any {
		out := map[string][]map[string]any{}
		for _, m := range msgs {
			if m.Topic != "m/tenant-e2e/c/channel-e2e/control/proplet/task_metrics" {
				continue
			}
			v := m.Decoded(t)
			// Measured samples only: a message of a task bound that very moment carries its
			// uptime and nothing else (not what this test is about).
			if _, measured := v["metrics"].(map[string]any)["cpu_percent"]; measured {
				out[v["task_id"].(string)] = append(out[v["task_id"].(string)], v)
			}
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range sub.Messages() {
				t.Logf("%s %s", m.Topic, m.Payload)
			}
		}
	})
	msgs := sub.Wait(t, 30*time.Second, func(msgs []mqtttest.Message) bool {
		b := byTask(msgs)
		return len(b[fullID]) >= 7 && len(b[partialID]) >= 4
	})
	got := byTask(msgs)

	// Published although export_to_mqtt was false, with the profile's collect flags.
	for _, v := range got[fullID] {
		assert.Equal(t, propletID, v["proplet_id"])
		m := v["metrics"].(map[string]any)
		assert.NotContains(t, m, "disk_read_bytes", "collect_disk_io false")
		assert.Contains(t, m, "file_descriptor_count")
		if agg, ok := v["aggregated"].(map[string]any); ok {
			assert.LessOrEqual(t, agg["sample_count"], 3.0, "history_size 3")
		}
	}
	for _, v := range got[partialID] {
		m := v["metrics"].(map[string]any)
		assert.Contains(t, m, "disk_read_bytes", "standard's collect_disk_io")
		assert.NotContains(t, m, "file_descriptor_count", "collect_file_descriptors false")
	}
	assert.Empty(t, got[offID], "a task whose profile says enabled false is not sampled")
	// The profile's interval: 1 s and 2 s between samples.
	assert.InDelta(t, 1.0, medianGap(t, got[fullID]), 0.3)
	assert.InDelta(t, 2.0, medianGap(t, got[partialID]), 0.3)

	// The proplet's own messages, with the proplet's id and namespace.
	var proplet map[string]any
	for _, m := range msgs {
		if m.Topic == "m/tenant-e2e/c/channel-e2e/control/proplet/metrics" {
			proplet = m.Decoded(t)
		}
	}
	require.NotNil(t, proplet, "no proplet message")
	assert.Equal(t, propletID, proplet["proplet_id"])
	assert.Equal(t, "ns-e2e", proplet["namespace"])

	// The task API shows the profile the collector applies: the requested one, with
	// export_to_mqtt true since the collector publishes the task.
	ts := tasks()
	require.Contains(t, ts, fullID)
	full := ts[fullID]["monitoring_profile"].(map[string]any)
	assert.Equal(t, "inline", ts[fullID]["profile"])
	assert.Equal(t, true, full["export_to_mqtt"])
	assert.InDelta(t, 1.0, full["interval"], 0)
	assert.Equal(t, false, full["collect_disk_io"])
	assert.InDelta(t, 3.0, full["history_size"], 0)
	partial := ts[partialID]["monitoring_profile"].(map[string]any)
	assert.Equal(t, true, partial["export_to_mqtt"])
	assert.InDelta(t, 2.0, partial["interval"], 0)
	assert.Equal(t, false, partial["collect_file_descriptors"])
	assert.InDelta(t, 100.0, partial["history_size"], 0, "standard's")
	assert.Equal(t, "disabled", ts[offID]["state"])
	assert.Equal(t, true, ts[offID]["monitoring_profile"].(map[string]any)["export_to_mqtt"])

	// A stop request ends it, as for any task; the proplet then kills the task's process, and
	// the collector publishes the task's usage report (the logs pipeline).
	publish("stop", `{"id":"`+fullID+`"}`)
	require.Eventually(t, func() bool { _, ok := tasks()[fullID]; return !ok }, 10*time.Second, 100*time.Millisecond)
	require.NoError(t, procs[fullID].Process.Kill())
	usage := sub.Wait(t, 15*time.Second, func(msgs []mqtttest.Message) bool {
		for _, m := range msgs {
			if m.Topic == "m/tenant-e2e/c/channel-e2e/control/proplet/task_usage" {
				return true
			}
		}
		return false
	})
	var report map[string]any
	for _, m := range usage {
		if m.Topic == "m/tenant-e2e/c/channel-e2e/control/proplet/task_usage" {
			report = m.Decoded(t)
		}
	}
	t.Logf("usage report: %v", report)
	assert.Equal(t, fullID, report["task_id"])
	assert.Equal(t, propletID, report["proplet_id"])
	assert.Greater(t, report["duration_seconds"], 1.0)
	if os.Geteuid() == 0 {
		// The kernel's process events: the report waited for the process's end.
		assert.InDelta(t, 9, report["exit_signal"], 0, "killed by SIGKILL")
		assert.Nil(t, report["exit_code"])
		assert.Equal(t, true, report["exact"])
	}
	assert.NotContains(t, logs.String(), "Configuration references an environment variable", "every variable without a default is set")
}

// medianGap is the median time between a task's consecutive samples, in seconds.
func medianGap(t *testing.T, msgs []map[string]any) float64 {
	t.Helper()
	var ts []time.Time
	for _, v := range msgs {
		s, err := time.Parse(time.RFC3339Nano, v["timestamp"].(string))
		require.NoError(t, err)
		ts = append(ts, s)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	var gaps []float64
	for i := 1; i < len(ts); i++ {
		gaps = append(gaps, ts[i].Sub(ts[i-1]).Seconds())
	}
	require.NotEmpty(t, gaps)
	sort.Float64s(gaps)
	return gaps[len(gaps)/2]
}

// TestValidateNamesUnsetVariables runs validate on the recommended configuration on a host
// where the proplet's variables are not set: the errors (a domain_id that must be set) come
// with the variables behind them, and the variables with defaults or declared optional are not
// mentioned.
func TestValidateNamesUnsetVariables(t *testing.T) {
	bin := binary(t)
	run := func(env ...string) string {
		cmd := exec.Command(bin, "validate", "--config", "../examples/agent.yaml")
		cmd.Env = propletEnv(env...)
		out, err := cmd.CombinedOutput()
		require.Error(t, err, "validate must fail: %s", out)
		return string(out)
	}
	out := run()
	for _, name := range []string{"PROPLET_TENANT_ID", "PROPLET_CHANNEL_ID", "PROPLET_ENTITY_ID", "PROPLET_API_KEY"} {
		assert.Contains(t, out, "Warning: "+name+" is not set, so ${env:"+name+"} in the configuration is empty\n")
	}
	for _, name := range []string{"PROPLET_MQTT_ADDRESS", "PROPLET_MQTT_QOS", "PROPLET_MQTT_TLS_CA_CERT", "PROPLET_MANAGER_K8S_NAMESPACE"} {
		assert.NotContains(t, out, name, "a default, or declared optional")
	}
	assert.Contains(t, out, `propeller.domain_id: must be set`)
	assert.Equal(t, 1, strings.Count(out, "PROPLET_TENANT_ID is not set"), "said once, though referenced twice")

	// Propeller's own .env lists the variables empty; an older proplet's env file has the older name.
	out = run("PROPLET_TENANT_ID=", "PROPLET_DOMAIN_ID=tenant", "PROPLET_CHANNEL_ID=c", "PROPLET_ENTITY_ID=e", "PROPLET_API_KEY=k")
	assert.Contains(t, out, "Warning: PROPLET_TENANT_ID is set but empty, so ${env:PROPLET_TENANT_ID} in the configuration is empty "+
		"(PROPLET_DOMAIN_ID, its name in older Propeller releases, is set: set PROPLET_TENANT_ID to the same value)")
	assert.NotContains(t, out, "PROPLET_CHANNEL_ID")
}
