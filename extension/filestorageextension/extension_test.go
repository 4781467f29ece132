package filestorageextension

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/extension/filestorageextension/internal/metadatatest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/queuefile/queuefiletest"
)

var mqtt = component.MustNewID("mqtt")

// startStorage starts the extension on dir and returns the client the mqtt exporter's queue
// would get.
func startStorage(t *testing.T, dir string, tt *componenttest.Telemetry, log *zap.Logger) (storage.Extension, storage.Client) {
	t.Helper()
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory, cfg.Compaction.Directory = dir, dir
	set := metadatatest.NewSettings(tt)
	set.Logger = log
	ext, err := f.Create(context.Background(), set, cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	st := ext.(storage.Extension)
	client, err := st.GetClient(context.Background(), component.KindExporter, mqtt, "")
	require.NoError(t, err)
	return st, client
}

func stop(t *testing.T, st storage.Extension, client storage.Client) {
	t.Helper()
	require.NoError(t, client.Close(context.Background()))
	require.NoError(t, st.Shutdown(context.Background()))
}

// TestCorruptQueueFileDoesNotStopTheCollector writes a queue through the extension, damages
// its file, and starts the extension again: contrib's alone panics inside bbolt or refuses to
// open the file at every start; here the file is moved aside with an error naming both
// files, counted, and the queue starts empty.
func TestCorruptQueueFileDoesNotStopTheCollector(t *testing.T) {
	for name, corrupt := range queuefiletest.Corruptions {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			st, client := startStorage(t, dir, componenttest.NewTelemetry(), zap.NewNop())
			require.NoError(t, client.Set(ctx, "qmv0", []byte{8, 1}))
			for i := range 200 {
				require.NoError(t, client.Set(ctx, strconv.Itoa(i), bytes.Repeat([]byte{byte(i)}, 1000)))
			}
			stop(t, st, client)
			file := filepath.Join(dir, "exporter_mqtt_")
			require.FileExists(t, file, "the file contrib names for the mqtt exporter")
			require.NoError(t, corrupt(file))

			tt := componenttest.NewTelemetry()
			t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
			core, logs := observer.New(zapcore.ErrorLevel)
			st, client = startStorage(t, dir, tt, zap.New(core))
			got, err := client.Get(ctx, "qmv0")
			require.NoError(t, err)
			assert.Nil(t, got, "the queue starts empty")
			require.NoError(t, client.Set(ctx, "qmv0", []byte{8, 2}), "and takes new entries")
			stop(t, st, client)

			require.Equal(t, 1, logs.Len())
			entry := logs.All()[0]
			assert.Contains(t, entry.Message, "Persistent queue file is corrupt: moved aside")
			fields := entry.ContextMap()
			assert.Equal(t, file, fields["file"])
			movedTo, _ := fields["moved_to"].(string)
			assert.Regexp(t, `^`+file+`\.corrupt-\d{8}T\d{6}\.\d{3}Z$`, movedTo)
			assert.FileExists(t, movedTo)
			assert.Contains(t, fields, "lost_entries")
			assert.Contains(t, fields["hint"], "fsync: true")
			metadatatest.AssertEqualFileStorageCorruptFiles(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
		})
	}
}

// TestPermissionErrorNamesTheFix: a queue directory the user may not create is an error that
// says what to do, not only contrib's mkdir error.
func TestPermissionErrorNamesTheFix(t *testing.T) {
	err := withFix(fmt.Errorf("mkdir /var/lib/otelcol-propeller: %w", fs.ErrPermission), "/var/lib/otelcol-propeller/queue")
	require.ErrorIs(t, err, fs.ErrPermission)
	assert.Contains(t, err.Error(), "OTELCOL_PROPELLER_QUEUE_DIR")
	assert.Contains(t, err.Error(), "/var/lib/otelcol-propeller/queue")
	other := errors.New("directory must be set")
	assert.Equal(t, other, withFix(other, "x"), "other errors are contrib's as they are")
}
