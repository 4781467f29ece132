//go:build linux

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// TestFleetThroughput measures the gateway through the built distribution: task messages
// queued on a Mosquitto for a persistent session, drained by the collector
// (propeller_mqtt -> otlp_http) into an OTLP/HTTP sink, beside a bare paho subscriber
// draining the same number the same way. Run with FLEET_BENCH=1 (make bench-fleet).
func TestFleetThroughput(t *testing.T) {
	if os.Getenv("FLEET_BENCH") == "" {
		t.Skip("set FLEET_BENCH=1 to measure (make bench-fleet)")
	}
	bin := binary(t)
	broker := mqtttest.StartMosquitto(t)
	const n = 50000
	const filter = "m/+/c/+/control/proplet/task_metrics"
	pub := fleetPublisher(t, broker.Endpoint())
	fill := func() {
		t.Helper()
		base := time.Now().Add(-time.Hour)
		toks := make([]paho.Token, 0, n)
		for seq := range n {
			toks = append(toks, pub.Publish(fmt.Sprintf("m/d%d/c/c/control/proplet/task_metrics", seq%3), 1, false,
				fleetTask(seq%50, seq, base.Add(time.Duration(seq)*time.Microsecond))))
		}
		for _, tok := range toks {
			require.True(t, tok.WaitTimeout(60*time.Second))
			require.NoError(t, tok.Error())
		}
	}

	// The bare subscriber: a persistent session, the stream queued while it is away, then
	// drained by paho's default handler counting messages.
	var got atomic.Int64
	var first, last atomic.Int64
	bare := func(connect bool) paho.Client {
		o := paho.NewClientOptions().AddBroker(broker.Endpoint()).SetClientID("bare-subscriber").SetCleanSession(false).
			SetDefaultPublishHandler(func(paho.Client, paho.Message) {
				now := time.Now().UnixNano()
				if got.Add(1) == 1 {
					first.Store(now)
				}
				last.Store(now)
			})
		c := paho.NewClient(o)
		tok := c.Connect()
		require.True(t, tok.WaitTimeout(5*time.Second))
		require.NoError(t, tok.Error())
		if connect {
			st := c.Subscribe(filter, 1, nil)
			require.True(t, st.WaitTimeout(5*time.Second))
		}
		return c
	}
	bare(true).Disconnect(100)
	fill()
	c := bare(false)
	waitUntil(t, 120*time.Second, func() bool { return got.Load() >= n })
	c.Disconnect(100)
	bareRate := float64(n-1) / time.Duration(last.Load()-first.Load()).Seconds()

	// The gateway, the same way: subscribe once, stop, queue the stream, start again.
	var points, resources atomic.Int64
	var gFirst, gLast, firstBatch atomic.Int64
	sink := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// Counted by walking the protobuf, not by decoding it into pdata: the sink shares the
		// machine with the collector, and must cost it as little as it can.
		nr, np, err := countOTLP(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now().UnixNano()
		if gFirst.CompareAndSwap(0, now) {
			// The rate is taken from this request on: what it carries was read before.
			firstBatch.Store(int64(nr))
		}
		points.Add(int64(np))
		resources.Add(int64(nr))
		gLast.Store(now)
		out, _ := pmetricotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = sink.Serve(l) }()
	t.Cleanup(func() { _ = sink.Close() })
	pprofPort := freePort(t)
	cfg := fmt.Sprintf(`
extensions:
  pprof: { endpoint: 127.0.0.1:%d }
receivers:
  propeller_mqtt: { endpoint: %s, client_id: bench-gateway, topics: [%s] }
exporters:
  otlp_http:
    endpoint: http://%s
    compression: none
    sending_queue: { batch: { flush_timeout: 200ms, min_size: 8192 }, num_consumers: 4 }
service:
  extensions: [pprof]
  telemetry: { metrics: { level: none } }
  pipelines:
    metrics: { receivers: [propeller_mqtt], exporters: [otlp_http] }
`, pprofPort, broker.Endpoint(), filter, l.Addr())
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	run := func() *exec.Cmd {
		col := exec.Command(bin, "--config", path)
		var logs syncBuffer
		col.Stdout, col.Stderr = &logs, &logs
		require.NoError(t, col.Start())
		t.Cleanup(func() { _ = col.Process.Kill(); _ = col.Wait() })
		return col
	}
	// The first run creates the session; a probe message proves the subscription.
	col := run()
	waitUntil(t, 30*time.Second, func() bool {
		pub.Publish("m/probe/c/c/control/proplet/task_metrics", 1, false, fleetTask(0, 0, time.Now())).WaitTimeout(time.Second)
		time.Sleep(300 * time.Millisecond) //nolint:forbidigo // the batch's flush timeout
		return resources.Load() > 0
	})
	require.NoError(t, col.Process.Signal(os.Interrupt))
	_ = col.Wait()
	points.Store(0)
	resources.Store(0)
	gFirst.Store(0)
	fill()
	run()
	if out := os.Getenv("FLEET_PROFILE"); out != "" {
		// A CPU profile of the collector while it drains: FLEET_PROFILE=/tmp/gateway.pprof.
		waitUntil(t, 30*time.Second, func() bool { return resources.Load() > 0 })
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=1", pprofPort))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, os.WriteFile(out, b, 0o600))
	}
	waitUntil(t, 180*time.Second, func() bool { return resources.Load() >= n })
	gatewayRate := float64(resources.Load()-firstBatch.Load()) / time.Duration(gLast.Load()-gFirst.Load()).Seconds()
	t.Logf("%d task messages queued on Mosquitto: bare paho subscriber %.0f messages/s; gateway (propeller_mqtt -> otlp_http -> sink) %.0f messages/s (%.0f data points/s, %.2f of the bare rate)",
		n, bareRate, gatewayRate, gatewayRate*float64(points.Load())/float64(resources.Load()), gatewayRate/bareRate)
	assert.Equal(t, int64(n), resources.Load(), "every message reached the sink once")
}

// countOTLP counts the resources and number data points of an OTLP ExportMetricsServiceRequest
// (resource_metrics = 1, scope_metrics = 2, metrics = 2, gauge = 5 / sum = 7, data_points = 1).
func countOTLP(b []byte) (resources, points int, err error) {
	var walk func(b []byte, path []protowire.Number) error
	walk = func(b []byte, path []protowire.Number) error {
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			if typ != protowire.BytesType {
				n = protowire.ConsumeFieldValue(num, typ, b)
				if n < 0 {
					return protowire.ParseError(n)
				}
				b = b[n:]
				continue
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			depth := len(path)
			switch {
			case depth == 0 && num == 1:
				resources++
			case depth == 1 && num == 2, depth == 2 && num == 2, depth == 3 && (num == 5 || num == 7):
			case depth == 4 && num == 1:
				points++
				continue
			default:
				continue
			}
			if err := walk(v, append(path, num)); err != nil {
				return err
			}
		}
		return nil
	}
	err = walk(b, nil)
	return resources, points, err
}

func waitUntil(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out after %s", within)
		time.Sleep(50 * time.Millisecond) //nolint:forbidigo // polling a condition with a deadline
	}
}

// TestCountOTLP: the throughput sink counts what pdata counts, on the golden output.
func TestCountOTLP(t *testing.T) {
	b, err := os.ReadFile("../receiver/propellermqttreceiver/testdata/golden.json")
	require.NoError(t, err)
	req := pmetricotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalJSON(b))
	raw, err := req.MarshalProto()
	require.NoError(t, err)
	resources, points, err := countOTLP(raw)
	require.NoError(t, err)
	assert.Equal(t, req.Metrics().ResourceMetrics().Len(), resources)
	assert.Equal(t, req.Metrics().DataPointCount(), points)
}
