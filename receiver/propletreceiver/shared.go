package propletreceiver // import "github.com/otelcol-propeller/otelcol-propeller/receiver/propletreceiver"

import (
	"sync"

	"go.opentelemetry.io/collector/receiver"
)

// receivers keeps one receiver per configuration, however many signals use it: a proplet
// receiver in a metrics and a logs pipeline samples once, and its task usage reports go to
// the logs pipelines.
var receivers = sharedReceivers{m: map[*Config]*propletReceiver{}}

type sharedReceivers struct {
	mu sync.Mutex
	m  map[*Config]*propletReceiver
}

// get returns the receiver of cfg, creating it on first use, after attach connected a
// pipeline's consumer to it.
func (s *sharedReceivers) get(set receiver.Settings, cfg *Config, attach func(*propletReceiver)) (*propletReceiver, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[cfg]
	if !ok {
		var err error
		if r, err = newReceiver(set, cfg); err != nil {
			return nil, err
		}
		s.m[cfg] = r
		r.forget = func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.m[cfg] == r {
				delete(s.m, cfg)
			}
		}
	}
	attach(r)
	return r, nil
}
