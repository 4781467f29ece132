// Package queuefile checks the bbolt files a persistent queue keeps (the file_storage
// extension's, one per component) before they are opened for use, and moves a corrupt one
// aside. bbolt trusts its file: a truncated or partly overwritten one makes it panic inside
// Open or on the first read ("assertion failed: Page expected to be ..."), or refuse it with
// "invalid database"; either stops the collector at every start. A file moved aside lets the
// collector start with an empty queue, and keeps what was in it for a post-mortem.
package queuefile // import "github.com/otelcol-propeller/otelcol-propeller/internal/queuefile"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// CorruptSuffix is put, with a timestamp, after the name of a file moved aside:
// exporter_mqtt_.corrupt-20260102T150405Z.
const CorruptSuffix = ".corrupt-"

// ErrLocked is returned for a file another process holds open for writing (bbolt's exclusive
// lock): it is in use, not corrupt, and is left alone.
var ErrLocked = errors.New("the file is locked by another process")

// queueFile matches the names the file_storage extension gives its files: the component's kind,
// type and name ("exporter_mqtt_", "exporter_otlp_edge_queue"), or a SHA-256 in hex when that
// is too long for the file system. Other files of the directory are not the queue's and are
// never touched.
var queueFile = regexp.MustCompile(`^((receiver|processor|exporter|extension|connector|other)_[A-Za-z0-9._~-]*|[0-9a-f]{64})$`)

// Moved is a corrupt file that was moved aside.
type Moved struct {
	File, MovedTo string
	// Entries is how many entries the file's buckets held, as far as they could be read:
	// the queued requests (and the queue's own bookkeeping keys). -1 when none could be read.
	Entries int
	Err     error // why the file is corrupt
}

// Result is what Recover did in a directory.
type Result struct {
	Checked int     // queue files checked
	Moved   []Moved // corrupt files moved aside
	Skipped []error // files that could not be checked (locked, unreadable): left as they are
}

// Recover checks every queue file of dir (see queueFile) and moves each corrupt one to
// <name>.corrupt-<now, UTC>. A directory that does not exist (yet) holds nothing to check.
// timeout bounds the wait for a file's lock. An error is returned only when the directory
// cannot be listed or a corrupt file cannot be moved.
func Recover(dir string, timeout time.Duration, now time.Time) (Result, error) {
	var res Result
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("list the queue directory %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !queueFile.MatchString(e.Name()) || movedAside(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		res.Checked++
		n, err := Check(path, timeout)
		switch {
		case err == nil:
			continue
		case errors.Is(err, ErrLocked), errors.Is(err, os.ErrPermission), errors.Is(err, os.ErrNotExist):
			res.Skipped = append(res.Skipped, err)
			continue
		}
		to := path + CorruptSuffix + now.UTC().Format("20060102T150405.000Z")
		if rerr := os.Rename(path, to); rerr != nil {
			errs = append(errs, fmt.Errorf("move the corrupt queue file %s (%v) aside to %s: %w", path, err, to, rerr))
			continue
		}
		res.Moved = append(res.Moved, Moved{File: path, MovedTo: to, Entries: n, Err: err})
	}
	return res, errors.Join(errs...)
}

// movedAside reports a file moved aside before: by Recover, or by contrib's own recreate
// (<name>.<time>.backup).
func movedAside(name string) bool {
	return strings.Contains(name, CorruptSuffix) || strings.HasSuffix(name, ".backup")
}

// Check opens a bbolt file read-only and reads all of it: every page its buckets reach, and
// bbolt's own consistency check. It returns how many entries the buckets hold (-1 when the
// file cannot be read at all) and an error when the file is corrupt, ErrLocked when another
// process holds it. A panic inside bbolt, or a fault reading its memory map, is an error here.
// An empty file is a new database, not a corrupt one.
func Check(path string, timeout time.Duration) (entries int, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return -1, err
	}
	if st.Size() == 0 {
		return 0, nil
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	// A fault in the memory map (a page past the end of a truncated file) is a panic, not a
	// crash, in this goroutine only; bbolt's Open, reads and check all run here, except the
	// check's own goroutine, which recovers its panics and is reached only after the size
	// check below.
	entries = -1
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("bbolt failed reading it: %v", r)
			}
		}()
		entries, err = check(path, st.Size(), timeout)
	}()
	<-done
	return entries, err
}

func check(path string, size int64, timeout time.Duration) (int, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return -1, fmt.Errorf("%s: %w", path, ErrLocked)
	}
	if err != nil {
		return -1, err
	}
	defer db.Close()
	entries := -1
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Size() > size {
			return fmt.Errorf("truncated: its pages reach %d bytes, the file has %d", tx.Size(), size)
		}
		n, err := countEntries(tx)
		entries = n
		if err != nil {
			return err
		}
		var errs []error
		for e := range tx.Check() {
			if len(errs) < 5 { // the first few say enough; a wrecked file has thousands
				errs = append(errs, e)
			}
		}
		return errors.Join(errs...)
	})
	return entries, err
}

// countEntries walks every bucket and counts their keys, reading every page they reach.
func countEntries(tx *bolt.Tx) (int, error) {
	n := 0
	err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
		return b.ForEach(func(_, _ []byte) error {
			n++
			return nil
		})
	})
	return n, err
}
