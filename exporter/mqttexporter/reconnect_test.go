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
