//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

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
