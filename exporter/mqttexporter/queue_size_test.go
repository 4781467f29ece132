package mqttexporter

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// boltStorage is a storage extension on one bbolt file, as file_storage keeps a component's
// data (one bucket, a key per queued request, no fsync by default).
type boltStorage struct{ db *bbolt.DB }

var boltBucket = []byte("default")

func (*boltStorage) Start(context.Context, component.Host) error { return nil }
func (*boltStorage) Shutdown(context.Context) error              { return nil }
func (s *boltStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return s, nil
}
func (*boltStorage) Close(context.Context) error { return nil }

func (s *boltStorage) Get(ctx context.Context, key string) ([]byte, error) {
	op := storage.GetOperation(key)
	return op.Value, s.Batch(ctx, op)
}

func (s *boltStorage) Set(ctx context.Context, key string, value []byte) error {
	return s.Batch(ctx, storage.SetOperation(key, value))
}

func (s *boltStorage) Delete(ctx context.Context, key string) error {
	return s.Batch(ctx, storage.DeleteOperation(key))
}

func (s *boltStorage) Batch(_ context.Context, ops ...*storage.Operation) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(boltBucket)
		if err != nil {
			return err
		}
		for _, op := range ops {
			switch op.Type {
			case storage.Get:
				if v := b.Get([]byte(op.Key)); v != nil {
					op.Value = append([]byte(nil), v...)
				}
			case storage.Set:
				err = b.Put([]byte(op.Key), op.Value)
			case storage.Delete:
				err = b.Delete([]byte(op.Key))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// storedBytes sums the values the queue stored.
func (s *boltStorage) storedBytes(t *testing.T) (n int64) {
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(boltBucket); b != nil {
			return b.ForEach(func(_, v []byte) error { n += int64(len(v)); return nil })
		}
		return nil
	}))
	return n
}

// TestQueuedBytesPerSample measures, side by side in one run, what a queued task sample costs
// with the queue of pdata the exporter had (exporterhelper.NewMetrics, items sizer) and with
// the queue of compact messages it has: the Go heap in use after a GC, and the bbolt file of a
// persistent queue. The broker is out of reach; samples are the receiver's full sample, in
// batches of 167. Run with
//
//	MQTT_QUEUE_SIZE_TEST=1 go test -run TestQueuedBytesPerSample -v -timeout 30m ./exporter/mqttexporter/
//
// MQTT_QUEUE_SIZE_SAMPLES sets how many samples each queue gets (default 60,000: one minute
// of 1,000 tasks at 1 s); the compact queue also gets 600,000, the full 10 minutes.
func TestQueuedBytesPerSample(t *testing.T) {
	if os.Getenv("MQTT_QUEUE_SIZE_TEST") == "" {
		t.Skip("set MQTT_QUEUE_SIZE_TEST=1 to measure the bytes of a queued sample (pdata against compact)")
	}
	n := 60_000
	if v, err := strconv.Atoi(os.Getenv("MQTT_QUEUE_SIZE_SAMPLES")); err == nil && v > 0 {
		n = v
	}
	tmpl := goldenTaskSample(t)
	for _, c := range []struct {
		name    string
		pdata   bool
		samples int
	}{{"pdata", true, n}, {"compact", false, n}, {"compact-10min", false, 600_000}} {
		for _, persistent := range []bool{false, true} {
			t.Run(c.name+map[bool]string{false: "/memory", true: "/persistent"}[persistent], func(t *testing.T) {
				fillQueue(t, tmpl, c.pdata, persistent, c.samples)
			})
		}
	}
}

func fillQueue(t *testing.T, tmpl pmetric.ResourceMetrics, pdata, persistent bool, samples int) {
	ctx := context.Background()
	cfg := testConfig("tcp://"+mqtttest.FreeAddress(t), "d", "c")
	cfg.Topics.TaskMetrics = cfg.Topics.TaskMetrics[:1]
	cfg.ConnectTimeout = 100 * time.Millisecond
	q := cfg.QueueConfig.Get()
	q.QueueSize = 1 << 40 // what is measured is the cost of a sample, not the default's limit
	var store *boltStorage
	host := newMdatagenNopHost()
	if persistent {
		db, err := bbolt.Open(filepath.Join(t.TempDir(), "queue.db"), 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		store = &boltStorage{db: db}
		id := component.MustNewID("file_storage")
		q.StorageID = &id
		host = storageHost{Host: host, exts: map[component.ID]component.Component{id: store}}
	}
	cfg.QueueConfig = configoptional.Some(*q)
	set := exportertestSettings()
	set.ID = component.NewID(metadata.Type)

	var exp exporter.Metrics
	var err error
	if pdata {
		// The exporter as it was: the queue holds the batches as they arrive, mapped when sent.
		q.Sizer = exporterhelper.RequestSizerTypeItems
		exp, err = exporterhelper.NewMetrics(ctx, set, cfg, func(context.Context, pmetric.Metrics) error {
			return errors.New("not connected to the MQTT broker")
		}, exporterhelper.WithQueue(configoptional.Some(*q)), exporterhelper.WithRetry(cfg.BackOffConfig))
	} else {
		exp, err = NewFactory().CreateMetrics(ctx, set, cfg)
	}
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, host))

	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heap()
	const tasks, perBatch = 1000, 167
	sent := 0
	for s := 0; sent < samples; s++ {
		ts := t0.Add(time.Duration(s) * time.Second)
		for first := 0; first < tasks && sent < samples; first += perBatch {
			k := min(perBatch, tasks-first, samples-sent)
			require.NoError(t, exp.ConsumeMetrics(ctx, round(tmpl, first, k, ts)))
			sent += k
		}
	}
	after := heap()
	held := int64(after) - int64(before)
	t.Logf("%d samples: Go heap in use %+d MiB, %d bytes a sample; test process VmRSS %d MiB", samples, held>>20, held/int64(samples), procStatus(t)["VmRSS"]>>10)
	if persistent {
		stored := store.storedBytes(t)
		fi, err := os.Stat(store.db.Path())
		require.NoError(t, err)
		t.Logf("persistent queue: %d MiB stored (%d bytes a sample), bbolt file %d MiB (%d bytes a sample)",
			stored>>20, stored/int64(samples), fi.Size()>>20, fi.Size()/int64(samples))
	}
	shutdown, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_ = exp.Shutdown(shutdown)
}
