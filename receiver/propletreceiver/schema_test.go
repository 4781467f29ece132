package propletreceiver

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

var update = flag.Bool("update", false, "rewrite the golden file internal/schema/testdata/receiver_output.json")

// receiverOutput is the golden file of what the receiver writes for one full task sample and
// one full proplet sample; the MQTT exporter's tests map it.
const receiverOutput = "../../internal/schema/testdata/receiver_output.json"

// schemaTime is the fixed time of the samples, so the golden file does not change.
var schemaTime = time.Date(2025, 1, 15, 10, 35, 22, 123456789, time.UTC)

// enableAll sets every Enabled field of a generated config struct (metrics or resource
// attributes), so a metric or attribute added to metadata.yaml is covered without editing
// this test.
func enableAll(cfg any) {
	v := reflect.ValueOf(cfg).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i).FieldByName("Enabled"); f.IsValid() && f.CanSet() {
			f.SetBool(true)
		}
	}
}

// fullSamples are a task sample and a proplet sample with every field the receiver can write.
func fullSamples() []monitor.Sample {
	std, _ := profile.Builtin(profile.Standard)
	task := monitor.Sample{
		Kind: monitor.KindTask, Time: schemaTime,
		TaskID: "550e8400-e29b-41d4-a716-446655440001", TaskName: "compute", ProfileName: profile.Standard, Profile: std,
		HasProcess: true, PID: 4242, PPID: 4200, Executable: "wasmtime", Owner: "proplet",
		Cmdline: "wasmtime run /var/lib/proplet/compute.wasm", Start: schemaTime.Add(-50 * time.Second),
		Got:     process.AllFields,
		CPUUser: 8, CPUSystem: 2, UtilUser: 0.0125, UtilSystem: 0.003125, HasUtil: true,
		RSS: 52428800, VMS: 268435456, MemUtil: 0.012,
		ReadBytes: 1048576, WriteBytes: 524288, RxBytes: 4096, TxBytes: 2048,
		Threads: 2, FDs: 8, Uptime: 50,
		MemoryPeak: 67108864, HasMemoryPeak: true, Processes: 3, HasProcesses: true,
		CPUWait: 1.25, HasCPUWait: true, DiskIOWait: 0.5, HasDiskIOWait: true,
		Pressure: [process.NumPressure]monitor.Stall{
			process.PressureCPU:    {Some: 2.5, Full: 0.75, HasSome: true, HasFull: true},
			process.PressureMemory: {Some: 0.125, Full: 0.0625, HasSome: true, HasFull: true},
			process.PressureIO:     {Some: 0.25, Full: 0.1875, HasSome: true, HasFull: true},
		},
		ThrottledTime: 2.211, ThrottledPeriods: 37, Periods: 120, HasThrottling: true,
	}
	proplet := monitor.Sample{
		Kind: monitor.KindProplet, Time: schemaTime,
		HasProcess: true, PID: 1200, PPID: 1, Executable: "proplet", Owner: "proplet", Cmdline: "/usr/local/bin/proplet",
		Start:   schemaTime.Add(-time.Hour),
		Got:     process.FieldCPU | process.FieldMemory | process.FieldThreads | process.FieldFDs,
		CPUUser: 12.5, CPUSystem: 3.25, RSS: 41943040, VMS: 1073741824, Threads: 9, FDs: 21, Uptime: 3600,
		CgroupUsage: 73400320, HasCgroupUsage: true, CgroupLimit: 536870912, HasCgroupLimit: true,
		MachineCPU: [...]float64{
			monitor.ModeUser: 0.1, monitor.ModeNice: 0, monitor.ModeSystem: 0.05, monitor.ModeIdle: 0.8,
			monitor.ModeIOWait: 0.03, monitor.ModeInterrupt: 0.02, monitor.ModeSteal: 0,
		},
		HasMachineCPU: true,
	}
	return []monitor.Sample{task, proplet}
}

// recordFull records the full samples with every metric and resource attribute enabled.
func recordFull(t *testing.T) pmetric.Metrics {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	enableAll(&cfg.MetricsBuilderConfig.Metrics)
	enableAll(&cfg.MetricsBuilderConfig.ResourceAttributes)
	r := &propletReceiver{cfg: cfg, mb: metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, receivertest.NewNopSettings(metadata.Type),
		metadata.WithStartTime(pcommon.NewTimestampFromTime(schemaTime.Add(-time.Hour))))}
	for _, s := range fullSamples() {
		r.record(&s)
	}
	md := r.mb.Emit()
	require.Equal(t, 2, md.ResourceMetrics().Len(), "one resource per sample")
	return md
}

var schemaTypes = map[pcommon.ValueType]schema.Type{
	pcommon.ValueTypeStr: schema.String, pcommon.ValueTypeInt: schema.Int,
	pcommon.ValueTypeDouble: schema.Double, pcommon.ValueTypeBool: schema.Bool,
}

// TestSchemaMatchesWhatTheReceiverWrites holds internal/schema and the receiver together: every
// resource attribute, metric, unit and data point attribute the receiver writes is in the
// schema, and everything the schema lists is written.
func TestSchemaMatchesWhatTheReceiverWrites(t *testing.T) {
	t.Parallel()
	md := recordFull(t)

	attrs := map[string]schema.ResourceAttribute{}
	for _, a := range schema.ResourceAttributes {
		attrs[a.Name] = a
	}
	metrics := map[string]schema.Metric{}
	for _, m := range schema.Metrics {
		metrics[m.Name] = m
	}
	written := map[string]bool{}       // resource attribute and metric names
	writtenValues := map[string]bool{} // metric name + "/" + data point attribute value

	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		for k, v := range rm.Resource().Attributes().All() {
			a, ok := attrs[k]
			if !assert.True(t, ok, "resource attribute %q is written but not in internal/schema", k) {
				continue
			}
			assert.Equal(t, a.Type, schemaTypes[v.Type()], "type of resource attribute %s", k)
			written[k] = true
		}
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				want, ok := metrics[m.Name()]
				if !assert.True(t, ok, "metric %q is written but not in internal/schema", m.Name()) {
					continue
				}
				written[m.Name()] = true
				assert.Equal(t, want.Unit, m.Unit(), "unit of %s", m.Name())
				var dps pmetric.NumberDataPointSlice
				switch m.Type() {
				case pmetric.MetricTypeSum:
					dps = m.Sum().DataPoints()
				case pmetric.MetricTypeGauge:
					dps = m.Gauge().DataPoints()
				default:
					t.Errorf("metric %s is a %s; the exporter reads only sums and gauges", m.Name(), m.Type())
					continue
				}
				for l := 0; l < dps.Len(); l++ {
					dpAttrs := dps.At(l).Attributes()
					if want.Attr == "" {
						assert.Zero(t, dpAttrs.Len(), "%s has no data point attributes in the schema", m.Name())
						continue
					}
					attrs := []dpAttr{{want.Attr, want.Values}}
					if want.Attr2 != "" {
						attrs = append(attrs, dpAttr{want.Attr2, want.Values2})
					}
					assert.Equal(t, len(attrs), dpAttrs.Len(), "%s: data point attributes %v", m.Name(), dpAttrs.AsRaw())
					for _, a := range attrs {
						v, ok := dpAttrs.Get(a.key)
						if assert.True(t, ok, "%s: data point attribute %s", m.Name(), a.key) {
							assert.Contains(t, a.values, v.Str(), "%s: value of %s", m.Name(), a.key)
							writtenValues[m.Name()+"/"+v.Str()] = true
						}
					}
				}
			}
		}
	}

	for _, a := range schema.ResourceAttributes {
		assert.True(t, written[a.Name], "resource attribute %s is in internal/schema but the receiver never writes it", a.Name)
	}
	for _, m := range schema.Metrics {
		assert.True(t, written[m.Name], "metric %s is in internal/schema but the receiver never writes it", m.Name)
		for _, v := range m.Values {
			assert.True(t, writtenValues[m.Name+"/"+v], "%s with %s=%s is in internal/schema but never written", m.Name, m.Attr, v)
		}
		for _, v := range m.Values2 {
			assert.True(t, writtenValues[m.Name+"/"+v], "%s with %s=%s is in internal/schema but never written", m.Name, m.Attr2, v)
		}
	}
}

// dpAttr is a data point attribute of the schema and the values it takes.
type dpAttr struct {
	key    string
	values []string
}

// TestSchemaGoldenReceiverOutput compares what the receiver writes with the golden file the
// exporter's tests map. Regenerate it with
// go test ./receiver/propletreceiver/ -run TestSchema -update
func TestSchemaGoldenReceiverOutput(t *testing.T) {
	t.Parallel()
	raw, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(recordFull(t))
	require.NoError(t, err)
	var got bytes.Buffer
	require.NoError(t, json.Indent(&got, raw, "", "  "))
	got.WriteByte('\n')
	if *update {
		require.NoError(t, os.WriteFile(receiverOutput, got.Bytes(), 0o600))
	}
	want, err := os.ReadFile(receiverOutput)
	require.NoError(t, err, "run with -update to create it")
	assert.Equal(t, string(want), got.String(), "the receiver's output changed: check the exporter still maps it, then run with -update")
}

func TestSchemaCPUModesAreTheMonitorsModes(t *testing.T) {
	t.Parallel()
	// record maps monitor's machine CPU modes by index; the schema lists the same values.
	var sys schema.Metric
	for _, m := range schema.Metrics {
		if m.Name == schema.SystemCPUUtilization {
			sys = m
		}
	}
	var modes []string
	for _, m := range systemModes {
		modes = append(modes, m.String())
	}
	assert.True(t, slices.Equal(sys.Values, modes), "schema %v, receiver %v", sys.Values, modes)
}
