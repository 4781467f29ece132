package mqttconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configtls"

	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

// ClientConfig is the broker connection both components configure: the exporter at the top
// level of its configuration, the receiver under `propeller`. The keys are the same in both.
//
// It has no Unmarshal method on purpose: embedded with `mapstructure:",squash"`, such a method
// would be promoted to the embedding config, and confmap would then decode only this struct.
type ClientConfig struct {
	// Endpoint is the broker URL: tcp://, mqtt://, ssl://, tls://, mqtts://, ws:// or wss://.
	Endpoint string `mapstructure:"endpoint"`
	// ClientID is the MQTT client id. Default: a prefix and random digits, unique per
	// collector instance.
	ClientID string `mapstructure:"client_id"`
	// Username for the broker (Propeller: the proplet's entity id).
	Username string `mapstructure:"username"`
	// Password for the broker (Propeller: the proplet's API key). Never logged.
	Password configopaque.String `mapstructure:"password"`
	// TLS settings, used with ssl://, tls://, mqtts:// and wss:// endpoints. Server
	// certificates are verified unless insecure_skip_verify is set.
	TLS configtls.ClientConfig `mapstructure:"tls"`
	// KeepAlive is the MQTT keep-alive; Mosquitto rejects 0.
	KeepAlive time.Duration `mapstructure:"keep_alive"`
	// ConnectTimeout bounds each connection attempt, including the first one at start.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// MaxReconnectInterval caps the backoff between connection attempts.
	MaxReconnectInterval time.Duration `mapstructure:"max_reconnect_interval"`
	// ProtocolVersion is "3.1.1" or "5". A broker with one listener per version (FluxMQ:
	// 3.1.1 on 1883, 5 on 1884 in Propeller's settings) closes a connection of the other.
	ProtocolVersion string `mapstructure:"protocol_version"`
	// MaxPacketSize caps the remaining length of a packet read from the broker, in bytes: a
	// longer one closes the connection before it is allocated. MQTT 5 clients also announce
	// it to the broker. Default 1 MiB (the broker's max_message_size in Propeller's settings).
	// Not enforced on WebSocket endpoints.
	MaxPacketSize int `mapstructure:"max_packet_size"`
}

// DefaultClientConfig returns the defaults both components use: the local broker without
// TLS, a 30 s keep-alive, 5 s per connection attempt and at most 30 s between attempts, MQTT
// 3.1.1, and packets of at most 1 MiB.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		Endpoint:             "tcp://127.0.0.1:1883",
		TLS:                  configtls.NewDefaultClientConfig(),
		KeepAlive:            30 * time.Second,
		ConnectTimeout:       5 * time.Second,
		MaxReconnectInterval: 30 * time.Second,
		ProtocolVersion:      "3.1.1",
		MaxPacketSize:        DefaultMaxPacketSize,
	}
}

// Check validates the configuration. Every error starts with prefix and the key it is about
// ("" for the exporter, "propeller." for the receiver) and names the bad value.
func (c *ClientConfig) Check(prefix string) error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s%s: %s", prefix, key, fmt.Sprintf(format, args...)))
	}
	if secure, err := checkEndpoint(prefix+"endpoint", c.Endpoint); err != nil {
		errs = append(errs, err)
	} else if !secure {
		// Any of them: insecure_skip_verify or min_version on tcp:// would connect in plaintext
		// while the configuration reads as if TLS were on.
		for _, key := range tlsKeysSet(c.TLS) {
			add("tls."+key, "is set but %sendpoint %q does not use TLS, so the connection would be plaintext; use ssl://, tls://, mqtts:// or wss://, or remove it", prefix, c.Endpoint)
		}
	}
	if c.KeepAlive < time.Second {
		add("keep_alive", "must be at least 1s (brokers reject 0), got %s%s", c.KeepAlive, profile.UnitHint(c.KeepAlive))
	}
	if c.ConnectTimeout <= 0 {
		add("connect_timeout", "must be positive, got %s", c.ConnectTimeout)
	} else if hint := profile.UnitHint(c.ConnectTimeout); hint != "" {
		add("connect_timeout", "must be at least 1ms, got %s%s", c.ConnectTimeout, hint)
	}
	if c.MaxReconnectInterval < time.Second {
		add("max_reconnect_interval", "must be at least 1s, got %s%s", c.MaxReconnectInterval, profile.UnitHint(c.MaxReconnectInterval))
	}
	switch c.ProtocolVersion {
	case "3.1.1", "5":
	default:
		add("protocol_version", `must be "3.1.1" or "5", got %q`, c.ProtocolVersion)
	}
	if c.MaxPacketSize < 1024 || c.MaxPacketSize > maxRemainingLength {
		add("max_packet_size", "must be from 1024 to %d bytes, got %d", maxRemainingLength, c.MaxPacketSize)
	}
	return errors.Join(errs...)
}

// tlsKeysSet lists the keys of a tls block that are set (differ from their zero value, which
// is also their default), as written in YAML: "insecure_skip_verify", "tpm.path". A tls block
// means nothing on a plain endpoint, so a plain endpoint with any of them is a mistake.
func tlsKeysSet(t configtls.ClientConfig) []string {
	var keys []string
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			f, fv := v.Type().Field(i), v.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			switch {
			case strings.Contains(opts, "squash"):
				walk(fv, prefix)
			case fv.Kind() == reflect.Struct && !fv.IsZero():
				walk(fv, prefix+name+".")
			case !fv.IsZero():
				keys = append(keys, prefix+name)
			}
		}
	}
	walk(reflect.ValueOf(t), "")
	sort.Strings(keys)
	return keys
}

// Prepared is a ClientConfig ready to connect: its endpoint parsed, its TLS configuration
// loaded and its client id chosen. Both MQTT client libraries are configured from it.
type Prepared struct {
	Config   ClientConfig
	URL      *url.URL
	TLS      *tls.Config // nil when the endpoint does not use TLS
	ClientID string
	// OnFailure, when set, is called with the cause of every failed connection attempt and of
	// every connection closed because the broker sent a packet over max_packet_size: the
	// components count them. Set it before creating a client.
	OnFailure func(Cause)
}

// Prepare parses the endpoint, loads the TLS configuration of a TLS endpoint (TLS 1.2 at
// least when there is no tls block; the server name defaults to the endpoint's host name),
// and chooses the client id: the configured one, else idPrefix followed by random digits.
// An error loading TLS starts with "tls: ".
func (c *ClientConfig) Prepare(ctx context.Context, idPrefix string) (*Prepared, error) {
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint: %q is not a URL: %w", c.Endpoint, err)
	}
	p := &Prepared{Config: *c, URL: u, ClientID: c.ClientID}
	if p.ClientID == "" {
		p.ClientID = clientID(idPrefix)
	}
	if secure, _ := scheme(u); secure {
		cfg, err := c.TLS.LoadTLSConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		if cfg == nil {
			// configtls answers nil for `insecure: true` without a CA; the scheme still asks
			// for TLS.
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		p.TLS = cfg
	}
	return p, nil
}

// CredentialsError is the error of a broker's refusal of the username or password: it wraps
// ErrBadCredentials and cause, and names the endpoint and the username, never the password.
func (p *Prepared) CredentialsError(cause error) error {
	return fmt.Errorf("connect to %s as %q: %w: %v", p.Config.Endpoint, p.Config.Username, ErrBadCredentials, cause)
}
