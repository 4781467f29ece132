package mqtttest

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Message is one received message.
type Message struct {
	Topic   string
	Payload []byte
	// QoS is the QoS the message was delivered at: the lower of the publisher's and the
	// subscription's (1).
	QoS byte
	// At is when the subscriber received it, for tests that order it against other events.
	At time.Time
}

// Decoded returns the payload decoded the way the Propeller manager decodes it: a generic map
// in which every number is a float64.
func (m Message) Decoded(tb testing.TB) map[string]any {
	tb.Helper()
	var v map[string]any
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		tb.Fatalf("message on %s is not a JSON object: %v: %s", m.Topic, err, m.Payload)
	}
	return v
}

// Subscriber collects the messages of a topic filter.
type Subscriber struct {
	c paho.Client
	// resubscribing counts the subscriptions renewed after a reconnection still under way: the
	// test's end waits for them, so no goroutine of the client outlives the test.
	resubscribing sync.WaitGroup
	mu            sync.Mutex
	msgs          []Message
	seen          chan struct{}
}

// SubscriberOptions configure a subscriber.
type SubscriberOptions struct {
	ClientID   string // fixed id, needed for a persistent session
	Persistent bool   // clean session off: the broker keeps its subscription and messages while it is away
}

// Subscribe connects to endpoint and subscribes to filter at QoS 1. It disconnects when the
// test ends.
func Subscribe(tb testing.TB, endpoint, filter string, opts SubscriberOptions) *Subscriber {
	tb.Helper()
	s := &Subscriber{seen: make(chan struct{}, 1)}
	id := opts.ClientID
	if id == "" {
		id = "mqtttest-sub-" + time.Now().Format("150405.000000000")
	}
	handler := func(_ paho.Client, m paho.Message) {
		s.mu.Lock()
		s.msgs = append(s.msgs, Message{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...), QoS: m.Qos(), At: time.Now()})
		s.mu.Unlock()
		select {
		case s.seen <- struct{}{}:
		default:
		}
	}
	o := paho.NewClientOptions().AddBroker(endpoint).SetClientID(id).
		SetCleanSession(!opts.Persistent).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
		SetResumeSubs(true).SetOrderMatters(true).SetDefaultPublishHandler(handler).
		// A subscribe that cannot be written (the connection went away meanwhile) gives up
		// after this, not paho's default 30 s.
		SetWriteTimeout(time.Second).
		SetOnConnectHandler(func(c paho.Client) {
			s.resubscribing.Add(1)
			defer s.resubscribing.Done()
			c.Subscribe(filter, 1, handler).WaitTimeout(5 * time.Second)
		})
	s.c = paho.NewClient(o)
	t := s.c.Connect()
	if !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		tb.Fatalf("subscriber cannot connect to %s: %v", endpoint, t.Error())
	}
	// Wait for the subscription to be in place.
	st := s.c.Subscribe(filter, 1, handler)
	if !st.WaitTimeout(5*time.Second) || st.Error() != nil {
		tb.Fatalf("subscribe %s: %v", filter, st.Error())
	}
	tb.Cleanup(func() {
		s.c.Disconnect(100)
		s.resubscribing.Wait()
	})
	return s
}

// Messages returns what was received so far.
func (s *Subscriber) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait waits until cond holds for the received messages, or fails the test after within.
func (s *Subscriber) Wait(tb testing.TB, within time.Duration, cond func([]Message) bool) []Message {
	tb.Helper()
	deadline := time.After(within)
	for {
		msgs := s.Messages()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-s.seen:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			tb.Fatalf("condition not met within %s; %d messages received", within, len(msgs))
			return nil
		}
	}
}
