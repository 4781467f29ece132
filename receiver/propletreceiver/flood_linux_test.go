//go:build linux

package propletreceiver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

// TestStartRequestFlood sends 20,000 start requests for tasks whose process never appears,
// with a real task's start request among them, through a real broker: the receiver stays
// within its caps, its memory is bounded, and the real task is bound amid the flood. How fast
// it is bound and what the pending tasks cost once the flood is over are figures of the
// machine: TestScaleStartRequestFlood measures them (make scale).
func TestStartRequestFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 20,000 requests")
	}
	f := startRequestFlood(t)
	require.NotZero(t, f.bound, "the real task was never bound")

	// The caps held: at most max_pending_tasks pending, the rest refused.
	assert.LessOrEqual(t, f.tasks, monitor.DefaultMaxPendingTasks+2, "pending tasks are capped (plus the probe and the active task)")
	assert.Empty(t, taskState(t, f.apiAddr, strings.Repeat("x", 36)), "the 1 MB id is refused")
	if !raceEnabled {
		assert.Less(t, f.heap, uint64(150<<20), "memory is bounded")
	}
}

// TestScaleStartRequestFlood measures the flood of TestStartRequestFlood: how soon the real task
// is bound with 5,000 pending tasks registered before it, and the receiver's CPU once the flood
// is over. It runs with `make scale` (PROPLET_SCALE_TEST=1), on a machine doing nothing else.
func TestScaleStartRequestFlood(t *testing.T) {
	if os.Getenv("PROPLET_SCALE_TEST") == "" {
		t.Skip("set PROPLET_SCALE_TEST=1 (make scale) to measure the flood")
	}
	f := startRequestFlood(t)
	require.NotZero(t, f.bound, "the real task was never bound")
	assert.Less(t, f.bound, 2*time.Second, "bound within 2 s, 5,000 pending tasks registered before it")

	// Once the flood is over, 10,000 pending tasks cost next to nothing.
	time.Sleep(2 * time.Second) //nolint:forbidigo // let the last requests settle before measuring
	u0, s0 := cpuTime()
	start := time.Now()
	time.Sleep(5 * time.Second) //nolint:forbidigo // a measurement window
	u1, s1 := cpuTime()
	share := float64((u1-u0)+(s1-s0)) / float64(time.Since(start)) * 100
	t.Logf("CPU with %d pending tasks after the flood: %.2f%% of one core", f.tasks, share)
	assert.Less(t, share, 10.0, "pending tasks do not keep a core busy")
}

// flood is what startRequestFlood saw.
type flood struct {
	apiAddr string        // the receiver's task API
	bound   time.Duration // from the real task's start request to its being active; 0: never
	tasks   int           // tasks registered after the flood
	heap    uint64        // heap the receiver holds after the flood
}

// startRequestFlood starts a receiver following a broker, sends it 20,000 start requests for
// tasks that never appear, a real task's among them, and returns once the real task is active
// or a minute passed. The receiver logs at warning level: each accepted request is an info line.
func startRequestFlood(t *testing.T) flood {
	broker := mqtttest.Start(t, mqtttest.Options{})
	apiAddr := mqtttest.FreeAddress(t)
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "proplet-1"
	cfg.Proplet = PropletConfig{Self: true, Interval: 10 * time.Second}
	cfg.StartJitter = 0
	// What is measured is the cost of pending tasks. The kernel's process events add the cost
	// of every fork and exec on the host (BENCHMARKS.md), which on a machine running other
	// tests at once is not this test's subject; TestTenThousandPendingTasks in internal/monitor
	// covers pending tasks with events.
	cfg.ProcessEvents = monitor.EventsOff
	api := defaultAPIConfig()
	api.Server.NetAddr.Endpoint = apiAddr
	cfg.API = configoptional.Some(api)
	pc := defaultPropellerConfig()
	pc.Endpoint, pc.DomainID, pc.ChannelID = broker.Endpoint(), "d", "c"
	// The hostile 2 MiB request must reach the control plane's decoder: under the default cap
	// (1 MiB) the client would close the connection before reading it.
	pc.MaxPacketSize = 4 << 20
	cfg.Propeller = configoptional.Some(pc)

	real := testworkload.Command(t, testworkload.Sleep, 0)
	real.Args = append(real.Args, "--task-id=real-task")
	testworkload.StartCmd(t, real)

	heapBefore := heapInUse()
	startReceiverWithLogger(t, cfg, zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)))
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(broker.Endpoint()).SetClientID("manager"))
	require.True(t, pub.Connect().WaitTimeout(5*time.Second))
	defer pub.Disconnect(100)
	publish := func(payload string) paho.Token {
		return pub.Publish("m/d/c/c/control/manager/start", 1, false, payload)
	}
	require.Eventually(t, func() bool {
		publish(`{"id":"probe"}`).WaitTimeout(time.Second)
		return taskState(t, apiAddr, "probe") != ""
	}, 10*time.Second, 100*time.Millisecond, "subscribed")

	var realSent time.Time
	var realBound time.Duration
	realActive := make(chan struct{})
	hostile := `{"id":"` + strings.Repeat("x", 1<<20) + `","name":"` + strings.Repeat("n", 1<<20) + `"}`
	// A broker queues only so much for a subscriber (Mosquitto: max_queued_messages 1000) and
	// drops the rest, so the manager's side waits for each chunk of 500 to be registered until
	// the cap is reached; past it, requests are refused as fast as they come.
	for i := range 20_000 {
		if i == 5_000 {
			realSent = time.Now()
			publish(`{"id":"real-task","name":"real"}`)
			publish(hostile)
			go func() {
				defer close(realActive)
				for time.Since(realSent) < time.Minute {
					if taskState(t, apiAddr, "real-task") == "active" {
						realBound = time.Since(realSent)
						return
					}
					time.Sleep(10 * time.Millisecond) //nolint:forbidigo // polling the API from the side
				}
			}()
		}
		tok := publish(fmt.Sprintf(`{"id":"flood-%05d","name":"f"}`, i))
		if (i+1)%500 == 0 {
			require.True(t, tok.WaitTimeout(10*time.Second))
			want := min(i+2, monitor.DefaultMaxPendingTasks)
			require.Eventually(t, func() bool { return countTasks(t, apiAddr) >= want }, 20*time.Second, 20*time.Millisecond,
				"%d requests sent, %d tasks registered", i+1, countTasks(t, apiAddr))
		}
	}
	<-realActive
	t.Logf("the real task was active %s after its start request, sent amid the flood", realBound.Round(time.Millisecond))
	f := flood{apiAddr: apiAddr, bound: realBound, tasks: countTasks(t, apiAddr), heap: heapInUse() - heapBefore}
	t.Logf("heap with %d tasks registered: %d MB", f.tasks, f.heap>>20)
	return f
}

// taskState asks the task API for a task's state; "" when it is not registered.
func taskState(t *testing.T, apiAddr, id string) string {
	t.Helper()
	resp, err := http.Get("http://" + apiAddr + "/tasks/" + id)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ""
	}
	var v struct{ State string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return v.State
}

// countTasks asks the task API's health route how many tasks are registered.
func countTasks(t *testing.T, apiAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + apiAddr + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	var v struct{ Tasks int }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return v.Tasks
}
