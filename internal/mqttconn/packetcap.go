package mqttconn

import (
	"errors"
	"fmt"
	"net"

	"go.uber.org/zap"
)

// DefaultMaxPacketSize is the default cap on an incoming packet's remaining length: 1 MiB,
// the max_message_size of the broker in Propeller's settings.
const DefaultMaxPacketSize = 1 << 20

// maxRemainingLength is the largest remaining length MQTT can express (4 bytes of 7 bits).
const maxRemainingLength = 268_435_455

// PacketTooLargeError is the error of a read that met a packet longer than the cap. Both MQTT
// libraries allocate a packet's whole length as soon as they have read its fixed header, so a
// broker (or anyone in the path of a plaintext connection) announcing 268 MB made the client
// allocate 268 MB on every connection; the length is checked before the libraries see it.
type PacketTooLargeError struct {
	Length int // the remaining length the packet announced (or at least this, if cut short)
	Max    int // the cap: max_packet_size
}

func (e *PacketTooLargeError) Error() string {
	return fmt.Sprintf("the MQTT broker sent a packet of %d bytes, over max_packet_size (%d): the connection was closed without reading it", e.Length, e.Max)
}

// The parts of an MQTT packet the scanner is in.
const (
	inType   = iota // the first byte of the fixed header: the packet type and flags
	inLength        // the remaining length, 1 to 4 bytes of 7 bits, least significant first
	inBody          // the rest of the packet
)

// cappedConn follows the MQTT packets read from a connection and fails the read that would
// hand the client a remaining length over max, closing the connection, before the client
// allocates it. It only looks at the bytes as they pass: the client still parses them.
type cappedConn struct {
	net.Conn
	max        int
	onOversize func() // counts the closed connection; may be nil

	state  int
	length int  // the remaining length read so far
	shift  uint // of the next byte of the remaining length
	left   int  // bytes of the body not yet read
	err    error
}

// capPackets wraps c so that a packet longer than max is refused before it is allocated.
func capPackets(c net.Conn, max int, onOversize func()) net.Conn {
	return &cappedConn{Conn: c, max: max, onOversize: onOversize}
}

func (c *cappedConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	for i := 0; i < n; {
		switch c.state {
		case inType:
			c.state, c.length, c.shift = inLength, 0, 0
			i++
		case inLength:
			b := p[i]
			c.length |= int(b&0x7f) << c.shift
			c.shift += 7
			// The bytes still to come only add to the length: it is over the cap as soon as
			// what is read so far is.
			if c.length > c.max {
				c.err = &PacketTooLargeError{Length: c.length, Max: c.max}
				_ = c.Conn.Close()
				if c.onOversize != nil {
					c.onOversize()
				}
				return i, c.err
			}
			i++
			switch {
			case b&0x80 != 0 && c.shift < 28:
			case c.length == 0:
				c.state = inType
			default:
				// A fourth byte with its continuation bit set is malformed: the client says
				// so; the scanner takes the length as read.
				c.state, c.left = inBody, c.length
			}
		case inBody:
			skip := min(c.left, n-i)
			i += skip
			c.left -= skip
			if c.left == 0 {
				c.state = inType
			}
		}
	}
	return n, err
}

// capPackets wraps a connection to this broker so that a packet longer than max_packet_size
// closes it before it is allocated, counted as CausePacketTooLarge.
func (p *Prepared) capPackets(c net.Conn) net.Conn {
	return capPackets(c, p.Config.MaxPacketSize, func() {
		if p.OnFailure != nil {
			p.OnFailure(CausePacketTooLarge)
		}
	})
}

// LogClientError logs an error of an established MQTT 5 connection (autopaho's
// OnClientError): a packet over max_packet_size as an error that says so, anything else at
// debug (the lost connection is logged where it is handled).
func LogClientError(log *zap.Logger, endpoint string, err error) {
	var tooLarge *PacketTooLargeError
	if errors.As(err, &tooLarge) {
		log.Error("Closed the connection to the MQTT broker: it sent a packet over max_packet_size; reconnecting (counted with cause packet_too_large)",
			zap.String("endpoint", endpoint), zap.Error(err))
		return
	}
	log.Debug("MQTT connection error", zap.String("endpoint", endpoint), zap.Error(err))
}
