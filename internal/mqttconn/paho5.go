package mqttconn

import (
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// DisconnectAutopaho ends an autopaho connection: a DISCONNECT sent within a second, then the
// manager's context cancelled. The caller waits on cm.Done() when it must know it is over,
// after whatever it has in flight. Either may be nil.
func DisconnectAutopaho(cm *autopaho.ConnectionManager, cancel context.CancelFunc) {
	if cm != nil {
		ctx, stop := context.WithTimeout(context.Background(), time.Second)
		_ = cm.Disconnect(ctx)
		stop()
	}
	if cancel != nil {
		cancel()
	}
}

// AutopahoConfig returns the MQTT 5 options of Eclipse Paho's autopaho for this connection:
// broker, TLS, client id, credentials, keep-alive, connect timeout, a first attempt at once then a backoff from 1 s doubling
// up to MaxReconnectInterval, and a dial that checks every packet's length against
// max_packet_size (TCP and TLS endpoints; WebSockets keep autopaho's dialer). session is asked
// before every CONNECT, reconnections included: autopaho on its own asks for clean start only
// on the first connection, and a broker that refuses persistent sessions then refuses every
// reconnection. Callers add their handlers.
func (p *Prepared) AutopahoConfig(session func() Session) autopaho.ClientConfig {
	c := p.Config
	maxPacket := uint32(c.MaxPacketSize + 5) // MQTT 5 counts the fixed header too
	cc := autopaho.ClientConfig{
		ServerUrls:     []*url.URL{p.URL},
		TlsCfg:         p.TLS,
		KeepAlive:      uint16(c.KeepAlive / time.Second),
		ConnectTimeout: c.ConnectTimeout,
		// autopaho waits this before every attempt, the first included: none before the
		// first, then 1 s doubling.
		ReconnectBackoff: func(attempt int) time.Duration {
			if attempt == 0 {
				return 0
			}
			return min(time.Second<<min(attempt-1, 10), c.MaxReconnectInterval)
		},
		ConnectUsername: c.Username,
		ConnectPassword: []byte(c.Password),
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			s := session()
			cp.CleanStart = !s.Persistent
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			cp.Properties.SessionExpiryInterval = nil
			if s.Persistent {
				cp.Properties.SessionExpiryInterval = &s.Expiry
			}
			cp.Properties.MaximumPacketSize = &maxPacket
			return cp, nil
		},
		ClientConfig: paho.ClientConfig{ClientID: p.ClientID},
	}
	if secure, plain := p.dialer5(); secure || plain {
		cc.AttemptConnection = func(ctx context.Context, _ autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
			return p.dial5(ctx, u, secure)
		}
	}
	return cc
}

// dialer5 says whether the endpoint is TLS over TCP or plain TCP (else WebSockets).
func (p *Prepared) dialer5() (secure, plain bool) {
	switch strings.ToLower(p.URL.Scheme) {
	case "tcp", "mqtt":
		return false, true
	case "ssl", "tls", "mqtts":
		return true, false
	}
	return false, false
}

// dial5 dials the broker for autopaho, bounded by the connect timeout, with TLS when secure,
// and checks the length of every packet read. autopaho writes from more than one goroutine:
// net.TCPConn and tls.Conn allow that.
func (p *Prepared) dial5(ctx context.Context, u *url.URL, secure bool) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.Config.ConnectTimeout)
	defer cancel()
	host := u.Host
	if u.Port() == "" {
		port := "1883"
		if secure {
			port = "8883"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	var (
		c   net.Conn
		err error
	)
	if secure {
		cfg := p.TLS
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
		}
		d := tls.Dialer{Config: cfg}
		c, err = d.DialContext(ctx, "tcp", host)
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", host)
	}
	if err != nil {
		return nil, err
	}
	return packets.NewThreadSafeConn(p.capPackets(c)), nil
}
