package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
)

// refusalLogEvery is how often each reason for refusing messages is logged at warning: a flood
// of bad ids (a buggy manager sending thousands of tasks) must not become a flood of log lines.
const refusalLogEvery = time.Minute

// Reasons a message is refused that are not about a topic value (those are propeller.Reason).
const (
	reasonNoPropletID = "no proplet id"
	reasonBroker      = "refused by the broker"
)

// refusals logs refused messages: the first of each reason at once, at warning, then at most
// once per reason per refusalLogEvery with the count since, and every one at debug. Every
// refused message is also counted in otelcol_exporter_mqtt_messages_refused, with its reason
// as the reason attribute.
type refusals struct {
	log   *zap.Logger
	every time.Duration
	now   func() time.Time
	// count is the refused counter, set when the exporter starts (nil before: building
	// messages without a running exporter, in tests, counts nothing).
	count metric.Int64Counter

	mu      sync.Mutex
	reasons map[string]*refusalState
}

type refusalState struct {
	logged   time.Time // when this reason was last logged at warning
	unlogged int       // refused since then, not logged at warning
}

func newRefusals(log *zap.Logger) *refusals {
	return &refusals{log: log, every: refusalLogEvery, now: time.Now, reasons: map[string]*refusalState{}}
}

// refused records n messages refused for reason; msg says what the messages were and fields
// add the detail of this occurrence (which id, which template, the error).
func (r *refusals) refused(reason string, n int, msg string, fields ...zap.Field) {
	now := r.now()
	r.mu.Lock()
	st := r.reasons[reason]
	if st == nil {
		st = &refusalState{}
		r.reasons[reason] = st
	}
	st.unlogged += n
	warn := st.logged.IsZero() || now.Sub(st.logged) >= r.every
	count := st.unlogged
	if warn {
		st.logged, st.unlogged = now, 0
	}
	r.mu.Unlock()

	if r.count != nil {
		r.count.Add(context.Background(), int64(n), metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", reason))))
	}
	fields = append(fields, zap.String("reason", reason))
	if !warn {
		r.log.Debug(msg, fields...)
		return
	}
	fields = append(fields, zap.Int("refused_since_last_logged", count))
	r.log.Warn(msg+" (logged at most once a minute per reason; every refusal is counted in otelcol_exporter_mqtt_messages_refused)", fields...)
}
