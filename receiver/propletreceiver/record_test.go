package propletreceiver

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

// benchSample is a task sample of the standard profile, as BenchmarkRecord records it.
func benchSample() monitor.Sample {
	p, _ := profile.Builtin(profile.Standard)
	return monitor.Sample{
		Kind: monitor.KindTask, Time: time.Now(), TaskID: "550e8400-e29b-41d4-a716-446655440001", TaskName: "compute",
		ProfileName: "standard", Profile: p, HasProcess: true, PID: 4242, PPID: 1, Executable: "wasmtime", Owner: "proplet",
		Start: time.Now().Add(-time.Minute), Got: process.AllFields &^ process.FieldNetwork, CPUUser: 1, CPUSystem: 0.5,
		UtilUser: 0.1, UtilSystem: 0.05, HasUtil: true, RSS: 1 << 20, VMS: 1 << 24, MemUtil: 0.01, ReadBytes: 1, WriteBytes: 2,
		Threads: 4, FDs: 9, Uptime: 60,
	}
}

func benchReceiver() *propletReceiver {
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	return &propletReceiver{cfg: cfg, mb: metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, receivertest.NewNopSettings(metadata.Type))}
}

// BenchmarkRecord measures turning one task sample into OTLP (a resource with its eleven
// attributes and twelve data points), emitted in batches of 100 as a scheduling round is.
func BenchmarkRecord(b *testing.B) {
	r := benchReceiver()
	s := benchSample()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.record(&s)
		if i++; i%100 == 0 {
			_ = r.mb.Emit()
		}
	}
}

// BenchmarkRecordFloor is the floor under BenchmarkRecord: the same OTLP tree of one sample
// made with nothing else, each of its nodes allocated once and at its final size (a CopyTo of
// the tree record builds), into batches of 100. No receiver can build a sample's OTLP for
// less; run the two side by side:
//
//	go test -run '^$' -bench 'BenchmarkRecord' -benchmem -count 3 ./receiver/propletreceiver/
func BenchmarkRecordFloor(b *testing.B) {
	r := benchReceiver()
	s := benchSample()
	r.record(&s)
	ref := r.mb.Emit().ResourceMetrics().At(0)
	if n := ref.ScopeMetrics().At(0).Metrics().Len(); n < 10 {
		b.Fatalf("the reference sample has %d metrics", n)
	}
	b.ReportAllocs()
	batch := pmetric.NewMetrics()
	i := 0
	for b.Loop() {
		ref.CopyTo(batch.ResourceMetrics().AppendEmpty())
		if i++; i%100 == 0 {
			batch = pmetric.NewMetrics()
		}
	}
}
