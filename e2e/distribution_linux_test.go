//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// TestDistribution runs the distribution with two tasks and a task whose process never
// appears, publishing to a real broker and serving Prometheus with the exporter configured as
// examples/agent.yaml documents it.
func TestDistribution(t *testing.T) {
	bin := binary(t)
	broker := mqtttest.Start(t, mqtttest.Options{})
	sub := mqtttest.Subscribe(t, broker.Endpoint(), "m/e2e/c/e2e/#", mqtttest.SubscriberOptions{})
	busy := testworkload.Start(t, testworkload.Burn, 0)
	mem := testworkload.Start(t, testworkload.Hold, 256)
	promPort, telPort := freePort(t), freePort(t)

	cfg := fmt.Sprintf(`
receivers:
  proplet:
    proplet_id: %s
    proplet: { self: true, interval: 1s }
    profiles:
      e2e: { interval: 1s, history_size: 10 }
    tasks:
      - { id: %s, name: busy, pid: %d, profile: e2e }
      - { id: %s, name: memory, pid: %d, profile: e2e }
      - { id: %s, name: pending, pid_file: %s, profile: e2e }
    start_jitter: 0s
exporters:
  mqtt:
    endpoint: %s
    domain_id: e2e
    channel_id: e2e
  prometheus:
    endpoint: 127.0.0.1:%d
    %s
service:
  telemetry: { metrics: { readers: [ { pull: { exporter: { prometheus: { host: 127.0.0.1, port: %d } } } } ] } }
  pipelines:
    metrics: { receivers: [proplet], exporters: [mqtt, prometheus] }
`, propletID, busyID, busy.Process.Pid, memID, mem.Process.Pid, pendingID, filepath.Join(t.TempDir(), "never.pid"),
		broker.Endpoint(), promPort, documentedLabels(t), telPort)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))

	// What the workloads used before the collector ran: its first samples can read no less.
	busyBefore, memBefore := testworkload.CPUTime(t, busy.Process.Pid), testworkload.CPUTime(t, mem.Process.Pid)
	var logs syncBuffer
	col := exec.Command(bin, "--config", cfgPath)
	col.Stdout, col.Stderr = &logs, &logs
	require.NoError(t, col.Start())
	exited := make(chan error, 1)
	go func() { exited <- col.Wait() }()
	t.Cleanup(func() {
		_ = col.Process.Kill()
		if t.Failed() {
			t.Logf("collector output:\n%s", logs.String())
		}
	})

	// Task messages on both task topics, decoded as the manager decodes them.
	var busyCPU, memBytes float64
	sub.Wait(t, 30*time.Second, func(msgs []mqtttest.Message) bool {
		topics := map[string]bool{}
		busyCPU, memBytes = 0, 0
		for _, m := range msgs {
			topics[m.Topic] = true
			if !strings.HasSuffix(m.Topic, "/control/proplet/task_metrics") {
				continue
			}
			v := m.Decoded(t)
			metrics, _ := v["metrics"].(map[string]any)
			switch v["task_id"] {
			case busyID:
				busyCPU, _ = metrics["cpu_percent"].(float64)
			case memID:
				memBytes, _ = metrics["memory_bytes"].(float64)
			}
		}
		return topics["m/e2e/c/e2e/control/proplet/task_metrics"] && topics["m/e2e/c/e2e/metrics/proplet"] &&
			topics["m/e2e/c/e2e/control/proplet/metrics"] && busyCPU > 0 && memBytes > 0
	})
	// A busy loop is one thread: at most one core, whatever share of it the machine gave
	// (plus a 10 ms tick at each end of a 1 s interval, and the rounding to two decimals).
	assert.Greater(t, busyCPU, 0.0, "the busy loop ran")
	assert.LessOrEqual(t, busyCPU, 102.5, "a busy loop is one core at most")
	assert.GreaterOrEqual(t, memBytes, float64(256<<20))
	for _, m := range sub.Messages() {
		v := m.Decoded(t)
		ts, ok := v["timestamp"].(string)
		require.True(t, ok)
		_, err := time.Parse(time.RFC3339Nano, ts)
		require.NoError(t, err)
		if strings.HasSuffix(m.Topic, "/control/proplet/metrics") {
			assert.Equal(t, propletID, v["proplet_id"])
			assert.IsType(t, map[string]any{}, v["cpu_metrics"])
		}
	}

	// The Prometheus endpoint serves the same tasks, each as series of its own.
	data := assertSeriesPerTask(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort))
	// Each task's CPU time is its own process's: no less than it had used when the collector
	// started, no more than it has used now.
	cpuTime := map[string]float64{}
	for _, s := range data {
		if s.name == "process_cpu_time_seconds_total" {
			cpuTime[s.labels["propeller_task_id"]] += s.value
		}
	}
	for id, w := range map[string]struct {
		cmd    *exec.Cmd
		before time.Duration
	}{busyID: {busy, busyBefore}, memID: {mem, memBefore}} {
		after := testworkload.CPUTime(t, w.cmd.Process.Pid)
		// Both sides count clock ticks; the sum of user and system seconds may differ in the
		// last bit of a float.
		const rounding = 1e-9
		assert.GreaterOrEqual(t, cpuTime[id], w.before.Seconds()-rounding, "CPU seconds of %s", id)
		assert.LessOrEqual(t, cpuTime[id], after.Seconds()+rounding, "CPU seconds of %s", id)
	}
	assertLookup(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort))
	telemetry, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", telPort))
	require.NoError(t, err)
	assertAlertSeriesServed(t, data, parseExposition(t, telemetry))

	// SIGTERM: a clean exit. How long it takes is the machine's; a minute is a hang.
	start := time.Now()
	require.NoError(t, col.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		assert.NoError(t, err, "clean exit")
		t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(time.Minute):
		t.Fatal("the collector did not exit within a minute of SIGTERM")
	}
	// The documented configuration is quiet: no deprecated option, no collision.
	for _, line := range strings.Split(logs.String(), "\n") {
		assert.False(t, strings.Contains(line, "deprecated") || strings.Contains(line, "Tasks collide"), "logged: %s", line)
	}
}

// taskFamilies are the task metrics of the receiver's default configuration that every task
// process has (network only in a namespace of its own; cgroup metrics only for cgroup tasks).
var taskFamilies = []string{
	"process_cpu_time_seconds_total",
	"process_cpu_utilization_ratio",
	"process_memory_usage_bytes",
	"process_memory_virtual_bytes",
	"process_memory_utilization_ratio",
	"process_disk_io_bytes_total",
	"process_thread_count",
	"process_unix_file_descriptor_count",
	"process_uptime_seconds",
}

// assertSeriesPerTask scrapes the Prometheus exporter until every task family has series for
// both tasks, then checks that each task's series are its own: one series per task and data
// point attributes, values that are the task's (the memory task holds 256 MiB, the busy
// one's RSS is its own), labels that stay for a task's life, and every name in the series table
// of docs/prometheus-grafana.md.
func assertSeriesPerTask(t *testing.T, url string) []sample {
	t.Helper()
	var samples []sample
	// tasks[family] = the task ids among the family's series
	tasks := func() map[string]map[string]bool {
		out := map[string]map[string]bool{}
		for _, s := range samples {
			if id := s.labels["propeller_task_id"]; id != "" {
				if out[s.name] == nil {
					out[s.name] = map[string]bool{}
				}
				out[s.name][id] = true
			}
		}
		return out
	}
	require.Eventually(t, func() bool {
		body, err := scrape(url)
		if err != nil {
			return false
		}
		samples = parseExposition(t, body)
		got := tasks()
		for _, f := range taskFamilies {
			if !got[f][busyID] || !got[f][memID] {
				return false
			}
		}
		return true
	}, 20*time.Second, 200*time.Millisecond, "every task family with series for both tasks")

	for _, f := range taskFamilies {
		assert.Equal(t, map[string]bool{busyID: true, memID: true}, tasks()[f], "%s: one set of series per task", f)
	}
	seen := map[string]bool{}
	unstable := map[string]bool{} // labels that change during a task's life
	sum := map[string]float64{}   // family and task id: the sum over the task's series
	for _, s := range samples {
		key := s.name + "{" + fmt.Sprint(s.labels) + "}"
		assert.False(t, seen[key], "two series with the same labels: %s", key)
		seen[key] = true
		for l := range s.labels {
			if l == "process_pid" || strings.HasPrefix(l, "propeller_monitoring_profile") {
				unstable[l] = true
			}
		}
		if id := s.labels["propeller_task_id"]; id != "" {
			sum[s.name+" "+id] += s.value
			want := map[string]string{busyID: "busy", memID: "memory", pendingID: "pending"}[id]
			assert.Equal(t, want, s.labels["propeller_task_name"], "%s of %s", s.name, id)
			assert.Equal(t, propletID, s.labels["propeller_proplet_id"], "%s of %s", s.name, id)
		}
	}
	assert.Empty(t, unstable, "labels that change with a restart or a profile change would start new series")
	assert.GreaterOrEqual(t, sum["process_memory_usage_bytes "+memID], float64(256<<20), "the memory task holds 256 MiB")
	assert.Less(t, sum["process_memory_usage_bytes "+busyID], float64(256<<20), "the busy task's RSS is its own")

	// The names users query are those of docs/prometheus-grafana.md.
	readme, err := os.ReadFile("../docs/prometheus-grafana.md")
	require.NoError(t, err)
	missing := map[string]bool{}
	for _, s := range samples {
		if strings.HasPrefix(s.name, "process_") || strings.HasPrefix(s.name, "system_") || strings.HasPrefix(s.name, "propeller_") {
			if !strings.Contains(string(readme), "| `"+s.name+"`") {
				missing[s.name] = true
			}
		}
	}
	assert.Empty(t, missing, "series served but not in the series table of docs/prometheus-grafana.md")
	return samples
}

// assertLookup checks that a task whose process is not found is visible in Prometheus, as
// the dashboard's "Tasks not found" panel and PropellerTaskNotFound read it: its
// propeller_task_lookup is 0, and that of the tasks found is 1.
func assertLookup(t *testing.T, url string) {
	t.Helper()
	var lookup map[string]float64
	require.Eventually(t, func() bool {
		body, err := scrape(url)
		if err != nil {
			return false
		}
		lookup = map[string]float64{}
		for _, s := range parseExposition(t, body) {
			if s.name == "propeller_task_lookup" {
				lookup[s.labels["propeller_task_id"]] = s.value
			}
		}
		return len(lookup) == 3
	}, 15*time.Second, 200*time.Millisecond, "propeller_task_lookup for the three tasks")
	assert.Equal(t, map[string]float64{busyID: 1, memID: 1, pendingID: 0}, lookup)
}

// assertAlertSeriesServed checks the names the alerting rules query against what the
// distribution serves, so that a rule cannot wait forever on a misspelt series: task and
// proplet series on the exporter's endpoint, otelcol_* on the telemetry endpoint. Counters
// exported only from their first increment (failures, refusals) are checked against their
// declarations instead: the MQTT exporter's metadata.yaml and exporterhelper's names.
func assertAlertSeriesServed(t *testing.T, data, telemetry []sample) {
	t.Helper()
	served := map[string]bool{}
	for _, s := range append(data, telemetry...) {
		served[s.name] = true
	}
	declared := map[string]bool{
		"otelcol_exporter_send_failed_metric_points":    true,
		"otelcol_exporter_enqueue_failed_metric_points": true,
	}
	for name := range asMap(yamlFile(t, "../exporter/mqttexporter/metadata.yaml")["telemetry"])["metrics"].(map[string]any) {
		declared["otelcol_"+name] = true
	}
	// The receiver's metrics that only some tasks have (CPU throttling needs a task with a CPU
	// quota; this test's tasks have none): served for those tasks, under these names.
	for prom, s := range servedSeries(t) {
		if strings.HasPrefix(s.otel, "propeller.task.cpu.throttled.") || s.otel == "propeller.task.cpu.periods" {
			declared[prom] = true
		}
	}
	labels := map[string]bool{"propeller_task_id": true, "propeller_task_name": true, "propeller_proplet_id": true}
	name := regexp.MustCompile(`\b(?:process|system|propeller|otelcol)_[a-z0-9_]+`)
	for _, g := range list(yamlFile(t, alertRules)["groups"]) {
		for _, r := range list(asMap(g)["rules"]) {
			expr, _ := asMap(r)["expr"].(string)
			for _, n := range name.FindAllString(expr, -1) {
				if labels[n] || served[n] || declared[n] {
					continue
				}
				t.Errorf("alert %v queries %s, which the distribution does not serve", asMap(r)["alert"], n)
			}
		}
	}
}
