//go:build linux

package propletreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/procmatch"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadatatest"
)

// hammerID is the one task id every door asks for at once.
const hammerID = "hammered-task"

// TestOneIDThroughEveryDoor hammers one task id through the task API and the manager's control
// plane at once, a profile change on it all along, every request for the one process: each
// incarnation is named after the request that made it. Afterwards every incarnation that was
// bound has ended exactly once, with one usage report, the receiver's descriptors are back to
// what it held before, and the task API said 204 exactly once per task it created (never for a
// task that did not exist or that the manager owned). The descriptors are counted in
// /proc/self/fd, so this test does not run in parallel with others.
func TestOneIDThroughEveryDoor(t *testing.T) {
	const rounds, apiWorkers = 40, 2
	h := startHammerReceiver(t)
	baseline := openFDs(t)

	var wg sync.WaitGroup
	done := make(chan struct{})
	// A: the manager starts and stops the id, half the rounds once the start was sampled.
	// Each round, and each of B's, begins once the id is free (or a second passed), so the
	// doors race for it rather than one of them being refused all along.
	var started atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := range rounds {
			name := fmt.Sprintf("mgr-%d", r)
			h.waitUntil(h.free)
			h.publish(t, "start", fmt.Sprintf(`{"id":%q,"name":%q,"monitoring_profile":{"interval":0.2}}`, hammerID, name))
			started.Add(1)
			if r%2 == 0 {
				h.waitUntil(func() bool { return h.sampledOrTaken(name) })
			}
			h.publish(t, "stop", fmt.Sprintf(`{"id":%q}`, hammerID))
		}
	}()
	// B: task API clients create the id for the process and delete it, half the rounds once
	// it was sampled.
	for w := range apiWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				name := fmt.Sprintf("api-%d-%d", w, r)
				h.waitUntil(h.free)
				body := fmt.Sprintf(`{"id":%q,"name":%q,"pid":%d,"monitoring_profile":{"interval":0.2}}`, hammerID, name, h.pid)
				if h.call(t, http.MethodPost, "/tasks", body) == http.StatusCreated && r%2 == 0 {
					h.waitUntil(func() bool { return h.sampledOrTaken(name) })
				}
				h.call(t, http.MethodDelete, "/tasks/"+hammerID, "")
			}
		}()
	}
	// C: a profile change on the id all along, whoever owns it.
	changed := make(chan struct{})
	go func() {
		defer close(changed)
		for i := range 20 * rounds {
			select {
			case <-done:
				return
			default:
			}
			h.call(t, http.MethodPut, "/tasks/"+hammerID+"/profile", fmt.Sprintf(`{"interval":0.%d}`, 2+i%2))
		}
	}()
	wg.Wait()
	close(done)
	<-changed

	// Settle: end what is left, through the door that owns it, until the registry is empty.
	require.Eventually(t, func() bool {
		h.call(t, http.MethodDelete, "/tasks/"+hammerID, "")
		h.publish(t, "stop", fmt.Sprintf(`{"id":%q}`, hammerID))
		return h.registered(t) == 0
	}, 20*time.Second, 50*time.Millisecond, "every task ended by its own door")
	require.NoError(t, h.workload.Kill())

	unreported := func() []string {
		bound, reports := h.incarnations()
		var out []string
		for name := range bound {
			if reports[name] == 0 {
				out = append(out, name)
			}
		}
		return out
	}
	// A deadline for the wait only: what is asserted is checked after it either way.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if len(unreported()) == 0 && openFDs(t) <= baseline+fdSlack {
			break
		}
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // polling a state with a deadline
	}
	bound, reports := h.incarnations()
	st := h.statuses()
	after := openFDs(t)
	t.Logf("%d manager starts, HTTP answers %v, %d incarnations bound, %d reports, descriptors %d before, %d after",
		started.Load(), st, len(bound), len(reports), baseline, after)

	// (1) Descriptors: what the incarnations opened is closed.
	assert.LessOrEqual(t, after, baseline+fdSlack, "descriptors back to the %d open before", baseline)
	// (2) Reports: one per bound incarnation (from its exit record, once the process is
	// killed), none for another.
	require.NotEmpty(t, bound, "some incarnation was bound")
	assert.Empty(t, unreported(), "bound incarnations that never reported")
	for name, n := range reports {
		assert.Equal(t, 1, n, "incarnation %s reports once", name)
		assert.Contains(t, bound, name, "incarnation %s reports only if it was bound", name)
	}
	assert.Equal(t, int64(h.logRecords()), h.telemetryReports(t), "every usage report counted and sent")
	for state, n := range h.tasksByState(t) {
		assert.Zero(t, n, "otelcol_receiver_proplet_tasks{state=%q} back to 0", state)
	}
	// (3) API answers: only these, and one 204 per 201, after which every task the API created
	// is gone: a DELETE that ended a task the API did not create would be one 204 too many.
	for key := range st {
		assert.Contains(t, []string{"POST 201", "POST 409", "DELETE 204", "DELETE 403", "DELETE 404", "PUT 200", "PUT 404"}, key)
	}
	assert.Positive(t, st["POST 201"], "the API created the task")
	assert.Equal(t, st["POST 201"], st["DELETE 204"], "DELETE answers 204 once per task the API created")
	// (4) No internal error was logged (a state move the machine does not allow, a panic
	// recovered); a data race fails the test under -race.
	for _, e := range h.logs.FilterLevelExact(zapcore.ErrorLevel).All() {
		t.Errorf("logged at error: %s %v", e.Message, e.ContextMap())
	}
}

// fdSlack is how many more descriptors than before the hammering the receiver may hold after
// it: an HTTP connection the server is still closing. Each incarnation that did not close
// its /proc files leaves three or four.
const fdSlack = 2

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// hammer is a running receiver with a broker, its task API, its process and its outputs.
type hammer struct {
	apiAddr  string
	pid      int
	workload interface{ Kill() error }
	metrics  *consumertest.MetricsSink
	logSink  *consumertest.LogsSink
	tel      *componenttest.Telemetry
	logs     *observer.ObservedLogs
	client   *http.Client
	pub      paho.Client

	mu     sync.Mutex
	status map[string]int // "METHOD code" -> answers
}

func startHammerReceiver(t *testing.T) *hammer {
	broker := mqtttest.Start(t, mqtttest.Options{})
	h := &hammer{apiAddr: mqtttest.FreeAddress(t), status: map[string]int{}}
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "proplet-1"
	// The proplet is this process: the manager's tasks are its children, as the workload is.
	cfg.Proplet = PropletConfig{Self: true, Interval: 500 * time.Millisecond}
	cfg.StartJitter = 0
	cfg.DiscoveryInterval = 100 * time.Millisecond
	api := defaultAPIConfig()
	api.Server.NetAddr.Endpoint = h.apiAddr
	cfg.API = configoptional.Some(api)
	pc := defaultPropellerConfig()
	pc.Endpoint, pc.DomainID, pc.ChannelID = broker.Endpoint(), "d", "c"
	pc.TaskMatch = procmatch.Spec{Cmdline: "--task-id={task_id}$"}
	cfg.Propeller = configoptional.Some(pc)

	cmd := testworkload.Command(t, testworkload.Sleep, 0)
	cmd.Args = append(cmd.Args, "--task-id="+hammerID)
	testworkload.StartCmd(t, cmd)
	h.pid, h.workload = cmd.Process.Pid, cmd.Process

	// Warnings and errors are kept to be checked; the test log shows them only on failure.
	core, logs := observer.New(zapcore.WarnLevel)
	h.logs = logs
	logger := zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel), zaptest.WrapOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewTee(c, core)
	})))
	h.tel = componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, h.tel.Shutdown(context.Background())) })
	set := metadatatest.NewSettings(h.tel)
	set.Logger = logger
	h.metrics, h.logSink = new(consumertest.MetricsSink), new(consumertest.LogsSink)
	f := NewFactory()
	mr, err := f.CreateMetrics(context.Background(), set, cfg, h.metrics)
	require.NoError(t, err)
	lr, err := f.CreateLogs(context.Background(), set, cfg, h.logSink)
	require.NoError(t, err)
	require.NoError(t, mr.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, lr.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() {
		require.NoError(t, lr.Shutdown(context.Background()))
		require.NoError(t, mr.Shutdown(context.Background()))
	})

	// No keep-alive: a connection is closed with its request, so none is open when the
	// descriptors are counted.
	h.client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	h.pub = paho.NewClient(paho.NewClientOptions().AddBroker(broker.Endpoint()).SetClientID("manager"))
	require.True(t, h.pub.Connect().WaitTimeout(5*time.Second))
	t.Cleanup(func() { h.pub.Disconnect(100) })

	// Subscribed to both topics (a probe task appears and goes) and the proplet sampled (its /proc files
	// opened) before the descriptors are counted.
	require.Eventually(t, func() bool {
		h.publish(t, "start", `{"id":"probe"}`)
		return taskState(t, h.apiAddr, "probe") != ""
	}, 10*time.Second, 100*time.Millisecond, "subscribed")
	// The stop topic is subscribed after the start topic: a stop sent before is lost.
	require.Eventually(t, func() bool {
		h.publish(t, "stop", `{"id":"probe"}`)
		return h.registered(t) == 0
	}, 10*time.Second, 100*time.Millisecond, "probe stopped")
	require.Eventually(t, func() bool { return len(resources(h.metrics, "process.pid", itoa(os.Getpid()))) > 0 },
		10*time.Second, 20*time.Millisecond, "proplet sampled")
	return h
}

// publish sends a manager request and waits for the broker to take it.
func (h *hammer) publish(t *testing.T, what, payload string) {
	tok := h.pub.Publish("m/d/c/c/control/manager/"+what, 1, false, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Errorf("the broker did not take a %s request", what)
		return
	}
	assert.NoError(t, tok.Error())
}

// call makes a task API request and records its answer.
func (h *hammer) call(t *testing.T, method, path, body string) int {
	req, err := http.NewRequest(method, "http://"+h.apiAddr+path, strings.NewReader(body))
	if !assert.NoError(t, err) {
		return 0
	}
	resp, err := h.client.Do(req)
	if !assert.NoError(t, err) {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	h.mu.Lock()
	h.status[fmt.Sprintf("%s %d", method, resp.StatusCode)]++
	h.mu.Unlock()
	return resp.StatusCode
}

func (h *hammer) statuses() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.status))
	for k, v := range h.status {
		out[k] = v
	}
	return out
}

// registered is how many tasks the registry holds.
func (h *hammer) registered(t *testing.T) int {
	resp, err := h.client.Get("http://" + h.apiAddr + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	var v struct{ Tasks int }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return v.Tasks
}

// holder is the name of the incarnation that holds the id; false when none does.
func (h *hammer) holder() (string, bool) {
	resp, err := h.client.Get("http://" + h.apiAddr + "/tasks/" + hammerID)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var v struct{ Name string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return "", false
	}
	return v.Name, true
}

// free says no incarnation holds the id.
func (h *hammer) free() bool {
	_, held := h.holder()
	return !held
}

// sampledOrTaken says the incarnation named name was sampled bound to the workload, so that
// its end has something to report, or another incarnation holds the id (its request was
// refused, or it ended).
func (h *hammer) sampledOrTaken(name string) bool {
	if bound, _ := h.incarnations(); bound[name] {
		return true
	}
	holder, held := h.holder()
	return held && holder != name
}

// waitUntil waits until cond holds, or two seconds passed: the workers' pacing, never asserted.
func (h *hammer) waitUntil(cond func() bool) {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && !cond(); {
		time.Sleep(10 * time.Millisecond) //nolint:forbidigo // polling a state with a deadline
	}
}

// incarnations returns the incarnations a sample showed bound to the workload, and the usage
// reports sent per incarnation.
func (h *hammer) incarnations() (bound map[string]bool, reports map[string]int) {
	bound, reports = map[string]bool{}, map[string]int{}
	pid := int64(h.pid)
	for _, rm := range resources(h.metrics, "propeller.task.id", hammerID) {
		if v, ok := rm.Resource().Attributes().Get("process.pid"); ok && v.Int() == pid {
			bound[taskName(rm.Resource())] = true
		}
	}
	for _, ld := range h.logSink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			res := rl.Resource()
			if id, _ := res.Attributes().Get("propeller.task.id"); id.AsString() != hammerID {
				continue
			}
			lrs := rl.ScopeLogs().At(0).LogRecords()
			for j := 0; j < lrs.Len(); j++ {
				if lrs.At(j).EventName() == schema.TaskEndEvent {
					reports[taskName(res)]++
				}
			}
		}
	}
	return bound, reports
}

func taskName(res pcommon.Resource) string {
	v, _ := res.Attributes().Get("propeller.task.name")
	return v.AsString()
}

// logRecords is how many log records the receiver sent.
func (h *hammer) logRecords() int {
	n := 0
	for _, ld := range h.logSink.AllLogs() {
		n += ld.LogRecordCount()
	}
	return n
}

// telemetryReports is otelcol_receiver_proplet_task_reports, exact or not.
func (h *hammer) telemetryReports(t *testing.T) int64 {
	m, err := h.tel.GetMetric("otelcol_receiver_proplet_task_reports")
	require.NoError(t, err)
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		n += dp.Value
	}
	return n
}

// tasksByState is otelcol_receiver_proplet_tasks by state.
func (h *hammer) tasksByState(t *testing.T) map[string]int64 {
	m, err := h.tel.GetMetric("otelcol_receiver_proplet_tasks")
	require.NoError(t, err)
	got := map[string]int64{}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		state, _ := dp.Attributes.Value("state")
		got[state.AsString()] = dp.Value
	}
	return got
}
