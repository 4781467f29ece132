package fleet

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// Limits bound what a gateway tracks. Every task and proplet it passes on becomes series in
// the backend (a dozen for a task in Prometheus), and a backend keeps series until they
// expire: without a bound, a sender of distinct ids grows them without end.
type Limits struct {
	// MaxTasks is the most tasks tracked at once; messages of a new task past it are dropped.
	MaxTasks int
	// MaxProplets is the most proplets tracked at once.
	MaxProplets int
	// Expiration forgets a task or proplet with no message for this long, as backends expire
	// its series (the prometheus exporter's metric_expiration is 5 minutes by default).
	Expiration time.Duration
}

// Default limits: a fleet of a thousand proplets with ten tasks each.
const (
	DefaultMaxTasks    = 10_000
	DefaultMaxProplets = 1_000
	DefaultExpiration  = 5 * time.Minute
)

// DefaultLimits are the default bounds.
func DefaultLimits() Limits {
	return Limits{MaxTasks: DefaultMaxTasks, MaxProplets: DefaultMaxProplets, Expiration: DefaultExpiration}
}

// sweepEvery is how often, at most, a full tracker looks for expired entries to make room.
const sweepEvery = int64(time.Second)

// Tracker tracks the tasks and proplets passed on, by what names their series (a task: its
// domain, channel, proplet and task ids; a proplet: its domain, channel, id and namespace),
// each with the receive time of its last message. It is safe for concurrent use.
type Tracker struct {
	limits [2]int
	expire int64
	seed   maphash.Seed

	mu        sync.Mutex
	seen      [2]map[uint64]int64 // by kind: the hash of the series' names → last seen
	lastSweep int64
}

// NewTracker returns a tracker with these limits.
func NewTracker(l Limits) *Tracker {
	return &Tracker{
		limits: [2]int{schema.KindTask: l.MaxTasks, schema.KindProplet: l.MaxProplets},
		expire: int64(l.Expiration),
		seed:   maphash.MakeSeed(),
		seen:   [2]map[uint64]int64{{}, {}},
	}
}

// Track reports whether m, received at now (Unix nanoseconds), may be passed on: its task or
// proplet is tracked already (and is seen again now), or there is room for it. When there is
// none, entries idle for Expiration are forgotten first, at most once a second.
func (t *Tracker) Track(m *propeller.Received, now int64) bool {
	key, kind := t.key(m), m.Topic.Kind
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := t.seen[kind]
	if _, ok := seen[key]; ok {
		seen[key] = now
		return true
	}
	if now-t.lastSweep >= t.expire || (len(seen) >= t.limits[kind] && now-t.lastSweep >= sweepEvery) {
		t.sweep(now)
	}
	if len(seen) >= t.limits[kind] {
		return false
	}
	seen[key] = now
	return true
}

// sweep forgets the entries idle for the expiration. t.mu is held.
func (t *Tracker) sweep(now int64) {
	t.lastSweep = now
	for _, seen := range t.seen {
		for k, last := range seen {
			if now-last >= t.expire {
				delete(seen, k)
			}
		}
	}
}

// Len is the number of tasks or proplets tracked.
func (t *Tracker) Len(k schema.Kind) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen[k])
}

// Limit is the most tasks or proplets tracked.
func (t *Tracker) Limit(k schema.Kind) int { return t.limits[k] }

// key hashes the names of m's series. A seeded hash: a sender cannot aim collisions, and one
// would only make two series share an entry.
func (t *Tracker) key(m *propeller.Received) uint64 {
	var h maphash.Hash
	h.SetSeed(t.seed)
	for _, s := range t.names(m) {
		h.WriteString(s)
		h.WriteByte(0)
	}
	return h.Sum64()
}

func (t *Tracker) names(m *propeller.Received) [4]string {
	if m.Topic.Kind == schema.KindTask {
		return [4]string{m.Topic.Domain, m.Topic.Channel, m.Task.PropletID, m.Task.TaskID}
	}
	return [4]string{m.Topic.Domain, m.Topic.Channel, m.Proplet.PropletID, m.Proplet.Namespace}
}
