package mqttconn

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// publishOnce publishes one message at QoS 1 over MQTT 3.1.1.
func publishOnce(t *testing.T, endpoint, topic, payload string) {
	t.Helper()
	publishMany(t, endpoint, topic, []string{payload})
}

// publishMany publishes messages at QoS 1 over MQTT 3.1.1 and waits for every acknowledgement.
func publishMany(t *testing.T, endpoint, topic string, payloads []string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(endpoint).SetClientID("pub-" + time.Now().Format("150405.000000000")))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	defer c.Disconnect(50)
	toks := make([]paho.Token, len(payloads))
	for i, p := range payloads {
		toks[i] = c.Publish(topic, 1, false, p)
	}
	for _, tok := range toks {
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}
}

// chunked reads at most n bytes at a time, as a socket may deliver them.
type chunked struct {
	r io.Reader
	n int
}

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

type readerConn struct {
	net.Conn
	r      io.Reader
	closed bool
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *readerConn) Close() error               { c.closed = true; return nil }

// TestCapPassesPacketsUnderTheCap: a stream of packets of every length form (0, 1, 2 and 3
// length bytes, a body split across reads) passes unchanged, whatever the read sizes.
func TestCapPassesPacketsUnderTheCap(t *testing.T) {
	var stream []byte
	for _, n := range []int{0, 2, 127, 128, 16383, 16384, 70000} {
		stream = append(stream, 0x30)
		stream = appendLength(stream, n)
		stream = append(stream, bytes.Repeat([]byte{0xAB}, n)...)
	}
	for _, chunk := range []int{1, 2, 3, 7, 4096, 1 << 20} {
		c := &readerConn{r: chunked{bytes.NewReader(stream), chunk}}
		got, err := io.ReadAll(capPackets(c, 70000, nil))
		require.NoError(t, err, "chunk %d", chunk)
		assert.Equal(t, stream, got, "chunk %d", chunk)
		assert.False(t, c.closed)
	}
}

// TestCapRefusesALongPacketBeforeItsLength: the read that would complete a remaining length
// over the cap fails, the connection is closed, and the oversize is counted once.
func TestCapRefusesALongPacketBeforeItsLength(t *testing.T) {
	good := append([]byte{0x20, 0x02, 0x00, 0x00}, 0x30)
	stream := appendLength(good, 268_435_455)
	for _, chunk := range []int{1, 3, 4096} {
		c := &readerConn{r: chunked{bytes.NewReader(stream), chunk}}
		oversize := 0
		capped := capPackets(c, 1<<20, func() { oversize++ })
		got, err := io.ReadAll(capped)
		var tooLarge *PacketTooLargeError
		require.ErrorAs(t, err, &tooLarge, "chunk %d", chunk)
		assert.Equal(t, 1<<20, tooLarge.Max)
		assert.Greater(t, tooLarge.Length, 1<<20)
		assert.Equal(t, good, got[:min(len(got), len(good))], "the packets before are passed")
		assert.LessOrEqual(t, len(got), len(good)+3, "not the whole length")
		assert.True(t, c.closed)
		assert.Equal(t, 1, oversize)
		_, err = capped.Read(make([]byte, 1))
		assert.ErrorAs(t, err, &tooLarge, "every later read fails")
	}
}

// TestOversizedPacketIsNotAllocated: a "broker" answers the CONNECT with a packet header
// announcing 268 MB. Both clients fail the attempt with the cap's error, count it once, and
// allocate far less than the announced length (before, each attempt allocated it).
func TestOversizedPacketIsNotAllocated(t *testing.T) {
	header := appendLength([]byte{0x30}, 268_435_455)
	raw := mqtttest.StartRaw(t, header)
	for _, version := range []string{"3.1.1", "5"} {
		t.Run(version, func(t *testing.T) {
			s, logs, counted := subscriber(t, raw.Endpoint(), version, SessionClean, nil)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			require.NoError(t, s.Start())
			waitUntil(t, 10*time.Second, "the refused packet", func() bool { return counted.count(CausePacketTooLarge) > 0 })
			runtime.ReadMemStats(&after)
			t.Logf("allocated %d bytes in total while the attempts were refused", after.TotalAlloc-before.TotalAlloc)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "the announced 268 MB was not allocated")
			s.Stop()
			waitUntil(t, 5*time.Second, "a log line", func() bool { return logs.Len() > 0 })
			assert.Contains(t, logs.All()[0].Message, "max_packet_size")
		})
	}
}

func appendLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// BenchmarkCapScan is the cost of following packet boundaries on the gateway's read path:
// 1,000 PUBLISH packets of 450 bytes (a task message) read in 64 KiB buffers, with and without
// the cap.
func BenchmarkCapScan(b *testing.B) {
	var stream []byte
	for range 1000 {
		stream = append(stream, 0x32)
		stream = appendLength(stream, 450)
		stream = append(stream, bytes.Repeat([]byte{'x'}, 450)...)
	}
	buf := make([]byte, 64<<10)
	for _, capped := range []bool{false, true} {
		name := "raw"
		if capped {
			name = "capped"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				var r io.Reader = &readerConn{r: bytes.NewReader(stream)}
				if capped {
					r = capPackets(r.(net.Conn), DefaultMaxPacketSize, nil)
				}
				for {
					if _, err := r.Read(buf); err != nil {
						break
					}
				}
			}
		})
	}
}
