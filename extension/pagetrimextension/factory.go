// Package pagetrimextension is a Collector extension that, once the pipelines are running,
// hands back to the kernel the pages of the collector's executable that only start-up used
// (internal/pagetrim). Both builds have it; it matters most in the edge build, whose binary's
// own resident pages were the largest part of the collector's memory.
package pagetrimextension // import "github.com/otelcol-propeller/otelcol-propeller/extension/pagetrimextension"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/otelcol-propeller/otelcol-propeller/extension/pagetrimextension/internal/metadata"
)

// defaultDelay covers a few sampling rounds of the default 10 s profile.
const defaultDelay = 30 * time.Second

// NewFactory returns the pagetrim extension's factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, createDefaultConfig, create, metadata.ExtensionStability)
}

func createDefaultConfig() component.Config {
	return &Config{Delay: defaultDelay}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newTrimmer(set.Logger, cfg.(*Config)), nil
}
