package mqttexporter

import (
	"context"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

const benchBatch = 1000 // task samples per batch

// benchMetrics is one batch of benchBatch task samples at time ts, one per task.
func benchMetrics(ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for i := range benchBatch {
		p := firstPoint()
		p.ts = ts
		taskMetrics(fmt.Sprintf("task-%04d", i), propletID, fullHistory, p).ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
	}
	return md
}

// BenchmarkThroughput publishes task messages at QoS 1 into the local Mosquitto: through the
// exporter (mapping, encoding, publishing, waiting for every acknowledgement) over MQTT 3.1.1
// and 5, and with the bare paho client publishing the same payloads to the same broker, for
// the ratio. Only the publishing is timed, not building the input batches.
func BenchmarkThroughput(b *testing.B) {
	if !mqtttest.LocalAvailable() {
		b.Skip("no broker on 127.0.0.1:1883")
	}
	endpoint := "tcp://" + mqtttest.LocalMosquitto
	domain, channel := fmt.Sprintf("bench%d", time.Now().UnixNano()), "c"
	for _, version := range []string{"3.1.1", "5"} {
		b.Run("exporter-mqtt"+version, func(b *testing.B) { benchExporter(b, endpoint, domain, channel, version) })
	}
	b.Run("bare-paho", func(b *testing.B) { benchBarePaho(b, endpoint, domain, channel) })
}

func benchExporter(b *testing.B, endpoint, domain, channel, version string) {
	cfg := testConfig(endpoint, domain, channel)
	cfg.Topics.TaskMetrics = cfg.Topics.TaskMetrics[:1]
	cfg.Topics.PropletMetrics = nil
	cfg.ProtocolVersion = version
	e, _ := direct(&testing.T{}, cfg)
	defer func() { _ = e.shutdown(context.Background()) }()
	ts := time.Now()
	var msgs int
	var busy time.Duration
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		ts = ts.Add(time.Second)
		md := benchMetrics(ts)
		b.StartTimer()
		start := time.Now()
		if err := e.pushMetrics(context.Background(), md); err != nil {
			b.Fatal(err)
		}
		busy += time.Since(start)
		msgs += benchBatch
	}
	b.ReportMetric(float64(msgs)/busy.Seconds(), "msgs/s")
}

func benchBarePaho(b *testing.B, endpoint, domain, channel string) {
	m := newMapper(testConfig(endpoint, domain, channel))
	s := &sample{ts: 1, hasCPUTime: true, cpuTime: 10, hasRSS: true, rss: 52428800, hasDisk: true, hasThreads: true, threads: 2, hasFDs: true, fds: 8}
	msg := m.taskMessage("task-0001", propletID, taskProfile{historySize: 100, retain: true, export: true, interval: time.Second}, s, time.Now())
	payload := msg.AppendJSON(nil)
	topic := fmt.Sprintf("m/%s/c/%s/control/proplet/task_metrics", domain, channel)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(endpoint).SetClientID("bench-bare").SetCleanSession(true).SetOrderMatters(false))
	t := c.Connect()
	require.True(b, t.WaitTimeout(5*time.Second))
	require.NoError(b, t.Error())
	defer c.Disconnect(100)
	tokens := make([]paho.Token, benchBatch)
	var msgs int
	var busy time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		for i := range tokens {
			tokens[i] = c.Publish(topic, 1, false, payload)
		}
		for _, tok := range tokens {
			<-tok.Done()
			if tok.Error() != nil {
				b.Fatal(tok.Error())
			}
		}
		busy += time.Since(start)
		msgs += benchBatch
	}
	b.ReportMetric(float64(msgs)/busy.Seconds(), "msgs/s")
}

// BenchmarkUsageMessage turns one propeller.task.end record into its task usage message:
// "record" reads the record's attributes and encodes the JSON into a reused buffer (the
// per-record cost); "batch" is buildLogs and the expansion at send on a batch of that one record, resource attributes,
// topic and the batch's buffers included.
func BenchmarkUsageMessage(b *testing.B) {
	ld := usageLogs(taskID, propletID, fullHistory, killedRecord())
	lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	b.Run("record", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			m := propeller.TaskUsage{TaskID: taskID, PropletID: propletID}
			if err := decodeUsage(lr.Attributes(), lr.Timestamp(), &m); err != nil {
				b.Fatal(err)
			}
			buf = m.AppendJSON(buf[:0])
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("batch", func(b *testing.B) {
		cfg := createDefaultConfig().(*Config)
		cfg.DomainID, cfg.ChannelID = "dom", "chn"
		e, err := newExporter(exportertestSettings(), cfg)
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			if outs := e.builtLogs(ld); len(outs) != 1 {
				b.Fatalf("%d messages", len(outs))
			}
		}
	})
}
