package propletreceiver

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/controlplane"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

// TestExportToMQTTAlways is the replace mode of coexistence with the proplet's own task
// metrics: tasks started with export_to_mqtt false are published anyway, through the same
// admission as every other door, and every other key of the requested profile is honoured.
func TestExportToMQTTAlways(t *testing.T) {
	t.Parallel()
	start := func(t *testing.T, mode string, payload string) *registry {
		t.Helper()
		propeller := map[string]any{"domain_id": "d", "channel_id": "c"}
		if mode != "" {
			propeller["export_to_mqtt"] = mode
		}
		cfg := doorConfig(t, map[string]any{"propeller": propeller})
		require.NoError(t, confmap.Validate(cfg))
		policy, _, err := cfg.policy()
		require.NoError(t, err)
		reg := &registry{}
		require.NoError(t, controlplane.New(cfg.controlPlane(policy), reg, zap.NewNop(), nil).HandleStart(context.Background(), []byte(payload)))
		require.Len(t, reg.added, 1)
		return reg
	}
	const quiet = `{"id":"t-1","monitoring_profile":{"enabled":true,"interval":2,"collect_cpu":true,"collect_memory":true,"collect_disk_io":false,"collect_threads":true,"collect_file_descriptors":false,"export_to_mqtt":false,"retain_history":true,"history_size":7}}`
	requested := profile.Profile{
		Enabled: true, Interval: 2 * time.Second, CollectCPU: true, CollectMemory: true, CollectNetworkIO: true,
		CollectThreads: true, CollectWaits: true, RetainHistory: true, HistorySize: 7, // waits: standard's, the manager sends none
		MemoryWarning: profile.DefaultMemoryWarning, MemoryWarningInterval: time.Second, // standard's, under the inline keys
	}

	t.Run("default: as requested", func(t *testing.T) {
		spec := start(t, "", quiet).added[0]
		assert.Equal(t, requested, spec.Profile)
		assert.Equal(t, profile.Inline, spec.ProfileName)
	})
	t.Run("always", func(t *testing.T) {
		spec := start(t, ExportAlways, quiet).added[0]
		want := requested
		want.ExportToMQTT = true
		assert.Equal(t, want, spec.Profile, "only export_to_mqtt changes")
		assert.Equal(t, profile.Inline, spec.ProfileName)
	})
	t.Run("always, no profile: the default profile keeps its name", func(t *testing.T) {
		cfg := map[string]any{"propeller": map[string]any{"domain_id": "d", "channel_id": "c", "export_to_mqtt": ExportAlways}, "default_profile": "minimal"}
		c := doorConfig(t, cfg)
		require.NoError(t, confmap.Validate(c))
		policy, _, err := c.policy()
		require.NoError(t, err)
		reg := &registry{}
		require.NoError(t, controlplane.New(c.controlPlane(policy), reg, zap.NewNop(), nil).HandleStart(context.Background(), []byte(`{"id":"t-2"}`)))
		require.Len(t, reg.added, 1)
		minimal, _ := profile.Builtin("minimal")
		minimal.ExportToMQTT = true
		assert.Equal(t, "minimal", reg.added[0].ProfileName)
		assert.Equal(t, minimal, reg.added[0].Profile)
	})
	t.Run("always does not enable a disabled task", func(t *testing.T) {
		spec := start(t, ExportAlways, `{"id":"t-3","monitoring_profile":{"enabled":false,"interval":10,"export_to_mqtt":false}}`).added[0]
		assert.False(t, spec.Profile.Enabled)
	})
	t.Run("a bad value names the key and both values", func(t *testing.T) {
		cfg := doorConfig(t, map[string]any{"propeller": map[string]any{"domain_id": "d", "channel_id": "c", "export_to_mqtt": "yes"}})
		err := confmap.Validate(cfg)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `propeller.export_to_mqtt: must be as_requested (publish a started task when its profile says so) or always (publish every started task, whatever its profile's export_to_mqtt), got "yes"`)
	})
	t.Run("configuration and API tasks are not affected", func(t *testing.T) {
		cfg := doorConfig(t, map[string]any{
			"propeller": map[string]any{"domain_id": "d", "channel_id": "c", "export_to_mqtt": ExportAlways},
			"tasks":     []any{map[string]any{"id": "c-1", "pid": 1, "profile": "minimal"}},
		})
		require.NoError(t, confmap.Validate(cfg))
		policy, _, err := cfg.policy()
		require.NoError(t, err)
		spec, _, err := policy.Admit(cfg.Tasks[0].request())
		require.NoError(t, err)
		assert.False(t, spec.Profile.ExportToMQTT, "the option is about the wire's flag, the control plane's door")
	})
}
