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
	"errors"
	"fmt"
	"io/fs"

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
		return nil, withFix(err, cfg.(*filestorage.Config).Directory)
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

// withFix adds the fix to contrib's error when the directory cannot be created or written: the
// usual case is trying a service's configuration by hand as a user who may not write under
// /var/lib.
func withFix(err error, dir string) error {
	if !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return fmt.Errorf("%w: the user running the collector may not create or write %s; run it as a user "+
		"who may (the packages' service user does), or point directory at a writable one (the examples "+
		"read it from OTELCOL_PROPELLER_QUEUE_DIR, e.g. OTELCOL_PROPELLER_QUEUE_DIR=/tmp/otelcol-propeller-queue-$(id -u))", err, dir)
}
