// Package fleet turns the metrics messages Propeller's proplets publish (decoded by
// internal/propeller, from this project's exporter, the Rust proplet or any other sender) into
// pdata metrics with the names, units and resource attributes the proplet receiver writes
// (internal/schema), so one dashboard shows every task of a fleet whichever side measured it;
// and it bounds what a gateway tracks (Tracker), so a flood of ids cannot grow the series
// without end. It knows nothing of the Collector's wiring: the propeller_mqtt receiver
// subscribes, counts and hands the result on.
package fleet // import "github.com/otelcol-propeller/otelcol-propeller/internal/fleet"

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// Scope is the instrumentation scope the converted metrics carry: the receiver's.
type Scope struct {
	Name    string
	Version string
}

// Append writes m as one resource of dst: a task's resource (propeller.task.id,
// propeller.proplet.id) or a proplet's (propeller.proplet.id, propeller.proplet.namespace),
// both with propeller.domain.id and propeller.channel.id from the topic. Metric names, units
// and data point attributes are the proplet receiver's (internal/schema); a field the message
// did not carry is not written.
func Append(dst pmetric.ResourceMetricsSlice, m *propeller.Received, scope Scope) {
	rm := dst.AppendEmpty()
	attrs := rm.Resource().Attributes()
	attrs.EnsureCapacity(5)
	task := m.Topic.Kind == schema.KindTask
	if task {
		attrs.PutStr(schema.PropletID, m.Task.PropletID)
		attrs.PutStr(schema.TaskID, m.Task.TaskID)
	} else {
		attrs.PutStr(schema.PropletID, m.Proplet.PropletID)
		if m.Proplet.Namespace != "" {
			attrs.PutStr(schema.PropletNamespace, m.Proplet.Namespace)
		}
	}
	attrs.PutStr(schema.DomainID, m.Topic.Domain)
	attrs.PutStr(schema.ChannelID, m.Topic.Channel)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(scope.Name)
	sm.Scope().SetVersion(scope.Version)
	w := writer{ms: sm.Metrics(), now: pcommon.Timestamp(m.Time)}
	if task {
		w.task(&m.Task.Metrics, m.Time)
	} else {
		w.proplet(&m.Proplet)
	}
}

type writer struct {
	ms         pmetric.MetricSlice
	start, now pcommon.Timestamp
}

// task writes a task message's metrics, in the order the proplet receiver writes them.
func (w *writer) task(m *propeller.TaskMetrics, at int64) {
	w.ms.EnsureCapacity(8)
	if m.Has&propeller.HasUptime != 0 && m.UptimeSeconds > 0 && uint64(at) > m.UptimeSeconds*1e9 {
		// The counters started with the process (or, from the Rust proplet, with monitoring).
		w.start = w.now - pcommon.Timestamp(m.UptimeSeconds*1e9)
	}
	if m.Has&propeller.HasCPU != 0 {
		// Propeller's cpu_percent is a share of one core, over the proplet's interval. It is
		// not process.cpu.utilization (a share of all the host's CPUs, which the message does
		// not count) nor a cumulative time: it is written as cores used.
		w.gauge(schema.TaskCPUUsage, "{cpu}").SetDoubleValue(m.CPUPercent / 100)
	}
	// Every value is within its physical bound (propeller.MaxMemoryBytes, MaxIOBytes), far below 2^63.
	if m.Has&propeller.HasDisk != 0 {
		dps := w.sum(schema.ProcessDiskIO, "By", true)
		if m.Has&propeller.HasDiskRead != 0 {
			w.point(dps, schema.DiskIODirection, schema.DirectionRead).SetIntValue(int64(m.DiskReadBytes))
		}
		if m.Has&propeller.HasDiskWrite != 0 {
			w.point(dps, schema.DiskIODirection, schema.DirectionWrite).SetIntValue(int64(m.DiskWriteBytes))
		}
	}
	if m.Has&propeller.HasMemory != 0 {
		w.point(w.sum(schema.ProcessMemoryUsage, "By", false), "", "").SetIntValue(int64(m.MemoryBytes))
	}
	if m.Has&propeller.HasMemoryPercent != 0 {
		w.gauge(schema.ProcessMemoryUtilization, "1").SetDoubleValue(m.MemoryPercent / 100)
	}
	if m.Has&propeller.HasNetwork != 0 {
		dps := w.sum(schema.ProcessNetworkIO, "By", true)
		if m.Has&propeller.HasNetworkRx != 0 {
			w.point(dps, schema.NetworkIODirection, schema.DirectionReceive).SetIntValue(int64(m.NetworkRxBytes))
		}
		if m.Has&propeller.HasNetworkTx != 0 {
			w.point(dps, schema.NetworkIODirection, schema.DirectionTransmit).SetIntValue(int64(m.NetworkTxBytes))
		}
	}
	if m.Has&propeller.HasThreads != 0 {
		w.point(w.sum(schema.ProcessThreadCount, "{thread}", false), "", "").SetIntValue(m.ThreadCount)
	}
	if m.Has&propeller.HasFDs != 0 {
		w.point(w.sum(schema.ProcessFileDescriptorCount, "{file_descriptor}", false), "", "").SetIntValue(m.FileDescriptorCount)
	}
	if m.Has&propeller.HasUptime != 0 {
		w.gauge(schema.ProcessUptime, "s").SetDoubleValue(float64(m.UptimeSeconds))
	}
}

// proplet writes a proplet message's metrics.
func (w *writer) proplet(m *propeller.PropletMessage) {
	w.ms.EnsureCapacity(5)
	if m.Has&propeller.HasCPUTimes != 0 {
		dps := w.sum(schema.ProcessCPUTime, "s", true)
		if m.Has&propeller.HasCPUUser != 0 {
			w.point(dps, schema.CPUMode, schema.CPUModeUser).SetDoubleValue(m.UserSeconds)
		}
		if m.Has&propeller.HasCPUSystem != 0 {
			w.point(dps, schema.CPUMode, schema.CPUModeSystem).SetDoubleValue(m.SystemSeconds)
		}
	}
	if m.Has&propeller.HasRSS != 0 {
		w.point(w.sum(schema.ProcessMemoryUsage, "By", false), "", "").SetIntValue(int64(m.RSSBytes))
	}
	if m.Has&propeller.HasContainerLimit != 0 {
		w.point(w.sum(schema.PropletCgroupMemoryLimit, "By", false), "", "").SetIntValue(int64(m.ContainerLimitBytes))
	}
	if m.Has&propeller.HasContainerUsage != 0 {
		w.point(w.sum(schema.PropletCgroupMemoryUsage, "By", false), "", "").SetIntValue(int64(m.ContainerUsageBytes))
	}
	if m.Has&propeller.HasCPUPercent != 0 {
		// Propeller sends one machine-wide busy percentage; its complement is the idle share,
		// which is what "busy = 1 - idle" queries over the receiver's modes read.
		dps := w.gaugePoints(schema.SystemCPUUtilization, "1")
		w.point(dps, schema.CPUMode, schema.CPUModeIdle).SetDoubleValue(1 - m.Percent/100)
	}
}

func (w *writer) metric(name, unit string) pmetric.Metric {
	mt := w.ms.AppendEmpty()
	mt.SetName(name)
	mt.SetUnit(unit)
	return mt
}

func (w *writer) gaugePoints(name, unit string) pmetric.NumberDataPointSlice {
	return w.metric(name, unit).SetEmptyGauge().DataPoints()
}

// gauge writes a gauge of one point without attributes and returns the point.
func (w *writer) gauge(name, unit string) pmetric.NumberDataPoint {
	return w.point(w.gaugePoints(name, unit), "", "")
}

func (w *writer) sum(name, unit string, monotonic bool) pmetric.NumberDataPointSlice {
	s := w.metric(name, unit).SetEmptySum()
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	s.SetIsMonotonic(monotonic)
	return s.DataPoints()
}

// point appends a data point with the message's times and, when key is set, one attribute.
func (w *writer) point(dps pmetric.NumberDataPointSlice, key, value string) pmetric.NumberDataPoint {
	dp := dps.AppendEmpty()
	dp.SetStartTimestamp(w.start)
	dp.SetTimestamp(w.now)
	if key != "" {
		dp.Attributes().PutStr(key, value)
	}
	return dp
}
