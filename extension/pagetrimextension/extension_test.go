package pagetrimextension

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/pagetrim"
)

// fakeTrimmer returns a trimmer whose page-out is counted on calls and answers with res, err.
func fakeTrimmer(delay time.Duration, res pagetrim.Result, err error) (*trimmer, chan struct{}, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	tr := newTrimmer(zap.New(core), &Config{Delay: delay})
	calls := make(chan struct{}, 10)
	tr.pageOut = func() (pagetrim.Result, error) {
		calls <- struct{}{}
		return res, err
	}
	return tr, calls, logs
}

func TestReadyPagesOutAfterTheDelay(t *testing.T) {
	res := pagetrim.Result{Mappings: 2, Mapped: 30 << 20, Before: 24 << 20, After: 2 << 20}
	tr, calls, logs := fakeTrimmer(50*time.Millisecond, res, nil)
	require.NoError(t, tr.Start(context.Background(), componenttest.NewNopHost()))
	start := time.Now()
	require.NoError(t, tr.Ready())
	select {
	case <-calls:
		assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	case <-time.After(5 * time.Second):
		t.Fatal("no page-out after Ready")
	}
	require.Eventually(t, func() bool { return logs.Len() == 1 }, 5*time.Second, 5*time.Millisecond)
	e := logs.All()[0]
	assert.Equal(t, zapcore.InfoLevel, e.Level)
	assert.Equal(t, "Paged out the executable's start-up pages", e.Message)
	assert.Equal(t, map[string]any{
		"mappings": int64(2), "mapped_bytes": uint64(30 << 20),
		"resident_file_bytes_before": uint64(24 << 20), "resident_file_bytes_after": uint64(2 << 20),
	}, e.ContextMap())
	require.NoError(t, tr.Shutdown(context.Background()))
	assert.Empty(t, calls, "once per Ready")
}

func TestNotReadyAndShutdownCancel(t *testing.T) {
	for name, stop := range map[string]func(*trimmer) error{
		"NotReady": func(tr *trimmer) error { return tr.NotReady() },
		"Shutdown": func(tr *trimmer) error { return tr.Shutdown(context.Background()) },
	} {
		t.Run(name, func(t *testing.T) {
			tr, calls, _ := fakeTrimmer(100*time.Millisecond, pagetrim.Result{}, nil)
			require.NoError(t, tr.Ready())
			require.NoError(t, stop(tr))
			select {
			case <-calls:
				t.Fatal("paged out after " + name)
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
}

func TestFailuresAreLogged(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		level zapcore.Level
		msg   string
	}{
		{"unsupported", pagetrim.ErrUnsupported, zapcore.InfoLevel, "The executable's start-up pages stay resident"},
		{"failed", errors.New("madvise: EPERM"), zapcore.WarnLevel, "Paging out the executable's start-up pages failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, _, logs := fakeTrimmer(0, pagetrim.Result{}, tt.err)
			tr.trim()
			require.Equal(t, 1, logs.Len())
			e := logs.All()[0]
			assert.Equal(t, tt.level, e.Level)
			assert.Equal(t, tt.msg, e.Message)
			assert.Equal(t, tt.err.Error(), e.ContextMap()["error"])
		})
	}
}
