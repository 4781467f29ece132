package propellermqttreceiver

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/fleet"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propellermqttreceiver/internal/metadata"
)

// TestMeasureFlood is a measurement, not a test (BENCHMARKS.md, "The fleet gateway under a
// flood of ids"): 100,000 distinct valid task ids through the conversion path, what is handed
// on, what a sink that keeps it all (as a backend keeps series) holds, the process's RSS, and
// what a tracker holds. PROPELLER_FLOOD_MEASURE=1 runs it.
func rssKB() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "VmHWM:") {
			fmt.Print(l, "  ")
		}
	}
	return ""
}

func TestMeasureFlood(t *testing.T) {
	if os.Getenv("PROPELLER_FLOOD_MEASURE") == "" {
		t.Skip()
	}
	cfg := createDefaultConfig().(*Config)
	cfg.ClientID = "m"
	tel := componenttest.NewTelemetry()
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	sink := new(consumertest.MetricsSink)
	r, err := newReceiver(set, cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	initForMeasure(t, r)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(1)
	go r.flushLoop()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	now := time.Now()
	start := time.Now()
	for i := range 100_000 {
		r.handle(taskTopic(0), taskMessage(1, i, now), now.UnixNano())
	}
	r.stopOnce.Do(r.stop)
	elapsed := time.Since(start)
	resources, series := 0, map[string]bool{}
	for _, md := range sink.AllMetrics() {
		rms := md.ResourceMetrics()
		resources += rms.Len()
		for i := range rms.Len() {
			id, _ := rms.At(i).Resource().Attributes().Get("propeller.task.id")
			series[id.Str()] = true
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fmt.Printf("FLOOD: 100000 distinct task ids in %s; resources handed on %d, distinct tasks %d, points %d; heap held (sink = what a backend keeps) %.1f MB; ", elapsed.Round(time.Millisecond), resources, len(series), sink.DataPointCount(), float64(ms.HeapAlloc-base)/1e6)
	rssKB()
	fmt.Println()
	trackedState(r)
}

func initForMeasure(t *testing.T, r *fleetReceiver) {
	if err := r.initTelemetry(); err != nil {
		t.Fatal(err)
	}
}

func trackedState(r *fleetReceiver) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	tr := fleet.NewTracker(fleet.DefaultLimits())
	now := time.Now().UnixNano()
	for i := range 100_000 {
		m := propeller.Received{Topic: propeller.Topic{Domain: "d", Channel: "c", Kind: schema.KindTask},
			Task: propeller.TaskMessage{TaskID: uuid(1, i), PropletID: uuid(2, 1)}}
		tr.Track(&m, now)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fmt.Printf("tracked state: receiver %d tasks; a fresh tracker after 100000 ids: %d tasks, %.0f KB of heap\n", r.tracked.Len(schema.KindTask), tr.Len(schema.KindTask), float64(ms.HeapAlloc-before)/1e3)
	runtime.KeepAlive(tr)
}
