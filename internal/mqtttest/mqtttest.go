// Package mqtttest gives tests a real MQTT broker over TCP: an embedded broker (mochi-mqtt)
// started by the test on a free port, with TLS, password authentication and persistence across
// a restart when asked; or the local Mosquitto on 127.0.0.1:1883 when one answers. It also
// has a subscriber that decodes messages the way the Propeller manager does.
package mqtttest // import "github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"go.etcd.io/bbolt"
)

// LocalMosquitto is the local broker address tests also run against when it answers.
const LocalMosquitto = "127.0.0.1:1883"

// LocalAvailable reports whether a broker listens on 127.0.0.1:1883.
func LocalAvailable() bool {
	c, err := net.DialTimeout("tcp", LocalMosquitto, 200*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// Options configure an embedded broker.
type Options struct {
	TLS      *tls.Config // serve TLS instead of plain TCP
	Username string      // when set, only this user with Password may connect
	Password string
	Persist  bool   // keep sessions and queued messages on disk, across Restart
	Address  string // host:port to listen on; default a free port of 127.0.0.1
	// DenyPublish lists topic filters no client may publish to. The broker answers such a
	// publish with reason code 0x87 (not authorised) over MQTT 5, and disconnects an MQTT 3.1.1
	// client.
	DenyPublish []string
	// RefusePersistent is how the broker treats a CONNECT asking for a persistent session
	// (3.1.1 clean session 0, MQTT 5 clean start 0). CloseBeforeConnack is FluxMQ with its
	// cluster disabled.
	RefusePersistent Refusal
	// OnlyProtocol, when set (4 for 3.1.1, 5), closes connections of other MQTT versions
	// without a CONNACK, as a listener of one version of FluxMQ does.
	OnlyProtocol byte
	// Record keeps every message publishers send, for Received.
	Record bool
}

// Broker is an embedded MQTT broker for one test.
type Broker struct {
	tb     testing.TB
	opts   Options
	addr   string
	store  string
	server *mqtt.Server
	// refused counts the CONNECTs refused, across restarts.
	refused atomic.Int64

	mu       sync.Mutex
	received []Message
}

// Start starts an embedded broker on a free port of 127.0.0.1. It stops when the test ends.
func Start(tb testing.TB, opts Options) *Broker {
	tb.Helper()
	addr := opts.Address
	if addr == "" {
		addr = FreeAddress(tb)
	}
	b := &Broker{tb: tb, opts: opts, addr: addr}
	if opts.Persist {
		b.store = filepath.Join(tb.TempDir(), "broker.db")
	}
	b.start()
	tb.Cleanup(b.Stop)
	return b
}

// FreeAddress returns a 127.0.0.1 address with a port nothing listens on.
func FreeAddress(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (b *Broker) start() {
	s := mqtt.New(&mqtt.Options{
		InlineClient: false,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	var err error
	if b.opts.Username != "" || len(b.opts.DenyPublish) > 0 {
		// Empty rule fields match everything: without a username, everyone may connect.
		ledger := &auth.Ledger{Auth: auth.AuthRules{
			{Username: auth.RString(b.opts.Username), Password: auth.RString(b.opts.Password), Allow: true},
		}}
		if len(b.opts.DenyPublish) > 0 {
			deny := auth.Filters{}
			for _, f := range b.opts.DenyPublish {
				deny[auth.RString(f)] = auth.Deny
			}
			ledger.ACL = auth.ACLRules{{Filters: deny}}
		}
		err = s.AddHook(new(auth.Hook), &auth.Options{Ledger: ledger})
	} else {
		err = s.AddHook(new(auth.AllowHook), nil)
	}
	if err != nil {
		b.tb.Fatal(err)
	}
	if b.opts.RefusePersistent != Accept || b.opts.OnlyProtocol != 0 {
		h := &refuseHook{server: s, persistent: b.opts.RefusePersistent, only: b.opts.OnlyProtocol, refused: &b.refused}
		if err := s.AddHook(h, nil); err != nil {
			b.tb.Fatal(err)
		}
	}
	if b.opts.Record {
		if err := s.AddHook(&recordHook{b: b}, nil); err != nil {
			b.tb.Fatal(err)
		}
	}
	if b.store != "" {
		if err := s.AddHook(new(bolt.Hook), &bolt.Options{Path: b.store, Options: &bbolt.Options{Timeout: time.Second}}); err != nil {
			b.tb.Fatal(err)
		}
	}
	if err := s.AddListener(newListener("t", b.addr, b.opts.TLS)); err != nil {
		b.tb.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		b.tb.Fatal(err)
	}
	b.server = s
}

// Endpoint is the broker's URL for clients: tcp://host:port, or ssl://host:port with TLS.
func (b *Broker) Endpoint() string {
	if b.opts.TLS != nil {
		return "ssl://" + b.addr
	}
	return "tcp://" + b.addr
}

// Stop stops the broker; connected clients see their connection drop.
func (b *Broker) Stop() {
	if b.server != nil {
		_ = b.server.Close()
		b.server = nil
	}
}

// Restart stops the broker and starts it again on the same port, after down has passed. With
// Persist, sessions and messages queued for offline persistent subscribers survive.
func (b *Broker) Restart(down time.Duration) {
	b.Stop()
	time.Sleep(down) //nolint:forbidigo // the broker is down on purpose for this long
	b.start()
}
