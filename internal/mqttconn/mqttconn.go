// Package mqttconn is the broker connection this project's MQTT clients share: its
// configuration (ClientConfig, the same keys in the exporter and the receiver's control plane)
// and checks, which endpoint schemes mean TLS, unique client ids, the paho MQTT 3.1.1 client
// with the first-connect rule both components follow (Connection), and a TCP/TLS connection
// that coalesces writes and acknowledges reads at once (for paho, which writes every packet with
// a system call of its own).
package mqttconn // import "github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// schemes maps every endpoint scheme the clients accept to whether it uses TLS.
var schemes = map[string]bool{"tcp": false, "mqtt": false, "ws": false, "ssl": true, "tls": true, "mqtts": true, "wss": true}

// schemeNames lists the accepted endpoint schemes, for error messages.
const schemeNames = "tcp, mqtt, ssl, tls, mqtts, ws, wss"

// scheme reports whether an endpoint URL's scheme is one the clients accept, and whether it
// uses TLS.
func scheme(u *url.URL) (secure, known bool) {
	secure, known = schemes[strings.ToLower(u.Scheme)]
	return secure, known
}

// checkEndpoint checks the broker URL configured at key: set, with a scheme (a host:port
// alone is told to add tcp://), parseable, with a known scheme and a host. It reports whether
// the endpoint uses TLS. Every error names key and the value.
func checkEndpoint(key, endpoint string) (secure bool, err error) {
	if endpoint == "" {
		return false, fmt.Errorf("%s: must be set, for example tcp://127.0.0.1:1883", key)
	}
	if !strings.Contains(endpoint, "://") {
		// url.Parse would answer "first path segment in URL cannot contain colon" for
		// 127.0.0.1:1883, or read localhost:1883 as scheme "localhost": neither says what is
		// missing.
		return false, fmt.Errorf("%s: %q has no scheme: write tcp://%s (or ssl:// for a TLS broker)", key, endpoint, endpoint)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not a URL: %w", key, endpoint, err)
	}
	var errs []error
	secure, known := scheme(u)
	if !known {
		errs = append(errs, fmt.Errorf("%s: scheme %q is not one of %s", key, u.Scheme, schemeNames))
	}
	if u.Host == "" {
		errs = append(errs, fmt.Errorf("%s: %q has no host", key, endpoint))
	}
	return secure, errors.Join(errs...)
}

// clientID returns prefix followed by 12 random hexadecimal digits: unique per collector
// instance, as brokers require of concurrent clients.
func clientID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
