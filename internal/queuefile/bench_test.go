package queuefile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkCheck is the start-up cost of the check for a queue file of 20,000 one-kilobyte
// requests (about 27 MB on disk): MB/s is of the file's size.
func BenchmarkCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "exporter_mqtt_")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	value := bytes.Repeat([]byte{1}, 1000)
	for batch := range 20 {
		if err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("default"))
			if err != nil {
				return err
			}
			for i := range 1000 {
				if err := bk.Put(fmt.Appendf(nil, "%d", batch*1000+i), value); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		if n, err := Check(path, time.Second); err != nil || n != 20_000 {
			b.Fatalf("%d entries, %v", n, err)
		}
	}
}
