package propellermqttreceiver

import (
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/ratelog"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propellermqttreceiver/internal/metadata"
)

// Reasons a message is dropped besides the decoder's (propeller.DropReasons).
const (
	// reasonRefused counts messages the pipeline refused.
	reasonRefused propeller.DropReason = "refused"
	// reasonTooManyTasks and reasonTooManyProplets count messages of a new task or proplet
	// past max_tasks or max_proplets.
	reasonTooManyTasks    propeller.DropReason = "too_many_tasks"
	reasonTooManyProplets propeller.DropReason = "too_many_proplets"
)

// dropReasons is every reason the dropped counter carries.
var dropReasons = append([]propeller.DropReason{reasonRefused, reasonTooManyTasks, reasonTooManyProplets}, propeller.DropReasons...)

// initTelemetry builds the receiver's counters, their attribute sets, and the log of drops.
func (r *fleetReceiver) initTelemetry() error {
	tel, err := metadata.NewTelemetryBuilder(r.set.TelemetrySettings)
	if err != nil {
		return err
	}
	r.tel = tel
	attr := func(k, v string) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String(k, v)))
	}
	r.kinds = [2]metric.MeasurementOption{attr("kind", schema.KindTask.String()), attr("kind", schema.KindProplet.String())}
	r.repaired = map[propeller.Source]metric.MeasurementOption{}
	for _, s := range propeller.Sources {
		r.repaired[s] = attr("source", s.String())
	}
	r.reasons = map[propeller.DropReason]metric.MeasurementOption{}
	for _, reason := range dropReasons {
		r.reasons[reason] = attr("reason", string(reason))
	}
	r.drops = ratelog.New(r.set.Logger, ratelog.DefaultEvery, "dropped")
	return nil
}

// dropped counts a message the decoder refused and logs it (once per reason per minute).
func (r *fleetReceiver) dropped(reason propeller.DropReason, topic string, err error) {
	r.tel.ReceiverPropellerMqttDroppedMessages.Add(r.ctx, 1, r.reasons[reason])
	var de *propeller.DropError
	if errors.As(err, &de) {
		err = errors.New(de.Detail)
	}
	r.drops.Log(zapcore.WarnLevel, string(reason), 1, "Propeller metrics message dropped", zap.String("topic", shorten(topic)), zap.Error(err))
}

// overCap counts and logs a message of a new task or proplet when max_tasks or max_proplets
// are tracked already.
func (r *fleetReceiver) overCap(m *propeller.Received, topic string) {
	kind := m.Topic.Kind
	reason, key, propletID := reasonTooManyTasks, "max_tasks", m.Task.PropletID
	if kind == schema.KindProplet {
		reason, key, propletID = reasonTooManyProplets, "max_proplets", m.Proplet.PropletID
	}
	r.tel.ReceiverPropellerMqttDroppedMessages.Add(r.ctx, 1, r.reasons[reason])
	r.drops.Log(zapcore.ErrorLevel, string(reason), 1,
		"Propeller metrics message of a new "+kind.String()+" dropped: the gateway tracks "+key+" already; "+
			"raise "+key+" if the fleet is that large, else find the sender of so many ids (tracked ones are forgotten after tracking_expiration without a message)",
		zap.Int(key, r.tracked.Limit(kind)), zap.Duration("tracking_expiration", r.cfg.TrackingExpiration),
		zap.String("topic", shorten(topic)), zap.String("task_id", m.Task.TaskID),
		zap.String("proplet_id", propletID))
}

// shorten cuts a topic for a log line: a hostile one may be 64 KiB.
func shorten(topic string) string {
	const most = 256
	if len(topic) <= most {
		return topic
	}
	return topic[:most] + "..."
}
