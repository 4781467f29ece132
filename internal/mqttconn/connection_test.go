package mqttconn

import (
	"context"
	"testing"
	"time"

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
