package profile

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuiltins(t *testing.T) {
	for _, name := range []string{"batch_processing", "disabled", "intensive", "long_running_daemon", "minimal", "realtime_api", "standard"} {
		_, ok := Builtin(name)
		assert.True(t, ok, name)
	}
	assert.Len(t, builtins, 7)
	tests := []struct {
		name     string
		interval time.Duration
		history  int
		export   bool
		enabled  bool
		disk     bool
		net      bool
		waits    bool
	}{
		{"standard", 10 * time.Second, 100, true, true, true, true, true},
		{"long_running_daemon", 120 * time.Second, 500, true, true, true, true, true},
		{"intensive", time.Second, 1000, true, true, true, true, true},
		{"realtime_api", 5 * time.Second, 500, true, true, false, true, true},
		{"batch_processing", 30 * time.Second, 200, true, true, true, false, true},
		{"minimal", 60 * time.Second, 0, false, true, false, false, false},
		{"disabled", 60 * time.Second, 0, false, false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := Builtin(tt.name)
			require.True(t, ok)
			assert.Equal(t, tt.interval, p.Interval)
			assert.Equal(t, tt.history, p.HistorySize)
			assert.Equal(t, tt.history > 0, p.RetainHistory)
			assert.Equal(t, tt.export, p.ExportToMQTT)
			assert.Equal(t, tt.enabled, p.Enabled)
			assert.Equal(t, tt.disk, p.CollectDiskIO)
			assert.Equal(t, tt.net, p.CollectNetworkIO)
			assert.Equal(t, tt.waits, p.CollectWaits)
			assert.NoError(t, p.Validate())
		})
	}
	assert.Equal(t, "long_running_daemon", Default(true))
	assert.Equal(t, "standard", Default(false))
}

func TestOverridesInheritStandard(t *testing.T) {
	interval, history, no := time.Second, 20, false
	set := NewSet(map[string]Overrides{"fast": {Interval: &interval, HistorySize: &history, CollectDiskIO: &no}, "quiet": {CollectWaits: &no}})
	want := builtins[Standard]
	want.Interval, want.HistorySize, want.CollectDiskIO = time.Second, 20, false
	assert.Equal(t, want, set["fast"])
	assert.True(t, set["fast"].CollectWaits, "collect_waits unset: standard's, on")
	want = builtins[Standard]
	want.CollectWaits = false
	assert.Equal(t, want, set["quiet"])
	assert.Equal(t, builtins["intensive"], set["intensive"])
}

func TestValidate(t *testing.T) {
	p := builtins[Standard]
	p.Interval = 0
	p.HistorySize = -1
	err := p.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "interval: must be at least 100ms, got 0s")
	assert.Contains(t, err.Error(), "history_size: must not be negative, got -1")

	p = builtins[Standard]
	p.HistorySize = 1 << 30
	capped, lowered := p.Capped()
	assert.True(t, lowered)
	assert.Equal(t, MaxHistorySize, capped.HistorySize)
}

// TestBareNumberIntervals: the Collector's configuration reads `interval: 10` as 10
// nanoseconds; the error says so and what to write instead.
func TestBareNumberIntervals(t *testing.T) {
	tests := map[string]struct {
		interval time.Duration
		want     string // "" when valid
	}{
		"bare 10":       {10, "interval: must be at least 100ms, got 10ns (a number without a unit is nanoseconds: write 10s)"},
		"bare 1":        {1, "interval: must be at least 100ms, got 1ns (a number without a unit is nanoseconds: write 1s)"},
		"bare 999":      {999, "got 999ns (a number without a unit is nanoseconds: write 999s)"},
		"bare 5000":     {5000, "got 5µs (a number without a unit is nanoseconds: write the unit, as in 10s or 500ms)"},
		"zero":          {0, "interval: must be at least 100ms, got 0s"},
		"50ms":          {50 * time.Millisecond, "interval: must be at least 100ms, got 50ms"},
		"negative":      {-time.Second, "interval: must be at least 100ms, got -1s"},
		"minimum":       {MinInterval, ""},
		"written as 1s": {time.Second, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p := builtins[Standard]
			p.Interval, p.MemoryWarning = tt.interval, 0
			err := p.Validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			if tt.interval >= time.Millisecond || tt.interval <= 0 {
				assert.NotContains(t, err.Error(), "without a unit", "only a value that looks like a bare number gets the hint")
			}
		})
	}
	assert.Empty(t, UnitHint(time.Millisecond))
	assert.Empty(t, UnitHint(0))
}

func TestMemoryWarningDefaults(t *testing.T) {
	for name, p := range builtins {
		assert.Equal(t, DefaultMemoryWarning, p.MemoryWarning, name)
		assert.Equal(t, time.Second, p.MemoryWarningInterval, name, "every built-in samples at 1s or slower")
		assert.Zero(t, p.MemoryLimit, name, "the cgroup's limit")
	}

	// A custom profile that only shortens its interval stays valid: the inherited warning
	// interval follows it.
	fast := 500 * time.Millisecond
	p := Overrides{Interval: &fast}.Apply(builtins[Standard])
	assert.Equal(t, fast, p.MemoryWarningInterval)
	require.NoError(t, p.Validate())

	// Set keys win, and a longer interval keeps the inherited warning interval.
	limit, share, every, slow := Bytes(64<<20), 0.8, 2*time.Second, time.Minute
	p = Overrides{Interval: &slow, MemoryLimit: &limit, MemoryWarning: &share}.Apply(builtins[Standard])
	assert.Equal(t, uint64(64<<20), p.MemoryLimit)
	assert.Equal(t, 0.8, p.MemoryWarning)
	assert.Equal(t, time.Second, p.MemoryWarningInterval)
	p = Overrides{MemoryWarningInterval: &every}.Apply(p)
	assert.Equal(t, every, p.MemoryWarningInterval)
	require.NoError(t, p.Validate())
}

func TestMemoryWarningValidate(t *testing.T) {
	tests := map[string]struct {
		share float64
		every time.Duration
		want  string // "" when valid
	}{
		"default":            {0.9, time.Second, ""},
		"off":                {0, 0, ""},
		"off, any interval":  {0, time.Hour, ""},
		"one":                {1, time.Second, "memory_warning: must be a share of the memory limit, at least 0 (off) and below 1 (0.9 is 90%), got 1"},
		"percent":            {90, time.Second, "memory_warning: must be a share of the memory limit, at least 0 (off) and below 1 (0.9 is 90%), got 90"},
		"negative":           {-0.1, time.Second, "got -0.1"},
		"NaN":                {math.NaN(), time.Second, "got NaN"},
		"interval zero":      {0.9, 0, "memory_warning_interval: must be at least 100ms, got 0s"},
		"interval bare":      {0.9, 1, "memory_warning_interval: must be at least 100ms, got 1ns (a number without a unit is nanoseconds: write 1s)"},
		"interval too short": {0.9, 50 * time.Millisecond, "memory_warning_interval: must be at least 100ms, got 50ms"},
		"above interval":     {0.9, 20 * time.Second, "memory_warning_interval: must be at most interval (10s), got 20s"},
		"equal to interval":  {0.9, 10 * time.Second, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p := builtins[Standard]
			p.MemoryWarning, p.MemoryWarningInterval = tt.share, tt.every
			err := p.Validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestBytes(t *testing.T) {
	var b Bytes
	require.NoError(t, b.UnmarshalText([]byte("67108864")))
	assert.Equal(t, Bytes(64<<20), b)
	for _, in := range []string{"64MiB", "-1", "1.5", ""} {
		err := b.UnmarshalText([]byte(in))
		require.Error(t, err, in)
		assert.Equal(t, `must be a whole number of bytes (67108864 for 64 MiB), got "`+in+`"`, err.Error())
	}
}
