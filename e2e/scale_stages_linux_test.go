package e2e

import (
	"testing"

	"github.com/google/pprof/profile"
)

// stack is a profile sample whose stack holds the named functions, innermost first.
func stack(funcs ...string) *profile.Sample {
	s := &profile.Sample{}
	for _, f := range funcs {
		s.Location = append(s.Location, &profile.Location{Line: []profile.Line{{Function: &profile.Function{Name: f}}}})
	}
	return s
}

// TestStageOf: the scale runs' split of a profile into stages takes each sample where its
// work belongs. A read of a task past the kept-open budget opens its files through the
// Source: sampling, not discovery (the split once counted those, half the reads at 10,000
// tasks, as discovery).
func TestStageOf(t *testing.T) {
	const mod = "github.com/otelcol-propeller/otelcol-propeller/"
	for _, tt := range []struct {
		want  string
		stack []string
	}{
		{"sampling: process reads", []string{"syscall.Syscall6", mod + "internal/process.(*Source).readFile", mod + "internal/process.(*Handle).Read", mod + "internal/monitor.(*Monitor).read", mod + "internal/monitor.(*Monitor).sampleTask"}},
		{"discovery, events", []string{mod + "internal/process.(*Handle).Read", mod + "internal/monitor.(*Monitor).checkExit", mod + "internal/monitor.(*Monitor).discover"}},
		{"discovery, events", []string{"syscall.Syscall6", mod + "internal/process.(*Source).Scan", mod + "internal/monitor.(*discovery).refresh"}},
		{"discovery, events", []string{mod + "internal/process.(*Source).Open", mod + "internal/monitor.(*Monitor).bind", mod + "internal/monitor.(*Monitor).bindDiscovered"}},
		{"mqtt encode+publish", []string{mod + "exporter/mqttexporter.(*mqttExporter).pushMetrics", mod + "receiver/propletreceiver.(*propletReceiver).emit"}},
		{"GC", []string{"runtime.gcAssistAlloc", mod + "internal/process.(*Handle).Read"}},
	} {
		if got := stageOf(stack(tt.stack...)); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.stack, got, tt.want)
		}
	}
}
