// Package kmsg reads the kernel log for what only it says: which process the OOM killer
// killed. A Follower reads /dev/kmsg from its end at open; ParseRecord and ParseOOMKill are
// the pure parsers, tested with fixtures.
//
// When /dev/kmsg cannot be read (no CAP_SYSLOG with kernel.dmesg_restrict=1, a container
// without /dev/kmsg, not Linux), OpenFollower fails and the caller has two facts left: the
// cgroup's OOM kill count (cgroup v2 memory.events oom_kill, v1 memory.oom_control oom_kill,
// see internal/procfs), exact for a task in its own memory-limited cgroup, and the exit status
// (SIGKILL), which alone cannot tell the OOM killer from any other SIGKILL.
package kmsg // import "github.com/otelcol-propeller/otelcol-propeller/internal/kmsg"

import (
	"bytes"
	"errors"
	"strconv"
	"time"
)

// ErrMalformed is returned for a record that does not have /dev/kmsg's format.
var ErrMalformed = errors.New("malformed kernel log record")

// Record is one /dev/kmsg record: "priority,sequence,timestamp,flags[,...];message", then
// continuation lines (" KEY=value") that this package ignores.
type Record struct {
	Priority uint8         // syslog facility << 3 | level
	Sequence uint64        // the record's sequence number; a gap means records were overwritten
	Time     time.Duration // since boot (CLOCK_MONOTONIC), microsecond precision
	Message  []byte        // the message, aliasing the input
}

// ParseRecord parses one record read from /dev/kmsg (one read returns one record).
func ParseRecord(b []byte, r *Record) error {
	semi := bytes.IndexByte(b, ';')
	if semi < 0 {
		return ErrMalformed
	}
	head, msg := b[:semi], b[semi+1:]
	if nl := bytes.IndexByte(msg, '\n'); nl >= 0 {
		msg = msg[:nl]
	}
	var f [3][]byte
	for i := range f {
		c := bytes.IndexByte(head, ',')
		if c < 0 {
			return ErrMalformed
		}
		f[i], head = head[:c], head[c+1:]
	}
	prio, err1 := strconv.ParseUint(string(f[0]), 10, 8)
	seq, err2 := strconv.ParseUint(string(f[1]), 10, 64)
	ts, err3 := strconv.ParseUint(string(f[2]), 10, 63)
	if err1 != nil || err2 != nil || err3 != nil || ts > uint64(1<<63-1)/uint64(time.Microsecond) {
		return ErrMalformed
	}
	*r = Record{Priority: uint8(prio), Sequence: seq, Time: time.Duration(ts) * time.Microsecond, Message: msg}
	return nil
}

// OOMKill is what the kernel log says of one process the OOM killer killed.
type OOMKill struct {
	PID     int
	Command string
	// Cgroup is the memory cgroup that ran out of memory (oom_memcg of the oom-kill summary,
	// Linux 4.19+; "" for a kill of the whole system or when the summary was not seen); its
	// path is relative to the memory controller's root, as /proc/<pid>/cgroup writes it.
	Cgroup string
	// TaskCgroup is the killed task's memory cgroup (task_memcg), "" when not seen.
	TaskCgroup string
	// MemoryCgroup: "Memory cgroup out of memory" rather than "Out of memory": the kill was
	// a cgroup's limit, not the host's memory.
	MemoryCgroup bool
	Time         time.Duration // the record's time since boot
}

var (
	killedProcess = []byte("Killed process ")
	oomSummary    = []byte("oom-kill:")
)

// ParseOOMKill recognises the message of the line that names a process the OOM killer
// killed, in the formats the kernel has used:
//
//	Out of memory: Killed process 1234 (name) total-vm:...kB, anon-rss:...
//	Memory cgroup out of memory: Killed process 1234 (name) total-vm:...
//	Killed process 1234 (name) total-vm:...              (before 5.0, after "Kill process ... or sacrifice child")
//
// The summary line "oom-kill:constraint=...,task=name,pid=1234,uid=0" (4.19+) comes just
// before it with the cgroups: ParseOOMSummary reads it.
func ParseOOMKill(msg []byte, k *OOMKill) bool {
	i := bytes.Index(msg, killedProcess)
	if i < 0 {
		return false
	}
	prefix, rest := msg[:i], msg[i+len(killedProcess):]
	if len(prefix) > 0 && !bytes.HasSuffix(prefix, []byte("out of memory: ")) && !bytes.HasSuffix(prefix, []byte("Out of memory: ")) {
		// "oom_reaper: reaped process" and the like are not kills; neither is a message
		// that merely quotes the phrase.
		return false
	}
	sp := bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return false
	}
	pid, err := strconv.Atoi(string(rest[:sp]))
	if err != nil || pid <= 0 {
		return false
	}
	rest = rest[sp+1:]
	// The command is in parentheses and may itself hold ") ": it ends at the last ") " before
	// the first "total-vm:" (or the line's end on formats without it).
	if len(rest) == 0 || rest[0] != '(' {
		return false
	}
	end := len(rest)
	if tv := bytes.Index(rest, []byte(" total-vm:")); tv >= 0 {
		end = tv
	}
	rp := bytes.LastIndexByte(rest[:end], ')')
	if rp < 1 {
		return false
	}
	*k = OOMKill{
		PID:          pid,
		Command:      string(rest[1:rp]),
		MemoryCgroup: bytes.HasPrefix(prefix, []byte("Memory cgroup")),
	}
	return true
}

// ParseOOMSummary reads "oom-kill:constraint=...,oom_memcg=/a,task_memcg=/a/b,task=name,
// pid=1234,uid=0" into k (PID, Command, Cgroup, TaskCgroup). The task name comes before pid
// and may hold commas, so the pid is read from the end.
func ParseOOMSummary(msg []byte, k *OOMKill) bool {
	if !bytes.HasPrefix(msg, oomSummary) {
		return false
	}
	s := msg[len(oomSummary):]
	ti := bytes.Index(s, []byte(",task="))
	pi := bytes.LastIndex(s, []byte(",pid="))
	if ti < 0 || pi < ti {
		return false
	}
	pidv := s[pi+len(",pid="):]
	if c := bytes.IndexByte(pidv, ','); c >= 0 {
		pidv = pidv[:c]
	}
	pid, err := strconv.Atoi(string(pidv))
	if err != nil || pid <= 0 {
		return false
	}
	*k = OOMKill{PID: pid, Command: string(s[ti+len(",task=") : pi])}
	for head := s[:ti]; len(head) > 0; {
		kv := head
		if c := bytes.IndexByte(head, ','); c >= 0 {
			kv, head = head[:c], head[c+1:]
		} else {
			head = nil
		}
		switch {
		case bytes.HasPrefix(kv, []byte("oom_memcg=")):
			k.Cgroup = string(kv[len("oom_memcg="):])
		case bytes.HasPrefix(kv, []byte("task_memcg=")):
			k.TaskCgroup = string(kv[len("task_memcg="):])
		}
	}
	return true
}
