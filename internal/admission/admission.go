// Package admission is the one way a task enters the monitor. Whichever door a task comes
// through (the receiver's configuration, the task API, the Propeller control plane), the door
// decodes its own format into a Request, and Policy.Admit turns that into a validated Spec or
// refuses it with errors that name the field and the value. Every default (which profile a task
// without one gets, what an inline profile is applied over, the history cap) is decided here and
// nowhere else.
package admission // import "github.com/otelcol-propeller/otelcol-propeller/internal/admission"

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

const (
	// MaxIDLength bounds a task id, as Propeller's store does: its ids are 36-character UUIDs.
	MaxIDLength = 36
	// MaxNameLength bounds a task name, in bytes: it is attached to every sample.
	MaxNameLength = 256
)

// Request is a task as a door received it, before any default applies. Exactly one way to
// find the task's process is set (PID, PIDFile, Match or InProcess), or none when Cgroup is.
type Request struct {
	ID   string
	Name string
	// Profile names a built-in or custom profile.
	Profile string
	// MonitoringProfile is an inline profile, applied over the profile the task would get
	// without it. Not together with Profile.
	MonitoringProfile *profile.Overrides
	// Daemon says the task runs until stopped: without a profile it gets the daemon profile.
	Daemon bool

	PID     int32           // a fixed process id
	PIDFile string          // a file holding the pid; it may appear later and may change
	Match   *procmatch.Spec // a rule over the process table
	// InProcess says the task runs inside the proplet process (Propeller's default runtime).
	InProcess bool
	// Cgroup is a cgroup v2 directory the task runs in, absolute or relative to the v2 root.
	Cgroup string
	// IncludeChildren makes the task's numbers cover its whole process tree.
	IncludeChildren bool
	// ExportAlways publishes the task to MQTT whatever its profile's export_to_mqtt says: the
	// control plane's `export_to_mqtt: always`, for a proplet whose tasks are started with
	// export_to_mqtt false so that the proplet itself stays quiet. The rest of the profile is
	// resolved as requested, and the profile keeps its name.
	ExportAlways bool
	// Origin is the door the request came through; it owns the task (see MayEnd).
	Origin Origin
}

// Locator says how to find a process. At most one way is set.
type Locator struct {
	PID     int32
	PIDFile string
	Match   *procmatch.Matcher
	Self    bool // the collector's own process (the proplet locator only)
	// InProcess says the task runs inside the proplet process: it has no process of its own
	// to sample, and its state says so.
	InProcess bool
}

// IsZero reports whether no way to find a process is set.
func (l Locator) IsZero() bool { return l == Locator{} }

// Rebinds reports whether the locator can find a new process after the old one exited. A
// fixed pid cannot: it may be reused by an unrelated process.
func (l Locator) Rebinds() bool { return l.PIDFile != "" || l.Match != nil }

// Spec is an admitted task: everything the monitor needs, validated.
type Spec struct {
	ID, Name string
	// Daemon is kept so a later partial profile applies over the daemon profile.
	Daemon      bool
	ProfileName string
	Profile     profile.Profile
	Locator     Locator
	// IncludeChildren makes the task's numbers cover its whole process tree.
	IncludeChildren bool
	// Cgroup names a cgroup v2 directory (absolute, or relative to the v2 root) the task runs
	// in. Its numbers then come from the cgroup's files; a Locator, when also set, gives the
	// task's identity (pid, executable, uptime).
	Cgroup string
	// Origin is the door the task came through: which door may end it or change its profile.
	Origin Origin
}

// Policy is what admission decides with: the known profiles and the defaults.
type Policy struct {
	// Profiles are the built-in profiles and the user's custom ones, validated and capped.
	Profiles profile.Set
	// DefaultProfile is the profile of tasks that name none.
	DefaultProfile string
	// DaemonProfile is the profile of daemon tasks that name none.
	DaemonProfile string
	// CgroupRoot, when set, is the cgroup mount a task's cgroup must lie under, as written
	// and once its symbolic links are resolved: a directory elsewhere is not a cgroup, and its
	// files can be anything (a FIFO, a link to /dev/zero).
	CgroupRoot string
}

// NewPolicy builds a policy from custom profiles (each applied over `standard`) and the two
// default names. It validates every custom profile and both defaults, and caps history sizes;
// notes say what was capped. Errors name the configuration key and the value.
func NewPolicy(custom map[string]profile.Overrides, defaultProfile, daemonProfile string) (Policy, []string, error) {
	p := Policy{Profiles: profile.NewSet(custom), DefaultProfile: defaultProfile, DaemonProfile: daemonProfile}
	var errs []error
	var notes []string
	for _, name := range slices.Sorted(maps.Keys(custom)) {
		prof := p.Profiles[name]
		if err := prof.Validate(); err != nil {
			errs = append(errs, Under("profiles."+name, err))
			continue
		}
		if capped, lowered := prof.Capped(); lowered {
			notes = append(notes, cappedNote("profiles."+name, prof.HistorySize))
			p.Profiles[name] = capped
		}
	}
	for _, d := range []struct{ key, name string }{{"default_profile", defaultProfile}, {"daemon_profile", daemonProfile}} {
		if _, ok := p.Profiles[d.name]; !ok {
			errs = append(errs, &FieldError{Field: d.key, Msg: fmt.Sprintf("unknown profile %s (known: %s)", Quote(d.name), p.known())})
		}
	}
	return p, notes, errors.Join(errs...)
}

// Admit validates a request and applies the defaults. Notes say what admission changed (a
// history size lowered to the cap); the door logs them. Every error is a FieldError, joined.
func (p Policy) Admit(r Request) (Spec, []string, error) {
	// Rules and paths may be built from the id and the name (the control plane fills them into
	// task_match): a refused one stops here, before a 10 MB id becomes a 10 MB regular
	// expression.
	if err := errors.Join(CheckID(r.ID), CheckName(r.Name)); err != nil {
		return Spec{}, nil, err
	}
	var errs []error
	loc, err := locate(r)
	if err != nil {
		errs = append(errs, err)
	} else if err := p.checkCgroupRoot(r.Cgroup); err != nil {
		errs = append(errs, err)
	}
	name, prof, notes, err := p.ResolveProfile(r.Profile, r.MonitoringProfile, r.Daemon)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Spec{}, nil, err
	}
	if r.ExportAlways {
		prof.ExportToMQTT = true
	}
	return Spec{
		ID: r.ID, Name: r.Name, Daemon: r.Daemon, ProfileName: name, Profile: prof,
		Locator: loc, IncludeChildren: r.IncludeChildren, Cgroup: r.Cgroup, Origin: r.Origin,
	}, notes, nil
}

// ResolveProfile returns the profile a task gets: the named one; else the daemon or default
// profile; with an inline profile applied over that. Inline profiles are validated, then
// their history size capped (with a note).
func (p Policy) ResolveProfile(name string, inline *profile.Overrides, daemon bool) (string, profile.Profile, []string, error) {
	if name != "" && inline != nil {
		return "", profile.Profile{}, nil, &FieldError{Msg: "set either profile or monitoring_profile, not both"}
	}
	base := name
	switch {
	case base != "":
	case daemon:
		base = p.DaemonProfile
	default:
		base = p.DefaultProfile
	}
	prof, ok := p.Profiles[base]
	if !ok {
		return "", prof, nil, &FieldError{Field: "profile", Msg: fmt.Sprintf("unknown profile %s (known: %s)", Quote(base), p.known())}
	}
	if inline == nil {
		return base, prof, nil, nil
	}
	prof = inline.Apply(prof)
	if err := prof.Validate(); err != nil {
		return "", prof, nil, Under("monitoring_profile", err)
	}
	var notes []string
	if capped, lowered := prof.Capped(); lowered {
		notes = append(notes, cappedNote("monitoring_profile", prof.HistorySize))
		prof = capped
	}
	return profile.Inline, prof, notes, nil
}

func cappedNote(key string, n int) string {
	return fmt.Sprintf("%s.history_size: %d lowered to %d, the most kept in memory per task", key, n, profile.MaxHistorySize)
}

func (p Policy) known() string { return strings.Join(slices.Sorted(maps.Keys(p.Profiles)), ", ") }

// locate checks the ways to find the task's process and compiles a match rule.
func locate(r Request) (Locator, error) {
	loc := Locator{PID: r.PID, PIDFile: r.PIDFile, InProcess: r.InProcess}
	ways := 0
	for _, set := range []bool{r.PID != 0, r.PIDFile != "", r.Match != nil, r.InProcess} {
		if set {
			ways++
		}
	}
	var errs []error
	switch {
	case ways == 0 && r.Cgroup == "":
		errs = append(errs, &FieldError{Msg: "one of pid, pid_file, match, in_process or cgroup is required to find the task"})
	case ways > 1:
		errs = append(errs, &FieldError{Msg: "set only one of pid, pid_file, match and in_process"})
	case r.InProcess && r.Cgroup != "":
		errs = append(errs, &FieldError{Field: "cgroup", Msg: "an in_process task runs inside the proplet and has no cgroup of its own"})
	}
	if r.PID < 0 {
		errs = append(errs, &FieldError{Field: "pid", Msg: fmt.Sprintf("must be positive, got %d", r.PID)})
	}
	if strings.ContainsRune(r.PIDFile, 0) {
		errs = append(errs, &FieldError{Field: "pid_file", Msg: "must not contain NUL"})
	}
	if r.Match != nil {
		m, err := procmatch.Compile(*r.Match)
		if err != nil {
			errs = append(errs, Under("match", err))
		}
		loc.Match = m
	}
	if err := CheckCgroup(r.Cgroup); err != nil {
		errs = append(errs, err)
	}
	return loc, errors.Join(errs...)
}

// CheckID reports an id that cannot be a task id. An id is 1 to MaxIDLength characters of
// A-Z, a-z, 0-9, '.', '_' and '-', and not "." or "..": Propeller's ids are UUIDs, and an id
// is filled into topics, match rules and cgroup paths, where anything else could widen a
// topic, close a broker's connection or leave the cgroup tree.
func CheckID(id string) error {
	if id == "" {
		return &FieldError{Field: "id", Msg: "must be set"}
	}
	if len(id) > MaxIDLength {
		return &FieldError{Field: "id", Msg: fmt.Sprintf("%d bytes long, at most %d (Propeller's ids are 36-character UUIDs), got %s", len(id), MaxIDLength, Quote(id))}
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !idChar(c) {
			return &FieldError{Field: "id", Msg: fmt.Sprintf("may hold only A-Z, a-z, 0-9, '.', '_' and '-', got %s", Quote(id))}
		}
	}
	if id == "." || id == ".." {
		return &FieldError{Field: "id", Msg: fmt.Sprintf("must not be %q", id)}
	}
	return nil
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// CheckName reports a task name that cannot be used: longer than MaxNameLength, not UTF-8, or
// holding a control character or a Unicode noncharacter.
func CheckName(name string) error { return checkText("name", name, MaxNameLength) }

func checkText(field, s string, limit int) error {
	if len(s) > limit {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%d bytes long, at most %d, got %s", len(s), limit, Quote(s))}
	}
	if !utf8.ValidString(s) {
		return &FieldError{Field: field, Msg: fmt.Sprintf("must be UTF-8, got %s", Quote(s))}
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Noncharacter_Code_Point, r) {
			return &FieldError{Field: field, Msg: fmt.Sprintf("must not contain %U, got %s", r, Quote(s))}
		}
	}
	return nil
}

// CheckCgroup reports a cgroup path that could leave the cgroup tree: one with a ".."
// element or a NUL.
func CheckCgroup(path string) error {
	if strings.ContainsRune(path, 0) {
		return &FieldError{Field: "cgroup", Msg: "must not contain NUL"}
	}
	for _, el := range strings.Split(path, "/") {
		if el == ".." {
			return &FieldError{Field: "cgroup", Msg: fmt.Sprintf("must not contain a '..' element, got %s", Quote(path))}
		}
	}
	return nil
}

// checkCgroupRoot reports a cgroup path that does not lie under the policy's cgroup mount
// (relative paths are taken under it), as written or through a symbolic link.
func (p Policy) checkCgroupRoot(path string) error {
	if path == "" || p.CgroupRoot == "" {
		return nil
	}
	if _, err := process.ResolveCgroup(p.CgroupRoot, path); err != nil {
		return &FieldError{Field: "cgroup", Msg: fmt.Sprintf("must lie under the cgroup mount %s, got %s (%v)", p.CgroupRoot, Quote(path), err)}
	}
	return nil
}

// Quote quotes a value for an error message, shortened when long so a hostile value cannot
// flood the log.
func Quote(s string) string {
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q... (%d bytes)", s[:cut], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// FieldError is a refused field of a request: its key, dotted from the request's top (empty
// for a rule over several fields), and why.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Under puts key in front of every error in err, so an error keeps its full path when a door
// reports it: Under("tasks[2]", err) turns "pid: must be positive" into
// "tasks[2].pid: must be positive", and a rule over several fields into "tasks[2]: ...".
// Errors that are not FieldErrors are read line by line as "field: message".
func Under(key string, err error) error {
	if err == nil {
		return nil
	}
	var out []error
	for _, e := range Errors(err) {
		var fe *FieldError
		if errors.As(e, &fe) {
			out = append(out, &FieldError{Field: join(key, fe.Field), Msg: fe.Msg})
			continue
		}
		for _, line := range strings.Split(e.Error(), "\n") {
			field, msg, ok := strings.Cut(line, ": ")
			if !ok || strings.ContainsAny(field, " ,") {
				field, msg = "", line
			}
			out = append(out, &FieldError{Field: join(key, field), Msg: msg})
		}
	}
	return errors.Join(out...)
}

func join(key, field string) string {
	switch {
	case key == "":
		return field
	case field == "":
		return key
	}
	return key + "." + field
}

// Errors returns the errors joined in err, recursively: one per refused field.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Errors(e)...)
		}
		return out
	}
	return []error{err}
}
