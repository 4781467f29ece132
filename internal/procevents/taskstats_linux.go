package procevents

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// acGroup is AGROUP in ac_flag (linux/acct.h, which x/sys does not carry): the record of the
// thread that ended its group. Its neighbour AXSIG (0x10, died of a signal) is set on every
// thread that exit_group stopped, with the group's exit code, so it says nothing of how the
// process ended: the status does.
const acGroup = 0x20

// The offsets of struct taskstats fields, from x/sys's copy of the kernel's struct. The struct
// only ever grows at its end, so a field is present when the attribute is long enough to hold
// it, whatever version the kernel speaks: an older kernel's shorter struct gives the fields it
// has, a newer kernel's longer one the fields this build knows.
var tsOff = struct {
	exitcode, flag, comm, ppid, etime, utime, stime, hiwater,
	readBytes, writeBytes, cancelled, tgid, tgetime,
	cpuDelay, blkioDelay, swapinDelay, reclaimDelay, runVirtual uintptr
}{
	exitcode:   unsafe.Offsetof(unix.Taskstats{}.Ac_exitcode),
	flag:       unsafe.Offsetof(unix.Taskstats{}.Ac_flag),
	comm:       unsafe.Offsetof(unix.Taskstats{}.Ac_comm),
	ppid:       unsafe.Offsetof(unix.Taskstats{}.Ac_ppid),
	etime:      unsafe.Offsetof(unix.Taskstats{}.Ac_etime),
	utime:      unsafe.Offsetof(unix.Taskstats{}.Ac_utime),
	stime:      unsafe.Offsetof(unix.Taskstats{}.Ac_stime),
	hiwater:    unsafe.Offsetof(unix.Taskstats{}.Hiwater_rss),
	readBytes:  unsafe.Offsetof(unix.Taskstats{}.Read_bytes),
	writeBytes: unsafe.Offsetof(unix.Taskstats{}.Write_bytes),
	cancelled:  unsafe.Offsetof(unix.Taskstats{}.Cancelled_write_bytes),
	tgid:       unsafe.Offsetof(unix.Taskstats{}.Ac_tgid),
	tgetime:    unsafe.Offsetof(unix.Taskstats{}.Ac_tgetime),
	// Delay accounting (version 1 on): zero unless the kernel counted delays for the thread.
	cpuDelay:     unsafe.Offsetof(unix.Taskstats{}.Cpu_delay_total),
	blkioDelay:   unsafe.Offsetof(unix.Taskstats{}.Blkio_delay_total),
	swapinDelay:  unsafe.Offsetof(unix.Taskstats{}.Swapin_delay_total),
	reclaimDelay: unsafe.Offsetof(unix.Taskstats{}.Freepages_delay_total),
	// The thread's CPU time as the scheduler ran it, in ns (se.sum_exec_runtime), filled with
	// the delays' CPU fields; ac_utime and ac_stime are tick samples of it.
	runVirtual: unsafe.Offsetof(unix.Taskstats{}.Cpu_run_virtual_total),
}

// record is one thread's exit record, the fields this package uses.
type record struct {
	pid      uint32 // the thread (TASKSTATS_TYPE_PID of TASKSTATS_TYPE_AGGR_PID)
	aggrTGID uint32 // TASKSTATS_TYPE_TGID of TASKSTATS_TYPE_AGGR_TGID: only in the last record of a group that had several threads
	version  uint16
	flag     uint8
	hasTGID  bool // ac_tgid is present (taskstats version 12 and later)
	hasTGE   bool // ac_tgetime is present
	tgid     uint32
	exitcode uint32
	ppid     uint32
	comm     [32]byte
	etime    uint64 // µs
	tgetime  uint64 // µs
	utime    uint64 // µs
	stime    uint64 // µs
	run      uint64 // ns, cpu_run_virtual_total; 0 when not given
	hiwater  uint64 // KiB
	rb, wb   uint64
	cwb      uint64
	delays   delays // ns
}

// delays are the delay accounting totals of a record, or of a group's records summed, in ns.
type delays struct{ cpu, blkio, swapin, reclaim uint64 }

func (d *delays) add(o delays) {
	d.cpu += o.cpu
	d.blkio += o.blkio
	d.swapin += o.swapin
	d.reclaim += o.reclaim
}

// group returns the thread group the record belongs to, and false when it cannot tell (a
// thread other than the last one, on a kernel whose records do not carry ac_tgid).
func (r *record) group() (uint32, bool) {
	switch {
	case r.hasTGID:
		return r.tgid, true
	case r.aggrTGID != 0:
		return r.aggrTGID, true
	case r.flag&acGroup != 0:
		// The last thread of a group that only ever had one: the leader.
		return r.pid, true
	}
	// Another thread: the leader's record names its group, the others' cannot be told apart.
	return r.pid, false
}

// attrs walks netlink attributes (struct nlattr: length, type, payload padded to 4 bytes)
// without allocating, which the drop path needs; it stops at the first malformed one.
func attrs(b []byte, fn func(typ uint16, payload []byte)) bool {
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & 0x3fff // NLA_F_NESTED, NLA_F_NET_BYTEORDER
		if n < 4 || n > len(b) {
			return false
		}
		fn(typ, b[4:n])
		n = (n + 3) &^ 3
		if n > len(b) {
			return true
		}
		b = b[n:]
	}
	return true
}

// parseRecord parses the attributes of a TASKSTATS_CMD_NEW message (after the generic
// netlink header). It reports false when the message holds no thread record.
func parseRecord(b []byte, r *record) bool {
	var stats []byte
	var pid, tgid uint32
	ok := attrs(b, func(typ uint16, p []byte) {
		switch typ {
		case unix.TASKSTATS_TYPE_AGGR_PID:
			attrs(p, func(typ uint16, p []byte) {
				switch typ {
				case unix.TASKSTATS_TYPE_PID:
					if len(p) >= 4 {
						pid = binary.NativeEndian.Uint32(p)
					}
				case unix.TASKSTATS_TYPE_STATS:
					stats = p
				}
			})
		case unix.TASKSTATS_TYPE_AGGR_TGID:
			attrs(p, func(typ uint16, p []byte) {
				if typ == unix.TASKSTATS_TYPE_TGID && len(p) >= 4 {
					tgid = binary.NativeEndian.Uint32(p)
				}
			})
		}
	})
	if !ok || pid == 0 || len(stats) < int(tsOff.ppid)+4 {
		return false
	}
	*r = record{pid: pid, aggrTGID: tgid}
	parseStats(stats, r)
	return true
}

// parseStats reads the fields of struct taskstats that fit in b.
func parseStats(b []byte, r *record) {
	u32 := func(off uintptr) (uint32, bool) {
		if int(off)+4 > len(b) {
			return 0, false
		}
		return binary.NativeEndian.Uint32(b[off:]), true
	}
	u64 := func(off uintptr) (uint64, bool) {
		if int(off)+8 > len(b) {
			return 0, false
		}
		return binary.NativeEndian.Uint64(b[off:]), true
	}
	r.version = binary.NativeEndian.Uint16(b)
	r.exitcode, _ = u32(tsOff.exitcode)
	r.flag = b[tsOff.flag]
	copy(r.comm[:], b[tsOff.comm:tsOff.comm+32])
	r.ppid, _ = u32(tsOff.ppid)
	r.etime, _ = u64(tsOff.etime)
	r.utime, _ = u64(tsOff.utime)
	r.stime, _ = u64(tsOff.stime)
	r.hiwater, _ = u64(tsOff.hiwater)
	r.rb, _ = u64(tsOff.readBytes)
	r.wb, _ = u64(tsOff.writeBytes)
	r.cwb, _ = u64(tsOff.cancelled)
	r.tgid, r.hasTGID = u32(tsOff.tgid)
	r.tgetime, r.hasTGE = u64(tsOff.tgetime)
	parseDelays(b, r)
	if r.hasTGID && r.tgid == 0 {
		r.hasTGID = false
	}
}

// parseDelays reads the delay accounting totals of struct taskstats that fit in b.
func parseDelays(b []byte, r *record) {
	u64 := func(off uintptr) uint64 {
		if int(off)+8 > len(b) {
			return 0
		}
		return binary.NativeEndian.Uint64(b[off:])
	}
	r.delays = delays{
		cpu: u64(tsOff.cpuDelay), blkio: u64(tsOff.blkioDelay),
		swapin: u64(tsOff.swapinDelay), reclaim: u64(tsOff.reclaimDelay),
	}
	r.run = u64(tsOff.runVirtual)
}

// commString is the NUL-terminated command name.
func commString(c *[32]byte) string {
	for i, b := range c {
		if b == 0 {
			return string(c[:i])
		}
	}
	return string(c[:])
}
