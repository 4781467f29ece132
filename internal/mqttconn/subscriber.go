package mqttconn

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"
)

// Message is a message a Subscriber received.
type Message struct {
	Topic   string
	Payload []byte
	// Retained is set on a message the broker stored with the retain flag and sent because
	// the subscription was (re)made, not because it was just published.
	Retained bool
}

// SubscriberConfig is what a Subscriber subscribes to and how.
type SubscriberConfig struct {
	// Filters are subscribed to at QoS 1, as written ($share/<group>/<filter> included).
	Filters []string
	// Policy is the session asked for.
	Policy SessionPolicy
	// SessionExpiry is how long an MQTT 5 broker keeps a persistent session after a
	// disconnection (MQTT 3.1.1 has no such setting: the broker decides).
	SessionExpiry time.Duration
	// Handle takes every message, in the order received, on the client's goroutine; the
	// message is acknowledged when it returns, so a slow Handle slows the broker's sending.
	Handle func(Message)
}

// Subscriber is a client that subscribes to topic filters over MQTT 3.1.1 (paho, through a
// Connection) or MQTT 5 (autopaho), renews its subscriptions on every connection, and asks
// for its session by Policy: with SessionPreferPersistent a broker that refuses persistent
// sessions gets a clean one, with a warning.
type Subscriber struct {
	p   *Prepared
	cfg SubscriberConfig
	log *zap.Logger

	conn *Connection // MQTT 3.1.1

	// MQTT 5
	attempts *AttemptLog
	cm       *autopaho.ConnectionManager
	cancel   context.CancelFunc
	mu       sync.Mutex
	fellBack bool
	warned   bool
	lastErr  error
}

// NewSubscriber creates the subscriber of the configured protocol version. It does not
// connect: Start does.
func (p *Prepared) NewSubscriber(cfg SubscriberConfig, log *zap.Logger) *Subscriber {
	s := &Subscriber{p: p, cfg: cfg, log: log}
	if p.Config.ProtocolVersion == "5" {
		s.attempts = p.NewAttemptLog(log)
		s.attempts.Asking(s.session())
		return s
	}
	handler := func(_ pahov3.Client, m pahov3.Message) {
		cfg.Handle(Message{Topic: m.Topic(), Payload: m.Payload(), Retained: m.Retained()})
	}
	opts := p.PahoOptions().
		// A persistent session's messages queued while away arrive right after the CONNACK,
		// before the subscriptions are renewed: the default handler takes those.
		SetDefaultPublishHandler(handler).
		SetOnConnectHandler(func(c pahov3.Client) { s.subscribe3(c, handler) }).
		SetConnectionLostHandler(func(_ pahov3.Client, err error) {
			log.Warn("Connection to the MQTT broker lost; reconnecting", zap.String("endpoint", p.Config.Endpoint), zap.Error(err))
		})
	s.conn = p.NewSessionConnection(opts, cfg.Policy, log)
	return s
}

// Start makes a first connection attempt, bounded by the connect timeout. Refused credentials
// fail it (ErrBadCredentials), and so does a refused persistent session with SessionPersistent
// (ErrSessionRefused); an unreachable broker does not: the subscriber keeps trying.
func (s *Subscriber) Start() error {
	if s.conn != nil {
		return s.conn.Start()
	}
	return s.start5()
}

// Persistent reports whether the subscriber asks for a persistent session (false after a fall
// back to a clean one).
func (s *Subscriber) Persistent() bool {
	if s.conn != nil {
		return s.conn.Persistent()
	}
	return s.session().Persistent
}

// Stop disconnects.
func (s *Subscriber) Stop() {
	if s.conn != nil {
		s.conn.Stop()
		return
	}
	DisconnectAutopaho(s.cm, s.cancel)
	if s.cm != nil {
		<-s.cm.Done()
	}
}

// subscribe3 renews the subscriptions of an MQTT 3.1.1 connection; paho calls it on a
// goroutine of its own after every connection.
func (s *Subscriber) subscribe3(c pahov3.Client, handler pahov3.MessageHandler) {
	filters := map[string]byte{}
	for _, f := range s.cfg.Filters {
		filters[f] = 1
	}
	t := c.SubscribeMultiple(filters, handler)
	if !t.WaitTimeout(10 * time.Second) {
		s.log.Error("Subscribing timed out; the subscriptions are made again at the next connection", zap.Strings("topics", s.cfg.Filters))
		return
	}
	if err := t.Error(); err != nil {
		s.log.Error("Cannot subscribe", zap.Strings("topics", s.cfg.Filters), zap.Error(err))
		return
	}
	var refused []string
	if st, ok := t.(*pahov3.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code >= 0x80 {
				refused = append(refused, f)
			}
		}
	}
	s.subscribed(refused)
}

// subscribed logs the outcome of a subscription.
func (s *Subscriber) subscribed(refused []string) {
	for _, f := range refused {
		s.log.Error("The broker refused a subscription (check the broker's ACL, and its support of shared subscriptions for shared_group)", zap.String("topic", f))
	}
	session := "clean"
	if s.Persistent() {
		session = "persistent"
	}
	s.log.Info("Subscribed", zap.Strings("topics", s.cfg.Filters), zap.String("client_id", s.p.ClientID),
		zap.String("session", session), zap.String("protocol_version", s.p.Config.ProtocolVersion))
}

// session is what the next MQTT 5 CONNECT asks for.
func (s *Subscriber) session() Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	persistent := s.cfg.Policy != SessionClean && !s.fellBack
	return Session{Persistent: persistent, Protocol: "5", Expiry: uint32(s.cfg.SessionExpiry / time.Second)}
}

func (s *Subscriber) start5() error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	cc := s.p.AutopahoConfig(s.session)
	cc.OnConnectionUp = func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
		s.attempts.Connected()
		s.mu.Lock()
		warn := s.fellBack && !s.warned
		s.warned = s.warned || warn
		s.mu.Unlock()
		if warn {
			s.log.Warn("The MQTT broker refused a persistent session; connected with a clean session instead: messages published while this client is disconnected are not kept for it. "+
				"To keep them, let the broker keep persistent sessions (FluxMQ: cluster.enabled: true), then restart the collector; session: persistent refuses to run without one",
				zap.String("endpoint", s.p.Config.Endpoint), zap.String("client_id", s.p.ClientID))
		}
		go s.subscribe5(ctx, cm)
	}
	cc.OnConnectionDown = func() bool {
		s.log.Warn("Connection to the MQTT broker lost; reconnecting", zap.String("endpoint", s.p.Config.Endpoint))
		return true
	}
	cc.OnClientError = func(err error) { LogClientError(s.log, s.p.Config.Endpoint, err) }
	// Start waits for the first attempt's outcome, as the MQTT 3.1.1 client's does: connected,
	// or refused (then autopaho keeps trying, backing off), never the whole connect timeout
	// once the broker has answered; but a persistent session refused under
	// session: prefer_persistent is retried with a clean one, and Start waits for that.
	wait, cancelWait := context.WithTimeout(ctx, s.p.Config.ConnectTimeout+time.Second)
	defer cancelWait()
	cc.OnConnectError = func(err error) {
		cause := s.attempts.Failed(err)
		s.mu.Lock()
		s.lastErr = err
		fallBack := refusesSession(cause) && s.cfg.Policy == SessionPreferPersistent && !s.fellBack
		if fallBack {
			s.fellBack = true
		}
		s.mu.Unlock()
		s.attempts.Asking(s.session())
		if !fallBack {
			cancelWait()
		}
	}
	cc.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
		s.cfg.Handle(Message{Topic: pr.Packet.Topic, Payload: pr.Packet.Payload, Retained: pr.Packet.Retain})
		return true, nil
	}}
	var err error
	if s.cm, err = autopaho.NewConnection(ctx, cc); err != nil {
		cancel()
		return fmt.Errorf("connect to %s: %w", s.p.Config.Endpoint, err)
	}
	if s.cm.AwaitConnection(wait) == nil {
		return nil
	}
	s.mu.Lock()
	last := s.lastErr
	s.mu.Unlock()
	if last == nil {
		return nil
	}
	cause, _ := classify(last)
	switch {
	case cause == CauseCredentials:
		s.Stop()
		return s.p.CredentialsError(last)
	case refusesSession(cause) && s.cfg.Policy == SessionPersistent:
		s.Stop()
		return fmt.Errorf("%w: %s: %w", ErrSessionRefused, s.p.refusalMessage(cause, "", Session{Persistent: true, Protocol: "5"}, startFailing), last)
	}
	return nil
}

// subscribe5 renews the subscriptions of an MQTT 5 connection.
func (s *Subscriber) subscribe5(ctx context.Context, cm *autopaho.ConnectionManager) {
	sub := &paho.Subscribe{}
	for _, f := range s.cfg.Filters {
		sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := cm.Subscribe(ctx, sub)
	if ack == nil {
		s.log.Error("Cannot subscribe; the subscriptions are made again at the next connection", zap.Strings("topics", s.cfg.Filters), zap.Error(err))
		return
	}
	// With the SUBACK, an error only says that a reason code refused a filter.
	var refused []string
	for i, code := range ack.Reasons {
		if code >= 0x80 && i < len(s.cfg.Filters) {
			refused = append(refused, s.cfg.Filters[i])
		}
	}
	s.subscribed(refused)
}
