package propletreceiver

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// decodeYAML decodes a receiver configuration written as YAML, as the Collector does.
func decodeYAML(t *testing.T, text string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	cm, err := confmaptest.LoadConf(path)
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	if err := cm.Unmarshal(cfg); err != nil {
		return cfg, err
	}
	return cfg, confmap.Validate(cfg)
}

// TestMemoryWarningKeys: the profile keys of the memory warning decode, apply over the
// profile's defaults, and refuse wrong values naming the key and saying what to write.
func TestMemoryWarningKeys(t *testing.T) {
	t.Parallel()
	cfg, err := decodeYAML(t, `
proplet_id: p
profiles:
  near: { interval: 5s, memory_limit: 67108864, memory_warning: 0.8, memory_warning_interval: 500ms }
  fast: { interval: 500ms }
tasks:
  - { id: a, pid: 1, profile: near }
  - { id: b, pid: 2, profile: fast }
  - { id: c, pid: 3, monitoring_profile: { memory_warning: 0 } }
`)
	require.NoError(t, err)
	mc, _, err := cfg.monitorConfig(nopLogger())
	require.NoError(t, err)
	near := mc.Tasks[0].Profile
	assert.Equal(t, uint64(64<<20), near.MemoryLimit)
	assert.Equal(t, 0.8, near.MemoryWarning)
	assert.Equal(t, 500*time.Millisecond, near.MemoryWarningInterval)
	fast := mc.Tasks[1].Profile
	assert.Equal(t, 0.9, fast.MemoryWarning, "the default share")
	assert.Equal(t, 500*time.Millisecond, fast.MemoryWarningInterval, "the default 1s follows a shorter interval")
	assert.Zero(t, fast.MemoryLimit, "the cgroup's limit")
	assert.Zero(t, mc.Tasks[2].Profile.MemoryWarning, "off")

	for text, want := range map[string]string{
		`{ memory_limit: 64MiB }`:                       `'profiles[bad].memory_limit' must be a whole number of bytes (67108864 for 64 MiB), got "64MiB"`,
		`{ memory_warning: 1.5 }`:                       "profiles.bad.memory_warning: must be a share of the memory limit, at least 0 (off) and below 1 (0.9 is 90%), got 1.5",
		`{ memory_warning: 90 }`:                        "profiles.bad.memory_warning: must be a share of the memory limit, at least 0 (off) and below 1 (0.9 is 90%), got 90",
		`{ memory_warning_interval: 20s }`:              "profiles.bad.memory_warning_interval: must be at most interval (10s), got 20s",
		`{ memory_warning_interval: 0s }`:               "profiles.bad.memory_warning_interval: must be at least 100ms, got 0s",
		`{ memory_warning_interval: 1 }`:                "profiles.bad.memory_warning_interval: must be at least 100ms, got 1ns (a number without a unit is nanoseconds: write 1s)",
		`{ interval: 2s, memory_warning_interval: 3s }`: "profiles.bad.memory_warning_interval: must be at most interval (2s), got 3s",
	} {
		t.Run(text, func(t *testing.T) {
			_, err := decodeYAML(t, "proplet_id: p\nprofiles:\n  bad: "+text+"\n")
			require.Error(t, err)
			assert.Contains(t, err.Error(), want)
		})
	}
	_, err = decodeYAML(t, "proplet_id: p\nprofiles:\n  bad: { memory_limit: -1 }\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "'profiles[bad].memory_limit' cannot parse value as 'profile.Bytes': -1 overflows uint")
}
