package mqttexporter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// memStorage is a storage extension whose data outlives the exporters that use it, as a
// file_storage directory outlives a collector process.
type memStorage struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (*memStorage) Start(context.Context, component.Host) error { return nil }
func (*memStorage) Shutdown(context.Context) error              { return nil }

func (s *memStorage) GetClient(_ context.Context, kind component.Kind, id component.ID, name string) (storage.Client, error) {
	return &memClient{s: s, prefix: fmt.Sprintf("%s/%s/%s/", kind, id, name)}, nil
}

type memClient struct {
	s      *memStorage
	prefix string
}

func (c *memClient) Get(ctx context.Context, key string) ([]byte, error) {
	op := storage.GetOperation(key)
	err := c.Batch(ctx, op)
	return op.Value, err
}

func (c *memClient) Set(ctx context.Context, key string, value []byte) error {
	return c.Batch(ctx, storage.SetOperation(key, value))
}

func (c *memClient) Delete(ctx context.Context, key string) error {
	return c.Batch(ctx, storage.DeleteOperation(key))
}

func (c *memClient) Batch(_ context.Context, ops ...*storage.Operation) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for _, op := range ops {
		switch op.Type {
		case storage.Get:
			op.Value = append([]byte(nil), c.s.data[c.prefix+op.Key]...)
			if _, ok := c.s.data[c.prefix+op.Key]; !ok {
				op.Value = nil
			}
		case storage.Set:
			c.s.data[c.prefix+op.Key] = append([]byte(nil), op.Value...)
		case storage.Delete:
			delete(c.s.data, c.prefix+op.Key)
		}
	}
	return nil
}

func (*memClient) Close(context.Context) error { return nil }

type storageHost struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h storageHost) GetExtensions() map[component.ID]component.Component { return h.exts }

// queueStoreID is the storage extension the persistent-queue tests keep the sending queue on.
var queueStoreID = component.MustNewID("file_storage")

// memStorageHost is a host holding an empty memStorage as queueStoreID: the queue of the
// exporters started on it outlives them.
func memStorageHost() storageHost {
	return storageHost{Host: newMdatagenNopHost(), exts: map[component.ID]component.Component{queueStoreID: &memStorage{data: map[string][]byte{}}}}
}

// outageConfig is testConfig with quicker connects, reconnects and retries, so a test with the
// broker down does not wait out the default backoff (the queue and the retry's elapsed-time
// limit stay the defaults), and, when persistent, the sending queue kept on queueStoreID.
func outageConfig(endpoint, domain, channel string, persistent bool) *Config {
	cfg := testConfig(endpoint, domain, channel)
	cfg.ConnectTimeout = 200 * time.Millisecond
	cfg.MaxReconnectInterval = time.Second
	cfg.BackOffConfig.InitialInterval, cfg.BackOffConfig.MaxInterval = 50*time.Millisecond, 200*time.Millisecond
	if persistent {
		storeID := queueStoreID
		q := cfg.QueueConfig.Get()
		q.StorageID = &storeID
		cfg.QueueConfig = configoptional.Some(*q)
	}
	return cfg
}

// TestUsageReportsSurviveARestartInThePersistentQueue: with sending_queue.storage, reports
// that arrive while the broker is down are kept in the storage when the collector stops, and
// a new exporter on the same storage delivers every one once the broker is back.
func TestUsageReportsSurviveARestartInThePersistentQueue(t *testing.T) {
	t.Parallel()
	// Mosquitto when installed, as the other outage tests: it keeps the subscriber's session
	// and what it acknowledged across its restart.
	var b interface {
		Endpoint() string
		Stop()
		Restart(time.Duration)
	} = mqtttest.Start(t, mqtttest.Options{Persist: true})
	if mqtttest.MosquittoAvailable() {
		b = mqtttest.StartMosquitto(t)
	}
	domain, channel := uniqueIDs(t)
	sub := mqtttest.Subscribe(t, b.Endpoint(), fmt.Sprintf("m/%s/c/%s/control/proplet/task_usage", domain, channel),
		mqtttest.SubscriberOptions{ClientID: "persistent-queue-sub", Persistent: true})
	b.Stop()

	host := memStorageHost()
	config := func() *Config { return outageConfig(b.Endpoint(), domain, channel, true) }
	ctx := context.Background()
	const n = 20
	// The queue's storage is keyed by the component id: both collectors run mqtt.
	settings := func() exporter.Settings {
		set := exportertestSettings()
		set.ID = component.NewID(metadata.Type)
		return set
	}
	first, err := NewFactory().CreateLogs(ctx, settings(), config())
	require.NoError(t, err)
	require.NoError(t, first.Start(ctx, host))
	for i := range n {
		r := exitedRecord()
		r.end = t0.Add(time.Duration(i) * time.Second)
		require.NoError(t, first.ConsumeLogs(ctx, usageLogs(fmt.Sprintf("task-%02d", i), propletID, fullHistory, r)))
	}
	require.NoError(t, first.Shutdown(ctx), "the collector stops with the broker still down")

	b.Restart(0)
	// A broker back from a restart does not hold messages for a subscriber that has not
	// reconnected yet, and the new exporter connects at once: wait until the subscription
	// is back, or a lost message would be the test's, not the exporter's.
	waitSubscribed(t, b.Endpoint(), fmt.Sprintf("m/%s/c/%s/control/proplet/task_usage", domain, channel), sub)
	second, err := NewFactory().CreateLogs(ctx, settings(), config())
	require.NoError(t, err)
	require.NoError(t, second.Start(ctx, host))
	t.Cleanup(func() { require.NoError(t, second.Shutdown(ctx)) })
	sub.Wait(t, 30*time.Second, func(msgs []mqtttest.Message) bool {
		seen := map[string]bool{}
		for _, m := range msgs {
			if id := m.Decoded(t)["task_id"].(string); id != probeID {
				seen[id] = true
			}
		}
		return len(seen) == n
	})
}

const probeID = "subscription-probe"

// waitSubscribed publishes probes to topic until sub receives one.
func waitSubscribed(t *testing.T, endpoint, topic string, sub *mqtttest.Subscriber) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(endpoint).SetClientID("probe-" + probeID))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	defer c.Disconnect(100)
	require.Eventually(t, func() bool {
		c.Publish(topic, 1, false, `{"task_id":"`+probeID+`"}`).WaitTimeout(time.Second)
		for _, m := range sub.Messages() {
			if strings.Contains(string(m.Payload), probeID) {
				return true
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond, "the subscriber is back")
}

// TestUpgradeSendsThePdataQueue: a persistent queue written by the exporter when it queued
// pdata (exporterhelper.NewMetrics, OTLP protobuf in the storage) is read by the exporter that
// queues messages, mapped, and every sample sent: an upgrade loses nothing.
func TestUpgradeSendsThePdataQueue(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	domain, channel := uniqueIDs(t)
	sub := countSamples(t, b.Endpoint(), fmt.Sprintf("m/%s/c/%s/control/proplet/task_metrics", domain, channel))
	lnk := newLink(t, b.Endpoint()[len("tcp://"):])
	lnk.cut()

	host := memStorageHost()
	cfg := outageConfig(lnk.endpoint(), domain, channel, true)
	cfg.Topics.TaskMetrics = cfg.Topics.TaskMetrics[:1]
	q := cfg.QueueConfig.Get()
	ctx := context.Background()
	set := exportertestSettings()
	set.ID = component.NewID(metadata.Type)

	old := *q
	old.Sizer, old.QueueSize = exporterhelper.RequestSizerTypeItems, 10_200_000
	before, err := exporterhelper.NewMetrics(ctx, set, cfg, func(context.Context, pmetric.Metrics) error {
		return errors.New("not connected to the MQTT broker")
	}, exporterhelper.WithQueue(configoptional.Some(old)), exporterhelper.WithRetry(cfg.BackOffConfig))
	require.NoError(t, err)
	require.NoError(t, before.Start(ctx, host))
	tmpl := goldenTaskSample(t)
	const tasks, seconds = 50, 4
	for s := range seconds {
		require.NoError(t, before.ConsumeMetrics(ctx, round(tmpl, 0, tasks, t0.Add(time.Duration(s)*time.Second))))
	}
	require.NoError(t, before.Shutdown(ctx))

	lnk.mend(t)
	after, err := NewFactory().CreateMetrics(ctx, set, cfg)
	require.NoError(t, err)
	require.NoError(t, after.Start(ctx, host))
	t.Cleanup(func() { require.NoError(t, after.Shutdown(ctx)) })
	require.Eventually(t, func() bool {
		n, _ := sub.count()
		return n == tasks*seconds
	}, 30*time.Second, 50*time.Millisecond, "every sample queued as pdata is sent")
}
