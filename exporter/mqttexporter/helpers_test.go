package mqttexporter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// point is one task sample as the proplet receiver emits it.
type point struct {
	ts, start       time.Time
	cpuUser, cpuSys float64
	rss             int64
	memUtil         float64
	read, write     int64
	rx, tx          int64
	net             bool
	uptime          float64
	threads, fds    int64
}

type profileAttrs struct {
	history int64
	retain  bool
	export  bool
}

var fullHistory = profileAttrs{history: 100, retain: true, export: true}

// taskMetrics builds a batch with one task resource per point, named as the receiver names it.
func taskMetrics(taskID, propletID string, prof profileAttrs, pts ...point) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for _, p := range pts {
		rm := md.ResourceMetrics().AppendEmpty()
		r := rm.Resource().Attributes()
		r.PutStr("propeller.task.id", taskID)
		r.PutStr("propeller.task.name", "compute")
		if propletID != "" {
			r.PutStr("propeller.proplet.id", propletID)
		}
		r.PutStr("propeller.monitoring_profile.name", "standard")
		r.PutDouble("propeller.monitoring_profile.interval", 10)
		r.PutInt("propeller.monitoring_profile.history_size", prof.history)
		r.PutBool("propeller.monitoring_profile.retain_history", prof.retain)
		r.PutBool("propeller.monitoring_profile.export_to_mqtt", prof.export)
		r.PutInt("process.pid", 4242)
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()
		ts, start := pcommon.NewTimestampFromTime(p.ts), pcommon.NewTimestampFromTime(p.start)
		sum := func(name string, monotonic bool) pmetric.NumberDataPointSlice {
			m := ms.AppendEmpty()
			m.SetName(name)
			s := m.SetEmptySum()
			s.SetIsMonotonic(monotonic)
			s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			return s.DataPoints()
		}
		gauge := func(name string) pmetric.NumberDataPointSlice {
			m := ms.AppendEmpty()
			m.SetName(name)
			return m.SetEmptyGauge().DataPoints()
		}
		dbl := func(dps pmetric.NumberDataPointSlice, v float64, key, val string) {
			dp := dps.AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetStartTimestamp(start)
			dp.SetDoubleValue(v)
			if key != "" {
				dp.Attributes().PutStr(key, val)
			}
		}
		integer := func(dps pmetric.NumberDataPointSlice, v int64, key, val string) {
			dp := dps.AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetStartTimestamp(start)
			dp.SetIntValue(v)
			if key != "" {
				dp.Attributes().PutStr(key, val)
			}
		}
		cpu := sum("process.cpu.time", true)
		dbl(cpu, p.cpuUser, "cpu.mode", "user")
		dbl(cpu, p.cpuSys, "cpu.mode", "system")
		integer(sum("process.memory.usage", false), p.rss, "", "")
		dbl(gauge("process.memory.utilization"), p.memUtil, "", "")
		disk := sum("process.disk.io", true)
		integer(disk, p.read, "disk.io.direction", "read")
		integer(disk, p.write, "disk.io.direction", "write")
		if p.net {
			n := sum("process.network.io", true)
			integer(n, p.rx, "network.io.direction", "receive")
			integer(n, p.tx, "network.io.direction", "transmit")
		}
		dbl(gauge("process.uptime"), p.uptime, "", "")
		integer(sum("process.thread.count", false), p.threads, "", "")
		integer(sum("process.unix.file_descriptor.count", false), p.fds, "", "")
	}
	return md
}

// propletMetrics builds a proplet resource as the receiver emits it.
func propletMetrics(propletID string, ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("propeller.proplet.id", propletID)
	rm.Resource().Attributes().PutInt("process.pid", 1)
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	t := pcommon.NewTimestampFromTime(ts)
	m := ms.AppendEmpty()
	m.SetName("process.cpu.time")
	cpu := m.SetEmptySum()
	for mode, v := range map[string]float64{"user": 12.5, "system": 3.25} {
		dp := cpu.DataPoints().AppendEmpty()
		dp.SetTimestamp(t)
		dp.SetDoubleValue(v)
		dp.Attributes().PutStr("cpu.mode", mode)
	}
	m = ms.AppendEmpty()
	m.SetName("system.cpu.utilization")
	g := m.SetEmptyGauge()
	for mode, v := range map[string]float64{"user": 0.1, "system": 0.05, "idle": 0.8, "iowait": 0.03, "nice": 0, "interrupt": 0.02, "steal": 0} {
		dp := g.DataPoints().AppendEmpty()
		dp.SetTimestamp(t)
		dp.SetDoubleValue(v)
		dp.Attributes().PutStr("cpu.mode", mode)
	}
	for name, v := range map[string]int64{"process.memory.usage": 41943040, "propeller.proplet.cgroup.memory.usage": 73400320, "propeller.proplet.cgroup.memory.limit": 536870912} {
		m = ms.AppendEmpty()
		m.SetName(name)
		dp := m.SetEmptySum().DataPoints().AppendEmpty()
		dp.SetTimestamp(t)
		dp.SetIntValue(v)
	}
	return md
}

// broker is one broker the delivery tests run against.
type broker struct {
	name     string
	endpoint string
}

// brokers returns the hermetic embedded broker, and the local Mosquitto when it answers.
func brokers(t *testing.T) []broker {
	out := []broker{{"embedded", mqtttest.Start(t, mqtttest.Options{}).Endpoint()}}
	if mqtttest.LocalAvailable() {
		out = append(out, broker{"local-mosquitto", "tcp://" + mqtttest.LocalMosquitto})
	}
	return out
}

// uniqueIDs gives each test its own domain and channel, so tests sharing the local broker do
// not see each other's messages.
func uniqueIDs(t *testing.T) (domain, channel string) {
	n := time.Now().UnixNano()
	return fmt.Sprintf("dom%d", n), fmt.Sprintf("chn%d", n)
}

func testConfig(endpoint, domain, channel string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Endpoint = endpoint
	cfg.DomainID, cfg.ChannelID = domain, channel
	return cfg
}

// direct starts an exporter without the exporterhelper queue, so push errors are seen as is.
func direct(t *testing.T, cfg *Config) (*mqttExporter, *componenttest.Telemetry) {
	t.Helper()
	e, tel, _ := directObserved(t, cfg)
	return e, tel
}

// directObserved is direct with the exporter's log kept, at every level.
func directObserved(t *testing.T, cfg *Config) (*mqttExporter, *componenttest.Telemetry, *observer.ObservedLogs) {
	t.Helper()
	set, tel, logs := observedSettings(t)
	e, err := newExporter(set, cfg)
	require.NoError(t, err)
	require.NoError(t, e.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.shutdown(context.Background()) })
	return e, tel, logs
}

// observedSettings are exporter settings whose telemetry and log the test reads.
func observedSettings(t *testing.T) (exporter.Settings, *componenttest.Telemetry, *observer.ObservedLogs) {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	core, logs := observer.New(zapcore.DebugLevel)
	set.Logger = zap.New(core)
	return set, tel, logs
}

// viaFactory starts the exporter as the Collector does: queue, retry and timeout included.
func viaFactory(t *testing.T, cfg *Config) exporter.Metrics {
	t.Helper()
	return viaFactoryWith(t, cfg, exportertest.NewNopSettings(metadata.Type))
}

// viaFactoryWith is viaFactory with the given settings.
func viaFactoryWith(t *testing.T, cfg *Config, set exporter.Settings) exporter.Metrics {
	t.Helper()
	exp, err := NewFactory().CreateMetrics(context.Background(), set, cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(context.Background())) })
	return exp
}

// counter reads one of the exporter's own counters.
func counter(t *testing.T, tel *componenttest.Telemetry, name string) int64 {
	t.Helper()
	m, err := tel.GetMetric("otelcol_" + name)
	if err != nil {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is an int sum", name)
	var total int64
	for _, dp := range sum.DataPoints {
		total += dp.Value
	}
	return total
}

func exportertestSettings() exporter.Settings { return exportertest.NewNopSettings(metadata.Type) }

// pushMetrics maps a batch and publishes it, as the queue's consumer does once it is queued.
func (e *mqttExporter) pushMetrics(ctx context.Context, md pmetric.Metrics) error {
	req, err := e.convertMetrics(ctx, md)
	if err != nil {
		return err
	}
	return e.pushQueued(ctx, req)
}

// pushLogs maps a batch of log records and publishes it, as the queue's consumer does.
func (e *mqttExporter) pushLogs(ctx context.Context, ld plog.Logs) error {
	return e.pushQueuedLogs(ctx, e.buildLogs(ld))
}

// built is what build queues, as it is published: topics and JSON payloads.
func (e *mqttExporter) built(md pmetric.Metrics, now time.Time) []outgoing {
	return e.expand(e.build(md, now), e.refusals)
}

// builtLogs is what buildLogs queues, as it is published.
func (e *mqttExporter) builtLogs(ld plog.Logs) []outgoing {
	return e.expand(e.buildLogs(ld), e.usageRefusals)
}
