package propletreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/controlplane"
	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/taskapi"
)

// doorRequest is one task request, written by each test case once and rendered into each
// door's own format: configuration YAML, a task API body, a Propeller start request.
type doorRequest struct {
	id, name string
	daemon   bool
	profile  string  // a profile name; the control plane cannot send one
	interval float64 // inline monitoring_profile interval in seconds; 0: not set
	history  int     // inline history_size; 0: not set
	noCPU    bool    // inline collect_cpu: false
}

// propletPID is the proplet process the control plane's started tasks must be children of.
const propletPID = 4242

func (r doorRequest) inline() bool { return r.interval != 0 || r.history != 0 || r.noCPU }

// wireProfile is the inline profile in Propeller's JSON keys (interval in seconds).
func (r doorRequest) wireProfile() map[string]any {
	p := map[string]any{}
	if r.interval != 0 {
		p["interval"] = r.interval
	}
	if r.history != 0 {
		p["history_size"] = r.history
	}
	if r.noCPU {
		p["collect_cpu"] = false
	}
	return p
}

// match is the rule the control plane builds for a started task: the default task_match,
// filled, restricted to children of the proplet.
func (r doorRequest) match() map[string]any {
	return map[string]any{"cmdline": regexp.QuoteMeta(r.id), "parent_pid": propletPID}
}

func doorConfig(t *testing.T, extra map[string]any) *Config {
	t.Helper()
	raw := map[string]any{
		"proplet_id": "proplet-1",
		"proplet":    map[string]any{"pid": propletPID},
		"profiles":   map[string]any{"fast": map[string]any{"interval": "1s"}},
		"propeller":  map[string]any{"domain_id": "d", "channel_id": "c"},
	}
	for k, v := range extra {
		raw[k] = v
	}
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, confmap.NewFromStringMap(raw).Unmarshal(cfg))
	return cfg
}

// viaConfig admits the request as a task of the configuration, decoded from YAML as the
// Collector decodes it.
func viaConfig(t *testing.T, r doorRequest) (admission.Spec, string) {
	task := map[string]any{"id": r.id, "name": r.name, "daemon": r.daemon, "match": r.match()}
	if r.profile != "" {
		task["profile"] = r.profile
	}
	if r.inline() {
		p := r.wireProfile()
		if r.interval != 0 {
			p["interval"] = time.Duration(r.interval * float64(time.Second)).String()
		}
		task["monitoring_profile"] = p
	}
	cfg := doorConfig(t, map[string]any{"tasks": []any{task}})
	if err := confmap.Validate(cfg); err != nil {
		return admission.Spec{}, strings.ReplaceAll(strings.TrimPrefix(err.Error(), "receivers::proplet: "), "tasks[0].", "")
	}
	mc, _, err := cfg.monitorConfig(zap.NewNop())
	require.NoError(t, err, "Validate passed, so the monitor's configuration must build")
	return mc.Tasks[0], ""
}

// registry records what a door registered.
type registry struct{ added []admission.Spec }

func (g *registry) AddTask(spec admission.Spec) error             { g.added = append(g.added, spec); return nil }
func (*registry) SetProfile(string, string, profile.Profile) bool { return true }
func (*registry) EndTask(context.Context, string, admission.Origin) (bool, error) {
	return true, nil
}
func (*registry) Collect(string) bool                { return true }
func (*registry) CollectAll() int                    { return 0 }
func (*registry) Tasks() []monitor.Status            { return nil }
func (*registry) Task(string) (monitor.Status, bool) { return monitor.Status{}, false }

// viaAPI admits the request as a POST /tasks body.
func viaAPI(t *testing.T, r doorRequest) (admission.Spec, string) {
	body := map[string]any{"id": r.id, "name": r.name, "daemon": r.daemon, "match": r.match()}
	if r.profile != "" {
		body["profile"] = r.profile
	}
	if r.inline() {
		body["monitoring_profile"] = r.wireProfile()
	}
	b, err := json.Marshal(body)
	require.NoError(t, err)
	cfg := doorConfig(t, nil)
	policy, _, err := cfg.policy()
	require.NoError(t, err)
	reg := &registry{}
	rec := httptest.NewRecorder()
	taskapi.New(taskapi.Config{Registry: reg, Policy: policy}).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/tasks", strings.NewReader(string(b))))
	if rec.Code != http.StatusCreated {
		var e struct{ Error string }
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		require.Equal(t, http.StatusBadRequest, rec.Code, e.Error)
		return admission.Spec{}, e.Error
	}
	require.Len(t, reg.added, 1)
	return reg.added[0], ""
}

// viaControlPlane admits the request as a Propeller start request.
func viaControlPlane(t *testing.T, r doorRequest) (admission.Spec, string) {
	req := map[string]any{"id": r.id, "name": r.name, "daemon": r.daemon, "state": 0, "cli_args": []any{}}
	if r.inline() {
		req["monitoring_profile"] = r.wireProfile()
	}
	b, err := json.Marshal(req)
	require.NoError(t, err)
	cfg := doorConfig(t, nil)
	policy, _, err := cfg.policy()
	require.NoError(t, err)
	reg := &registry{}
	err = controlplane.New(cfg.controlPlane(policy), reg, zap.NewNop(), nil).HandleStart(context.Background(), b)
	if err != nil {
		return admission.Spec{}, strings.TrimPrefix(err.Error(), fmt.Sprintf("task %s: ", admission.Quote(r.id)))
	}
	require.Len(t, reg.added, 1)
	return reg.added[0], ""
}

// comparable is a spec with its compiled matcher replaced by the rule it was compiled from.
type comparable struct {
	admission.Spec
	Match procmatch.Spec
}

func view(s admission.Spec) comparable {
	c := comparable{Spec: s}
	if s.Locator.Match != nil {
		c.Match = s.Locator.Match.Spec()
		c.Spec.Locator.Match = nil
	}
	return c
}

func builtin(name string) profile.Profile {
	p, _ := profile.Builtin(name)
	return p
}

func with(p profile.Profile, change func(*profile.Profile)) profile.Profile {
	change(&p)
	return p
}

// TestEveryDoorAdmitsAlike feeds the same requests through the configuration, the task API
// and the control plane, and asserts identical specs and identical errors.
func TestEveryDoorAdmitsAlike(t *testing.T) {
	t.Parallel()
	id := "550e8400-e29b-41d4-a716-446655440001"
	standard, daemon := builtin(profile.Standard), builtin(profile.LongRunningDaemon)
	tests := []struct {
		name        string
		req         doorRequest
		profileName string
		profile     profile.Profile
		err         string
		noMQTT      bool // names a profile, which a start request cannot
	}{
		{name: "no profile", req: doorRequest{id: id, name: "n"}, profileName: profile.Standard, profile: standard},
		{name: "daemon without a profile", req: doorRequest{id: id, daemon: true}, profileName: profile.LongRunningDaemon, profile: daemon},
		{name: "inline over the default", req: doorRequest{id: id, interval: 5},
			profileName: profile.Inline, profile: with(standard, func(p *profile.Profile) { p.Interval = 5 * time.Second })},
		{name: "inline over the daemon profile", req: doorRequest{id: id, daemon: true, noCPU: true},
			profileName: profile.Inline, profile: with(daemon, func(p *profile.Profile) { p.CollectCPU = false })},
		{name: "history capped", req: doorRequest{id: id, history: 20_000},
			profileName: profile.Inline, profile: with(standard, func(p *profile.Profile) { p.HistorySize = profile.MaxHistorySize })},
		{name: "named profile", req: doorRequest{id: id, daemon: true, profile: "fast"}, noMQTT: true,
			profileName: "fast", profile: with(standard, func(p *profile.Profile) { p.Interval = time.Second })},
		{name: "interval too short", req: doorRequest{id: id, interval: 0.05}, err: "monitoring_profile.interval: must be at least 100ms, got 50ms"},
		{name: "negative history", req: doorRequest{id: id, history: -3}, err: "history_size: must be a whole number, 0 or more, got -3", noMQTT: false},
		{name: "NUL in the id", req: doorRequest{id: "a\x00b"}, err: `id: may hold only A-Z, a-z, 0-9, '.', '_' and '-', got "a\x00b"`},
		{name: "a path in the id", req: doorRequest{id: "x/../.."}, err: `id: may hold only A-Z, a-z, 0-9, '.', '_' and '-', got "x/../.."`},
		{name: "id too long", req: doorRequest{id: strings.Repeat("x", 200)}, err: "id: 200 bytes long, at most 36"},
		{name: "control character in the name", req: doorRequest{id: id, name: "a\x01b"}, err: `name: must not contain U+0001, got "a\x01b"`},
		{name: "name too long", req: doorRequest{id: id, name: strings.Repeat("n", 300)}, err: "name: 300 bytes long, at most 256"},
		{name: "unknown profile", req: doorRequest{id: id, profile: "nope"}, noMQTT: true,
			err: `profile: unknown profile "nope" (known: batch_processing, disabled, fast, intensive, long_running_daemon, minimal, realtime_api, standard)`},
	}
	doors := []struct {
		name   string
		admit  func(*testing.T, doorRequest) (admission.Spec, string)
		origin admission.Origin // the only difference: the door owns the task
	}{{"configuration", viaConfig, admission.OriginConfig}, {"task API", viaAPI, admission.OriginTaskAPI}, {"control plane", viaControlPlane, admission.OriginManager}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want comparable
			if tt.err == "" {
				want = comparable{
					Spec:  admission.Spec{ID: tt.req.id, Name: tt.req.name, Daemon: tt.req.daemon, ProfileName: tt.profileName, Profile: tt.profile},
					Match: procmatch.Spec{Cmdline: regexp.QuoteMeta(tt.req.id), ParentPID: propletPID},
				}
			}
			for _, door := range doors {
				if tt.noMQTT && door.name == "control plane" {
					continue
				}
				spec, errText := door.admit(t, tt.req)
				if tt.err != "" {
					// The configuration decodes history_size as a number, so a negative one
					// reaches admission; the wire format refuses it while decoding.
					if door.name == "configuration" && tt.req.history < 0 {
						assert.Equal(t, "monitoring_profile.history_size: must not be negative, got -3", errText, door.name)
						continue
					}
					assert.Contains(t, errText, tt.err, door.name)
					continue
				}
				assert.Empty(t, errText, door.name)
				w := want
				w.Origin = door.origin
				if door.name == "control plane" {
					// A started task's process must also be a child of the proplet the
					// collector bound, run by its user.
					w.Match.Parent = &procmatch.Spec{Proplet: true}
				}
				assert.Equal(t, w, view(spec), door.name)
			}
		})
	}
}

// TestDaemonTaskFromTheAPIGetsTheDaemonProfile is the defect where POST /tasks with
// "daemon": true got standard because default_profile is always set.
func TestDaemonTaskFromTheAPIGetsTheDaemonProfile(t *testing.T) {
	t.Parallel()
	spec, errText := viaAPI(t, doorRequest{id: "d", daemon: true})
	require.Empty(t, errText)
	assert.Equal(t, profile.LongRunningDaemon, spec.ProfileName)
	assert.Equal(t, 120*time.Second, spec.Profile.Interval)
}

// TestTaskMatchReplacesTheDefault is the defect where a task_match the user set was merged
// with the default cmdline rule, so a task found by its environment alone stayed pending.
func TestTaskMatchReplacesTheDefault(t *testing.T) {
	t.Parallel()
	cfg := doorConfig(t, map[string]any{"propeller": map[string]any{
		"domain_id": "d", "channel_id": "c", "task_match": map[string]any{"environ": "^PTASK={task_id}$"},
	}})
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, procmatch.Spec{Environ: "^PTASK={task_id}$"}, cfg.Propeller.Get().TaskMatch)
	policy, _, err := cfg.policy()
	require.NoError(t, err)
	reg := &registry{}
	require.NoError(t, controlplane.New(cfg.controlPlane(policy), reg, zap.NewNop(), nil).HandleStart(context.Background(), []byte(`{"id":"t-1"}`)))
	require.Len(t, reg.added, 1)
	bound := &procmatch.Spec{Proplet: true}
	assert.Equal(t, procmatch.Spec{Environ: "^PTASK=t-1$", ParentPID: propletPID, Parent: bound}, reg.added[0].Locator.Match.Spec(),
		"no cmdline condition: the rule the user set replaces the default")

	// Without a task_match, the default applies.
	cfg = doorConfig(t, nil)
	require.NoError(t, confmap.Validate(cfg))
	assert.True(t, cfg.Propeller.Get().TaskMatch.IsZero())
	reg = &registry{}
	require.NoError(t, controlplane.New(cfg.controlPlane(policy), reg, zap.NewNop(), nil).HandleStart(context.Background(), []byte(`{"id":"t-1"}`)))
	assert.Equal(t, procmatch.Spec{Cmdline: "t-1", ParentPID: propletPID, Parent: bound}, reg.added[0].Locator.Match.Spec())
}

// TestBlocksWithDefaultsAreReplacedOrMergedOnPurpose decodes every configuration block that has
// a non-empty default and checks what setting one of its keys does to the others.
func TestBlocksWithDefaultsAreReplacedOrMergedOnPurpose(t *testing.T) {
	t.Parallel()
	cfg := doorConfig(t, map[string]any{
		"api":       map[string]any{"endpoint": "127.0.0.1:9999"},
		"propeller": map[string]any{"domain_id": "d", "channel_id": "c", "username": "u"},
		"proplet":   map[string]any{"pid_file": "/run/p.pid"},
	})
	require.NoError(t, confmap.Validate(cfg))
	api := cfg.API.Get()
	assert.Equal(t, "127.0.0.1:9999", api.Server.NetAddr.Endpoint)
	assert.Equal(t, int64(64<<10), api.Server.MaxRequestBodySize, "api: the body limit default stays")
	p := cfg.Propeller.Get()
	assert.Equal(t, "u", p.Username)
	assert.Equal(t, "tcp://127.0.0.1:1883", p.Endpoint, "propeller: connection defaults stay, as in the exporter")
	assert.Equal(t, 30*time.Second, p.KeepAlive)
	assert.Equal(t, "/run/p.pid", cfg.Proplet.PIDFile)
	assert.Equal(t, 10*time.Second, cfg.Proplet.Interval, "proplet: the interval default stays")
	assert.True(t, p.TaskMatch.IsZero(), "task_match has no default to merge with")
}

// TestAPIKeysAreDecoded decodes the api block as the Collector does: every key, the server's
// and the API's own. (confighttp.ServerConfig has an Unmarshal method; embedded, it was promoted
// and only the server's keys were decoded, so bearer_token was silently dropped.)
func TestAPIKeysAreDecoded(t *testing.T) {
	t.Parallel()
	cfg := doorConfig(t, map[string]any{"api": map[string]any{
		"endpoint": "127.0.0.1:9999", "bearer_token": "secret", "max_request_body_size": 1000,
	}})
	api := cfg.API.Get()
	assert.Equal(t, "127.0.0.1:9999", api.Server.NetAddr.Endpoint)
	assert.Equal(t, int64(1000), api.Server.MaxRequestBodySize)
	assert.Equal(t, "secret", string(api.BearerToken))

	cfg = doorConfig(t, map[string]any{"api": map[string]any{"bearer_token_file": "/etc/token"}})
	assert.Equal(t, "/etc/token", cfg.API.Get().BearerTokenFile)

	cfg = doorConfig(t, map[string]any{"api": map[string]any{"bearer_token": "a", "bearer_token_file": "/etc/token"}})
	assert.ErrorContains(t, confmap.Validate(cfg), "api: set bearer_token or bearer_token_file, not both")

	raw := createDefaultConfig().(*Config)
	err := confmap.NewFromStringMap(map[string]any{"api": map[string]any{"bearer_tokn": "typo"}}).Unmarshal(raw)
	assert.ErrorContains(t, err, "bearer_tokn", "an unknown key is still an error")
}
