package propellermqttreceiver

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propellermqttreceiver/internal/metadata"
)

// converter is the receiver's conversion path without a broker: messages are handed to handle
// as the client's goroutine hands them, and resources counted as the pipeline gets them.
type converter struct {
	r         *fleetReceiver
	tel       *componenttest.Telemetry
	logs      *observer.ObservedLogs
	resources atomic.Int64
}

func newConverter(t *testing.T, mutate func(*Config)) *converter {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.ClientID = "gateway-bounds"
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	c := &converter{tel: componenttest.NewTelemetry()}
	t.Cleanup(func() { _ = c.tel.Shutdown(context.Background()) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = c.tel.NewTelemetrySettings()
	core, logs := observer.New(zapcore.WarnLevel)
	set.Logger, c.logs = zap.New(core), logs
	next, err := consumer.NewMetrics(func(_ context.Context, md pmetric.Metrics) error {
		c.resources.Add(int64(md.ResourceMetrics().Len()))
		return nil
	})
	require.NoError(t, err)
	c.r, err = newReceiver(set, cfg, next)
	require.NoError(t, err)
	require.NoError(t, c.r.initTelemetry())
	c.r.ctx, c.r.cancel = context.WithCancel(context.Background())
	c.r.wg.Add(1)
	go c.r.flushLoop()
	t.Cleanup(func() { c.r.stopOnce.Do(c.r.stop) })
	return c
}

// done hands on everything converted.
func (c *converter) done() { c.r.stopOnce.Do(c.r.stop) }

// TestDistinctTaskIDsAreBoundedByTheCap: a sender of 100,000 distinct valid task ids gets
// max_tasks of them through; the rest are counted, and the tracked state stays at the cap.
func TestDistinctTaskIDsAreBoundedByTheCap(t *testing.T) {
	c := newConverter(t, nil)
	now := time.Now()
	const sent = 100_000
	for i := range sent {
		c.r.handle(taskTopic(0), taskMessage(1, i, now), now.UnixNano())
	}
	c.done()
	assert.Equal(t, 10_000, c.r.tracked.Len(schema.KindTask), "the documented default max_tasks")
	assert.Equal(t, int64(10_000), c.resources.Load(), "resources handed on")
	assert.Equal(t, int64(sent-10_000), counterBy(t, c.tel, "receiver_propeller_mqtt_dropped_messages", "reason", "too_many_tasks"))
	over := c.logs.FilterField(zap.String("reason", "too_many_tasks")).All()
	require.Len(t, over, 1, "logged once, not once a message")
	assert.Equal(t, zapcore.ErrorLevel, over[0].Level)
	assert.Contains(t, over[0].Message, "raise max_tasks")

	// A tracked task keeps going, and proplets have their own cap.
	c2 := newConverter(t, func(cfg *Config) { cfg.MaxTasks, cfg.MaxProplets = 2, 1 })
	for i := range 5 {
		c2.r.handle(taskTopic(0), taskMessage(1, i%3, now), now.UnixNano())
	}
	for p := range 3 {
		c2.r.handle("m/d/c/c/control/proplet/metrics", []byte(`{"proplet_id":"`+uuid(2, p)+`","cpu_metrics":{"percent":1}}`), now.UnixNano())
	}
	c2.done()
	assert.Equal(t, int64(4+1), c2.resources.Load(), "tasks 0 and 1 twice each, one proplet")
	assert.Equal(t, int64(1), counterBy(t, c2.tel, "receiver_propeller_mqtt_dropped_messages", "reason", "too_many_tasks"))
	assert.Equal(t, int64(2), counterBy(t, c2.tel, "receiver_propeller_mqtt_dropped_messages", "reason", "too_many_proplets"))
}

// TestTopicIDsAreChecked: a domain or channel from the topic becomes a label on every series,
// so it is checked as ids in a message are (length, characters).
func TestTopicIDsAreChecked(t *testing.T) {
	c := newConverter(t, nil)
	now := time.Now()
	topics := map[string]string{
		"id_too_long":  "m/" + strings.Repeat("d", 59<<10) + "/c/c/control/proplet/task_metrics",
		"bad_topic_id": "m/d\x01/c/c\uFFFE/control/proplet/task_metrics",
	}
	for _, topic := range topics {
		c.r.handle(topic, taskMessage(1, 1, now), now.UnixNano())
	}
	c.r.handle("m/d/c/c/control/proplet/task_metrics", taskMessage(1, 1, now), now.UnixNano())
	c.done()
	assert.Equal(t, int64(1), c.resources.Load(), "only the message on a good topic")
	for reason := range topics {
		assert.Equal(t, int64(1), counterBy(t, c.tel, "receiver_propeller_mqtt_dropped_messages", "reason", reason), reason)
	}
	for _, e := range c.logs.All() {
		assert.Less(t, len(e.ContextMap()["topic"].(string)), 300, "the log line does not carry the 59 KB topic")
	}
}

// TestAbsurdValuesAreDropped: finite values no machine can measure are dropped and counted.
func TestAbsurdValuesAreDropped(t *testing.T) {
	c := newConverter(t, nil)
	now := time.Now()
	good := string(taskMessage(1, 1, now))
	for _, bad := range []string{
		strings.Replace(good, `"cpu_percent":1`, `"cpu_percent":1e308`, 1),
		strings.Replace(good, `"uptime_seconds":60`, `"uptime_seconds":1e300`, 1),
		strings.Replace(good, `"memory_bytes":1048577`, `"memory_bytes":9.2e18`, 1),
	} {
		require.NotEqual(t, good, bad)
		c.r.handle(taskTopic(0), []byte(bad), now.UnixNano())
	}
	c.done()
	assert.Zero(t, c.resources.Load())
	assert.Equal(t, int64(3), counterBy(t, c.tel, "receiver_propeller_mqtt_dropped_messages", "reason", "bad_value"))
}
