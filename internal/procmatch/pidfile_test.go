package procmatch

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadPIDFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		want          int32
	}{
		{"pid with newline", " 42\n", 42},
		{"largest pid", "2147483647", 2147483647},
		{"past int32", "2147483648", 0},
		{"zero", "0", 0},
		{"negative", "-3", 0},
		{"plus sign", "+3", 0},
		{"not a number", "abc", 0},
		{"two numbers", "12 34", 0},
		{"empty", "", 0},
		{"padded to the limit", strings.Repeat(" ", MaxPIDFileSize-3) + "42\n", 42},
		{"one byte past the limit", strings.Repeat(" ", MaxPIDFileSize-2) + "42\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "f")
			require.NoError(t, os.WriteFile(p, []byte(tt.content), 0o600))
			pid, ok := ReadPIDFile(p)
			assert.Equal(t, tt.want, pid)
			assert.Equal(t, tt.want > 0, ok)
		})
	}
	_, ok := ReadPIDFile(filepath.Join(dir, "missing"))
	assert.False(t, ok, "a file not written yet")
	_, ok = ReadPIDFile(dir)
	assert.False(t, ok, "a directory")
}

// readsWithin runs ReadPIDFile on path and fails the test unless it returns not ok within a
// second: a read that blocks (a FIFO) or never ends (/dev/zero) fails here, not by hanging.
func readsWithin(t *testing.T, path string) {
	t.Helper()
	done := make(chan bool, 1)
	go func() { _, ok := ReadPIDFile(path); done <- ok }()
	select {
	case ok := <-done:
		assert.False(t, ok, "%s is not a pid file", path)
	case <-time.After(time.Second):
		t.Fatalf("ReadPIDFile(%s) blocked for more than a second", path)
	}
}

func TestPIDFileThatIsNotOne(t *testing.T) {
	t.Run("dev zero", func(t *testing.T) {
		if _, err := os.Stat("/dev/zero"); err != nil {
			t.Skip("no /dev/zero here")
		}
		readsWithin(t, "/dev/zero")
	})
	t.Run("symlink to dev zero", func(t *testing.T) {
		if _, err := os.Stat("/dev/zero"); err != nil {
			t.Skip("no /dev/zero here")
		}
		p := filepath.Join(t.TempDir(), "proplet.pid")
		require.NoError(t, os.Symlink("/dev/zero", p))
		readsWithin(t, p)
	})
	t.Run("fifo without a writer", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "proplet.pid")
		if err := mkfifo(p); err != nil {
			t.Skipf("cannot make a FIFO here: %v", err)
		}
		readsWithin(t, p)
	})
	t.Run("1 GB file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "proplet.pid")
		f, err := os.Create(p)
		require.NoError(t, err)
		_, err = f.WriteString("42\n")
		require.NoError(t, err)
		require.NoError(t, f.Truncate(1<<30)) // sparse: no disk used
		require.NoError(t, f.Close())

		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		readsWithin(t, p)
		runtime.ReadMemStats(&after)
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "the file was not read into memory")
	})
}

// The content is read into a buffer on the stack: the one allocation is the path's
// NUL-terminated copy that the open system call needs.
func TestReadPIDFileAllocatesOnlyThePath(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	p := filepath.Join(t.TempDir(), "proplet.pid")
	require.NoError(t, os.WriteFile(p, []byte("4242\n"), 0o600))
	allocs := testing.AllocsPerRun(100, func() {
		if pid, ok := ReadPIDFile(p); !ok || pid != 4242 {
			t.Fatal("not read")
		}
	})
	assert.LessOrEqual(t, allocs, 1.0)
}

func FuzzReadPIDFile(f *testing.F) {
	for _, s := range []string{"42\n", " 7 ", "0", "-1", "2147483648", "", "\x00", strings.Repeat("9", 70)} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f")
		require.NoError(t, os.WriteFile(p, b, 0o600))
		pid, ok := ReadPIDFile(p)
		if ok != (pid > 0) {
			t.Fatalf("%q: pid %d, ok %v", b, pid, ok)
		}
		if ok && len(b) > MaxPIDFileSize {
			t.Fatalf("%q: a file of %d bytes was accepted", b, len(b))
		}
	})
}
