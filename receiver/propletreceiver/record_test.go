package propletreceiver

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver/internal/metadata"
)

// BenchmarkRecord measures turning one task sample into OTLP (a resource with its eleven
// attributes and twelve data points), emitted in batches of 100 as a scheduling round is.
func BenchmarkRecord(b *testing.B) {
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	r := &propletReceiver{cfg: cfg, mb: metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, receivertest.NewNopSettings(metadata.Type))}
	p, _ := profile.Builtin(profile.Standard)
	s := monitor.Sample{
		Kind: monitor.KindTask, Time: time.Now(), TaskID: "550e8400-e29b-41d4-a716-446655440001", TaskName: "compute",
		ProfileName: "standard", Profile: p, HasProcess: true, PID: 4242, PPID: 1, Executable: "wasmtime", Owner: "proplet",
		Start: time.Now().Add(-time.Minute), Got: process.AllFields &^ process.FieldNetwork, CPUUser: 1, CPUSystem: 0.5,
		UtilUser: 0.1, UtilSystem: 0.05, HasUtil: true, RSS: 1 << 20, VMS: 1 << 24, MemUtil: 0.01, ReadBytes: 1, WriteBytes: 2,
		Threads: 4, FDs: 9, Uptime: 60,
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.record(&s)
		if i++; i%100 == 0 {
			_ = r.mb.Emit()
		}
	}
}
