package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
)

// publisher is what the exporter needs of an MQTT client, so MQTT 3.1.1 and 5 clients can sit
// behind it.
type publisher interface {
	// start makes a first connection attempt, bounded by the connect timeout. A refusal for
	// bad credentials is returned as an error; a broker that cannot be reached is not: the
	// client keeps trying in the background.
	start(ctx context.Context) error
	connected() bool
	// publish sends one message; the returned token completes when the broker acknowledged it
	// (QoS 1 and 2) or it was written (QoS 0).
	publish(topic string, payload []byte) token
	stop()
}

type token interface {
	Done() <-chan struct{}
	Error() error
}

// errBadCredentials wraps a broker's refusal of the username or password.
var errBadCredentials = errors.New("the MQTT broker refused the credentials")

// paho311 is the MQTT 3.1.1 client: Eclipse Paho.
type paho311 struct {
	cfg    *Config
	log    *zap.Logger
	c      paho.Client
	stopCh chan struct{}
	wg     sync.WaitGroup
}

func newPaho311(cfg *Config, clientID string, tlsCfg *tls.Config, log *zap.Logger) *paho311 {
	p := &paho311{cfg: cfg, log: log, stopCh: make(chan struct{})}
	opts := paho.NewClientOptions().
		AddBroker(cfg.Endpoint).
		SetClientID(clientID).
		SetUsername(cfg.Username).
		SetPassword(string(cfg.Password)).
		SetProtocolVersion(4).
		SetKeepAlive(cfg.KeepAlive).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(cfg.MaxReconnectInterval).
		// A clean session: unacknowledged publishes fail when the connection drops, and the
		// exporterhelper queue sends them again.
		SetCleanSession(true).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			log.Warn("Connection to the MQTT broker lost; reconnecting", zap.String("endpoint", cfg.Endpoint), zap.Error(err))
		}).
		SetOnConnectHandler(func(paho.Client) {
			log.Info("Connected to the MQTT broker", zap.String("endpoint", cfg.Endpoint), zap.String("client_id", clientID))
		})
	if tlsCfg != nil {
		opts.SetTLSConfig(tlsCfg)
	}
	if u, err := url.Parse(cfg.Endpoint); err == nil {
		if dial, ok := mqttconn.DialCoalescing(u, tlsCfg, cfg.ConnectTimeout); ok {
			opts.SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) { return dial() })
		}
	}
	p.c = paho.NewClient(opts)
	return p
}

func (p *paho311) attempt() error {
	t := p.c.Connect()
	if !t.WaitTimeout(p.cfg.ConnectTimeout + time.Second) {
		return fmt.Errorf("connect to %s: timed out after %s", p.cfg.Endpoint, p.cfg.ConnectTimeout)
	}
	if err := t.Error(); err != nil {
		if errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) {
			return fmt.Errorf("connect to %s as %q: %w: %v", p.cfg.Endpoint, p.cfg.Username, errBadCredentials, err)
		}
		return fmt.Errorf("connect to %s: %w", p.cfg.Endpoint, err)
	}
	return nil
}

func (p *paho311) start(context.Context) error {
	err := p.attempt()
	if err == nil {
		return nil
	}
	if errors.Is(err, errBadCredentials) {
		return err
	}
	p.log.Warn("MQTT broker not reachable yet; retrying in the background, batches wait in the queue", zap.Error(err))
	p.wg.Add(1)
	go p.retry()
	return nil
}

// retry connects with exponential backoff until the first connection succeeds; after that
// paho's automatic reconnection takes over.
func (p *paho311) retry() {
	defer p.wg.Done()
	wait := time.Second
	for {
		select {
		case <-p.stopCh:
			return
		case <-time.After(wait):
		}
		err := p.attempt()
		if err == nil {
			return
		}
		if errors.Is(err, errBadCredentials) {
			p.log.Error("MQTT broker refused the credentials", zap.Error(err))
		} else {
			p.log.Debug("MQTT connection attempt failed", zap.Error(err))
		}
		wait = min(2*wait, p.cfg.MaxReconnectInterval)
	}
}

func (p *paho311) connected() bool { return p.c.IsConnectionOpen() }

func (p *paho311) publish(topic string, payload []byte) token {
	return p.c.Publish(topic, p.cfg.QoS, p.cfg.Retain, payload)
}

func (p *paho311) stop() {
	close(p.stopCh)
	p.wg.Wait()
	p.c.Disconnect(250)
}
