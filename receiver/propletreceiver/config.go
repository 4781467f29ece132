package propletreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

// Config is the proplet receiver's configuration.
type Config struct {
	metadata.MetricsBuilderConfig `mapstructure:",squash"`

	// PropletID identifies this proplet in every output (resource attribute propeller.proplet.id).
	PropletID string `mapstructure:"proplet_id"`
	// ProcRoot is the procfs mount to read: /proc, or /hostfs/proc when the collector runs in
	// a container with the host's /proc mounted there.
	ProcRoot string `mapstructure:"proc_root"`
	// CgroupRoot is the cgroupfs mount, used for memory limits.
	CgroupRoot string `mapstructure:"cgroup_root"`
	// DefaultProfile is the profile of tasks that name none.
	DefaultProfile string `mapstructure:"default_profile"`
	// Profiles are custom monitoring profiles, keyed by name. Keys are Propeller's; a key that
	// is not set takes the value of the built-in `standard` profile.
	Profiles map[string]profile.Overrides `mapstructure:"profiles"`
	// Proplet says how to find the proplet process, sampled for proplet-level metrics.
	Proplet PropletConfig `mapstructure:"proplet"`
	// Tasks are tasks known up front.
	Tasks []TaskConfig `mapstructure:"tasks"`
	// Discovery rules turn matching processes into tasks.
	Discovery []DiscoveryRule `mapstructure:"discovery"`
	// DiscoveryInterval is how often the process table is looked at for pending tasks, rule
	// matches, process-tree members and exits.
	DiscoveryInterval time.Duration `mapstructure:"discovery_interval"`
	// MaxConcurrency is the number of sampling workers.
	MaxConcurrency int `mapstructure:"max_concurrency"`
	// StartJitter spreads first samples over this window, so many tasks and collectors do not
	// sample in lockstep.
	StartJitter time.Duration `mapstructure:"start_jitter"`
	// MaxKeptOpenProcesses bounds the processes whose /proc files stay open between samples
	// (up to four descriptors each); past it, files are opened, read and closed on every sample
	// (slower, never out of descriptors). 0 derives it from RLIMIT_NOFILE.
	MaxKeptOpenProcesses int `mapstructure:"max_kept_open_processes"`
	// API is the task API (off unless configured).
	API configoptional.Optional[APIConfig] `mapstructure:"api"`
	// Propeller follows a Propeller deployment's control plane (off unless configured).
	Propeller configoptional.Optional[PropellerConfig] `mapstructure:"propeller"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// APIConfig configures the task API's HTTP server.
type APIConfig struct {
	confighttp.ServerConfig `mapstructure:",squash"`
	// BearerToken, when set, must be sent as "Authorization: Bearer <token>" (not for /health).
	BearerToken configopaque.String `mapstructure:"bearer_token"`
	// BearerTokenFile holds the token instead (read at start, surrounding whitespace trimmed).
	BearerTokenFile string `mapstructure:"bearer_token_file"`
}

// PropellerConfig subscribes the receiver to the manager's task start and stop requests.
type PropellerConfig struct {
	// Endpoint is the broker URL: tcp://, mqtt://, ssl://, tls://, mqtts://, ws:// or wss://.
	Endpoint string `mapstructure:"endpoint"`
	// ClientID is the MQTT client id; default unique per collector instance.
	ClientID  string                 `mapstructure:"client_id"`
	Username  string                 `mapstructure:"username"`
	Password  configopaque.String    `mapstructure:"password"`
	TLS       configtls.ClientConfig `mapstructure:"tls"`
	DomainID  string                 `mapstructure:"domain_id"`
	ChannelID string                 `mapstructure:"channel_id"`
	// TaskMatch finds a started task's process. {task_id} and {task_name} in its executable and
	// cmdline expressions are replaced by the task's (quoted) values. Unless it names a parent,
	// the process must be a child of the proplet (as located by proplet:).
	TaskMatch procmatch.Spec `mapstructure:"task_match"`
	// InProcess says the proplet runs tasks inside its own process (its default runtime): tasks
	// are registered with state in_process and not sampled on their own.
	InProcess bool `mapstructure:"in_process"`
	// TaskCgroup, when set, is the cgroup v2 directory of a started task, with {task_id} and
	// {task_name} filled in; the task is then measured from it.
	TaskCgroup string `mapstructure:"task_cgroup"`
}

// ProcessLocator says how to find a process: exactly one of PID, PIDFile and Match.
type ProcessLocator struct {
	// PID is a fixed process id.
	PID int32 `mapstructure:"pid"`
	// PIDFile is a file holding the pid; it may appear later and may change.
	PIDFile string `mapstructure:"pid_file"`
	// Match finds the process by executable, command line, owner and parent.
	Match *procmatch.Spec `mapstructure:"match"`
}

// PropletConfig locates the proplet process and sets its sampling interval.
type PropletConfig struct {
	ProcessLocator `mapstructure:",squash"`
	// Self samples the collector's own process as the proplet (demos, and a collector embedded
	// in the proplet's container).
	Self bool `mapstructure:"self"`
	// Interval between proplet samples. Default: PROPLET_METRICS_INTERVAL (seconds) when set,
	// else 10s.
	Interval time.Duration `mapstructure:"interval"`
}

// TaskConfig is a task known up front.
type TaskConfig struct {
	// ID is the Propeller task id.
	ID string `mapstructure:"id"`
	// Name is the Propeller task name.
	Name           string `mapstructure:"name"`
	ProcessLocator `mapstructure:",squash"`
	// Profile names a built-in or custom profile.
	Profile string `mapstructure:"profile"`
	// MonitoringProfile is an inline profile; keys not set take the default profile's values.
	MonitoringProfile *profile.Overrides `mapstructure:"monitoring_profile"`
	// IncludeChildren makes the task's numbers cover its whole process tree.
	IncludeChildren bool `mapstructure:"include_children"`
	// Cgroup is a cgroup v2 directory the task runs in (absolute, or relative to the v2 root):
	// its numbers then come from the cgroup, including children and exited processes.
	Cgroup string `mapstructure:"cgroup"`
}

// DiscoveryRule turns processes that match into tasks.
type DiscoveryRule struct {
	// Match must have a task_id named capture in executable or cmdline (task_name optional).
	Match             procmatch.Spec     `mapstructure:"match"`
	Profile           string             `mapstructure:"profile"`
	MonitoringProfile *profile.Overrides `mapstructure:"monitoring_profile"`
	IncludeChildren   bool               `mapstructure:"include_children"`
}

// Validate checks the configuration. Errors name the key and the value.
func (cfg *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(cfg.PropletID) == "" {
		add("proplet_id: must be set (the proplet's id in Propeller)")
	}
	if cfg.ProcRoot == "" {
		add("proc_root: must not be empty")
	}
	profiles := profile.NewSet(cfg.Profiles)
	for name, o := range cfg.Profiles {
		if err := o.Apply(profiles[profile.Standard]).Validate(); err != nil {
			errs = append(errs, prefixed("profiles."+name, err))
		}
	}
	if _, ok := profiles[cfg.DefaultProfile]; !ok {
		add("default_profile: unknown profile %q (known: %s)", cfg.DefaultProfile, known(profiles))
	}
	if cfg.DiscoveryInterval < profile.MinInterval {
		add("discovery_interval: must be at least %s, got %s", profile.MinInterval, cfg.DiscoveryInterval)
	}
	if cfg.MaxConcurrency < 1 || cfg.MaxConcurrency > 1024 {
		add("max_concurrency: must be between 1 and 1024, got %d", cfg.MaxConcurrency)
	}
	if cfg.MaxKeptOpenProcesses < 0 {
		add("max_kept_open_processes: must not be negative (0 derives it from RLIMIT_NOFILE), got %d", cfg.MaxKeptOpenProcesses)
	}
	if cfg.StartJitter < 0 {
		add("start_jitter: must not be negative, got %s", cfg.StartJitter)
	}
	if cfg.Propeller.HasValue() {
		p := cfg.Propeller.Get()
		if _, err := mqttconn.CheckEndpoint("propeller.endpoint", p.Endpoint); err != nil {
			errs = append(errs, err)
		}
		for key, v := range map[string]string{"domain_id": p.DomainID, "channel_id": p.ChannelID} {
			if v == "" || strings.ContainsAny(v, "/+#\x00") {
				add("propeller.%s: must be set and must not contain '/', '+', '#' or NUL, got %q", key, v)
			}
		}
		if !p.InProcess {
			if _, err := procmatch.Compile(p.TaskMatch.Fill("t", "t")); err != nil {
				errs = append(errs, prefixed("propeller.task_match", err))
			}
		}
	}
	if cfg.API.HasValue() {
		api := cfg.API.Get()
		if api.NetAddr.Endpoint == "" {
			add("api.endpoint: must be set, for example localhost:8990")
		}
		if api.BearerToken != "" && api.BearerTokenFile != "" {
			add("api: set bearer_token or bearer_token_file, not both")
		}
	}
	if cfg.Proplet.Interval < profile.MinInterval {
		add("proplet.interval: must be at least %s, got %s", profile.MinInterval, cfg.Proplet.Interval)
	}
	n := cfg.Proplet.ways()
	if cfg.Proplet.Self {
		n++
	}
	if n > 1 {
		add("proplet: set only one of pid, pid_file, match and self")
	}
	if err := cfg.Proplet.check(); err != nil {
		errs = append(errs, prefixed("proplet", err))
	}

	ids := map[string]int{}
	for i, t := range cfg.Tasks {
		key := fmt.Sprintf("tasks[%d]", i)
		if t.ID == "" {
			add("%s.id: must be set", key)
		} else if j, dup := ids[t.ID]; dup {
			add("%s.id: %q is also the id of tasks[%d]", key, t.ID, j)
		} else {
			ids[t.ID] = i
		}
		switch t.ways() {
		case 0:
			if t.Cgroup == "" {
				add("%s: one of pid, pid_file, match or cgroup is required to find the task", key)
			}
		case 1:
		default:
			add("%s: set only one of pid, pid_file and match", key)
		}
		if err := t.check(); err != nil {
			errs = append(errs, prefixed(key, err))
		}
		if _, _, err := resolveProfile(profiles, cfg.DefaultProfile, t.Profile, t.MonitoringProfile); err != nil {
			errs = append(errs, prefixed(key, err))
		}
	}
	for i, r := range cfg.Discovery {
		key := fmt.Sprintf("discovery[%d]", i)
		m, err := procmatch.Compile(r.Match)
		switch {
		case err != nil:
			errs = append(errs, prefixed(key+".match", err))
		case !m.CapturesTask():
			add("%s.match: needs a (?P<task_id>...) named capture in executable or cmdline", key)
		}
		if _, _, err := resolveProfile(profiles, cfg.DefaultProfile, r.Profile, r.MonitoringProfile); err != nil {
			errs = append(errs, prefixed(key, err))
		}
	}
	return errors.Join(errs...)
}

func (l ProcessLocator) ways() int {
	n := 0
	for _, set := range []bool{l.PID != 0, l.PIDFile != "", l.Match != nil} {
		if set {
			n++
		}
	}
	return n
}

func (l ProcessLocator) check() error {
	if l.PID < 0 {
		return fmt.Errorf("pid: must be positive, got %d", l.PID)
	}
	if l.Match != nil {
		if _, err := procmatch.Compile(*l.Match); err != nil {
			return prefixed("match", err)
		}
	}
	return nil
}

// resolveProfile returns the profile a task or rule gets, and its name.
func resolveProfile(set profile.Set, defaultName, name string, inline *profile.Overrides) (string, profile.Profile, error) {
	if name != "" && inline != nil {
		return "", profile.Profile{}, errors.New("set either profile or monitoring_profile, not both")
	}
	if inline != nil {
		p := inline.Apply(set[defaultName])
		if err := p.Validate(); err != nil {
			return "", p, prefixed("monitoring_profile", err)
		}
		return profile.Inline, p, nil
	}
	if name == "" {
		name = defaultName
	}
	p, ok := set[name]
	if !ok {
		return "", p, fmt.Errorf("profile: unknown profile %q (known: %s)", name, known(set))
	}
	return name, p, nil
}

func known(set profile.Set) string {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// prefixed puts key in front of every line of err, so joined errors keep their full path.
func prefixed(key string, err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = key + "." + l
		if strings.HasPrefix(l, "one of") || strings.HasPrefix(l, "set ") {
			lines[i] = key + ": " + l
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}
