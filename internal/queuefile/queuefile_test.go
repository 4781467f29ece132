package queuefile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/otelcol-propeller/otelcol-propeller/internal/queuefile/queuefiletest"
)

// queueItems is how many requests the test queue holds, besides its bookkeeping key.
const queueItems = 200

// writeQueue makes a bbolt file as the file_storage extension and the persistent queue do:
// the "default" bucket with the queue's metadata key and one key per queued request.
func writeQueue(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("default"))
		if err != nil {
			return err
		}
		if err := b.Put([]byte("qmv0"), []byte{8, 1, 16, queueItems}); err != nil {
			return err
		}
		for i := range queueItems {
			if err := b.Put([]byte(fmt.Sprint(i)), bytes.Repeat([]byte{byte(i)}, 1000)); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())
}

func TestCorruptFilesAreMovedAside(t *testing.T) {
	now := time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC)
	for name, corrupt := range queuefiletest.Corruptions {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "exporter_mqtt_")
			writeQueue(t, path)
			require.NoError(t, corrupt(path))

			res, err := Recover(dir, time.Second, now)
			require.NoError(t, err)
			assert.Equal(t, 1, res.Checked)
			require.Len(t, res.Moved, 1)
			m := res.Moved[0]
			assert.Equal(t, path, m.File)
			assert.Equal(t, path+".corrupt-20261206T010203.000Z", m.MovedTo)
			assert.Error(t, m.Err)
			t.Logf("%s: %d entries, %v", name, m.Entries, m.Err)
			assert.LessOrEqual(t, m.Entries, queueItems+1)
			assert.NoFileExists(t, path)
			assert.FileExists(t, m.MovedTo)

			// What the extension then does: a new, empty queue opens.
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
			require.NoError(t, err)
			require.NoError(t, db.Close())
			res, err = Recover(dir, time.Second, now)
			require.NoError(t, err)
			assert.Empty(t, res.Moved, "the new file is sound and the moved one is not checked again")
		})
	}
}

func TestSoundFilesAreLeftAlone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "exporter_mqtt_")
	writeQueue(t, path)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "exporter_otlp_"), nil, 0o600)) // a new, empty one
	for _, other := range []string{"notes.txt", "exporter_mqtt_.20260102T150405.000Z.backup", "tempdb123"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, other), []byte("not a queue"), 0o600))
	}
	n, err := Check(path, time.Second)
	require.NoError(t, err)
	assert.Equal(t, queueItems+1, n)
	res, err := Recover(dir, time.Second, time.Now())
	require.NoError(t, err)
	assert.Equal(t, 2, res.Checked, "files not named as the extension names them, and backups, are not checked")
	assert.Empty(t, res.Moved)
	assert.FileExists(t, filepath.Join(dir, "notes.txt"))

	res, err = Recover(filepath.Join(dir, "absent"), time.Second, time.Now())
	require.NoError(t, err)
	assert.Zero(t, res.Checked)
}

func TestLockedFileIsSkipped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "exporter_mqtt_")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	res, err := Recover(dir, 50*time.Millisecond, time.Now())
	require.NoError(t, err)
	assert.Empty(t, res.Moved)
	require.Len(t, res.Skipped, 1)
	assert.ErrorIs(t, res.Skipped[0], ErrLocked)
}
