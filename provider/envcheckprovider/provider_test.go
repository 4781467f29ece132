package envcheckprovider

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
}

// TestSaysWhichVariableIsEmpty resolves references as the Collector's env provider does and
// checks what is said, on standard error during validate and in the log.
func TestSaysWhichVariableIsEmpty(t *testing.T) {
	vars := map[string]string{"SET": "v", "EMPTY": "", "PROPLET_DOMAIN_ID": "old-tenant"}
	for _, tc := range []struct {
		uri   string
		value any
		said  string // "" when nothing is said
	}{
		{uri: "env:SET", value: "v"},
		{uri: "env:UNSET", value: nil, said: "Warning: UNSET is not set, so ${env:UNSET} in the configuration is empty\n"},
		{uri: "env:EMPTY", value: nil, said: "Warning: EMPTY is set but empty, so ${env:EMPTY} in the configuration is empty\n"},
		{uri: "env:UNSET:-d", value: "d"},
		{uri: "env:UNSET:-", value: ""},
		{uri: "env:EMPTY:-", value: nil},
		{uri: "env:EMPTY:-d", value: nil, said: `Warning: EMPTY is set but empty (its default "d" applies only when it is not set), so ${env:EMPTY:-d} in the configuration is empty` + "\n"},
		{uri: "env:PROPLET_TENANT_ID", value: nil, said: "Warning: PROPLET_TENANT_ID is not set, so ${env:PROPLET_TENANT_ID} in the configuration is empty (PROPLET_DOMAIN_ID, its name in older Propeller releases, is set: set PROPLET_TENANT_ID to the same value)\n"},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			for k, v := range vars {
				t.Setenv(k, v) // the wrapped provider reads the process's environment
			}
			var stderr bytes.Buffer
			core, logs := observer.New(zapcore.WarnLevel)
			p := newProvider(confmap.ProviderSettings{Logger: zap.New(core)}, &stderr, true, env(vars))
			ret, err := p.Retrieve(context.Background(), tc.uri, nil)
			require.NoError(t, err)
			raw, err := ret.AsRaw()
			require.NoError(t, err)
			assert.Equal(t, tc.value, raw, "the value is the Collector's env provider's")
			assert.Equal(t, tc.said, stderr.String())
			if tc.said == "" {
				assert.Zero(t, logs.Len())
				return
			}
			require.Equal(t, 1, logs.Len())
			assert.Equal(t, "${"+tc.uri+"}", logs.All()[0].ContextMap()["reference"])

			// Said once, however many times the variable is referenced.
			_, err = p.Retrieve(context.Background(), tc.uri, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.said, stderr.String())
			assert.Equal(t, 1, logs.Len())
		})
	}
}

// TestNotValidating: outside validate only the log says it (the Collector writes its log).
func TestNotValidating(t *testing.T) {
	var stderr bytes.Buffer
	core, logs := observer.New(zapcore.WarnLevel)
	p := newProvider(confmap.ProviderSettings{Logger: zap.New(core)}, &stderr, false, env(nil))
	_, err := p.Retrieve(context.Background(), "env:UNSET_FOR_THIS_TEST", nil)
	require.NoError(t, err)
	assert.Empty(t, stderr.String())
	assert.Equal(t, 1, logs.Len())
}

func TestErrorsAreTheCollectorsProviders(t *testing.T) {
	p := newProvider(confmap.ProviderSettings{}, nil, false, env(nil))
	_, err := p.Retrieve(context.Background(), "env:1BAD", nil)
	assert.ErrorContains(t, err, "invalid name")
	_, err = p.Retrieve(context.Background(), "file:/x", nil)
	assert.Error(t, err)
	assert.Equal(t, "env", p.Scheme())
	assert.NoError(t, p.Shutdown(context.Background()))
	assert.Equal(t, "env", NewFactory().Create(confmap.ProviderSettings{}).Scheme(), "ocb asks a provider made without a logger for its scheme")
}

func TestValidating(t *testing.T) {
	assert.True(t, Validating([]string{"validate", "--config", "a.yaml"}))
	assert.True(t, Validating([]string{"--config", "a.yaml", "validate"}))
	assert.False(t, Validating([]string{"--config", "a.yaml"}))
	assert.False(t, Validating([]string{"components"}))
	assert.False(t, Validating([]string{"--", "validate"}))
}
