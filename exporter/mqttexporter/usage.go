package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"context"
	"encoding"
	"fmt"
	"math"
	"sync"
	"time"

	"go.opentelemetry.io/collector/exporter/exporterhelper/xexporterhelper"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// Reasons a task usage record is refused. A record is refused, not repaired: the report is
// what invoicing reads, and a guessed zero would be billed as a fact.
const (
	reasonNoTaskID      = "no task id"
	reasonMissingAttr   = "missing attribute"
	reasonWrongType     = "wrong attribute type"
	reasonImpossibleVal = "impossible attribute value"
)

// Reasons a log record is skipped: it is not for the task_usage or task_alerts topics, which
// is no fault.
const (
	skipOtherEvent   = "not a task usage report or memory warning"
	skipNotExport    = "export_to_mqtt false"
	skipNoTopic      = "no task_usage topic"
	skipNoAlertTopic = "no task_alerts topic"
)

// usageNotCarried lists the task usage report's attributes (internal/schema) that the
// task_usage message has no key for, and why. Every name of schema.UsageAttributes is either
// read by decodeUsage or listed here; a test fails for a name that is neither.
var usageNotCarried = map[string]string{
	schema.TaskMemoryLimit: "the message has no memory limit key; the limit stays on the OTLP record for other exporters",
}

// usageError is why a record cannot become a message: its reason keys the refusal's count and
// log line, attr names the attribute at fault.
type usageError struct {
	reason string
	attr   string
	detail string
}

func (e *usageError) Error() string { return fmt.Sprintf("%s: %s", e.attr, e.detail) }

// Bits of the usage attributes a record carries.
const (
	hasCreation uint32 = 1 << iota
	hasExitTime
	hasExitCode
	hasExitSignal
	hasOOM
	hasDuration
	hasCPUUser
	hasCPUSystem
	hasPeak
	hasDiskRead
	hasDiskWrite
	hasNetRx
	hasNetTx
	hasExact
	hasCPUDelay
	hasBlkioDelay
	hasSwapinDelay
	hasMemoryReclaimDelay
)

// usageRequired are the attributes every report carries (internal/schema: all but the exit
// code and signal, the network pair, the memory limit and the delays).
var usageRequired = [...]struct {
	bit  uint32
	name string
}{
	{hasCreation, schema.ProcessCreationTime},
	{hasExitTime, schema.ProcessExitTime},
	{hasOOM, schema.TaskOOMKilled},
	{hasDuration, schema.TaskDuration},
	{hasCPUUser, schema.TaskCPUUser},
	{hasCPUSystem, schema.TaskCPUSystem},
	{hasPeak, schema.TaskMemoryPeak},
	{hasDiskRead, schema.TaskDiskRead},
	{hasDiskWrite, schema.TaskDiskWrite},
	{hasExact, schema.TaskExact},
}

// decodeUsage reads one propeller.task.end record's attributes, in one pass, into m (whose ids
// the caller set). Every attribute must have its schema type: a count sent as a double or a
// flag as a string is a producer's bug, and is refused rather than guessed at.
func decodeUsage(attrs pcommon.Map, ts pcommon.Timestamp, m *propeller.TaskUsage) *usageError {
	var seen uint32
	var bad *usageError
	typed := func(k string, v pcommon.Value, want pcommon.ValueType) bool {
		if v.Type() == want {
			return true
		}
		if bad == nil {
			bad = &usageError{reasonWrongType, k, fmt.Sprintf("is %s, must be %s", v.Type(), want)}
		}
		return false
	}
	impossible := func(k, format string, args ...any) {
		if bad == nil {
			bad = &usageError{reasonImpossibleVal, k, fmt.Sprintf(format, args...)}
		}
	}
	timeOf := func(k string, v pcommon.Value, bit uint32, dst *time.Time) {
		if !typed(k, v, pcommon.ValueTypeStr) {
			return
		}
		t, err := time.Parse(time.RFC3339Nano, v.Str())
		if err != nil {
			impossible(k, "%q is not an RFC 3339 time", clip(v.Str(), 64))
			return
		}
		// In UTC, an offset can push year 0000 or 9999 out of the four digits RFC 3339 has:
		// the message would carry a time the manager cannot parse.
		if y := t.UTC().Year(); y < 0 || y > 9999 {
			impossible(k, "%q is outside RFC 3339's years once in UTC", clip(v.Str(), 64))
			return
		}
		*dst, seen = t, seen|bit
	}
	seconds := func(k string, v pcommon.Value, bit uint32, dst *float64) {
		if !typed(k, v, pcommon.ValueTypeDouble) {
			return
		}
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			impossible(k, "%v seconds", f)
			return
		}
		*dst, seen = f, seen|bit
	}
	bytes := func(k string, v pcommon.Value, bit uint32, dst *uint64) {
		if !typed(k, v, pcommon.ValueTypeInt) {
			return
		}
		if v.Int() < 0 {
			impossible(k, "%d bytes", v.Int())
			return
		}
		*dst, seen = uint64(v.Int()), seen|bit
	}
	flag := func(k string, v pcommon.Value, bit uint32, dst *bool) {
		if typed(k, v, pcommon.ValueTypeBool) {
			*dst, seen = v.Bool(), seen|bit
		}
	}
	for k, v := range attrs.All() {
		switch k {
		case schema.ProcessCreationTime:
			timeOf(k, v, hasCreation, &m.StartedAt)
		case schema.ProcessExitTime:
			timeOf(k, v, hasExitTime, &m.EndedAt)
		case schema.ProcessExitCode:
			if typed(k, v, pcommon.ValueTypeInt) {
				m.ExitCode, seen = v.Int(), seen|hasExitCode
			}
		case schema.TaskExitSignal:
			if !typed(k, v, pcommon.ValueTypeInt) {
				continue
			}
			if v.Int() <= 0 {
				impossible(k, "signal %d", v.Int())
				continue
			}
			m.ExitSignal, seen = v.Int(), seen|hasExitSignal
		case schema.TaskOOMKilled:
			flag(k, v, hasOOM, &m.OOMKilled)
		case schema.TaskDuration:
			seconds(k, v, hasDuration, &m.DurationSeconds)
		case schema.TaskCPUUser:
			seconds(k, v, hasCPUUser, &m.CPUUserSeconds)
		case schema.TaskCPUSystem:
			seconds(k, v, hasCPUSystem, &m.CPUSystemSeconds)
		case schema.TaskMemoryPeak:
			bytes(k, v, hasPeak, &m.PeakMemoryBytes)
		case schema.TaskDiskRead:
			bytes(k, v, hasDiskRead, &m.DiskReadBytes)
		case schema.TaskDiskWrite:
			bytes(k, v, hasDiskWrite, &m.DiskWriteBytes)
		case schema.TaskNetworkReceive:
			bytes(k, v, hasNetRx, &m.NetworkRxBytes)
		case schema.TaskNetworkTransmit:
			bytes(k, v, hasNetTx, &m.NetworkTxBytes)
		case schema.TaskExact:
			flag(k, v, hasExact, &m.Exact)
		case schema.TaskCPUDelay:
			seconds(k, v, hasCPUDelay, &m.CPUDelaySeconds)
		case schema.TaskBlkioDelay:
			seconds(k, v, hasBlkioDelay, &m.BlkioDelaySeconds)
		case schema.TaskSwapinDelay:
			seconds(k, v, hasSwapinDelay, &m.SwapinDelaySeconds)
		case schema.TaskMemoryReclaimDelay:
			seconds(k, v, hasMemoryReclaimDelay, &m.MemoryReclaimDelaySeconds)
		}
	}
	if bad != nil {
		return bad
	}
	for _, r := range usageRequired {
		if seen&r.bit == 0 {
			return &usageError{reasonMissingAttr, r.name, "is required"}
		}
	}
	switch net := seen & (hasNetRx | hasNetTx); net {
	case hasNetRx:
		return &usageError{reasonMissingAttr, schema.TaskNetworkTransmit, "is required with " + schema.TaskNetworkReceive}
	case hasNetTx:
		return &usageError{reasonMissingAttr, schema.TaskNetworkReceive, "is required with " + schema.TaskNetworkTransmit}
	}
	if seen&(hasExitCode|hasExitSignal) == hasExitCode|hasExitSignal {
		return &usageError{reasonImpossibleVal, schema.TaskExitSignal, "is set with " + schema.ProcessExitCode + ": a process either exits or is killed"}
	}
	m.HasNetwork = seen&hasNetRx != 0
	m.HasExitCode = seen&hasExitCode != 0
	m.HasExitSignal = seen&hasExitSignal != 0
	// Each delay is optional: absent where the kernel provided none.
	m.HasCPUDelay, m.HasBlkioDelay = seen&hasCPUDelay != 0, seen&hasBlkioDelay != 0
	m.HasSwapinDelay, m.HasMemoryReclaimDelay = seen&hasSwapinDelay != 0, seen&hasMemoryReclaimDelay != 0
	m.Timestamp = m.EndedAt
	if ts != 0 {
		m.Timestamp = ts.AsTime()
	}
	return nil
}

// convertLogs maps a batch's task usage records to their messages before it is queued, with
// the delivery of the metrics messages. Other records are skipped and counted; a record that
// cannot make a message is refused, counted and logged, never queued.
func (e *mqttExporter) convertLogs(_ context.Context, ld plog.Logs) (xexporterhelper.Request, error) {
	return e.buildLogs(ld), nil
}

// pushQueuedLogs publishes a queued request of the logs signal.
func (e *mqttExporter) pushQueuedLogs(ctx context.Context, req xexporterhelper.Request) error {
	return e.send(ctx, req, e.usageRefusals)
}

// buildLogs maps every task usage record and every memory warning record to its message, in
// its compact form, with the topics it can go to.
func (e *mqttExporter) buildLogs(ld plog.Logs) *queued {
	rec := newRecorder(ld.LogRecordCount() * 192)
	topic := make([]byte, 0, 128)
	vals := propeller.Values{DomainID: e.cfg.DomainID, ChannelID: e.cfg.ChannelID}
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		var a attributes
		var read bool
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				// what the record is: its topics, and the names its skips and refusals use
				var tpls []propeller.Template
				var key, what, noTopic string
				switch lr.EventName() {
				case schema.TaskEndEvent:
					tpls, key, what, noTopic = e.tpl.usage, "task_usage", "Task usage report", skipNoTopic
				case schema.TaskMemoryHighEvent, schema.TaskMemoryRecoveredEvent:
					tpls, key, what, noTopic = e.tpl.alerts, "task_alerts", "Task alert", skipNoAlertTopic
				default:
					e.skips.skip(skipOtherEvent, "Log record skipped: not a task usage report ("+schema.TaskEndEvent+") or memory warning ("+
						schema.TaskMemoryHighEvent+", "+schema.TaskMemoryRecoveredEvent+")", zap.String("event_name", clip(lr.EventName(), 64)))
					continue
				}
				if len(tpls) == 0 {
					e.skips.skip(noTopic, what+" skipped: topics."+key+" is empty")
					continue
				}
				if !read {
					a, read = readAttributes(rl.Resource().Attributes(), e.mapper.defaults), true
				}
				if !a.profile.export {
					e.skips.skip(skipNotExport, what+" skipped: the task's monitoring profile has export_to_mqtt false",
						zap.String("task_id", clip(a.taskID, 64)))
					continue
				}
				vals.TaskID, vals.PropletID = a.taskID, e.cfg.PropletID
				if a.propletID != "" {
					vals.PropletID = a.propletID
				}
				if vals.TaskID == "" {
					e.usageRefusals.refused(reasonNoTaskID, len(tpls), what+" refused: its resource has no "+schema.TaskID+"; not published")
					continue
				}
				if vals.PropletID == "" {
					e.usageRefusals.refused(reasonNoPropletID, len(tpls), what+" refused: no proplet id (set propeller.proplet.id or the exporter's proplet_id); not published",
						zap.String("task_id", clip(vals.TaskID, 64)))
					continue
				}
				var msg encoding.BinaryAppender
				var kind byte
				var err *usageError
				if lr.EventName() == schema.TaskEndEvent {
					u := propeller.TaskUsage{TaskID: vals.TaskID, PropletID: vals.PropletID}
					msg, kind, err = &u, kindUsage, decodeUsage(lr.Attributes(), lr.Timestamp(), &u)
				} else {
					al := propeller.TaskAlert{TaskID: vals.TaskID, PropletID: vals.PropletID}
					msg, kind, err = &al, kindAlert, decodeAlert(lr, &al)
				}
				if err != nil {
					e.usageRefusals.refused(err.reason, len(tpls), what+" refused: "+err.reason+"; not published",
						zap.String("task_id", clip(vals.TaskID, 64)), zap.String("attribute", err.attr), zap.String("error", err.Error()))
					continue
				}
				var mask uint64
				if mask, topic = e.checkTopics(e.usageRefusals, topic, tpls, &vals, key); mask != 0 {
					rec.add(kind, mask, msg)
				}
			}
		}
	}
	return rec.request()
}

// skips counts log records that make no message, by reason, and logs the first of each reason
// at info (a logs pipeline that carries other logs too is a normal setup, not a fault) and the
// rest at debug.
type skips struct {
	log   *zap.Logger
	count metric.Int64Counter // set when the exporter starts
	mu    sync.Mutex
	seen  map[string]bool
}

func newSkips(log *zap.Logger) *skips { return &skips{log: log, seen: map[string]bool{}} }

func (s *skips) skip(reason, msg string, fields ...zap.Field) {
	if s.count != nil {
		s.count.Add(context.Background(), 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", reason))))
	}
	s.mu.Lock()
	first := !s.seen[reason]
	s.seen[reason] = true
	s.mu.Unlock()
	fields = append(fields, zap.String("reason", reason))
	if first {
		s.log.Info(msg+" (logged once; every skipped record is counted in otelcol_exporter_mqtt_log_records_skipped)", fields...)
		return
	}
	s.log.Debug(msg, fields...)
}

// logsLogger makes the logs path log with the logs signal's logger (its lines then say
// otelcol.signal: logs), whichever signal created the shared exporter. Called before start.
func (e *mqttExporter) logsLogger(log *zap.Logger) {
	e.usageRefusals = newRefusals(log)
	e.skips = newSkips(log)
}
