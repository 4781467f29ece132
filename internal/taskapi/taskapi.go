// Package taskapi is the HTTP API to register, inspect, re-profile, stop and sample tasks
// at run time, beside the configuration and the manager's start and stop requests:
// POST/GET /tasks, GET/DELETE /tasks/{id}, PUT /tasks/{id}/profile, POST /tasks/{id}/collect,
// POST /collect and GET /health. Every error is a JSON body with a
// 4xx or 5xx status; no input makes it panic.
package taskapi // import "github.com/otelcol-propeller/otelcol-propeller/internal/taskapi"

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

// maxBody is the largest request body accepted.
const maxBody = 64 << 10

// Registry is what the API drives: the monitor.
type Registry interface {
	AddTask(spec admission.Spec) error
	// EndTask stops a task when door may end it; an *admission.OwnerError when it may not.
	EndTask(ctx context.Context, id string, door admission.Origin) (bool, error)
	SetProfile(id, name string, p profile.Profile) bool
	Collect(id string) bool
	CollectAll() int
	Tasks() []monitor.Status
	Task(id string) (monitor.Status, bool)
}

// Config configures the handler.
type Config struct {
	Registry Registry
	// Policy admits tasks, as it does for the configuration and the control plane.
	Policy admission.Policy
	// Token, when set, must be presented as "Authorization: Bearer <token>".
	Token string
	// Refused is told of every task the API refuses (400, 403 for a task another door owns,
	// or 409 from the registry), with the reason (admission.Reason, admission.NotOwnerReason,
	// or the registry's); it may be nil. The client gets the error
	// either way.
	Refused func(reason string, err error)
	// BindWait is how long POST /tasks waits for the process of a task created with a pid to
	// be bound, so the answer gives the task's state and pid, not "pending"; 0 means
	// DefaultBindWait.
	BindWait time.Duration
}

// DefaultBindWait is how long POST /tasks waits for a given pid to be bound. The monitor
// looks for a new task's process at once, so a live pid is bound in milliseconds; the wait
// only runs out for a pid that is not running.
const DefaultBindWait = time.Second

// bindPoll is how often the wait looks at the task's state.
const bindPoll = 5 * time.Millisecond

// New returns the API's handler.
func New(cfg Config) http.Handler {
	if cfg.Refused == nil {
		cfg.Refused = func(string, error) {}
	}
	if cfg.BindWait <= 0 {
		cfg.BindWait = DefaultBindWait
	}
	a := &api{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", a.health)
	mux.HandleFunc("GET /tasks", a.list)
	mux.HandleFunc("POST /tasks", a.create)
	mux.HandleFunc("GET /tasks/{id}", a.get)
	mux.HandleFunc("DELETE /tasks/{id}", a.remove)
	mux.HandleFunc("PUT /tasks/{id}/profile", a.setProfile)
	mux.HandleFunc("POST /tasks/{id}/collect", a.collect)
	mux.HandleFunc("POST /collect", a.collectAll)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowed(r.URL.Path); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})
	return a.authenticate(mux)
}

type api struct{ cfg Config }

// allowed returns the methods of a known path, for a 405 answer.
func allowed(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case path == "/health":
		return "GET"
	case path == "/collect":
		return "POST"
	case path == "/tasks":
		return "GET, POST"
	case len(parts) == 2 && parts[0] == "tasks":
		return "GET, DELETE"
	case len(parts) == 3 && parts[0] == "tasks" && parts[2] == "profile":
		return "PUT"
	case len(parts) == 3 && parts[0] == "tasks" && parts[2] == "collect":
		return "POST"
	}
	return ""
}

func (a *api) authenticate(next http.Handler) http.Handler {
	if a.cfg.Token == "" {
		return next
	}
	want := []byte("Bearer " + a.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="otelcol-propeller"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// taskView is a task as the API shows it.
type taskView struct {
	ID                string      `json:"id"`
	Name              string      `json:"name,omitempty"`
	PID               int32       `json:"pid,omitempty"`
	Profile           string      `json:"profile"`
	MonitoringProfile profileView `json:"monitoring_profile"`
	State             string      `json:"state"`
	LastSample        *time.Time  `json:"last_sample"`
	Samples           uint64      `json:"samples"`
	Errors            uint64      `json:"errors"`
	// Origin is the door the task came through (configuration, task_api, manager,
	// discovery): only that door ends it.
	Origin string `json:"origin"`
	// Warnings say what admission changed in the request (a history size lowered to the cap).
	Warnings []string `json:"warnings,omitempty"`
}

// profileView is a monitoring profile in Propeller's keys, interval in seconds.
type profileView struct {
	Enabled                bool    `json:"enabled"`
	Interval               float64 `json:"interval"`
	CollectCPU             bool    `json:"collect_cpu"`
	CollectMemory          bool    `json:"collect_memory"`
	CollectDiskIO          bool    `json:"collect_disk_io"`
	CollectNetworkIO       bool    `json:"collect_network_io"`
	CollectThreads         bool    `json:"collect_threads"`
	CollectFileDescriptors bool    `json:"collect_file_descriptors"`
	CollectWaits           bool    `json:"collect_waits"`
	ExportToMQTT           bool    `json:"export_to_mqtt"`
	RetainHistory          bool    `json:"retain_history"`
	HistorySize            int     `json:"history_size"`
}

func view(s monitor.Status) taskView {
	p := s.Profile
	v := taskView{
		ID: s.ID, Name: s.Name, PID: s.PID, Profile: s.ProfileName, State: string(s.State),
		Samples: s.Samples, Errors: s.Errors, Origin: s.Origin.String(),
		MonitoringProfile: profileView{
			Enabled: p.Enabled, Interval: p.Interval.Seconds(), CollectCPU: p.CollectCPU, CollectMemory: p.CollectMemory,
			CollectDiskIO: p.CollectDiskIO, CollectNetworkIO: p.CollectNetworkIO, CollectThreads: p.CollectThreads,
			CollectFileDescriptors: p.CollectFileDescriptors, CollectWaits: p.CollectWaits, ExportToMQTT: p.ExportToMQTT,
			RetainHistory: p.RetainHistory, HistorySize: p.HistorySize,
		},
	}
	if !s.LastSample.IsZero() {
		t := s.LastSample.UTC()
		v.LastSample = &t
	}
	return v
}

func (a *api) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "tasks": len(a.cfg.Registry.Tasks())})
}

func (a *api) list(w http.ResponseWriter, _ *http.Request) {
	out := []taskView{}
	for _, s := range a.cfg.Registry.Tasks() {
		out = append(out, view(s))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	s, ok := a.cfg.Registry.Task(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no task %q", r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, view(s))
}

// readBody reads at most maxBody bytes; it writes the error response itself.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxBody))
		} else {
			writeError(w, http.StatusBadRequest, "cannot read body: "+err.Error())
		}
		return nil, false
	}
	return b, true
}

// createRequest is the body of POST /tasks: a Propeller task's fields (id, name, monitoring_profile)
// plus how to find its process.
type createRequest struct {
	ID                string          `json:"id"`
	Name              string          `json:"name"`
	Daemon            bool            `json:"daemon"`
	PID               int32           `json:"pid"`
	PIDFile           string          `json:"pid_file"`
	Match             *procmatch.Spec `json:"match"`
	InProcess         bool            `json:"in_process"`
	Cgroup            string          `json:"cgroup"`
	IncludeChildren   bool            `json:"include_children"`
	Profile           string          `json:"profile"`
	MonitoringProfile json.RawMessage `json:"monitoring_profile"`
}

// decodeCreate decodes a POST /tasks body into an admission request. The request is not
// validated here: admission does that, as for every other door.
func decodeCreate(b []byte) (admission.Request, error) {
	var req createRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return admission.Request{}, fmt.Errorf("invalid JSON body: %w", err)
	}
	inline, err := decodeInline(req.MonitoringProfile)
	if err != nil {
		return admission.Request{}, err
	}
	return admission.Request{
		ID: req.ID, Name: req.Name, Profile: req.Profile, MonitoringProfile: inline, Daemon: req.Daemon,
		PID: req.PID, PIDFile: req.PIDFile, Match: req.Match, InProcess: req.InProcess, Cgroup: req.Cgroup,
		IncludeChildren: req.IncludeChildren,
	}, nil
}

// decodeInline decodes a monitoring_profile in Propeller's wire format; absent or null is none.
func decodeInline(raw json.RawMessage) (*profile.Overrides, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil
	}
	o, err := propeller.DecodeProfile(raw)
	if err != nil {
		return nil, err
	}
	return &o, nil
}

func (a *api) create(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := decodeCreate(b)
	if err != nil {
		a.cfg.Refused("malformed", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	req.Origin = admission.OriginTaskAPI
	spec, notes, err := a.cfg.Policy.Admit(req)
	if err != nil {
		a.cfg.Refused(admission.Reason(err), err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := a.cfg.Registry.AddTask(spec); err != nil {
		reason, status := monitor.RefusalReason(err), http.StatusTooManyRequests
		if reason == "duplicate" {
			status = http.StatusConflict
		}
		a.cfg.Refused(reason, err)
		writeError(w, status, err.Error())
		return
	}
	v := view(a.created(r.Context(), spec))
	v.Warnings = notes
	if v.State == string(monitor.StatePending) && spec.Locator.PID != 0 {
		// A script must tell a wrong pid from a slow bind.
		v.PID = spec.Locator.PID
		v.Warnings = append(v.Warnings, fmt.Sprintf("process %d was not found within %s: the task waits for it until pending_timeout; check the pid", spec.Locator.PID, a.cfg.BindWait))
	}
	w.Header().Set("Location", "/tasks/"+url.PathEscape(spec.ID))
	writeJSON(w, http.StatusCreated, v)
}

// created returns the state of a task just added. For a task created with a pid it waits up
// to BindWait for the first bind, so the answer is the state the task will have ("active",
// with its pid), not a "pending" that only says the monitor has not looked yet.
func (a *api) created(ctx context.Context, spec admission.Spec) monitor.Status {
	s, ok := a.cfg.Registry.Task(spec.ID)
	if !ok || spec.Locator.PID == 0 || s.State != monitor.StatePending {
		return s
	}
	deadline := time.NewTimer(a.cfg.BindWait)
	defer deadline.Stop()
	tick := time.NewTicker(bindPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return s
		case <-deadline.C:
			return s
		case <-tick.C:
		}
		if s, ok = a.cfg.Registry.Task(spec.ID); !ok || s.State != monitor.StatePending {
			return s
		}
	}
}

// remove ends a task the task API created; a task of another door is refused with 403 and
// left running (admission.MayEnd).
func (a *api) remove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	stopped, err := a.cfg.Registry.EndTask(r.Context(), id, admission.OriginTaskAPI)
	if err != nil {
		a.cfg.Refused(admission.NotOwnerReason, err)
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if !stopped {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no task %q", r.PathValue("id")))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// setProfile takes {"profile": "<name>"} or a monitoring profile in Propeller's keys; keys it
// does not set take the values of the profile the task would get without one.
func (a *api) setProfile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	cur, ok := a.cfg.Registry.Task(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no task %q", id))
		return
	}
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var named struct {
		Profile *string `json:"profile"`
	}
	if err := json.Unmarshal(b, &named); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	var name string
	var inline *profile.Overrides
	if named.Profile != nil {
		if name = *named.Profile; name == "" {
			writeError(w, http.StatusBadRequest, "profile: must name a profile")
			return
		}
	} else {
		o, err := propeller.DecodeProfile(b)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		inline = &o
	}
	name, p, notes, err := a.cfg.Policy.ResolveProfile(name, inline, cur.Daemon)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !a.cfg.Registry.SetProfile(id, name, p) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no task %q", id))
		return
	}
	s, _ := a.cfg.Registry.Task(id)
	v := view(s)
	v.Warnings = notes
	writeJSON(w, http.StatusOK, v)
}

func (a *api) collect(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s, ok := a.cfg.Registry.Task(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no task %q", id))
		return
	}
	if !a.cfg.Registry.Collect(id) {
		writeError(w, http.StatusConflict, fmt.Sprintf("task %q is %s: nothing to sample", id, s.State))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"triggered": 1})
}

func (a *api) collectAll(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusAccepted, map[string]any{"triggered": a.cfg.Registry.CollectAll()})
}
