//go:build !linux

package mqtttest

import (
	"testing"
	"time"
)

// Mosquitto is started only on Linux.
type Mosquitto struct{}

// MosquittoAvailable is false off Linux: tests use the embedded broker.
func MosquittoAvailable() bool { return false }

// StartMosquitto is Linux-only.
func StartMosquitto(tb testing.TB) *Mosquitto {
	tb.Helper()
	tb.Skip("mosquitto processes are started on Linux only")
	return nil
}

// Endpoint is Linux-only.
func (*Mosquitto) Endpoint() string { return "" }

// Stop is Linux-only.
func (*Mosquitto) Stop() {}

// Restart is Linux-only.
func (*Mosquitto) Restart(time.Duration) {}
