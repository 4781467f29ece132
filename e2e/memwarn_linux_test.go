//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"
)

// The memory warning against a real OOM kill, in process: the proplet receiver samples a
// workload that grows towards its cgroup's 64 MiB limit, its logs pipeline feeds the mqtt
// exporter, which publishes to an embedded broker.
const (
	warnLimit    = 64 << 20
	warnRate     = 10 // MiB a second the workload grows
	warnShare    = 0.4
	warnInterval = 500 * time.Millisecond
	warnFast     = 100 * time.Millisecond
	warnTaskID   = "550e8400-e29b-41d4-a716-446655440064"
)

// memoryLimitedCgroup makes a memory cgroup limited to limit bytes (swap included, where the
// v1 hierarchy counts it), or skips saying why this machine cannot: cgroup v2 with the memory
// controller, else the v1 memory hierarchy.
func memoryLimitedCgroup(t *testing.T, limit int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the memory warning's OOM test creates a memory-limited cgroup, which needs root")
	}
	name := fmt.Sprintf("otelcol-propeller-memwarn-%d", os.Getpid())
	var dir string
	var files []string
	v2 := func(root string) bool {
		b, err := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
		return err == nil && strings.Contains(string(b), "memory")
	}
	switch {
	case v2("/sys/fs/cgroup"):
		dir, files = filepath.Join("/sys/fs/cgroup", name), []string{"memory.max", "memory.swap.max"}
	case v2("/sys/fs/cgroup/unified"):
		dir, files = filepath.Join("/sys/fs/cgroup/unified", name), []string{"memory.max", "memory.swap.max"}
	default:
		if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
			t.Skip("no cgroup v2 hierarchy with the memory controller enabled and no v1 memory hierarchy: cannot limit a task's memory here")
		}
		// The limit first: memsw must not be below it.
		dir, files = filepath.Join("/sys/fs/cgroup/memory", name), []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a memory cgroup here: %v", err)
	}
	t.Cleanup(func() {
		// The cgroup can go once its last process was reaped.
		var err error
		for range 100 {
			if err = os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("the test's cgroup %s is left behind: %v", dir, err)
	})
	for i, f := range files {
		value := strconv.FormatInt(limit, 10)
		if f == "memory.swap.max" {
			value = "0"
		}
		err := os.WriteFile(filepath.Join(dir, f), []byte(value), 0o644)
		if i == 0 {
			require.NoError(t, err, "setting the cgroup's limit")
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Logf("%s not set (no swap accounting?): %v", f, err)
		}
	}
	return dir
}

// warnRecord is what the logs pipeline carried: an event, its timestamp (for a warning, when
// its sample was taken), when it arrived, and its attributes.
type warnRecord struct {
	event  string
	ts, at time.Time
	attrs  map[string]any
}

// TestMemoryWarningBeforeOOMKill: a task growing at a steady rate towards its cgroup's limit is
// sampled at its warning interval once it passes its memory_warning share, its
// propeller.task.memory.high record and the task_alerts message arrive before the kernel's OOM
// killer ends it, and the time to the limit they say is within a factor of two of the time the
// test measured from the warning to the kill.
func TestMemoryWarningBeforeOOMKill(t *testing.T) {
	cg := memoryLimitedCgroup(t, warnLimit)

	const domain, channel, propletID = "memwarn-domain", "memwarn-channel", "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	broker := mqtttest.Start(t, mqtttest.Options{})
	sub := mqtttest.Subscribe(t, broker.Endpoint(), fmt.Sprintf("m/%s/c/%s/control/proplet/#", domain, channel), mqtttest.SubscriberOptions{})

	// The workload joins the cgroup, reports ready, and grows once the test says go.
	cmd := testworkload.Command(t, testworkload.Grow, warnRate, testworkload.GrowCgroupEnv+"="+cg)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	testworkload.StartCmd(t, cmd)

	ctx := context.Background()
	ef := mqttexporter.NewFactory()
	ecfg := ef.CreateDefaultConfig().(*mqttexporter.Config)
	ecfg.Endpoint, ecfg.DomainID, ecfg.ChannelID = broker.Endpoint(), domain, channel
	eset := exportertest.NewNopSettings(ef.Type())
	eset.Logger = zaptest.NewLogger(t)
	exp, err := ef.CreateLogs(ctx, eset, ecfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(context.Background())) })

	// The pipelines: the task's samples are counted with their times; log records are noted
	// as they pass on to the exporter.
	var mu sync.Mutex
	var samples []time.Time
	var records []warnRecord
	metrics, err := consumer.NewMetrics(func(_ context.Context, md pmetric.Metrics) error {
		mu.Lock()
		defer mu.Unlock()
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			rm := rms.At(i)
			if id, ok := rm.Resource().Attributes().Get(schema.TaskID); !ok || id.Str() != warnTaskID {
				continue
			}
			ms := rm.ScopeMetrics().At(0).Metrics()
			for j := 0; j < ms.Len(); j++ {
				if m := ms.At(j); m.Name() == schema.ProcessMemoryUsage {
					samples = append(samples, m.Sum().DataPoints().At(0).Timestamp().AsTime())
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
	logs, err := consumer.NewLogs(func(ctx context.Context, ld plog.Logs) error {
		now := time.Now()
		mu.Lock()
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			lrs := rls.At(i).ScopeLogs().At(0).LogRecords()
			for j := 0; j < lrs.Len(); j++ {
				lr := lrs.At(j)
				records = append(records, warnRecord{event: lr.EventName(), ts: lr.Timestamp().AsTime(), at: now, attrs: lr.Attributes().AsRaw()})
			}
		}
		mu.Unlock()
		return exp.ConsumeLogs(ctx, ld)
	})
	require.NoError(t, err)

	rf := propletreceiver.NewFactory()
	rcfg := rf.CreateDefaultConfig().(*propletreceiver.Config)
	rcfg.PropletID, rcfg.StartJitter = propletID, 0
	share, every, interval := warnShare, warnFast, warnInterval
	rcfg.Tasks = []propletreceiver.TaskConfig{{
		ID: warnTaskID, Name: "grow", ProcessLocator: propletreceiver.ProcessLocator{PID: int32(cmd.Process.Pid)},
		MonitoringProfile: &profile.Overrides{Interval: &interval, MemoryWarning: &share, MemoryWarningInterval: &every},
	}}
	rset := receivertest.NewNopSettings(rf.Type())
	rset.Logger = zaptest.NewLogger(t)
	mr, err := rf.CreateMetrics(ctx, rset, rcfg, metrics)
	require.NoError(t, err)
	lr, err := rf.CreateLogs(ctx, rset, rcfg, logs)
	require.NoError(t, err)
	require.NoError(t, mr.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, lr.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() {
		require.NoError(t, lr.Shutdown(context.Background()))
		require.NoError(t, mr.Shutdown(context.Background()))
	})

	// Bound and sampled once at its interval: then it grows.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(samples) >= 1
	}, 30*time.Second, 10*time.Millisecond, "the task's first sample")
	start := time.Now()
	_, err = stdin.Write([]byte("go\n"))
	require.NoError(t, err)

	// The kill, as the process's wait status says it.
	type exit struct {
		at  time.Time
		err error
	}
	exited := make(chan exit, 1)
	go func() {
		err := cmd.Wait()
		exited <- exit{time.Now(), err}
	}()
	var killed exit
	select {
	case killed = <-exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the workload was not killed within 2 minutes of growing %d MiB/s towards a %d MiB limit", warnRate, warnLimit>>20)
	}
	var ee *exec.ExitError
	require.ErrorAs(t, killed.err, &ee, "killed, not exited")
	ws := ee.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled(), "ended by a signal: %v", ws)
	require.Equal(t, syscall.SIGKILL, ws.Signal(), "the OOM killer's signal")
	t.Logf("killed %s after it began to grow", killed.at.Sub(start).Round(time.Millisecond))

	// The usage report says the OOM killer did it, through the pipeline and over MQTT.
	var report map[string]any
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range records {
			if r.event == schema.TaskEndEvent {
				report = r.attrs
				return true
			}
		}
		return false
	}, 30*time.Second, 10*time.Millisecond, "the usage report")
	assert.Equal(t, true, report[schema.TaskOOMKilled], "the report: %v", report)
	msgs := sub.Wait(t, 30*time.Second, func(m []mqtttest.Message) bool {
		for _, msg := range m {
			if strings.HasSuffix(msg.Topic, "/task_usage") {
				return true
			}
		}
		return false
	})

	mu.Lock()
	defer mu.Unlock()
	// The first warning: before the kill, through the pipeline and on task_alerts.
	var high *warnRecord
	for i := range records {
		if records[i].event == schema.TaskMemoryHighEvent {
			high = &records[i]
			break
		}
	}
	require.NotNil(t, high, "a %s record before the end; records: %v", schema.TaskMemoryHighEvent, records)
	assert.True(t, high.at.Before(killed.at), "the warning came %s before the kill", killed.at.Sub(high.at))
	var alert *mqtttest.Message
	for i := range msgs {
		if strings.HasSuffix(msgs[i].Topic, "/task_alerts") && msgs[i].Decoded(t)["kind"] == "memory_high" {
			alert = &msgs[i]
			break
		}
	}
	require.NotNil(t, alert, "a task_alerts message")
	assert.Equal(t, fmt.Sprintf("m/%s/c/%s/control/proplet/task_alerts", domain, channel), alert.Topic)
	assert.True(t, alert.At.Before(killed.at), "the MQTT message came %s before the kill", killed.at.Sub(alert.At))
	v := alert.Decoded(t)
	assert.Equal(t, warnTaskID, v["task_id"])
	assert.Equal(t, propletID, v["proplet_id"])
	assert.InDelta(t, float64(warnLimit), v["limit"], 0, "the cgroup's limit")
	assert.GreaterOrEqual(t, v["value"], float64(warnLimit)*warnShare, "past the share")

	// The time to the limit, against the time the test measured from the warning to the kill.
	eta, ok := high.attrs[schema.TaskMemorySecondsToLimit].(float64)
	require.True(t, ok, "seconds_to_limit: the usage is growing: %v", high.attrs)
	assert.InDelta(t, eta, v["seconds_to_limit"], 1e-9, "the message says what the record says")
	took := killed.at.Sub(high.ts).Seconds()
	t.Logf("warning at %.1f%% of the limit (%v bytes), growth %.0f bytes/s: seconds_to_limit %.2f; killed %.2fs after its sample, %.3fs after it arrived",
		high.attrs[schema.TaskMemoryShare].(float64)*100, high.attrs[schema.TaskMemoryUsage], high.attrs[schema.TaskMemoryGrowthRate], eta, took, killed.at.Sub(high.at).Seconds())
	assert.True(t, took >= eta/2 && took <= eta*2, "seconds_to_limit %.2f is not within a factor of two of the %.2f s to the kill", eta, took)

	// Sampled at the warning interval from the warning to the kill: counted, more samples than
	// its interval could have given in that time.
	var after int
	for _, at := range samples {
		if !at.Before(high.ts) && at.Before(killed.at) {
			after++
		}
	}
	atInterval := int(took/warnInterval.Seconds()) + 1
	t.Logf("%d samples from the warning to the kill (%.2fs): at most %d at the %s interval, %d at the %s warning interval",
		after, took, atInterval, warnInterval, int(took/warnFast.Seconds()), warnFast)
	assert.Greater(t, after, 2*atInterval, "sampled at the warning interval once high")
}
