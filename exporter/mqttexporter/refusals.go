package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/otelcol-propeller/otelcol-propeller/internal/ratelog"
)

// Reasons a message is refused that are not about a topic value (those are propeller.Reason).
const (
	reasonNoPropletID = "no proplet id"
	reasonBroker      = "refused by the broker"
)

// refusals logs refused messages: the first of each reason at once, at warning, then at most
// once per reason a minute with the count since (a flood of bad ids, a buggy manager sending
// thousands of tasks, must not become a flood of log lines), and every one at debug. Every
// refused message is also counted in otelcol_exporter_mqtt_messages_refused, with its reason
// as the reason attribute.
type refusals struct {
	log *ratelog.Log
	// count is the refused counter, set when the exporter starts (nil before: building
	// messages without a running exporter, in tests, counts nothing).
	count metric.Int64Counter
}

func newRefusals(log *zap.Logger) *refusals {
	return &refusals{log: ratelog.New(log, ratelog.DefaultEvery, "refused")}
}

// refused records n messages refused for reason; msg says what the messages were and fields
// add the detail of this occurrence (which id, which template, the error).
func (r *refusals) refused(reason string, n int, msg string, fields ...zap.Field) {
	if r.count != nil {
		r.count.Add(context.Background(), int64(n), metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", reason))))
	}
	r.log.Log(zapcore.WarnLevel, reason, n, msg+" (logged at most once a minute per reason; every refusal is counted in otelcol_exporter_mqtt_messages_refused)", fields...)
}
