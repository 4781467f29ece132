package taskapi

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/netutil"
)

// DefaultMaxConnections is how many connections the task API serves at once by default: a few
// clients polling and creating tasks need a handful; the bound keeps a flood of idle
// connections, which needs no token, from taking the descriptors discovery needs.
const DefaultMaxConnections = 64

// limitLogInterval is the least time between two logs of the connection limit: a flood
// reaches it on every accept.
const limitLogInterval = time.Minute

// LimitListener serves at most max connections of ln at once; further ones wait in the
// kernel's accept queue, holding no descriptor of the collector, until one closes. Each time a
// connection takes the last place, count is called (it may be nil) and a warning is logged, at
// most once a minute, saying how many times it was reached meanwhile.
func LimitListener(ln net.Listener, max int, log *zap.Logger, count func()) net.Listener {
	if count == nil {
		count = func() {}
	}
	return netutil.LimitListener(&countingListener{Listener: ln, max: int64(max), log: log, count: count}, max)
}

// countingListener counts the open connections under netutil's limit, which does not say
// when it is reached.
type countingListener struct {
	net.Listener
	max   int64
	log   *zap.Logger
	count func()
	open  atomic.Int64

	lastLog    atomic.Int64 // unix nanoseconds
	suppressed atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if n := l.open.Add(1); n >= l.max {
		l.reached()
	}
	return &countedConn{Conn: c, l: l}, nil
}

func (l *countingListener) reached() {
	l.count()
	now, last := time.Now().UnixNano(), l.lastLog.Load()
	if last != 0 && now-last < int64(limitLogInterval) || !l.lastLog.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	l.log.Warn("Task API connection limit reached: new connections wait until one closes or times out (read_header_timeout, idle_timeout). "+
		"If real clients wait, raise api.max_connections; if not, find the client that holds connections open",
		zap.Int64("max_connections", l.max), zap.Int64("reached_since_last_logged", l.suppressed.Swap(0)))
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
