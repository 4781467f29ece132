//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/stretchr/testify/require"
)

// What the scale runs measure of a collector from outside: its CPU and memory from /proc, its
// own telemetry, and its pprof profiles split into stages.

// collector is a distribution run by a scale test with its configuration.
type collector struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	pid  int
	tel  string // its telemetry's /metrics
	prof string // its pprof extension, or "" without one
}

// startScaleCollector runs bin with cfg; telPort serves its own metrics, pprofPort (0: none) its
// pprof extension.
func startScaleCollector(t *testing.T, bin, cfg string, telPort, pprofPort int) *collector {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	c := &collector{logs: &syncBuffer{}, tel: fmt.Sprintf("http://127.0.0.1:%d/metrics", telPort)}
	if pprofPort != 0 {
		c.prof = fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", pprofPort)
	}
	c.cmd = exec.Command(bin, "--config", path)
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, c.cmd.Start())
	c.pid = c.cmd.Process.Pid
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("collector output (last 4 KiB):\n%s", tail(c.logs.String(), 4096))
		}
	})
	return c
}

// stop ends the collector with SIGTERM (SIGKILL after 30 s) and waits for it.
func (c *collector) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// cpu is a process's CPU time, user and system, from /proc/<pid>/stat (in clock ticks of 10 ms).
type cpu struct{ user, sys time.Duration }

func (a cpu) sub(b cpu) cpu                    { return cpu{a.user - b.user, a.sys - b.sys} }
func (a cpu) total() time.Duration             { return a.user + a.sys }
func (a cpu) share(over time.Duration) float64 { return a.total().Seconds() / over.Seconds() }

func (a cpu) String(over time.Duration) string {
	return fmt.Sprintf("%.2f%% of one core (user %.2f%%, system %.2f%%; %.1f s over %s)",
		100*a.share(over), 100*a.user.Seconds()/over.Seconds(), 100*a.sys.Seconds()/over.Seconds(), a.total().Seconds(), over.Round(time.Second))
}

func procCPU(t *testing.T, pid int) cpu {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	// Fields after the command name (which may hold spaces), from field 3 (state) on.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	tick := func(s string) time.Duration {
		v, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err)
		return time.Duration(v) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	return cpu{user: tick(f[11]), sys: tick(f[12])} // utime is field 14, stime 15
}

// procStatus returns a field of /proc/<pid>/status in bytes (VmRSS, VmHWM: given in kB).
func procStatus(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// telemetry sums the collector's own series named name (or name_total) whose labels include
// every key=value of with; a missing series is 0.
func (c *collector) telemetry(t *testing.T, name string, with ...string) float64 {
	t.Helper()
	body, err := scrape(c.tel)
	if err != nil {
		return 0 // not serving yet
	}
	var sum float64
next:
	for _, s := range parseExposition(t, body) {
		if s.name != name && s.name != name+"_total" {
			continue
		}
		for _, kv := range with {
			k, v, _ := strings.Cut(kv, "=")
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
	}
	return sum
}

// timedScrape is one scrape of a Prometheus endpoint: its duration (until the whole body was
// read), its size and its series.
type timedScrape struct {
	took   time.Duration
	bytes  int
	series int
}

func scrapeTimed(url string) (timedScrape, error) {
	start := time.Now()
	body, err := scrape(url)
	if err != nil {
		return timedScrape{}, err
	}
	s := timedScrape{took: time.Since(start), bytes: len(body)}
	for _, line := range strings.Split(body, "\n") {
		if line != "" && line[0] != '#' {
			s.series++
		}
	}
	return s, nil
}

// fetchProfile fetches a pprof profile from the collector (path: "profile?seconds=300", "heap").
func (c *collector) fetchProfile(path string) (*profile.Profile, error) {
	resp, err := http.Get(c.prof + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", path, resp.Status, b)
	}
	return profile.ParseData(b)
}

// keepProfile writes p to SCALE_PROFILE_DIR/<name>.pprof, for go tool pprof, when that is set.
func keepProfile(t *testing.T, p *profile.Profile, name string) {
	t.Helper()
	dir := os.Getenv("SCALE_PROFILE_DIR")
	if dir == "" || p == nil {
		return
	}
	var out bytes.Buffer
	require.NoError(t, p.Write(&out))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".pprof"), out.Bytes(), 0o644))
}

// stages attribute a profile's samples to the collector's stages by the functions on their
// stack: the first stage, in this order, with a frame whose function name contains one of its
// patterns takes the sample. So GC assists count as GC wherever they ran, an exporter's work as
// the exporter's although the receiver's emit loop called it, and the discovery pass's exit
// checks as discovery although they read a task's stat. A sample's read of a task past the
// kept-open budget opens its files through the Source: that is sampling, not discovery, so
// discovery names the Source's own jobs (the scan, a process's description, opening one to
// bind it), not the Source as a whole.
var stages = []struct{ name, patterns string }{
	{"GC", "runtime.gcBgMarkWorker runtime.bgsweep runtime.bgscavenge runtime.gcAssistAlloc"},
	{"profiler itself", "runtime/pprof. net/http/pprof."},
	{"own telemetry", "go.opentelemetry.io/otel/exporters/prometheus"},
	{"prometheus scrape", "prometheusexporter.(*collector) client_golang/prometheus common/expfmt"},
	// The pipeline copies each batch for an exporter that says it changes what it is given
	// (the prometheus exporter, for its resource labels) when another exporter shares it.
	{"pipeline copy for prometheus", "fanoutconsumer.cloneMetrics"},
	{"prometheus consume", "prometheusexporter. resourcetotelemetry."},
	{"mqtt encode+publish", "mqttexporter. paho. internal/mqttconn. internal/propeller."},
	{"batch, queue", "exporterhelper batchprocessor queuebatch"},
	{"pdata building", "receiver/propletreceiver."},
	{"discovery, events", "monitor.(*Monitor).discover monitor.(*Monitor).process monitor.(*events) internal/procevents. internal/procmatch. process.(*Source).Scan process.(*Source).Describe process.(*Source).Open"},
	{"sampling: process reads", "internal/process.(*Handle).Read"},
	{"sampling: the rest", "internal/monitor."},
	{"scheduler", "internal/schedule."},
	{"hostmetrics scrape", "hostmetricsreceiver"},
	{"own telemetry", "go.opentelemetry.io/otel"},
	{"Go runtime: scheduler, idle, other", "runtime."},
}

// stageOf returns the stage of a stack.
func stageOf(s *profile.Sample) string {
	for _, st := range stages {
		for _, pat := range strings.Fields(st.patterns) {
			for _, loc := range s.Location {
				for _, line := range loc.Line {
					if line.Function != nil && strings.Contains(line.Function.Name, pat) {
						return st.name
					}
				}
			}
		}
	}
	return "other"
}

// byStage sums a profile's values of sample type typ by stage.
func byStage(p *profile.Profile, typ string) (map[string]int64, int64) {
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == typ {
			idx = i
		}
	}
	out := map[string]int64{}
	var total int64
	if idx < 0 {
		return out, 0
	}
	for _, s := range p.Sample {
		v := s.Value[idx]
		out[stageOf(s)] += v
		total += v
	}
	return out, total
}

// stageOrder lists the stages of m, largest first.
func stageOrder(m map[string]int64) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return m[names[i]] > m[names[j]] })
	return names
}

// topFunctions is the n functions with the most flat value of type typ, for the log.
func topFunctions(p *profile.Profile, typ string, n int) string {
	idx := 0
	for i, st := range p.SampleType {
		if st.Type == typ {
			idx = i
		}
	}
	flat := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		if len(s.Location) > 0 && len(s.Location[0].Line) > 0 && s.Location[0].Line[0].Function != nil {
			flat[s.Location[0].Line[0].Function.Name] += s.Value[idx]
		}
		total += s.Value[idx]
	}
	var b strings.Builder
	for i, name := range stageOrder(flat) {
		if i == n {
			break
		}
		fmt.Fprintf(&b, "\n    %5.1f%%  %s", 100*float64(flat[name])/float64(max(total, 1)), name)
	}
	return b.String()
}

// readsByKind splits a profile's reads (the process reads stage) by how their files were
// read: through kept-open descriptors (preads, fstat of fd/), by path (the files opened, read
// and closed, a stat of fd/), and the rest (parsing, the reads' own code).
func readsByKind(p *profile.Profile) (kept, byPath, rest int64) {
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return 0, 0, 0
	}
	on := func(s *profile.Sample, pattern string) bool {
		for _, loc := range s.Location {
			for _, line := range loc.Line {
				if line.Function != nil && strings.Contains(line.Function.Name, pattern) {
					return true
				}
			}
		}
		return false
	}
	for _, s := range p.Sample {
		if stageOf(s) != "sampling: process reads" {
			continue
		}
		v := s.Value[idx]
		switch {
		case on(s, "process.(*Source).readFile"), on(s, "unix.Fstatat"):
			byPath += v
		case on(s, "process.preadProc"), on(s, "unix.Fstat"):
			kept += v
		default:
			rest += v
		}
	}
	return kept, byPath, rest
}
