package fleet

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// now is a receive time a minute after the fixtures' timestamps.
var now = time.Date(2025, 1, 15, 10, 36, 22, 0, time.UTC).UnixNano()

var (
	taskTopic    = propeller.Topic{Domain: "d1", Channel: "c1", Kind: schema.KindTask}
	propletTopic = propeller.Topic{Domain: "d1", Channel: "c1", Kind: schema.KindProplet}
)

// fixture is one of the wire format's fixtures, which internal/propeller keeps.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "propeller", "testdata", name))
	require.NoError(t, err)
	return b
}

func decode(t testing.TB, name string, topic propeller.Topic) *propeller.Received {
	t.Helper()
	var m propeller.Received
	require.NoError(t, propeller.Decode(fixture(t, name), topic, now, propeller.DefaultDecodeOptions(), &m))
	return &m
}

func TestAppendTask(t *testing.T) {
	m := decode(t, "task_ours.json", taskTopic)
	md := pmetric.NewMetrics()
	Append(md.ResourceMetrics(), m, Scope{Name: "s", Version: "v"})
	rm := md.ResourceMetrics().At(0)
	assert.Equal(t, map[string]any{
		schema.TaskID: m.Task.TaskID, schema.PropletID: m.Task.PropletID, schema.DomainID: "d1", schema.ChannelID: "c1",
	}, rm.Resource().Attributes().AsRaw())
	units := map[string]string{}
	for _, s := range append(append([]schema.Metric(nil), schema.Metrics...), schema.FleetMetrics...) {
		units[s.Name] = s.Unit
	}
	ms := rm.ScopeMetrics().At(0).Metrics()
	var names []string
	for i := range ms.Len() {
		mt := ms.At(i)
		names = append(names, mt.Name())
		assert.Equal(t, units[mt.Name()], mt.Unit(), mt.Name())
	}
	assert.Equal(t, []string{schema.TaskCPUUsage, schema.ProcessDiskIO, schema.ProcessMemoryUsage,
		schema.ProcessMemoryUtilization, schema.ProcessNetworkIO, schema.ProcessThreadCount,
		schema.ProcessFileDescriptorCount, schema.ProcessUptime}, names)
	assert.Equal(t, 10, md.DataPointCount())
	start := ms.At(0).Gauge().DataPoints().At(0).StartTimestamp().AsTime()
	assert.Equal(t, time.Unix(0, m.Time).Add(-45*time.Second).UTC(), start.UTC(), "the counters started uptime_seconds before")
}

func TestAppendProplet(t *testing.T) {
	m := decode(t, "proplet.json", propletTopic)
	md := pmetric.NewMetrics()
	Append(md.ResourceMetrics(), m, Scope{Name: "s"})
	rm := md.ResourceMetrics().At(0)
	assert.Equal(t, map[string]any{
		schema.PropletID: m.Proplet.PropletID, schema.PropletNamespace: "default", schema.DomainID: "d1", schema.ChannelID: "c1",
	}, rm.Resource().Attributes().AsRaw())
	ms := rm.ScopeMetrics().At(0).Metrics()
	var names []string
	for i := range ms.Len() {
		names = append(names, ms.At(i).Name())
	}
	assert.Equal(t, []string{schema.ProcessCPUTime, schema.ProcessMemoryUsage, schema.PropletCgroupMemoryLimit,
		schema.PropletCgroupMemoryUsage, schema.SystemCPUUtilization}, names)
	assert.InDelta(t, 0.83, ms.At(4).Gauge().DataPoints().At(0).DoubleValue(), 1e-9, "the idle share")
}

func benchmarkMessage(b *testing.B, name string, topic propeller.Topic) {
	payload := fixture(b, name)
	opts := propeller.DefaultDecodeOptions()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	var m propeller.Received
	for b.Loop() {
		if err := propeller.Decode(payload, topic, now, opts, &m); err != nil {
			b.Fatal(err)
		}
		md := pmetric.NewMetrics()
		Append(md.ResourceMetrics(), &m, Scope{Name: "s"})
	}
}

// BenchmarkDecodeConvert is one message in, one pmetric.Metrics out: what the receiver does
// for every message.
func BenchmarkDecodeConvert(b *testing.B) {
	b.Run("task", func(b *testing.B) { benchmarkMessage(b, "task_ours.json", taskTopic) })
	b.Run("task_rust", func(b *testing.B) { benchmarkMessage(b, "task_rust.json", taskTopic) })
	b.Run("proplet", func(b *testing.B) { benchmarkMessage(b, "proplet.json", propletTopic) })
}

// BenchmarkAppend is the conversion alone: one task resource of 8 metrics and 10 points.
func BenchmarkAppend(b *testing.B) {
	m := decode(b, "task_ours.json", taskTopic)
	b.ReportAllocs()
	for b.Loop() {
		md := pmetric.NewMetrics()
		Append(md.ResourceMetrics(), m, Scope{Name: "s"})
	}
}
