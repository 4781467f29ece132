package pagetrimextension // import "github.com/otelcol-propeller/otelcol-propeller/extension/pagetrimextension"

import (
	"fmt"
	"time"
)

// Config is the pagetrim extension's configuration.
type Config struct {
	// Delay is how long after the pipelines are ready the executable's pages are paged out:
	// long enough for the first sampling rounds, the first broker connection and the first
	// queue write to have run their one-off code, so that code is dropped as well. 0 pages out
	// as soon as the pipelines are ready.
	Delay time.Duration `mapstructure:"delay"`
}

// Validate checks the delay.
func (c *Config) Validate() error {
	if c.Delay < 0 {
		return fmt.Errorf("delay: must not be negative, got %s", c.Delay)
	}
	return nil
}
