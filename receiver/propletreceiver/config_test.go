package propletreceiver

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

func ptr[T any](v T) *T { return &v }

func loadConfig(t *testing.T, id component.ID) *Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig()
	sub, err := cm.Sub(id.String())
	require.NoError(t, err)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg.(*Config)
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	cfg := loadConfig(t, component.NewID(metadata.Type))
	require.NoError(t, confmap.Validate(cfg))
	want := &Config{
		MetricsBuilderConfig: metadata.NewDefaultMetricsBuilderConfig(),
		PropletID:            "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		ProcRoot:             "/hostfs/proc",
		CgroupRoot:           "/sys/fs/cgroup",
		DefaultProfile:       "standard",
		DaemonProfile:        "long_running_daemon",
		Profiles: map[string]profile.Overrides{
			"fast": {Interval: ptr(time.Second), HistorySize: ptr(20), CollectDiskIO: ptr(false)},
		},
		Proplet: PropletConfig{ProcessLocator: ProcessLocator{PIDFile: "/run/proplet.pid"}, Interval: 15 * time.Second},
		Tasks: []TaskConfig{
			{ID: "550e8400-e29b-41d4-a716-446655440001", Name: "compute", ProcessLocator: ProcessLocator{PID: 4242}, Profile: "fast", IncludeChildren: true},
			{
				ID: "550e8400-e29b-41d4-a716-446655440002", Name: "api", ProcessLocator: ProcessLocator{PIDFile: "/run/api.pid"},
				MonitoringProfile: &profile.Overrides{Interval: ptr(5 * time.Second), CollectNetworkIO: ptr(true), HistorySize: ptr(50)},
			},
		},
		Discovery: []DiscoveryRule{{
			Match:   procmatch.Spec{Executable: "^wasmtime$", Cmdline: "TASK_ID=(?P<task_id>[0-9a-f-]{36})", ParentPIDFile: "/run/proplet.pid"},
			Profile: "standard",
		}},
		DiscoveryInterval: 2 * time.Second,
		MaxConcurrency:    4,
		StartJitter:       500 * time.Millisecond,
		MaxTasks:          10_000,
		MaxPendingTasks:   10_000,
		PendingTimeout:    10 * time.Minute,
		ProcessEvents:     monitor.EventsOff,
		API:               configoptional.Default(defaultAPIConfig()),
		Propeller:         configoptional.Default(defaultPropellerConfig()),
	}
	assert.Equal(t, want, cfg)

	mc, _, err := cfg.monitorConfig(nopLogger())
	require.NoError(t, err)
	require.Len(t, mc.Tasks, 2)
	assert.Equal(t, "fast", mc.Tasks[0].ProfileName)
	assert.Equal(t, time.Second, mc.Tasks[0].Profile.Interval)
	assert.False(t, mc.Tasks[0].Profile.CollectDiskIO)
	assert.True(t, mc.Tasks[0].Profile.CollectCPU, "keys not set inherit standard")
	assert.Equal(t, "inline", mc.Tasks[1].ProfileName)
	assert.Equal(t, 50, mc.Tasks[1].Profile.HistorySize)
}

func TestValidateNamesKeysAndValues(t *testing.T) {
	t.Parallel()
	cfg := loadConfig(t, component.MustNewIDWithName("proplet", "invalid"))
	err := confmap.Validate(cfg)
	require.Error(t, err)
	for _, want := range []string{
		"proplet_id: must be set",
		"profiles.broken.interval: must be at least 100ms, got 0s",
		"profiles.broken.history_size: must not be negative, got -1",
		"proplet: set only one of pid, pid_file, match and self",
		"tasks[0]: one of pid, pid_file, match, in_process or cgroup is required",
		`tasks[1].id: "a" is also the id of tasks[0]`,
		`tasks[1].profile: unknown profile "nonexistent"`,
		`tasks[2].match.cmdline: invalid regular expression "("`,
		"discovery[0].match: needs a (?P<task_id>...) named capture",
		`propeller.endpoint: scheme "http" is not one of tcp, mqtt, ssl, tls, mqtts, ws, wss`,
	} {
		assert.ErrorContains(t, err, want)
	}
}

func TestValidateDefaults(t *testing.T) {
	t.Parallel()
	cfg := createDefaultConfig().(*Config)
	assert.ErrorContains(t, confmap.Validate(cfg), "proplet_id: must be set")
	cfg.PropletID = "p"
	assert.NoError(t, confmap.Validate(cfg))

	cfg.Proplet.Interval = 50 * time.Millisecond
	cfg.DiscoveryInterval = 0
	cfg.MaxConcurrency = 0
	cfg.ProcessEvents = "netlink"
	err := confmap.Validate(cfg)
	assert.ErrorContains(t, err, `process_events: must be auto, events or scan, got "netlink"`)
	assert.ErrorContains(t, err, "proplet.interval: must be at least 100ms, got 50ms")
	assert.ErrorContains(t, err, "discovery_interval: must be at least 100ms, got 0s")
	assert.ErrorContains(t, err, "max_concurrency: must be between 1 and 1024, got 0")
}

func TestPropletIntervalFromEnvironment(t *testing.T) {
	t.Setenv("PROPLET_METRICS_INTERVAL", "3")
	assert.Equal(t, 3*time.Second, createDefaultConfig().(*Config).Proplet.Interval)
	t.Setenv("PROPLET_METRICS_INTERVAL", "nonsense")
	assert.Equal(t, 10*time.Second, createDefaultConfig().(*Config).Proplet.Interval)
}

func TestHistorySizeIsCapped(t *testing.T) {
	t.Parallel()
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "p"
	cfg.Tasks = []TaskConfig{{ID: "t", ProcessLocator: ProcessLocator{PID: 1}, MonitoringProfile: &profile.Overrides{HistorySize: ptr(1 << 30)}}}
	require.NoError(t, confmap.Validate(cfg))
	mc, _, err := cfg.monitorConfig(nopLogger())
	require.NoError(t, err)
	assert.Equal(t, profile.MaxHistorySize, mc.Tasks[0].Profile.HistorySize)
}

// TestOwnershipDefaults: a proplet rule without owner requires the collector's own user; a
// started task must be a child of the bound proplet; with no proplet configured, a started
// task's rule requires the collector's user itself.
func TestOwnershipDefaults(t *testing.T) {
	self := "0"
	if uid := os.Geteuid(); uid != 0 {
		self = "0," + strconv.Itoa(uid)
	}
	pl := PropletConfig{ProcessLocator: ProcessLocator{Match: &procmatch.Spec{Executable: "^proplet$"}}}
	assert.Equal(t, &procmatch.Spec{Executable: "^proplet$", Owner: self}, pl.Rule())
	assert.Empty(t, pl.Match.Owner, "the configuration is not changed")
	pl.Match.Owner = "propeller"
	assert.Equal(t, "propeller", pl.Rule().Owner, "match.owner names the proplet's own user")

	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Proplet.Match = &procmatch.Spec{Executable: "^proplet$"}
	cfg.Propeller = configoptional.Some(PropellerConfig{DomainID: "d", ChannelID: "c"})
	policy, _, err := cfg.policy()
	require.NoError(t, err)
	assert.Equal(t, procmatch.Spec{Executable: "^proplet$", Owner: self, Proplet: true}, *cfg.controlPlane(policy).Parent.Parent)

	cfg.Proplet.Match = nil
	cp := cfg.controlPlane(policy)
	assert.Equal(t, procmatch.Spec{Cmdline: "{task_id}", Owner: self}, cp.TaskMatch, "no proplet: the task's own owner")
	assert.True(t, cp.Parent.IsZero())
}
