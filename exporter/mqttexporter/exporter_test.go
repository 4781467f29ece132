package mqttexporter

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap/zapcore"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

const (
	taskID    = "550e8400-e29b-41d4-a716-446655440001"
	propletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
)

var t0 = time.Date(2025, 1, 15, 10, 35, 22, 123456789, time.UTC)

func firstPoint() point {
	return point{
		ts: t0, start: t0.Add(-50 * time.Second), cpuUser: 8, cpuSys: 2, rss: 52428800, memUtil: 0.012,
		read: 1048576, write: 524288, uptime: 50.9, threads: 2, fds: 8,
	}
}

// checkTaskMessage decodes like the Propeller manager and checks the type of every field.
func checkTaskMessage(t *testing.T, m map[string]any) (metrics, aggregated map[string]any) {
	t.Helper()
	require.IsType(t, "", m["task_id"])
	require.NotEmpty(t, m["task_id"])
	require.IsType(t, "", m["proplet_id"])
	ts, ok := m["timestamp"].(string)
	require.True(t, ok, "top-level timestamp is a string")
	_, err := time.Parse(time.RFC3339Nano, ts)
	require.NoError(t, err, "top-level timestamp is RFC 3339 with nanoseconds")
	metrics, ok = m["metrics"].(map[string]any)
	require.True(t, ok)
	for k, v := range metrics {
		if k == "timestamp" {
			require.IsType(t, "", v)
			continue
		}
		require.IsType(t, float64(0), v, "metrics.%s is a number", k)
	}
	if m["aggregated"] == nil {
		return metrics, nil
	}
	aggregated, ok = m["aggregated"].(map[string]any)
	require.True(t, ok, "aggregated is an object or null")
	for k, v := range aggregated {
		require.IsType(t, float64(0), v, "aggregated.%s is a number", k)
	}
	return metrics, aggregated
}

func TestGoldenMessages(t *testing.T) {
	t.Parallel()
	for _, b := range brokers(t) {
		t.Run(b.name, func(t *testing.T) {
			domain, channel := uniqueIDs(t)
			sub := mqtttest.Subscribe(t, b.endpoint, fmt.Sprintf("m/%s/c/%s/#", domain, channel), mqtttest.SubscriberOptions{})
			e, tel := direct(t, testConfig(b.endpoint, domain, channel))

			require.NoError(t, e.pushMetrics(context.Background(), taskMetrics(taskID, propletID, fullHistory, firstPoint())))
			require.NoError(t, e.pushMetrics(context.Background(), propletMetrics(propletID, t0)))
			msgs := sub.Wait(t, 5*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 3 })

			byTopic := map[string]mqtttest.Message{}
			for _, m := range msgs {
				byTopic[strings.TrimPrefix(m.Topic, fmt.Sprintf("m/%s/c/%s/", domain, channel))] = m
			}
			wantTask := `{"task_id":"550e8400-e29b-41d4-a716-446655440001","proplet_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7",` +
				`"metrics":{"cpu_percent":20,"memory_bytes":52428800,"memory_percent":1.2,"disk_read_bytes":1048576,"disk_write_bytes":524288,` +
				`"uptime_seconds":50,"thread_count":2,"file_descriptor_count":8,"timestamp":"2025-01-15T10:35:22.123456789Z"},` +
				`"aggregated":{"avg_cpu_usage":20,"max_cpu_usage":20,"avg_memory_usage":52428800,"max_memory_usage":52428800,"total_disk_read":0,"total_disk_write":0,"sample_count":1},` +
				`"timestamp":"2025-01-15T10:35:22.123456789Z"}`
			assert.Equal(t, wantTask, string(byTopic["control/proplet/task_metrics"].Payload))
			assert.Equal(t, wantTask, string(byTopic["metrics/proplet"].Payload), "both task topics carry the message")
			assert.Equal(t, `{"proplet_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","namespace":"default","timestamp":"2025-01-15T10:35:22.123456789Z",`+
				`"cpu_metrics":{"user_seconds":12.5,"system_seconds":3.25,"percent":17},`+
				`"memory_metrics":{"rss_bytes":41943040,"container_usage_bytes":73400320,"container_limit_bytes":536870912}}`,
				string(byTopic["control/proplet/metrics"].Payload))

			metrics, agg := checkTaskMessage(t, byTopic["control/proplet/task_metrics"].Decoded(t))
			assert.InDelta(t, 20.0, metrics["cpu_percent"], 1e-9)
			assert.InDelta(t, 52428800.0, metrics["memory_bytes"], 0)
			assert.InDelta(t, 1.2, metrics["memory_percent"], 1e-9)
			assert.InDelta(t, 1048576.0, metrics["disk_read_bytes"], 0)
			assert.InDelta(t, 524288.0, metrics["disk_write_bytes"], 0)
			assert.InDelta(t, 50.0, metrics["uptime_seconds"], 0)
			assert.InDelta(t, 2.0, metrics["thread_count"], 0)
			assert.InDelta(t, 8.0, metrics["file_descriptor_count"], 0)
			assert.NotContains(t, metrics, "network_rx_bytes", "no network fields unless the receiver sent network data")
			assert.InDelta(t, 1.0, agg["sample_count"], 0)

			assert.Equal(t, int64(3), counter(t, tel, "exporter_mqtt_messages_published"))
			assert.Positive(t, counter(t, tel, "exporter_mqtt_bytes_sent"))
		})
	}
}

func TestCPUPercentFromDeltasAndTheAggregatedWindow(t *testing.T) {
	t.Parallel()
	for _, b := range brokers(t) {
		t.Run(b.name, func(t *testing.T) {
			domain, channel := uniqueIDs(t)
			sub := mqtttest.Subscribe(t, b.endpoint, fmt.Sprintf("m/%s/c/%s/control/proplet/task_metrics", domain, channel), mqtttest.SubscriberOptions{})
			e, _ := direct(t, testConfig(b.endpoint, domain, channel))

			// Seven samples 10 s apart with a window of 5: CPU grows 5 s per 10 s (50% of a core),
			// memory grows 1 MiB per sample, disk 1000 bytes and network 10 bytes per sample.
			p := firstPoint()
			p.net = true
			const n, window = 7, 5
			for i := range n {
				q := p
				q.ts = p.ts.Add(time.Duration(i) * 10 * time.Second)
				q.cpuUser = p.cpuUser + 5*float64(i)
				q.rss = p.rss + int64(i)<<20
				q.read = p.read + int64(i)*1000
				q.rx, q.tx = int64(i)*10, int64(i)*20
				require.NoError(t, e.pushMetrics(context.Background(), taskMetrics(taskID, propletID, profileAttrs{history: window, retain: true, export: true}, q)))
			}
			msgs := sub.Wait(t, 5*time.Second, func(m []mqtttest.Message) bool { return len(m) >= n })
			last := msgs[n-1].Decoded(t)
			metrics, agg := checkTaskMessage(t, last)
			assert.InDelta(t, 50.0, metrics["cpu_percent"], 1e-9, "CPU-time delta over wall-time delta, 100 = one core")
			assert.InDelta(t, 120.0, metrics["network_tx_bytes"], 0)
			assert.InDelta(t, float64(window), agg["sample_count"], 0, "FIFO of the last history_size samples")
			assert.InDelta(t, 50.0, agg["avg_cpu_usage"], 1e-9)
			assert.InDelta(t, 50.0, agg["max_cpu_usage"], 1e-9)
			assert.InDelta(t, float64(p.rss+6<<20), agg["max_memory_usage"], 0)
			assert.InDelta(t, float64(p.rss+4<<20), agg["avg_memory_usage"], 0, "average of samples 2..6")
			assert.InDelta(t, 4000.0, agg["total_disk_read"], 0, "last minus first in the window")
			assert.InDelta(t, 40.0, agg["total_network_rx"], 0)
			assert.InDelta(t, 80.0, agg["total_network_tx"], 0)

			// Sent again after a failure, a batch yields exactly the same message: the sample is found
			// in the window and neither added twice nor given another cpu_percent.
			q := p
			q.ts = p.ts.Add((n - 1) * 10 * time.Second)
			q.cpuUser = p.cpuUser + 5*(n-1)
			q.rss = p.rss + (n-1)<<20
			q.read = p.read + (n-1)*1000
			q.rx, q.tx = (n-1)*10, (n-1)*20
			require.NoError(t, e.pushMetrics(context.Background(), taskMetrics(taskID, propletID, profileAttrs{history: window, retain: true, export: true}, q)))
			msgs = sub.Wait(t, 5*time.Second, func(m []mqtttest.Message) bool { return len(m) >= n+1 })
			assert.Equal(t, string(msgs[n-1].Payload), string(msgs[n].Payload))
		})
	}
}

func TestHistoryOffAndExportOff(t *testing.T) {
	t.Parallel()
	for _, b := range brokers(t) {
		t.Run(b.name, func(t *testing.T) {
			domain, channel := uniqueIDs(t)
			sub := mqtttest.Subscribe(t, b.endpoint, fmt.Sprintf("m/%s/c/%s/control/proplet/task_metrics", domain, channel), mqtttest.SubscriberOptions{})
			e, _ := direct(t, testConfig(b.endpoint, domain, channel))
			ctx := context.Background()
			require.NoError(t, e.pushMetrics(ctx, taskMetrics("no-history", propletID, profileAttrs{history: 100, retain: false, export: true}, firstPoint())))
			require.NoError(t, e.pushMetrics(ctx, taskMetrics("zero-history", propletID, profileAttrs{history: 0, retain: true, export: true}, firstPoint())))
			require.NoError(t, e.pushMetrics(ctx, taskMetrics("not-exported", propletID, profileAttrs{history: 100, retain: true, export: false}, firstPoint())))
			require.NoError(t, e.pushMetrics(ctx, taskMetrics("marker", propletID, fullHistory, firstPoint())))
			msgs := sub.Wait(t, 5*time.Second, func(m []mqtttest.Message) bool {
				for _, x := range m {
					if strings.Contains(string(x.Payload), `"marker"`) {
						return len(m) >= 3
					}
				}
				return false
			})
			require.Len(t, msgs, 3, "export_to_mqtt: false is not published")
			for _, m := range msgs[:2] {
				v := m.Decoded(t)
				require.Contains(t, v, "aggregated")
				assert.Nil(t, v["aggregated"], "aggregated is null without history")
				assert.Contains(t, string(m.Payload), `"aggregated":null`)
			}
		})
	}
}

func TestOtherSourcesAndOlderNames(t *testing.T) {
	t.Parallel()
	for _, b := range brokers(t) {
		t.Run(b.name, func(t *testing.T) {
			// What the contrib hostmetrics process scraper emits under its older names, with a resource
			// processor that set the task id: no profile attributes, no proplet id attribute.
			domain, channel := uniqueIDs(t)
			sub := mqtttest.Subscribe(t, b.endpoint, fmt.Sprintf("m/%s/c/%s/control/proplet/task_metrics", domain, channel), mqtttest.SubscriberOptions{})
			cfg := testConfig(b.endpoint, domain, channel)
			cfg.PropletID = propletID
			e, _ := direct(t, cfg)

			md := pmetric.NewMetrics()
			rm := md.ResourceMetrics().AppendEmpty()
			rm.Resource().Attributes().PutStr("propeller.task.id", taskID)
			rm.Resource().Attributes().PutInt("process.pid", 99)
			ms := rm.ScopeMetrics().AppendEmpty().Metrics()
			ts, start := pcommon.NewTimestampFromTime(t0), pcommon.NewTimestampFromTime(t0.Add(-100*time.Second))
			add := func(name, key, val string, v float64, isInt bool) {
				var m pmetric.Metric
				for i := 0; i < ms.Len(); i++ {
					if ms.At(i).Name() == name {
						m = ms.At(i)
					}
				}
				if m == (pmetric.Metric{}) {
					m = ms.AppendEmpty()
					m.SetName(name)
					m.SetEmptySum()
				}
				dp := m.Sum().DataPoints().AppendEmpty()
				dp.SetTimestamp(ts)
				dp.SetStartTimestamp(start)
				if isInt {
					dp.SetIntValue(int64(v))
				} else {
					dp.SetDoubleValue(v)
				}
				if key != "" {
					dp.Attributes().PutStr(key, val)
				}
			}
			add("process.cpu.time", "state", "user", 30, false)
			add("process.cpu.time", "state", "system", 10, false)
			add("process.cpu.time", "state", "wait", 0, false)
			add("process.memory.usage", "", "", 1<<20, true)
			add("process.disk.io", "direction", "read", 100, true)
			add("process.disk.io", "direction", "write", 200, true)
			add("process.threads", "", "", 3, true)
			add("process.open_file_descriptors", "", "", 7, true)
			require.NoError(t, e.pushMetrics(context.Background(), md))

			msgs := sub.Wait(t, 5*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 1 })
			v := msgs[0].Decoded(t)
			metrics, agg := checkTaskMessage(t, v)
			assert.Equal(t, propletID, v["proplet_id"], "the configured proplet_id fills in")
			assert.InDelta(t, 40.0, metrics["cpu_percent"], 1e-9, "40 CPU seconds over 100 s of life")
			assert.InDelta(t, float64(1<<20), metrics["memory_bytes"], 0)
			assert.InDelta(t, 100.0, metrics["disk_read_bytes"], 0)
			assert.InDelta(t, 200.0, metrics["disk_write_bytes"], 0)
			assert.InDelta(t, 3.0, metrics["thread_count"], 0)
			assert.InDelta(t, 7.0, metrics["file_descriptor_count"], 0)
			assert.InDelta(t, 100.0, metrics["uptime_seconds"], 0, "from the cumulative start time")
			require.NotNil(t, agg, "default_history_size applies")
		})
	}
}

func TestUnsafeTaskIDsAreRefused(t *testing.T) {
	t.Parallel()
	for _, b := range brokers(t) {
		t.Run(b.name, func(t *testing.T) {
			domain, channel := uniqueIDs(t)
			sub := mqtttest.Subscribe(t, b.endpoint, fmt.Sprintf("m/%s/c/%s/#", domain, channel), mqtttest.SubscriberOptions{})
			cfg := testConfig(b.endpoint, domain, channel)
			cfg.Topics.TaskMetrics = []string{"m/{domain_id}/c/{channel_id}/tasks/{task_id}/metrics"}
			e, tel := direct(t, cfg)
			for _, id := range []string{"a/b", "evil/#", "x+y", "nul\x00"} {
				require.NoError(t, e.pushMetrics(context.Background(), taskMetrics(id, propletID, fullHistory, firstPoint())))
			}
			require.NoError(t, e.pushMetrics(context.Background(), taskMetrics("good", propletID, fullHistory, firstPoint())))
			msgs := sub.Wait(t, 5*time.Second, func(m []mqtttest.Message) bool { return len(m) >= 1 })
			require.Len(t, msgs, 1)
			assert.Equal(t, fmt.Sprintf("m/%s/c/%s/tasks/good/metrics", domain, channel), msgs[0].Topic)
			assert.Equal(t, int64(4), counter(t, tel, "exporter_mqtt_messages_refused"))
		})
	}
}

func TestWrongPasswordIsAClearErrorWithoutTheSecret(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{Username: "proplet", Password: "right"})
	for _, version := range []string{"3.1.1", "5"} {
		t.Run(version, func(t *testing.T) {
			cfg := testConfig(b.Endpoint(), "d", "c")
			cfg.ProtocolVersion = version
			cfg.Username, cfg.Password = "proplet", "wrong-secret"
			// Start ends with the broker's answer, not after the connect timeout.
			cfg.ConnectTimeout = time.Minute
			exp, err := NewFactory().CreateMetrics(context.Background(), exportertestSettings(), cfg)
			require.NoError(t, err)
			started := time.Now()
			err = exp.Start(context.Background(), componenttest.NewNopHost())
			require.ErrorIs(t, err, mqttconn.ErrBadCredentials)
			assert.Less(t, time.Since(started), cfg.ConnectTimeout, "Start waited out the connect timeout")
			assert.ErrorContains(t, err, "refused the credentials")
			assert.ErrorContains(t, err, `"proplet"`)
			assert.NotContains(t, err.Error(), "wrong-secret")
			_ = exp.Shutdown(context.Background())

			cfg.Password = "right"
			e, _ := direct(t, cfg)
			assert.True(t, e.client.connected())
		})
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	certs := mqtttest.NewCerts(t)
	b := mqtttest.Start(t, mqtttest.Options{TLS: certs.ServerTLS()})
	domain, channel := uniqueIDs(t)

	cfg := testConfig(b.Endpoint(), domain, channel)
	cfg.TLS.CAFile = certs.CAFile
	e, _ := direct(t, cfg)
	require.True(t, e.client.connected())
	require.NoError(t, e.pushMetrics(context.Background(), taskMetrics(taskID, propletID, fullHistory, firstPoint())))

	// Without the CA the server certificate does not verify: nothing is sent.
	cfg = testConfig(b.Endpoint(), domain, channel)
	cfg.ConnectTimeout = time.Second
	e, _ = direct(t, cfg)
	assert.False(t, e.client.connected())
	assert.ErrorContains(t, e.pushMetrics(context.Background(), taskMetrics(taskID, propletID, fullHistory, firstPoint())), "not connected")
}

func TestClientCertificates(t *testing.T) {
	t.Parallel()
	certs := mqtttest.NewCerts(t)
	b := mqtttest.Start(t, mqtttest.Options{TLS: certs.MutualTLS()})
	domain, channel := uniqueIDs(t)

	cfg := testConfig(b.Endpoint(), domain, channel)
	cfg.TLS.CAFile = certs.CAFile
	cfg.TLS.CertFile, cfg.TLS.KeyFile = certs.ClientCertFile, certs.ClientKeyFile
	e, _ := direct(t, cfg)
	require.True(t, e.client.connected(), "a broker requiring client certificates accepts ours")
	require.NoError(t, e.pushMetrics(context.Background(), taskMetrics(taskID, propletID, fullHistory, firstPoint())))

	cfg = testConfig(b.Endpoint(), domain, channel)
	cfg.TLS.CAFile = certs.CAFile
	cfg.ConnectTimeout = time.Second
	e, _ = direct(t, cfg)
	assert.False(t, e.client.connected(), "and refuses a client without one")
}

func TestQoS0WhileDisconnectedIsCountedAsDropped(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	cfg := testConfig(b.Endpoint(), "d", "c")
	cfg.QoS = 0
	e, tel := direct(t, cfg)
	b.Stop()
	require.Eventually(t, func() bool { return !e.client.connected() }, 5*time.Second, 10*time.Millisecond)
	err := e.pushMetrics(context.Background(), taskMetrics(taskID, propletID, fullHistory, firstPoint()))
	assert.ErrorContains(t, err, "dropped at QoS 0")
	assert.Equal(t, int64(2), counter(t, tel, "exporter_mqtt_messages_dropped"))
}

type restartable interface {
	Endpoint() string
	Restart(down time.Duration)
}

// TestBrokerRestartAtQoS1 sends a stream of samples through the exporter as the Collector runs
// it (queue and retry) while the broker restarts, and counts at a subscriber with a persistent
// session that every sample arrived at least once.
func TestBrokerRestartAtQoS1(t *testing.T) {
	t.Parallel()
	brokerRestart(t, "control/proplet/task_metrics", func(t *testing.T, cfg *Config) func(i int, ts time.Time) error {
		exp := viaFactory(t, cfg)
		return func(i int, ts time.Time) error {
			p := firstPoint()
			p.ts = ts
			p.cpuUser += float64(i)
			return exp.ConsumeMetrics(context.Background(), taskMetrics(taskID, propletID, fullHistory, p))
		}
	})
}

// brokerRestart runs a delivery test over both protocol versions: 60 items, one message each
// with its own timestamp, go through a signal of the exporter as the Collector runs it (queue
// and retry) while the broker restarts a third of the way in; a subscriber with a persistent
// session on topic (after m/{domain}/c/{channel}/) must see every timestamp at least once.
// open starts the signal with the given configuration and returns how to send item i.
func brokerRestart(t *testing.T, topic string, open func(t *testing.T, cfg *Config) func(i int, ts time.Time) error) {
	for _, version := range []string{"3.1.1", "5"} {
		t.Run(version, func(t *testing.T) {
			// A mosquitto process when the binary exists (it persists what it acknowledged on
			// a graceful stop), else the embedded broker with its disk store.
			var b restartable = mqtttest.Start(t, mqtttest.Options{Persist: true})
			if mqtttest.MosquittoAvailable() {
				b = mqtttest.StartMosquitto(t)
			}
			domain, channel := uniqueIDs(t)
			sub := mqtttest.Subscribe(t, b.Endpoint(), fmt.Sprintf("m/%s/c/%s/%s", domain, channel, topic),
				mqtttest.SubscriberOptions{ClientID: "restart-sub-" + strings.ReplaceAll(version, ".", ""), Persistent: true})
			cfg := testConfig(b.Endpoint(), domain, channel)
			cfg.ProtocolVersion = version
			cfg.Topics.TaskMetrics = cfg.Topics.TaskMetrics[:1]
			cfg.BackOffConfig.InitialInterval = 50 * time.Millisecond
			cfg.BackOffConfig.MaxInterval = 200 * time.Millisecond
			cfg.BackOffConfig.MaxElapsedTime = time.Minute
			cfg.MaxReconnectInterval = time.Second
			q := cfg.QueueConfig.Get()
			q.NumConsumers = 1
			cfg.QueueConfig = configoptional.Some(*q)
			send := open(t, cfg)

			const n = 60
			for i := range n {
				require.NoError(t, send(i, t0.Add(time.Duration(i)*time.Second)))
				if i == n/3 {
					b.Restart(500 * time.Millisecond)
				}
				time.Sleep(10 * time.Millisecond) //nolint:forbidigo // pace the stream across the restart
			}
			want := map[string]bool{}
			for i := range n {
				want[t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano)] = true
			}
			sub.Wait(t, 30*time.Second, func(msgs []mqtttest.Message) bool {
				got := map[string]bool{}
				for _, m := range msgs {
					got[m.Decoded(t)["timestamp"].(string)] = true
				}
				for ts := range want {
					if !got[ts] {
						return false
					}
				}
				return true
			})
		})
	}
}

// TestConnectionFailuresAreLoggedWithTheFix: both clients log a broker whose certificate does
// not verify as an error saying what to change, and an unreachable broker as a warning with
// the reason, once.
func TestConnectionFailuresAreLoggedWithTheFix(t *testing.T) {
	t.Parallel()
	certs, other := mqtttest.NewCerts(t), mqtttest.NewCerts(t)
	b := mqtttest.Start(t, mqtttest.Options{TLS: certs.ServerTLS()})
	for _, version := range []string{"3.1.1", "5"} {
		t.Run(version+"/certificate from another CA", func(t *testing.T) {
			cfg := testConfig(b.Endpoint(), "d", "c")
			cfg.ProtocolVersion = version
			cfg.TLS.CAFile = other.CAFile
			cfg.ConnectTimeout = time.Second
			e, _, logs := directObserved(t, cfg)
			assert.False(t, e.client.connected())
			errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
			require.Len(t, errs, 1)
			assert.Contains(t, errs[0].Message, "set tls.ca_file to the CA that signed the broker's certificate")
			assert.Zero(t, logs.FilterLevelExact(zapcore.WarnLevel).Len())
		})
		t.Run(version+"/unreachable", func(t *testing.T) {
			cfg := testConfig("tcp://"+mqtttest.FreeAddress(t), "d", "c")
			cfg.ProtocolVersion = version
			cfg.ConnectTimeout = time.Second
			e, _, logs := directObserved(t, cfg)
			assert.False(t, e.client.connected())
			warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
			require.Len(t, warns, 1)
			assert.Contains(t, warns[0].Message, "Cannot connect to the MQTT broker")
			assert.Contains(t, warns[0].ContextMap()["error"], "connection refused", "the reason")
		})
	}
}
