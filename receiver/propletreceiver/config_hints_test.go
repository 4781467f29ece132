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

// TestBareNumberDurations: every duration key a user may write as a bare number (Propeller's
// own configuration counts seconds) says that the number was read as nanoseconds and what to
// write, once.
func TestBareNumberDurations(t *testing.T) {
	t.Parallel()
	lines := validateYAML(t, `
proplet_id: p
profiles:
  fast: { interval: 10 }
proplet: { self: true, interval: 10 }
discovery_interval: 1
start_jitter: 500
pending_timeout: 600
tasks:
  - { id: a, pid: 1, monitoring_profile: { interval: 5 } }
discovery:
  - { match: { cmdline: 'x-(?P<task_id>\w+)' }, monitoring_profile: { interval: 2 } }
propeller:
  domain_id: d
  channel_id: c
  keep_alive: 30
  connect_timeout: 5
  max_reconnect_interval: 60
`)
	assert.ElementsMatch(t, []string{
		"profiles.fast.interval: must be at least 100ms, got 10ns (a number without a unit is nanoseconds: write 10s)",
		"proplet.interval: must be at least 100ms, got 10ns (a number without a unit is nanoseconds: write 10s)",
		"discovery_interval: must be at least 100ms, got 1ns (a number without a unit is nanoseconds: write 1s)",
		"start_jitter: must be 0 or at least 1ms, got 500ns (a number without a unit is nanoseconds: write 500s)",
		"pending_timeout: must be 0 (keep pending tasks) or at least 1ms, got 600ns (a number without a unit is nanoseconds: write 600s)",
		"tasks[0].monitoring_profile.interval: must be at least 100ms, got 5ns (a number without a unit is nanoseconds: write 5s)",
		"discovery[0].monitoring_profile.interval: must be at least 100ms, got 2ns (a number without a unit is nanoseconds: write 2s)",
		"propeller.keep_alive: must be at least 1s (brokers reject 0), got 30ns (a number without a unit is nanoseconds: write 30s)",
		"propeller.connect_timeout: must be at least 1ms, got 5ns (a number without a unit is nanoseconds: write 5s)",
		"propeller.max_reconnect_interval: must be at least 1s, got 60ns (a number without a unit is nanoseconds: write 60s)",
	}, lines)

	assert.Empty(t, validateYAML(t, `
proplet_id: p
profiles:
  fast: { interval: 10s }
proplet: { self: true, interval: 10s }
discovery_interval: 1s
start_jitter: 0
pending_timeout: 0
`), "the same keys with units (and 0 where 0 means off) are valid")
}

// TestSchemelessPropellerEndpoint: propeller.endpoint without a scheme says to add tcp://, once.
func TestSchemelessPropellerEndpoint(t *testing.T) {
	t.Parallel()
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

// TestPropellerIDsSaidOnce: a domain_id that cannot be part of a topic is one error in the
// propeller block, as in the exporter.
func TestPropellerIDsSaidOnce(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{`propeller.domain_id: must be set, at most 36 bytes, without '/', '+', '#', control characters or noncharacters ('/', '+' or '#'), got "d/x"`},
		validateYAML(t, `
proplet_id: p
propeller: { domain_id: d/x, channel_id: c }
`))
}

// decodeLines decodes a configuration as the Collector does (Unmarshal, then Validate when it
// decoded) and returns the lines of the first error.
func decodeLines(t *testing.T, text string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	cm, err := confmaptest.LoadConf(path)
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig()
	if err = cm.Unmarshal(cfg); err == nil {
		err = confmap.Validate(cfg)
	}
	if err == nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		// The Collector's decoder prefixes the first line of a component's own error with
		// the (empty) name of the field it decoded.
		if l = strings.TrimPrefix(strings.TrimSpace(l), "'' "); l != "" && l != "decoding failed due to the following error(s):" {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestUnknownKeysAndBadValuesAtOnce: a misspelt key names the key meant, and the values that
// are wrong as well are reported in the same error, not after the typo is fixed.
func TestUnknownKeysAndBadValuesAtOnce(t *testing.T) {
	lines := decodeLines(t, `
proplet_id: p
defualt_profile: standard
discovery_interval: 1
proplet: { self: true, intervall: 10s }
tasks:
  - { id: a, pdi: 1 }
propeller: { domain_id: d, chanel_id: c }
api: { endpoint: "localhost:0", bearer_tokn: x }
zzz_not_a_key: 1
`)
	assert.Subset(t, lines, []string{
		`defualt_profile: unknown key; did you mean "default_profile"?`,
		`proplet.intervall: unknown key; did you mean "interval"?`,
		`tasks[0].pdi: unknown key; did you mean "pid"?`,
		`propeller.chanel_id: unknown key; did you mean "channel_id"?`,
		`api.bearer_tokn: unknown key; did you mean "bearer_token"?`,
		`zzz_not_a_key: unknown key`,
		"discovery_interval: must be at least 100ms, got 1ns (a number without a unit is nanoseconds: write 1s)",
	}, "every mistake in one error:\n%s", strings.Join(lines, "\n"))
	n := 0
	for _, l := range lines {
		if strings.Contains(l, "bearer_tokn") {
			n++
		}
	}
	assert.Equal(t, 1, n, "the api block's own check does not say it again:\n%s", strings.Join(lines, "\n"))

	assert.Equal(t, []string{
		`defualt_profile: unknown key; did you mean "default_profile"?`,
		`'max_concurrency' expected type 'int', got unconvertible type 'string'`,
	}, decodeLines(t, "proplet_id: p\ndefualt_profile: standard\nmax_concurrency: many\n"),
		"a value that cannot be decoded is reported beside the unknown key")
	assert.Equal(t, []string{`metrics.process.cpu.tme: unknown key; did you mean "process.cpu.time"?`},
		decodeLines(t, "proplet_id: p\nmetrics: { process.cpu.tme: { enabled: true } }\n"), "metric names are keys too")
	assert.Empty(t, decodeLines(t, "proplet_id: p\ndefault_profile: standard\nproplet: { self: true }\n"), "a correct configuration decodes")
}
