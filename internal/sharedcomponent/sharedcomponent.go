// Package sharedcomponent shares one component between the pipelines of different signals
// that name the same configuration: the proplet receiver in a metrics and a logs pipeline
// samples once; the mqtt exporter's metrics and logs signals use one broker connection (two
// connections with one client_id would throw each other off the broker). The Collector hands
// every signal of a component the same configuration pointer, which keys the sharing. The
// first Start starts the shared value, the last Shutdown stops it and forgets the key.
package sharedcomponent // import "github.com/otelcol-propeller/otelcol-propeller/internal/sharedcomponent"

import "sync"

// Map holds the shared values by key. The zero value is ready to use.
type Map[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*entry[V]
}

type entry[V any] struct {
	v     V
	users int // uses handed out and not shut down; guarded by Map.mu

	startMu sync.Mutex
	started bool
	err     error
}

// Use is one signal's hold on a shared value.
type Use[K comparable, V any] struct {
	m    *Map[K, V]
	key  K
	e    *entry[V]
	once sync.Once
}

// Get returns a hold on the value of key, made by create on first use.
func (m *Map[K, V]) Get(key K, create func() (V, error)) (*Use[K, V], error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.m[key]
	if e == nil {
		v, err := create()
		if err != nil {
			return nil, err
		}
		if m.m == nil {
			m.m = map[K]*entry[V]{}
		}
		e = &entry[V]{v: v}
		m.m[key] = e
	}
	e.users++
	return &Use[K, V]{m: m, key: key, e: e}, nil
}

// Peek returns the value of key and how many holds it has, without taking one.
func (m *Map[K, V]) Peek(key K) (v V, holds int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.m[key]
	if e == nil {
		return v, 0, false
	}
	return e.v, e.users, true
}

// Value is the shared value.
func (u *Use[K, V]) Value() V { return u.e.v }

// Start runs start on the first call of any hold on the value; every other call returns that
// call's result.
func (u *Use[K, V]) Start(start func() error) error {
	e := u.e
	e.startMu.Lock()
	defer e.startMu.Unlock()
	if !e.started {
		e.started = true
		e.err = start()
	}
	return e.err
}

// Shutdown releases this hold, once however often it is called; the last hold runs stop and
// forgets the key, so a configuration created again gets a new value.
func (u *Use[K, V]) Shutdown(stop func() error) error {
	var err error
	u.once.Do(func() {
		u.m.mu.Lock()
		u.e.users--
		last := u.e.users == 0
		if last && u.m.m[u.key] == u.e {
			delete(u.m.m, u.key)
		}
		u.m.mu.Unlock()
		if last {
			err = stop()
		}
	})
	return err
}
