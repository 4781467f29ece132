package admission

import (
	"errors"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Reason names why a request was refused, for counting: the root key of the first field
// admission refused ("id", "monitoring_profile", "match", ...), "locator" for a request with no
// (or more than one) way to find its process, "profile" for a profile rule over several keys,
// and "malformed" for anything that is not an admission error (a body that is not JSON).
func Reason(err error) string {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return "malformed"
	}
	switch {
	case fe.Field != "":
		root, _, _ := strings.Cut(fe.Field, ".")
		return root
	case strings.Contains(fe.Msg, "monitoring_profile"):
		return "profile"
	default:
		return "locator"
	}
}

// Refusals counts refused requests of one door by reason and logs each reason at most once a
// minute, so a flood of bad requests costs a counter increment each, not a log line each.
type Refusals struct {
	door     string
	log      *zap.Logger
	count    func(reason string)
	interval time.Duration

	mu   sync.Mutex
	seen map[string]*refusalLog
}

type refusalLog struct {
	last       time.Time
	suppressed int
}

// NewRefusals returns the refusal log of a door. count is called for every refusal; it may be
// nil.
func NewRefusals(door string, log *zap.Logger, count func(reason string)) *Refusals {
	if count == nil {
		count = func(string) {}
	}
	return &Refusals{door: door, log: log, count: count, interval: time.Minute, seen: map[string]*refusalLog{}}
}

// Refuse counts a refused request and logs it at warning, unless a refusal for the same reason
// was logged less than a minute ago; the next line then says how many were not logged.
func (r *Refusals) Refuse(reason string, err error) {
	r.count(reason)
	now := time.Now()
	r.mu.Lock()
	l := r.seen[reason]
	if l == nil {
		l = &refusalLog{}
		r.seen[reason] = l
	}
	if !l.last.IsZero() && now.Sub(l.last) < r.interval {
		l.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = now, 0
	r.mu.Unlock()
	r.log.Warn("Task request refused", zap.String("door", r.door), zap.String("reason", reason),
		zap.Int("refused_since_last_logged", suppressed), zap.Error(err))
}
