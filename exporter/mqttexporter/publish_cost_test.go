package mqttexporter

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// TestPublishCostAtTheCollectorsPace: the CPU a task message costs to publish at QoS 1 into
// the local Mosquitto at the pace 10,000 tasks sampled every 10 s make on Propeller's two task
// topics (2,000 messages a second, in rounds of 200 every 100 ms), through the exporter
// (mapping, encoding, publishing, every acknowledgement awaited) and with the bare paho client
// publishing one ready payload: the floor of the protocol, which no exporter goes below. The
// CPU is this process's own (getrusage; Mosquitto is another process), per message. A
// measurement, not a check: it runs only when asked, with the local Mosquitto, and logs its
// figures (BENCHMARKS.md, "Ten thousand tasks on one host"):
//
//	PROPLET_SCALE_TEST=1 go test -count=1 -run TestPublishCostAtTheCollectorsPace -v ./exporter/mqttexporter/
func TestPublishCostAtTheCollectorsPace(t *testing.T) {
	if os.Getenv("PROPLET_SCALE_TEST") == "" {
		t.Skip("set PROPLET_SCALE_TEST=1 to run the publishing cost measurement")
	}
	if !mqtttest.LocalAvailable() {
		t.Skip("no broker on 127.0.0.1:1883")
	}
	const (
		perSecond = 2000
		round     = 100 * time.Millisecond
		perRound  = perSecond / 10
		seconds   = 20
	)
	endpoint := "tcp://" + mqtttest.LocalMosquitto
	domain, channel := fmt.Sprintf("cost%d", time.Now().UnixNano()), "c"

	// paced runs publish(n) every round for seconds, and returns the process's CPU per message.
	paced := func(publish func(round, n int)) time.Duration {
		cpu0 := processCPU()
		next := time.Now()
		rounds := seconds * int(time.Second/round)
		for r := range rounds {
			publish(r, perRound)
			next = next.Add(round)
			time.Sleep(time.Until(next)) //nolint:forbidigo // the collector's pace is what is reproduced
		}
		return (processCPU() - cpu0) / time.Duration(rounds*perRound)
	}

	// The bare client: one payload, published perRound times a round, every acknowledgement awaited.
	m := newMapper(testConfig(endpoint, domain, channel))
	s := &sample{ts: 1, hasCPUTime: true, cpuTime: 10, hasRSS: true, rss: 52428800, hasDisk: true, hasThreads: true, threads: 2, hasFDs: true, fds: 8}
	msg := m.taskMessage("task-0001", propletID, taskProfile{historySize: 100, retain: true, export: true, interval: 10 * time.Second}, s, time.Now())
	payload := msg.AppendJSON(nil)
	topic := fmt.Sprintf("m/%s/c/%s/control/proplet/task_metrics", domain, channel)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(endpoint).SetClientID("cost-bare").SetCleanSession(true).SetOrderMatters(false))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	tokens := make([]paho.Token, perRound)
	bare := paced(func(_, n int) {
		for i := range n {
			tokens[i] = c.Publish(topic, 1, false, payload)
		}
		for _, tok := range tokens[:n] {
			<-tok.Done()
			require.NoError(t, tok.Error())
		}
	})
	c.Disconnect(100)

	// The exporter: a round's samples as one batch of perRound tasks, one topic.
	cfg := testConfig(endpoint, domain, channel)
	cfg.Topics.TaskMetrics = cfg.Topics.TaskMetrics[:1]
	cfg.Topics.PropletMetrics = nil
	e, _ := direct(t, cfg)
	defer func() { _ = e.shutdown(context.Background()) }()
	// The batches are built before the clock starts: building pdata is the receiver's cost.
	ts := time.Now()
	rounds := seconds * int(time.Second/round)
	inputs := make([]pmetric.Metrics, rounds)
	for r := range rounds {
		inputs[r] = roundMetrics(r, perRound, ts.Add(time.Duration(r)*round))
	}
	exporter := paced(func(r, _ int) { require.NoError(t, e.pushMetrics(context.Background(), inputs[r])) })

	share := func(perMsg time.Duration) float64 { return 100 * perMsg.Seconds() * perSecond }
	t.Logf("publishing %d task messages a second (10,000 tasks at 10 s, two task topics), QoS 1, local Mosquitto, %d s each:", perSecond, seconds)
	t.Logf("  bare paho client, one payload:   %5.1f µs of CPU a message, %.2f%% of one core", float64(bare)/1e3, share(bare))
	t.Logf("  the exporter, batches of %d tasks: %5.1f µs of CPU a message, %.2f%% of one core (%.2fx the bare client)",
		perRound, float64(exporter)/1e3, share(exporter), float64(exporter)/float64(bare))
}

// roundMetrics is round r's batch: n task samples at ts, of tasks n*r.. of a 10,000-task host.
func roundMetrics(r, n int, ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for i := range n {
		p := firstPoint()
		p.ts = ts
		taskMetrics(fmt.Sprintf("task-%05d", (r*n+i)%10000), propletID, fullHistory, p).ResourceMetrics().MoveAndAppendTo(md.ResourceMetrics())
	}
	return md
}

// processCPU is this process's CPU time so far, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
