package procevents

import (
	"testing"
	"time"
	"unsafe"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// message builds a TASKSTATS_CMD_NEW message as the kernel sends it: the generic netlink
// header, TASKSTATS_TYPE_AGGR_PID (pid, stats) and, for the last record of a group that had
// several threads, TASKSTATS_TYPE_AGGR_TGID. size cuts struct taskstats short, as an older
// kernel's is (0: whole).
func message(tb testing.TB, pid, aggrTGID uint32, ts unix.Taskstats, size int) []byte {
	tb.Helper()
	stats := unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts))
	if size > 0 {
		stats = stats[:size]
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(unix.TASKSTATS_TYPE_AGGR_PID, func(ae *netlink.AttributeEncoder) error {
		ae.Uint32(unix.TASKSTATS_TYPE_PID, pid)
		ae.Bytes(unix.TASKSTATS_TYPE_STATS, stats)
		return nil
	})
	if aggrTGID != 0 {
		ae.Nested(unix.TASKSTATS_TYPE_AGGR_TGID, func(ae *netlink.AttributeEncoder) error {
			ae.Uint32(unix.TASKSTATS_TYPE_TGID, aggrTGID)
			ae.Bytes(unix.TASKSTATS_TYPE_STATS, stats)
			return nil
		})
	}
	data, err := ae.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	b, err := genetlink.Message{Header: genetlink.Header{Command: unix.TASKSTATS_CMD_NEW, Version: 1}, Data: data}.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func stats(pid, tgid uint32, flag uint8, utime, hiwater, wb uint64) unix.Taskstats {
	ts := unix.Taskstats{
		Version: 16, Ac_pid: pid, Ac_tgid: tgid, Ac_ppid: 1, Ac_flag: flag, Ac_exitcode: 3 << 8,
		Ac_etime: 1_000_000, Ac_tgetime: 1_500_000, Ac_utime: utime, Ac_stime: utime / 10,
		Hiwater_rss: hiwater, Write_bytes: wb, Read_bytes: 1 << 10,
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&ts.Ac_comm[0])), len(ts.Ac_comm)), "work")
	return ts
}

// exitHandler keeps the Exits, and fails on anything else.
type exitHandler struct {
	tb    testing.TB
	exits []Exit
}

func (h *exitHandler) Fork(int, int) {}
func (h *exitHandler) Exec(int)      {}
func (h *exitHandler) Exit(e Exit)   { h.exits = append(h.exits, e) }
func (h *exitHandler) Lost()         {}

func newTestListener() *Listener {
	return &Listener{watched: map[uint32]*group{}, closing: map[uint32]*group{}, linger: time.Hour,
		openMono: time.Now().Add(-time.Hour), openBoot: time.Hour}
}

func TestSumThreads(t *testing.T) {
	tests := []struct {
		name      string
		size      int // of struct taskstats; 0: this build's
		msgs      func(t *testing.T) [][]byte
		threads   int
		user      time.Duration
		peak      uint64
		written   uint64
		elapsed   time.Duration
		complete  bool
		lingering bool
		dropped   uint64
	}{{
		name: "single thread",
		msgs: func(t *testing.T) [][]byte {
			return [][]byte{message(t, 100, 0, stats(100, 100, acGroup, 500_000, 1000, 4096), 0)}
		},
		threads: 1, user: 500 * time.Millisecond, peak: 1000 << 10, written: 4096, elapsed: 1500 * time.Millisecond, complete: true,
	}, {
		name: "threads, the last one's record after the others",
		msgs: func(t *testing.T) [][]byte {
			return [][]byte{
				message(t, 101, 0, stats(101, 100, 0x10, 100_000, 900, 0), 0),
				message(t, 100, 0, stats(100, 100, 0, 200_000, 1000, 4096), 0),
				message(t, 102, 100, stats(102, 100, acGroup|0x10, 300_000, 1000, 0), 0),
			}
		},
		threads: 3, user: 600 * time.Millisecond, peak: 1000 << 10, written: 4096, elapsed: 1500 * time.Millisecond, complete: true, lingering: true,
	}, {
		name: "threads, a record after the last one's",
		msgs: func(t *testing.T) [][]byte {
			return [][]byte{
				message(t, 100, 0, stats(100, 100, 0, 200_000, 1200, 4096), 0),
				message(t, 102, 100, stats(102, 100, acGroup, 300_000, 1000, 0), 0),
				message(t, 101, 0, stats(101, 100, 0x10, 100_000, 900, 0), 0),
			}
		},
		threads: 3, user: 600 * time.Millisecond, peak: 1200 << 10, written: 4096, elapsed: 1500 * time.Millisecond, complete: true, lingering: true,
	}, {
		// Before version 12 (no ac_tgid): a thread other than the leader and the last cannot be
		// told apart, and the leader's elapsed time is the group's.
		name: "old kernel",
		size: int(unsafe.Offsetof(unix.Taskstats{}.Ac_tgid)),
		msgs: func(t *testing.T) [][]byte {
			size := int(unsafe.Offsetof(unix.Taskstats{}.Ac_tgid))
			return [][]byte{
				message(t, 101, 0, stats(101, 100, 0x10, 100_000, 900, 0), size),
				message(t, 100, 0, stats(100, 100, 0, 200_000, 1000, 4096), size),
				message(t, 102, 100, stats(102, 100, acGroup, 300_000, 1000, 0), size),
			}
		},
		threads: 2, user: 500 * time.Millisecond, peak: 1000 << 10, written: 4096, elapsed: time.Second, complete: false, lingering: true, dropped: 1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newTestListener()
			h := &exitHandler{tb: t}
			l.Watch(100)
			for _, m := range tt.msgs(t) {
				l.taskstatsMessage(m, h)
			}
			if tt.lingering {
				if len(h.exits) != 0 {
					t.Fatalf("Exit of a multi-threaded group before its linger: %+v", h.exits)
				}
				l.flush(h, time.Now())
				if len(h.exits) != 0 {
					t.Fatalf("Exit before the linger's deadline")
				}
				l.flush(h, time.Time{})
			}
			if len(h.exits) != 1 {
				t.Fatalf("%d Exits, want 1", len(h.exits))
			}
			e := h.exits[0]
			if e.PID != 100 || e.ParentPID != 1 || e.Command != "work" || e.Status.ExitCode() != 3 {
				t.Errorf("pid %d parent %d command %q status %#x", e.PID, e.ParentPID, e.Command, uint32(e.Status))
			}
			if e.Threads != tt.threads || e.User != tt.user || e.System != tt.user/10 || e.PeakRSS != tt.peak ||
				e.WriteBytes != tt.written || e.ReadBytes != uint64(tt.threads)<<10 || e.Elapsed != tt.elapsed {
				t.Errorf("threads %d user %v system %v peak %d written %d read %d elapsed %v", e.Threads, e.User, e.System,
					e.PeakRSS, e.WriteBytes, e.ReadBytes, e.Elapsed)
			}
			if e.Complete != tt.complete {
				t.Errorf("complete %v, want %v", e.Complete, tt.complete)
			}
			if len(l.watched)+len(l.closing) != 0 {
				t.Errorf("group still held after its Exit")
			}
			if l.Stats().DroppedUnwatched != tt.dropped {
				t.Errorf("dropped %d", l.Stats().DroppedUnwatched)
			}
		})
	}
}

// TestCPUIsTheRunTime: a group's CPU time is what the scheduler ran its threads
// (cpu_run_virtual_total), split between user and system in the proportion of the tick
// samples; a record without the run time leaves the ticks.
func TestCPUIsTheRunTime(t *testing.T) {
	withRun := func(ts unix.Taskstats, run time.Duration) unix.Taskstats {
		ts.Cpu_run_virtual_total = uint64(run)
		return ts
	}
	tests := []struct {
		name         string
		records      []unix.Taskstats
		user, system time.Duration
	}{{
		// Ticks: 200 ms user, 20 ms system (stats' system is a tenth); ran 440 ms.
		name:    "one thread, counted short by the ticks",
		records: []unix.Taskstats{withRun(stats(100, 100, acGroup, 200_000, 1000, 0), 440*time.Millisecond)},
		user:    400 * time.Millisecond, system: 40 * time.Millisecond,
	}, {
		name: "threads summed, then split",
		records: []unix.Taskstats{
			withRun(stats(101, 100, 0, 100_000, 900, 0), 200*time.Millisecond),
			withRun(stats(100, 100, acGroup, 100_000, 1000, 0), 240*time.Millisecond),
		},
		user: 400 * time.Millisecond, system: 40 * time.Millisecond,
	}, {
		name: "system time only",
		records: []unix.Taskstats{func() unix.Taskstats {
			ts := withRun(stats(100, 100, acGroup, 0, 1000, 0), 30*time.Millisecond)
			ts.Ac_stime = 10_000
			return ts
		}()},
		user: 0, system: 30 * time.Millisecond,
	}, {
		name: "a record without the run time: the ticks",
		records: []unix.Taskstats{
			withRun(stats(101, 100, 0, 100_000, 900, 0), 0),
			withRun(stats(100, 100, acGroup, 100_000, 1000, 0), 240*time.Millisecond),
		},
		user: 200 * time.Millisecond, system: 20 * time.Millisecond,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newTestListener()
			l.linger = 0
			l.Watch(100)
			h := &exitHandler{tb: t}
			for _, ts := range tt.records {
				aggr := uint32(0)
				if ts.Ac_flag&acGroup != 0 && len(tt.records) > 1 {
					aggr = 100
				}
				l.taskstatsMessage(message(t, ts.Ac_pid, aggr, ts, 0), h)
			}
			l.flush(h, time.Time{})
			if len(h.exits) != 1 {
				t.Fatalf("%d Exits, want 1", len(h.exits))
			}
			if e := h.exits[0]; e.User != tt.user || e.System != tt.system {
				t.Errorf("user %v system %v, want %v and %v", e.User, e.System, tt.user, tt.system)
			}
		})
	}
}

// Each thread's delays count once in its group's Exit; a kernel whose struct ends before the
// delay fields (never: they are from version 1) would give zeros, not garbage.
func TestDelaysSummed(t *testing.T) {
	withDelays := func(pid uint32, flag uint8, ms uint64) []byte {
		ts := stats(pid, 100, flag, 100_000, 1000, 0)
		ts.Cpu_delay_total, ts.Blkio_delay_total = ms*1e6, 2*ms*1e6
		ts.Swapin_delay_total, ts.Freepages_delay_total = 3*ms*1e6, 4*ms*1e6
		return message(t, pid, 0, ts, 0)
	}
	l := newTestListener()
	h := &exitHandler{tb: t}
	l.Watch(100)
	l.taskstatsMessage(withDelays(101, 0, 5), h)
	l.taskstatsMessage(withDelays(100, acGroup, 7), h)
	l.flush(h, time.Time{})
	if len(h.exits) != 1 {
		t.Fatalf("%d Exits, want 1", len(h.exits))
	}
	want := Delays{CPU: 12 * time.Millisecond, BlockIO: 24 * time.Millisecond, SwapIn: 36 * time.Millisecond, MemoryReclaim: 48 * time.Millisecond}
	if got := h.exits[0].Delays; got != want {
		t.Errorf("delays %+v, want %+v", got, want)
	}
}

func TestUnwatchedDropped(t *testing.T) {
	l := newTestListener()
	h := &exitHandler{tb: t}
	l.Watch(7)
	l.Unwatch(7)
	l.taskstatsMessage(message(t, 7, 0, stats(7, 7, acGroup, 1, 1, 1), 0), h)
	l.taskstatsMessage(message(t, 8, 0, stats(8, 9, 0, 1, 1, 1), 0), h)
	if len(h.exits) != 0 || l.Stats().DroppedUnwatched != 2 || l.Stats().Records != 2 {
		t.Errorf("exits %d, stats %+v", len(h.exits), l.Stats())
	}
}

func TestMalformedRecords(t *testing.T) {
	good := message(t, 100, 0, stats(100, 100, acGroup, 1, 1, 1), 0)
	for _, b := range [][]byte{
		nil, good[:3], good[:4], good[:10], good[:40],
		message(t, 100, 0, stats(100, 100, acGroup, 1, 1, 1), 8),
	} {
		var r record
		if parseRecord(b[min(4, len(b)):], &r) {
			t.Errorf("parsed %d bytes: %+v", len(b), r)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(message(f, 100, 0, stats(100, 100, acGroup, 1, 1, 1), 0)[4:])
	f.Add(message(f, 100, 100, stats(100, 100, acGroup, 1, 1, 1), 200)[4:])
	f.Fuzz(func(t *testing.T, b []byte) {
		var r record
		parseRecord(b, &r)
	})
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name             string
		s                Status
		exited, signaled bool
		code, sig        int
		core             bool
	}{
		{"exit 0", 0, true, false, 0, -1, false},
		{"exit 3", 3 << 8, true, false, 3, -1, false},
		{"exit 255", 255 << 8, true, false, 255, -1, false},
		{"SIGKILL", 9, false, true, -1, 9, false},
		{"SIGSEGV with core", 11 | 0x80, false, true, -1, 11, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.s.Exited() != tt.exited || tt.s.Signaled() != tt.signaled || tt.s.ExitCode() != tt.code ||
				tt.s.Signal() != tt.sig || tt.s.CoreDumped() != tt.core {
				t.Errorf("%#x: exited %v signaled %v code %d signal %d core %v", uint32(tt.s), tt.s.Exited(),
					tt.s.Signaled(), tt.s.ExitCode(), tt.s.Signal(), tt.s.CoreDumped())
			}
		})
	}
}

// BenchmarkDropUnwatched is the cost of one record of a group nobody watches (most records on
// a host), with 1,000 groups watched: a thread's record, and the last record of a group, which
// is kept (one clock read and a copy) for a Watch that comes just after the end.
func BenchmarkDropUnwatched(b *testing.B) {
	for _, bm := range []struct {
		name string
		flag uint8
	}{{"thread", 0}, {"last", acGroup}} {
		b.Run(bm.name, func(b *testing.B) {
			l := newTestListener()
			for pid := range 1000 {
				l.Watch(10000 + pid)
			}
			m := message(b, 100, 0, stats(100, 100, bm.flag, 1, 1, 1), 0)
			h := &exitHandler{tb: b}
			b.ReportAllocs()
			for b.Loop() {
				l.taskstatsMessage(m, h)
			}
			if len(h.exits) != 0 || l.Stats().DroppedUnwatched == 0 {
				b.Fatal("not dropped")
			}
		})
	}
}

// BenchmarkWatchedRecord is the cost of summing one thread record of a watched group.
func BenchmarkWatchedRecord(b *testing.B) {
	l := newTestListener()
	l.Watch(100)
	m := message(b, 101, 0, stats(101, 100, 0, 1, 1, 1), 0)
	h := &exitHandler{tb: b}
	b.ReportAllocs()
	for b.Loop() {
		l.taskstatsMessage(m, h)
	}
}

type nopHandler struct{}

func (nopHandler) Fork(int, int) {}
func (nopHandler) Exec(int)      {}
func (nopHandler) Exit(Exit)     {}
func (nopHandler) Lost()         {}

// BenchmarkConnectorFork is the cost of one fork event passed to the handler.
func BenchmarkConnectorFork(b *testing.B) {
	l := newTestListener()
	m := make([]byte, cnMsgLen+procEventHeaderLen+16)
	le := func(off int, v uint32) { *(*uint32)(unsafe.Pointer(&m[off])) = v }
	le(0, cnIdxProc)
	le(4, cnValProc)
	le(cnMsgLen, procEventFork)
	d := cnMsgLen + procEventHeaderLen
	le(d, 1)
	le(d+4, 1)
	le(d+8, 200)
	le(d+12, 200)
	b.ReportAllocs()
	for b.Loop() {
		l.connectorMessage(m, nopHandler{})
	}
}

// TestWatchAfterEnd: a group that ended unwatched just before Watch still gets its Exit, from
// its last record: complete when it had one thread, short when others' records were dropped.
func TestWatchAfterEnd(t *testing.T) {
	l := newTestListener()
	h := &exitHandler{tb: t}
	l.taskstatsMessage(message(t, 100, 0, stats(100, 100, acGroup, 500_000, 1000, 4096), 0), h)
	l.taskstatsMessage(message(t, 201, 0, stats(201, 200, 0, 100_000, 900, 0), 0), h)
	l.taskstatsMessage(message(t, 202, 200, stats(202, 200, acGroup, 300_000, 1000, 0), 0), h)
	if len(h.exits) != 0 || l.Stats().DroppedUnwatched != 3 {
		t.Fatalf("exits %d, stats %+v", len(h.exits), l.Stats())
	}
	l.Watch(100)
	l.Watch(200)
	l.Watch(300) // never ended: watched as usual
	l.flush(h, time.Now())
	if len(h.exits) != 2 {
		t.Fatalf("%d Exits, want 2", len(h.exits))
	}
	if e := h.exits[0]; e.PID != 100 || !e.Complete || e.User != 500*time.Millisecond || e.Threads != 1 || e.Status.ExitCode() != 3 {
		t.Errorf("single thread: %+v", e)
	}
	if e := h.exits[1]; e.PID != 200 || e.Complete || e.User != 300*time.Millisecond || e.Threads != 1 {
		t.Errorf("threads: %+v", e)
	}
	// Delivered once: watching again waits for a new end.
	l.Watch(100)
	l.flush(h, time.Time{})
	if len(h.exits) != 2 || l.watched[100] == nil || l.watched[300] == nil {
		t.Errorf("exits %d, watched %v", len(h.exits), l.watched)
	}
}

func TestKernelVersion(t *testing.T) {
	for _, tt := range []struct {
		in           string
		major, minor int
		ok           bool
	}{
		{"6.18.44-fc-v595", 6, 18, true},
		{"6.6.0", 6, 6, true},
		{"5.15.0-91-generic", 5, 15, true},
		{"6.10-rc1", 6, 10, true},
		{"weird", 0, 0, false},
	} {
		major, minor, ok := kernelVersion(tt.in)
		if ok != tt.ok || ok && (major != tt.major || minor != tt.minor) {
			t.Errorf("%q: %d.%d %v", tt.in, major, minor, ok)
		}
	}
}
