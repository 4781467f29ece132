package monitor

import (
	"io/fs"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procevents"
)

// TestDelaysPresentWhereTheKernelProvidesThem: each delay is set, with its flag, only where
// the kernel provided it; otherwise it is absent, never a zero.
func TestDelaysPresentWhereTheKernelProvidesThem(t *testing.T) {
	t.Parallel()
	waited := procevents.Delays{CPU: 1500 * time.Millisecond, BlockIO: 250 * time.Millisecond, SwapIn: 0, MemoryReclaim: 20 * time.Millisecond}
	none := procevents.Delays{}
	type want struct{ cpu, others bool }
	tests := map[string]struct {
		d            procevents.Delays
		bound, ended delaySetting
		want         want
	}{
		"on throughout":                 {waited, delaysOn, delaysOn, want{true, true}},
		"on throughout, no wait at all": {none, delaysOn, delaysOn, want{true, true}},
		"off throughout: the CPU delay the kernel still counts":             {waited, delaysOff, delaysOff, want{true, false}},
		"off throughout, no CPU delay (a kernel that counts none when off)": {none, delaysOff, delaysOff, want{false, false}},
		"turned on after the task was bound":                                {waited, delaysOff, delaysOn, want{true, false}},
		"turned off before the end":                                         {waited, delaysOn, delaysOff, want{true, false}},
		"unreadable at the end":                                             {waited, delaysOn, delaysUnknown, want{true, false}},
		"unreadable at the end, no CPU delay":                               {none, delaysOn, delaysUnknown, want{false, false}},
		"unreadable at bind":                                                {waited, delaysUnknown, delaysOn, want{true, false}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var u Usage
			u.setDelays(tt.d, 0, tt.bound, tt.ended)
			assert.Equal(t, tt.want.cpu, u.HasCPUDelay, "CPU delay present")
			assert.Equal(t, tt.want.others, u.HasBlockIODelay, "block I/O delay present")
			assert.Equal(t, tt.want.others, u.HasSwapInDelay, "swap-in delay present")
			assert.Equal(t, tt.want.others, u.HasMemoryReclaimDelay, "reclaim delay present")
			if tt.want.cpu {
				assert.InDelta(t, tt.d.CPU.Seconds(), u.CPUDelay, 1e-12)
			} else {
				assert.Zero(t, u.CPUDelay)
			}
			if tt.want.others {
				assert.InDelta(t, tt.d.BlockIO.Seconds(), u.BlockIODelay, 1e-12)
				assert.InDelta(t, tt.d.SwapIn.Seconds(), u.SwapInDelay, 1e-12)
				assert.InDelta(t, tt.d.MemoryReclaim.Seconds(), u.MemoryReclaimDelay, 1e-12)
			} else {
				assert.Zero(t, u.BlockIODelay+u.SwapInDelay+u.MemoryReclaimDelay)
			}
		})
	}
}

// TestImpossibleDelaysLeftOut: a delay longer than the record's threads lived is no wait: it
// is left out of the report, counted and logged (once at warning), the other delays kept.
func TestImpossibleDelaysLeftOut(t *testing.T) {
	t.Parallel()
	x := ProcessExit{PID: 42, Elapsed: time.Second, Threads: 4, Delays: procevents.Delays{
		CPU: 3 * time.Second, BlockIO: 2268 * time.Second, SwapIn: 4 * time.Second, MemoryReclaim: -time.Nanosecond,
	}}
	d, bad := x.plausibleDelays()
	assert.Equal(t, delayBlockIO|delayMemoryReclaim, bad, "over 4 threads × 1 s, and negative")
	assert.Equal(t, procevents.Delays{CPU: 3 * time.Second, SwapIn: 4 * time.Second}, d)
	one := ProcessExit{Elapsed: time.Second, Delays: procevents.Delays{CPU: 1005 * time.Millisecond}}
	_, bad = one.plausibleDelays()
	assert.Zero(t, bad, "within the slack of the two clocks; no thread count is one thread")

	core, logs := observer.New(zap.DebugLevel)
	tel := &errorCount{}
	m := &Monitor{log: zap.New(core), tel: tel}
	tk := &task{}
	tk.spec.ID = "t1"
	var sum procevents.Delays
	var flags delayFlags
	m.checkDelays(tk, &x, &sum, &flags)
	child := ProcessExit{PID: 43, Elapsed: time.Second, Threads: 1, Delays: procevents.Delays{CPU: time.Second / 2, BlockIO: time.Second / 4}}
	m.checkDelays(tk, &child, &sum, &flags)
	m.checkDelays(tk, &x, &sum, &flags)
	assert.Equal(t, 2, tel.n, "each record with an impossible delay counted")
	assert.Equal(t, 1, logs.FilterLevelExact(zap.WarnLevel).Len(), "said once at warning")
	assert.Equal(t, 1, logs.FilterLevelExact(zap.DebugLevel).Len(), "then at debug")
	assert.Equal(t, []any{"blkio", "memory_reclaim"}, logs.FilterLevelExact(zap.WarnLevel).All()[0].ContextMap()["delays"])

	var u Usage
	u.setDelays(sum, flags, delaysOn, delaysOn)
	assert.True(t, u.HasCPUDelay)
	assert.InDelta(t, 6.5, u.CPUDelay, 1e-9, "the plausible ones summed over the records")
	assert.False(t, u.HasBlockIODelay, "impossible in one record: the sum is no figure")
	assert.True(t, u.HasSwapInDelay)
	assert.False(t, u.HasMemoryReclaimDelay)
}

// errorCount counts the sample errors a monitor reports.
type errorCount struct {
	noTelemetry
	n int
}

func (e *errorCount) SampleError(Kind) { e.n++ }

func TestAddDelays(t *testing.T) {
	t.Parallel()
	a := procevents.Delays{CPU: 1, BlockIO: 2, SwapIn: 3, MemoryReclaim: 4}
	b := procevents.Delays{CPU: 10, BlockIO: 20, SwapIn: 30, MemoryReclaim: 40}
	assert.Equal(t, procevents.Delays{CPU: 11, BlockIO: 22, SwapIn: 33, MemoryReclaim: 44}, addDelays(a, b))
}

// TestDelaySettingUnreadableLoggedOnce: a switch that cannot be read leaves the delays it
// governs out, and says so once, naming the cause.
func TestDelaySettingUnreadableLoggedOnce(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	tel := &errorCount{}
	reads := 0
	m := &Monitor{log: zap.New(core), tel: tel}
	m.hooks.delayAccounting = func(*Monitor) (bool, error) {
		reads++
		if reads <= 2 {
			return false, &fs.PathError{Op: "open", Path: "/proc/sys/kernel/task_delayacct", Err: fs.ErrPermission}
		}
		return true, nil
	}
	assert.Equal(t, delaysUnknown, m.delaySetting())
	assert.Equal(t, delaysUnknown, m.delaySetting())
	assert.Equal(t, delaysOn, m.delaySetting(), "read again each time: the switch can change")
	assert.Equal(t, 2, tel.n, "each failed read counted")
	entries := logs.FilterMessageSnippet("kernel.task_delayacct").All()
	if assert.Len(t, entries, 1, "logged once") {
		assert.Equal(t, zap.WarnLevel, entries[0].Level)
		assert.Contains(t, entries[0].ContextMap()["error"], "permission denied")
	}

	// A kernel without the switch is no failure: said once at info, not counted.
	core, logs = observer.New(zap.InfoLevel)
	tel = &errorCount{}
	m = &Monitor{log: zap.New(core), tel: tel}
	m.hooks.delayAccounting = func(*Monitor) (bool, error) {
		return false, &fs.PathError{Op: "open", Path: "/proc/sys/kernel/task_delayacct", Err: fs.ErrNotExist}
	}
	assert.Equal(t, delaysUnknown, m.delaySetting())
	assert.Equal(t, delaysUnknown, m.delaySetting())
	assert.Zero(t, tel.n)
	if entries := logs.All(); assert.Len(t, entries, 1) {
		assert.Equal(t, zap.InfoLevel, entries[0].Level)
	}
}
