//go:build linux

package propletreceiver

import (
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

func setupTestMain() { testworkload.MainIfChild() }

// patience is how long a test waits for what the receiver will do (a bind, a sample, a
// report): within a pass on an idle machine, seconds later on one running other work.
const patience = 30 * time.Second
