// Package filestorageextension is the file_storage extension of this distribution: contrib's
// file storage (extension/storage/filestorage, the same configuration keys and files) with a
// check of its files at start. bbolt trusts its files: a truncated or partly overwritten one,
// after a power loss without fsync or on a failing disk, makes it panic or refuse to open at
// every start, so one bad queue file kept the whole collector down. Here a corrupt file is
// moved aside (internal/queuefile), logged and counted, and its component starts with an
// empty queue.
package filestorageextension // import "github.com/otelcol-propeller/otelcol-propeller/extension/filestorageextension"

import (
	"context"
	"fmt"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/xextension/storage"

	"github.com/otelcol-propeller/otelcol-propeller/extension/filestorageextension/internal/metadata"
)

// contrib is the file storage this extension checks the files of and then delegates to.
var contrib = filestorage.NewFactory()

// NewFactory returns the factory of the file_storage extension. Its configuration is contrib's.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, contrib.CreateDefaultConfig, create, metadata.ExtensionStability)
}

func create(ctx context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	ext, err := contrib.Create(ctx, set, cfg)
	if err != nil {
		return nil, err
	}
	st, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("contrib's file_storage is not a storage extension (%T)", ext)
	}
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("file_storage telemetry: %w", err)
	}
	return &checked{Extension: st, cfg: cfg.(*filestorage.Config), log: set.Logger, tel: tel}, nil
}
