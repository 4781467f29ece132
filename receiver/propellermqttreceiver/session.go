package propellermqttreceiver

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
)

// sessionTelemetry counts what the broker connection refused and the retained messages
// ignored, and logs the first retained message ignored.
type sessionTelemetry struct {
	causes         map[mqttconn.Cause]metric.MeasurementOption
	retainedLogged atomic.Bool
}

// connect prepares the broker connection and the subscriber: the configured filters, at QoS 1,
// with the configured session, failed connections counted by cause.
func (r *fleetReceiver) connect() (*mqttconn.Subscriber, error) {
	p, err := r.cfg.Prepare(r.ctx, "otelcol-propeller-fleet-")
	if err != nil {
		return nil, err
	}
	r.session.causes = map[mqttconn.Cause]metric.MeasurementOption{}
	for _, c := range mqttconn.Causes {
		r.session.causes[c] = metric.WithAttributeSet(attribute.NewSet(attribute.String("cause", string(c))))
	}
	p.OnFailure = func(c mqttconn.Cause) {
		r.tel.ReceiverPropellerMqttConnectionFailures.Add(context.Background(), 1, r.session.causes[c])
	}
	return p.NewSubscriber(mqttconn.SubscriberConfig{
		Filters:       r.cfg.filters(),
		Policy:        r.cfg.Session,
		SessionExpiry: r.cfg.SessionExpiry,
		Handle:        r.onMessage,
	}, r.set.Logger), nil
}

// retained counts a retained message not taken in; the first is logged, so that a user who
// publishes retained metrics learns why they are not seen.
func (r *fleetReceiver) retained(topic string) {
	r.tel.ReceiverPropellerMqttRetainedMessagesIgnored.Add(context.Background(), 1)
	if r.session.retainedLogged.CompareAndSwap(false, true) {
		r.set.Logger.Warn("Retained message ignored: the broker sends retained messages again at every connection, so each would be an old sample stamped anew; "+
			"set accept_retained: true to take them in (logged once; every one is counted in otelcol_receiver_propeller_mqtt_retained_messages_ignored)",
			zap.String("topic", topic))
	}
}
