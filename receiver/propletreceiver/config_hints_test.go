package propletreceiver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// validateYAML decodes a proplet receiver configuration from YAML as the Collector does
// (confmap: a bare number for a duration is nanoseconds) and returns the lines of its
// validation error.
func validateYAML(t *testing.T, text string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	cm, err := confmaptest.LoadConf(path)
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig()
	require.NoError(t, cm.Unmarshal(cfg))
	err = confmap.Validate(cfg)
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// TestSchemelessPropellerEndpoint: propeller.endpoint without a scheme says to add tcp://, once.
func TestSchemelessPropellerEndpoint(t *testing.T) {
	assert.Equal(t, []string{`propeller.endpoint: "127.0.0.1:1883" has no scheme: write tcp://127.0.0.1:1883 (or ssl:// for a TLS broker)`},
		validateYAML(t, `
proplet_id: p
propeller: { endpoint: "127.0.0.1:1883", domain_id: d, channel_id: c }
`))
	assert.Equal(t, []string{`propeller.endpoint: "localhost:1883" has no scheme: write tcp://localhost:1883 (or ssl:// for a TLS broker)`},
		validateYAML(t, `
proplet_id: p
propeller: { endpoint: "localhost:1883", domain_id: d, channel_id: c }
`), "not an unknown scheme \"localhost\" and a missing host as well")
}
