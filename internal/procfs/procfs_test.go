package procfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    Stat
		comm    string
		wantErr bool
	}{
		{
			name: "command name with spaces, parentheses and a newline",
			in:   fixture(t, "stat_odd_comm"),
			want: Stat{State: 'S', PPID: 1, UTime: 1234, STime: 567, NumThreads: 3, StartTime: 98765, VSize: 10485760, RSSPages: 2560},
			comm: "my (odd)\nname",
		},
		{
			name: "live process captured from this machine",
			in:   fixture(t, "stat"),
			want: Stat{State: 'S', PPID: 7665, NumThreads: 1, StartTime: 34264, VSize: 4857856, RSSPages: 444},
			comm: "bash",
		},
		{
			name: "zombie captured from this machine: its wait status, exit code 3",
			in:   fixture(t, "stat_zombie"),
			want: Stat{State: 'Z', PPID: 15423, NumThreads: 1, StartTime: 51912, ExitCode: 3 << 8, HasExitCode: true},
			comm: "sh",
		},
		{
			name: "zombie of a kernel before 3.5: no exit code printed",
			in:   []byte("7 (a) Z 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 9 0 0"),
			want: Stat{State: 'Z', PPID: 1, UTime: 5, STime: 6, NumThreads: 1, StartTime: 9},
			comm: "a",
		},
		{name: "empty", in: nil, wantErr: true},
		{name: "no closing parenthesis", in: []byte("1 (bash S 0 1 1"), wantErr: true},
		{name: "truncated after utime", in: []byte("1 (a) S 0 1 1 0 -1 0 0 0 0 0 5"), wantErr: true},
		{name: "state longer than one byte", in: []byte("1 (a) SS 0 1 1 0 -1 0 0 0 0 0 5 5 0 0 20 0 1 0 9 1 1"), wantErr: true},
		{name: "non-numeric utime", in: []byte("1 (a) S 0 1 1 0 -1 0 0 0 0 0 x 5 0 0 20 0 1 0 9 1 1"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Stat
			err := ParseStat(tt.in, &s)
			if tt.wantErr {
				assert.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, s)
			assert.Equal(t, tt.comm, string(StatComm(tt.in)))
		})
	}
}

func TestParseIO(t *testing.T) {
	var io IO
	require.NoError(t, ParseIO(fixture(t, "io"), &io))
	assert.Equal(t, IO{ReadBytes: 4096, WriteBytes: 4096}, io)
	assert.ErrorIs(t, ParseIO([]byte("rchar: 1\nread_bytes: 5\n"), &io), ErrMalformed, "write_bytes missing")
	assert.ErrorIs(t, ParseIO([]byte("read_bytes: x\nwrite_bytes: 1\n"), &io), ErrMalformed)
}

func TestParseNetDev(t *testing.T) {
	in := []byte(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  999999      10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0
  eth0: 1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
veth-x:   24       1    0    0    0     0          0         0       48       1    0    0    0     0       0          0
`)
	var n NetDev
	require.NoError(t, ParseNetDev(in, &n))
	assert.Equal(t, NetDev{RxBytes: 1024, TxBytes: 2048}, n)
	require.NoError(t, ParseNetDev(fixture(t, "net_dev"), &n))
	assert.ErrorIs(t, ParseNetDev([]byte("garbage"), &n), ErrMalformed)
	cut := bytes.Index(in, []byte("eth0")) + 20
	assert.ErrorIs(t, ParseNetDev(in[:cut], &n), ErrMalformed, "truncated mid-line")
}

func TestParseProcStat(t *testing.T) {
	var c CPUTimes
	require.NoError(t, ParseProcStat([]byte("cpu  10 1 5 100 2 3 4 6 0 0\ncpu0 10 1 5 100 2 3 4 6 0 0\nbtime 1700000000\n"), &c))
	assert.Equal(t, CPUTimes{User: 10, Nice: 1, System: 5, Idle: 100, IOWait: 2, IRQ: 3, SoftIRQ: 4, Steal: 6}, c)
	assert.Equal(t, uint64(131), c.Total())
	c = CPUTimes{}
	require.NoError(t, ParseProcStat(fixture(t, "proc_stat"), &c))
	assert.NotZero(t, c.Total())
	assert.ErrorIs(t, ParseProcStat([]byte("intr 1 2 3\n"), &c), ErrMalformed)
}

func TestParseMemTotalAndUptime(t *testing.T) {
	total, err := ParseMemTotal(fixture(t, "meminfo"))
	require.NoError(t, err)
	assert.Greater(t, total, uint64(1<<20))
	_, err = ParseMemTotal([]byte("MemFree: 1 kB\n"))
	assert.ErrorIs(t, err, ErrMalformed)

	up, err := ParseUptime([]byte("12345.67 2345.60\n"))
	require.NoError(t, err)
	assert.Equal(t, uint64(1234567), up)
	_, err = ParseUptime(fixture(t, "uptime"))
	require.NoError(t, err)
	_, err = ParseUptime([]byte("12345 1\n"))
	assert.ErrorIs(t, err, ErrMalformed)
}

func TestParseCgroupPaths(t *testing.T) {
	v2, v1, err := ParseCgroupPaths(fixture(t, "cgroup_v2"), "memory")
	require.NoError(t, err, "hybrid host: v1 memory controller beside an empty v2 root")
	assert.Equal(t, "/", string(v2))
	assert.Equal(t, "/process_api/a255d719172d8375dfd8c28448b917bd", string(v1))

	v2, v1, err = ParseCgroupPaths(fixture(t, "cgroup_v1"), "memory")
	require.NoError(t, err)
	assert.Nil(t, v2)
	assert.Equal(t, "/docker/abc", string(v1))

	v2, _, err = ParseCgroupPaths([]byte("0::/system.slice/proplet.service\n"), "memory")
	require.NoError(t, err)
	assert.Equal(t, "/system.slice/proplet.service", string(v2))

	_, _, err = ParseCgroupPaths([]byte("nonsense\n"), "memory")
	assert.ErrorIs(t, err, ErrMalformed)
}

func TestParseCgroupValue(t *testing.T) {
	tests := []struct {
		in      string
		v       uint64
		limited bool
		err     bool
	}{
		{in: "max\n"},
		{in: "536870912\n", v: 536870912, limited: true},
		{in: "9223372036854771712\n"}, // v1 "unlimited"
		{in: "lots\n", err: true},
	}
	for _, tt := range tests {
		v, limited, err := ParseCgroupValue([]byte(tt.in))
		if tt.err {
			assert.ErrorIs(t, err, ErrMalformed, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.v, v, tt.in)
		assert.Equal(t, tt.limited, limited, tt.in)
	}
}

func TestParsersDoNotAllocate(t *testing.T) {
	stat, io, netdev := fixture(t, "stat"), fixture(t, "io"), fixture(t, "net_dev")
	var (
		s Stat
		i IO
		n NetDev
	)
	allocs := testing.AllocsPerRun(100, func() {
		_ = ParseStat(stat, &s)
		_ = ParseIO(io, &i)
		_ = ParseNetDev(netdev, &n)
	})
	assert.Zero(t, allocs)
}

// BenchmarkParseSample parses what one full task sample reads: stat and io.
func BenchmarkParseSample(b *testing.B) {
	stat, io := fixture(b, "stat"), fixture(b, "io")
	var (
		s Stat
		i IO
	)
	b.ReportAllocs()
	for b.Loop() {
		if ParseStat(stat, &s) != nil || ParseIO(io, &i) != nil {
			b.Fatal("parse failed")
		}
	}
}

func TestCgroupV2Files(t *testing.T) {
	var c CgroupCPU
	require.NoError(t, ParseCgroupCPUStat([]byte("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n"), &c))
	assert.Equal(t, CgroupCPU{UserUsec: 1000000, SystemUsec: 500000}, c)
	assert.ErrorIs(t, ParseCgroupCPUStat([]byte("usage_usec 1\nuser_usec 1\n"), &c), ErrMalformed, "system_usec missing")
	assert.ErrorIs(t, ParseCgroupCPUStat([]byte("usage_usec 2\nuser_usec x\nsystem_usec 1\n"), &c), ErrMalformed)

	r, w, err := ParseCgroupIOStat([]byte("8:0 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n"))
	require.NoError(t, err)
	assert.Equal(t, uint64(1025), r)
	assert.Equal(t, uint64(2050), w)
	r, w, err = ParseCgroupIOStat(nil)
	require.NoError(t, err)
	assert.Zero(t, r+w)
	_, _, err = ParseCgroupIOStat([]byte("8:0 rbytes\n"))
	assert.ErrorIs(t, err, ErrMalformed)

	var pids []int32
	require.NoError(t, ParseCgroupProcs([]byte("12\n345\n"), func(p int32) { pids = append(pids, p) }))
	assert.Equal(t, []int32{12, 345}, pids)
	assert.ErrorIs(t, ParseCgroupProcs([]byte("12\nx\n"), func(int32) {}), ErrMalformed)
}
