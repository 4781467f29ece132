package propellermqttreceiver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// TestBadInputIsCountedByReason: every kind of bad message through the broker, each dropped
// and counted under its reason; the good ones around them go through.
func TestBadInputIsCountedByReason(t *testing.T) {
	t.Parallel()
	endpoint := broker(t)
	g := startGateway(t, endpoint, "gateway-bad", func(c *Config) {
		c.Topics = []string{"m/+/c/+/control/proplet/#"}
	})
	pub := publisher(t, endpoint)
	waitSubscribed(t, pub, g)

	good := string(taskMessage(1, 1, time.Now()))
	id := uuid(1, 1)
	stamp := func(s string) string {
		i := strings.LastIndex(good, `"timestamp":`)
		return good[:i] + `"timestamp":` + s + "}"
	}
	cases := map[propeller.DropReason][]string{
		propeller.DropNotJSON:   {"not json", good[:50], "[1]"},
		propeller.DropWrongType: {strings.Replace(good, `"thread_count":3`, `"thread_count":"3"`, 1), strings.Replace(good, `"cpu_percent":1`, `"cpu_percent":"NaN"`, 1)},
		propeller.DropMissingID: {strings.Replace(good, id, "", 1)},
		propeller.DropIDTooLong: {strings.Replace(good, id, id+"-0000", 1)},
		propeller.DropIDNotUUID: {strings.Replace(good, id, "task-1", 1)},
		propeller.DropTimestamp: {stamp(`"2099-01-01T00:00:00Z"`), stamp(`"1999-01-01T00:00:00Z"`)},
		propeller.DropValue:     {strings.Replace(good, `"cpu_percent":1`, `"cpu_percent":1e999`, 1), strings.Replace(good, `"thread_count":3`, `"thread_count":-3`, 1)},
		propeller.DropNoMetrics: {`{"task_id":"` + id + `","proplet_id":"` + id + `"}`},
		propeller.DropTooLarge:  {`{"pad":"` + strings.Repeat("x", propeller.MaxPayload) + `"}`},
	}
	topic := "m/d/c/c/control/proplet/task_metrics"
	total := 0
	for _, payloads := range cases {
		for _, p := range payloads {
			publish(t, pub, topic, []byte(p))
			total++
		}
	}
	// Heartbeats under the wide filter are not metrics: ignored, not dropped.
	publish(t, pub, "m/d/c/c/control/proplet/alive", []byte(`{"proplet_id":"`+id+`","status":"alive"}`))
	publish(t, pub, topic, []byte(good))
	waitFor(t, 10*time.Second, "the good message", func() bool { return resources(g.sink) == 1 })
	for reason, payloads := range cases {
		assert.Equal(t, int64(len(payloads)), counterBy(t, g.tel, "receiver_propeller_mqtt_dropped_messages", "reason", string(reason)), "reason %s", reason)
	}
	assert.Equal(t, int64(total), counter(t, g.tel, "receiver_propeller_mqtt_dropped_messages"))
	assert.Equal(t, int64(1), counter(t, g.tel, "receiver_propeller_mqtt_ignored_messages"), "the heartbeat")
	for _, r := range propeller.DropReasons {
		if r == propeller.DropTopicID {
			continue // brokers refuse such topics themselves; TestTopicIDsAreChecked sends them
		}
		assert.Contains(t, cases, r, "a case for every reason")
	}
}

// TestTopicsOutsideTheFiltersAreIgnored: a persistent session keeps the subscriptions of an
// earlier configuration; what they bring that no configured filter matches is ignored.
func TestTopicsOutsideTheFiltersAreIgnored(t *testing.T) {
	t.Parallel()
	if !mqtttest.MosquittoAvailable() {
		t.Skip("needs mosquitto's persistent sessions")
	}
	endpoint := broker(t)
	pub := publisher(t, endpoint)
	before := startGateway(t, endpoint, "gateway-reconfigured", nil)
	waitSubscribed(t, pub, before)
	require.NoError(t, before.r.Shutdown(context.Background()))

	// Reconfigured to one domain: the broker still holds the session's wildcard subscriptions.
	after := startGateway(t, endpoint, "gateway-reconfigured", func(c *Config) {
		c.Topics = []string{"m/d1/c/+/control/proplet/task_metrics"}
	})
	publish(t, pub, "m/d2/c/c/control/proplet/task_metrics", taskMessage(2, 2, time.Now()))
	publish(t, pub, "m/d1/c/c/control/proplet/task_metrics", taskMessage(1, 1, time.Now()))
	waitFor(t, 10*time.Second, "the d1 message", func() bool { return resources(after.sink) == 1 })
	waitFor(t, 10*time.Second, "the d2 message ignored", func() bool {
		return counter(t, after.tel, "receiver_propeller_mqtt_ignored_messages") == 1
	})
	md := after.sink.AllMetrics()
	v, _ := md[0].ResourceMetrics().At(0).Resource().Attributes().Get(schema.DomainID)
	assert.Equal(t, "d1", v.Str())
}
