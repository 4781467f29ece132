package mqtttest

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// listener is the embedded broker's TCP listener. It serves as mochi's own TCP listener does,
// and closes without a data race when a client connects as the broker stops: mochi counts a
// connection in its client WaitGroup (Add) from the goroutine that serves it, and its Close
// waits on that WaitGroup (Wait); an Add racing a Wait is a race the detector reports, and a
// client the Wait misses. Close here stops accepting, then waits until every connection
// accepted is counted (the broker reads a connection only after its Add), before the broker
// closes its clients and waits.
type listener struct {
	id, address string
	tls         *tls.Config
	l           net.Listener

	mu       sync.Mutex
	closed   bool
	counting sync.WaitGroup // accepted connections the broker has not read yet
}

var _ listeners.Listener = (*listener)(nil)

func newListener(id, address string, cfg *tls.Config) *listener {
	return &listener{id: id, address: address, tls: cfg}
}

func (l *listener) ID() string       { return l.id }
func (l *listener) Protocol() string { return "tcp" }

func (l *listener) Address() string {
	if l.l != nil {
		return l.l.Addr().String()
	}
	return l.address
}

func (l *listener) Init(*slog.Logger) error {
	nl, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	if l.tls != nil {
		nl = tls.NewListener(nl, l.tls)
	}
	l.l = nl
	return nil
}

func (l *listener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.l.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = c.Close()
			return
		}
		l.counting.Add(1)
		l.mu.Unlock()
		tc := &trackedConn{Conn: c, counted: l.counting.Done}
		go func() {
			_ = establish(l.id, tc)
			tc.once.Do(tc.counted) // refused before its first read
		}()
	}
}

func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	if l.l != nil {
		_ = l.l.Close()
	}
	l.counting.Wait()
	closeClients(l.id)
}

// trackedConn reports its first Read: by then the broker has counted the connection.
type trackedConn struct {
	net.Conn
	once    sync.Once
	counted func()
}

func (c *trackedConn) Read(p []byte) (int, error) {
	c.once.Do(c.counted)
	return c.Conn.Read(p)
}
