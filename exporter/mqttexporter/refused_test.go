package mqttexporter

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

// poisonIDs are task ids that cannot be part of a topic, by the reason they are refused for.
// U+0001, U+FFFF and U+FDD0 made Mosquitto drop the connection for a malformed packet; the
// exporter then retried the same batch forever and published nothing else.
var poisonIDs = []struct {
	id     string
	reason propeller.Reason
}{
	{"task\x01", propeller.ReasonControl},
	{"task\uffff", propeller.ReasonNoncharacter},
	{"task\ufdd0", propeller.ReasonNoncharacter},
	{"task\u0085", propeller.ReasonControl},
	{"bad\xffutf8", propeller.ReasonInvalidUTF8},
	{strings.Repeat("a", 70000), propeller.ReasonTooLong},
	{"a/b", propeller.ReasonSeparator},
}

// mixedBatch is one round of the receiver: good tasks and poison ids interleaved, all sampled
// at ts.
func mixedBatch(good int, ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	p := firstPoint()
	p.ts = ts
	for i := range good {
		taskMetrics(fmt.Sprintf("good-%d", i), propletID, fullHistory, p).ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
		if i < len(poisonIDs) {
			taskMetrics(poisonIDs[i].id, propletID, fullHistory, p).ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
		}
	}
	return md
}

// TestPoisonTaskIDsDoNotStallTheRest sends, through the queue and retry as the Collector runs
// the exporter, batches in which good tasks and tasks with poison ids are mixed, with a
// {task_id} topic, to Mosquitto when it is installed (it is what dropped the connection), else
// the embedded broker. Every good sample of every batch arrives; the poison ones are refused,
// counted, and logged once per reason; the connection never drops.
func TestPoisonTaskIDsDoNotStallTheRest(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"3.1.1", "5"} {
		t.Run(version, func(t *testing.T) {
			endpoint := mqtttest.Start(t, mqtttest.Options{}).Endpoint()
			if mqtttest.MosquittoAvailable() {
				endpoint = mqtttest.StartMosquitto(t).Endpoint()
			}
			domain, channel := uniqueIDs(t)
			sub := mqtttest.Subscribe(t, endpoint, fmt.Sprintf("m/%s/c/%s/#", domain, channel), mqtttest.SubscriberOptions{})
			cfg := testConfig(endpoint, domain, channel)
			cfg.ProtocolVersion = version
			cfg.Topics.TaskMetrics = []string{"m/{domain_id}/c/{channel_id}/tasks/{task_id}/metrics"}
			cfg.BackOffConfig.InitialInterval = 50 * time.Millisecond
			cfg.BackOffConfig.MaxInterval = 200 * time.Millisecond
			set, tel, logs := observedSettings(t)
			exp := viaFactoryWith(t, cfg, set)

			const batches, good = 5, 9
			poisonPerBatch := len(poisonIDs)
			for b := range batches {
				require.NoError(t, exp.ConsumeMetrics(context.Background(), mixedBatch(good, t0.Add(time.Duration(b)*time.Second))))
			}
			msgs := sub.Wait(t, 20*time.Second, func(m []mqtttest.Message) bool { return len(m) >= batches*good })
			seen := map[string]bool{}
			for _, m := range msgs {
				assert.Regexp(t, fmt.Sprintf(`^m/%s/c/%s/tasks/good-\d/metrics$`, domain, channel), m.Topic)
				v := m.Decoded(t)
				seen[v["task_id"].(string)+" "+v["timestamp"].(string)] = true
			}
			assert.Len(t, seen, batches*good, "every good sample of every batch, once")
			// The counters are added when a push ends, which may be after the subscriber saw it.
			require.Eventually(t, func() bool {
				return counter(t, tel, "exporter_mqtt_messages_refused") == int64(batches*poisonPerBatch) &&
					counter(t, tel, "exporter_mqtt_messages_published") == int64(batches*good)
			}, 5*time.Second, 10*time.Millisecond)
			assert.Zero(t, counter(t, tel, "exporter_mqtt_messages_failed"), "nothing was retried")

			// Logged at warning once per reason (this test lasts less than the minute), each
			// naming the reason and the template, with a bounded id.
			reasons := map[string]bool{}
			for _, e := range logs.FilterMessageSnippet("Message refused").FilterLevelExact(zapcore.WarnLevel).All() {
				r := e.ContextMap()["reason"].(string)
				assert.False(t, reasons[r], "reason %q logged at warning twice", r)
				reasons[r] = true
				assert.Equal(t, cfg.Topics.TaskMetrics[0], e.ContextMap()["template"])
				assert.LessOrEqual(t, len(e.ContextMap()["task_id"].(string)), 70)
			}
			want := map[string]bool{}
			for _, p := range poisonIDs {
				want[string(p.reason)] = true
			}
			assert.Equal(t, want, reasons)
			assert.Equal(t, batches*poisonPerBatch-len(want), logs.FilterMessageSnippet("Message refused").FilterLevelExact(zapcore.DebugLevel).Len(),
				"the rest at debug")
			assert.Zero(t, logs.FilterMessageSnippet("lost").Len(), "the connection never dropped")
		})
	}
}

func TestRefusalsAreLoggedOncePerReasonPerMinute(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	r := newRefusals(zap.New(core))
	now := time.Unix(1000, 0)
	r.log.WithClock(func() time.Time { return now })
	at := func(d time.Duration, reason string, n int) {
		now = time.Unix(1000, 0).Add(d)
		r.refused(reason, n, "refused")
	}
	at(0, "control character", 1)              // warn, first of its reason
	at(time.Second, "control character", 3)    // debug
	at(2*time.Second, "invalid UTF-8", 1)      // warn, another reason
	at(59*time.Second, "control character", 1) // debug
	at(61*time.Second, "control character", 2) // warn: a minute since, with the count since

	warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
	require.Len(t, warns, 3)
	counts := []int64{1, 1, 6}
	reasons := []string{"control character", "invalid UTF-8", "control character"}
	for i, w := range warns {
		assert.Equal(t, reasons[i], w.ContextMap()["reason"])
		assert.Equal(t, counts[i], w.ContextMap()["refused_since_last_logged"], "warning %d", i)
	}
	assert.Equal(t, 2, logs.FilterLevelExact(zapcore.DebugLevel).Len())
}

// TestBrokerRefusalIsNotRetried: an MQTT 5 broker that refuses a message (reason code 0x87,
// not authorised) refuses it for good; the push succeeds for the rest of the batch, and the
// refusal is counted and logged.
func TestBrokerRefusalIsNotRetried(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{DenyPublish: []string{"m/+/c/+/tasks/denied/#"}})
	domain, channel := uniqueIDs(t)
	sub := mqtttest.Subscribe(t, b.Endpoint(), fmt.Sprintf("m/%s/c/%s/#", domain, channel), mqtttest.SubscriberOptions{})
	cfg := testConfig(b.Endpoint(), domain, channel)
	cfg.ProtocolVersion = "5"
	cfg.Topics.TaskMetrics = []string{"m/{domain_id}/c/{channel_id}/tasks/{task_id}/metrics"}
	e, tel, logs := directObserved(t, cfg)

	md := taskMetrics("denied", propletID, fullHistory, firstPoint())
	taskMetrics("allowed", propletID, fullHistory, firstPoint()).ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
	require.NoError(t, e.pushMetrics(context.Background(), md))
	msgs := sub.Wait(t, 5*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 1 })
	assert.Equal(t, fmt.Sprintf("m/%s/c/%s/tasks/allowed/metrics", domain, channel), msgs[0].Topic)
	assert.Equal(t, int64(1), counter(t, tel, "exporter_mqtt_messages_refused"))
	assert.Equal(t, int64(1), counter(t, tel, "exporter_mqtt_messages_published"))
	assert.Zero(t, counter(t, tel, "exporter_mqtt_messages_failed"))
	w := logs.FilterMessageSnippet("refused by the MQTT broker").FilterLevelExact(zapcore.WarnLevel).All()
	require.Len(t, w, 1)
	assert.Contains(t, w[0].ContextMap()["topic"], "/tasks/denied/metrics")
	assert.Contains(t, w[0].ContextMap()["error"], "not authori")
}
