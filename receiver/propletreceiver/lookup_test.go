package propletreceiver

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

// TestTaskNotFoundIsRecordedAsLookupZero: a lookup sample of a pending task becomes a resource
// with the task's identity and propeller.task.lookup 0, nothing else; a measured sample
// carries lookup 1.
func TestTaskNotFoundIsRecordedAsLookupZero(t *testing.T) {
	t.Parallel()
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "p"
	r := &propletReceiver{cfg: cfg, mb: metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, receivertest.NewNopSettings(metadata.Type))}
	std, _ := profile.Builtin(profile.Standard)
	now := time.Now()
	r.record(&monitor.Sample{Kind: monitor.KindTask, Time: now, TaskID: "waiting", TaskName: "w", ProfileName: profile.Standard, Profile: std, Pending: true})
	r.record(&monitor.Sample{Kind: monitor.KindTask, Time: now, TaskID: "found", ProfileName: profile.Standard, Profile: std, HasProcess: true, PID: 7, Start: now.Add(-time.Second)})
	md := r.mb.Emit()
	require.Equal(t, 2, md.ResourceMetrics().Len())

	lookup := func(rm pmetric.ResourceMetrics) (int64, []string) {
		var names []string
		var v int64 = -1
		ms := rm.ScopeMetrics().At(0).Metrics()
		for i := 0; i < ms.Len(); i++ {
			names = append(names, ms.At(i).Name())
			if ms.At(i).Name() == "propeller.task.lookup" {
				v = ms.At(i).Gauge().DataPoints().At(0).IntValue()
			}
		}
		return v, names
	}
	waiting := md.ResourceMetrics().At(0)
	v, names := lookup(waiting)
	assert.Equal(t, int64(0), v)
	assert.Equal(t, []string{"propeller.task.lookup"}, names, "nothing measured")
	id, _ := waiting.Resource().Attributes().Get("propeller.task.id")
	assert.Equal(t, "waiting", id.Str())
	_, hasPID := waiting.Resource().Attributes().Get("process.pid")
	assert.False(t, hasPID)

	v, _ = lookup(md.ResourceMetrics().At(1))
	assert.Equal(t, int64(1), v)
}

// TestTaskCountByState: otelcol_receiver_proplet_tasks follows the state machine, one series
// per state.
func TestTaskCountByState(t *testing.T) {
	t.Parallel()
	tt := componenttest.NewTelemetry()
	defer func() { require.NoError(t, tt.Shutdown(context.Background())) }()
	tb, err := metadata.NewTelemetryBuilder(tt.NewTelemetrySettings())
	require.NoError(t, err)
	tel := telemetry{tb}
	tel.TaskState("", monitor.StatePending)
	tel.TaskState("", monitor.StatePending)
	tel.TaskState(monitor.StatePending, monitor.StateActive)
	tel.TaskState(monitor.StateActive, monitor.StateStopped)
	tel.TaskState(monitor.StateStopped, "")

	m, err := tt.GetMetric("otelcol_receiver_proplet_tasks")
	require.NoError(t, err)
	got := map[string]int64{}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		state, _ := dp.Attributes.Value("state")
		got[state.AsString()] = dp.Value
	}
	assert.Equal(t, map[string]int64{"pending": 1, "active": 0, "stopped": 0}, got)
}
