//go:build linux

package propletreceiver

import "github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"

func setupTestMain() { testworkload.MainIfChild() }
