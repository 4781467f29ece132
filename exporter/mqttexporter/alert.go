package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// alertNotCarried lists the memory warning's attributes (internal/schema) that the task_alerts
// message has no key for, and why. Every name of schema.MemoryEventAttributes is either read by
// decodeAlert or listed here; a test fails for a name that is neither.
var alertNotCarried = map[string]string{
	schema.TaskID:               "the message's ids come from the task's resource, as every message's; the record repeats them for log views",
	schema.PropletID:            "the message's ids come from the task's resource, as every message's; the record repeats them for log views",
	schema.TaskMemoryShare:      "value over limit: the message carries both",
	schema.TaskMemoryGrowthRate: "the message carries what it means, seconds_to_limit",
}

// decodeAlert reads one memory warning record into m (whose ids the caller set): its kind from
// the event name, the usage and limit (required, whole bytes, a limit above 0), the time to
// the limit (optional, finite and not negative), the record's timestamp (the observed one, or
// now, when it has none).
func decodeAlert(lr plog.LogRecord, m *propeller.TaskAlert) *usageError {
	m.Kind = propeller.AlertMemoryHigh
	if lr.EventName() == schema.TaskMemoryRecoveredEvent {
		m.Kind = propeller.AlertMemoryRecovered
	}
	var hasUsage, hasLimit bool
	var bad *usageError
	fail := func(reason, k, format string, args ...any) {
		if bad == nil {
			bad = &usageError{reason, k, fmt.Sprintf(format, args...)}
		}
	}
	typed := func(k string, v pcommon.Value, want pcommon.ValueType) bool {
		if v.Type() != want {
			fail(reasonWrongType, k, "is %s, must be %s", v.Type(), want)
			return false
		}
		return true
	}
	for k, v := range lr.Attributes().All() {
		switch k {
		case schema.TaskMemoryUsage:
			if !typed(k, v, pcommon.ValueTypeInt) {
				continue
			}
			if v.Int() < 0 {
				fail(reasonImpossibleVal, k, "%d bytes", v.Int())
				continue
			}
			m.Value, hasUsage = uint64(v.Int()), true
		case schema.TaskMemoryLimit:
			if !typed(k, v, pcommon.ValueTypeInt) {
				continue
			}
			if v.Int() <= 0 {
				fail(reasonImpossibleVal, k, "%d bytes: a warning needs a limit", v.Int())
				continue
			}
			m.Limit, hasLimit = uint64(v.Int()), true
		case schema.TaskMemorySecondsToLimit:
			if !typed(k, v, pcommon.ValueTypeDouble) {
				continue
			}
			if f := v.Double(); math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
				fail(reasonImpossibleVal, k, "%v seconds", f)
				continue
			}
			m.SecondsToLimit, m.HasSecondsToLimit = v.Double(), true
		}
	}
	switch {
	case bad != nil:
		return bad
	case !hasUsage:
		return &usageError{reasonMissingAttr, schema.TaskMemoryUsage, "is required"}
	case !hasLimit:
		return &usageError{reasonMissingAttr, schema.TaskMemoryLimit, "is required"}
	}
	switch {
	case lr.Timestamp() != 0:
		m.Timestamp = lr.Timestamp().AsTime()
	case lr.ObservedTimestamp() != 0:
		m.Timestamp = lr.ObservedTimestamp().AsTime()
	default:
		m.Timestamp = time.Now()
	}
	return nil
}
