// Package procmatch decides which processes are tasks: rules over a process's executable
// name, command line, owner and parent, with named captures (task_id, task_name) that turn a
// matching process into a Propeller task.
package procmatch // import "github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

// Capture group names that carry task fields.
const (
	CaptureTaskID   = "task_id"
	CaptureTaskName = "task_name"
)

// Spec is a match rule as users write it. Every set condition must hold.
type Spec struct {
	// Executable is a regular expression over the executable's base name.
	Executable string `mapstructure:"executable" json:"executable,omitempty"`
	// Cmdline is a regular expression over the full command line (arguments joined by spaces).
	Cmdline string `mapstructure:"cmdline" json:"cmdline,omitempty"`
	// Environ is a regular expression over each of the process's environment entries
	// ("KEY=value"); it holds when one entry matches. Reading another user's environment needs
	// privileges.
	Environ string `mapstructure:"environ" json:"environ,omitempty"`
	// Owner is a user name or a numeric uid, or several separated by commas (root,1000): the
	// process must run as one of them, really and effectively.
	Owner string `mapstructure:"owner" json:"owner,omitempty"`
	// ParentPID requires this parent pid.
	ParentPID int32 `mapstructure:"parent_pid" json:"parent_pid,omitempty"`
	// ParentPIDFile requires the parent whose pid is in this file.
	ParentPIDFile string `mapstructure:"parent_pid_file" json:"parent_pid_file,omitempty"`
	// Parent requires a parent that matches this nested rule.
	Parent *Spec `mapstructure:"parent" json:"parent,omitempty"`
	// Proplet requires the process to be the proplet the collector has bound, and, used as a
	// Parent rule, a child with the proplet's owner. The collector sets it on the parent rule
	// of a started task, so a task is only ever a child of the proplet it samples, run by the
	// same user; users cannot set it.
	Proplet bool `mapstructure:"-" json:"proplet,omitempty"`
}

// String shows the rule as users write it, for logs: for example
// `cmdline=~"proplet_t\.1" parent_pid_file=/run/proplet.pid`.
func (s Spec) String() string {
	var parts []string
	re := func(key, v string) {
		if v != "" {
			parts = append(parts, fmt.Sprintf("%s=~%q", key, v))
		}
	}
	re("executable", s.Executable)
	re("cmdline", s.Cmdline)
	re("environ", s.Environ)
	if s.Owner != "" {
		parts = append(parts, "owner="+s.Owner)
	}
	if s.ParentPID != 0 {
		parts = append(parts, fmt.Sprintf("parent_pid=%d", s.ParentPID))
	}
	if s.ParentPIDFile != "" {
		parts = append(parts, "parent_pid_file="+s.ParentPIDFile)
	}
	if s.Parent != nil {
		parts = append(parts, "parent={"+s.Parent.String()+"}")
	}
	if s.Proplet {
		parts = append(parts, "the bound proplet")
	}
	return strings.Join(parts, " ")
}

// IsZero reports whether the rule has no condition at all.
func (s Spec) IsZero() bool {
	return s.Executable == "" && s.Cmdline == "" && s.Environ == "" && s.Owner == "" && s.ParentPID == 0 && s.ParentPIDFile == "" && s.Parent == nil && !s.Proplet
}

// Matcher is a compiled Spec.
type Matcher struct {
	spec          Spec
	exe, cmd, env *regexp.Regexp
	uids          []int64 // nil: any owner
	parentPID     int32
	parentPIDFile string
	parent        *Matcher
	proplet       bool
	key           string
}

// Compile checks and compiles a rule. Errors name the key and the value.
func Compile(s Spec) (*Matcher, error) {
	if s.IsZero() {
		return nil, errors.New("at least one of executable, cmdline, environ, owner, parent_pid, parent_pid_file or parent is required")
	}
	m := &Matcher{spec: s, parentPID: s.ParentPID, parentPIDFile: s.ParentPIDFile, proplet: s.Proplet}
	var errs []error
	var err error
	if s.Executable != "" {
		if m.exe, err = regexp.Compile(s.Executable); err != nil {
			errs = append(errs, fmt.Errorf("executable: invalid regular expression %q: %w", s.Executable, err))
		}
	}
	if s.Cmdline != "" {
		if m.cmd, err = regexp.Compile(s.Cmdline); err != nil {
			errs = append(errs, fmt.Errorf("cmdline: invalid regular expression %q: %w", s.Cmdline, err))
		}
	}
	if s.Environ != "" {
		if m.env, err = regexp.Compile(s.Environ); err != nil {
			errs = append(errs, fmt.Errorf("environ: invalid regular expression %q: %w", s.Environ, err))
		}
	}
	if s.Owner != "" {
		for _, o := range strings.Split(s.Owner, ",") {
			uid, err := resolveOwner(strings.TrimSpace(o))
			if err != nil {
				errs = append(errs, fmt.Errorf("owner: %w", err))
				continue
			}
			m.uids = append(m.uids, uid)
		}
	}
	if s.ParentPID < 0 {
		errs = append(errs, fmt.Errorf("parent_pid: must be positive, got %d", s.ParentPID))
	}
	if s.Parent != nil {
		if m.parent, err = Compile(*s.Parent); err != nil {
			errs = append(errs, fmt.Errorf("parent: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	key, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	m.key = string(key)
	return m, nil
}

func resolveOwner(owner string) (int64, error) {
	if uid, err := strconv.ParseUint(owner, 10, 32); err == nil {
		return int64(uid), nil
	}
	u, err := user.Lookup(owner)
	if err != nil {
		return -1, fmt.Errorf("unknown user %q", owner)
	}
	uid, err := strconv.ParseInt(u.Uid, 10, 64)
	if err != nil {
		return -1, fmt.Errorf("user %q has a non-numeric uid %q", owner, u.Uid)
	}
	return uid, nil
}

// Spec returns the rule the matcher was compiled from, to show what a task looks for.
func (m *Matcher) Spec() Spec { return m.spec }

// CapturesTask reports whether the rule has a task_id capture group.
func (m *Matcher) CapturesTask() bool {
	has := func(re *regexp.Regexp) bool { return re != nil && re.SubexpIndex(CaptureTaskID) >= 0 }
	return has(m.exe) || has(m.cmd) || has(m.env)
}

// Table is what matching needs to know about the processes of the host.
type Table interface {
	// Entry returns the entry of a pid.
	Entry(pid int32) (process.Entry, bool)
	// Details returns the slower fields of a process, read once and cached.
	Details(e process.Entry) (process.Details, bool)
	// Environ returns a process's environment entries, read only for rules that need them.
	Environ(e process.Entry) ([]string, bool)
	// PIDFile returns the pid a pid file holds, as ReadPIDFile reads it. A table that serves a
	// whole discovery pass reads each file once per pass, however many rules and processes
	// ask: a parent_pid_file shared by thousands of pending tasks costs one read.
	PIDFile(path string) (int32, bool)
	// Proplet returns the proplet process the collector has bound, for rules with Proplet set;
	// false while none is.
	Proplet() (process.ID, bool)
}

// Captures are the task fields a match produced.
type Captures struct {
	TaskID   string
	TaskName string
}

// Match reports whether e matches, with the captured task fields.
func (m *Matcher) Match(e process.Entry, t Table) (Captures, bool) {
	c, v := m.Check(e, t)
	return c, v == Matched
}

// Verdict says whether a process matches a rule and, when everything but the conditions that
// say whom the process belongs to holds, which of those failed: such a process looks like the
// one the rule is for, and is worth a warning.
type Verdict uint8

// The verdicts of Check.
const (
	NoMatch      Verdict = iota // a condition on the process's name, command line, environment or parent fails
	Matched                     // every condition holds
	WrongOwner                  // the rule holds but for the owner (real and effective uid)
	NotProplet                  // the rule holds but the process (or its parent) is not the bound proplet
	StartedEarly                // the rule holds but the process was running beside the task's previous one (StartedAfter)
)

// String names the verdict for logs and counters.
func (v Verdict) String() string {
	switch v {
	case Matched:
		return "matched"
	case WrongOwner:
		return "wrong_owner"
	case NotProplet:
		return "not_the_proplet"
	case StartedEarly:
		return "started_before_the_task"
	}
	return "no_match"
}

// Check is Match with the verdict (never StartedEarly: the caller knows the task's history). The conditions on names, command line, environment and
// parent are tested first, so a verdict other than NoMatch and Matched is only given for a
// process that would match but for whom it belongs to or when it started.
func (m *Matcher) Check(e process.Entry, t Table) (Captures, Verdict) {
	var c Captures
	if pid, fixed := m.FixedParent(t); fixed && (pid == 0 || e.PPID != pid) {
		return c, NoMatch
	}
	var pv Verdict = Matched
	var pe process.Entry
	if m.parent != nil {
		var ok bool
		if pe, ok = t.Entry(e.PPID); !ok {
			return c, NoMatch
		}
		if _, pv = m.parent.Check(pe, t); pv == NoMatch {
			return c, NoMatch
		}
	}
	var d process.Details
	if m.exe != nil || m.cmd != nil || m.env != nil || m.uids != nil || m.proplet || (m.parent != nil && m.parent.proplet) {
		var ok bool
		if d, ok = t.Details(e); !ok {
			return c, NoMatch
		}
	}
	if m.exe != nil && !capture(m.exe, d.Executable, &c) {
		return c, NoMatch
	}
	if m.cmd != nil && !capture(m.cmd, d.Cmdline, &c) {
		return c, NoMatch
	}
	if m.env != nil && !m.matchEnviron(e, t, &c) {
		return c, NoMatch
	}
	switch {
	case pv != Matched:
		// The parent looks like the proplet but is not ours: this process is not our task.
		return c, NotProplet
	case m.uids != nil && !slices.ContainsFunc(m.uids, d.Owner.Is):
		return c, WrongOwner
	case m.proplet && !isProplet(e, t):
		return c, NotProplet
	case m.parent != nil && m.parent.proplet && !sameOwner(d, pe, t):
		return c, WrongOwner
	}
	return c, Matched
}

func (m *Matcher) matchEnviron(e process.Entry, t Table, c *Captures) bool {
	env, ok := t.Environ(e)
	if !ok {
		return false
	}
	for _, kv := range env {
		if capture(m.env, kv, c) {
			return true
		}
	}
	return false
}

func isProplet(e process.Entry, t Table) bool {
	id, ok := t.Proplet()
	return ok && id == e.ID
}

// sameOwner reports whether a process runs as its parent's user, really and effectively, and
// the parent does too.
func sameOwner(d process.Details, parent process.Entry, t Table) bool {
	pd, ok := t.Details(parent)
	return ok && pd.Owner.Is(pd.Owner.Real) && d.Owner.Is(pd.Owner.Real)
}

// StartedAfter reports whether e started after notBefore (a process.ID.Start; 0 allows any):
// a task whose process ended takes only a process started after the moment that process was
// last known to run, never one that was already running beside it.
func StartedAfter(e process.Entry, notBefore uint64) bool {
	return notBefore == 0 || e.ID.Start > notBefore
}

// FixedParent reports whether the rule requires one parent pid (parent_pid, or the pid in
// parent_pid_file, read through the table), and which, so a caller that keeps the table's
// children by parent looks at that parent's children only. pid is 0 when no process can match:
// the pid file cannot be read, or parent_pid and parent_pid_file disagree.
func (m *Matcher) FixedParent(t Table) (pid int32, fixed bool) {
	if m.parentPIDFile != "" {
		p, ok := t.PIDFile(m.parentPIDFile)
		if !ok || (m.parentPID != 0 && p != m.parentPID) {
			return 0, true
		}
		return p, true
	}
	return m.parentPID, m.parentPID != 0
}

// ParentRule returns the nested rule a matching process's parent must match, or nil.
func (m *Matcher) ParentRule() *Matcher { return m.parent }

// Key identifies the rule: matchers compiled from equal Specs have equal keys, so a cache of
// one pass (the processes that match a proplet rule shared by every started task) can keep one
// result for all of them.
func (m *Matcher) Key() string { return m.key }

func capture(re *regexp.Regexp, s string, c *Captures) bool {
	sub := re.FindStringSubmatch(s)
	if sub == nil {
		return false
	}
	if i := re.SubexpIndex(CaptureTaskID); i >= 0 && sub[i] != "" {
		c.TaskID = sub[i]
	}
	if i := re.SubexpIndex(CaptureTaskName); i >= 0 && sub[i] != "" {
		c.TaskName = sub[i]
	}
	return true
}

// Fill returns s with the placeholders {task_id} and {task_name} in its regular expressions
// (executable, cmdline, and those of nested parents) replaced by the values, quoted so they
// match literally.
func (s Spec) Fill(taskID, taskName string) Spec {
	r := strings.NewReplacer("{"+CaptureTaskID+"}", regexp.QuoteMeta(taskID), "{"+CaptureTaskName+"}", regexp.QuoteMeta(taskName))
	s.Executable = r.Replace(s.Executable)
	s.Cmdline = r.Replace(s.Cmdline)
	s.Environ = r.Replace(s.Environ)
	if s.Parent != nil {
		p := s.Parent.Fill(taskID, taskName)
		s.Parent = &p
	}
	return s
}
