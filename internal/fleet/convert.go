package fleet

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// Scope is the instrumentation scope the converted metrics carry: the receiver's.
type Scope struct {
	Name    string
	Version string
}

// Append writes m, received on topic t, as one resource of dst: a task's resource
// (propeller.task.id, propeller.proplet.id) or a proplet's (propeller.proplet.id,
// propeller.proplet.namespace), both with propeller.domain.id and propeller.channel.id from
// the topic. Metric names, units and data point attributes are the proplet receiver's
// (internal/schema); a field the message did not carry is not written.
func Append(dst pmetric.ResourceMetricsSlice, m *Message, t Topic, scope Scope) {
	rm := dst.AppendEmpty()
	attrs := rm.Resource().Attributes()
	attrs.EnsureCapacity(5)
	attrs.PutStr(schema.PropletID, m.PropletID)
	if m.Kind == KindTask {
		attrs.PutStr(schema.TaskID, m.TaskID)
	} else if m.Namespace != "" {
		attrs.PutStr(schema.PropletNamespace, m.Namespace)
	}
	attrs.PutStr(schema.DomainID, t.Domain)
	attrs.PutStr(schema.ChannelID, t.Channel)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(scope.Name)
	sm.Scope().SetVersion(scope.Version)
	w := writer{ms: sm.Metrics(), now: pcommon.Timestamp(m.Time)}
	if m.Kind == KindTask {
		w.task(m)
	} else {
		w.proplet(m)
	}
}

type writer struct {
	ms         pmetric.MetricSlice
	start, now pcommon.Timestamp
}

// task writes a task message's metrics, in the order the proplet receiver writes them.
func (w *writer) task(m *Message) {
	w.ms.EnsureCapacity(8)
	if m.Has&HasUptime != 0 && m.Uptime > 0 && float64(m.Time) > m.Uptime*1e9 {
		// The counters started with the process (or, from the Rust proplet, with monitoring).
		w.start = w.now - pcommon.Timestamp(m.Uptime*1e9)
	}
	if m.Has&HasCPUPercent != 0 {
		// Propeller's cpu_percent is a share of one core, over the proplet's interval. It is
		// not process.cpu.utilization (a share of all the host's CPUs, which the message does
		// not count) nor a cumulative time: it is written as cores used.
		w.gauge(schema.TaskCPUUsage, "{cpu}").SetDoubleValue(m.CPUPercent / 100)
	}
	if m.Has&(HasDiskRead|HasDiskWrite) != 0 {
		dps := w.sum(schema.ProcessDiskIO, "By", true)
		if m.Has&HasDiskRead != 0 {
			w.point(dps, schema.DiskIODirection, schema.DirectionRead).SetIntValue(m.DiskRead)
		}
		if m.Has&HasDiskWrite != 0 {
			w.point(dps, schema.DiskIODirection, schema.DirectionWrite).SetIntValue(m.DiskWrite)
		}
	}
	if m.Has&HasMemoryBytes != 0 {
		w.point(w.sum(schema.ProcessMemoryUsage, "By", false), "", "").SetIntValue(m.MemoryBytes)
	}
	if m.Has&HasMemoryPercent != 0 {
		w.gauge(schema.ProcessMemoryUtilization, "1").SetDoubleValue(m.MemoryPercent / 100)
	}
	if m.Has&(HasNetworkRx|HasNetworkTx) != 0 {
		dps := w.sum(schema.ProcessNetworkIO, "By", true)
		if m.Has&HasNetworkRx != 0 {
			w.point(dps, schema.NetworkIODirection, schema.DirectionReceive).SetIntValue(m.NetworkRx)
		}
		if m.Has&HasNetworkTx != 0 {
			w.point(dps, schema.NetworkIODirection, schema.DirectionTransmit).SetIntValue(m.NetworkTx)
		}
	}
	if m.Has&HasThreads != 0 {
		w.point(w.sum(schema.ProcessThreadCount, "{thread}", false), "", "").SetIntValue(m.Threads)
	}
	if m.Has&HasFDs != 0 {
		w.point(w.sum(schema.ProcessFileDescriptorCount, "{file_descriptor}", false), "", "").SetIntValue(m.FDs)
	}
	if m.Has&HasUptime != 0 {
		w.gauge(schema.ProcessUptime, "s").SetDoubleValue(m.Uptime)
	}
}

// proplet writes a proplet message's metrics.
func (w *writer) proplet(m *Message) {
	w.ms.EnsureCapacity(5)
	if m.Has&(HasCPUUser|HasCPUSystem) != 0 {
		dps := w.sum(schema.ProcessCPUTime, "s", true)
		if m.Has&HasCPUUser != 0 {
			w.point(dps, schema.CPUMode, schema.CPUModeUser).SetDoubleValue(m.CPUUser)
		}
		if m.Has&HasCPUSystem != 0 {
			w.point(dps, schema.CPUMode, schema.CPUModeSystem).SetDoubleValue(m.CPUSystem)
		}
	}
	if m.Has&HasRSS != 0 {
		w.point(w.sum(schema.ProcessMemoryUsage, "By", false), "", "").SetIntValue(m.RSS)
	}
	if m.Has&HasCgroupLimit != 0 {
		w.point(w.sum(schema.PropletCgroupMemoryLimit, "By", false), "", "").SetIntValue(m.CgroupLimit)
	}
	if m.Has&HasCgroupUsage != 0 {
		w.point(w.sum(schema.PropletCgroupMemoryUsage, "By", false), "", "").SetIntValue(m.CgroupUsage)
	}
	if m.Has&HasMachineCPU != 0 {
		// Propeller sends one machine-wide busy percentage; its complement is the idle share,
		// which is what "busy = 1 - idle" queries over the receiver's modes read.
		dps := w.gaugePoints(schema.SystemCPUUtilization, "1")
		w.point(dps, schema.CPUMode, schema.CPUModeIdle).SetDoubleValue(1 - m.MachineCPU/100)
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
