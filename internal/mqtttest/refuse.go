package mqtttest

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Refusal is how an embedded broker treats a CONNECT it refuses.
type Refusal int

const (
	// Accept: the CONNECT is not refused.
	Accept Refusal = iota
	// CloseBeforeConnack: the connection is closed without a CONNACK, as FluxMQ with its
	// cluster disabled does to a persistent session (its CONNACK is discarded), and as a
	// listener of one MQTT version does to the other.
	CloseBeforeConnack
	// ServerUnavailable: a CONNACK with "server unavailable" (3.1.1 code 3, MQTT 5 0x88),
	// then the connection is closed.
	ServerUnavailable
)

// errRefused is what the refusing hook answers the broker with.
var errRefused = errors.New("refused by the test broker")

// refuseHook refuses CONNECTs the way Options ask: persistent sessions, and protocol versions
// other than the listener's.
type refuseHook struct {
	mqtt.HookBase
	server     *mqtt.Server
	persistent Refusal
	only       byte
	refused    *atomic.Int64
}

func (h *refuseHook) ID() string { return "refuse" }

func (h *refuseHook) Provides(b byte) bool { return bytes.Contains([]byte{mqtt.OnConnect}, []byte{b}) }

func (h *refuseHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	refusal := Accept
	switch {
	case h.only != 0 && pk.ProtocolVersion != h.only:
		refusal = CloseBeforeConnack
	case !pk.Connect.Clean:
		refusal = h.persistent
	}
	if refusal == Accept {
		return nil
	}
	h.refused.Add(1)
	if refusal == ServerUnavailable {
		_ = h.server.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
	}
	// mochi closes the connection without a CONNACK when the hook answers an error.
	return errRefused
}

// Refused returns how many CONNECTs the broker refused (RefusePersistent, OnlyProtocol).
func (b *Broker) Refused() int64 { return b.refused.Load() }

// Silent is a TCP server that accepts connections and reads what the client sends, and never
// answers: to the client, a broker whose CONNACK is lost.
type Silent struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	// Connects counts the connections accepted.
	Connects atomic.Int64
}

// StartSilent starts a silent server on a free port of 127.0.0.1. It stops when the test ends.
func StartSilent(tb testing.TB) *Silent {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Silent{l: l}
	go s.serve()
	tb.Cleanup(s.stop)
	return s
}

// Endpoint is the server's URL for clients.
func (s *Silent) Endpoint() string { return "tcp://" + s.l.Addr().String() }

func (s *Silent) serve() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.Connects.Add(1)
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		go func() {
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
}

func (s *Silent) stop() {
	_ = s.l.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		_ = c.Close()
	}
}

// Raw is a TCP server that answers every connection's first read with the bytes given, then
// reads until the client closes: a broker that sends what a test wants (an oversized packet).
type Raw struct {
	l net.Listener
	// Closed counts the connections the client closed.
	Closed atomic.Int64
	send   []byte
}

// StartRaw starts a raw server on a free port of 127.0.0.1. It stops when the test ends.
func StartRaw(tb testing.TB, send []byte) *Raw {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &Raw{l: l, send: send}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				if _, err := c.Read(buf); err != nil {
					return
				}
				_, _ = c.Write(r.send)
				for {
					if _, err := c.Read(buf); err != nil {
						r.Closed.Add(1)
						return
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() { _ = l.Close() })
	return r
}

// Endpoint is the server's URL for clients.
func (r *Raw) Endpoint() string { return "tcp://" + r.l.Addr().String() }

// recordHook keeps every message the broker received from a publisher.
type recordHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *recordHook) ID() string { return "record" }

func (h *recordHook) Provides(b byte) bool { return b == mqtt.OnPublished }

func (h *recordHook) OnPublished(_ *mqtt.Client, pk packets.Packet) {
	h.b.mu.Lock()
	h.b.received = append(h.b.received, Message{Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...), QoS: pk.FixedHeader.Qos})
	h.b.mu.Unlock()
}

// Received returns the messages publishers sent the broker (Options.Record), across restarts.
func (b *Broker) Received() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.received...)
}
