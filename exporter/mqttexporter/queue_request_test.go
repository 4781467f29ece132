package mqttexporter

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exporterhelper/xexporterhelper"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

// queuedRound is a request of n task messages, as the exporter queues a round of n tasks.
func queuedRound(t *testing.T, e *mqttExporter, first, n int, ts time.Time) *queued {
	t.Helper()
	q := e.build(round(goldenTaskSample(t), first, n, ts), time.Now())
	require.Equal(t, n, q.ItemsCount())
	return q
}

func payloads(outs []outgoing) []string {
	out := make([]string, len(outs))
	for i, o := range outs {
		out[i] = o.topic + " " + string(o.payload)
	}
	return out
}

// TestQueuedRequestSurvivesThePersistentEncoding: what the persistent queue writes and reads
// back sends the same topics and bytes.
func TestQueuedRequestSurvivesThePersistentEncoding(t *testing.T) {
	e, _, logs := directUnstarted(t)
	q := queuedRound(t, e, 0, 20, t0)
	b, err := queueEncoding{}.Marshal(context.Background(), q)
	require.NoError(t, err)
	assert.Len(t, b, q.BytesSize()+1, "a format byte and the records")
	_, back, err := queueEncoding{}.Unmarshal(b)
	require.NoError(t, err)
	assert.Equal(t, q.ItemsCount(), back.ItemsCount())
	assert.Equal(t, payloads(e.expand(q, e.refusals)), payloads(e.expand(back.(*queued), e.refusals)))
	assert.Len(t, e.expand(q, e.refusals), 40, "20 messages, two topics each")

	_, _, err = queueEncoding{}.Unmarshal(append([]byte{queueFormat}, 0x7f))
	assert.ErrorContains(t, err, "broken length")
	_, _, err = queueEncoding{}.Unmarshal([]byte{9, 1, 2})
	assert.ErrorContains(t, err, "unknown format")
	assert.Zero(t, logs.FilterMessageSnippet("refused").Len())
}

// TestUnreadableQueuedMessageIsRefused: a record that cannot be read back is refused and
// counted, and the others are sent.
func TestUnreadableQueuedMessageIsRefused(t *testing.T) {
	e, _, logs := directUnstarted(t)
	q := queuedRound(t, e, 0, 3, t0)
	bad := &queued{buf: append([]byte{3, kindTask, 1, 0xff}, q.buf...), n: q.n + 1} // a task message of one byte
	outs := e.expand(bad, e.refusals)
	assert.Len(t, outs, 6, "the three good messages, on both topics")
	assert.Equal(t, 1, logs.FilterField(reasonField(reasonUnreadable)).Len())

	unknown := &queued{buf: append([]byte{2, 99, 1}, q.buf...), n: q.n + 1}
	assert.Len(t, e.expand(unknown, e.refusals), 6)
}

// TestQueuedUsageWithoutDelaysIsRead: a task usage record of the compact form before the
// delays (kind 3, what an earlier version left in a persistent queue) is sent as it was built.
func TestQueuedUsageWithoutDelaysIsRead(t *testing.T) {
	e, _, logs := directUnstarted(t)
	m := propeller.TaskUsage{TaskID: taskID, PropletID: propletID, StartedAt: t0, EndedAt: t0, HasExitCode: true, ExitCode: 3, Timestamp: t0}
	rec := newRecorder(0)
	rec.add(kindUsage, 1, &m)
	now := rec.request()
	b, err := m.AppendBinary(nil)
	require.NoError(t, err)
	require.Equal(t, byte(0), b[len(b)-1], "no delays: a zero flag byte after the earlier form")
	body := append([]byte{kindUsageWithoutDelays, 1}, b[:len(b)-1]...)
	earlier := &queued{buf: append(binary.AppendUvarint(nil, uint64(len(body))), body...), n: 1}
	want := payloads(e.expand(now, e.refusals))
	require.Len(t, want, 1)
	assert.Equal(t, want, payloads(e.expand(earlier, e.refusals)))
	assert.Zero(t, logs.FilterMessageSnippet("refused").Len())
}

// TestMergeSplit: with sending_queue.batch, requests merge and split on message boundaries,
// by messages or by bytes, and send what they held.
func TestMergeSplit(t *testing.T) {
	e, _, _ := directUnstarted(t)
	a, b := queuedRound(t, e, 0, 5, t0), queuedRound(t, e, 5, 7, t0)
	want := append(payloads(e.expand(a, e.refusals)), payloads(e.expand(b, e.refusals))...)
	ctx := context.Background()
	sent := func(reqs []xexporterhelper.Request) (all []string) {
		for _, r := range reqs {
			all = append(all, payloads(e.expand(r.(*queued), e.refusals))...)
		}
		return all
	}

	merged, err := a.MergeSplit(ctx, 0, exporterhelper.RequestSizerTypeItems, b)
	require.NoError(t, err)
	require.Len(t, merged, 1)
	assert.Equal(t, 12, merged[0].ItemsCount())
	assert.Equal(t, want, sent(merged))

	split, err := a.MergeSplit(ctx, 5, exporterhelper.RequestSizerTypeItems, b)
	require.NoError(t, err)
	require.Len(t, split, 3)
	assert.Equal(t, []int{5, 5, 2}, []int{split[0].ItemsCount(), split[1].ItemsCount(), split[2].ItemsCount()})
	assert.Equal(t, want, sent(split))

	per := a.BytesSize() / a.ItemsCount()
	split, err = a.MergeSplit(ctx, 3*per+per/2, exporterhelper.RequestSizerTypeBytes, b)
	require.NoError(t, err)
	for _, r := range split {
		assert.LessOrEqual(t, r.BytesSize(), 3*per+per/2)
		assert.Positive(t, r.ItemsCount())
	}
	assert.Equal(t, want, sent(split))

	alone, err := a.MergeSplit(ctx, 1, exporterhelper.RequestSizerTypeBytes, nil)
	require.NoError(t, err)
	assert.Len(t, alone, 5, "a message larger than the limit goes alone, never cut")
}

// directUnstarted is an exporter that builds and expands requests without a broker; its log
// is kept.
func directUnstarted(t *testing.T) (*mqttExporter, *componenttest.Telemetry, *observer.ObservedLogs) {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.DomainID, cfg.ChannelID = "dom", "chn"
	set, tel, logs := observedSettings(t)
	e, err := newExporter(set, cfg)
	require.NoError(t, err)
	return e, tel, logs
}

func reasonField(reason string) zap.Field { return zap.String("reason", reason) }
