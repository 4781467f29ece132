package kmsg

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRecord(t *testing.T) {
	var r Record
	require.NoError(t, ParseRecord([]byte("3,416,1394513204,-;Memory cgroup out of memory: Killed process 858 (python3)\n SUBSYSTEM=x\n"), &r))
	assert.Equal(t, uint8(3), r.Priority)
	assert.Equal(t, uint64(416), r.Sequence)
	assert.Equal(t, 1394513204*time.Microsecond, r.Time)
	assert.Equal(t, "Memory cgroup out of memory: Killed process 858 (python3)", string(r.Message))
	require.NoError(t, ParseRecord([]byte("6,1,2,-,caller=T1;x"), &r), "fields after the flags")
	assert.Equal(t, "x", string(r.Message))
	for _, bad := range []string{"", "no semicolon", "6,1;x", "a,1,2,-;x", "6,1,-2,-;x", "6,1,99999999999999999999,-;x", "300,1,2,-;x"} {
		assert.ErrorIs(t, ParseRecord([]byte(bad), &r), ErrMalformed, bad)
	}
}

// TestFixture: the records the kernel wrote for a real memory cgroup OOM kill on this
// project's test machine (Linux 6.18), with the records around them.
func TestFixture(t *testing.T) {
	b, err := os.ReadFile("testdata/oom_memcg")
	require.NoError(t, err)
	var kills, summaries []OOMKill
	for _, l := range bytes.Split(b, []byte("\n")) {
		var r Record
		if len(l) == 0 || ParseRecord(l, &r) != nil {
			continue
		}
		var k OOMKill
		if ParseOOMKill(r.Message, &k) {
			kills = append(kills, k)
		}
		if ParseOOMSummary(r.Message, &k) {
			summaries = append(summaries, k)
		}
	}
	assert.Equal(t, []OOMKill{{PID: 858, Command: "python3", MemoryCgroup: true}}, kills)
	assert.Equal(t, []OOMKill{{PID: 858, Command: "python3", Cgroup: "/oomprobe", TaskCgroup: "/oomprobe"}}, summaries)
}

func TestParseOOMKill(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want OOMKill
		ok   bool
	}{
		{name: "host", msg: "Out of memory: Killed process 1234 (worker) total-vm:221368kB, anon-rss:57856kB, file-rss:6668kB, shmem-rss:0kB, UID:0 pgtables:184kB oom_score_adj:0",
			want: OOMKill{PID: 1234, Command: "worker"}, ok: true},
		{name: "memory cgroup", msg: "Memory cgroup out of memory: Killed process 858 (python3) total-vm:221368kB, anon-rss:57856kB",
			want: OOMKill{PID: 858, Command: "python3", MemoryCgroup: true}, ok: true},
		{name: "before 5.0", msg: "Killed process 77 (java) total-vm:1024kB, anon-rss:512kB, file-rss:0kB, shmem-rss:0kB",
			want: OOMKill{PID: 77, Command: "java"}, ok: true},
		{name: "parentheses in the name", msg: "Out of memory: Killed process 9 (a) (b)) total-vm:1kB",
			want: OOMKill{PID: 9, Command: "a) (b)"}, ok: true},
		{name: "no tail", msg: "Out of memory: Killed process 9 (x)", want: OOMKill{PID: 9, Command: "x"}, ok: true},
		{name: "the 4.x announcement", msg: "Out of memory: Kill process 77 (java) score 900 or sacrifice child"},
		{name: "reaper", msg: "oom_reaper: reaped process 858 (python3), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB"},
		{name: "quoted by someone", msg: "audit: note Killed process 1 (init)"},
		{name: "bad pid", msg: "Out of memory: Killed process x (a) total-vm:1kB"},
		{name: "zero pid", msg: "Out of memory: Killed process 0 (a) total-vm:1kB"},
		{name: "no name", msg: "Out of memory: Killed process 12 total-vm:1kB"},
		{name: "unrelated", msg: "EXT4-fs (vda): mounted filesystem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var k OOMKill
			ok := ParseOOMKill([]byte(tt.msg), &k)
			assert.Equal(t, tt.ok, ok)
			if tt.ok {
				assert.Equal(t, tt.want, k)
			}
		})
	}
}

func TestParseOOMSummary(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want OOMKill
		ok   bool
	}{
		{name: "memcg", msg: "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0-1,3,oom_memcg=/a,task_memcg=/a/b,task=w,pid=5,uid=0",
			want: OOMKill{PID: 5, Command: "w", Cgroup: "/a", TaskCgroup: "/a/b"}, ok: true},
		{name: "host, comma in the name", msg: "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice,task=a,b,pid=6,uid=1000",
			want: OOMKill{PID: 6, Command: "a,b", TaskCgroup: "/user.slice"}, ok: true},
		{name: "no pid", msg: "oom-kill:constraint=CONSTRAINT_NONE,task=a"},
		{name: "not a summary", msg: "python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var k OOMKill
			ok := ParseOOMSummary([]byte(tt.msg), &k)
			assert.Equal(t, tt.ok, ok)
			if tt.ok {
				assert.Equal(t, tt.want, k)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	b, err := os.ReadFile("testdata/oom_memcg")
	require.NoError(f, err)
	for _, l := range bytes.Split(b, []byte("\n")) {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if ParseRecord(b, &r) != nil {
			r.Message = b
		}
		var k OOMKill
		if ParseOOMKill(r.Message, &k) && k.PID <= 0 {
			t.Fatalf("pid %d", k.PID)
		}
		if ParseOOMSummary(r.Message, &k) && k.PID <= 0 {
			t.Fatalf("pid %d", k.PID)
		}
	})
}
