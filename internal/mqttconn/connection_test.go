package mqttconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// connect prepares and creates a connection to endpoint, logging into the returned observer.
// It is stopped when the test ends.
func connect(t *testing.T, c ClientConfig) (*Connection, *observer.ObservedLogs) {
	t.Helper()
	p, err := c.Prepare(context.Background(), "mqttconn-test-")
	require.NoError(t, err)
	core, logs := observer.New(zapcore.DebugLevel)
	conn := p.NewConnection(p.PahoOptions().SetCleanSession(true), zap.New(core))
	t.Cleanup(conn.Stop)
	return conn, logs
}

func TestStartRefusesBadCredentials(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{Username: "proplet", Password: "right"})
	c := DefaultClientConfig()
	c.Endpoint, c.Username, c.Password = b.Endpoint(), "proplet", "wrong-secret"

	conn, _ := connect(t, c)
	err := conn.Start()
	require.ErrorIs(t, err, ErrBadCredentials)
	assert.ErrorContains(t, err, b.Endpoint(), "names the endpoint")
	assert.ErrorContains(t, err, `"proplet"`, "names the username")
	assert.NotContains(t, err.Error(), "wrong-secret", "never the password")
	assert.False(t, conn.Client().IsConnectionOpen())

	c.Password = "right"
	conn, logs := connect(t, c)
	require.NoError(t, conn.Start())
	assert.True(t, conn.Client().IsConnectionOpen())
	assert.Zero(t, logs.FilterLevelExact(zapcore.WarnLevel).Len())
}

func TestStartWithoutBrokerConnectsWhenItAppears(t *testing.T) {
	addr := mqtttest.FreeAddress(t)
	c := DefaultClientConfig()
	c.Endpoint = "tcp://" + addr
	c.ConnectTimeout = time.Second
	c.MaxReconnectInterval = time.Second

	conn, logs := connect(t, c)
	require.NoError(t, conn.Start(), "an unreachable broker does not fail the start")
	assert.False(t, conn.Client().IsConnectionOpen())
	warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
	require.Len(t, warns, 1)
	assert.Equal(t, c.Endpoint, warns[0].ContextMap()["endpoint"])

	mqtttest.Start(t, mqtttest.Options{Address: addr})
	require.Eventually(t, conn.Client().IsConnectionOpen, 10*time.Second, 20*time.Millisecond)
	assert.Len(t, logs.FilterLevelExact(zapcore.WarnLevel).All(), 1, "the unreachable broker is logged once")
}

func TestRetriesLogRefusedCredentialsAsErrors(t *testing.T) {
	addr := mqtttest.FreeAddress(t)
	c := DefaultClientConfig()
	c.Endpoint = "tcp://" + addr
	c.Username, c.Password = "proplet", "wrong-secret"
	c.ConnectTimeout = time.Second
	c.MaxReconnectInterval = time.Second

	conn, logs := connect(t, c)
	require.NoError(t, conn.Start())
	mqtttest.Start(t, mqtttest.Options{Address: addr, Username: "proplet", Password: "right"})
	require.Eventually(t, func() bool { return logs.FilterLevelExact(zapcore.ErrorLevel).Len() > 0 }, 10*time.Second, 20*time.Millisecond)
	e := logs.FilterLevelExact(zapcore.ErrorLevel).All()[0]
	assert.Contains(t, e.ContextMap()["error"], `"proplet"`)
	assert.NotContains(t, e.ContextMap()["error"], "wrong-secret")

	// Stop ends the background attempts promptly: within one attempt, not a whole backoff.
	start := time.Now()
	conn.Stop()
	assert.Less(t, time.Since(start), c.ConnectTimeout+2*time.Second)
	conn.Stop() // a second Stop is harmless
}

func TestAttemptLogFirstAtOnceThenOnceAMinute(t *testing.T) {
	c := DefaultClientConfig()
	c.Username = "proplet"
	p, err := c.Prepare(context.Background(), "p-")
	require.NoError(t, err)
	core, logs := observer.New(zapcore.DebugLevel)
	a := p.NewAttemptLog(zap.New(core))
	t0 := time.Unix(1000, 0)
	now := t0
	a.now = func() time.Time { return now }
	refused := errors.New("dial tcp 127.0.0.1:1883: connect: connection refused")
	at := func(d time.Duration, err error) {
		now = t0.Add(d)
		a.Failed(err)
	}

	at(0, refused)                                                 // warning, the first
	at(time.Second, refused)                                       // debug
	at(30*time.Second, refused)                                    // debug
	at(61*time.Second, refused)                                    // warning: a minute later, with the count
	at(62*time.Second, packets.ErrorRefusedBadUsernameOrPassword)  // error at once: another kind
	at(70*time.Second, packets.ErrorRefusedBadUsernameOrPassword)  // debug
	at(123*time.Second, packets.ErrorRefusedBadUsernameOrPassword) // error again after a minute
	now = t0.Add(130 * time.Second)
	a.Connected()
	at(200*time.Second, refused) // a new outage: warning at once

	var got []string
	for _, e := range logs.All() {
		if e.Level > zapcore.DebugLevel {
			got = append(got, fmt.Sprintf("%s %v %v", e.Level, e.ContextMap()["attempts"], e.ContextMap()["attempts_since_last_logged"]))
		}
	}
	assert.Equal(t, []string{
		"warn 1 <nil>", // the first failure: no count since
		"warn 4 3",
		"error 5 1",
		"error 7 2",
		"info <nil> <nil>", // connected after 7 failed attempts
		"warn 1 <nil>",
	}, got)
	all := logs.All()
	assert.Equal(t, refused.Error(), all[0].ContextMap()["error"], "the broker's reason")
	assert.Equal(t, c.Endpoint, all[0].ContextMap()["endpoint"])
	assert.Contains(t, all[3].Message, "Still cannot connect")
	assert.Equal(t, 2*time.Minute+10*time.Second, logs.FilterLevelExact(zapcore.InfoLevel).All()[0].ContextMap()["failing_for"])
	creds := logs.FilterLevelExact(zapcore.ErrorLevel).All()[0]
	assert.Contains(t, creds.Message, `refused the credentials of user "proplet"`)
	assert.Contains(t, creds.ContextMap()["error"], ErrBadCredentials.Error())
	assert.Equal(t, 3, logs.FilterLevelExact(zapcore.DebugLevel).Len())
}

// TestReconnectionWithRefusedCredentialsIsLogged: connected, then the broker comes back with
// another password (rotated credentials). paho reconnects by itself; its refusals used to go
// unlogged at any level. Now they are errors, once a minute.
func TestReconnectionWithRefusedCredentialsIsLogged(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{Username: "proplet", Password: "right"})
	addr := strings.TrimPrefix(b.Endpoint(), "tcp://")
	c := DefaultClientConfig()
	c.Endpoint, c.Username, c.Password = b.Endpoint(), "proplet", "right"
	// A broker on a busy machine may take seconds to answer a CONNECT: a timeout that short
	// would be another cause, logged on its own.
	c.ConnectTimeout, c.MaxReconnectInterval = 10*time.Second, time.Second
	conn, logs := connect(t, c)
	require.NoError(t, conn.Start())

	b.Stop()
	mqtttest.Start(t, mqtttest.Options{Address: addr, Username: "proplet", Password: "rotated"})
	// Several refused attempts: one error.
	require.Eventually(t, func() bool {
		return logs.FilterMessage("MQTT connection attempt failed").Len() >= 2
	}, 15*time.Second, 20*time.Millisecond)
	errs := logs.FilterLevelExact(zapcore.ErrorLevel).FilterField(zap.String("cause", string(CauseCredentials))).All()
	require.Len(t, errs, 1, "the first refusal at once, the next ones within the minute at debug")
	assert.Contains(t, errs[0].Message, "refused the credentials")
	assert.Contains(t, errs[0].ContextMap()["error"], `"proplet"`)
	assert.NotContains(t, errs[0].ContextMap()["error"], "right")
	assert.False(t, conn.Client().IsConnectionOpen())
}

// TestCertificateErrorsAreErrorsWithTheFix: a broker whose certificate does not verify is an
// error at the first attempt, and the message says what to change.
func TestCertificateErrorsAreErrorsWithTheFix(t *testing.T) {
	certs := mqtttest.NewCerts(t)
	other := mqtttest.NewCerts(t)
	expired := mqtttest.NewCertsWith(t, mqtttest.CertOptions{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	tests := map[string]struct {
		server *tls.Config
		client func(*ClientConfig)
		want   []string
	}{
		"another CA": {certs.ServerTLS(), func(c *ClientConfig) { c.TLS.CAFile = other.CAFile },
			[]string{`signed by "CN=mqtttest CA"`, "set tls.ca_file to the CA that signed the broker's certificate"}},
		"the system CAs": {certs.ServerTLS(), func(*ClientConfig) {},
			[]string{"which this collector does not trust: set tls.ca_file"}},
		"another name": {certs.ServerTLS(), func(c *ClientConfig) { c.TLS.CAFile, c.TLS.ServerName = certs.CAFile, "broker.example.com" },
			[]string{"the certificate is for localhost, 127.0.0.1, not broker.example.com: set tls.server_name_override"}},
		"expired": {expired.ServerTLS(), func(c *ClientConfig) { c.TLS.CAFile = expired.CAFile },
			[]string{"and it is now", "renew the broker's certificate"}},
		"client certificate required": {certs.MutualTLS(), func(c *ClientConfig) { c.TLS.CAFile = certs.CAFile },
			[]string{"refused this client's TLS certificate", "set tls.cert_file and tls.key_file"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{TLS: tt.server})
			c := DefaultClientConfig()
			c.Endpoint = b.Endpoint()
			c.ConnectTimeout = time.Second
			tt.client(&c)
			conn, logs := connect(t, c)
			require.NoError(t, conn.Start(), "retried in the background, as any failure but refused credentials")
			errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
			require.Len(t, errs, 1, "an error, at the first attempt")
			for _, w := range tt.want {
				assert.Contains(t, errs[0].Message, w)
			}
			assert.Zero(t, logs.FilterLevelExact(zapcore.WarnLevel).Len(), "not a warning")
			assert.False(t, conn.Client().IsConnectionOpen())
		})
	}
}

// TestStopEndsTheReconnectLoop: a connection stopped while paho reconnects to a broker that is
// gone leaves no goroutine of paho's behind once paho's backoff sleep ends. paho's Disconnect
// returns before its reconnect loop notices it, so the components' leak checks give paho's
// reconnect loop and Disconnect goroutine that time; this test is what checks they do end.
func TestStopEndsTheReconnectLoop(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	c := DefaultClientConfig()
	c.Endpoint, c.ConnectTimeout, c.MaxReconnectInterval = b.Endpoint(), time.Second, time.Second
	p, err := c.Prepare(context.Background(), "mqttconn-test-")
	require.NoError(t, err)
	conn := p.NewConnection(p.PahoOptions().SetCleanSession(true), zap.NewNop())
	require.NoError(t, conn.Start())
	b.Stop()
	require.Eventually(t, func() bool { return pahoGoroutines(".(*client).reconnect(") > 0 }, 30*time.Second, 10*time.Millisecond,
		"paho reconnects once the broker is gone")

	conn.Stop()
	require.Eventually(t, func() bool {
		return pahoGoroutines(".(*client).reconnect(")+pahoGoroutines(".(*client).Disconnect.func1(") == 0
	}, 30*time.Second, 20*time.Millisecond, "paho's reconnect loop ends after Stop")
}

// pahoGoroutines counts the goroutines with the paho 3.1.1 client's function on their stack.
func pahoGoroutines(function string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Count(string(buf), "github.com/eclipse/paho%2emqtt%2egolang"+function)
}
