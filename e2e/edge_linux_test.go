//go:build linux

package e2e

import (
	"fmt"
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

// edgeBinary is the edge build (make edge), built with ocb when it is not there.
func edgeBinary(t *testing.T) string {
	t.Helper()
	return built(t, "builder-config-edge.yaml", filepath.Join("_build-edge", "otelcol-propeller-edge"))
}

// TestEdgeBuild runs the edge build with examples/edge.yaml (overridden only where a test must:
// the proplet process, a task by pid, ports, the queue directory): a task's Propeller message
// arrives over MQTT, the task's series are served to Prometheus, and SIGTERM is a clean stop,
// all after the pagetrim extension paged the executable out (with no delay here).
// It also checks what the build contains and that a configuration asking for internal metrics
// is refused by name.
func TestEdgeBuild(t *testing.T) {
	bin := edgeBinary(t)

	out, err := exec.Command(bin, "components").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, name := range []string{"proplet", "mqtt", "prometheus", "batch", "memory_limiter", "health_check", "file_storage", "pagetrim"} {
		assert.Contains(t, string(out), "- name: "+name+"\n", "the edge build has %s", name)
	}
	for _, name := range []string{"otlp", "debug", "hostmetrics", "host_metrics", "pprof", "transform"} {
		assert.NotContains(t, string(out), "- name: "+name+"\n", "the edge build has no %s", name)
	}

	env := propletEnv("PROPLET_TENANT_ID=tenant-edge", "PROPLET_CHANNEL_ID=channel-edge", "PROPLET_ENTITY_ID="+propletID, "PROPLET_API_KEY=key")
	val := exec.Command(bin, "validate", "--config", "../examples/agent.yaml")
	val.Env = env
	out, err = val.CombinedOutput()
	require.Error(t, err, "examples/agent.yaml asks for internal metrics: %s", out)
	assert.Contains(t, string(out), "readers")

	broker := mqtttest.Start(t, mqtttest.Options{})
	sub := mqtttest.Subscribe(t, broker.Endpoint(), "m/tenant-edge/c/channel-edge/#", mqtttest.SubscriberOptions{})
	task := testworkload.Start(t, testworkload.Sleep, 0)
	promPort := freePort(t)
	override := fmt.Sprintf(`
extensions:
  health_check: { endpoint: 127.0.0.1:%d }
  file_storage: { directory: %s }
  pagetrim: { delay: 0s }
receivers:
  proplet:
    proplet: { match: null, pid: %d }
    tasks: [{ id: %s, name: edge, pid: %d, monitoring_profile: { interval: 1s } }]
    start_jitter: 0s
exporters:
  prometheus: { endpoint: 127.0.0.1:%d }
`, freePort(t), t.TempDir(), os.Getpid(), busyID, task.Process.Pid, promPort)
	overridePath := filepath.Join(t.TempDir(), "override.yaml")
	require.NoError(t, os.WriteFile(overridePath, []byte(override), 0o600))

	var logs syncBuffer
	col := exec.Command(bin, "--config", "../examples/edge.yaml", "--config", overridePath)
	col.Env = append(env, "PROPLET_MQTT_ADDRESS="+broker.Endpoint(), "PROPLET_MQTT_QOS=1", "GOGC=50")
	col.Stdout, col.Stderr = &logs, &logs
	require.NoError(t, col.Start())
	t.Cleanup(func() {
		_ = col.Process.Kill()
		_ = col.Wait()
		if t.Failed() {
			t.Logf("collector output:\n%s", logs.String())
		}
	})

	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "Paged out the executable's start-up pages")
	}, 30*time.Second, 50*time.Millisecond, "the pagetrim extension pages out once the pipelines run")
	before := len(sub.Messages())

	sub.Wait(t, 30*time.Second, func(msgs []mqtttest.Message) bool {
		for _, m := range msgs[before:] { // published after the page-out
			if strings.HasSuffix(m.Topic, "/control/proplet/task_metrics") && m.Decoded(t)["task_id"] == busyID {
				return true
			}
		}
		return false
	})
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort)
	require.Eventually(t, func() bool {
		body, err := scrape(url)
		return err == nil && strings.Contains(body, busyID)
	}, 30*time.Second, 200*time.Millisecond, "the task's series on the Prometheus endpoint")

	require.NoError(t, col.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- col.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "exit on SIGTERM")
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10s of SIGTERM")
	}
	assert.NotContains(t, logs.String(), "\terror\t")
}
