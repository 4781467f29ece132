// Package ratelog logs events that may come in floods (refused requests, dropped messages,
// failed connections) at most once per reason per interval, with the count of the events not
// logged since; every event is still logged at debug. Counting them is the caller's job: a
// flood costs a counter increment each, not a log line each.
package ratelog // import "github.com/otelcol-propeller/otelcol-propeller/internal/ratelog"

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultEvery is how often each reason is logged above debug: once a minute.
const DefaultEvery = time.Minute

// Log is a rate-limited log of events by reason. It is safe for concurrent use.
type Log struct {
	log   *zap.Logger
	every time.Duration
	noun  string
	now   func() time.Time

	mu      sync.Mutex
	reasons map[string]*state
}

type state struct {
	logged   time.Time // when this reason was last logged above debug
	unlogged int       // events since then, not logged above debug
}

// New returns a log writing to log that logs each reason above debug at most once per every.
// noun names the events ("refused", "dropped") in the field that counts them:
// <noun>_since_last_logged.
func New(log *zap.Logger, every time.Duration, noun string) *Log {
	return &Log{log: log, every: every, noun: noun + "_since_last_logged", now: time.Now, reasons: map[string]*state{}}
}

// WithClock makes the log read the time from now (tests); it returns l.
func (l *Log) WithClock(now func() time.Time) *Log {
	l.now = now
	return l
}

// Allow records n events of reason and reports whether to log them above debug now: the first
// of a reason, then the first after every has passed. unlogged is how many events of the
// reason were recorded since it was last logged, these n included.
func (l *Log) Allow(reason string, n int) (log bool, unlogged int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.reasons[reason]
	if st == nil {
		st = &state{}
		l.reasons[reason] = st
	}
	st.unlogged += n
	if !st.logged.IsZero() && now.Sub(st.logged) < l.every {
		return false, st.unlogged
	}
	unlogged = st.unlogged
	st.logged, st.unlogged = now, 0
	return true, unlogged
}

// Log records n events of reason and logs msg with fields and the reason: at level when Allow
// says so, with the count since the last line, else at debug.
func (l *Log) Log(level zapcore.Level, reason string, n int, msg string, fields ...zap.Field) {
	show, unlogged := l.Allow(reason, n)
	fields = append(fields, zap.String("reason", reason))
	if !show {
		l.log.Debug(msg, fields...)
		return
	}
	l.log.Log(level, msg, append(fields, zap.Int(l.noun, unlogged))...)
}
