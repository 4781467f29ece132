//go:build linux

// Package e2e tests the otelcol-propeller distribution as users run it: the binary built by
// ocb, a real broker, real workloads, the Prometheus endpoint, and SIGTERM.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
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

func TestMain(m *testing.M) {
	testworkload.MainIfChild()
	os.Exit(m.Run())
}

// binary returns the distribution, building it with ocb when it is missing.
func binary(t *testing.T) string {
	t.Helper()
	return built(t, "builder-config.yaml", filepath.Join("_build", "otelcol-propeller"))
}

// built returns a build of the repository's (path relative to its root), building it with ocb
// from builderConfig when it is missing.
func built(t *testing.T, builderConfig, path string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	bin := filepath.Join(root, path)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "tool", "-modfile=tools/go.mod", "builder", "--config", builderConfig)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building %s: %s", builderConfig, out)
	return bin
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const (
	busyID    = "550e8400-e29b-41d4-a716-446655440001"
	memID     = "550e8400-e29b-41d4-a716-446655440002"
	pendingID = "550e8400-e29b-41d4-a716-446655440003"
	propletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
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
		assert.GreaterOrEqual(t, cpuTime[id], w.before.Seconds(), "CPU seconds of %s", id)
		assert.LessOrEqual(t, cpuTime[id], after.Seconds(), "CPU seconds of %s", id)
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

// TestPrometheusCollisionWarned runs the distribution with a prometheus exporter configured
// the obvious way, without resource_constant_labels: the collector warns at start, naming the
// fix, and the scrape shows why: the two tasks and the proplet are one series.
func TestPrometheusCollisionWarned(t *testing.T) {
	bin := binary(t)
	a := testworkload.Start(t, testworkload.Sleep, 0)
	b := testworkload.Start(t, testworkload.Hold, 64)
	promPort := freePort(t)
	cfg := fmt.Sprintf(`
receivers:
  proplet:
    proplet_id: %s
    proplet: { self: true, interval: 1s }
    tasks:
      - { id: %s, name: a, pid: %d, monitoring_profile: { interval: 1s } }
      - { id: %s, name: b, pid: %d, monitoring_profile: { interval: 1s } }
    start_jitter: 0s
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
service:
  telemetry: { metrics: { level: none } }
  pipelines:
    metrics: { receivers: [proplet], exporters: [prometheus] }
`, propletID, busyID, a.Process.Pid, memID, b.Process.Pid, promPort)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	var logs syncBuffer
	col := exec.Command(bin, "--config", cfgPath)
	col.Stdout, col.Stderr = &logs, &logs
	require.NoError(t, col.Start())
	t.Cleanup(func() {
		_ = col.Process.Kill()
		_ = col.Wait()
		if t.Failed() {
			t.Logf("collector output:\n%s", logs.String())
		}
	})

	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Everything is ready") }, 15*time.Second, 50*time.Millisecond)
	var warning string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "Tasks collide in Prometheus") {
			warning = line
		}
	}
	require.NotEmpty(t, warning, "no warning about the collision")
	assert.Contains(t, warning, "warn")
	assert.Contains(t, warning, `"exporter": "prometheus"`)
	assert.Contains(t, warning, "resource_constant_labels: { included: [propeller.task.id, propeller.task.name, propeller.proplet.id] }")

	// What the warning is about: both tasks and the proplet in one series.
	var mem []sample
	require.Eventually(t, func() bool {
		body, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort))
		if err != nil {
			return false
		}
		mem = nil
		for _, s := range parseExposition(t, body) {
			if s.name == "process_memory_usage_bytes" {
				mem = append(mem, s)
			}
		}
		return len(mem) > 0
	}, 15*time.Second, 200*time.Millisecond)
	require.Len(t, mem, 1, "three resources, one series")
	assert.NotContains(t, mem[0].labels, "propeller_task_id")
}

func TestValidateNamesTheKey(t *testing.T) {
	bin := binary(t)
	for name, tc := range map[string]struct{ cfg, want string }{
		"interval 0": {
			cfg: `
receivers:
  proplet:
    proplet_id: p
    tasks: [{ id: t, pid: 1, monitoring_profile: { interval: 0s } }]
exporters: { debug: {} }
service: { pipelines: { metrics: { receivers: [proplet], exporters: [debug] } } }
`,
			want: "receivers::proplet: tasks[0].monitoring_profile.interval: must be at least 100ms, got 0s",
		},
		"wildcard topic": {
			cfg: `
receivers: { proplet: { proplet_id: p } }
exporters:
  mqtt:
    domain_id: d
    channel_id: c
    topics: { task_metrics: ["m/{domain_id}/c/+/tasks"] }
service: { pipelines: { metrics: { receivers: [proplet], exporters: [mqtt] } } }
`,
			want: `exporters::mqtt: topics.task_metrics[0]: topic "m/{domain_id}/c/+/tasks" contains an MQTT wildcard`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tc.cfg), 0o600))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "validate", "--config", path).CombinedOutput()
			require.Error(t, err, "validate must fail: %s", out)
			assert.Contains(t, string(out), tc.want)
		})
	}
}

func TestExamplesValidate(t *testing.T) {
	bin := binary(t)
	var files []string
	for _, pattern := range []string{"../examples/*.yaml", "../examples/production/*.yaml"} {
		matched, err := filepath.Glob(pattern)
		require.NoError(t, err)
		files = append(files, matched...)
	}
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(strings.TrimPrefix(f, "../examples/"), func(t *testing.T) {
			cmd := exec.Command(bin, "validate", "--config", f)
			cmd.Env = append(os.Environ(), "PROPLET_ID=7c9e6679-7425-40de-944b-e07fc1f90ae7", "PROPLET_DOMAIN_ID=d", "PROPLET_TENANT_ID=d", "PROPLET_CHANNEL_ID=c",
				"PROPLET_ENTITY_ID=e", "PROPLET_API_KEY=k", "MQTT_USERNAME=u", "MQTT_PASSWORD=p")
			out, err := cmd.CombinedOutput()
			assert.NoError(t, err, "%s", out)
		})
	}
}

// TestPersistentQueueSurvivesRestart runs the distribution with the exporter's queue in a
// file_storage extension while no broker is up, stops it, starts a broker, and starts the
// collector again: the samples taken during the first run arrive.
func TestPersistentQueueSurvivesRestart(t *testing.T) {
	bin := binary(t)
	addr := mqtttest.FreeAddress(t)
	busy := testworkload.Start(t, testworkload.Sleep, 0)
	queueDir := t.TempDir()
	cfg := fmt.Sprintf(`
extensions:
  file_storage: { directory: %s }
receivers:
  proplet:
    proplet_id: %s
    tasks: [{ id: %s, pid: %d, monitoring_profile: { interval: 500ms } }]
    start_jitter: 0s
exporters:
  mqtt:
    endpoint: tcp://%s
    domain_id: e2e
    channel_id: persist
    topics: { task_metrics: ["m/{domain_id}/c/{channel_id}/control/proplet/task_metrics"], proplet_metrics: [] }
    connect_timeout: 500ms
    max_reconnect_interval: 1s
    sending_queue: { storage: file_storage }
    retry_on_failure: { initial_interval: 100ms, max_interval: 500ms, max_elapsed_time: 0s }
service:
  extensions: [file_storage]
  telemetry: { metrics: { level: none } }
  pipelines:
    metrics: { receivers: [proplet], exporters: [mqtt] }
`, queueDir, propletID, busyID, busy.Process.Pid, addr)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))

	runFor := func(d time.Duration) {
		var logs bytes.Buffer
		col := exec.Command(bin, "--config", cfgPath)
		col.Stdout, col.Stderr = &logs, &logs
		require.NoError(t, col.Start())
		time.Sleep(d) //nolint:forbidigo // the collector runs for this long on purpose
		require.NoError(t, col.Process.Signal(syscall.SIGTERM))
		if err := col.Wait(); err != nil {
			t.Logf("collector output:\n%s", logs.String())
		}
	}
	// First run: no broker; samples go to the persistent queue.
	firstStart := time.Now()
	runFor(3 * time.Second)
	firstEnd := time.Now()

	broker := mqtttest.Start(t, mqtttest.Options{Address: addr})
	sub := mqtttest.Subscribe(t, broker.Endpoint(), "m/e2e/c/persist/#", mqtttest.SubscriberOptions{})

	// Second run: the queued samples of the first run are published.
	done := make(chan struct{})
	go func() { runFor(6 * time.Second); close(done) }()
	sub.Wait(t, 20*time.Second, func(msgs []mqtttest.Message) bool {
		for _, m := range msgs {
			ts, err := time.Parse(time.RFC3339Nano, m.Decoded(t)["timestamp"].(string))
			if err == nil && ts.After(firstStart) && ts.Before(firstEnd) {
				return true
			}
		}
		return false
	})
	<-done
}
