//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

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
