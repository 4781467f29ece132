package admission

import (
	"errors"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/otelcol-propeller/otelcol-propeller/internal/ratelog"
)

// Errors a registry (the monitor) wraps when it refuses an admitted task, so that one function,
// Reason, names every refusal whichever step made it.
var (
	ErrTooManyTasks   = errors.New("too many tasks")
	ErrTooManyPending = errors.New("too many pending tasks")
	ErrDuplicate      = errors.New("already registered")
)

// Reason names why a task was refused, for counting. For a registry's refusal: too_many_tasks,
// too_many_pending or duplicate. For admission's: the root key of the first field refused
// ("id", "monitoring_profile", "match", ...), "locator" for a request with no (or more than
// one) way to find its process, "profile" for a profile rule over several keys. Anything else
// (a body that is not JSON) is "malformed".
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrTooManyTasks):
		return "too_many_tasks"
	case errors.Is(err, ErrTooManyPending):
		return "too_many_pending"
	case errors.Is(err, ErrDuplicate):
		return "duplicate"
	}
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
	door  string
	count func(reason string)
	log   *ratelog.Log
}

// NewRefusals returns the refusal log of a door. count is called for every refusal; it may be
// nil.
func NewRefusals(door string, log *zap.Logger, count func(reason string)) *Refusals {
	if count == nil {
		count = func(string) {}
	}
	return &Refusals{door: door, count: count, log: ratelog.New(log, ratelog.DefaultEvery, "refused")}
}

// Refuse counts a refused request and logs it at warning, unless a refusal for the same reason
// was logged less than a minute ago; the next line then says how many were not logged.
func (r *Refusals) Refuse(reason string, err error) {
	r.count(reason)
	r.log.Log(zapcore.WarnLevel, reason, 1, "Task request refused", zap.String("door", r.door), zap.Error(err))
}
