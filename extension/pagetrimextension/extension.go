package pagetrimextension

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/internal/pagetrim"
)

var _ extensioncapabilities.PipelineWatcher = (*trimmer)(nil)

// trimmer pages the executable out once, Delay after the service reports its pipelines ready
// (again after a configuration reload, which starts the pipelines anew).
type trimmer struct {
	log     *zap.Logger
	delay   time.Duration
	pageOut func() (pagetrim.Result, error)

	mu    sync.Mutex
	timer *time.Timer
}

func newTrimmer(log *zap.Logger, cfg *Config) *trimmer {
	return &trimmer{log: log, delay: cfg.Delay, pageOut: pagetrim.PageOut}
}

func (t *trimmer) Start(context.Context, component.Host) error { return nil }

// Ready is called once every pipeline has started: start-up code has run.
func (t *trimmer) Ready() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stop()
	t.timer = time.AfterFunc(t.delay, t.trim)
	return nil
}

// NotReady is called before the receivers stop: a page-out still pending is cancelled.
func (t *trimmer) NotReady() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stop()
	return nil
}

func (t *trimmer) Shutdown(context.Context) error { return t.NotReady() }

func (t *trimmer) stop() {
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
}

func (t *trimmer) trim() {
	res, err := t.pageOut()
	switch {
	case errors.Is(err, pagetrim.ErrUnsupported):
		t.log.Info("The executable's start-up pages stay resident", zap.Error(err))
	case err != nil:
		t.log.Warn("Paging out the executable's start-up pages failed", zap.Error(err))
	default:
		t.log.Info("Paged out the executable's start-up pages",
			zap.Int("mappings", res.Mappings),
			zap.Uint64("mapped_bytes", res.Mapped),
			zap.Uint64("resident_file_bytes_before", res.Before),
			zap.Uint64("resident_file_bytes_after", res.After))
	}
}
