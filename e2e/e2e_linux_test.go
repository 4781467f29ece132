//go:build linux

// Package e2e tests the otelcol-propeller distribution as users run it: the binary built by
// ocb, a real broker, real workloads, the Prometheus endpoint, and SIGTERM.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	bin := filepath.Join(root, "_build", "otelcol-propeller")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "tool", "-modfile=tools/go.mod", "builder", "--config", "builder-config.yaml")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building the distribution: %s", out)
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
	propletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
)

func TestDistribution(t *testing.T) {
	bin := binary(t)
	broker := mqtttest.Start(t, mqtttest.Options{})
	sub := mqtttest.Subscribe(t, broker.Endpoint(), "m/e2e/c/e2e/#", mqtttest.SubscriberOptions{})
	busy := testworkload.Start(t, testworkload.Burn, 0)
	mem := testworkload.Start(t, testworkload.Hold, 256)
	promPort := freePort(t)

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
    start_jitter: 0s
exporters:
  mqtt:
    endpoint: %s
    domain_id: e2e
    channel_id: e2e
  prometheus:
    endpoint: 127.0.0.1:%d
    resource_to_telemetry_conversion: { enabled: true }
service:
  telemetry: { metrics: { level: none } }
  pipelines:
    metrics: { receivers: [proplet], exporters: [mqtt, prometheus] }
`, propletID, busyID, busy.Process.Pid, memID, mem.Process.Pid, broker.Endpoint(), promPort)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))

	var logs bytes.Buffer
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
	assert.InDelta(t, 100, busyCPU, 15, "a busy loop is one core")
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

	// The Prometheus endpoint serves the same tasks.
	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, busyID) && strings.Contains(body, memID)
	}, 15*time.Second, 200*time.Millisecond)
	assert.Contains(t, body, "process_cpu_time_seconds_total{")
	assert.Contains(t, body, `propeller_task_name="busy"`)

	// SIGTERM: a clean exit within 5 s.
	start := time.Now()
	require.NoError(t, col.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		assert.NoError(t, err, "clean exit")
		assert.Less(t, time.Since(start), 5*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("the collector did not exit within 5 s of SIGTERM")
	}
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
	files, err := filepath.Glob("../examples/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cmd := exec.Command(bin, "validate", "--config", f)
			cmd.Env = append(os.Environ(), "PROPLET_ID=7c9e6679-7425-40de-944b-e07fc1f90ae7", "PROPLET_DOMAIN_ID=d", "PROPLET_CHANNEL_ID=c",
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
