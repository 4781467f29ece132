package mqttexporter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"

	"github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// link is the network between the exporter and the broker: a TCP relay that can be cut (open
// connections dropped, new ones refused) and mended on the same address. Cutting it is a
// broker outage as the exporter sees it, while the test's subscriber stays connected to the
// broker and misses nothing on its own account.
type link struct {
	addr, broker string
	mu           sync.Mutex
	l            net.Listener
	conns        []net.Conn
	running      sync.WaitGroup // the accept loop and the copies, ended by cut
}

func newLink(t *testing.T, broker string) *link {
	k := &link{addr: mqtttest.FreeAddress(t), broker: broker}
	k.mend(t)
	t.Cleanup(k.cut)
	return k
}

func (k *link) endpoint() string { return "tcp://" + k.addr }

func (k *link) mend(t *testing.T) {
	l, err := net.Listen("tcp", k.addr)
	require.NoError(t, err)
	k.mu.Lock()
	k.l = l
	k.mu.Unlock()
	k.running.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", k.broker)
			if err != nil {
				_ = c.Close()
				continue
			}
			k.mu.Lock()
			if k.l != l { // cut while dialling
				k.mu.Unlock()
				_, _ = c.Close(), b.Close()
				return
			}
			k.conns = append(k.conns, c, b)
			k.mu.Unlock()
			k.running.Go(func() { _, _ = io.Copy(b, c); _ = b.Close() })
			k.running.Go(func() { _, _ = io.Copy(c, b); _ = c.Close() })
		}
	})
}

func (k *link) cut() {
	k.mu.Lock()
	if k.l != nil {
		_ = k.l.Close()
		k.l = nil
	}
	for _, c := range k.conns {
		_ = c.Close()
	}
	k.conns = nil
	k.mu.Unlock()
	k.running.Wait()
}

// sampleCounter subscribes to the task metrics topic and keeps the task and timestamp of each
// message it receives: the messages of an outage, without holding their payloads.
type sampleCounter struct {
	mu   sync.Mutex
	seen map[string]bool
	dups int
}

func countSamples(t *testing.T, endpoint, topic string) *sampleCounter {
	s := &sampleCounter{seen: map[string]bool{}}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(endpoint).SetClientID("outage-counter").SetCleanSession(true).SetOrderMatters(false))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(100) })
	tok = c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		var v struct {
			TaskID    string `json:"task_id"`
			Timestamp string `json:"timestamp"`
		}
		if err := json.Unmarshal(m.Payload(), &v); err != nil {
			return
		}
		k := v.TaskID + " " + v.Timestamp
		s.mu.Lock()
		if s.seen[k] {
			s.dups++
		}
		s.seen[k] = true
		s.mu.Unlock()
	})
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	return s
}

func (s *sampleCounter) count() (distinct, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen), s.dups
}

// TestThreeMinuteOutage: the broker is out of reach for 3 minutes of a proplet running tasks
// sampled every second (fed in synthetic time as the receiver's rounds arrive, in batches of
// at most 167), with the default queue; every sample arrives once the broker is back. With
// the persistent queue, the collector also restarts halfway through the outage, and loses
// nothing either. 100 tasks (18,000 samples); 1,000 tasks (180,000 samples, about 90 s) with
//
//	MQTT_OUTAGE_TEST=1 go test -run TestThreeMinuteOutage -v ./exporter/mqttexporter/
func TestThreeMinuteOutage(t *testing.T) {
	tasks := 100
	if os.Getenv("MQTT_OUTAGE_TEST") != "" {
		tasks = 1000
	}
	for _, persistent := range []bool{false, true} {
		name := map[bool]string{false: "in-memory", true: "persistent-with-restart"}[persistent]
		t.Run(fmt.Sprintf("%s/%d-tasks", name, tasks), func(t *testing.T) { threeMinuteOutage(t, tasks, persistent) })
	}
}

func threeMinuteOutage(t *testing.T, tasks int, persistent bool) {
	b := mqtttest.Start(t, mqtttest.Options{})
	domain, channel := uniqueIDs(t)
	topic := fmt.Sprintf("m/%s/c/%s/control/proplet/task_metrics", domain, channel)
	sub := countSamples(t, b.Endpoint(), topic)
	lnk := newLink(t, b.Endpoint()[len("tcp://"):])

	host := memStorageHost()
	cfg := outageConfig(lnk.endpoint(), domain, channel, persistent)
	cfg.Topics.TaskMetrics = cfg.Topics.TaskMetrics[:1]
	ctx := context.Background()
	set, tel, _ := observedSettings(t)
	set.ID = component.NewID(metadata.Type) // the persistent queue is keyed by the component id
	start := func() exporter.Metrics {
		exp, err := NewFactory().CreateMetrics(ctx, set, cfg)
		require.NoError(t, err)
		require.NoError(t, exp.Start(ctx, host))
		return exp
	}

	lnk.cut()
	exp := start()
	tmpl := goldenTaskSample(t)
	const seconds, perBatch = 180, 167
	for s := range seconds {
		if persistent && s == seconds/2 {
			require.NoError(t, exp.Shutdown(ctx), "the collector stops with the broker out of reach")
			exp = start()
		}
		ts := t0.Add(time.Duration(s) * time.Second)
		for first := 0; first < tasks; first += perBatch {
			require.NoError(t, exp.ConsumeMetrics(ctx, round(tmpl, first, min(perBatch, tasks-first), ts)),
				"second %d, tasks %d..: the queue refused a batch", s, first)
		}
	}
	lnk.mend(t)

	require.Eventually(t, func() bool {
		n, _ := sub.count()
		return n == tasks*seconds
	}, 3*time.Minute, 100*time.Millisecond, "every sample arrives once the broker is back")
	require.NoError(t, exp.Shutdown(ctx))
	n, dups := sub.count()
	t.Logf("%d samples delivered, %d duplicates (at least once)", n, dups)
	require.Zero(t, counter(t, tel, "exporter_mqtt_messages_refused"))
	require.Zero(t, counter(t, tel, "exporter_mqtt_messages_dropped"))
}
