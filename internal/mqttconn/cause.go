package mqttconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Cause is why a connection attempt failed, or why a connection was closed by this client; it
// is the cause attribute of the components' connection failure counters.
type Cause string

// The causes of a failed connection attempt.
const (
	// CauseUnreachable: the broker could not be reached (no listener, no route, DNS), or the
	// connection broke for a reason not listed below.
	CauseUnreachable Cause = "unreachable"
	// CauseClosedBeforeConnack: the broker accepted the TCP connection, read the CONNECT and
	// closed the connection without a CONNACK. Brokers that refuse persistent sessions do so
	// (FluxMQ with its cluster disabled), and so does a listener of the other MQTT version.
	CauseClosedBeforeConnack Cause = "closed_before_connack"
	// CauseNoConnack: the broker accepted the TCP connection and did not answer the CONNECT
	// within connect_timeout.
	CauseNoConnack Cause = "no_connack"
	// CauseServerUnavailable: a CONNACK refusing with "server unavailable" (3.1.1 code 3, MQTT 5
	// 0x88), "server busy" (0x89) or "unspecified error" (0x80).
	CauseServerUnavailable Cause = "server_unavailable"
	// CauseProtocolVersion: a CONNACK refusing the protocol version (3.1.1 code 1, MQTT 5 0x84).
	CauseProtocolVersion Cause = "protocol_version"
	// CauseClientID: a CONNACK refusing the client id (3.1.1 code 2, MQTT 5 0x85).
	CauseClientID Cause = "client_id_rejected"
	// CauseCredentials: a CONNACK refusing the username or password, or not authorising.
	CauseCredentials Cause = "credentials"
	// CauseRefused: a CONNACK with another MQTT 5 refusal code.
	CauseRefused Cause = "refused"
	// CauseBrokerCertificate: the broker's TLS certificate did not verify.
	CauseBrokerCertificate Cause = "broker_certificate"
	// CauseClientCertificate: the broker refused this client's TLS certificate.
	CauseClientCertificate Cause = "client_certificate"
	// CausePacketTooLarge: the broker sent a packet longer than max_packet_size; the client
	// closed the connection before reading it.
	CausePacketTooLarge Cause = "packet_too_large"
)

// Causes lists every cause, for documentation and tests.
var Causes = []Cause{CauseUnreachable, CauseClosedBeforeConnack, CauseNoConnack, CauseServerUnavailable, CauseProtocolVersion,
	CauseClientID, CauseCredentials, CauseRefused, CauseBrokerCertificate, CauseClientCertificate, CausePacketTooLarge}

// Session is the session a client asks the broker for in its CONNECT.
type Session struct {
	// Persistent is clean session 0 (MQTT 3.1.1) or clean start 0 with a session expiry
	// (MQTT 5): the broker keeps the subscriptions and queues messages while the client is away.
	Persistent bool
	// Protocol is "3.1.1" or "5".
	Protocol string
	// Expiry is how long an MQTT 5 broker keeps a persistent session after a disconnection,
	// in seconds.
	Expiry uint32
}

func (s Session) String() string {
	kind := "clean"
	if s.Persistent {
		kind = "persistent"
	}
	return fmt.Sprintf("a %s session over MQTT %s", kind, s.Protocol)
}

// errNoConnack marks an attempt the broker did not answer within connect_timeout.
var errNoConnack = errors.New("no CONNACK within connect_timeout")

// classify says why a connection attempt failed. TLS certificate problems are told apart by
// explain, which needs the configuration; this is about what the MQTT handshake showed.
func classify(err error) (Cause, string) {
	var tooLarge *PacketTooLargeError
	if errors.As(err, &tooLarge) {
		return CausePacketTooLarge, ""
	}
	switch {
	case errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return CauseProtocolVersion, "code 1 (unacceptable protocol version)"
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return CauseClientID, "code 2 (identifier rejected)"
	case errors.Is(err, packets.ErrorRefusedServerUnavailable):
		return CauseServerUnavailable, "code 3 (server unavailable)"
	case errors.Is(err, ErrBadCredentials), errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return CauseCredentials, ""
	}
	var ce *autopaho.ConnackError
	if errors.As(err, &ce) {
		code := fmt.Sprintf("reason code 0x%02X", ce.ReasonCode)
		if ce.Reason != "" {
			code += " (" + ce.Reason + ")"
		}
		switch ce.ReasonCode {
		case 0x84:
			return CauseProtocolVersion, code
		case 0x85:
			return CauseClientID, code
		case 0x86, 0x87:
			return CauseCredentials, code
		case 0x80, 0x88, 0x89:
			return CauseServerUnavailable, code
		}
		return CauseRefused, code
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return CauseUnreachable, ""
	}
	var ne net.Error
	if errors.Is(err, errNoConnack) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return CauseNoConnack, ""
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "connection reset by peer") {
		return CauseClosedBeforeConnack, ""
	}
	return CauseUnreachable, ""
}

// refusesSession reports whether a cause is what a broker that does not keep persistent
// sessions answers to a request for one: FluxMQ with its cluster disabled closes the
// connection (its CONNACK 3 is discarded), others answer "server unavailable".
func refusesSession(c Cause) bool {
	return c == CauseClosedBeforeConnack || c == CauseServerUnavailable
}

// What a refused attempt leads to, in refusalMessage's words.
const (
	retrying     = "retrying"
	startFailing = "the start fails (session: persistent does not fall back to a clean session)"
)

// refusalMessage is the first words of the log line and the error of a refused attempt: which
// session was asked for, what the broker did, what comes next (retrying, or the start
// failing), and the likely causes with their fixes.
func (p *Prepared) refusalMessage(cause Cause, code string, s Session, next string) string {
	// The listener of the other version, and the port of this version's in Propeller's settings.
	other, port := "5", "1883"
	if s.Protocol == "5" {
		other, port = "3.1.1", "1884"
	}
	listener := fmt.Sprintf("this is the broker's MQTT %s listener (FluxMQ has one listener per MQTT version: 3.1.1 on 1883 and 5 on 1884 in Propeller's settings; "+
		"set protocol_version to the listener's version, or use port %s for MQTT %s)", other, port, s.Protocol)
	persistent := ""
	if s.Persistent {
		persistent = "the broker refuses persistent sessions (FluxMQ does while cluster.enabled is false: set cluster.enabled: true on the broker, or session: prefer_persistent or clean here); or "
	}
	switch cause {
	case CauseClosedBeforeConnack:
		return fmt.Sprintf("The MQTT broker closed the connection without a CONNACK when asked for %s; %s. Likely: %s%s", s, next, persistent, listener)
	case CauseNoConnack:
		return fmt.Sprintf("The MQTT broker accepted the connection but did not answer the CONNECT for %s within connect_timeout (%s); %s. Likely: the broker is overloaded, or the endpoint is not an MQTT listener, or %s",
			s, p.Config.ConnectTimeout, next, listener)
	case CauseServerUnavailable:
		return fmt.Sprintf("The MQTT broker refused the connection with %s when asked for %s; %s. Likely: %sthe broker is starting, stopping or overloaded", code, s, next, persistent)
	case CauseProtocolVersion:
		return fmt.Sprintf("The MQTT broker refused MQTT %s with %s; %s. Likely: %s", s.Protocol, code, next, listener)
	case CauseClientID:
		return fmt.Sprintf("The MQTT broker refused client id %q with %s; %s: set client_id to an id the broker accepts (unique, at most 23 characters for strict 3.1.1 brokers)", p.ClientID, code, next)
	case CauseRefused:
		return fmt.Sprintf("The MQTT broker refused the connection with %s when asked for %s; %s: see the broker's log for the reason", code, s, next)
	case CausePacketTooLarge:
		return fmt.Sprintf("The MQTT broker sent a packet over max_packet_size; the connection was closed before reading it, %s: raise max_packet_size if the broker's messages are legitimately this large (FluxMQ's max_message_size is 1 MiB in Propeller's settings)", next)
	}
	return ""
}
