package mqttconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// attemptLogEvery is how often a failure that goes on is logged again above debug.
const attemptLogEvery = time.Minute

// AttemptLog logs failed connection attempts so that a misconfiguration is loud and an outage
// is not a flood. The first failure after a start or a lost connection is logged at once, with
// the broker's reason: at warning when the broker cannot be reached, at error when it refuses
// the connection, the credentials or a certificate, or closes the connection without a CONNACK
// (with the session asked for, the likely cause and the fix in the message). While the failures go on,
// they are logged again at most once a minute, with the number of attempts since; a failure of
// another kind is logged at once. Every attempt is logged at debug. A connection after failures
// is logged at info. Both MQTT clients report to it: Connection does so by itself, the
// exporter's MQTT 5 client calls Failed and Connected.
type AttemptLog struct {
	p     *Prepared
	log   *zap.Logger
	every time.Duration
	now   func() time.Time

	mu         sync.Mutex
	attempts   int       // failed attempts since the last connection
	since      time.Time // the first of them
	logged     time.Time // when a failure was last logged above debug
	loggedKind Cause
	unlogged   int     // failed attempts since then, logged at debug only
	session    Session // what the CONNECT asks for, for the messages
}

// NewAttemptLog returns the log of this connection's attempts, writing to log.
// The session asked for is a clean one over the configured protocol until Asking says
// otherwise.
func (p *Prepared) NewAttemptLog(log *zap.Logger) *AttemptLog {
	return &AttemptLog{p: p, log: log, every: attemptLogEvery, now: time.Now, session: Session{Protocol: p.Config.ProtocolVersion}}
}

// Asking records the session the next attempts ask for: the messages of refusals name it.
func (a *AttemptLog) Asking(s Session) {
	a.mu.Lock()
	a.session = s
	a.mu.Unlock()
}

// Failed records a failed connection attempt and why, counts it by cause (Prepared.OnFailure),
// and returns the cause.
func (a *AttemptLog) Failed(err error) Cause {
	a.mu.Lock()
	session := a.session
	a.mu.Unlock()
	kind, msg := a.p.explain(err, session)
	if kind == CauseCredentials && !errors.Is(err, ErrBadCredentials) {
		err = a.p.CredentialsError(err)
	}
	// A packet over the cap was counted when the connection was closed.
	if a.p.OnFailure != nil && kind != CausePacketTooLarge {
		a.p.OnFailure(kind)
	}
	now := a.now()
	a.mu.Lock()
	if a.attempts == 0 {
		a.since = now
	}
	a.attempts++
	a.unlogged++
	attempts, unlogged, since := a.attempts, a.unlogged, a.since
	first := attempts == 1
	show := first || kind != a.loggedKind || now.Sub(a.logged) >= a.every
	if show {
		a.logged, a.loggedKind, a.unlogged = now, kind, 0
	}
	a.mu.Unlock()

	fields := []zap.Field{zap.String("endpoint", a.p.Config.Endpoint), zap.Error(err), zap.Int("attempts", attempts)}
	fields = append(fields, zap.String("cause", string(kind)))
	if !show {
		a.log.Debug("MQTT connection attempt failed", fields...)
		return kind
	}
	if !first {
		fields = append(fields, zap.Int("attempts_since_last_logged", unlogged), zap.Duration("failing_for", now.Sub(since).Round(time.Second)))
	}
	level := zapcore.ErrorLevel
	if kind == CauseUnreachable {
		level = zapcore.WarnLevel
		msg = "Cannot connect to the MQTT broker; retrying in the background"
		if !first {
			msg = "Still cannot connect to the MQTT broker; retrying in the background"
		}
	}
	a.log.Log(level, msg+" (logged again at most once a minute while it lasts)", fields...)
	return kind
}

// Connected records a connection: the failures before it, if any, are over.
func (a *AttemptLog) Connected() {
	now := a.now()
	a.mu.Lock()
	attempts, since := a.attempts, a.since
	a.attempts, a.unlogged, a.logged, a.loggedKind = 0, 0, time.Time{}, ""
	a.mu.Unlock()
	if attempts > 0 {
		a.log.Info("Connected to the MQTT broker after failed attempts", zap.String("endpoint", a.p.Config.Endpoint),
			zap.Int("failed_attempts", attempts), zap.Duration("failing_for", now.Sub(since).Round(time.Millisecond)))
	}
}

// explain says why an attempt asking for session failed and, for anything but an unreachable
// broker, what the broker did and what to change.
func (p *Prepared) explain(err error, session Session) (Cause, string) {
	cause, code := classify(err)
	if cause == CauseCredentials {
		return cause, fmt.Sprintf("The MQTT broker refused the credentials of user %q; retrying: check username and password (Propeller: the proplet's entity id and API key)", p.Config.Username)
	}
	host := p.URL.Hostname()
	if p.TLS != nil && p.TLS.ServerName != "" {
		host = p.TLS.ServerName
	}
	const bad = "The MQTT broker's TLS certificate does not verify; retrying: "
	var (
		unknown   x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifying *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknown):
		issuer := "an unknown authority"
		if unknown.Cert != nil {
			issuer = fmt.Sprintf("%q", unknown.Cert.Issuer.String())
		}
		return CauseBrokerCertificate, bad + fmt.Sprintf("it is signed by %s, which this collector does not trust: set tls.ca_file to the CA that signed the broker's certificate", issuer)
	case errors.As(err, &hostname):
		return CauseBrokerCertificate, bad + fmt.Sprintf("the certificate is for %s, not %s: set tls.server_name_override to a name the certificate holds, or use that name as the endpoint's host",
			certificateNames(hostname.Certificate), hostname.Host)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		c := invalid.Cert
		return CauseBrokerCertificate, bad + fmt.Sprintf("the certificate is valid from %s to %s and it is now %s: renew the broker's certificate, or correct this host's clock",
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
	case errors.As(err, &invalid), errors.As(err, &verifying):
		return CauseBrokerCertificate, bad + "fix the broker's certificate, or set tls.ca_file to the CA that signed it (tls.insecure_skip_verify turns verification off: for tests only)"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && op.Err != nil {
		for _, alert := range []string{"bad certificate", "certificate required", "unknown certificate authority", "certificate expired", "certificate revoked", "unsupported certificate", "certificate unknown"} {
			if strings.Contains(op.Err.Error(), alert) {
				return CauseClientCertificate, fmt.Sprintf("The MQTT broker at %s refused this client's TLS certificate (%s); retrying: set tls.cert_file and tls.key_file to a certificate signed by a CA the broker trusts", host, alert)
			}
		}
	}
	return cause, p.refusalMessage(cause, code, session, retrying)
}

// certificateNames lists the names a certificate is valid for, for a message.
func certificateNames(c *x509.Certificate) string {
	if c == nil {
		return "other names"
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	if len(names) == 0 {
		return "no host name"
	}
	return strings.Join(names, ", ")
}
