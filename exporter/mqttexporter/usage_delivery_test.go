package mqttexporter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// viaFactoryLogs starts the logs signal as the Collector does: queue, retry and timeout.
func viaFactoryLogs(t *testing.T, cfg *Config, set exporter.Settings) exporter.Logs {
	t.Helper()
	exp, err := NewFactory().CreateLogs(context.Background(), set, cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(context.Background())) })
	return exp
}

// TestUsageDelivery sends a report through the logs signal as the Collector runs it, to each
// broker over both protocol versions: it arrives once, on the task_usage topic, at QoS 1.
func TestUsageDelivery(t *testing.T) {
	t.Parallel()
	for _, b := range brokers(t) {
		for _, version := range []string{"3.1.1", "5"} {
			t.Run(b.name+"/"+version, func(t *testing.T) {
				domain, channel := uniqueIDs(t)
				sub := mqtttest.Subscribe(t, b.endpoint, fmt.Sprintf("m/%s/c/%s/#", domain, channel), mqtttest.SubscriberOptions{})
				cfg := testConfig(b.endpoint, domain, channel)
				cfg.ProtocolVersion = version
				set, tel, _ := observedSettings(t)
				exp := viaFactoryLogs(t, cfg, set)
				require.NoError(t, exp.ConsumeLogs(context.Background(), usageLogs(taskID, propletID, fullHistory, killedRecord())))

				msgs := sub.Wait(t, 10*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 1 })
				require.Len(t, msgs, 1)
				assert.Equal(t, fmt.Sprintf("m/%s/c/%s/control/proplet/task_usage", domain, channel), msgs[0].Topic)
				assert.Equal(t, byte(1), msgs[0].QoS, "published at QoS 1: the broker acknowledged it")
				v, _ := decodeAsManager(t, msgs[0].Payload, true)
				assert.InDelta(t, 9.0, v["exit_signal"], 0)
				require.Eventually(t, func() bool { return counter(t, tel, "exporter_mqtt_messages_published") == 1 }, 5*time.Second, 10*time.Millisecond)
			})
		}
	}
}

// TestUsageSurvivesABrokerRestart: task usage reports sent while the broker restarts all
// arrive, as the metrics samples do in TestBrokerRestartAtQoS1.
func TestUsageSurvivesABrokerRestart(t *testing.T) {
	t.Parallel()
	brokerRestart(t, "control/proplet/task_usage", func(t *testing.T, cfg *Config) func(i int, ts time.Time) error {
		exp := viaFactoryLogs(t, cfg, exportertestSettings())
		return func(i int, ts time.Time) error {
			r := exitedRecord()
			r.start, r.end, r.code = ts.Add(-1500*time.Millisecond), ts, int64(i%256)
			return exp.ConsumeLogs(context.Background(), usageLogs(fmt.Sprintf("task-%02d", i), propletID, fullHistory, r))
		}
	})
}

// TestMetricsAndLogsShareOneConnection: both signals of one exporter configuration use one
// client. With a fixed client_id, two connections would throw each other off the broker;
// here every message of both arrives, the logs signal keeps sending after the metrics one
// shut down, and the last shutdown disconnects.
func TestMetricsAndLogsShareOneConnection(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	domain, channel := uniqueIDs(t)
	sub := mqtttest.Subscribe(t, b.Endpoint(), fmt.Sprintf("m/%s/c/%s/#", domain, channel), mqtttest.SubscriberOptions{})
	cfg := testConfig(b.Endpoint(), domain, channel)
	cfg.ClientID = "proplet-fixed"
	cfg.Topics.TaskMetrics = cfg.Topics.TaskMetrics[:1]
	ctx := context.Background()
	f := NewFactory()
	me, err := f.CreateMetrics(ctx, exportertestSettings(), cfg)
	require.NoError(t, err)
	logsSet, _, logsLog := observedSettings(t)
	le, err := f.CreateLogs(ctx, logsSet, cfg)
	require.NoError(t, err)
	shared, holds, ok := exporters.Peek(cfg)
	require.True(t, ok)
	assert.Equal(t, 2, holds)
	require.NoError(t, me.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, le.Start(ctx, componenttest.NewNopHost()))

	require.NoError(t, me.ConsumeMetrics(ctx, taskMetrics(taskID, propletID, fullHistory, firstPoint())))
	require.NoError(t, le.ConsumeLogs(ctx, usageLogs(taskID, propletID, fullHistory, exitedRecord())))
	sub.Wait(t, 10*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 2 })

	other := plog.NewLogs()
	other.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("not a report")
	require.NoError(t, le.ConsumeLogs(ctx, other))
	require.Eventually(t, func() bool { return logsLog.FilterMessageSnippet("skipped").Len() == 1 }, 5*time.Second, 10*time.Millisecond,
		"the logs path logs with the logs signal's logger, though the metrics signal created the exporter")

	require.NoError(t, me.Shutdown(ctx))
	assert.True(t, shared.client.connected(), "the logs signal still holds the connection")
	r := exitedRecord()
	r.end = r.end.Add(time.Minute)
	require.NoError(t, le.ConsumeLogs(ctx, usageLogs(taskID, propletID, fullHistory, r)))
	msgs := sub.Wait(t, 10*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 3 })
	assert.Len(t, msgs, 3)

	require.NoError(t, le.Shutdown(ctx))
	assert.False(t, shared.client.connected(), "the last shutdown disconnects")
	_, _, ok = exporters.Peek(cfg)
	assert.False(t, ok, "and forgets the configuration")
}

// TestOnlyFailedRecordsAreRetried: when some messages of a batch are not acknowledged, only
// their records are sent again, the same bytes.
func TestOnlyFailedRecordsAreRetried(t *testing.T) {
	t.Parallel()
	ld := usageLogs("a", propletID, fullHistory, exitedRecord(), killedRecord())
	usageLogs("b", propletID, fullHistory, killedRecord()).ResourceLogs().MoveAndAppendTo(ld.ResourceLogs())
	e := newUsageExporter(t)
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	var err error
	e.tel, err = metadata.NewTelemetryBuilder(tel.NewTelemetrySettings())
	require.NoError(t, err)
	e.client = &failingClient{fail: `"task_id":"b"`}
	req := e.buildLogs(ld)
	first := e.expand(req, e.usageRefusals)
	require.Len(t, first, 3)

	// The records whose messages were not acknowledged are what the retry sends; the rest
	// counts as sent.
	err = e.pushQueuedLogs(context.Background(), req)
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "retried, not dropped")
	retry := req.OnError(err).(*queued)
	require.Equal(t, 1, retry.ItemsCount())
	again := e.expand(retry, e.usageRefusals)
	require.Len(t, again, 1)
	assert.Equal(t, first[2].topic, again[0].topic)
	assert.Equal(t, string(first[2].payload), string(again[0].payload), "the same bytes")
	assert.Equal(t, int64(2), counter(t, tel, "exporter_mqtt_messages_published"))
	assert.Equal(t, int64(1), counter(t, tel, "exporter_mqtt_messages_failed"))
	assert.Same(t, req, req.OnError(errors.New("another error")), "an error without a subset retries the whole request")
}

// failingClient acknowledges every publish except those whose payload contains fail.
type failingClient struct{ fail string }

func (*failingClient) start(context.Context) error { return nil }
func (*failingClient) connected() bool             { return true }
func (*failingClient) stop()                       {}
func (c *failingClient) publish(_ string, payload []byte) token {
	t := &asyncToken{done: make(chan struct{})}
	if strings.Contains(string(payload), c.fail) {
		t.err = errors.New("connection lost before the acknowledgement")
	}
	close(t.done)
	return t
}
