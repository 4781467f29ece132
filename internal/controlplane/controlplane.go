// Package controlplane follows a Propeller manager's task start and stop requests, as a
// proplet does: a start request becomes a monitored task through admission, like a task from
// the configuration or the task API, and a stop request ends it after a last sample.
package controlplane // import "github.com/otelcol-propeller/otelcol-propeller/internal/controlplane"

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

// DefaultTaskMatch finds a started task's process by its id on the command line: the proplet
// runs each task as `wasmtime run ... /tmp/proplet_<task id>.wasm`.
var DefaultTaskMatch = procmatch.Spec{Cmdline: "{task_id}"}

// Registry is what the control plane drives: the monitor.
type Registry interface {
	AddTask(spec admission.Spec) error
	SetProfile(id, name string, p profile.Profile) bool
	// EndTask stops a task when door may end it; an *admission.OwnerError when it may not.
	EndTask(ctx context.Context, id string, door admission.Origin) (bool, error)
	Task(id string) (monitor.Status, bool)
}

// Config says whose requests to follow and how a started task's process is found.
type Config struct {
	// DomainID and ChannelID name the manager's topics, m/{domain}/c/{channel}/control/manager/...
	DomainID, ChannelID string
	// PropletID is this proplet: requests addressed to another proplet are ignored.
	PropletID string
	// TaskMatch finds a started task's process; {task_id} and {task_name} are filled in,
	// quoted. The zero rule means DefaultTaskMatch: a rule the user sets replaces it whole.
	TaskMatch procmatch.Spec
	// Parent restricts a TaskMatch that names no parent to children of the proplet process
	// (only its ParentPID, ParentPIDFile and Parent conditions are used).
	Parent procmatch.Spec
	// InProcess says the proplet runs tasks inside its own process.
	InProcess bool
	// TaskCgroup, when set, is the cgroup v2 directory of a started task, with {task_id} and
	// {task_name} filled in; the task is then measured from it.
	TaskCgroup string
	// Policy admits started tasks, as it does for the configuration and the task API.
	Policy admission.Policy
	// ExportAlways publishes every started task to MQTT whatever the export_to_mqtt of its
	// monitoring profile (`propeller.export_to_mqtt: always`): tasks started with
	// export_to_mqtt false keep the proplet quiet and are published by the collector instead.
	// The rest of the requested profile is honoured.
	ExportAlways bool
}

// Follower follows the control plane. Create it with New, then Start and Stop.
type Follower struct {
	cfg     Config
	reg     Registry
	log     *zap.Logger
	refused *admission.Refusals

	ctx  context.Context // the receiver's run context, for the last sample of a stopped task
	mu   sync.Mutex
	conn *mqttconn.Connection
}

// New returns a follower that registers tasks with reg. count is called, with the reason, for
// every request that cannot be used; it may be nil. Refusals are logged once per reason per
// minute.
func New(cfg Config, reg Registry, log *zap.Logger, count func(reason string)) *Follower {
	return &Follower{cfg: cfg, reg: reg, log: log, refused: admission.NewRefusals("propeller", log, count), ctx: context.Background()}
}

// Check reports a configuration that could not admit any task: it admits an example start
// request through the same path as real ones. Errors name the key and the value.
func (c Config) Check() error {
	var errs []error
	for _, id := range []struct{ key, value string }{{"domain_id", c.DomainID}, {"channel_id", c.ChannelID}} {
		if reason := propeller.CheckID(id.value); reason != "" {
			errs = append(errs, &admission.FieldError{Field: id.key, Msg: fmt.Sprintf("must be set, at most 36 bytes, without '/', '+', '#', control characters or noncharacters (%s), got %s", reason, admission.Quote(id.value))})
		}
	}
	example := propeller.StartRequest{ID: "00000000-0000-0000-0000-000000000000", Name: "example"}
	req, err := c.Request(example)
	if err == nil {
		_, _, err = c.Policy.Admit(req)
	}
	if err != nil {
		errs = append(errs, c.keyed(err))
	}
	return errors.Join(errs...)
}

// keyed names the configuration key behind an admission error of a started task.
func (c Config) keyed(err error) error {
	var out []error
	for _, e := range admission.Errors(err) {
		var fe *admission.FieldError
		switch {
		case errors.As(e, &fe) && strings.HasPrefix(fe.Field, "match"):
			out = append(out, admission.Under("task_match", &admission.FieldError{Field: strings.TrimPrefix(strings.TrimPrefix(fe.Field, "match"), "."), Msg: fe.Msg}))
		case errors.As(e, &fe) && fe.Field == "cgroup":
			out = append(out, &admission.FieldError{Field: "task_cgroup", Msg: fe.Msg})
		default:
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}

// Request is the admission request of a start request: its id, name, daemon flag and
// monitoring profile, and the way to find its process that the configuration gives. A task
// name that would add or leave a level of the task_cgroup path is refused; the id is checked
// by admission, whose rule allows no separator.
func (c Config) Request(r propeller.StartRequest) (admission.Request, error) {
	req := admission.Request{ID: r.ID, Name: r.Name, Daemon: r.Daemon, MonitoringProfile: r.Profile, ExportAlways: c.ExportAlways, Origin: admission.OriginManager}
	switch {
	case c.TaskCgroup != "":
		if strings.Contains(c.TaskCgroup, "{task_name}") && (strings.Contains(r.Name, "/") || r.Name == "." || r.Name == "..") {
			return req, &admission.FieldError{Field: "name", Msg: fmt.Sprintf("must not hold '/' or be '.' or '..' when task_cgroup uses {task_name}, got %s", admission.Quote(r.Name))}
		}
		req.Cgroup = strings.NewReplacer("{task_id}", r.ID, "{task_name}", r.Name).Replace(c.TaskCgroup)
	case c.InProcess:
		req.InProcess = true
	default:
		rule := c.TaskMatch
		if rule.IsZero() {
			rule = DefaultTaskMatch
		}
		rule = rule.Fill(r.ID, r.Name)
		if rule.ParentPID == 0 && rule.ParentPIDFile == "" && rule.Parent == nil {
			rule.ParentPID, rule.ParentPIDFile, rule.Parent = c.Parent.ParentPID, c.Parent.ParentPIDFile, c.Parent.Parent
		}
		req.Match = &rule
	}
	return req, nil
}

// HandleStart follows one start request. It returns why a request was refused (also counted
// and logged); a request for another proplet is not an error.
func (f *Follower) HandleStart(_ context.Context, payload []byte) error {
	r, err := propeller.DecodeStart(payload)
	if err != nil {
		return f.refuse("malformed", err)
	}
	if !f.forUs(r.PropletID) {
		return nil
	}
	req, err := f.cfg.Request(r)
	if err == nil {
		var spec admission.Spec
		var notes []string
		if spec, notes, err = f.cfg.Policy.Admit(req); err == nil {
			return f.register(spec, notes)
		}
	}
	return f.refuse(admission.Reason(err), fmt.Errorf("task %s: %w", admission.Quote(r.ID), err))
}

// register adds an admitted task, or sets the profile of a task already registered when the
// manager owns it (admission.MayChange): a start request never changes a task of the
// configuration or the task API.
func (f *Follower) register(spec admission.Spec, notes []string) error {
	for _, n := range notes {
		f.log.Warn("Propeller start request adjusted", zap.String("task_id", spec.ID), zap.String("change", n))
	}
	if s, exists := f.reg.Task(spec.ID); exists {
		if err := admission.CheckChange(admission.OriginManager, spec.ID, s.Origin); err != nil {
			return f.refuse(admission.NotOwnerReason, err)
		}
		// The manager starts a task again (a retry, or a new profile): keep it, take the profile.
		f.reg.SetProfile(spec.ID, spec.ProfileName, spec.Profile)
		return nil
	}
	if err := f.reg.AddTask(spec); err != nil {
		return f.refuse(admission.Reason(err), err)
	}
	f.log.Info("Task started by the manager", zap.String("task_id", spec.ID), zap.String("task_name", spec.Name),
		zap.String("profile", spec.ProfileName), zap.Duration("interval", spec.Profile.Interval), zap.Bool("export_to_mqtt", spec.Profile.ExportToMQTT))
	return nil
}

// HandleStop follows one stop request: the task's last sample, then it is gone. A stop of a
// task the manager does not own (admission.MayEnd: one of the configuration or the task API)
// is refused, counted and logged, and the task keeps running.
func (f *Follower) HandleStop(ctx context.Context, payload []byte) error {
	r, err := propeller.DecodeStop(payload)
	if err != nil {
		return f.refuse("malformed", err)
	}
	if !f.forUs(r.PropletID) {
		return nil
	}
	stopped, err := f.reg.EndTask(ctx, r.ID, admission.OriginManager)
	if err != nil {
		return f.refuse(admission.NotOwnerReason, err)
	}
	if stopped {
		f.log.Info("Task stopped by the manager", zap.String("task_id", r.ID))
	}
	return nil
}

// refuse counts a refused request by reason and logs it (once per reason per minute).
func (f *Follower) refuse(reason string, err error) error {
	f.refused.Refuse(reason, err)
	return err
}

// forUs says whether a request addressed to propletID concerns this proplet: a broadcast
// request names none.
func (f *Follower) forUs(propletID string) bool {
	return propletID == "" || propletID == f.cfg.PropletID
}

// topic fills a manager topic (propeller.ManagerStartTopic, ManagerStopTopic) with this
// domain and channel. Check refuses the values that cannot be part of a topic, so it is never
// empty for a configuration that passed it.
func (c Config) topic(template string) string {
	t, _ := propeller.ManagerTopic(template, c.DomainID, c.ChannelID)
	return t
}

// Start connects to the broker and subscribes to the start and stop topics (again after every
// reconnection). ctx lives as long as the follower: stopped tasks' last samples are emitted
// with it. A broker that refuses the credentials is an error; one that cannot be reached yet
// is retried in the background.
func (f *Follower) Start(ctx context.Context, conn mqttconn.ClientConfig) error {
	p, err := conn.Prepare(ctx, "otelcol-propeller-cp-")
	if err != nil {
		return err
	}
	f.ctx = ctx
	opts := p.PahoOptions().
		SetCleanSession(true).
		SetOnConnectHandler(f.subscribe).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			f.log.Warn("Connection to the Propeller broker lost; reconnecting", zap.String("endpoint", conn.Endpoint), zap.Error(err))
		})
	c := p.NewConnection(opts, f.log)
	f.mu.Lock()
	f.conn = c
	f.mu.Unlock()
	return c.Start()
}

// Stop disconnects. It may be called on a follower that never started.
func (f *Follower) Stop() {
	f.mu.Lock()
	c := f.conn
	f.conn = nil
	f.mu.Unlock()
	if c != nil {
		c.Stop()
	}
}

func (f *Follower) subscribe(c paho.Client) {
	handlers := []struct {
		template string
		handle   func(context.Context, []byte) error
	}{{propeller.ManagerStartTopic, f.HandleStart}, {propeller.ManagerStopTopic, f.HandleStop}}
	for _, h := range handlers {
		topic := f.cfg.topic(h.template)
		handle := h.handle
		t := c.Subscribe(topic, 1, func(_ paho.Client, msg paho.Message) { _ = handle(f.ctx, msg.Payload()) })
		if t.WaitTimeout(10*time.Second) && t.Error() != nil {
			f.log.Error("Cannot subscribe to the Propeller control plane", zap.String("topic", topic), zap.Error(t.Error()))
		}
	}
	f.log.Info("Following the Propeller control plane", zap.String("start", f.cfg.topic(propeller.ManagerStartTopic)), zap.String("stop", f.cfg.topic(propeller.ManagerStopTopic)))
}
