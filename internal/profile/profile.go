// Package profile defines Propeller's monitoring profiles: how often a task is sampled, which
// of its metrics are read, whether they are published to MQTT, and how much history the
// exporter keeps for Propeller's "aggregated" block.
package profile // import "github.com/otelcol-propeller/otelcol-propeller/internal/profile"

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	// MinInterval is the shortest sampling interval accepted.
	MinInterval = 100 * time.Millisecond
	// MaxHistorySize caps history_size; larger values are lowered to it (with a warning from
	// the caller), since the history is kept in memory per task.
	MaxHistorySize = 10000

	// DefaultMemoryWarning is the share of a task's memory limit above which it is sampled at
	// its memory_warning_interval and an early warning is sent (memory_warning).
	DefaultMemoryWarning = 0.9
	// DefaultMemoryWarningInterval is the sampling interval of a task above its memory
	// warning share (memory_warning_interval), or the profile's interval when that is shorter.
	DefaultMemoryWarningInterval = time.Second

	// Standard is the default profile of non-daemon tasks.
	Standard = "standard"
	// LongRunningDaemon is the default profile of daemon tasks.
	LongRunningDaemon = "long_running_daemon"
	// Inline names a profile given in full with the task rather than by name.
	Inline = "inline"
)

// Profile is one task's monitoring profile. Field names follow Propeller's JSON keys, but for
// collect_waits, this distribution's own: Propeller's proplets and manager know no such key, so
// a profile they send keeps the waits of the profile it is applied to (on in `standard`).
type Profile struct {
	Enabled                bool          // sample the task at all
	Interval               time.Duration // time between two samples
	CollectCPU             bool          // CPU times and utilisation (/proc/<pid>/stat)
	CollectMemory          bool          // RSS, virtual size, utilisation (/proc/<pid>/stat)
	CollectDiskIO          bool          // storage bytes (/proc/<pid>/io)
	CollectNetworkIO       bool          // network bytes, only for tasks in their own network namespace
	CollectThreads         bool          // thread count (/proc/<pid>/stat)
	CollectFileDescriptors bool          // open file descriptors (/proc/<pid>/fd)
	CollectWaits           bool          // run-queue and block I/O delay (/proc/<pid>/schedstat, stat); the cgroup's pressure stall and throttling
	ExportToMQTT           bool          // publish to Propeller's MQTT topics
	RetainHistory          bool          // keep a window of samples for the aggregated block
	HistorySize            int           // length of that window

	// MemoryLimit is the memory limit the early warning measures the task against, in bytes;
	// 0 takes the limit of the task's cgroup. It wins over the cgroup's when set.
	MemoryLimit uint64
	// MemoryWarning is the share of the limit (0-1, exclusive) above which the task is sampled
	// every MemoryWarningInterval and a propeller.task.memory.high event is sent; 0 is off.
	MemoryWarning float64
	// MemoryWarningInterval is the sampling interval while the task is above MemoryWarning; at
	// least MinInterval and at most Interval.
	MemoryWarningInterval time.Duration
}

// Built-in profiles, with the values Propeller's implementations have used, and the memory
// warning's defaults (warned).
var builtins = map[string]Profile{
	Standard:          all(10*time.Second, true, 100),
	LongRunningDaemon: all(120*time.Second, true, 500),
	"intensive":       all(1*time.Second, true, 1000),
	"realtime_api": warned(Profile{
		Enabled: true, Interval: 5 * time.Second,
		CollectCPU: true, CollectMemory: true, CollectNetworkIO: true, CollectThreads: true, CollectFileDescriptors: true,
		CollectWaits: true, ExportToMQTT: true, RetainHistory: true, HistorySize: 500,
	}),
	"batch_processing": warned(Profile{
		Enabled: true, Interval: 30 * time.Second,
		CollectCPU: true, CollectMemory: true, CollectDiskIO: true, CollectWaits: true,
		ExportToMQTT: true, RetainHistory: true, HistorySize: 200,
	}),
	"minimal": warned(Profile{
		Enabled: true, Interval: 60 * time.Second,
		CollectCPU: true, CollectMemory: true,
	}),
	"disabled": warned(Profile{Interval: 60 * time.Second}),
}

func all(interval time.Duration, export bool, history int) Profile {
	return warned(Profile{
		Enabled: true, Interval: interval,
		CollectCPU: true, CollectMemory: true, CollectDiskIO: true, CollectNetworkIO: true,
		CollectThreads: true, CollectFileDescriptors: true, CollectWaits: true,
		ExportToMQTT: export, RetainHistory: true, HistorySize: history,
	})
}

// warned sets the memory warning's defaults: the share, and the interval (the profile's own
// when it is shorter).
func warned(p Profile) Profile {
	p.MemoryWarning = DefaultMemoryWarning
	p.MemoryWarningInterval = min(DefaultMemoryWarningInterval, p.Interval)
	return p
}

// Builtin returns the built-in profile with the given name.
func Builtin(name string) (Profile, bool) {
	p, ok := builtins[name]
	return p, ok
}

// Default returns the name of the profile a task gets when none is given.
func Default(daemon bool) string {
	if daemon {
		return LongRunningDaemon
	}
	return Standard
}

// Validate reports a profile that cannot be sampled. Errors name the key and the value.
func (p Profile) Validate() error {
	var errs []error
	intervalErr := CheckInterval(p.Interval)
	if intervalErr != nil {
		errs = append(errs, fmt.Errorf("interval: %w", intervalErr))
	}
	if p.HistorySize < 0 {
		errs = append(errs, fmt.Errorf("history_size: must not be negative, got %d", p.HistorySize))
	}
	// Written so that NaN is refused too.
	if !(p.MemoryWarning >= 0 && p.MemoryWarning < 1) {
		errs = append(errs, fmt.Errorf("memory_warning: must be a share of the memory limit, at least 0 (off) and below 1 (0.9 is 90%%), got %v", p.MemoryWarning))
	}
	// A warning interval inherited from a profile follows its interval: when that is wrong,
	// only the interval is said.
	if p.MemoryWarning > 0 && intervalErr == nil {
		switch err := CheckInterval(p.MemoryWarningInterval); {
		case err != nil:
			errs = append(errs, fmt.Errorf("memory_warning_interval: %w", err))
		case p.MemoryWarningInterval > p.Interval:
			errs = append(errs, fmt.Errorf("memory_warning_interval: must be at most interval (%s), got %s: it is the faster sampling of a task near its memory limit", p.Interval, p.MemoryWarningInterval))
		}
	}
	return errors.Join(errs...)
}

// CheckInterval reports a sampling interval shorter than MinInterval, naming the value; for a
// value that looks like a number written without a unit it says what to write instead.
func CheckInterval(d time.Duration) error {
	if d >= MinInterval {
		return nil
	}
	return fmt.Errorf("must be at least %s, got %s%s", MinInterval, d, UnitHint(d))
}

// UnitHint explains a duration that is most likely a number written without a unit, which
// the Collector's configuration reads as nanoseconds (`interval: 10` is 10ns, where Propeller's
// JSON means seconds): " (a number without a unit is nanoseconds: write 10s)". It returns ""
// for any duration of 1ms or more, or not positive.
func UnitHint(d time.Duration) string {
	switch {
	case d <= 0 || d >= time.Millisecond:
		return ""
	case d < time.Microsecond:
		return fmt.Sprintf(" (a number without a unit is nanoseconds: write %ds)", int64(d))
	default:
		return " (a number without a unit is nanoseconds: write the unit, as in 10s or 500ms)"
	}
}

// Capped returns p with HistorySize lowered to MaxHistorySize, and whether it was lowered.
func (p Profile) Capped() (Profile, bool) {
	if p.HistorySize > MaxHistorySize {
		p.HistorySize = MaxHistorySize
		return p, true
	}
	return p, false
}

// Overrides is a partial profile, as users write it: every key is optional and a missing
// key keeps the value of the profile it is applied to (Propeller's `standard` for custom
// profiles).
type Overrides struct {
	Enabled                *bool          `mapstructure:"enabled"`
	Interval               *time.Duration `mapstructure:"interval"`
	CollectCPU             *bool          `mapstructure:"collect_cpu"`
	CollectMemory          *bool          `mapstructure:"collect_memory"`
	CollectDiskIO          *bool          `mapstructure:"collect_disk_io"`
	CollectNetworkIO       *bool          `mapstructure:"collect_network_io"`
	CollectThreads         *bool          `mapstructure:"collect_threads"`
	CollectFileDescriptors *bool          `mapstructure:"collect_file_descriptors"`
	CollectWaits           *bool          `mapstructure:"collect_waits"`
	ExportToMQTT           *bool          `mapstructure:"export_to_mqtt"`
	RetainHistory          *bool          `mapstructure:"retain_history"`
	HistorySize            *int           `mapstructure:"history_size"`
	MemoryLimit            *Bytes         `mapstructure:"memory_limit"`
	MemoryWarning          *float64       `mapstructure:"memory_warning"`
	MemoryWarningInterval  *time.Duration `mapstructure:"memory_warning_interval"`
}

// Apply returns base with every key set in o replaced.
func (o Overrides) Apply(base Profile) Profile {
	setBool(&base.Enabled, o.Enabled)
	setBool(&base.CollectCPU, o.CollectCPU)
	setBool(&base.CollectMemory, o.CollectMemory)
	setBool(&base.CollectDiskIO, o.CollectDiskIO)
	setBool(&base.CollectNetworkIO, o.CollectNetworkIO)
	setBool(&base.CollectThreads, o.CollectThreads)
	setBool(&base.CollectFileDescriptors, o.CollectFileDescriptors)
	setBool(&base.CollectWaits, o.CollectWaits)
	setBool(&base.ExportToMQTT, o.ExportToMQTT)
	setBool(&base.RetainHistory, o.RetainHistory)
	if o.Interval != nil {
		base.Interval = *o.Interval
	}
	if o.HistorySize != nil {
		base.HistorySize = *o.HistorySize
	}
	if o.MemoryLimit != nil {
		base.MemoryLimit = uint64(*o.MemoryLimit)
	}
	if o.MemoryWarning != nil {
		base.MemoryWarning = *o.MemoryWarning
	}
	switch {
	case o.MemoryWarningInterval != nil:
		base.MemoryWarningInterval = *o.MemoryWarningInterval
	case o.Interval != nil:
		// An inherited warning interval follows a shorter interval: a profile that only sets
		// `interval: 500ms` is valid.
		base.MemoryWarningInterval = min(base.MemoryWarningInterval, base.Interval)
	}
	return base
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

// Set is the profiles a receiver knows: the built-ins plus the user's custom ones, which
// may also redefine a built-in name.
type Set map[string]Profile

// NewSet returns the built-in profiles with each custom profile applied over `standard`.
func NewSet(custom map[string]Overrides) Set {
	s := make(Set, len(builtins)+len(custom))
	for n, p := range builtins {
		s[n] = p
	}
	for n, o := range custom {
		s[n] = o.Apply(builtins[Standard])
	}
	return s
}

// Bytes is a number of bytes as the configuration writes it: a whole number (67108864). A size
// with a unit ("64MiB") is refused with the number to write instead of being guessed at.
type Bytes uint64

// UnmarshalText reads a number of bytes written as a string; the configuration hands a YAML
// number to the field directly.
func (b *Bytes) UnmarshalText(text []byte) error {
	v, err := strconv.ParseUint(strings.TrimSpace(string(text)), 10, 64)
	if err != nil {
		return fmt.Errorf("must be a whole number of bytes (67108864 for 64 MiB), got %q", text)
	}
	*b = Bytes(v)
	return nil
}
