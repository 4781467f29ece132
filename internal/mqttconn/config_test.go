package mqttconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// exporterLike and receiverLike embed ClientConfig the two ways the components do: squashed
// into the top level, and under a key.
type exporterLike struct {
	ClientConfig `mapstructure:",squash"`
	QoS          byte `mapstructure:"qos"`
}

type receiverLike struct {
	Propeller ClientConfig `mapstructure:"propeller"`
}

func TestConfigDecodesEveryKeyThroughConfmap(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	want := DefaultClientConfig()
	want.Endpoint = "mqtts://broker.example.com:8883"
	want.ClientID = "proplet-7c9e6679"
	want.Username = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	want.Password = "s3cret-api-key"
	want.TLS.CAFile = "/etc/propeller/ca.pem"
	want.TLS.CertFile, want.TLS.KeyFile = "/etc/propeller/client.pem", "/etc/propeller/client-key.pem"
	want.TLS.InsecureSkipVerify = true
	want.TLS.ServerName = "broker.internal"
	want.KeepAlive, want.ConnectTimeout, want.MaxReconnectInterval = 45*time.Second, 7*time.Second, time.Minute

	top, err := cm.Sub("")
	require.NoError(t, err)
	top.Delete("propeller")
	exp := exporterLike{ClientConfig: DefaultClientConfig(), QoS: 1}
	require.NoError(t, top.Unmarshal(&exp))
	assert.Equal(t, want, exp.ClientConfig, "squashed: every key, credentials and tls included")
	assert.Equal(t, byte(2), exp.QoS, "the embedding struct's own keys still decode (an Unmarshal method of ClientConfig would take them over)")
	require.NoError(t, exp.Check(""))

	sub, err := cm.Sub("propeller")
	require.NoError(t, err)
	rcv := receiverLike{Propeller: DefaultClientConfig()}
	require.NoError(t, sub.Unmarshal(&rcv.Propeller))
	wantRcv := DefaultClientConfig()
	wantRcv.Endpoint = "wss://manager.example.com/mqtt"
	wantRcv.Username, wantRcv.Password = "proplet", "other-key"
	wantRcv.TLS.CAFile = "/etc/propeller/ca.pem"
	assert.Equal(t, wantRcv, rcv.Propeller, "keys left out keep their defaults")
	require.NoError(t, rcv.Propeller.Check("propeller."))
	assert.Equal(t, "[REDACTED]", rcv.Propeller.Password.String(), "the password never prints")
}

func TestClientConfigHasNoUnmarshal(t *testing.T) {
	// Promoted through a squashed embedding, it would make confmap decode only ClientConfig.
	assert.NotImplements(t, (*confmap.Unmarshaler)(nil), &ClientConfig{})
}

func TestCheckNamesEveryKeyWithItsPrefix(t *testing.T) {
	tests := map[string]struct {
		change func(*ClientConfig)
		want   string // after the prefix
	}{
		"no endpoint":      {func(c *ClientConfig) { c.Endpoint = "" }, "endpoint: must be set"},
		"unknown scheme":   {func(c *ClientConfig) { c.Endpoint = "http://broker" }, `endpoint: scheme "http" is not one of tcp, mqtt, ssl, tls, mqtts, ws, wss`},
		"no host":          {func(c *ClientConfig) { c.Endpoint = "tcp://" }, `endpoint: "tcp://" has no host`},
		"tls without TLS":  {func(c *ClientConfig) { c.TLS.CAFile = "/ca.pem" }, `tls.ca_file: is set but {prefix}endpoint "tcp://127.0.0.1:1883" does not use TLS`},
		"client cert":      {func(c *ClientConfig) { c.TLS.CertPem = "x" }, "tls.cert_pem: is set but"},
		"skip verify":      {func(c *ClientConfig) { c.TLS.InsecureSkipVerify = true }, "tls.insecure_skip_verify: is set but"},
		"zero keep-alive":  {func(c *ClientConfig) { c.KeepAlive = 0 }, "keep_alive: must be at least 1s (brokers reject 0), got 0s"},
		"zero timeout":     {func(c *ClientConfig) { c.ConnectTimeout = 0 }, "connect_timeout: must be positive, got 0s"},
		"short reconnect":  {func(c *ClientConfig) { c.MaxReconnectInterval = 500 * time.Millisecond }, "max_reconnect_interval: must be at least 1s, got 500ms"},
		"negative timeout": {func(c *ClientConfig) { c.ConnectTimeout = -time.Second }, "connect_timeout: must be positive, got -1s"},
		"no scheme":        {func(c *ClientConfig) { c.Endpoint = "127.0.0.1:1883" }, `endpoint: "127.0.0.1:1883" has no scheme: write tcp://127.0.0.1:1883 (or ssl:// for a TLS broker)`},
		"no scheme, name":  {func(c *ClientConfig) { c.Endpoint = "localhost:1883" }, `endpoint: "localhost:1883" has no scheme: write tcp://localhost:1883`},
		"host alone":       {func(c *ClientConfig) { c.Endpoint = "broker.example.com" }, `endpoint: "broker.example.com" has no scheme: write tcp://broker.example.com`},
		"bare keep-alive":  {func(c *ClientConfig) { c.KeepAlive = 30 }, "keep_alive: must be at least 1s (brokers reject 0), got 30ns (a number without a unit is nanoseconds: write 30s)"},
		"bare timeout":     {func(c *ClientConfig) { c.ConnectTimeout = 5 }, "connect_timeout: must be at least 1ms, got 5ns (a number without a unit is nanoseconds: write 5s)"},
		"bare reconnect":   {func(c *ClientConfig) { c.MaxReconnectInterval = 60 }, "max_reconnect_interval: must be at least 1s, got 60ns (a number without a unit is nanoseconds: write 60s)"},
		"protocol":         {func(c *ClientConfig) { c.ProtocolVersion = "3" }, `protocol_version: must be "3.1.1" or "5", got "3"`},
		"small packets":    {func(c *ClientConfig) { c.MaxPacketSize = 100 }, "max_packet_size: must be from 1024 to 268435455 bytes, got 100"},
	}
	for name, tt := range tests {
		for _, prefix := range []string{"", "propeller."} {
			t.Run(name+"/"+prefix, func(t *testing.T) {
				c := DefaultClientConfig()
				tt.change(&c)
				err := c.Check(prefix)
				require.Error(t, err)
				want := regexp.MustCompile(`\{prefix\}`).ReplaceAllLiteralString(tt.want, prefix)
				assert.ErrorContains(t, err, prefix+want)
				for _, line := range regexp.MustCompile("\n").Split(err.Error(), -1) {
					assert.Regexp(t, "^"+regexp.QuoteMeta(prefix)+`(endpoint|tls\.[a-z_.]+|keep_alive|connect_timeout|max_reconnect_interval|protocol_version|max_packet_size): `, line)
				}
			})
		}
	}

	c := DefaultClientConfig()
	assert.NoError(t, c.Check(""), "the defaults are valid")
	c.Endpoint, c.TLS.CAFile = "ssl://broker:8883", "/ca.pem"
	assert.NoError(t, c.Check(""), "tls with a TLS endpoint")
	c = ClientConfig{Endpoint: "http://"}
	assert.Len(t, regexp.MustCompile("\n").Split(c.Check("p.").Error(), -1), 7, "every problem is reported at once")
}

// TestSchemelessEndpointIsOneError: a host:port without a scheme is one error that says to add
// tcp://, not url.Parse's "first path segment in URL cannot contain colon", nor an unknown
// scheme "localhost" and a missing host for the same mistake.
func TestSchemelessEndpointIsOneError(t *testing.T) {
	for _, endpoint := range []string{"127.0.0.1:1883", "localhost:1883", "[::1]:1883", "broker"} {
		t.Run(endpoint, func(t *testing.T) {
			c := DefaultClientConfig()
			c.Endpoint = endpoint
			err := c.Check("propeller.")
			require.Error(t, err)
			assert.Equal(t, fmt.Sprintf("propeller.endpoint: %q has no scheme: write tcp://%s (or ssl:// for a TLS broker)", endpoint, endpoint), err.Error())
			c.Endpoint = "tcp://" + endpoint
			assert.NoError(t, c.Check("propeller."), "the suggested endpoint is valid")
		})
	}
}

func TestPrepare(t *testing.T) {
	ctx := context.Background()

	t.Run("plain", func(t *testing.T) {
		c := DefaultClientConfig()
		p, err := c.Prepare(ctx, "otelcol-propeller-")
		require.NoError(t, err)
		assert.Nil(t, p.TLS, "no TLS on tcp://")
		assert.Equal(t, "127.0.0.1:1883", p.URL.Host)
		assert.Regexp(t, "^otelcol-propeller-[0-9a-f]{12}$", p.ClientID)
		q, err := c.Prepare(ctx, "otelcol-propeller-")
		require.NoError(t, err)
		assert.NotEqual(t, p.ClientID, q.ClientID, "unique per instance")
		assert.Equal(t, c, p.Config)
	})

	t.Run("configured client id", func(t *testing.T) {
		c := DefaultClientConfig()
		c.ClientID = "proplet-1"
		p, err := c.Prepare(ctx, "otelcol-propeller-")
		require.NoError(t, err)
		assert.Equal(t, "proplet-1", p.ClientID)
	})

	t.Run("TLS without a tls block", func(t *testing.T) {
		for _, endpoint := range []string{"ssl://broker.example.com:8883", "mqtts://broker.example.com", "tls://broker.example.com", "wss://broker.example.com/mqtt"} {
			c := DefaultClientConfig()
			c.Endpoint = endpoint
			p, err := c.Prepare(ctx, "p-")
			require.NoError(t, err)
			require.NotNil(t, p.TLS, endpoint)
			assert.GreaterOrEqual(t, p.TLS.MinVersion, uint16(tls.VersionTLS12), endpoint)
			assert.Equal(t, "broker.example.com", p.TLS.ServerName, "the endpoint's host name: %s", endpoint)
			assert.False(t, p.TLS.InsecureSkipVerify, "verification on by default")
		}
	})

	t.Run("insecure without a CA still uses TLS 1.2", func(t *testing.T) {
		c := DefaultClientConfig()
		c.Endpoint = "ssl://10.0.0.1:8883"
		c.TLS = configtls.ClientConfig{Insecure: true}
		p, err := c.Prepare(ctx, "p-")
		require.NoError(t, err)
		require.NotNil(t, p.TLS)
		assert.Equal(t, uint16(tls.VersionTLS12), p.TLS.MinVersion)
		assert.Equal(t, "10.0.0.1", p.TLS.ServerName)
	})

	t.Run("server name override and minimum version kept", func(t *testing.T) {
		c := DefaultClientConfig()
		c.Endpoint = "ssl://10.0.0.1:8883"
		c.TLS.ServerName = "broker.internal"
		c.TLS.MinVersion = "1.3"
		p, err := c.Prepare(ctx, "p-")
		require.NoError(t, err)
		assert.Equal(t, "broker.internal", p.TLS.ServerName)
		assert.Equal(t, uint16(tls.VersionTLS13), p.TLS.MinVersion)
	})

	t.Run("TLS load error", func(t *testing.T) {
		c := DefaultClientConfig()
		c.Endpoint = "ssl://broker:8883"
		c.TLS.CAFile = filepath.Join(t.TempDir(), "missing.pem")
		_, err := c.Prepare(ctx, "p-")
		require.Error(t, err)
		assert.Regexp(t, "^tls: ", err.Error())
	})

	t.Run("a tls block on a plain endpoint is not loaded", func(t *testing.T) {
		c := DefaultClientConfig()
		c.TLS.CAFile = filepath.Join(t.TempDir(), "missing.pem")
		p, err := c.Prepare(ctx, "p-")
		require.NoError(t, err)
		assert.Nil(t, p.TLS)
	})

	t.Run("bad URL", func(t *testing.T) {
		c := DefaultClientConfig()
		c.Endpoint = "tcp://%zz"
		_, err := c.Prepare(ctx, "p-")
		assert.ErrorContains(t, err, `endpoint: "tcp://%zz" is not a URL`)
	})
}

func TestPahoOptions(t *testing.T) {
	c := DefaultClientConfig()
	c.Endpoint = "ssl://broker.example.com:8883"
	c.Username, c.Password = "proplet", "secret"
	c.KeepAlive, c.ConnectTimeout, c.MaxReconnectInterval = 20*time.Second, 3*time.Second, 7*time.Second
	p, err := c.Prepare(context.Background(), "p-")
	require.NoError(t, err)
	o := p.PahoOptions()
	require.Len(t, o.Servers, 1)
	assert.Equal(t, "ssl://broker.example.com:8883", o.Servers[0].String())
	assert.Equal(t, p.ClientID, o.ClientID)
	assert.Equal(t, "proplet", o.Username)
	assert.Equal(t, "secret", o.Password)
	assert.Equal(t, uint(4), o.ProtocolVersion, "MQTT 3.1.1")
	assert.Equal(t, int64(20), o.KeepAlive)
	assert.Equal(t, 3*time.Second, o.ConnectTimeout)
	assert.True(t, o.AutoReconnect)
	assert.Equal(t, 7*time.Second, o.MaxReconnectInterval)
	assert.Same(t, p.TLS, o.TLSConfig)
	assert.NotNil(t, o.CustomOpenConnectionFn, "TCP and TLS endpoints use the coalescing dial")

	c.Endpoint = "ws://broker.example.com/mqtt"
	p, err = c.Prepare(context.Background(), "p-")
	require.NoError(t, err)
	assert.Nil(t, p.PahoOptions().CustomOpenConnectionFn, "WebSockets keep paho's dialer")
}

// TestEveryTLSKeyOnAPlainEndpointIsRefused: each key of the tls block, decoded from YAML as
// the Collector does, fails Check on tcp://, mqtt:// and ws://, naming the key. Before, only
// the CA, certificate and key were noticed: insecure_skip_verify, server_name_override or
// min_version with tcp:// passed and connected in plaintext.
func TestEveryTLSKeyOnAPlainEndpointIsRefused(t *testing.T) {
	yaml := map[string]any{
		"ca_file": "/ca.pem", "ca_pem": "pem", "cert_file": "/c.pem", "cert_pem": "pem", "key_file": "/k.pem", "key_pem": "pem",
		"insecure_skip_verify": true, "insecure": true, "server_name_override": "broker.internal",
		"min_version": "1.3", "max_version": "1.3", "cipher_suites": []any{"TLS_AES_128_GCM_SHA256"},
		"curve_preferences": []any{"X25519"}, "include_system_ca_certs_pool": true, "include_insecure_cipher_suites": true,
		"reload_interval": "1h", "tpm": map[string]any{"enabled": true, "path": "/dev/tpmrm0", "auth": "a", "owner_auth": "o"},
	}
	var all []string
	for key, value := range yaml {
		sub, isMap := value.(map[string]any)
		if !isMap {
			sub = map[string]any{"": value}
		}
		for subKey, subValue := range sub {
			name, block := key, map[string]any{key: value}
			if isMap {
				name, block = key+"."+subKey, map[string]any{key: map[string]any{subKey: subValue}}
			}
			all = append(all, name)
			for _, endpoint := range []string{"tcp://broker:1883", "mqtt://broker", "ws://broker/mqtt"} {
				t.Run(name+"/"+endpoint, func(t *testing.T) {
					cfg := exporterLike{ClientConfig: DefaultClientConfig()}
					require.NoError(t, confmap.NewFromStringMap(map[string]any{"endpoint": endpoint, "tls": block}).Unmarshal(&cfg))
					err := cfg.Check("")
					require.Error(t, err, "%s with %s", name, endpoint)
					assert.Equal(t, fmt.Sprintf("tls.%s: is set but endpoint %q does not use TLS, so the connection would be plaintext; use ssl://, tls://, mqtts:// or wss://, or remove it", name, endpoint), err.Error())

					cfg.Endpoint = strings.Replace(strings.Replace(endpoint, "ws://", "wss://", 1), "tcp://", "ssl://", 1)
					cfg.Endpoint = strings.Replace(cfg.Endpoint, "mqtt://", "mqtts://", 1)
					assert.NoError(t, cfg.Check(""), "the same key with a TLS endpoint")
				})
			}
		}
	}

	// Every key configtls has is in the table above: a key added by a newer Collector is
	// noticed here.
	var leaves []string
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			switch {
			case strings.Contains(opts, "squash"):
				walk(f.Type, prefix)
			case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)):
				walk(f.Type, prefix+name+".")
			default:
				leaves = append(leaves, prefix+name)
			}
		}
	}
	walk(reflect.TypeOf(configtls.ClientConfig{}), "")
	assert.ElementsMatch(t, leaves, all)

	c := DefaultClientConfig()
	c.TLS.InsecureSkipVerify, c.TLS.MinVersion = true, "1.2"
	err := c.Check("propeller.")
	require.Error(t, err)
	assert.Len(t, strings.Split(err.Error(), "\n"), 2, "one line per key")
	assert.ErrorContains(t, err, `propeller.tls.insecure_skip_verify: is set but propeller.endpoint "tcp://127.0.0.1:1883"`)
	assert.ErrorContains(t, err, "propeller.tls.min_version: is set but")
}
