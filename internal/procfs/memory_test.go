package procfs

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseMemoryEvents(t *testing.T) {
	var e MemoryEvents
	require.NoError(t, ParseMemoryEvents(fixture(t, "memory_events"), &e))
	assert.Equal(t, MemoryEvents{High: 4, Max: 12, OOM: 2, OOMKill: 1}, e)

	tests := []struct {
		name string
		in   string
		want MemoryEvents
		err  bool
	}{
		{name: "before oom_group_kill", in: "low 0\nhigh 0\nmax 3\noom 3\noom_kill 3\n", want: MemoryEvents{Max: 3, OOM: 3, OOMKill: 3}},
		{name: "unknown key", in: "oom_kill 1\nsock_throttled 5\n", want: MemoryEvents{OOMKill: 1}},
		{name: "no oom_kill", in: "low 0\nhigh 0\nmax 0\noom 0\n", err: true},
		{name: "not a number", in: "oom_kill x\n", err: true},
		{name: "no value", in: "oom_kill\n", err: true},
		{name: "empty", in: "", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e MemoryEvents
			err := ParseMemoryEvents([]byte(tt.in), &e)
			if tt.err {
				assert.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, e)
		})
	}
}

func TestParseMemoryOOMControl(t *testing.T) {
	var c MemoryOOMControl
	require.NoError(t, ParseMemoryOOMControl(fixture(t, "memory_oom_control"), &c))
	assert.Equal(t, MemoryOOMControl{OOMKill: 2}, c)

	tests := []struct {
		name string
		in   string
		want MemoryOOMControl
		err  bool
	}{
		{name: "killer off, at the limit", in: "oom_kill_disable 1\nunder_oom 1\noom_kill 0\n", want: MemoryOOMControl{OOMKillDisable: true, UnderOOM: true}},
		{name: "before 4.13", in: "oom_kill_disable 0\nunder_oom 0\n", err: true},
		{name: "not a number", in: "oom_kill_disable 0\nunder_oom 0\noom_kill -1\n", err: true},
		{name: "empty", in: "", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c MemoryOOMControl
			err := ParseMemoryOOMControl([]byte(tt.in), &c)
			if tt.err {
				assert.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, c)
		})
	}
}

func TestMemoryParsersDoNotAllocate(t *testing.T) {
	events, oom := fixture(t, "memory_events"), fixture(t, "memory_oom_control")
	var (
		e MemoryEvents
		c MemoryOOMControl
	)
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		_ = ParseMemoryEvents(events, &e)
		_ = ParseMemoryOOMControl(oom, &c)
	}))
}

func FuzzParseMemoryEvents(f *testing.F) {
	f.Add(fixture(f, "memory_events"))
	f.Add(fixture(f, "memory_oom_control"))
	f.Fuzz(func(_ *testing.T, b []byte) {
		var e MemoryEvents
		_ = ParseMemoryEvents(b, &e)
		var c MemoryOOMControl
		_ = ParseMemoryOOMControl(b, &c)
	})
}
