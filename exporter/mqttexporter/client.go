package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"context"
	"errors"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
)

// publisher is what the exporter needs of an MQTT client, so MQTT 3.1.1 and 5 clients can sit
// behind it.
type publisher interface {
	// start makes a first connection attempt, bounded by the connect timeout. A refusal for
	// bad credentials is returned as an error (wrapping mqttconn.ErrBadCredentials); a broker
	// that cannot be reached is not: the client keeps trying in the background.
	start(ctx context.Context) error
	connected() bool
	// publish sends one message; the returned token completes when the broker acknowledged it
	// (QoS 1 and 2) or it was written (QoS 0).
	publish(topic string, payload []byte) token
	stop()
}

type token interface {
	Done() <-chan struct{}
	// Error is nil once the message is acknowledged. An error wrapping errRefusedByBroker
	// means the broker refused this message for good (it is not retried).
	Error() error
}

// errRefusedByBroker marks a publish the broker answered with a refusal that sending it again
// cannot change: an MQTT 5 acknowledgement with reason code 0x87 (not authorised), 0x90 (topic
// name invalid) or 0x99 (payload format invalid), or a publish the server's announced limits
// rule out. MQTT 3.1.1 has no negative acknowledgement.
var errRefusedByBroker = errors.New("the MQTT broker refused the message")

// paho311 is the MQTT 3.1.1 client: Eclipse Paho, through the connection both components
// share (mqttconn.Connection).
type paho311 struct {
	conn   *mqttconn.Connection
	c      paho.Client
	qos    byte
	retain bool
}

func newPaho311(cfg *Config, p *mqttconn.Prepared, log *zap.Logger) *paho311 {
	opts := p.PahoOptions().
		// A clean session: unacknowledged publishes fail when the connection drops, and the
		// exporterhelper queue sends them again.
		SetCleanSession(true).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			log.Warn("Connection to the MQTT broker lost; reconnecting", zap.String("endpoint", cfg.Endpoint), zap.Error(err))
		}).
		SetOnConnectHandler(func(paho.Client) {
			log.Info("Connected to the MQTT broker", zap.String("endpoint", cfg.Endpoint), zap.String("client_id", p.ClientID))
		})
	conn := p.NewConnection(opts, log)
	return &paho311{conn: conn, c: conn.Client(), qos: cfg.QoS, retain: cfg.Retain}
}

func (p *paho311) start(context.Context) error { return p.conn.Start() }

func (p *paho311) connected() bool { return p.c.IsConnectionOpen() }

func (p *paho311) publish(topic string, payload []byte) token {
	return p.c.Publish(topic, p.qos, p.retain, payload)
}

func (p *paho311) stop() { p.conn.Stop() }

// countFailures returns the counter of failed connection attempts by cause, for
// mqttconn.Prepared.OnFailure.
func countFailures(counter metric.Int64Counter) func(mqttconn.Cause) {
	attrs := map[mqttconn.Cause]metric.MeasurementOption{}
	for _, c := range mqttconn.Causes {
		attrs[c] = metric.WithAttributeSet(attribute.NewSet(attribute.String("cause", string(c))))
	}
	return func(c mqttconn.Cause) { counter.Add(context.Background(), 1, attrs[c]) }
}
