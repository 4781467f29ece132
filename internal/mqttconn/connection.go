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
		SetMaxReconnectInterval(c.MaxReconnectInterval)
	if p.TLS != nil {
		opts.SetTLSConfig(p.TLS)
	}
	if dial, ok := dialCoalescing(p.URL, p.TLS, c.ConnectTimeout); ok {
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
	c        paho.Client
	stopCh   chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

// NewConnection creates the client from opts (usually PahoOptions with the caller's
// additions). It does not connect: Start does.
func (p *Prepared) NewConnection(opts *paho.ClientOptions, log *zap.Logger) *Connection {
	c := &Connection{p: p, log: log, attempts: p.NewAttemptLog(log), stopCh: make(chan struct{})}
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

// Client returns the paho client, to publish and subscribe with.
func (c *Connection) Client() paho.Client { return c.c }

// Start makes a first connection attempt bounded by the connect timeout. A refusal of the
// credentials is returned as an error wrapping ErrBadCredentials. A broker that cannot be
// reached is not an error: the connection is tried again in the background with exponential
// backoff up to MaxReconnectInterval until it succeeds once; after that paho's automatic
// reconnection takes over. Failures are logged by the connection's AttemptLog either way.
func (c *Connection) Start() error {
	err := c.attempt()
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrBadCredentials) {
		return err
	}
	c.wg.Add(1)
	go c.retry()
	return nil
}

// attempt makes one connection attempt. paho reports a failure to the AttemptLog itself.
func (c *Connection) attempt() error {
	cfg := c.p.Config
	t := c.c.Connect()
	// paho bounds the dial and the CONNACK by the connect timeout; the extra second only
	// guards against a token that never completes.
	if !t.WaitTimeout(cfg.ConnectTimeout + time.Second) {
		err := fmt.Errorf("connect to %s: timed out after %s", cfg.Endpoint, cfg.ConnectTimeout)
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
	c.c.Disconnect(250)
}
