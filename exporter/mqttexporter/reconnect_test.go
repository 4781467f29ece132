package mqttexporter

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// TestReconnectsToABrokerThatRefusesPersistentSessions: a broker that closes every connection
// asking for a persistent session without a CONNACK, as FluxMQ does with its cluster disabled,
// restarts in the middle of a stream. Both protocol versions reconnect, and the broker
// receives every sample. Before, the MQTT 5 client reconnected with clean start 0 and was
// refused until shutdown.
func TestReconnectsToABrokerThatRefusesPersistentSessions(t *testing.T) {
	for _, version := range []string{"3.1.1", "5"} {
		t.Run(version, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{RefusePersistent: mqtttest.CloseBeforeConnack, Record: true})
			domain, channel := uniqueIDs(t)
			cfg := testConfig(b.Endpoint(), domain, channel)
			cfg.ProtocolVersion = version
			cfg.Topics.TaskMetrics = cfg.Topics.TaskMetrics[:1]
			cfg.BackOffConfig.InitialInterval = 50 * time.Millisecond
			cfg.BackOffConfig.MaxInterval = 200 * time.Millisecond
			cfg.MaxReconnectInterval = time.Second
			q := cfg.QueueConfig.Get()
			q.NumConsumers = 1
			cfg.QueueConfig = configoptional.Some(*q)
			set, _, _ := observedSettings(t)
			exp := viaFactoryWith(t, cfg, set)

			const n = 60
			for i := range n {
				p := firstPoint()
				p.ts = t0.Add(time.Duration(i) * time.Second)
				p.cpuUser += float64(i)
				require.NoError(t, exp.ConsumeMetrics(context.Background(), taskMetrics(taskID, propletID, fullHistory, p)))
				if i == n/3 {
					b.Restart(300 * time.Millisecond)
				}
			}
			want := map[string]bool{}
			for i := range n {
				want[t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano)] = true
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				got := map[string]bool{}
				for _, m := range b.Received() {
					var v map[string]any
					require.NoError(t, json.Unmarshal(m.Payload, &v))
					got[fmt.Sprint(v["timestamp"])] = true
				}
				missing := 0
				for ts := range want {
					if !got[ts] {
						missing++
					}
				}
				if missing == 0 {
					break
				}
				require.True(t, time.Now().Before(deadline), "%d of %d samples never reached the broker; refused connections: %d", missing, n, b.Refused())
				time.Sleep(50 * time.Millisecond) //nolint:forbidigo // polling the broker's record with a deadline
			}
			assert.Zero(t, b.Refused(), "every connection asked for a clean session")
		})
	}
}

// TestWrongListenerIsNamedInTheFirstLogLine: an MQTT 5 exporter on a listener of MQTT 3.1.1
// only (FluxMQ has one per version), which closes the connection without a CONNACK. The first
// log line is an error that says so and names the port of the MQTT 5 listener; the attempts
// are counted by cause. Before, it was a warning saying EOF.
func TestWrongListenerIsNamedInTheFirstLogLine(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{OnlyProtocol: 4})
	cfg := testConfig(b.Endpoint(), "d", "c")
	cfg.ProtocolVersion = "5"
	_, tel, logs := directObserved(t, cfg)
	require.Eventually(t, func() bool { return logs.FilterLevelExact(zapcore.ErrorLevel).Len() > 0 }, 10*time.Second, 20*time.Millisecond)
	var first observer.LoggedEntry
	for _, e := range logs.All() {
		if e.Level >= zapcore.WarnLevel {
			first = e
			break
		}
	}
	assert.Equal(t, zapcore.ErrorLevel, first.Level)
	assert.Contains(t, first.Message, "closed the connection without a CONNACK when asked for a clean session over MQTT 5")
	assert.Contains(t, first.Message, "MQTT 3.1.1 listener")
	assert.Contains(t, first.Message, "use port 1884 for MQTT 5")
	assert.Positive(t, counter(t, tel, "exporter_mqtt_connection_failures"))
}
