package propellermqttreceiver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

func protocol(version string) func(*Config) {
	return func(c *Config) { c.ProtocolVersion = version }
}

// TestDefaultSessionWorksOnABrokerThatRefusesPersistentSessions: the broker closes every
// connection asking for a persistent session without a CONNACK, as FluxMQ does with its
// cluster disabled. With its default session setting the gateway names the refusal in its
// first log line, falls back to a clean session with a warning, counts the refusal, and
// converts messages. Before, it retried the persistent session forever and received nothing.
func TestDefaultSessionWorksOnABrokerThatRefusesPersistentSessions(t *testing.T) {
	for _, version := range []string{"3.1.1", "5"} {
		t.Run(version, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{RefusePersistent: mqtttest.CloseBeforeConnack})
			core, logs := observer.New(zapcore.WarnLevel)
			g, err := newGateway(t, b.Endpoint(), "gateway-fallback", protocol(version), zap.New(core))
			require.NoError(t, err)
			waitSubscribed(t, publisher(t, b.Endpoint()), g)

			require.GreaterOrEqual(t, logs.Len(), 2)
			first := logs.All()[0]
			assert.Equal(t, zapcore.ErrorLevel, first.Level)
			assert.Contains(t, first.Message, "closed the connection without a CONNACK when asked for a persistent session over MQTT "+version)
			assert.Contains(t, first.Message, "cluster.enabled")
			assert.Equal(t, 1, logs.FilterMessageSnippet("connected with a clean session instead").Len())
			assert.Positive(t, counterBy(t, g.tel, "receiver_propeller_mqtt_connection_failures", "cause", "closed_before_connack"))
		})
	}
}

// TestStrictPersistentSessionFailsTheStart: session: persistent on the same broker fails the
// start with the cause, and the error says the start fails, not that it retries.
func TestStrictPersistentSessionFailsTheStart(t *testing.T) {
	for _, version := range []string{"3.1.1", "5"} {
		t.Run(version, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{RefusePersistent: mqtttest.CloseBeforeConnack})
			_, err := newGateway(t, b.Endpoint(), "gateway-strict", func(c *Config) {
				c.ProtocolVersion = version
				c.Session = mqttconn.SessionPersistent
			}, zap.NewNop())
			require.ErrorIs(t, err, mqttconn.ErrSessionRefused)
			assert.ErrorContains(t, err, "cluster.enabled: true")
			assert.ErrorContains(t, err, "the start fails")
			assert.NotContains(t, err.Error(), "retrying", "nothing retries after a failed start")
		})
	}
}

// TestMQTT5SharedGroupConvertsEveryMessageOnce: two MQTT 5 gateways in a shared group with
// their default session setting split 2,000 messages: each converted exactly once.
func TestMQTT5SharedGroupConvertsEveryMessageOnce(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	shared := func(c *Config) {
		c.ProtocolVersion = "5"
		c.SharedGroup = "fleet"
	}
	g1 := startGateway(t, b.Endpoint(), "gateway-5a", shared)
	g2 := startGateway(t, b.Endpoint(), "gateway-5b", shared)
	pub := publisher(t, b.Endpoint())
	waitSubscribed(t, pub, g1, g2)

	const n = 2000
	start := time.Now().Add(-time.Hour)
	topics, payloads := make([]string, n), make([][]byte, n)
	for seq := range n {
		topics[seq] = taskTopic(seq % 20)
		payloads[seq] = taskMessage(seq%20, seq, start.Add(time.Duration(seq)*time.Millisecond))
	}
	publishAll(t, pub, topics, payloads)
	waitFor(t, 60*time.Second, "2,000 messages across the two gateways", func() bool {
		return len(keys(g1.sink, g2.sink)) >= n
	})
	all := keys(g1.sink, g2.sink)
	seen := map[string]int{}
	for _, k := range all {
		seen[k]++
	}
	assert.Len(t, seen, n, "every message converted")
	assert.Len(t, all, n, "no message converted twice")
	assert.Positive(t, len(keys(g1.sink)))
	assert.Positive(t, len(keys(g2.sink)))
}

// TestRetainedMessagesAreIgnoredByDefault: a retained message, which the broker sends again at
// every connection, is counted and not converted; accept_retained takes it in.
func TestRetainedMessagesAreIgnoredByDefault(t *testing.T) {
	for _, accept := range []bool{false, true} {
		b := mqtttest.Start(t, mqtttest.Options{})
		pub := publisher(t, b.Endpoint())
		retained := taskMessage(1, 1, time.Now().Add(-time.Minute))
		tok := pub.Publish(taskTopic(1), 1, true, retained)
		require.True(t, tok.WaitTimeout(5*time.Second))
		require.NoError(t, tok.Error())

		core, logs := observer.New(zapcore.WarnLevel)
		g, err := newGateway(t, b.Endpoint(), "gateway-retained", func(c *Config) { c.AcceptRetained = accept }, zap.New(core))
		require.NoError(t, err)
		if !accept {
			waitFor(t, 10*time.Second, "the retained message counted", func() bool {
				return counter(t, g.tel, "receiver_propeller_mqtt_retained_messages_ignored") >= 1
			})
			waitSubscribed(t, pub, g)
			assert.Empty(t, keys(g.sink), "not converted")
			assert.Equal(t, 1, logs.FilterMessageSnippet("Retained message ignored").Len())
			continue
		}
		// The embedded broker may send a retained message once per matching subscription.
		waitFor(t, 10*time.Second, "the retained message converted", func() bool { return len(keys(g.sink)) >= 1 })
		assert.Zero(t, counter(t, g.tel, "receiver_propeller_mqtt_retained_messages_ignored"))
	}
}

func TestSessionKeysAreValidated(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, mqttconn.SessionPreferPersistent, cfg.Session)
	assert.False(t, cfg.AcceptRetained)
	assert.Equal(t, "3.1.1", cfg.ProtocolVersion)
	assert.Equal(t, 1<<20, cfg.MaxPacketSize)
	assert.ErrorContains(t, cfg.Validate(), "client_id: must be set with session prefer_persistent")
	cfg.Session = mqttconn.SessionClean
	assert.NoError(t, cfg.Validate(), "a clean session needs no fixed client id")
	cfg.Session = "sometimes"
	assert.ErrorContains(t, cfg.Validate(), `session: must be prefer_persistent, persistent or clean, got "sometimes"`)
	cfg.Session, cfg.SessionExpiry = mqttconn.SessionClean, 0
	assert.ErrorContains(t, cfg.Validate(), "session_expiry: must be from 1s")
	cfg.SessionExpiry, cfg.ProtocolVersion = time.Hour, "4"
	assert.ErrorContains(t, cfg.Validate(), `protocol_version: must be "3.1.1" or "5", got "4"`)
}
