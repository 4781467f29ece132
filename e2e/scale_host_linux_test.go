//go:build linux

package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/pprof/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// TestScaleHost runs the built distribution on one host with SCALE_TASKS (10,000) idle
// processes, found by a discovery rule and sampled on the standard profile (10 s), through
// proplet -> [mqtt, prometheus] with a local Mosquitto and a subscriber counting what it is
// delivered, the Prometheus endpoint scraped every 15 s. Once every task is bound and sampled,
// it measures SCALE_MINUTES (5) minutes: the collector's CPU (/proc/<pid>/stat) and a pprof CPU
// profile of the same window split into stages, RSS, Go heap, each scrape's duration and size,
// messages delivered; then, the collector still running, the kernel floor of the same reads.
// SCALE_EXPORTERS (mqtt,prometheus) chooses the exporters, SCALE_BINARY another build;
// SCALE_PROFILE_DIR keeps both profiles there.
// Root (the descriptor limit is raised for the collector). make scale-10k.
func TestScaleHost(t *testing.T) {
	if os.Getenv("PROPLET_SCALE_HOST") == "" {
		t.Skip("set PROPLET_SCALE_HOST=1 (make scale-10k) to run the scale measurement")
	}
	n := envInt(t, "SCALE_TASKS", 10000)
	window := time.Duration(envFloat(t, "SCALE_MINUTES", 5) * float64(time.Minute))
	exporters := strings.Split(envOr("SCALE_EXPORTERS", "mqtt,prometheus"), ",")
	for _, e := range exporters {
		require.Contains(t, []string{"mqtt", "prometheus", "debug"}, e, "SCALE_EXPORTERS: a comma-separated list of mqtt, prometheus, debug")
	}
	has := func(e string) bool { return slices.Contains(exporters, e) }
	bin := envOr("SCALE_BINARY", "")
	if bin == "" {
		bin = binary(t)
	}
	limit := raiseNoFile(t, uint64(4*n+4096))
	pids := scaleTasks(t, n)

	var delivered atomic.Int64
	var brokerURL string
	if has("mqtt") {
		broker := mqtttest.StartMosquitto(t)
		brokerURL = broker.Endpoint()
		countMessages(t, brokerURL, "m/scale/c/scale/control/proplet/task_metrics", &delivered)
	}
	promPort, telPort, pprofPort := freePort(t), freePort(t), freePort(t)
	c := startScaleCollector(t, bin, scaleConfig(n, exporters, brokerURL, promPort, telPort, pprofPort, documentedLabels(t)), telPort, pprofPort)
	taskSamples := func() float64 { return c.telemetry(t, "otelcol_receiver_proplet_samples", "kind=task") }

	// Warm-up: every task bound, then every task sampled once more.
	start := time.Now()
	waitUntil(t, 10*time.Minute, func() bool {
		time.Sleep(time.Second) //nolint:forbidigo // polling the collector's telemetry
		return c.telemetry(t, "otelcol_receiver_proplet_tasks", "state=active") >= float64(n)
	})
	bound := time.Since(start)
	s0 := taskSamples()
	waitUntil(t, 5*time.Minute, func() bool {
		time.Sleep(time.Second) //nolint:forbidigo // polling the collector's telemetry
		return taskSamples() >= s0+float64(n)
	})
	t.Logf("warm-up: %d tasks bound after %s, each sampled once more after %s; load average %s",
		n, bound.Round(time.Second), time.Since(start).Round(time.Second), loadAverage())

	// The window.
	load0 := loadAverage()
	cpu0, samples0, msgs0, t0 := procCPU(t, c.pid), taskSamples(), delivered.Load(), time.Now()
	profiled := make(chan *profile.Profile, 1)
	go func() {
		p, err := c.fetchProfile(fmt.Sprintf("profile?seconds=%d", int(window.Seconds())))
		if err != nil {
			t.Errorf("CPU profile: %v", err)
		}
		profiled <- p
	}()
	var scrapes []timedScrape
	var heap, rss []float64
	promURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort)
	for tick := time.NewTicker(15 * time.Second); time.Since(t0) < window; <-tick.C {
		if has("prometheus") {
			s, err := scrapeTimed(promURL)
			require.NoError(t, err)
			scrapes = append(scrapes, s)
		}
		heap = append(heap, c.telemetry(t, "otelcol_process_runtime_heap_alloc_bytes"))
		rss = append(rss, float64(procStatus(t, c.pid, "VmRSS")))
	}
	kept := float64(keptOpenStats(t, c.pid, pids)) / float64(n) // the share of tasks whose files the collector keeps open
	w := scaleWindow{tasks: n, exporters: exporters, kept: kept, load0: load0, rss: rss, heap: heap, scrapes: scrapes}
	cpu1, samples1, msgs1, t1 := procCPU(t, c.pid), taskSamples(), delivered.Load(), time.Now()
	w.load1, w.over, w.used = loadAverage(), t1.Sub(t0), cpu1.sub(cpu0)
	w.samples, w.delivered = samples1-samples0, msgs1-msgs0
	w.cpuProfile = <-profiled
	var err error
	w.heapProfile, err = c.fetchProfile("heap")
	require.NoError(t, err)
	w.hwm = procStatus(t, c.pid, "VmHWM")
	keepProfile(t, w.cpuProfile, fmt.Sprintf("cpu-%d", n))
	keepProfile(t, w.heapProfile, fmt.Sprintf("heap-%d", n))
	w.floor = kernelFloor(t, pids, limit, 10, 10*time.Second)
	t.Log(w.String())

	// What the collector decided, against what the workload did: every task sampled once an
	// interval, each sample one task message, each task's series served.
	assert.InEpsilon(t, float64(n)/10, w.samples/w.over.Seconds(), 0.05, "every task sampled once every 10 s")
	if has("mqtt") {
		assert.InEpsilon(t, w.samples, float64(w.delivered), 0.05, "each sample delivered as one task message")
	}
	if has("prometheus") {
		body, err := scrape(promURL)
		require.NoError(t, err)
		assert.Equal(t, n, distinctTasks(body), "every task's series served")
	}
}

// scaleConfig is the collector's configuration of a scale run, with the exporters named (mqtt,
// prometheus, debug).
func scaleConfig(n int, exporters []string, broker string, promPort, telPort, pprofPort int, labels string) string {
	blocks := map[string]string{
		"mqtt":       fmt.Sprintf("mqtt: { endpoint: %s, domain_id: scale, channel_id: scale }", broker),
		"prometheus": fmt.Sprintf("prometheus: { endpoint: 127.0.0.1:%d, %s }", promPort, labels),
		"debug":      "debug: { verbosity: basic }",
	}
	var defined []string
	for _, e := range exporters {
		defined = append(defined, "  "+blocks[e])
	}
	return fmt.Sprintf(`
extensions:
  pprof: { endpoint: 127.0.0.1:%d }
receivers:
  proplet:
    proplet_id: %s
    max_tasks: %d
    discovery:
      - match: %s
        profile: standard
exporters:
%s
service:
  extensions: [pprof]
  telemetry: { metrics: { readers: [ { pull: { exporter: { prometheus: { host: 127.0.0.1, port: %d } } } } ] } }
  pipelines:
    metrics: { receivers: [proplet], exporters: [%s] }
`, pprofPort, propletID, max(n, 10000), scaleRule, strings.Join(defined, "\n"), telPort, strings.Join(exporters, ", "))
}

// countMessages subscribes to filter at QoS 1 and counts what the broker delivers, keeping
// nothing.
func countMessages(t *testing.T, endpoint, filter string, count *atomic.Int64) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(endpoint).SetClientID("scale-counter").
		SetDefaultPublishHandler(func(paho.Client, paho.Message) { count.Add(1) })
	c := paho.NewClient(o)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	st := c.Subscribe(filter, 1, nil)
	require.True(t, st.WaitTimeout(5*time.Second))
	require.NoError(t, st.Error())
	t.Cleanup(func() { c.Disconnect(100) })
}

// distinctTasks counts the task ids labelling the series of a Prometheus exposition.
func distinctTasks(body string) int {
	const label = `propeller_task_id="`
	ids := map[string]bool{}
	for rest := body; ; {
		i := strings.Index(rest, label)
		if i < 0 {
			return len(ids)
		}
		rest = rest[i+len(label):]
		j := strings.IndexByte(rest, '"')
		ids[rest[:j]] = true
		rest = rest[j:]
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(t *testing.T, name string, def int) int {
	v, err := strconv.Atoi(envOr(name, strconv.Itoa(def)))
	require.NoError(t, err, "%s must be a whole number", name)
	return v
}

func envFloat(t *testing.T, name string, def float64) float64 {
	v, err := strconv.ParseFloat(envOr(name, strconv.FormatFloat(def, 'f', -1, 64)), 64)
	require.NoError(t, err, "%s must be a number", name)
	return v
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(max(len(v), 1))
}

func maxOf(v []float64) float64 {
	var m float64
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
