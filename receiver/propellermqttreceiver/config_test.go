package propellermqttreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/fleet"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	def := createDefaultConfig().(*Config)
	sub, err := cm.Sub("propeller_mqtt")
	require.NoError(t, err)
	require.NoError(t, sub.Unmarshal(def))
	require.NoError(t, def.Validate())
	assert.Equal(t, "gateway-1", def.ClientID)
	assert.Equal(t, DefaultTopics, def.Topics)
	assert.True(t, def.RepairRustProplet)
	assert.Equal(t, "tcp://127.0.0.1:1883", def.Endpoint)

	custom := createDefaultConfig().(*Config)
	sub, err = cm.Sub("propeller_mqtt/custom")
	require.NoError(t, err)
	require.NoError(t, sub.Unmarshal(custom))
	require.NoError(t, custom.Validate())
	assert.Equal(t, "ssl://broker.example:8883", custom.Endpoint)
	assert.Equal(t, "gateway-entity", custom.Username)
	assert.Equal(t, "secret", string(custom.Password))
	assert.Equal(t, []string{"m/d1/c/+/control/proplet/task_metrics"}, custom.Topics)
	assert.Equal(t, []string{"$share/fleet/m/d1/c/+/control/proplet/task_metrics"}, custom.filters())
	assert.False(t, custom.RepairRustProplet)
	assert.Equal(t, 24*time.Hour, custom.MaxAge)
	assert.Equal(t, 5*time.Minute, custom.MaxAhead)
	assert.Equal(t, fleet.Limits{MaxTasks: 50000, MaxProplets: 5000, Expiration: 10 * time.Minute}, custom.limits())
	assert.Equal(t, fleet.DefaultLimits(), def.limits())
}

func TestValidateNamesKeyAndValue(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"no client id":     {func(c *Config) { c.ClientID = "" }, "client_id: must be set"},
		"bad session":      {func(c *Config) { c.Session = "x" }, `session: must be prefer_persistent, persistent or clean, got "x"`},
		"no topics":        {func(c *Config) { c.Topics = nil }, "topics: must list"},
		"bad filter":       {func(c *Config) { c.Topics = []string{"m/#/x"} }, `topics[0]: not a topic filter of Propeller ids: "m/#/x" has # before its last level`},
		"share in filter":  {func(c *Config) { c.Topics = []string{"$share/g/m/+"} }, "topics[0]: \"$share/g/m/+\": write the filter alone"},
		"bad group":        {func(c *Config) { c.SharedGroup = "a/b" }, `shared_group: "a/b"`},
		"no max age":       {func(c *Config) { c.MaxAge = 0 }, "max_age: must be positive"},
		"negative ahead":   {func(c *Config) { c.MaxAhead = -time.Second }, "max_ahead: must be positive"},
		"no task cap":      {func(c *Config) { c.MaxTasks = 0 }, "max_tasks: must be positive, got 0"},
		"no proplet cap":   {func(c *Config) { c.MaxProplets = -1 }, "max_proplets: must be positive, got -1"},
		"short expiration": {func(c *Config) { c.TrackingExpiration = time.Millisecond }, "tracking_expiration: must be at least 1s, got 1ms"},
		"bad domain level": {func(c *Config) { c.Topics = []string{"m/d\x01/c/+/control/proplet/metrics"} }, "level 2 (\"d\\x01\"): control character"},
		"endpoint, shared": {func(c *Config) { c.Endpoint = "127.0.0.1:1883" }, "endpoint: \"127.0.0.1:1883\" has no scheme"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.ClientID = "g"
			tt.mutate(cfg)
			err := cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
