package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter/internal/metadata"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

type mqttExporter struct {
	cfg      *Config
	set      exporter.Settings
	log      *zap.Logger
	tpl      topicTemplates
	mapper   *mapper
	refusals *refusals
	tel      *metadata.TelemetryBuilder
	client   publisher
}

func newExporter(set exporter.Settings, cfg *Config) (*mqttExporter, error) {
	tpl, err := cfg.templates()
	if err != nil {
		return nil, err
	}
	return &mqttExporter{cfg: cfg, set: set, log: set.Logger, tpl: tpl, mapper: newMapper(cfg), refusals: newRefusals(set.Logger)}, nil
}

func (e *mqttExporter) start(ctx context.Context, _ component.Host) error {
	tel, err := metadata.NewTelemetryBuilder(e.set.TelemetrySettings)
	if err != nil {
		return err
	}
	e.tel = tel
	conn, err := e.cfg.ClientConfig.Prepare(ctx, "otelcol-propeller-")
	if err != nil {
		return err
	}
	switch e.cfg.ProtocolVersion {
	case "5":
		e.client = newPaho5(e.cfg, conn, e.log)
	default:
		e.client = newPaho311(e.cfg, conn, e.log)
	}
	return e.client.start(ctx)
}

func (e *mqttExporter) shutdown(context.Context) error {
	if e.client != nil {
		e.client.stop()
	}
	if e.tel != nil {
		e.tel.Shutdown()
	}
	return nil
}

// outgoing is one message for one topic.
type outgoing struct {
	topic    string
	payload  []byte
	resource int // index of the resource it came from, to retry only what failed
}

// pushMetrics publishes a batch. It returns nil only when the broker acknowledged every
// message (QoS 1 and 2). Otherwise the resources whose messages failed go back to the queue
// as a smaller batch and are sent again (at least once; the window makes the messages
// identical). A refused message (a topic that cannot hold its ids, a missing proplet id, an
// MQTT 5 broker's refusal) is counted and logged, never retried: it cannot succeed, and it
// must not hold back the rest of the batch.
func (e *mqttExporter) pushMetrics(ctx context.Context, md pmetric.Metrics) error {
	now := time.Now()
	e.mapper.sweep(now)
	outs, refused := e.build(md, now)
	if refused > 0 {
		e.tel.ExporterMqttMessagesRefused.Add(ctx, int64(refused))
	}
	if len(outs) == 0 {
		return nil
	}
	if !e.client.connected() {
		if e.cfg.QoS == 0 {
			e.tel.ExporterMqttMessagesDropped.Add(ctx, int64(len(outs)))
			return consumererror.NewPermanent(fmt.Errorf("not connected to the MQTT broker at %s: %d messages dropped at QoS 0", e.cfg.Endpoint, len(outs)))
		}
		return fmt.Errorf("not connected to the MQTT broker at %s", e.cfg.Endpoint)
	}

	if _, ok := ctx.Deadline(); !ok {
		// paho never completes the token of a publish in flight when a clean-session
		// connection drops and reconnects: without a deadline such a push would wait forever.
		timeout := e.cfg.TimeoutConfig.Timeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	tokens := make([]token, len(outs))
	for i := range outs {
		tokens[i] = e.client.publish(outs[i].topic, outs[i].payload)
	}
	var published, bytes, failed, refusedByBroker int64
	var firstErr error
	failedRes := map[int]bool{}
	for i, t := range tokens {
		var err error
		select {
		case <-t.Done():
			err = t.Error()
		case <-ctx.Done():
			err = fmt.Errorf("no acknowledgement before the timeout: %w", ctx.Err())
		}
		if errors.Is(err, errRefusedByBroker) {
			refusedByBroker++
			e.refusals.refused(reasonBroker, 1, "Message refused by the MQTT broker; not retried",
				zap.String("topic", clip(outs[i].topic, 256)), zap.Error(err))
			continue
		}
		if err != nil {
			failed++
			failedRes[outs[i].resource] = true
			if firstErr == nil {
				firstErr = fmt.Errorf("publish to %q: %w", outs[i].topic, err)
			}
			continue
		}
		published++
		bytes += int64(len(outs[i].payload))
	}
	e.tel.ExporterMqttMessagesPublished.Add(ctx, published)
	e.tel.ExporterMqttBytesSent.Add(ctx, bytes)
	if refusedByBroker > 0 {
		e.tel.ExporterMqttMessagesRefused.Add(ctx, refusedByBroker)
	}
	if failed == 0 {
		return nil
	}
	e.tel.ExporterMqttMessagesFailed.Add(ctx, failed)
	return consumererror.NewMetrics(fmt.Errorf("%d of %d messages not acknowledged: %w", failed, len(outs), firstErr), subset(md, failedRes))
}

// subset copies the resources with the given indexes into a new batch.
func subset(md pmetric.Metrics, keep map[int]bool) pmetric.Metrics {
	out := pmetric.NewMetrics()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		if keep[i] {
			rms.At(i).CopyTo(out.ResourceMetrics().AppendEmpty())
		}
	}
	return out
}

// build maps every resource to its messages and topics. Payloads are appended to one arena per
// batch; each message keeps its own slice of it until the broker acknowledged it. A message
// whose topic cannot be built is refused, for that topic only: the rest of the batch goes on.
func (e *mqttExporter) build(md pmetric.Metrics, now time.Time) (outs []outgoing, refused int) {
	arena := make([]byte, 0, 1024)
	topic := make([]byte, 0, 128)
	vals := propeller.Values{DomainID: e.cfg.DomainID, ChannelID: e.cfg.ChannelID}
	add := func(tpls []propeller.Template, payload []byte, res int, kind string) {
		for _, tpl := range tpls {
			var err error
			topic, err = tpl.AppendTopic(topic[:0], &vals)
			if err != nil {
				refused++
				reason := "unsafe topic value"
				var te *propeller.TopicError
				if errors.As(err, &te) {
					reason = string(te.Reason)
				}
				e.refusals.refused(reason, 1, "Message refused: its topic cannot hold this id; not published",
					zap.String("message", kind), zap.String("task_id", clip(vals.TaskID, 64)), zap.String("proplet_id", clip(vals.PropletID, 64)),
					zap.String("template", tpl.String()), zap.Error(err))
				continue
			}
			outs = append(outs, outgoing{topic: string(topic), payload: payload, resource: res})
		}
	}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		a := readAttributes(rm.Resource().Attributes(), e.mapper.defaults)
		vals.PropletID = e.cfg.PropletID
		if a.propletID != "" {
			vals.PropletID = a.propletID
		}
		vals.TaskID = a.taskID
		samples := readResource(rm)
		if vals.TaskID != "" {
			if !a.profile.export || len(e.tpl.task) == 0 {
				continue
			}
			if vals.PropletID == "" {
				n := len(samples) * len(e.tpl.task)
				refused += n
				e.refusals.refused(reasonNoPropletID, n, "Task message refused: no proplet id (set propeller.proplet.id or the exporter's proplet_id)",
					zap.String("task_id", clip(vals.TaskID, 64)))
				continue
			}
			for _, s := range samples {
				if !s.measures() {
					continue // a task that is not found yet: its lookup sample has nothing for Propeller
				}
				msg := e.mapper.taskMessage(vals.TaskID, vals.PropletID, a.profile, s, now)
				start := len(arena)
				arena = msg.AppendJSON(arena)
				add(e.tpl.task, arena[start:len(arena):len(arena)], i, "task")
			}
			continue
		}
		if len(e.tpl.proplet) == 0 {
			continue
		}
		for _, s := range samples {
			if !isProplet(&a, s) {
				continue
			}
			if vals.PropletID == "" {
				refused += len(e.tpl.proplet)
				e.refusals.refused(reasonNoPropletID, len(e.tpl.proplet), "Proplet message refused: no proplet id (set propeller.proplet.id or the exporter's proplet_id)")
				continue
			}
			msg := e.mapper.propletMessage(vals.PropletID, s)
			start := len(arena)
			arena = msg.AppendJSON(arena)
			add(e.tpl.proplet, arena[start:len(arena):len(arena)], i, "proplet")
		}
	}
	return outs, refused
}

// clip cuts an id or a topic to n bytes for a log field: a refused id may be 70,000 bytes long.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
