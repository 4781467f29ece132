package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
)

// paho5 is the MQTT 5 client: Eclipse Paho's autopaho, which reconnects by itself.
type paho5 struct {
	cfg  *Config
	conn *mqttconn.Prepared
	log  *zap.Logger

	cm       *autopaho.ConnectionManager
	ctx      context.Context // the client's lifetime; publishes end with it
	cancel   context.CancelFunc
	inflight sync.WaitGroup

	mu      sync.Mutex
	lastErr error
	up      bool
}

func newPaho5(cfg *Config, conn *mqttconn.Prepared, log *zap.Logger) *paho5 {
	return &paho5{cfg: cfg, conn: conn, log: log}
}

func (p *paho5) start(context.Context) error {
	c := p.conn.Config
	attempts := p.conn.NewAttemptLog(p.log)
	ctx, cancel := context.WithCancel(context.Background())
	p.ctx, p.cancel = ctx, cancel
	// A clean session at every connection, reconnections included: publishes in flight when
	// the connection drops fail, and the exporterhelper queue sends them again. autopaho on its
	// own asks for clean start on the first connection only, and a broker that refuses
	// persistent sessions (FluxMQ with its cluster disabled) then refuses every reconnection.
	cc := p.conn.AutopahoConfig(func() mqttconn.Session { return mqttconn.Session{Protocol: "5"} })
	cc.OnConnectionUp = func(*autopaho.ConnectionManager, *paho.Connack) {
		p.setState(true, nil)
		attempts.Connected()
		p.log.Info("Connected to the MQTT broker", zap.String("endpoint", c.Endpoint), zap.String("client_id", p.conn.ClientID))
	}
	cc.OnConnectionDown = func() bool {
		p.setState(false, nil)
		p.log.Warn("Connection to the MQTT broker lost; reconnecting", zap.String("endpoint", c.Endpoint))
		return true
	}
	// Start waits for the first attempt's outcome, as the MQTT 3.1.1 client's does: connected,
	// or refused (then autopaho keeps trying, backing off), never the whole connect timeout
	// once the broker has answered.
	wait, cancelWait := context.WithTimeout(ctx, c.ConnectTimeout+time.Second)
	defer cancelWait()
	cc.OnConnectError = func(err error) {
		p.setState(false, err)
		if isAuthError(err) {
			err = p.conn.CredentialsError(err)
		}
		// Logged as the MQTT 3.1.1 client's attempts are: the first of each kind at once, with
		// the broker's answer and the likely cause, then once a minute; counted by cause.
		attempts.Failed(err)
		cancelWait()
	}
	cc.OnClientError = func(err error) { mqttconn.LogClientError(p.log, c.Endpoint, err) }
	var err error
	if p.cm, err = autopaho.NewConnection(ctx, cc); err != nil {
		cancel()
		return err
	}
	if err := p.cm.AwaitConnection(wait); err != nil {
		p.mu.Lock()
		last := p.lastErr
		p.mu.Unlock()
		if isAuthError(last) {
			p.stop()
			return p.conn.CredentialsError(last)
		}
		// Not reachable yet: autopaho keeps trying, and the attempts are logged.
	}
	return nil
}

func isAuthError(err error) bool {
	var ce *autopaho.ConnackError
	// 0x86 Bad User Name or Password, 0x87 Not authorized.
	return errors.As(err, &ce) && (ce.ReasonCode == 0x86 || ce.ReasonCode == 0x87)
}

func (p *paho5) setState(up bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if err != nil {
		p.lastErr = err
	}
}

func (p *paho5) connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up
}

// publish runs the blocking autopaho publish in its own goroutine so a batch's messages are in
// flight together.
func (p *paho5) publish(topic string, payload []byte) token {
	t := &asyncToken{done: make(chan struct{})}
	p.inflight.Add(1)
	go func() {
		defer p.inflight.Done()
		defer close(t.done)
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ConnectTimeout+p.cfg.KeepAlive)
		defer cancel()
		resp, err := p.cm.Publish(ctx, &paho.Publish{QoS: p.cfg.QoS, Retain: p.cfg.Retain, Topic: topic, Payload: payload})
		if err != nil && (refusal(resp) || errors.Is(err, paho.ErrInvalidArguments)) {
			err = fmt.Errorf("%w: %w", errRefusedByBroker, err)
		}
		t.err = err
	}()
	return t
}

// refusal reports whether an acknowledgement refuses the message for good; other negative
// reason codes (0x80 unspecified, 0x83 implementation specific, 0x97 quota exceeded) may pass
// and are retried.
func refusal(resp *paho.PublishResponse) bool {
	if resp == nil {
		return false
	}
	switch resp.ReasonCode {
	case 0x87, 0x90, 0x99:
		return true
	}
	return false
}

func (p *paho5) stop() {
	mqttconn.DisconnectAutopaho(p.cm, p.cancel)
	p.inflight.Wait()
	if p.cm != nil {
		<-p.cm.Done()
	}
}

type asyncToken struct {
	done chan struct{}
	err  error
}

func (t *asyncToken) Done() <-chan struct{} { return t.done }
func (t *asyncToken) Error() error          { return t.err }
