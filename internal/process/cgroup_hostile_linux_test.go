//go:build linux

package process

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// hostileChildEnv names the hostile cgroup case a child test process runs.
const hostileChildEnv = "OTELCOL_PROPELLER_HOSTILE_CGROUP"

// hostileRSSLimit is the resident memory past which a child reading a hostile cgroup is taken
// as unbounded: the reads need a few kilobytes, a Go test binary starts near 10 MB.
const hostileRSSLimit = 256 << 20

// hostileCgroup makes a cgroup v2 root in a temp directory with one task cgroup whose files
// are what an attacker may make them: cpu.stat a FIFO nobody writes, memory.events and
// memory.current links to /dev/zero.
func hostileCgroup(t *testing.T) (root, dir string) {
	t.Helper()
	root = t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu memory\n"), 0o600))
	dir = filepath.Join(root, "task")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.procs"), nil, 0o600))
	require.NoError(t, unix.Mkfifo(filepath.Join(dir, "cpu.stat"), 0o600))
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "memory.events")))
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "memory.current")))
	return root, dir
}

// runHostileChild runs one hostile case in a child test process, so that code that hangs or
// grows without bound (what the reads did before they were bounded) fails the test instead of
// hanging it or exhausting the machine: the parent watches the child's resident memory in
// /proc and kills it past hostileRSSLimit or when it has not finished by a generous deadline.
func runHostileChild(t *testing.T, name string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostileCgroupChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), hostileChildEnv+"="+name)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var peak uint64
	for {
		select {
		case err := <-done:
			require.NoError(t, err, "child %s failed:\n%s", name, out.String())
			t.Logf("%s: peak resident memory of the reader %d kB", name, peak>>10)
			assert.Less(t, peak, uint64(hostileRSSLimit))
			return
		case <-deadline:
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%s: the read of a hostile cgroup file did not return within 60 s (it blocks)", name)
		case <-tick.C:
			rss := vmRSS(cmd.Process.Pid)
			peak = max(peak, rss)
			if rss > hostileRSSLimit {
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("%s: the reader's resident memory reached %d MB (it grows without bound)", name, rss>>20)
			}
		}
	}
}

// vmRSS reads a process's resident memory from /proc/<pid>/status, 0 when it is gone.
func vmRSS(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseUint(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestHostileCgroupFIFO: a task cgroup whose cpu.stat is a FIFO is refused at open, at once;
// it used to block the open (and discovery with it) for good.
func TestHostileCgroupFIFO(t *testing.T) { runHostileChild(t, "fifo") }

// TestHostileCgroupDevZero: memory.events and memory.current linked to /dev/zero are refused
// without reading; the OOM count used to read /dev/zero until memory ran out.
func TestHostileCgroupDevZero(t *testing.T) { runHostileChild(t, "devzero") }

// TestHostileCgroupChild is the child of the two tests above; it runs only in the child.
func TestHostileCgroupChild(t *testing.T) {
	name := os.Getenv(hostileChildEnv)
	if name == "" {
		t.Skip("runs as the child of the hostile cgroup tests")
	}
	root, dir := hostileCgroup(t)
	switch name {
	case "fifo":
		s := &Source{cgroup: cgroupLayout{v2Root: root, v2Mount: root}}
		_, err := s.OpenCgroup(dir)
		require.ErrorIs(t, err, ErrNotCgroupFile)
		assert.Contains(t, err.Error(), dir)
	case "devzero":
		_, ok := MemoryCgroup{Dir: dir, V2: true}.OOMKills()
		assert.False(t, ok, "memory.events is a link to /dev/zero")
		_, _, err := readCgroupValue(filepath.Join(dir, "memory.current"))
		require.ErrorIs(t, err, ErrNotCgroupFile)
	default:
		t.Fatalf("unknown case %q", name)
	}
}

// TestCgroupFileKinds: only regular files are read, and a full buffer is refused, not cut.
func TestCgroupFileKinds(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ok"), []byte("42\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("9"), 100), 0o600))
	require.NoError(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	require.NoError(t, os.Symlink("ok", filepath.Join(dir, "link")))
	var buf [64]byte
	b, err := readCgroupFile(filepath.Join(dir, "ok"), buf[:])
	require.NoError(t, err)
	assert.Equal(t, "42\n", string(b))
	for _, name := range []string{"fifo", "link"} {
		_, err := readCgroupFile(filepath.Join(dir, name), buf[:])
		assert.ErrorIs(t, err, ErrNotCgroupFile, name)
	}
	_, err = readCgroupFile(filepath.Join(dir, "big"), buf[:])
	assert.Error(t, err, "content larger than the buffer")
	_, err = readCgroupFile(filepath.Join(dir, "absent"), buf[:])
	assert.ErrorIs(t, err, ErrGone)
}

// TestOpenCgroupOutsideRoot: a cgroup path that leaves the v2 mount, as written or through a
// link, is refused before anything in it is opened.
func TestOpenCgroupOutsideRoot(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(elsewhere, "cgroup.procs"), nil, 0o600))
	require.NoError(t, os.Symlink(elsewhere, filepath.Join(root, "escape")))
	s := &Source{cgroup: cgroupLayout{v2Mount: root}}
	for _, p := range []string{elsewhere, "escape", filepath.Join(root, "escape")} {
		_, err := s.OpenCgroup(p)
		assert.True(t, errors.Is(err, ErrOutsideCgroupRoot), "%s: %v", p, err)
	}
	_, err := s.OpenCgroup("not/yet")
	assert.ErrorIs(t, err, ErrGone, "a cgroup under the root that does not exist yet")
}
