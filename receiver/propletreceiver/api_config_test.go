package propletreceiver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/taskapi"
)

// TestAPIDefaultsBoundConnections: the task API's defaults bound what a client without a
// token can hold, and the keys decode beside the server's.
func TestAPIDefaultsBoundConnections(t *testing.T) {
	def := defaultAPIConfig()
	assert.Equal(t, taskapi.DefaultMaxConnections, def.MaxConnections)
	assert.Equal(t, 5*time.Second, def.Server.ReadHeaderTimeout)
	assert.Equal(t, 10*time.Second, def.Server.ReadTimeout)

	var api APIConfig = defaultAPIConfig()
	conf := confmap.NewFromStringMap(map[string]any{"endpoint": "localhost:9999", "max_connections": 8, "read_header_timeout": "2s"})
	require.NoError(t, conf.Unmarshal(&api))
	assert.Equal(t, 8, api.MaxConnections)
	assert.Equal(t, 2*time.Second, api.Server.ReadHeaderTimeout)
	//lint:ignore SA1019 the deprecated field is the one ToServer reads after decoding
	assert.Equal(t, 30*time.Second, api.Server.IdleTimeout, "the default idle timeout survives decoding")

	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "p"
	api.MaxConnections, api.Server.ReadHeaderTimeout = 0, 0
	cfg.API = configoptional.Some(api)
	err := confmap.Validate(cfg)
	assert.ErrorContains(t, err, "api.max_connections: must be between 1 and 4096, got 0")
	assert.ErrorContains(t, err, "api.read_header_timeout: must be positive")
}

// TestTaskCgroupMustLieUnderTheCgroupRoot: a configured task's cgroup outside cgroup_root is a
// configuration error naming the key and the value.
func TestTaskCgroupMustLieUnderTheCgroupRoot(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "p"
	cfg.CgroupRoot = t.TempDir()
	cfg.Tasks = []TaskConfig{{ID: "a", Cgroup: "/etc"}, {ID: "b", Cgroup: "propeller/b"}}
	err := confmap.Validate(cfg)
	require.Error(t, err)
	assert.ErrorContains(t, err, `tasks[0].cgroup: must lie under the cgroup mount `+cfg.CgroupRoot+`, got "/etc"`)
	assert.NotContains(t, err.Error(), "tasks[1]")
}
