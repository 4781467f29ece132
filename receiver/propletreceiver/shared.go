package propletreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-propeller/otelcol-propeller/internal/sharedcomponent"
)

// receivers keeps one receiver per configuration, however many signals use it: a proplet
// receiver in a metrics and a logs pipeline samples once, and its task usage reports go to
// the logs pipelines.
var receivers sharedcomponent.Map[*Config, *propletReceiver]

// receiverUse is one pipeline's hold on the shared receiver: the first Start starts it, the
// last Shutdown stops it.
type receiverUse struct {
	use *sharedcomponent.Use[*Config, *propletReceiver]
}

// useReceiver returns a hold on the receiver of cfg, created on first use, after attach
// connected a pipeline's consumer to it.
func useReceiver(set receiver.Settings, cfg *Config, attach func(*propletReceiver)) (*receiverUse, error) {
	u, err := receivers.Get(cfg, func() (*propletReceiver, error) { return newReceiver(set, cfg) })
	if err != nil {
		return nil, err
	}
	attach(u.Value())
	return &receiverUse{use: u}, nil
}

func (u *receiverUse) Start(ctx context.Context, host component.Host) error {
	return u.use.Start(func() error { return u.use.Value().start(ctx, host) })
}

func (u *receiverUse) Shutdown(ctx context.Context) error {
	return u.use.Shutdown(func() error { return u.use.Value().shutdown(ctx) })
}
