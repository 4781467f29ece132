package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"go.uber.org/zap"
)

// paho5 is the MQTT 5 client: Eclipse Paho's autopaho, which reconnects by itself.
type paho5 struct {
	cfg      *Config
	log      *zap.Logger
	clientID string
	tlsCfg   *tls.Config

	cm       *autopaho.ConnectionManager
	ctx      context.Context // the client's lifetime; publishes end with it
	cancel   context.CancelFunc
	inflight sync.WaitGroup

	mu      sync.Mutex
	lastErr error
	up      bool
}

func newPaho5(cfg *Config, clientID string, tlsCfg *tls.Config, log *zap.Logger) *paho5 {
	return &paho5{cfg: cfg, log: log, clientID: clientID, tlsCfg: tlsCfg}
}

func (p *paho5) start(context.Context) error {
	u, err := url.Parse(p.cfg.Endpoint)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.ctx, p.cancel = ctx, cancel
	cc := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        p.tlsCfg,
		KeepAlive:                     uint16(p.cfg.KeepAlive / time.Second),
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                p.cfg.ConnectTimeout,
		ReconnectBackoff: func(attempt int) time.Duration {
			return min(time.Second<<min(attempt, 10), p.cfg.MaxReconnectInterval)
		},
		ConnectUsername: p.cfg.Username,
		ConnectPassword: []byte(p.cfg.Password),
		OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) {
			p.setState(true, nil)
			p.log.Info("Connected to the MQTT broker", zap.String("endpoint", p.cfg.Endpoint), zap.String("client_id", p.clientID))
		},
		OnConnectionDown: func() bool {
			p.setState(false, nil)
			p.log.Warn("Connection to the MQTT broker lost; reconnecting", zap.String("endpoint", p.cfg.Endpoint))
			return true
		},
		OnConnectError: func(err error) {
			p.setState(false, err)
			if isAuthError(err) {
				p.log.Error("MQTT broker refused the credentials", zap.String("endpoint", p.cfg.Endpoint), zap.String("username", p.cfg.Username), zap.Error(err))
			}
		},
		ClientConfig: paho.ClientConfig{ClientID: p.clientID},
	}
	if p.cm, err = autopaho.NewConnection(ctx, cc); err != nil {
		cancel()
		return err
	}
	wait, cancelWait := context.WithTimeout(ctx, p.cfg.ConnectTimeout+time.Second)
	defer cancelWait()
	if err := p.cm.AwaitConnection(wait); err != nil {
		p.mu.Lock()
		last := p.lastErr
		p.mu.Unlock()
		if isAuthError(last) {
			p.stop()
			return fmt.Errorf("connect to %s as %q: %w: %v", p.cfg.Endpoint, p.cfg.Username, errBadCredentials, last)
		}
		p.log.Warn("MQTT broker not reachable yet; retrying in the background, batches wait in the queue", zap.String("endpoint", p.cfg.Endpoint), zap.Error(last))
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
		_, t.err = p.cm.Publish(ctx, &paho.Publish{QoS: p.cfg.QoS, Retain: p.cfg.Retain, Topic: topic, Payload: payload})
	}()
	return t
}

func (p *paho5) stop() {
	if p.cm != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = p.cm.Disconnect(ctx)
		cancel()
	}
	if p.cancel != nil {
		p.cancel()
	}
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
