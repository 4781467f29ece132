package controlplane

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

// registry records what the control plane asked of the monitor.
type registry struct {
	mu       sync.Mutex
	tasks    map[string]admission.Spec
	profiles []string
	stopped  []string
}

func newRegistry() *registry { return &registry{tasks: map[string]admission.Spec{}} }

func (g *registry) AddTask(spec admission.Spec) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.tasks[spec.ID]; ok {
		return fmt.Errorf("task %s is %w", spec.ID, admission.ErrDuplicate)
	}
	g.tasks[spec.ID] = spec
	return nil
}

func (g *registry) SetProfile(id, name string, _ profile.Profile) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.profiles = append(g.profiles, id+"="+name)
	return true
}

func (g *registry) EndTask(_ context.Context, id string, door admission.Origin) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.tasks[id]
	if ok {
		if err := admission.CheckEnd(door, id, s.Origin); err != nil {
			return false, err
		}
	}
	delete(g.tasks, id)
	g.stopped = append(g.stopped, id)
	return ok, nil
}

func (g *registry) Task(id string) (monitor.Status, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.tasks[id]
	return monitor.Status{ID: s.ID, Origin: s.Origin}, ok
}

func (g *registry) spec(id string) (admission.Spec, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.tasks[id]
	return s, ok
}

func testConfig(t *testing.T) Config {
	t.Helper()
	policy, _, err := admission.NewPolicy(nil, profile.Standard, profile.LongRunningDaemon)
	require.NoError(t, err)
	return Config{DomainID: "d", ChannelID: "c", PropletID: "p1", Parent: procmatch.Spec{ParentPIDFile: "/run/proplet.pid"}, Policy: policy}
}

func TestStartRequests(t *testing.T) {
	reg := newRegistry()
	refused := map[string]int{}
	f := New(testConfig(t), reg, zaptest.NewLogger(t), func(reason string) { refused[reason]++ })
	ctx := context.Background()

	require.NoError(t, f.HandleStart(ctx, []byte(`{"id":"a","name":"alpha","daemon":true}`)))
	spec, ok := reg.spec("a")
	require.True(t, ok)
	assert.Equal(t, profile.LongRunningDaemon, spec.ProfileName)
	assert.Equal(t, procmatch.Spec{Cmdline: "a", ParentPIDFile: "/run/proplet.pid"}, spec.Locator.Match.Spec(), "default rule, child of the proplet")

	// Started again, with a profile: the task stays, the profile changes.
	require.NoError(t, f.HandleStart(ctx, []byte(`{"id":"a","monitoring_profile":{"interval":2}}`)))
	assert.Equal(t, []string{"a=inline"}, reg.profiles)

	// For another proplet: ignored, not refused.
	require.NoError(t, f.HandleStart(ctx, []byte(`{"id":"b","proplet_id":"p2"}`)))
	_, ok = reg.spec("b")
	assert.False(t, ok)
	assert.Empty(t, refused)

	for _, bad := range []string{`nope`, `{"id":""}`, `{"id":"c","monitoring_profile":{"interval":0}}`, `{"id":"c","monitoring_profile":{"interval":0.01}}`, "{\"id\":\"c\\u0000\"}"} {
		assert.Error(t, f.HandleStart(ctx, []byte(bad)), bad)
	}
	assert.Equal(t, map[string]int{"malformed": 3, "monitoring_profile": 1, "id": 1}, refused, "every refused request is counted, by reason")
}

func TestStartedTaskLocators(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		edit  func(*Config)
		check func(*testing.T, admission.Spec)
	}{
		{"task_match with its own parent", func(c *Config) {
			c.TaskMatch = procmatch.Spec{Executable: "^wasmtime$", Cmdline: "proplet_{task_id}", ParentPID: 7}
		},
			func(t *testing.T, s admission.Spec) {
				assert.Equal(t, procmatch.Spec{Executable: "^wasmtime$", Cmdline: `proplet_t\.1`, ParentPID: 7}, s.Locator.Match.Spec())
			}},
		{"cgroup", func(c *Config) { c.TaskCgroup = "propeller/{task_name}-{task_id}"; c.InProcess = true },
			func(t *testing.T, s admission.Spec) {
				assert.Equal(t, "propeller/n-t.1", s.Cgroup)
				assert.True(t, s.Locator.IsZero(), "the cgroup is the task; in_process does not apply")
			}},
		{"in process", func(c *Config) { c.InProcess = true },
			func(t *testing.T, s admission.Spec) { assert.True(t, s.Locator.InProcess) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			tt.edit(&cfg)
			require.NoError(t, cfg.Check())
			reg := newRegistry()
			require.NoError(t, New(cfg, reg, zap.NewNop(), nil).HandleStart(ctx, []byte(`{"id":"t.1","name":"n"}`)))
			spec, ok := reg.spec("t.1")
			require.True(t, ok)
			tt.check(t, spec)
		})
	}

	// An id or a name that would leave the cgroup tree is refused.
	cfg := testConfig(t)
	cfg.TaskCgroup = "propeller/{task_id}/{task_name}"
	f := New(cfg, newRegistry(), zap.NewNop(), nil)
	assert.ErrorContains(t, f.HandleStart(ctx, []byte(`{"id":".."}`)), `id: must not be ".."`)
	assert.ErrorContains(t, f.HandleStart(ctx, []byte(`{"id":"x/../.."}`)), "id: may hold only")
	assert.ErrorContains(t, f.HandleStart(ctx, []byte(`{"id":"t","name":"../../memory"}`)), "name: must not hold '/'")
	assert.ErrorContains(t, f.HandleStart(ctx, []byte(`{"id":"t","name":".."}`)), "name: must not hold '/' or be '.' or '..'")
}

func TestCheckNamesTheKey(t *testing.T) {
	cfg := testConfig(t)
	cfg.DomainID = "a/b"
	cfg.ChannelID = ""
	cfg.TaskMatch = procmatch.Spec{Cmdline: "("}
	err := cfg.Check()
	require.Error(t, err)
	assert.Equal(t, `domain_id: must be set, at most 36 bytes, without '/', '+', '#', control characters or noncharacters ('/', '+' or '#'), got "a/b"
channel_id: must be set, at most 36 bytes, without '/', '+', '#', control characters or noncharacters (empty value), got ""
task_match.cmdline: invalid regular expression "(": error parsing regexp: missing closing ): `+"`(`", err.Error())

	// The same check as the exporter's and the fleet gateway's: a control character is refused.
	cfg = testConfig(t)
	cfg.DomainID = "d\x01"
	assert.ErrorContains(t, cfg.Check(), `domain_id: must be set, at most 36 bytes, without '/', '+', '#', control characters or noncharacters (control character), got "d\x01"`)
	cfg.DomainID = strings.Repeat("d", 37)
	assert.ErrorContains(t, cfg.Check(), "domain_id: must be set, at most 36 bytes, without '/', '+', '#', control characters or noncharacters (longer than 36 bytes, Propeller's limit on ids)")

	cfg = testConfig(t)
	cfg.TaskCgroup = "../{task_id}"
	assert.EqualError(t, cfg.Check(), `task_cgroup: must not contain a '..' element, got "../00000000-0000-0000-0000-000000000000"`)
}

func TestStopRequests(t *testing.T) {
	reg := newRegistry()
	refused := 0
	f := New(testConfig(t), reg, zap.NewNop(), func(string) { refused++ })
	ctx := context.Background()
	require.NoError(t, f.HandleStart(ctx, []byte(`{"id":"a"}`)))
	require.NoError(t, f.HandleStop(ctx, []byte(`{"id":"a","proplet_id":"p2"}`)))
	assert.Empty(t, reg.stopped, "a stop for another proplet is ignored")
	require.NoError(t, f.HandleStop(ctx, []byte(`{"broadcast":true,"id":"a"}`)))
	assert.Equal(t, []string{"a"}, reg.stopped)
	assert.Error(t, f.HandleStop(ctx, []byte(`{"id":5}`)))
	assert.Equal(t, 1, refused)
}

func TestFollowsABroker(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{Username: "proplet", Password: "key"})
	conn := mqttconn.DefaultClientConfig()
	conn.Endpoint, conn.Username, conn.Password = broker.Endpoint(), "proplet", "wrong"
	f := New(testConfig(t), newRegistry(), zaptest.NewLogger(t), nil)
	err := f.Start(context.Background(), conn)
	require.ErrorIs(t, err, mqttconn.ErrBadCredentials, "bad credentials stop the start, with the shared error")
	f.Stop()

	conn.Password = "key"
	reg := newRegistry()
	f = New(testConfig(t), reg, zaptest.NewLogger(t), nil)
	require.NoError(t, f.Start(context.Background(), conn))
	defer f.Stop()

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(broker.Endpoint()).SetClientID("manager").SetUsername("proplet").SetPassword("key"))
	require.True(t, pub.Connect().WaitTimeout(5*time.Second))
	defer pub.Disconnect(100)
	// The waits are long for a busy machine (the suite runs beside other work); each ends as
	// soon as its condition holds.
	require.Eventually(t, func() bool {
		pub.Publish("m/d/c/control/manager/start", 1, false, `{"id":"wrong-topic"}`).WaitTimeout(time.Second)
		pub.Publish("m/d/c/c/control/manager/start", 1, false, `{"id":"t"}`).WaitTimeout(time.Second)
		_, ok := reg.spec("t")
		return ok
	}, 30*time.Second, 100*time.Millisecond, "subscribed once connected")
	_, ok := reg.spec("wrong-topic")
	assert.False(t, ok)
	stop := pub.Publish("m/d/c/c/control/manager/stop", 1, false, `{"id":"t"}`)
	require.True(t, stop.WaitTimeout(30*time.Second), "the broker acknowledged the stop")
	require.NoError(t, stop.Error())
	require.Eventually(t, func() bool { _, ok := reg.spec("t"); return !ok }, 30*time.Second, 20*time.Millisecond, "the stop followed")
}

// TestHugeIDAndNameAreRefusedCheaply: a 10 MB id or name is refused before anything is built
// from it (no regular expression compiled, nothing attached to samples), and the refusal's
// log line quotes only the start of it. Measured in allocations, not time: the race detector
// makes decoding 10 MB of JSON take a second on its own.
func TestHugeIDAndNameAreRefusedCheaply(t *testing.T) {
	reg := newRegistry()
	f := New(testConfig(t), reg, zap.NewNop(), nil)
	huge := strings.Repeat("x", 10<<20)
	for _, payload := range []string{`{"id":"` + huge + `"}`, `{"id":"t","name":"` + huge + `"}`} {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		err := f.HandleStart(context.Background(), []byte(payload))
		runtime.ReadMemStats(&ms1)
		require.Error(t, err)
		assert.Less(t, len(err.Error()), 300, "the error quotes only the start of the value")
		// Decoding the JSON allocates a few times its size; compiling the id into a rule, as
		// before, allocated 2.9 GB (and took 5 s).
		assert.Less(t, ms1.TotalAlloc-ms0.TotalAlloc, uint64(100<<20), "decoding only: no regular expression built from it")
	}
	assert.Empty(t, reg.tasks)
}
