package filestorageextension

import (
	"context"
	"fmt"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/extension/filestorageextension/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/internal/queuefile"
)

// checked is contrib's file storage, whose files are checked before it starts. GetClient and
// Shutdown are contrib's.
type checked struct {
	storage.Extension
	cfg *filestorage.Config
	log *zap.Logger
	tel *metadata.TelemetryBuilder
}

// Start moves every corrupt queue file of the directory aside, then starts contrib's
// extension, which creates an empty file in place of each moved one when its component asks.
func (c *checked) Start(ctx context.Context, host component.Host) error {
	res, err := queuefile.Recover(c.cfg.Directory, c.cfg.Timeout, time.Now())
	for _, m := range res.Moved {
		fields := []zap.Field{zap.String("file", m.File), zap.String("moved_to", m.MovedTo), zap.NamedError("corruption", m.Err)}
		if m.Entries >= 0 {
			fields = append(fields, zap.Int("lost_entries", m.Entries))
			c.tel.FileStorageLostEntries.Add(ctx, int64(m.Entries))
		} else {
			fields = append(fields, zap.String("lost_entries", "unknown: the file could not be read"))
		}
		if !c.cfg.FSync {
			fields = append(fields, zap.String("hint", "set fsync: true in file_storage so a power loss cannot leave a queue file half written"))
		}
		c.tel.FileStorageCorruptFiles.Add(ctx, 1)
		c.log.Error("Persistent queue file is corrupt: moved aside, its component starts with an empty queue; what it held is in the moved file", fields...)
	}
	for _, s := range res.Skipped {
		c.log.Warn("Persistent queue file not checked: it is in use or cannot be read; it is opened as it is", zap.Error(s))
	}
	if err != nil {
		return fmt.Errorf("file_storage: %w; give the collector read and write access to %s and its files, or remove an unreadable queue file by hand", err, c.cfg.Directory)
	}
	return c.Extension.Start(ctx, host)
}

// Shutdown shuts contrib's extension down and releases the telemetry.
func (c *checked) Shutdown(ctx context.Context) error {
	err := c.Extension.Shutdown(ctx)
	c.tel.Shutdown()
	return err
}
