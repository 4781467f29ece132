package mqttconn

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSchemes(t *testing.T) {
	for endpoint, want := range map[string][2]bool{
		"tcp://h:1883": {false, true}, "mqtt://h": {false, true}, "ws://h/mqtt": {false, true},
		"ssl://h:8883": {true, true}, "TLS://h": {true, true}, "mqtts://h": {true, true}, "wss://h": {true, true},
		"http://h": {false, false},
	} {
		u, err := url.Parse(endpoint)
		assert.NoError(t, err)
		secure, known := scheme(u)
		assert.Equal(t, want, [2]bool{secure, known}, endpoint)
	}
}

func TestCheckEndpoint(t *testing.T) {
	secure, err := checkEndpoint("endpoint", "mqtts://broker:8883")
	assert.NoError(t, err)
	assert.True(t, secure)
	for endpoint, want := range map[string]string{
		"":              "endpoint: must be set",
		"http://broker": `endpoint: scheme "http" is not one of tcp, mqtt, ssl, tls, mqtts, ws, wss`,
		"tcp://":        `endpoint: "tcp://" has no host`,
		"tcp://%zz":     `endpoint: "tcp://%zz" is not a URL`,
	} {
		_, err := checkEndpoint("endpoint", endpoint)
		assert.ErrorContains(t, err, want, endpoint)
	}
}

func TestClientIDsDiffer(t *testing.T) {
	a, b := clientID("p-"), clientID("p-")
	assert.Len(t, a, len("p-")+12)
	assert.NotEqual(t, a, b)
}
