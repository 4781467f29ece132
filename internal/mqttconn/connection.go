package mqttconn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"go.uber.org/zap"
)

// ErrBadCredentials wraps a broker's refusal of the username or password: MQTT 3.1.1 return
// codes 4 (bad user name or password) and 5 (not authorised), MQTT 5 reason codes 0x86 and
// 0x87. Retrying cannot help, so a component fails its start with it.
var ErrBadCredentials = errors.New("the MQTT broker refused the credentials")

// ErrSessionRefused wraps a broker's refusal of a persistent session that the configuration
// requires (SessionPersistent): a component fails its start with it.
var ErrSessionRefused = errors.New("the MQTT broker refused a persistent session")

// SessionPolicy is the session a subscribing client asks for.
type SessionPolicy string

// The session policies.
const (
	// SessionPreferPersistent asks for a persistent session and, when the broker refuses it
	// (closes the connection without a CONNACK, or answers "server unavailable") but accepts a
	// clean one, uses a clean session from then on, with a warning.
	SessionPreferPersistent SessionPolicy = "prefer_persistent"
	// SessionPersistent asks for a persistent session only: a refusal at start fails the start,
	// a later one is logged as an error and retried.
	SessionPersistent SessionPolicy = "persistent"
	// SessionClean asks for a clean session: nothing is kept for the client while it is away.
	SessionClean SessionPolicy = "clean"
)

// PahoOptions returns the MQTT 3.1.1 options of Eclipse Paho for this connection: broker,
// client id, credentials, protocol 3.1.1, keep-alive, connect timeout, automatic reconnection
// with its backoff capped at MaxReconnectInterval, TLS, and the coalescing dial
// (dialCoalescing) for TCP and TLS endpoints. Callers add their own handlers and their
// clean-session and ordering choices.
func (p *Prepared) PahoOptions() *paho.ClientOptions {
	c := p.Config
	opts := paho.NewClientOptions().
		AddBroker(c.Endpoint).
		SetClientID(p.ClientID).
		SetUsername(c.Username).
		SetPassword(string(c.Password)).
		SetProtocolVersion(4).
		SetKeepAlive(c.KeepAlive).
		SetConnectTimeout(c.ConnectTimeout).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(c.MaxReconnectInterval).
		SetStore(newResendStore())
	if p.TLS != nil {
		opts.SetTLSConfig(p.TLS)
	}
	if dial, ok := dialCoalescing(p.URL, p.TLS, c.ConnectTimeout, p.capPackets); ok {
		opts.SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) { return dial() })
	}
	return opts
}

// Connection is a paho MQTT 3.1.1 client with the first-connect rule both components follow:
// bad credentials fail the start, an unreachable broker does not. Every failed attempt, the
// first ones and paho's reconnections alike, goes to an AttemptLog.
type Connection struct {
	p        *Prepared
	log      *zap.Logger
	attempts *AttemptLog
	opts     *paho.ClientOptions
	policy   SessionPolicy
	stopCh   chan struct{}
	once     sync.Once
	wg       sync.WaitGroup

	mu sync.Mutex
	c  paho.Client
	// fellBack is set when the broker refused a persistent session and the connection asks
	// for a clean one from then on.
	fellBack bool
}

// NewConnection creates the client from opts (usually PahoOptions with the caller's
// additions), asking for the session opts say. It does not connect: Start does.
func (p *Prepared) NewConnection(opts *paho.ClientOptions, log *zap.Logger) *Connection {
	policy := SessionClean
	if !opts.CleanSession {
		policy = SessionPersistent
	}
	return p.NewSessionConnection(opts, policy, log)
}

// NewSessionConnection creates the client from opts asking for the session policy says (see
// SessionPolicy; opts' clean-session setting is replaced). It does not connect: Start does.
func (p *Prepared) NewSessionConnection(opts *paho.ClientOptions, policy SessionPolicy, log *zap.Logger) *Connection {
	opts.SetCleanSession(policy == SessionClean)
	c := &Connection{p: p, log: log, attempts: p.NewAttemptLog(log), opts: opts, policy: policy, stopCh: make(chan struct{})}
	c.attempts.Asking(Session{Persistent: policy != SessionClean, Protocol: "3.1.1"})
	// paho reports every attempt here, its own reconnections included, which it otherwise
	// retries without a word: a broker that refuses the credentials or a certificate after a
	// restart would go unnoticed.
	prev := opts.OnConnectionNotification
	opts.SetConnectionNotificationHandler(func(cl paho.Client, n paho.ConnectionNotification) {
		switch n := n.(type) {
		case paho.ConnectionNotificationFailed:
			c.attempts.Failed(n.Reason)
		case paho.ConnectionNotificationConnected:
			c.attempts.Connected()
		}
		if prev != nil {
			prev(cl, n)
		}
	})
	c.c = paho.NewClient(opts)
	return c
}

// Client returns the paho client, to publish and subscribe with. After a fall back to a clean
// session it is another client than before.
func (c *Connection) Client() paho.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c
}

// Persistent reports whether the connection asks for a persistent session: false with
// SessionClean, and after a fall back from SessionPreferPersistent.
func (c *Connection) Persistent() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.policy != SessionClean && !c.fellBack
}

// Start makes a first connection attempt bounded by the connect timeout. A refusal of the
// credentials is returned as an error wrapping ErrBadCredentials. A broker that cannot be
// reached is not an error: the connection is tried again in the background with exponential
// backoff up to MaxReconnectInterval until it succeeds once; after that paho's automatic
// reconnection takes over. Failures are logged by the connection's AttemptLog either way.
//
// With SessionPersistent, a broker that refuses the persistent session at this first attempt
// fails the start too, with an error wrapping ErrSessionRefused.
func (c *Connection) Start() error {
	err := c.attempt()
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrBadCredentials) {
		return err
	}
	if cause, _ := classify(err); refusesSession(cause) && c.policy == SessionPersistent {
		return fmt.Errorf("%w: %s: %w", ErrSessionRefused, c.p.refusalMessage(cause, "", Session{Persistent: true, Protocol: "3.1.1"}, startFailing), err)
	}
	c.wg.Add(1)
	go c.retry()
	return nil
}

// attempt makes one connection attempt. paho reports a failure to the AttemptLog itself. With
// SessionPreferPersistent, a refusal of the persistent session is followed at once by an
// attempt with a clean session, which the connection keeps from then on.
func (c *Connection) attempt() error {
	err := c.connect()
	if err == nil {
		return nil
	}
	cause, _ := classify(err)
	if !refusesSession(cause) || c.policy != SessionPreferPersistent || !c.Persistent() {
		return err
	}
	c.fallBack()
	if err := c.connect(); err != nil {
		return err
	}
	c.log.Warn("The MQTT broker refused a persistent session; connected with a clean session instead: messages published while this client is disconnected are not kept for it. "+
		"To keep them, let the broker keep persistent sessions (FluxMQ: cluster.enabled: true), then restart the collector; session: persistent refuses to run without one",
		zap.String("endpoint", c.p.Config.Endpoint), zap.String("client_id", c.p.ClientID), zap.String("broker_answer", string(cause)))
	return nil
}

// connect makes one connection attempt with the current client.
func (c *Connection) connect() error {
	cfg := c.p.Config
	t := c.Client().Connect()
	// paho bounds the dial and the CONNACK by the connect timeout; the extra second only
	// guards against a token that never completes.
	if !t.WaitTimeout(cfg.ConnectTimeout + time.Second) {
		err := fmt.Errorf("connect to %s: %w: timed out after %s", cfg.Endpoint, errNoConnack, cfg.ConnectTimeout)
		c.attempts.Failed(err)
		return err
	}
	if err := t.Error(); err != nil {
		if errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) {
			return c.p.CredentialsError(err)
		}
		return fmt.Errorf("connect to %s: %w", cfg.Endpoint, err)
	}
	return nil
}

// fallBack replaces the client by one that asks for a clean session. paho keeps the options it
// was created with, so a new client is the only way to change them.
func (c *Connection) fallBack() {
	c.opts.SetCleanSession(true)
	c.attempts.Asking(Session{Protocol: "3.1.1"})
	cl := paho.NewClient(c.opts)
	c.mu.Lock()
	old := c.c
	c.c, c.fellBack = cl, true
	c.mu.Unlock()
	old.Disconnect(0)
}

// retry connects with exponential backoff until the first connection succeeds or Stop.
func (c *Connection) retry() {
	defer c.wg.Done()
	wait := time.Second
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-c.stopCh:
			return
		case <-timer.C:
		}
		if c.attempt() == nil {
			return
		}
		wait = min(2*wait, c.p.Config.MaxReconnectInterval)
		timer.Reset(wait)
	}
}

// Stop ends the background attempts and disconnects, giving work in flight 250 ms.
func (c *Connection) Stop() {
	c.once.Do(func() { close(c.stopCh) })
	c.wg.Wait()
	c.Client().Disconnect(250)
}
