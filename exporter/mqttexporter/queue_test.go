package mqttexporter

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// goldenTaskSample is the task resource of the receiver's golden output: one task sample with
// every collect flag on.
func goldenTaskSample(tb testing.TB) pmetric.ResourceMetrics {
	tb.Helper()
	raw, err := os.ReadFile(receiverOutput)
	require.NoError(tb, err)
	md, err := (&pmetric.JSONUnmarshaler{}).UnmarshalMetrics(raw)
	require.NoError(tb, err)
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		if _, ok := rm.Resource().Attributes().Get("propeller.task.id"); ok {
			return rm
		}
	}
	tb.Fatal("no task resource in the receiver's golden output")
	return pmetric.ResourceMetrics{}
}

// round builds one batch as the receiver emits it: one resource per task, copied from the
// golden sample, with its own task id and every data point at ts.
func round(tmpl pmetric.ResourceMetrics, firstTask, tasks int, ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	t := pcommon.NewTimestampFromTime(ts)
	for i := firstTask; i < firstTask+tasks; i++ {
		rm := md.ResourceMetrics().AppendEmpty()
		tmpl.CopyTo(rm)
		rm.Resource().Attributes().PutStr("propeller.task.id", fmt.Sprintf("task-%04d", i))
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				var dps pmetric.NumberDataPointSlice
				switch m := ms.At(k); m.Type() {
				case pmetric.MetricTypeSum:
					dps = m.Sum().DataPoints()
				case pmetric.MetricTypeGauge:
					dps = m.Gauge().DataPoints()
				default:
					continue
				}
				for d := 0; d < dps.Len(); d++ {
					dps.At(d).SetTimestamp(t)
				}
			}
		}
	}
	return md
}

// TestDefaultQueueHoldsTenMinutesOfAThousandTasks checks the arithmetic of the default
// sending queue: in memory, counted in data points, room for 10 minutes of 1,000 tasks sampled
// every second with the receiver's full sample; and a retry that does not give up (and drop
// the batches it holds) before the queue is full.
func TestDefaultQueueHoldsTenMinutesOfAThousandTasks(t *testing.T) {
	t.Parallel()
	md := pmetric.NewMetrics()
	goldenTaskSample(t).CopyTo(md.ResourceMetrics().AppendEmpty())
	pointsPerSample := md.DataPointCount()
	require.Positive(t, pointsPerSample)

	cfg := createDefaultConfig().(*Config)
	require.True(t, cfg.QueueConfig.HasValue(), "the queue is on")
	q := cfg.QueueConfig.Get()
	assert.Nil(t, q.StorageID, "in memory")
	assert.Equal(t, exporterhelper.RequestSizerTypeItems, q.Sizer, "counted in data points, not in batches of any size")
	const outage, tasks, interval = 10 * time.Minute, 1000, time.Second
	need := int64(outage/interval) * tasks * int64(pointsPerSample)
	assert.GreaterOrEqual(t, q.QueueSize, need, "10 min x 1,000 tasks x %d data points per sample", pointsPerSample)
	assert.Equal(t, int64(10_200_000), q.QueueSize, "the documented default")
	require.NoError(t, q.Validate())

	assert.True(t, cfg.BackOffConfig.Enabled)
	assert.Zero(t, cfg.BackOffConfig.MaxElapsedTime, "batches being retried are kept until delivered, not dropped after 5 minutes")
}

// TestOutageDropsNothingAtTheDefaultQueue is a shortened outage with the default queue: the
// broker goes down, 12 s of 1,000 tasks arrive in 1,200 batches of 10 samples (more batches
// than exporterhelper's default queue of 1,000 requests holds), none is refused by the queue,
// and every sample arrives once the broker is back.
func TestOutageDropsNothingAtTheDefaultQueue(t *testing.T) {
	t.Parallel()
	var b interface {
		Endpoint() string
		Stop()
		Restart(time.Duration)
	} = mqtttest.Start(t, mqtttest.Options{Persist: true})
	if mqtttest.MosquittoAvailable() {
		b = mqtttest.StartMosquitto(t)
	}
	domain, channel := uniqueIDs(t)
	sub := mqtttest.Subscribe(t, b.Endpoint(), fmt.Sprintf("m/%s/c/%s/control/proplet/task_metrics", domain, channel),
		mqtttest.SubscriberOptions{ClientID: "outage-sub", Persistent: true})
	cfg := testConfig(b.Endpoint(), domain, channel)
	cfg.Topics.TaskMetrics = cfg.Topics.TaskMetrics[:1]
	// Quicker retries, so the test does not wait out the default backoff; the queue and the
	// retry's elapsed-time limit stay the defaults.
	cfg.BackOffConfig.InitialInterval, cfg.BackOffConfig.MaxInterval = 50*time.Millisecond, 200*time.Millisecond
	cfg.MaxReconnectInterval = time.Second
	set, tel, _ := observedSettings(t)
	exp := viaFactoryWith(t, cfg, set)

	b.Stop()
	tmpl := goldenTaskSample(t)
	const tasks, seconds, perBatch = 1000, 12, 10
	for s := range seconds {
		for first := 0; first < tasks; first += perBatch {
			err := exp.ConsumeMetrics(context.Background(), round(tmpl, first, perBatch, t0.Add(time.Duration(s)*time.Second)))
			require.NoError(t, err, "second %d, tasks %d..: the queue refused a batch", s, first)
		}
	}
	b.Restart(0)

	// 12,000 acknowledged publishes take as long as the machine makes them: wait while samples
	// keep arriving, and fail when they stop.
	const stall = 30 * time.Second
	seen := make(map[string]bool, tasks*seconds)
	read, lastNew := 0, time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for len(seen) < tasks*seconds {
		msgs := sub.Messages()
		for _, m := range msgs[read:] {
			v := m.Decoded(t)
			seen[v["task_id"].(string)+" "+v["timestamp"].(string)] = true
		}
		if len(msgs) > read {
			read, lastNew = len(msgs), time.Now()
		}
		if time.Since(lastNew) > stall {
			t.Fatalf("delivery stopped: %d of %d samples arrived, nothing more for %s (messages published %d, failed %d, dropped %d, refused %d)",
				len(seen), tasks*seconds, stall, counter(t, tel, "exporter_mqtt_messages_published"), counter(t, tel, "exporter_mqtt_messages_failed"),
				counter(t, tel, "exporter_mqtt_messages_dropped"), counter(t, tel, "exporter_mqtt_messages_refused"))
		}
		<-tick.C
	}
	assert.Zero(t, counter(t, tel, "exporter_mqtt_messages_refused"))
}

// TestQueueMemoryAtFullDefault measures the collector's cost of a full default queue: the
// broker is unreachable and 600,000 task samples (10 minutes of 1,000 tasks at 1 s, the
// receiver's full sample, in batches of 167 as the receiver's rounds arrive) are queued. It
// reports VmRSS and VmHWM; BENCHMARKS.md records the figures. Run with
//
//	MQTT_QUEUE_RSS_TEST=1 go test -run TestQueueMemoryAtFullDefault -v -timeout 20m ./exporter/mqttexporter/
func TestQueueMemoryAtFullDefault(t *testing.T) {
	if os.Getenv("MQTT_QUEUE_RSS_TEST") == "" {
		t.Skip("set MQTT_QUEUE_RSS_TEST=1 to measure the memory of a full queue (about 4 GB)")
	}
	cfg := testConfig("tcp://"+mqtttest.FreeAddress(t), "d", "c")
	exp := viaFactory(t, cfg)
	tmpl := goldenTaskSample(t)
	runtime.GC()
	before := procStatus(t)
	start := time.Now()

	const tasks, seconds, perBatch = 1000, 600, 167
	samples := 0
	for s := range seconds {
		ts := t0.Add(time.Duration(s) * time.Second)
		for first := 0; first < tasks; first += perBatch {
			n := min(perBatch, tasks-first)
			require.NoError(t, exp.ConsumeMetrics(context.Background(), round(tmpl, first, n, ts)), "after %d samples", samples)
			samples += n
		}
	}
	elapsed := time.Since(start)
	err := exp.ConsumeMetrics(context.Background(), round(tmpl, 0, 1, t0.Add(seconds*time.Second)))
	require.Error(t, err, "the queue is full")
	assert.Contains(t, err.Error(), "queue is full")

	runtime.GC()
	after := procStatus(t)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d samples (%d data points) queued in %s", samples, samples*queuePointsPerSample, elapsed.Round(time.Millisecond))
	onDisk := (&pmetric.ProtoMarshaler{}).MetricsSize(round(tmpl, 0, perBatch, t0)) / perBatch
	t.Logf("a persistent queue stores requests as OTLP protobuf: %d bytes per sample, %d MiB for a full queue", onDisk, onDisk*samples>>20)
	t.Logf("VmRSS %d MiB before, %d MiB at full queue (after a GC); VmHWM %d MiB; Go heap in use %d MiB; %d bytes of RSS per queued sample",
		before["VmRSS"]>>10, after["VmRSS"]>>10, after["VmHWM"]>>10, ms.HeapInuse>>20, (after["VmRSS"]-before["VmRSS"])<<10/int64(samples))
}

// procStatus reads the kB fields of /proc/self/status.
func procStatus(t *testing.T) map[string]int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	require.NoError(t, err)
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}
