package propletreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/controlplane"
	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
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
	// CgroupRoot is the cgroupfs mount, used for memory limits. A task's cgroup must lie under
	// it, as written and once its symbolic links are resolved.
	CgroupRoot string `mapstructure:"cgroup_root"`
	// DefaultProfile is the profile of tasks that name none.
	DefaultProfile string `mapstructure:"default_profile"`
	// DaemonProfile is the profile of daemon tasks that name none (Propeller's rule).
	DaemonProfile string `mapstructure:"daemon_profile"`
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
	// StartJitter spreads first samples over this window, so many tasks do not sample at once:
	// tasks take its 100 ms rounds in turn, 16 at a time in the order they were found.
	StartJitter time.Duration `mapstructure:"start_jitter"`
	// MaxKeptOpenProcesses bounds the descriptors kept open between samples, counted at five
	// a process (a process holding fewer leaves room for more); past it, files are opened,
	// read and closed on every sample (slower, never out of descriptors). 0 derives the budget
	// from RLIMIT_NOFILE: the limit less 256 descriptors.
	MaxKeptOpenProcesses int `mapstructure:"max_kept_open_processes"`
	// MaxTasks bounds the registered tasks, whatever their origin: a task past it is refused.
	MaxTasks int `mapstructure:"max_tasks"`
	// MaxPendingTasks bounds the tasks whose process has not been found yet.
	MaxPendingTasks int `mapstructure:"max_pending_tasks"`
	// PendingTimeout removes a task registered at run time (task API, control plane) whose
	// process has not been found for this long; 0 keeps it forever. Tasks of the configuration
	// never expire.
	PendingTimeout time.Duration `mapstructure:"pending_timeout"`
	// ProcessEvents says how processes are found and accounted: auto (the kernel's process
	// events and exit accounting when the collector may open them, else /proc scans), events
	// (required: the receiver does not start without them) or scan.
	ProcessEvents monitor.EventsMode `mapstructure:"process_events"`
	// API is the task API (off unless configured).
	API configoptional.Optional[APIConfig] `mapstructure:"api"`
	// Propeller follows a Propeller deployment's control plane (off unless configured).
	Propeller configoptional.Optional[PropellerConfig] `mapstructure:"propeller"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// APIConfig configures the task API's HTTP server.
type APIConfig struct {
	// Server is the HTTP server: endpoint, tls, auth, ... (squashed: its keys sit beside ours).
	// A named field, not an embedded one: confighttp.ServerConfig has an Unmarshal method, which
	// embedding would promote to APIConfig, and confmap would then decode the server's keys only.
	Server confighttp.ServerConfig `mapstructure:",squash"`
	// BearerToken, when set, must be sent as "Authorization: Bearer <token>" (not for /health).
	BearerToken configopaque.String `mapstructure:"bearer_token"`
	// BearerTokenFile holds the token instead (read at start, surrounding whitespace trimmed).
	BearerTokenFile string `mapstructure:"bearer_token_file"`
	// MaxConnections bounds the connections served at once; further ones wait in the kernel's
	// accept queue until one closes. Connections need no token, so without a bound idle ones
	// could take every descriptor the collector may open.
	MaxConnections int `mapstructure:"max_connections"`
}

// Unmarshal decodes the api block and refuses a key it does not know, naming the nearest
// known one. Decoding the squashed server through its own Unmarshal ignores keys it does not
// know, so without this check a misspelt bearer_token would leave the API open without a word.
func (c *APIConfig) Unmarshal(conf *confmap.Conf) error {
	if unknown := unknownStructKeys(reflect.TypeFor[APIConfig](), conf.ToStringMap(), keyPath{}); len(unknown) > 0 {
		errs := make([]error, len(unknown))
		for i, u := range unknown {
			errs[i] = u.err
		}
		return errors.Join(errs...)
	}
	type plain APIConfig // no Unmarshal method: confmap decodes the fields
	return conf.Unmarshal((*plain)(c), confmap.WithIgnoreUnused())
}

// PropellerConfig subscribes the receiver to the manager's task start and stop requests.
type PropellerConfig struct {
	// ClientConfig is the broker connection, with the same keys and defaults as the mqtt
	// exporter's: endpoint, client_id, username, password, tls, keep_alive, connect_timeout,
	// max_reconnect_interval.
	mqttconn.ClientConfig `mapstructure:",squash"`
	DomainID              string `mapstructure:"domain_id"`
	ChannelID             string `mapstructure:"channel_id"`
	// TaskMatch finds a started task's process. {task_id} and {task_name} in its expressions
	// are replaced by the task's (quoted) values. Unless it names a parent, the process must be
	// a child of the proplet (as located by proplet:). Unset, it is `cmdline: '{task_id}'`; a
	// rule that is set replaces that default whole.
	TaskMatch procmatch.Spec `mapstructure:"task_match"`
	// InProcess says the proplet runs tasks inside its own process (its default runtime): tasks
	// are registered with state in_process and not sampled on their own.
	InProcess bool `mapstructure:"in_process"`
	// TaskCgroup, when set, is the cgroup v2 directory of a started task, with {task_id} and
	// {task_name} filled in; the task is then measured from it.
	TaskCgroup string `mapstructure:"task_cgroup"`
	// ExportToMQTT says whether a started task's samples are published to MQTT:
	// ExportAsRequested (the default) follows the export_to_mqtt of its monitoring profile;
	// ExportAlways publishes every started task, so tasks started with export_to_mqtt false
	// keep the proplet's own publisher quiet while the collector publishes for them. The rest of
	// the profile is honoured either way.
	ExportToMQTT string `mapstructure:"export_to_mqtt"`
}

// The values of propeller.export_to_mqtt.
const (
	ExportAsRequested = "as_requested"
	ExportAlways      = "always"
)

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
	// InProcess says the task runs inside the proplet process: it is listed, not sampled.
	InProcess bool `mapstructure:"in_process"`
	// Cgroup is a cgroup v2 directory the task runs in (absolute, or relative to the v2 root):
	// its numbers then come from the cgroup, including children and exited processes.
	Cgroup string `mapstructure:"cgroup"`
	// Profile names a built-in or custom profile.
	Profile string `mapstructure:"profile"`
	// MonitoringProfile is an inline profile; keys not set take the values of the profile the
	// task would get without it.
	MonitoringProfile *profile.Overrides `mapstructure:"monitoring_profile"`
	// Daemon says the task runs until stopped: without a profile it gets daemon_profile.
	Daemon bool `mapstructure:"daemon"`
	// IncludeChildren makes the task's numbers cover its whole process tree.
	IncludeChildren bool `mapstructure:"include_children"`
}

// request is the task as an admission request, the same as the task API and the control
// plane make.
func (t TaskConfig) request() admission.Request {
	return admission.Request{
		ID: t.ID, Name: t.Name, Profile: t.Profile, MonitoringProfile: t.MonitoringProfile, Daemon: t.Daemon,
		PID: t.PID, PIDFile: t.PIDFile, Match: t.Match, InProcess: t.InProcess, Cgroup: t.Cgroup,
		IncludeChildren: t.IncludeChildren, Origin: admission.OriginConfig,
	}
}

// DiscoveryRule turns processes that match into tasks.
type DiscoveryRule struct {
	// Match must have a task_id named capture in executable, cmdline or environ (task_name
	// optional).
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
	policy, _, err := cfg.policy()
	if err != nil {
		errs = append(errs, err)
	}
	if err := profile.CheckInterval(cfg.DiscoveryInterval); err != nil {
		errs = append(errs, fmt.Errorf("discovery_interval: %w", err))
	}
	if cfg.MaxConcurrency < 1 || cfg.MaxConcurrency > 1024 {
		add("max_concurrency: must be between 1 and 1024, got %d", cfg.MaxConcurrency)
	}
	if cfg.MaxKeptOpenProcesses < 0 {
		add("max_kept_open_processes: must not be negative (0 derives it from RLIMIT_NOFILE), got %d", cfg.MaxKeptOpenProcesses)
	}
	if cfg.StartJitter < 0 {
		add("start_jitter: must not be negative, got %s", cfg.StartJitter)
	} else if hint := profile.UnitHint(cfg.StartJitter); hint != "" {
		add("start_jitter: must be 0 or at least 1ms, got %s%s", cfg.StartJitter, hint)
	}
	if cfg.MaxTasks < 1 {
		add("max_tasks: must be at least 1, got %d", cfg.MaxTasks)
	} else if len(cfg.Tasks) > cfg.MaxTasks {
		add("max_tasks: %d, but tasks lists %d", cfg.MaxTasks, len(cfg.Tasks))
	}
	switch cfg.ProcessEvents {
	case monitor.EventsAuto, monitor.EventsOn, monitor.EventsOff:
	default:
		add("process_events: must be auto, events or scan, got %q", cfg.ProcessEvents)
	}
	if cfg.MaxPendingTasks < 1 {
		add("max_pending_tasks: must be at least 1, got %d", cfg.MaxPendingTasks)
	}
	if cfg.PendingTimeout < 0 {
		add("pending_timeout: must not be negative (0 keeps pending tasks), got %s", cfg.PendingTimeout)
	} else if hint := profile.UnitHint(cfg.PendingTimeout); hint != "" {
		add("pending_timeout: must be 0 (keep pending tasks) or at least 1ms, got %s%s", cfg.PendingTimeout, hint)
	}
	if cfg.Propeller.HasValue() {
		p := cfg.Propeller.Get()
		errs = append(errs, p.Check("propeller."), admission.Under("propeller", cfg.controlPlane(policy).Check()))
		if p.ProtocolVersion == "5" {
			add(`propeller.protocol_version: the control plane speaks MQTT 3.1.1 only, got "5": remove the key, and use the broker's MQTT 3.1.1 listener (FluxMQ: 1883 in Propeller's settings)`)
		}
		if p.ExportToMQTT != ExportAsRequested && p.ExportToMQTT != ExportAlways {
			add("propeller.export_to_mqtt: must be %s (publish a started task when its profile says so) or %s (publish every started task, whatever its profile's export_to_mqtt), got %s",
				ExportAsRequested, ExportAlways, admission.Quote(p.ExportToMQTT))
		}
	}
	if cfg.API.HasValue() {
		api := cfg.API.Get()
		if api.Server.NetAddr.Endpoint == "" {
			add("api.endpoint: must be set, for example localhost:8990")
		}
		if api.BearerToken != "" && api.BearerTokenFile != "" {
			add("api: set bearer_token or bearer_token_file, not both")
		}
		if api.MaxConnections < 1 || api.MaxConnections > maxAPIConnections {
			add("api.max_connections: must be between 1 and %d, got %d", maxAPIConnections, api.MaxConnections)
		}
		if api.Server.ReadHeaderTimeout <= 0 {
			add("api.read_header_timeout: must be positive (a connection that sends no request would stay open for good), got %s", api.Server.ReadHeaderTimeout)
		}
	}
	if err := profile.CheckInterval(cfg.Proplet.Interval); err != nil {
		errs = append(errs, fmt.Errorf("proplet.interval: %w", err))
	}
	n := cfg.Proplet.ways()
	if cfg.Proplet.Self {
		n++
	}
	if n > 1 {
		add("proplet: set only one of pid, pid_file, match and self")
	}
	if err := cfg.Proplet.check(); err != nil {
		errs = append(errs, admission.Under("proplet", err))
	}

	ids := map[string]int{}
	for i, t := range cfg.Tasks {
		key := fmt.Sprintf("tasks[%d]", i)
		if j, dup := ids[t.ID]; dup && t.ID != "" {
			add("%s.id: %s is also the id of tasks[%d]", key, admission.Quote(t.ID), j)
		} else {
			ids[t.ID] = i
		}
		if _, _, err := policy.Admit(t.request()); err != nil {
			errs = append(errs, admission.Under(key, err))
		}
	}
	for i, r := range cfg.Discovery {
		if _, err := cfg.rule(policy, r); err != nil {
			errs = append(errs, admission.Under(fmt.Sprintf("discovery[%d]", i), err))
		}
	}
	return errors.Join(errs...)
}

// policy is the admission policy every door uses: the profiles, the two defaults and the
// cgroup mount every task's cgroup must lie under. Notes say which custom profiles' history
// sizes were capped.
func (cfg *Config) policy() (admission.Policy, []string, error) {
	p, notes, err := admission.NewPolicy(cfg.Profiles, cfg.DefaultProfile, cfg.DaemonProfile)
	p.CgroupRoot = cfg.CgroupRoot
	return p, notes, err
}

// rule compiles a discovery rule, with its profile resolved as a task's would be.
func (cfg *Config) rule(policy admission.Policy, r DiscoveryRule) (monitor.Rule, error) {
	var errs []error
	m, err := procmatch.Compile(r.Match)
	switch {
	case err != nil:
		errs = append(errs, admission.Under("match", err))
	case !m.CapturesTask():
		errs = append(errs, &admission.FieldError{Field: "match", Msg: "needs a (?P<task_id>...) named capture in executable, cmdline or environ"})
	}
	name, p, _, err := policy.ResolveProfile(r.Profile, r.MonitoringProfile, false)
	if err != nil {
		errs = append(errs, err)
	}
	return monitor.Rule{Match: m, ProfileName: name, Profile: p, IncludeChildren: r.IncludeChildren}, errors.Join(errs...)
}

// controlPlane is the control plane's configuration: how a started task is found, and the
// policy that admits it.
func (cfg *Config) controlPlane(policy admission.Policy) controlplane.Config {
	p := cfg.Propeller.Get()
	cp := controlplane.Config{
		DomainID: p.DomainID, ChannelID: p.ChannelID, PropletID: cfg.PropletID,
		TaskMatch: p.TaskMatch, InProcess: p.InProcess, TaskCgroup: p.TaskCgroup, Policy: policy,
		ExportAlways: p.ExportToMQTT == ExportAlways,
	}
	// Started tasks are children of the proplet process the collector has bound, wherever
	// proplet: finds it, run by the proplet's user (procmatch.Spec.Proplet).
	bound := &procmatch.Spec{Proplet: true}
	switch pl := cfg.Proplet; {
	case pl.PID != 0:
		cp.Parent.ParentPID, cp.Parent.Parent = pl.PID, bound
	case pl.PIDFile != "":
		cp.Parent.ParentPIDFile, cp.Parent.Parent = pl.PIDFile, bound
	case pl.Match != nil:
		parent := *pl.Rule()
		parent.Proplet = true
		cp.Parent.Parent = &parent
	case pl.Self:
		cp.Parent.ParentPID, cp.Parent.Parent = int32(os.Getpid()), bound
	default:
		// No proplet to anchor them: a started task's process must at least be the
		// collector's user's, as a proplet found by a rule must.
		if cp.TaskMatch.IsZero() {
			cp.TaskMatch = controlplane.DefaultTaskMatch
		}
		if cp.TaskMatch.Owner == "" {
			cp.TaskMatch.Owner = defaultOwner()
		}
	}
	return cp
}

// Rule returns the proplet rule as it is applied: match, with owner defaulting to root and the
// user the collector runs as (defaultOwner). Nil without a match rule.
func (pl PropletConfig) Rule() *procmatch.Spec {
	if pl.Match == nil {
		return nil
	}
	r := *pl.Match
	if r.Owner == "" {
		r.Owner = defaultOwner()
	}
	return &r
}

// defaultOwner is the owner a proplet rule without one requires: root, or the user the
// collector runs as (the packaged service's otelcol-propeller, or whoever runs it by hand).
// Another user's process named like the proplet is never the proplet: nobody runs a process
// as another user without that user's privileges, and these two are as trusted as the
// collector itself (root can change it; its own user can change what it publishes). The user
// who owns the first process found is not a default: that is whoever started a program named
// proplet first, an attacker's after a proplet restart. A proplet that runs as a user of its
// own (`propeller`) is named with match.owner.
func defaultOwner() string {
	if uid := os.Geteuid(); uid != 0 {
		return "0," + strconv.Itoa(uid)
	}
	return "0"
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
			return admission.Under("match", err)
		}
	}
	return nil
}
