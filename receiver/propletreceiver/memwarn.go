package propletreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

var (
	memoryHigh      = metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", monitor.MemoryHigh.String())))
	memoryRecovered = metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", monitor.MemoryRecovered.String())))
)

// recordMemory adds a task's memory warning to the logs of this batch: one log record, event
// propeller.task.memory.high or propeller.task.memory.recovered, with the task's resource.
// It is counted whether or not a logs pipeline uses the receiver.
func (r *propletReceiver) recordMemory(s *monitor.Sample, res pcommon.Resource) {
	ev := s.Memory
	opt := memoryHigh
	if ev.Kind == monitor.MemoryRecovered {
		opt = memoryRecovered
	}
	r.tel.ReceiverPropletMemoryWarnings.Add(context.Background(), 1, opt)
	if r.logs == nil {
		return
	}
	rl := r.pendingLogs.ResourceLogs().AppendEmpty()
	res.CopyTo(rl.Resource())
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(scopeName)
	fillMemory(sl.LogRecords().AppendEmpty(), s.TaskID, r.cfg.PropletID, s.Time, ev, time.Now())
}

// fillMemory writes a memory warning into a log record, timestamped when its sample was taken.
func fillMemory(lr plog.LogRecord, taskID, propletID string, at time.Time, ev *monitor.MemoryEvent, observed time.Time) {
	lr.SetTimestamp(pcommon.NewTimestampFromTime(at))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(observed))
	if ev.Kind == monitor.MemoryRecovered {
		lr.SetEventName(schema.TaskMemoryRecoveredEvent)
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		lr.SetSeverityText("INFO")
	} else {
		lr.SetEventName(schema.TaskMemoryHighEvent)
		lr.SetSeverityNumber(plog.SeverityNumberWarn)
		lr.SetSeverityText("WARN")
	}
	lr.Body().SetStr(memorySummary(taskID, ev))
	a := lr.Attributes()
	a.EnsureCapacity(len(schema.MemoryEventAttributes))
	a.PutStr(schema.TaskID, taskID)
	a.PutStr(schema.PropletID, propletID)
	a.PutInt(schema.TaskMemoryUsage, clampInt(ev.Usage))
	a.PutInt(schema.TaskMemoryLimit, clampInt(ev.Limit))
	a.PutDouble(schema.TaskMemoryShare, ev.Share)
	if ev.HasGrowthRate {
		a.PutDouble(schema.TaskMemoryGrowthRate, ev.GrowthRate)
	}
	if ev.HasSecondsToLimit {
		a.PutDouble(schema.TaskMemorySecondsToLimit, ev.SecondsToLimit)
	}
}

// memorySummary is the record's body: one line a person reads in a log view.
func memorySummary(taskID string, ev *monitor.MemoryEvent) string {
	used := fmt.Sprintf("%.1f%% of its memory limit (%d of %d bytes)", ev.Share*100, ev.Usage, ev.Limit)
	switch {
	case ev.Kind == monitor.MemoryRecovered:
		return fmt.Sprintf("task %s memory back to %s", taskID, used)
	case ev.HasSecondsToLimit:
		return fmt.Sprintf("task %s memory at %s, growing %.0f bytes/s: at the limit in %.1fs, where the kernel's OOM killer ends it", taskID, used, ev.GrowthRate, ev.SecondsToLimit)
	}
	return fmt.Sprintf("task %s memory at %s, not growing; the kernel's OOM killer ends it at the limit", taskID, used)
}
