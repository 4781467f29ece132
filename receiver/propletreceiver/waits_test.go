package propletreceiver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

var waitMetrics = []string{
	schema.TaskCPUWaitTime, schema.TaskDiskIOWaitTime, schema.TaskPressureStallTime,
	schema.TaskCPUThrottledTime, schema.TaskCPUThrottledPeriods, schema.TaskCPUPeriods,
}

// metricPoints counts the data points of each metric name in md.
func metricPoints(md pmetric.Metrics) map[string]int {
	n := map[string]int{}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Type() == pmetric.MetricTypeSum {
					n[m.Name()] += m.Sum().DataPoints().Len()
				} else {
					n[m.Name()] += m.Gauge().DataPoints().Len()
				}
			}
		}
	}
	return n
}

// TestWaitsAreWrittenOnlyWhenPresent: a sample without waits (collect_waits off, or a kernel
// that keeps none) writes none of the wait metrics, not zeros; each figure present is written,
// and a pressure file without a full line gives only the some point.
func TestWaitsAreWrittenOnlyWhenPresent(t *testing.T) {
	t.Parallel()
	full := fullSamples()[0]

	none := full
	none.HasCPUWait, none.HasDiskIOWait, none.HasThrottling = false, false, false
	none.Pressure = [process.NumPressure]monitor.Stall{}
	got := metricPoints(recordOne(t, &none))
	for _, name := range waitMetrics {
		assert.Zero(t, got[name], "%s written for a sample without it", name)
	}
	assert.NotZero(t, got[schema.ProcessCPUTime], "the rest is written")

	some := none
	some.HasCPUWait, some.CPUWait = true, 0.5
	some.Pressure[process.PressureCPU] = monitor.Stall{Some: 1, HasSome: true}
	got = metricPoints(recordOne(t, &some))
	assert.Equal(t, 1, got[schema.TaskCPUWaitTime])
	assert.Equal(t, 1, got[schema.TaskPressureStallTime], "cpu some only: no full line, no memory or io file")
	for _, name := range []string{schema.TaskDiskIOWaitTime, schema.TaskCPUThrottledTime, schema.TaskCPUThrottledPeriods, schema.TaskCPUPeriods} {
		assert.Zero(t, got[name], name)
	}

	got = metricPoints(recordOne(t, &full))
	assert.Equal(t, 6, got[schema.TaskPressureStallTime], "three resources, some and full")
	for _, name := range waitMetrics {
		assert.NotZero(t, got[name], name)
	}
}

// recordOne records one sample with the default metrics configuration.
func recordOne(t *testing.T, s *monitor.Sample) pmetric.Metrics {
	t.Helper()
	r := newRecorder(t)
	r.record(s)
	md := r.mb.Emit()
	require.Equal(t, 1, md.ResourceMetrics().Len())
	return md
}

func newRecorder(t *testing.T) *propletReceiver {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	return &propletReceiver{cfg: cfg, mb: metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, receivertest.NewNopSettings(metadata.Type))}
}
