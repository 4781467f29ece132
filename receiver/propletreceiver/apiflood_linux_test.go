//go:build linux

package propletreceiver

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configoptional"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/taskapi"
)

// apiSockets counts the established TCP connections whose local port is port, from the
// kernel's tables: accepted ones belong to a socket descriptor (a non-zero inode), queued ones
// wait in the listener's accept queue and belong to no descriptor yet (inode 0).
func apiSockets(t *testing.T, port int) (accepted, queued int) {
	t.Helper()
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "01" { // 01: ESTABLISHED
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err != nil || int(p) != port {
				continue
			}
			if fields[9] == "0" {
				queued++
			} else {
				accepted++
			}
		}
		_ = f.Close()
	}
	return accepted, queued
}

// TestIdleConnectionFloodIsBounded opens more idle connections than the task API serves,
// without a token and without sending a byte: the API holds at most max_connections of them
// (the rest wait in the kernel's accept queue, costing the collector no descriptor), and a
// real request is still answered once the idle ones time out. Before the limit, every idle
// connection took a descriptor for a minute, and a flood took all of them.
func TestIdleConnectionFloodIsBounded(t *testing.T) {
	addr := mqtttest.FreeAddress(t)
	_, portText, _ := strings.Cut(addr, ":")
	port, err := strconv.Atoi(portText)
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	cfg.PropletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	api := defaultAPIConfig()
	api.Server.NetAddr.Endpoint = addr
	api.BearerToken = "s3cret"
	cfg.API = configoptional.Some(api)
	require.Equal(t, taskapi.DefaultMaxConnections, api.MaxConnections, "the default limit is what is tested")
	startReceiver(t, cfg)

	limit := api.MaxConnections
	flood := limit + 16
	conns := make([]net.Conn, 0, flood)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for range flood {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	// Every handshake completes in the kernel; the collector accepts no more than the limit.
	require.Eventually(t, func() bool {
		accepted, queued := apiSockets(t, port)
		return accepted+queued == flood && accepted == limit
	}, 20*time.Second, 10*time.Millisecond, "the API accepts at most max_connections=%d of %d idle connections", limit, flood)
	accepted, queued := apiSockets(t, port)
	assert.Equal(t, limit, accepted)
	assert.Equal(t, flood-limit, queued)

	// A real request waits behind the idle connections until read_header_timeout closes
	// them, and is then answered.
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/tasks", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer s3cret")
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Do(req)
	require.NoError(t, err, "a real request after the idle connections timed out")
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
