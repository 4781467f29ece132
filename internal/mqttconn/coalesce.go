package mqttconn

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// coalescingConn buffers writes and flushes them from its own goroutine as soon as the writer
// pauses, buffers reads, and acknowledges reads at once (see quickAck). paho reads every packet
// a byte at a time (its type, each byte of its length) and then its body: unbuffered, a
// received message costs four system calls, and as many re-armings of the quick ACK. paho writes every MQTT packet with a system call of its own; at thousands of
// messages per second, coalescing them into few writes is what lets the broker keep up. When
// the connection is idle a write is flushed immediately, so latency does not grow.
type coalescingConn struct {
	net.Conn
	mu     sync.Mutex
	w      *bufio.Writer
	err    error
	signal chan struct{}
	done   chan struct{}
	once   sync.Once
	ack    func() // re-arms immediate ACKs after a read (Linux)
	r      *bufio.Reader
}

// ackReader reads from the connection and re-arms immediate ACKs after every read of the
// socket.
type ackReader struct{ c *coalescingConn }

func (a ackReader) Read(p []byte) (int, error) {
	n, err := a.c.Conn.Read(p)
	a.c.ack()
	return n, err
}

// flushTimeout bounds one flush; a connection that cannot take the data in that time is
// treated as broken, and paho reconnects.
const flushTimeout = 10 * time.Second

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, w: bufio.NewWriterSize(c, 64<<10), signal: make(chan struct{}, 1), done: make(chan struct{}), ack: quickAck(c)}
	// Only paho's incoming goroutine reads, so the reader needs no lock.
	cc.r = bufio.NewReaderSize(ackReader{cc}, 64<<10)
	go cc.flusher()
	return cc
}

func (c *coalescingConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	var n int
	var err error
	if len(p) > c.w.Available() {
		// This write makes the buffer flush on the caller's goroutine: bound it as well.
		err = c.deadline(func() error { n, err = c.w.Write(p); return err })
	} else {
		n, err = c.w.Write(p)
	}
	if err != nil {
		c.err = err
		return n, err
	}
	select {
	case c.signal <- struct{}{}:
	default:
	}
	return n, nil
}

func (c *coalescingConn) flusher() {
	for {
		select {
		case <-c.done:
			return
		case <-c.signal:
		}
		c.mu.Lock()
		if c.err == nil && c.w.Buffered() > 0 {
			c.err = c.deadline(c.w.Flush)
		}
		c.mu.Unlock()
	}
}

// deadline runs a write to the socket bounded by flushTimeout: a broker that stops reading must
// not hold a write (and the lock) forever. The caller holds c.mu.
func (c *coalescingConn) deadline(write func() error) error {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(flushTimeout))
	err := write()
	_ = c.Conn.SetWriteDeadline(time.Time{})
	return err
}

// Close closes the connection. It never waits for a flush in progress: a flush blocked on a
// broker that stopped reading must not keep the connection from closing (closing it is what
// ends that flush). What is still buffered is flushed only if that can be done at once; lost
// publishes were not acknowledged, so the exporter sends them again.
func (c *coalescingConn) Close() error {
	c.once.Do(func() {
		if c.mu.TryLock() {
			if c.err == nil && c.w.Buffered() > 0 {
				_ = c.Conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				_ = c.w.Flush()
			}
			c.err = net.ErrClosed
			c.mu.Unlock()
		}
		close(c.done)
	})
	return c.Conn.Close()
}

// dialCoalescing returns a dialer for a TCP or TLS connection whose writes are coalesced and
// whose reads are acknowledged at once. It reports false for schemes it does not handle
// (WebSockets), which keep the client's own dialer. The connection is passed through capRead,
// which checks the length of every packet read (after TLS).
func dialCoalescing(u *url.URL, tlsCfg *tls.Config, timeout time.Duration, capRead func(net.Conn) net.Conn) (func() (net.Conn, error), bool) {
	host := u.Host
	secure := false
	switch strings.ToLower(u.Scheme) {
	case "tcp", "mqtt":
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "1883")
		}
	case "ssl", "tls", "mqtts":
		secure = true
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "8883")
		}
	default:
		return nil, false
	}
	return func() (net.Conn, error) {
		raw, err := net.DialTimeout("tcp", host, timeout)
		if err != nil {
			return nil, err
		}
		var c net.Conn = newCoalescingConn(raw)
		if secure {
			cfg := tlsCfg
			if cfg == nil {
				cfg = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
			}
			tc := tls.Client(c, cfg)
			_ = tc.SetDeadline(time.Now().Add(timeout))
			if err := tc.Handshake(); err != nil {
				_ = c.Close()
				return nil, err
			}
			_ = tc.SetDeadline(time.Time{})
			c = tc
		}
		return capRead(c), nil
	}, true
}
