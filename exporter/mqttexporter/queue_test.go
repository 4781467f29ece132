package mqttexporter

import (
	"bufio"
	"context"
	"fmt"
	"os"
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
// sending queue: in memory, counted in bytes of queued messages, room for 10 minutes of 1,000
// tasks sampled every second with the receiver's full sample (UUID ids, history on), in at
// most 400 MB; and a retry that does not give up (and drop the batches it holds) before the
// queue is full.
func TestDefaultQueueHoldsTenMinutesOfAThousandTasks(t *testing.T) {
	t.Parallel()
	cfg := createDefaultConfig().(*Config)
	cfg.DomainID, cfg.ChannelID = "d", "c"
	e, err := newExporter(exportertestSettings(), cfg)
	require.NoError(t, err)
	const perBatch = 167 // a round of the receiver arrives in batches of about this many tasks
	q := e.build(round(goldenTaskSample(t), 0, perBatch, t0), time.Now())
	require.Equal(t, perBatch, q.ItemsCount(), "one message a sample, whatever its topics")
	perSample := float64(q.BytesSize()) / perBatch
	t.Logf("%.1f bytes a queued task sample", perSample)
	assert.LessOrEqual(t, perSample, float64(queueBytesPerMessage), "the documented size of a queued sample")

	require.True(t, cfg.QueueConfig.HasValue(), "the queue is on")
	qc := cfg.QueueConfig.Get()
	assert.Nil(t, qc.StorageID, "in memory")
	assert.Equal(t, exporterhelper.RequestSizerTypeBytes, qc.Sizer, "counted in bytes of messages, not in batches of any size")
	const outage, tasks, interval = 10 * time.Minute, 1000, time.Second
	need := float64(outage/interval) * tasks * perSample
	assert.GreaterOrEqual(t, float64(qc.QueueSize), need, "10 min x 1,000 tasks x %.1f bytes per sample", perSample)
	assert.LessOrEqual(t, qc.QueueSize, int64(400_000_000), "fits a small host")
	assert.Equal(t, int64(128<<20), qc.QueueSize, "the documented default")
	require.NoError(t, qc.Validate())

	assert.True(t, cfg.BackOffConfig.Enabled)
	assert.Zero(t, cfg.BackOffConfig.MaxElapsedTime, "batches being retried are kept until delivered, not dropped after 5 minutes")
}

// TestOutageDropsNothingAtTheDefaultQueue is a shortened outage with the default queue: the
// broker goes down, 11 s of 100 tasks arrive in 1,100 batches of one sample (more batches than
// exporterhelper's default queue of 1,000 requests holds: the queue counts bytes, not batches),
// none is refused by the queue, and every sample arrives once the broker is back. (The volume
// of a long outage is TestThreeMinuteOutage's.)
func TestOutageDropsNothingAtTheDefaultQueue(t *testing.T) {
	t.Parallel()
	// What the exporter answers for is what the broker acknowledged: the broker records every
	// message it takes, across its restart. (A subscriber would add the broker's own delivery
	// to a client, which is not the exporter's: a persistent subscriber of a restarted broker
	// was seen to miss messages the broker had acknowledged.)
	b := mqtttest.Start(t, mqtttest.Options{Persist: true, Record: true})
	domain, channel := uniqueIDs(t)
	topic := fmt.Sprintf("m/%s/c/%s/control/proplet/task_metrics", domain, channel)
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
	const tasks, seconds, perBatch = 100, 11, 1
	for s := range seconds {
		for first := 0; first < tasks; first += perBatch {
			err := exp.ConsumeMetrics(context.Background(), round(tmpl, first, perBatch, t0.Add(time.Duration(s)*time.Second)))
			require.NoError(t, err, "second %d, tasks %d..: the queue refused a batch", s, first)
		}
	}
	b.Restart(0)

	// 1,100 acknowledged publishes take as long as the machine makes them: wait while samples
	// keep arriving, and fail when they stop.
	const stall = 30 * time.Second
	seen := make(map[string]bool, tasks*seconds)
	read, lastNew := 0, time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for len(seen) < tasks*seconds {
		msgs := b.Received()
		for _, m := range msgs[read:] {
			if m.Topic != topic {
				continue
			}
			v := m.Decoded(t)
			seen[v["task_id"].(string)+" "+v["timestamp"].(string)] = true
		}
		if len(msgs) > read {
			read, lastNew = len(msgs), time.Now()
		}
		if time.Since(lastNew) > stall {
			t.Fatalf("delivery stopped: %d of %d samples arrived (%d messages with duplicates), nothing more for %s (messages published %d, failed %d, dropped %d, refused %d)",
				len(seen), tasks*seconds, read, stall, counter(t, tel, "exporter_mqtt_messages_published"), counter(t, tel, "exporter_mqtt_messages_failed"),
				counter(t, tel, "exporter_mqtt_messages_dropped"), counter(t, tel, "exporter_mqtt_messages_refused"))
		}
		<-tick.C
	}
	assert.Zero(t, counter(t, tel, "exporter_mqtt_messages_refused"))
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
