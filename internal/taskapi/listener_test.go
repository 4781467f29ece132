package taskapi

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestLimitListenerCountsAndLogsTheLimit: the connection that takes the last place is counted
// and logged; the next one is accepted only once a place is free, and counted again, but the
// log line waits a minute.
func TestLimitListenerCountsAndLogsTheLimit(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	core, logs := observer.New(zapcore.WarnLevel)
	var reached atomic.Int64
	ln := LimitListener(inner, 2, zap.New(core), func() { reached.Add(1) })
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	t.Cleanup(func() {
		for _, c := range clients {
			_ = c.Close()
		}
	})
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		require.NoError(t, err)
		clients = append(clients, c)
	}
	first, second := <-accepted, <-accepted
	assert.Equal(t, int64(1), reached.Load(), "the second connection took the last place")
	require.Equal(t, 1, logs.Len())
	assert.Equal(t, int64(2), logs.All()[0].ContextMap()["max_connections"])
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted while two are open")
	default:
	}
	require.NoError(t, first.Close())
	third := <-accepted
	assert.Equal(t, int64(2), reached.Load())
	assert.Equal(t, 1, logs.Len(), "logged at most once a minute")
	_, _ = second.Close(), third.Close()
}
