//go:build linux

package process

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	gp "github.com/shirou/gopsutil/v4/process"
	"golang.org/x/sys/unix"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

func TestMain(m *testing.M) {
	testworkload.MainIfChild()
	if pid := os.Getenv("PROPLET_TEST_READ_PID"); pid != "" {
		readAsChild(pid)
	}
	if pid := os.Getenv("PROPLET_TEST_FDLIMIT_PID"); pid != "" {
		fdLimitChild(pid)
	}
	os.Exit(m.Run())
}

// fdLimitChild opens a process with only one descriptor to spare, then with the limit raised,
// and prints what each read got.
func fdLimitChild(pid string) {
	n, _ := strconv.Atoi(pid)
	s, err := NewSource("/proc", "/sys/fs/cgroup")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(0)
	}
	var lim syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	// The limit is on descriptor numbers: learn the next two free ones, and allow only the first.
	a, _ := syscall.Open("/dev/null", syscall.O_RDONLY, 0)
	b, _ := syscall.Open("/dev/null", syscall.O_RDONLY, 0)
	_ = syscall.Close(a)
	_ = syscall.Close(b)
	tight := lim
	tight.Cur = uint64(b)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &tight); err != nil {
		fmt.Println("error", err)
		os.Exit(0)
	}
	buf := make([]byte, 4096)
	h, err := s.Open(ID{PID: int32(n)}, FieldCPU|FieldDisk, buf)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(0)
	}
	var r Reading
	_ = h.Read(FieldCPU|FieldDisk, &r, buf)
	fmt.Print("tight got ", r.Got, " denied ", r.Denied, " ")
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	h.Ensure(FieldCPU | FieldDisk)
	_ = h.Read(FieldCPU|FieldDisk, &r, buf)
	fmt.Println("raised got", r.Got, "denied", r.Denied)
	os.Exit(0)
}

// readAsChild reads a process with every field and prints what was got and what was denied.
func readAsChild(pid string) {
	n, _ := strconv.Atoi(pid)
	s, err := NewSource("/proc", "/sys/fs/cgroup")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(0)
	}
	buf := make([]byte, 4096)
	h, err := s.Open(ID{PID: int32(n)}, AllFields, buf)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(0)
	}
	var r Reading
	err = h.Read(AllFields, &r, buf)
	fmt.Println("got", r.Got, "denied", r.Denied, "err", err)
	os.Exit(0)
}

func newSource(t testing.TB) *Source {
	t.Helper()
	s, err := NewSource("/proc", "/sys/fs/cgroup")
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestReadLiveProcess(t *testing.T) {
	s := newSource(t)
	cmd := testworkload.Start(t, testworkload.Files, 0)
	buf := make([]byte, 4096)
	h, err := s.Open(ID{PID: int32(cmd.Process.Pid)}, AllFields, buf)
	require.NoError(t, err)
	defer h.Close()

	var r Reading
	require.NoError(t, h.Read(AllFields, &r, buf))
	want := FieldCPU | FieldMemory | FieldDisk | FieldThreads | FieldFDs
	if s.Schedstat() {
		want |= FieldWaits
	}
	assert.Equal(t, want, r.Got, "network is only read in a namespace of its own")
	assert.False(t, h.netOwn)
	assert.GreaterOrEqual(t, r.FDs, int64(100), "the workload opened 100 files")
	assert.GreaterOrEqual(t, r.Threads, int64(8), "the workload started 8 threads")
	assert.Greater(t, r.RSS, uint64(1<<20))
	assert.Greater(t, r.VMS, r.RSS)
	start := s.StartTime(h.ID())
	assert.WithinDuration(t, time.Now(), start, 30*time.Second)

	// Only the asked fields are read.
	require.NoError(t, h.Read(FieldThreads, &r, buf))
	assert.Equal(t, FieldThreads, r.Got)
	assert.Zero(t, r.RSS)
}

func TestFDCountFallbackMatchesFstat(t *testing.T) {
	s := newSource(t)
	if !s.fdSizeWorks {
		t.Skip("kernel before 6.2: only the fallback exists")
	}
	cmd := testworkload.Start(t, testworkload.Files, 0)
	buf := make([]byte, 4096)
	h, err := s.Open(ID{PID: int32(cmd.Process.Pid)}, AllFields, buf)
	require.NoError(t, err)
	defer h.Close()
	viaStat, err := h.countFDs(buf)
	require.NoError(t, err)
	_ = unix_close(h)
	viaList, err := h.countFDs(buf)
	require.NoError(t, err)
	assert.Equal(t, viaStat, viaList)
}

func TestExitAndPIDReuse(t *testing.T) {
	s := newSource(t)
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	buf := make([]byte, 4096)
	id := ID{PID: int32(cmd.Process.Pid)}
	h, err := s.Open(id, AllFields, buf)
	require.NoError(t, err)
	defer h.Close()
	id = h.ID()

	require.NoError(t, cmd.Process.Kill())
	// Until the parent waits, the child is a zombie: still readable, and marked exited.
	var r Reading
	require.Eventually(t, func() bool { return h.Read(AllFields, &r, buf) == nil && r.Exited() }, 5*time.Second, 5*time.Millisecond)
	_ = cmd.Wait()
	assert.ErrorIs(t, h.Read(AllFields, &r, buf), ErrGone, "a reaped process reads as gone through the kept-open file")

	// The same pid with another start time is another process.
	_, err = s.Open(ID{PID: id.PID, Start: id.Start + 1}, AllFields, buf)
	assert.True(t, errors.Is(err, ErrGone))
}

// TestUnreadableFilesAreLeftOut reads a root-owned process as an unprivileged user: its io and
// fd/ cannot be read, so those fields are left out and reported as denied, and the rest is read.
func TestUnreadableFilesAreLeftOut(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to start a reader as another user")
	}
	target := testworkload.Start(t, testworkload.Sleep, 0)
	exe, err := os.Executable()
	require.NoError(t, err)
	dir, err := os.MkdirTemp("", "proc-reader-")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	require.NoError(t, os.Chmod(dir, 0o755))
	copyExe := filepath.Join(dir, "reader.test")
	b, err := os.ReadFile(exe)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(copyExe, b, 0o755))

	cmd := exec.Command(copyExe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROPLET_TEST_READ_PID="+strconv.Itoa(target.Process.Pid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var got, denied int
	var rerr string
	_, err = fmt.Sscanf(string(out), "got %d denied %d err %s", &got, &denied, &rerr)
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "<nil>", rerr, "a denied file is not an error of the whole read")
	assert.Equal(t, int(FieldDisk|FieldFDs), denied&int(FieldDisk|FieldFDs), "io and fd/ of another user's process are denied: %s", out)
	assert.Equal(t, int(FieldCPU|FieldMemory|FieldThreads|FieldWaits), got, "the rest is read (schedstat is anyone's to read): %s", out)
}

// TestOutOfDescriptorsIsRetried: a file that cannot be opened for lack of descriptors is not
// remembered as denied; it is opened once descriptors are available again.
func TestOutOfDescriptorsIsRetried(t *testing.T) {
	target := testworkload.Start(t, testworkload.Sleep, 0)
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROPLET_TEST_FDLIMIT_PID="+strconv.Itoa(target.Process.Pid))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var tightGot, tightDenied, raisedGot, raisedDenied int
	_, err = fmt.Sscanf(string(out), "tight got %d denied %d raised got %d denied %d", &tightGot, &tightDenied, &raisedGot, &raisedDenied)
	require.NoError(t, err, "%s", out)
	assert.Equal(t, int(FieldCPU), tightGot, "io could not be opened: %s", out)
	assert.Zero(t, tightDenied, "and is not taken for a permission problem: %s", out)
	assert.Equal(t, int(FieldCPU|FieldDisk), raisedGot, "with descriptors back, io is read: %s", out)
	assert.Zero(t, raisedDenied)
}

// TestPastTheBudgetFilesAreReadByPath: the kept-open budget counts descriptors. A process
// whose files do not all fit keeps open those that do and reads the others by path; one past
// it keeps nothing open. Each reads the same fields and notices that its process is gone; a
// closed handle gives its places back; the observer hears of the first refusal, once.
func TestPastTheBudgetFilesAreReadByPath(t *testing.T) {
	s := newSource(t)
	var full []int64
	s.SetBudgetObserver(func(budget int64) { full = append(full, budget) })
	buf := make([]byte, 4096)
	ref := testworkload.Start(t, testworkload.Files, 0)
	probe, err := s.Open(ID{PID: int32(ref.Process.Pid)}, AllFields, buf)
	require.NoError(t, err)
	perProcess := probe.held() // stat, io, fd/, schedstat where the kernel has it
	probe.Close()
	require.GreaterOrEqual(t, perProcess, 3)
	require.Zero(t, s.keptFDs.Load(), "Close gives every place back")

	s.SetKeptOpenBudget(1)
	assert.Equal(t, int64(descriptorsPerHandle), s.budget, "one process at its most descriptors")
	a := testworkload.Start(t, testworkload.Files, 0)
	bcmd := testworkload.Command(t, testworkload.Files, 0)
	testworkload.StartCmd(t, bcmd)
	c := testworkload.Start(t, testworkload.Files, 0)
	open := func(pid int) *Handle {
		h, err := s.Open(ID{PID: int32(pid)}, AllFields, buf)
		require.NoError(t, err)
		t.Cleanup(h.Close)
		return h
	}
	ha, hb, hc := open(a.Process.Pid), open(bcmd.Process.Pid), open(c.Process.Pid)
	assert.Equal(t, perProcess, ha.held(), "the first process keeps every file open")
	assert.Equal(t, descriptorsPerHandle-perProcess, hb.held(), "the second keeps what is left of five")
	assert.Zero(t, hc.held(), "the third keeps nothing open")
	assert.Equal(t, []int64{descriptorsPerHandle}, full, "told once, at the first refusal")

	var ra, rb, rc Reading
	require.NoError(t, ha.Read(AllFields, &ra, buf))
	require.NoError(t, hb.Read(AllFields, &rb, buf))
	require.NoError(t, hc.Read(AllFields, &rc, buf))
	for _, r := range []Reading{rb, rc} {
		assert.Equal(t, ra.Got, r.Got, "files read by path give the same fields")
		assert.GreaterOrEqual(t, r.FDs, int64(100))
		assert.GreaterOrEqual(t, r.Threads, int64(8))
		assert.Positive(t, r.RSS)
	}

	require.NoError(t, bcmd.Process.Kill())
	_ = bcmd.Wait()
	assert.ErrorIs(t, hb.Read(AllFields, &rb, buf), ErrGone)
	hb.Close()
	c2 := open(c.Process.Pid)
	assert.Equal(t, descriptorsPerHandle-perProcess, c2.held(), "a closed handle frees its places")
	assert.Len(t, full, 1, "told once")
}

// TestDefaultKeptOpenDescriptors: the default keeps 256 descriptors for the rest of the
// collector; a limit too low for one process still allows one.
func TestDefaultKeptOpenDescriptors(t *testing.T) {
	assert.Equal(t, int64(19744), DefaultKeptOpenDescriptors(20000), "the scale runs' hard limit: 4,936 processes at four each")
	assert.Equal(t, int64(descriptorsPerHandle), DefaultKeptOpenDescriptors(256))
	assert.Equal(t, int64(descriptorsPerHandle), DefaultKeptOpenDescriptors(0))
	assert.Equal(t, int64(1<<30), DefaultKeptOpenDescriptors(1<<62), "an unlimited limit")
	s := &Source{}
	s.SetKeptOpenBudget(3948)
	assert.Equal(t, int64(3948*5), s.budget, "max_kept_open_processes counts five a process")
}

func TestScanAndDescribe(t *testing.T) {
	s := newSource(t)
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	buf := make([]byte, 4096)
	var found Entry
	require.NoError(t, s.Scan(buf, func(e Entry) {
		if e.ID.PID == int32(cmd.Process.Pid) {
			found = e
		}
	}))
	require.NotZero(t, found.ID.Start)
	assert.Equal(t, int32(os.Getpid()), found.PPID)
	d, err := s.Describe(found, buf)
	require.NoError(t, err)
	exe, _ := os.Executable()
	assert.Contains(t, exe, d.Executable)
	assert.Contains(t, d.Cmdline, "-test.run=^$")
	assert.Equal(t, int64(os.Getuid()), d.UID)
	assert.NotEmpty(t, OwnerName(d.UID))

	_, err = s.Describe(Entry{ID: ID{PID: found.ID.PID, Start: found.ID.Start + 1}}, buf)
	assert.ErrorIs(t, err, ErrGone)
}

func TestMachineCPUAndCgroup(t *testing.T) {
	s := newSource(t)
	c, err := s.CPUTimes()
	require.NoError(t, err)
	assert.NotZero(t, c.Total())
	assert.GreaterOrEqual(t, s.NumCPU(), 1)
	assert.Greater(t, s.MemTotal(), uint64(1<<20))
	usage, usageOK, _, _ := s.CgroupMemory(int32(os.Getpid()))
	if usageOK {
		assert.Greater(t, usage, uint64(0))
	}
}

// BenchmarkRead measures one full task sample on the Linux fast path: every field, against a
// live process, with kept-open files. The kernel's cost of /proc/<pid>/stat grows with the
// number of threads, so the benchmark covers a single-threaded process (a shell's sleep), an
// idle Go process (about 5 threads) and one with 100 open files and 8 extra threads.
func BenchmarkRead(b *testing.B) {
	s := newSource(b)
	sleeper := testworkload.Sleepers(b, 1)[0]
	cases := []struct {
		name string
		pid  int
	}{
		{"single-thread", sleeper.Process.Pid},
		{"go-idle", testworkload.Start(b, testworkload.Sleep, 0).Process.Pid},
		{"go-100files-8threads", testworkload.Start(b, testworkload.Files, 0).Process.Pid},
	}
	// The kernel's share: the same three system calls on the same files, without parsing,
	// together and one by one.
	kernel := []struct {
		name string
		call func(h *Handle, buf []byte, st *unix.Stat_t)
	}{
		{"kernel-floor", func(h *Handle, buf []byte, st *unix.Stat_t) {
			_, _ = unix.Pread(h.fds[fileStat], buf, 0)
			_, _ = unix.Pread(h.fds[fileIO], buf, 0)
			_ = unix.Fstat(h.fds[fileFD], st)
		}},
		{"kernel-floor/stat", func(h *Handle, buf []byte, _ *unix.Stat_t) { _, _ = unix.Pread(h.fds[fileStat], buf, 0) }},
		{"kernel-floor/io", func(h *Handle, buf []byte, _ *unix.Stat_t) { _, _ = unix.Pread(h.fds[fileIO], buf, 0) }},
		{"kernel-floor/fd", func(h *Handle, _ []byte, st *unix.Stat_t) { _ = unix.Fstat(h.fds[fileFD], st) }},
		{"kernel-floor/schedstat", func(h *Handle, buf []byte, _ *unix.Stat_t) { _, _ = unix.Pread(h.fds[fileSched], buf, 0) }},
	}
	for _, k := range kernel {
		b.Run(k.name, func(b *testing.B) {
			buf := make([]byte, 4096)
			h, err := s.Open(ID{PID: int32(sleeper.Process.Pid)}, AllFields, buf)
			require.NoError(b, err)
			defer h.Close()
			var st unix.Stat_t
			b.ReportAllocs()
			for b.Loop() {
				k.call(h, buf, &st)
			}
		})
	}
	// The same reads through gopsutil v4 on a reused Process, for comparison.
	b.Run("gopsutil-v4", func(b *testing.B) {
		p, err := gp.NewProcess(int32(sleeper.Process.Pid))
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = p.Times()
			_, _ = p.MemoryInfo()
			_, _ = p.IOCounters()
			_, _ = p.NumThreads()
			_, _ = p.NumFDs()
		}
	})
	// Past the kept-open budget: every file opened, read and closed on each sample.
	b.Run("transient", func(b *testing.B) {
		buf := make([]byte, 4096)
		defer noRoom(s)()
		h, err := s.Open(ID{PID: int32(sleeper.Process.Pid)}, AllFields, buf)
		require.NoError(b, err)
		require.Zero(b, h.held())
		var r Reading
		b.ReportAllocs()
		for b.Loop() {
			if err := h.Read(AllFields, &r, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Every case with collect_waits off (the files of every other flag) and on (schedstat
	// too, and stat's block I/O delay as with delay accounting on).
	for _, c := range cases {
		for _, w := range []struct {
			name      string
			fields    Fields
			delayAcct bool
		}{{"waits-off", AllFields &^ FieldWaits, false}, {"waits-on", AllFields, true}} {
			b.Run(c.name+"/"+w.name, func(b *testing.B) {
				s.SetDelayAccounting(w.delayAcct)
				defer s.SetDelayAccounting(false)
				buf := make([]byte, 4096)
				h, err := s.Open(ID{PID: int32(c.pid)}, w.fields, buf)
				require.NoError(b, err)
				defer h.Close()
				var r Reading
				b.ReportAllocs()
				for b.Loop() {
					if err := h.Read(w.fields, &r, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	// The waits of a task in a cgroup of its own: the three pressure files of a v2 group (the
	// root group's here: the same kernel code), kept open.
	b.Run("cgroup-waits/pressure", func(b *testing.B) {
		if s.CgroupV2Root() == "" {
			b.Skip("no cgroup v2 hierarchy")
		}
		buf := make([]byte, 4096)
		w := s.OpenWaits(s.CgroupV2Root(), 0, buf)
		if w == nil || w.fd[PressureCPU] < 0 {
			b.Skip("no pressure files (PSI off)")
		}
		defer w.Close()
		var r WaitsReading
		b.ReportAllocs()
		for b.Loop() {
			if err := w.Read(&r, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReadRounds measures a sample the way the receiver takes them at scale: across
// 1,000 processes, each read once per pass, so the kernel's data for a process is cold, in
// rounds of 100 (a scheduling round at 1,000 tasks a second). "idle-between-rounds" pauses
// 5 ms between rounds, untimed, as the receiver's workers idle between 100 ms rounds; on a
// VM the first reads after an idle pause cost several times a read in a tight loop.
func BenchmarkReadRounds(b *testing.B) {
	const processes, round = 1000, 100
	s := newSource(b)
	buf := make([]byte, 4096)
	handles := make([]*Handle, 0, processes)
	for _, c := range testworkload.Sleepers(b, processes) {
		h, err := s.Open(ID{PID: int32(c.Process.Pid)}, AllFields, buf)
		require.NoError(b, err)
		b.Cleanup(h.Close)
		handles = append(handles, h)
	}
	for _, pause := range []time.Duration{0, 5 * time.Millisecond} {
		name := "back-to-back"
		if pause > 0 {
			name = "idle-between-rounds"
		}
		b.Run(name, func(b *testing.B) {
			var r Reading
			for i := range b.N {
				if i%round == 0 && pause > 0 {
					b.StopTimer()
					time.Sleep(pause) //nolint:forbidigo // the idle gap between rounds is what is measured
					b.StartTimer()
				}
				if err := handles[i%processes].Read(AllFields, &r, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestParseStatusUIDs(t *testing.T) {
	status := []byte("Name:\tproplet\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t10\nPPid:\t1\nUid:\t65534\t0\t0\t0\nGid:\t0\t0\t0\t0\n")
	o, ok := parseStatusUIDs(status)
	require.True(t, ok)
	assert.Equal(t, Owner{Real: 65534, Effective: 0}, o)
	assert.False(t, o.Is(0), "a set-user-id process started by another user is not root's")
	assert.False(t, o.Is(65534))
	_, ok = parseStatusUIDs([]byte("Name:\tx\nUid:\t\n"))
	assert.False(t, ok)
	assert.Equal(t, 0.0, testing.AllocsPerRun(100, func() { _, _ = parseStatusUIDs(status) }))
}

// TestDescribeOwnerOfAnotherUser: the owner of a process started as another user comes from its
// status file, real and effective.
func TestDescribeOwnerOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("starting a process as another user needs root")
	}
	// Another user cannot follow root's private directories: the sleep on a CI PATH may be a
	// link in one, so the process gets the system's.
	cmd := exec.Command("/bin/sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	src, err := NewSource("/proc", "/sys/fs/cgroup")
	require.NoError(t, err)
	buf := make([]byte, 4096)
	e, ok := src.Lookup(int32(cmd.Process.Pid), buf)
	require.True(t, ok)
	d, err := src.Describe(e, buf)
	require.NoError(t, err)
	assert.Equal(t, Owner{Real: 65534, Effective: 65534}, d.Owner)
	assert.Equal(t, int64(65534), d.UID)
}

// BenchmarkDescribe reads a process's executable, command line and owner, as discovery does
// once per process it looks at.
func BenchmarkDescribe(b *testing.B) {
	src, err := NewSource("/proc", "/sys/fs/cgroup")
	require.NoError(b, err)
	buf := make([]byte, 4096)
	e, ok := src.Lookup(int32(os.Getpid()), buf)
	require.True(b, ok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Describe(e, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOwnerFromStatus is the owner's part of Describe: the status file read and parsed.
func BenchmarkOwnerFromStatus(b *testing.B) {
	path := "/proc/" + strconv.Itoa(os.Getpid()) + "/status"
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		st, err := readFile(path, buf)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := parseStatusUIDs(st); !ok {
			b.Fatal("no Uid line")
		}
	}
}

// BenchmarkOwnerFromStat is what Describe did before: the owner of /proc/<pid>.
func BenchmarkOwnerFromStat(b *testing.B) {
	path := "/proc/" + strconv.Itoa(os.Getpid())
	b.ReportAllocs()
	for b.Loop() {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadWaitsPaired measures what collect_waits adds to one task sample, with both
// reads under the same load: each iteration reads the process with waits off and with waits on
// (in alternating order), timing each call; it reports the median of each and their ratio.
// On a machine busy with other work, medians of interleaved calls compare where separate runs
// cannot.
func BenchmarkReadWaitsPaired(b *testing.B) {
	s := newSource(b)
	cases := []struct {
		name string
		pid  int
	}{
		{"single-thread", testworkload.Sleepers(b, 1)[0].Process.Pid},
		{"go-idle", testworkload.Start(b, testworkload.Sleep, 0).Process.Pid},
		{"go-100files-8threads", testworkload.Start(b, testworkload.Files, 0).Process.Pid},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 4096)
			off, on := AllFields&^FieldWaits, AllFields
			hOff, err := s.Open(ID{PID: int32(c.pid)}, off, buf)
			require.NoError(b, err)
			defer hOff.Close()
			hOn, err := s.Open(ID{PID: int32(c.pid)}, on, buf)
			require.NoError(b, err)
			defer hOn.Close()
			s.SetDelayAccounting(true) // the on case as with delay accounting on: stat's field 42 parsed too
			defer s.SetDelayAccounting(false)
			var r Reading
			timed := func(h *Handle, f Fields) int64 {
				t0 := time.Now()
				if err := h.Read(f, &r, buf); err != nil {
					b.Fatal(err)
				}
				return int64(time.Since(t0))
			}
			var tOff, tOn []int64
			i := 0
			for b.Loop() {
				if i++; i%2 == 0 {
					tOff = append(tOff, timed(hOff, off))
					tOn = append(tOn, timed(hOn, on))
				} else {
					tOn = append(tOn, timed(hOn, on))
					tOff = append(tOff, timed(hOff, off))
				}
			}
			mOff, mOn := median(tOff), median(tOn)
			b.ReportMetric(float64(mOff), "ns-off")
			b.ReportMetric(float64(mOn), "ns-on")
			b.ReportMetric(100*(float64(mOn)/float64(mOff)-1), "%added")
		})
	}
}

func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}
