package propletreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

var (
	reportExact   = metric.WithAttributeSet(attribute.NewSet(attribute.Bool("exact", true)))
	reportInexact = metric.WithAttributeSet(attribute.NewSet(attribute.Bool("exact", false)))
)

// recordUsage adds a task's usage report to the logs of this batch: one log record, event
// propeller.task.end, with the task's resource (the same attributes as its metrics).
func (r *propletReceiver) recordUsage(s *monitor.Sample, res pcommon.Resource) {
	u := s.Usage
	opt := reportInexact
	if u.Exact {
		opt = reportExact
	}
	r.tel.ReceiverPropletTaskReports.Add(context.Background(), 1, opt)
	if r.logs == nil {
		return
	}
	rl := r.pendingLogs.ResourceLogs().AppendEmpty()
	res.CopyTo(rl.Resource())
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(scopeName)
	lr := sl.LogRecords().AppendEmpty()
	fillUsage(lr, s.TaskID, u, time.Now())
}

// scopeName is the instrumentation scope of the receiver's output.
const scopeName = "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

// fillUsage writes a usage report into a log record.
func fillUsage(lr plog.LogRecord, taskID string, u *monitor.Usage, observed time.Time) {
	lr.SetEventName(schema.TaskEndEvent)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(u.End))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(observed))
	lr.SetSeverityNumber(plog.SeverityNumberInfo)
	lr.SetSeverityText("INFO")
	lr.Body().SetStr(usageSummary(taskID, u))
	a := lr.Attributes()
	a.EnsureCapacity(len(schema.UsageAttributes))
	a.PutStr(schema.ProcessCreationTime, u.Start.UTC().Format(time.RFC3339Nano))
	a.PutStr(schema.ProcessExitTime, u.End.UTC().Format(time.RFC3339Nano))
	if u.HasExitCode {
		a.PutInt(schema.ProcessExitCode, int64(u.ExitCode))
	}
	if u.HasExitSignal {
		a.PutInt(schema.TaskExitSignal, int64(u.ExitSignal))
	}
	a.PutBool(schema.TaskOOMKilled, u.OOMKilled)
	a.PutDouble(schema.TaskDuration, u.Duration().Seconds())
	a.PutDouble(schema.TaskCPUUser, u.CPUUser)
	a.PutDouble(schema.TaskCPUSystem, u.CPUSystem)
	a.PutInt(schema.TaskMemoryPeak, clampInt(u.PeakMemory))
	if u.MemoryLimit > 0 {
		a.PutInt(schema.TaskMemoryLimit, clampInt(u.MemoryLimit))
	}
	a.PutInt(schema.TaskDiskRead, clampInt(u.ReadBytes))
	a.PutInt(schema.TaskDiskWrite, clampInt(u.WriteBytes))
	if u.HasNetwork {
		a.PutInt(schema.TaskNetworkReceive, clampInt(u.RxBytes))
		a.PutInt(schema.TaskNetworkTransmit, clampInt(u.TxBytes))
	}
	for _, d := range [...]struct {
		name string
		has  bool
		v    float64
	}{
		{schema.TaskCPUDelay, u.HasCPUDelay, u.CPUDelay},
		{schema.TaskBlkioDelay, u.HasBlockIODelay, u.BlockIODelay},
		{schema.TaskSwapinDelay, u.HasSwapInDelay, u.SwapInDelay},
		{schema.TaskMemoryReclaimDelay, u.HasMemoryReclaimDelay, u.MemoryReclaimDelay},
	} {
		if d.has { // absent where the kernel provided none: never a zero that means unknown
			a.PutDouble(d.name, d.v)
		}
	}
	a.PutBool(schema.TaskExact, u.Exact)
}

// usageSummary is the record's body: one line a person reads in a log view.
func usageSummary(taskID string, u *monitor.Usage) string {
	how := "ended"
	switch {
	case u.OOMKilled:
		how = "killed by the OOM killer"
	case u.HasExitSignal:
		how = fmt.Sprintf("killed by signal %d", u.ExitSignal)
	case u.HasExitCode:
		how = fmt.Sprintf("exited with code %d", u.ExitCode)
	}
	return fmt.Sprintf("task %s %s after %.3fs: %.3fs CPU, peak memory %d bytes", taskID, how, u.Duration().Seconds(), u.CPUUser+u.CPUSystem, u.PeakMemory)
}

func clampInt(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}

// flushLogs sends the usage reports of this batch.
func (r *propletReceiver) flushLogs(ctx context.Context) {
	n := r.pendingLogs.LogRecordCount()
	if n == 0 {
		return
	}
	ld := r.pendingLogs
	r.pendingLogs = plog.NewLogs()
	ctx = r.obsrecv.StartLogsOp(ctx)
	err := r.logs.ConsumeLogs(ctx, ld)
	r.obsrecv.EndLogsOp(ctx, metadata.Type.String(), n, err)
	if err != nil {
		r.set.Logger.Warn("Next consumer refused task usage reports or memory warnings", zap.Int("reports", n), zap.Error(err))
	}
}
