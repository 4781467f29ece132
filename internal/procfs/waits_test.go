package procfs

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Schedstat
		wantErr bool
	}{
		{name: "fixture", in: string(fixture(t, "schedstat")), want: Schedstat{RunNanos: 7819184, WaitNanos: 71441026, Timeslices: 4}},
		{name: "no newline", in: "1 2 3", want: Schedstat{RunNanos: 1, WaitNanos: 2, Timeslices: 3}},
		{name: "two fields", in: "1 2\n", wantErr: true},
		{name: "four fields", in: "1 2 3 4\n", wantErr: true},
		{name: "not a number", in: "1 x 3\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Schedstat
			err := ParseSchedstat([]byte(tt.in), &s)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, s)
		})
	}
}

func TestParsePressure(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Pressure
		wantErr bool
	}{
		{name: "some and full", in: string(fixture(t, "memory_pressure")), want: Pressure{SomeMicros: 61200, FullMicros: 986, HasFull: true}},
		{name: "cpu before 5.13: some only", in: "some avg10=1.50 avg60=0.20 avg300=0.05 total=4242\n", want: Pressure{SomeMicros: 4242}},
		{name: "a later kernel's line and key", in: "some avg10=0.00 total=5 extra=1\nfull total=6\nmore total=7\n", want: Pressure{SomeMicros: 5, FullMicros: 6, HasFull: true}},
		{name: "no some line", in: "full avg10=0.00 total=6\n", wantErr: true},
		{name: "no total", in: "some avg10=0.00 avg60=0.00\n", wantErr: true},
		{name: "bad total", in: "some total=-1\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Pressure
			err := ParsePressure([]byte(tt.in), &p)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, p)
		})
	}
}

func TestParseThrottling(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Throttling
		err  error
	}{
		{name: "v2 with a quota", in: string(fixture(t, "cpu_stat_v2_quota")), want: Throttling{Periods: 120, Throttled: 37, ThrottledMicros: 2211000}},
		{name: "v1 cpu controller, nanoseconds", in: string(fixture(t, "cpu_stat_v1")), want: Throttling{Periods: 120, Throttled: 37, ThrottledMicros: 2211000}},
		{name: "v2 without the cpu controller", in: "usage_usec 10\nuser_usec 6\nsystem_usec 4\n", err: ErrAbsent},
		{name: "half the counters", in: "nr_periods 3\nnr_throttled 1\n", err: ErrMalformed},
		{name: "not a number", in: "nr_periods x\nnr_throttled 1\nthrottled_usec 2\n", err: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var th Throttling
			err := ParseThrottling([]byte(tt.in), &th)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, th)
		})
	}
}

func TestStatBlkioTicks(t *testing.T) {
	// The fixture's field 42 is 0 (delay accounting off); the same line with 77 there.
	b := fixture(t, "stat")
	v, err := StatBlkioTicks(b)
	require.NoError(t, err)
	assert.Zero(t, v)

	f := bytes.Fields(b)
	f[41] = []byte("77")
	v, err = StatBlkioTicks(bytes.Join(f, []byte(" ")))
	require.NoError(t, err)
	assert.Equal(t, uint64(77), v)

	_, err = StatBlkioTicks(b[:bytes.Index(b, []byte(" 17 1 "))])
	require.ErrorIs(t, err, ErrMalformed)
}

// The live files of this process: the kernel's own format, whatever the fixtures say.
func TestWaitFilesOfThisProcess(t *testing.T) {
	b, err := os.ReadFile("/proc/self/schedstat")
	if err != nil {
		t.Skipf("no schedstat here: %v", err)
	}
	var s Schedstat
	require.NoError(t, ParseSchedstat(b, &s), "%q", b)
	assert.NotZero(t, s.RunNanos)

	b, err = os.ReadFile("/proc/self/stat")
	require.NoError(t, err)
	_, err = StatBlkioTicks(b)
	require.NoError(t, err)

	for _, name := range []string{"cpu", "memory", "io"} {
		b, err := os.ReadFile("/proc/pressure/" + name)
		if err != nil {
			continue // PSI off (psi=0) or a kernel before 4.20
		}
		var p Pressure
		require.NoError(t, ParsePressure(b, &p), "%s: %q", name, b)
	}
}

func FuzzParseWaits(f *testing.F) {
	f.Add(fixture(f, "schedstat"))
	f.Add(fixture(f, "memory_pressure"))
	f.Add(fixture(f, "cpu_stat_v1"))
	f.Add(fixture(f, "cpu_stat_v2_quota"))
	f.Add(fixture(f, "stat"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Schedstat
		_ = ParseSchedstat(b, &s)
		var p Pressure
		if ParsePressure(b, &p) == nil && !bytes.Contains(b, []byte("some")) {
			t.Fatalf("parsed pressure without a some line: %q", b)
		}
		var th Throttling
		_ = ParseThrottling(b, &th)
		_, _ = StatBlkioTicks(b)
	})
}
