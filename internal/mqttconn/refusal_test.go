package mqttconn

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// causes collects what Prepared.OnFailure reports.
type causes struct {
	mu  sync.Mutex
	got map[Cause]int
}

func (c *causes) add(cause Cause) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got = map[Cause]int{}
	}
	c.got[cause]++
}

func (c *causes) count(cause Cause) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[cause]
}

// subscriber prepares a subscriber of endpoint over version with policy, logging into the
// returned observer (warnings and above) and counting failures by cause.
func subscriber(t *testing.T, endpoint, version string, policy SessionPolicy, handle func(Message)) (*Subscriber, *observer.ObservedLogs, *causes) {
	t.Helper()
	return subscriberWith(t, endpoint, version, policy, handle, func(*ClientConfig) {})
}

// subscriberWith is subscriber with edit applied to the client configuration.
func subscriberWith(t *testing.T, endpoint, version string, policy SessionPolicy, handle func(Message), edit func(*ClientConfig)) (*Subscriber, *observer.ObservedLogs, *causes) {
	t.Helper()
	c := DefaultClientConfig()
	c.Endpoint, c.ProtocolVersion, c.ClientID = endpoint, version, "gateway-"+t.Name()
	c.ConnectTimeout, c.MaxReconnectInterval = 2*time.Second, time.Second
	edit(&c)
	p, err := c.Prepare(context.Background(), "test-")
	require.NoError(t, err)
	counted := &causes{}
	p.OnFailure = counted.add
	core, logs := observer.New(zapcore.WarnLevel)
	if handle == nil {
		handle = func(Message) {}
	}
	s := p.NewSubscriber(SubscriberConfig{Filters: []string{"t/#"}, Policy: policy, SessionExpiry: time.Minute, Handle: handle}, zap.New(core))
	t.Cleanup(s.Stop)
	return s, logs, counted
}

// TestRefusedPersistentSessionIsNamedAtOnce: a broker that closes the connection without a
// CONNACK when asked for a persistent session (FluxMQ with its cluster disabled). The first
// log line says what was asked, what the broker did and the likely causes with their fixes,
// at error, and the attempt is counted by cause. Before, it was a warning saying only EOF.
func TestRefusedPersistentSessionIsNamedAtOnce(t *testing.T) {
	for _, version := range []string{"3.1.1", "5"} {
		t.Run(version, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{RefusePersistent: mqtttest.CloseBeforeConnack})
			s, logs, counted := subscriber(t, b.Endpoint(), version, SessionPersistent, nil)
			err := s.Start()
			require.ErrorIs(t, err, ErrSessionRefused, "session: persistent fails the start")
			assert.ErrorContains(t, err, "cluster.enabled: true")
			require.NotZero(t, logs.Len())
			first := logs.All()[0]
			assert.Equal(t, zapcore.ErrorLevel, first.Level)
			assert.Contains(t, first.Message, "closed the connection without a CONNACK when asked for a persistent session over MQTT "+version)
			assert.Contains(t, first.Message, "FluxMQ does while cluster.enabled is false")
			assert.Contains(t, first.Message, "one listener per MQTT version")
			assert.Equal(t, "closed_before_connack", first.ContextMap()["cause"])
			assert.Positive(t, counted.count(CauseClosedBeforeConnack))
			assert.Positive(t, b.Refused())
		})
	}
}

// TestPreferPersistentFallsBackToClean: by default a subscriber asks for a persistent session
// and, refused, connects with a clean one, warns with the consequence and the broker-side fix,
// and receives.
func TestPreferPersistentFallsBackToClean(t *testing.T) {
	for name, refusal := range map[string]mqtttest.Refusal{"close": mqtttest.CloseBeforeConnack, "code": mqtttest.ServerUnavailable} {
		for _, version := range []string{"3.1.1", "5"} {
			t.Run(name+"/"+version, func(t *testing.T) {
				b := mqtttest.Start(t, mqtttest.Options{RefusePersistent: refusal})
				got := make(chan Message, 10)
				s, logs, counted := subscriber(t, b.Endpoint(), version, SessionPreferPersistent, func(m Message) { got <- m })
				require.NoError(t, s.Start())
				waitUntil(t, 15*time.Second, "a fall back to a clean session", func() bool {
					return logs.FilterMessageSnippet("connected with a clean session instead").Len() == 1
				})
				assert.False(t, s.Persistent())
				warn := logs.FilterMessageSnippet("connected with a clean session instead").All()[0]
				assert.Equal(t, zapcore.WarnLevel, warn.Level)
				assert.Contains(t, warn.Message, "messages published while this client is disconnected are not kept")
				assert.Contains(t, warn.Message, "cluster.enabled: true")
				assert.Positive(t, counted.count(CauseClosedBeforeConnack)+counted.count(CauseServerUnavailable))

				waitUntil(t, 10*time.Second, "a message through the clean session", func() bool {
					publishOnce(t, b.Endpoint(), "t/x", "hello")
					select {
					case m := <-got:
						return m.Topic == "t/x" && string(m.Payload) == "hello" && !m.Retained
					case <-time.After(200 * time.Millisecond):
						return false
					}
				})
			})
		}
	}
}

// TestRefusalsAreNamed: each way a broker can refuse, as the first log line.
func TestRefusalsAreNamed(t *testing.T) {
	t.Run("server unavailable/3.1.1", func(t *testing.T) {
		b := mqtttest.Start(t, mqtttest.Options{RefusePersistent: mqtttest.ServerUnavailable})
		s, logs, counted := subscriber(t, b.Endpoint(), "3.1.1", SessionPersistent, nil)
		require.ErrorIs(t, s.Start(), ErrSessionRefused)
		assert.Contains(t, logs.All()[0].Message, "refused the connection with code 3 (server unavailable) when asked for a persistent session over MQTT 3.1.1")
		assert.Positive(t, counted.count(CauseServerUnavailable))
	})
	t.Run("server unavailable/5", func(t *testing.T) {
		b := mqtttest.Start(t, mqtttest.Options{RefusePersistent: mqtttest.ServerUnavailable})
		s, logs, _ := subscriber(t, b.Endpoint(), "5", SessionPersistent, nil)
		require.ErrorIs(t, s.Start(), ErrSessionRefused)
		assert.Contains(t, logs.All()[0].Message, "refused the connection with reason code 0x88")
	})
	t.Run("wrong listener", func(t *testing.T) {
		// MQTT 5 on a 3.1.1 listener: closed without a CONNACK, even for a clean session.
		b := mqtttest.Start(t, mqtttest.Options{OnlyProtocol: 4})
		s, logs, counted := subscriber(t, b.Endpoint(), "5", SessionClean, nil)
		require.NoError(t, s.Start(), "not a session refusal: retried in the background")
		waitUntil(t, 10*time.Second, "the first refusal", func() bool { return logs.Len() > 0 })
		first := logs.All()[0]
		assert.Equal(t, zapcore.ErrorLevel, first.Level)
		assert.Contains(t, first.Message, "when asked for a clean session over MQTT 5")
		assert.Contains(t, first.Message, "this is the broker's MQTT 3.1.1 listener")
		assert.Contains(t, first.Message, "use port 1884 for MQTT 5")
		assert.NotContains(t, first.Message, "refuses persistent sessions", "a clean session was asked for")
		assert.Positive(t, counted.count(CauseClosedBeforeConnack))
	})
	t.Run("no CONNACK", func(t *testing.T) {
		silent := mqtttest.StartSilent(t)
		for _, version := range []string{"3.1.1", "5"} {
			s, logs, counted := subscriber(t, silent.Endpoint(), version, SessionClean, nil)
			require.NoError(t, s.Start())
			waitUntil(t, 10*time.Second, "the first failure", func() bool { return logs.Len() > 0 })
			first := logs.All()[0]
			assert.Equal(t, zapcore.ErrorLevel, first.Level, version)
			assert.Contains(t, first.Message, "did not answer the CONNECT for a clean session over MQTT "+version+" within connect_timeout (2s)")
			assert.Positive(t, counted.count(CauseNoConnack), version)
			s.Stop()
		}
	})
}

// TestANewKindOfFailureIsLoggedAtOnce: a broker unreachable, then up and refusing: the
// refusal is logged when it starts, not at the next minute's reminder.
func TestANewKindOfFailureIsLoggedAtOnce(t *testing.T) {
	addr := mqtttest.FreeAddress(t)
	s, logs, counted := subscriber(t, "tcp://"+addr, "3.1.1", SessionPersistent, nil)
	require.NoError(t, s.Start(), "unreachable: not an error at start")
	require.Equal(t, 1, logs.Len())
	assert.Equal(t, zapcore.WarnLevel, logs.All()[0].Level)
	mqtttest.Start(t, mqtttest.Options{Address: addr, RefusePersistent: mqtttest.CloseBeforeConnack})
	waitUntil(t, 10*time.Second, "the refusal logged", func() bool { return logs.Len() == 2 })
	second := logs.All()[1]
	assert.Equal(t, zapcore.ErrorLevel, second.Level)
	assert.Contains(t, second.Message, "closed the connection without a CONNACK")
	assert.Positive(t, counted.count(CauseUnreachable))
}

// TestSharedSubscriptionOverMQTT5: two subscribers of one group split the stream: every
// message once.
func TestSharedSubscriptionOverMQTT5(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	var mu sync.Mutex
	seen := map[string]int{}
	handle := func(m Message) {
		mu.Lock()
		seen[string(m.Payload)]++
		mu.Unlock()
	}
	var subs []*Subscriber
	for i := range 2 {
		c := DefaultClientConfig()
		c.Endpoint, c.ProtocolVersion, c.ClientID = b.Endpoint(), "5", "shared-"+string(rune('a'+i))
		p, err := c.Prepare(context.Background(), "")
		require.NoError(t, err)
		s := p.NewSubscriber(SubscriberConfig{Filters: []string{"$share/g/s/#"}, Policy: SessionPreferPersistent, SessionExpiry: time.Minute, Handle: handle}, zap.NewNop())
		require.NoError(t, s.Start())
		t.Cleanup(s.Stop)
		subs = append(subs, s)
	}
	assert.True(t, subs[0].Persistent(), "the embedded broker keeps persistent sessions")
	waitUntil(t, 10*time.Second, "both subscribed", func() bool {
		publishOnce(t, b.Endpoint(), "s/probe", "probe")
		mu.Lock()
		defer mu.Unlock()
		return seen["probe"] > 0
	})
	const n = 500
	msgs := make([]string, n)
	for i := range n {
		msgs[i] = "m" + time.Duration(i).String()
	}
	publishMany(t, b.Endpoint(), "s/x", msgs)
	waitUntil(t, 20*time.Second, "every message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			if seen[m] == 0 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgs {
		assert.Equal(t, 1, seen[m], "exactly once: %s", m)
	}
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // polling a condition with a deadline
	}
}

// TestStartReturnsWithTheBrokersAnswer: a refused first attempt ends Start with the broker's
// answer, over either MQTT version, not after the connect timeout (a minute here: a Start that
// waited it out would fail the test's own deadline). Before, MQTT 5 waited the whole timeout.
func TestStartReturnsWithTheBrokersAnswer(t *testing.T) {
	const timeout = time.Minute
	for _, version := range []string{"3.1.1", "5"} {
		t.Run("credentials/"+version, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{Username: "proplet", Password: "right"})
			s, _, _ := subscriberWith(t, b.Endpoint(), version, SessionClean, nil, func(c *ClientConfig) {
				c.Username, c.Password, c.ConnectTimeout = "proplet", "wrong", timeout
			})
			start := time.Now()
			require.ErrorIs(t, s.Start(), ErrBadCredentials)
			assert.Less(t, time.Since(start), timeout, "Start waited out the connect timeout")
		})
		t.Run("persistent session/"+version, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{RefusePersistent: mqtttest.ServerUnavailable})
			s, _, _ := subscriberWith(t, b.Endpoint(), version, SessionPersistent, nil, func(c *ClientConfig) { c.ConnectTimeout = timeout })
			start := time.Now()
			require.ErrorIs(t, s.Start(), ErrSessionRefused)
			assert.Less(t, time.Since(start), timeout, "Start waited out the connect timeout")
		})
	}
}
