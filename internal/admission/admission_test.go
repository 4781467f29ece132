package admission

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

func ptr[T any](v T) *T { return &v }

func testPolicy(t *testing.T) Policy {
	t.Helper()
	p, notes, err := NewPolicy(map[string]profile.Overrides{
		"fast": {Interval: ptr(time.Second)},
		"huge": {HistorySize: ptr(50_000)},
	}, profile.Standard, profile.LongRunningDaemon)
	require.NoError(t, err)
	assert.Equal(t, []string{"profiles.huge.history_size: 50000 lowered to 10000, the most kept in memory per task"}, notes)
	return p
}

func builtin(name string) profile.Profile {
	p, _ := profile.Builtin(name)
	return p
}

func TestAdmitResolvesProfiles(t *testing.T) {
	policy := testPolicy(t)
	standard, daemon := builtin(profile.Standard), builtin(profile.LongRunningDaemon)
	tests := []struct {
		name     string
		req      Request
		wantName string
		want     profile.Profile
		notes    int
	}{
		{"no profile", Request{ID: "t", PID: 1}, profile.Standard, standard, 0},
		{"daemon without a profile", Request{ID: "t", PID: 1, Daemon: true}, profile.LongRunningDaemon, daemon, 0},
		{"daemon with a named profile", Request{ID: "t", PID: 1, Daemon: true, Profile: "fast"}, "fast", policy.Profiles["fast"], 0},
		{"inline over the default", Request{ID: "t", PID: 1, MonitoringProfile: &profile.Overrides{Interval: ptr(5 * time.Second)}},
			profile.Inline, func() profile.Profile { p := standard; p.Interval = 5 * time.Second; return p }(), 0},
		{"inline over the daemon profile", Request{ID: "t", PID: 1, Daemon: true, MonitoringProfile: &profile.Overrides{CollectCPU: ptr(false)}},
			profile.Inline, func() profile.Profile { p := daemon; p.CollectCPU = false; return p }(), 0},
		{"inline history capped after validation", Request{ID: "t", PID: 1, MonitoringProfile: &profile.Overrides{HistorySize: ptr(20_000)}},
			profile.Inline, func() profile.Profile { p := standard; p.HistorySize = profile.MaxHistorySize; return p }(), 1},
		{"custom profile capped once, in the policy", Request{ID: "t", PID: 1, Profile: "huge"},
			"huge", func() profile.Profile { p := standard; p.HistorySize = profile.MaxHistorySize; return p }(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, notes, err := policy.Admit(tt.req)
			require.NoError(t, err)
			assert.Equal(t, tt.wantName, spec.ProfileName)
			assert.Equal(t, tt.want, spec.Profile)
			assert.Len(t, notes, tt.notes)
			assert.Equal(t, tt.req.Daemon, spec.Daemon)
		})
	}
}

func TestAdmitRefusesNamingFieldAndValue(t *testing.T) {
	policy := testPolicy(t)
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"no id", Request{PID: 1}, "id: must be set"},
		{"blank id", Request{ID: "  ", PID: 1}, "id: may hold only"},
		{"long id", Request{ID: strings.Repeat("a", MaxIDLength+1), PID: 1}, "id: 37 bytes long, at most 36"},
		{"NUL in the id", Request{ID: "a\x00b", PID: 1}, `id: may hold only A-Z, a-z, 0-9, '.', '_' and '-', got "a\x00b"`},
		{"noncharacter in the id", Request{ID: "a\uFFFF", PID: 1}, "id: may hold only"},
		{"slash in the id", Request{ID: "a/b", PID: 1}, "id: may hold only"},
		{"dot-dot id", Request{ID: "..", PID: 1}, `id: must not be ".."`},
		{"control character in the name", Request{ID: "t", Name: "a\x01", PID: 1}, "name: must not contain U+0001"},
		{"noncharacter in the name", Request{ID: "t", Name: "a\uFDD0", PID: 1}, "name: must not contain U+FDD0"},
		{"invalid UTF-8 name", Request{ID: "t", Name: "\xff", PID: 1}, "name: must be UTF-8"},
		{"long name", Request{ID: "t", Name: strings.Repeat("n", MaxNameLength+1), PID: 1}, "name: 257 bytes long"},
		{"nothing to find it by", Request{ID: "t"}, "one of pid, pid_file, match, in_process or cgroup is required to find the task"},
		{"two ways", Request{ID: "t", PID: 1, PIDFile: "/p"}, "set only one of pid, pid_file, match and in_process"},
		{"negative pid", Request{ID: "t", PID: -4}, "pid: must be positive, got -4"},
		{"bad regular expression", Request{ID: "t", Match: &procmatch.Spec{Cmdline: "("}}, `match.cmdline: invalid regular expression "("`},
		{"empty match", Request{ID: "t", Match: &procmatch.Spec{}}, "match: at least one of executable"},
		{"cgroup escape", Request{ID: "t", Cgroup: "propeller/../../memory"}, `cgroup: must not contain a '..' element, got "propeller/../../memory"`},
		{"cgroup of an in-process task", Request{ID: "t", InProcess: true, Cgroup: "x"}, "cgroup: an in_process task runs inside the proplet"},
		{"unknown profile", Request{ID: "t", PID: 1, Profile: "nope"}, `profile: unknown profile "nope" (known: batch_processing, disabled, fast, huge, intensive, long_running_daemon, minimal, realtime_api, standard)`},
		{"both profiles", Request{ID: "t", PID: 1, Profile: "fast", MonitoringProfile: &profile.Overrides{}}, "set either profile or monitoring_profile, not both"},
		{"inline interval too short", Request{ID: "t", PID: 1, MonitoringProfile: &profile.Overrides{Interval: ptr(50 * time.Millisecond)}},
			"monitoring_profile.interval: must be at least 100ms, got 50ms"},
		{"inline negative history", Request{ID: "t", PID: 1, MonitoringProfile: &profile.Overrides{HistorySize: ptr(-1)}},
			"monitoring_profile.history_size: must not be negative, got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := policy.Admit(tt.req)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			for _, e := range Errors(err) {
				var fe *FieldError
				assert.ErrorAs(t, e, &fe, "every admission error is a FieldError")
			}
		})
	}
}

func TestAdmitJoinsEveryError(t *testing.T) {
	_, _, err := testPolicy(t).Admit(Request{ID: "t", PID: -1, Profile: "nope"})
	require.Error(t, err)
	assert.Equal(t, "pid: must be positive, got -1\nprofile: unknown profile \"nope\" (known: batch_processing, disabled, fast, huge, intensive, long_running_daemon, minimal, realtime_api, standard)", err.Error())

	// A refused id or name stops admission: rules may be built from them.
	_, _, err = testPolicy(t).Admit(Request{Name: "\x00", Match: &procmatch.Spec{Cmdline: "("}})
	assert.Equal(t, "id: must be set\nname: must not contain U+0000, got \"\\x00\"", err.Error())
}

func TestAdmitKeepsTheLocator(t *testing.T) {
	policy := testPolicy(t)
	spec, _, err := policy.Admit(Request{ID: "t", Name: "n", Match: &procmatch.Spec{Cmdline: "x"}, Cgroup: "tasks/t", IncludeChildren: true})
	require.NoError(t, err)
	require.NotNil(t, spec.Locator.Match)
	assert.Equal(t, procmatch.Spec{Cmdline: "x"}, spec.Locator.Match.Spec())
	assert.True(t, spec.Locator.Rebinds())
	assert.Equal(t, "tasks/t", spec.Cgroup)
	assert.True(t, spec.IncludeChildren)

	spec, _, err = policy.Admit(Request{ID: "t", InProcess: true})
	require.NoError(t, err)
	assert.True(t, spec.Locator.InProcess)
	assert.False(t, spec.Locator.Rebinds())
}

func TestNewPolicyRefusesNamingTheKey(t *testing.T) {
	_, _, err := NewPolicy(map[string]profile.Overrides{"broken": {Interval: ptr(time.Duration(0)), HistorySize: ptr(-1)}}, "nope", "")
	require.Error(t, err)
	assert.Equal(t, `profiles.broken.interval: must be at least 100ms, got 0s
profiles.broken.history_size: must not be negative, got -1
default_profile: unknown profile "nope" (known: batch_processing, broken, disabled, intensive, long_running_daemon, minimal, realtime_api, standard)
daemon_profile: unknown profile "" (known: batch_processing, broken, disabled, intensive, long_running_daemon, minimal, realtime_api, standard)`, err.Error())
}

func TestUnderPrefixesEveryLine(t *testing.T) {
	_, _, err := testPolicy(t).Admit(Request{ID: "t"})
	assert.Equal(t, "tasks[3]: one of pid, pid_file, match, in_process or cgroup is required to find the task", Under("tasks[3]", err).Error())
	_, _, err = testPolicy(t).Admit(Request{ID: "t", PID: -1})
	assert.Equal(t, "tasks[3].pid: must be positive, got -1", Under("tasks[3]", err).Error())
	assert.NoError(t, Under("x", nil))
}

func TestQuoteShortensLongValues(t *testing.T) {
	assert.Equal(t, `"abc"`, Quote("abc"))
	long := Quote(strings.Repeat("é", 100))
	assert.Contains(t, long, "... (200 bytes)")
	assert.Less(t, len(long), 120)
}

func TestReason(t *testing.T) {
	policy := testPolicy(t)
	for req, want := range map[*Request]string{
		{PID: 1}:                        "id",
		{ID: "t"}:                       "locator",
		{ID: "t", PID: 1, Profile: "x"}: "profile",
		{ID: "t", Match: &procmatch.Spec{Cmdline: "("}}:                                           "match",
		{ID: "t", PID: 1, MonitoringProfile: &profile.Overrides{Interval: ptr(time.Millisecond)}}: "monitoring_profile",
		{ID: "t", PID: 1, Profile: "fast", MonitoringProfile: &profile.Overrides{}}:               "profile",
	} {
		_, _, err := policy.Admit(*req)
		assert.Equal(t, want, Reason(err), "%+v", *req)
	}
	assert.Equal(t, "malformed", Reason(errors.New("invalid JSON body")))
	for err, want := range map[error]string{ErrTooManyTasks: "too_many_tasks", ErrTooManyPending: "too_many_pending", ErrDuplicate: "duplicate"} {
		assert.Equal(t, want, Reason(fmt.Errorf("task t: %w", err)))
	}
}

func TestRefusalsAreCountedAndLoggedOncePerReasonPerMinute(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	counted := map[string]int{}
	now := time.Unix(1000, 0)
	r := NewRefusals("propeller", zap.New(core), func(reason string) { counted[reason]++ })
	r.log.WithClock(func() time.Time { return now })
	for range 1000 {
		r.Refuse("id", errors.New("bad id"))
	}
	r.Refuse("monitoring_profile", errors.New("bad profile"))
	assert.Equal(t, map[string]int{"id": 1000, "monitoring_profile": 1}, counted)
	assert.Equal(t, 2, logs.Len(), "one line per reason")

	now = now.Add(time.Minute)
	r.Refuse("id", errors.New("bad id"))
	last := logs.All()[logs.Len()-1]
	assert.Equal(t, int64(1000), last.ContextMap()["refused_since_last_logged"], "999 not logged, and this one")
}
