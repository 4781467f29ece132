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
	cfg    *Config
	set    exporter.Settings
	log    *zap.Logger
	tpl    topicTemplates
	mapper *mapper

	refusals *refusals // the metrics path's
	// usageRefusals and skips are the logs path's, logging with the logs signal's logger:
	// the exporter is shared by both signals, and built with the settings of whichever the
	// Collector created first.
	usageRefusals *refusals
	skips         *skips
	tel           *metadata.TelemetryBuilder
	client        publisher
}

func newExporter(set exporter.Settings, cfg *Config) (*mqttExporter, error) {
	tpl, err := cfg.templates()
	if err != nil {
		return nil, err
	}
	return &mqttExporter{cfg: cfg, set: set, log: set.Logger, tpl: tpl, mapper: newMapper(cfg), refusals: newRefusals(set.Logger),
		usageRefusals: newRefusals(set.Logger), skips: newSkips(set.Logger)}, nil
}

func (e *mqttExporter) start(ctx context.Context, _ component.Host) error {
	tel, err := metadata.NewTelemetryBuilder(e.set.TelemetrySettings)
	if err != nil {
		return err
	}
	e.tel = tel
	e.refusals.count = tel.ExporterMqttMessagesRefused
	e.usageRefusals.count = tel.ExporterMqttMessagesRefused
	e.skips.count = tel.ExporterMqttLogRecordsSkipped
	conn, err := e.cfg.ClientConfig.Prepare(ctx, "otelcol-propeller-")
	if err != nil {
		return err
	}
	conn.OnFailure = countFailures(tel.ExporterMqttConnectionFailures)
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
	topic   string
	payload []byte
	item    int // index of the resource or log record it came from, to retry only what failed
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
	outs := e.build(md, now)
	failed, err := e.publish(ctx, outs, e.refusals)
	if err == nil || len(failed) == 0 {
		return err
	}
	return consumererror.NewMetrics(err, subset(md, failed))
}

// publish sends a batch's messages and waits for every acknowledgement; the metrics and the
// logs paths share it. It returns nil when every message was acknowledged or refused for good.
// Otherwise failed holds the items (resources or log records) whose messages were not
// acknowledged, to be sent again; when the client is not connected, failed is empty and the
// whole batch is retried, or dropped with a permanent error at QoS 0.
func (e *mqttExporter) publish(ctx context.Context, outs []outgoing, r *refusals) (failed map[int]bool, err error) {
	if len(outs) == 0 {
		return nil, nil
	}
	if !e.client.connected() {
		if e.cfg.QoS == 0 {
			e.tel.ExporterMqttMessagesDropped.Add(ctx, int64(len(outs)))
			return nil, consumererror.NewPermanent(fmt.Errorf("not connected to the MQTT broker at %s: %d messages dropped at QoS 0", e.cfg.Endpoint, len(outs)))
		}
		return nil, fmt.Errorf("not connected to the MQTT broker at %s", e.cfg.Endpoint)
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
	var published, bytes, nFailed int64
	var firstErr error
	for i, t := range tokens {
		var err error
		select {
		case <-t.Done():
			err = t.Error()
		case <-ctx.Done():
			err = fmt.Errorf("no acknowledgement before the timeout: %w", ctx.Err())
		}
		if errors.Is(err, errRefusedByBroker) {
			r.refused(reasonBroker, 1, "Message refused by the MQTT broker; not retried",
				zap.String("topic", clip(outs[i].topic, 256)), zap.Error(err))
			continue
		}
		if err != nil {
			nFailed++
			if failed == nil {
				failed = map[int]bool{}
			}
			failed[outs[i].item] = true
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
	if nFailed == 0 {
		return nil, nil
	}
	e.tel.ExporterMqttMessagesFailed.Add(ctx, nFailed)
	return failed, fmt.Errorf("%d of %d messages not acknowledged: %w", nFailed, len(outs), firstErr)
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

// topics appends one outgoing message per template, the topics filled with vals. A message
// whose topic cannot be built is refused, for that topic only: the rest of the batch goes on.
func (e *mqttExporter) topics(r *refusals, outs []outgoing, topic []byte, tpls []propeller.Template, vals *propeller.Values, payload []byte, item int, kind string) ([]outgoing, []byte) {
	for _, tpl := range tpls {
		var err error
		topic, err = tpl.AppendTopic(topic[:0], vals)
		if err != nil {
			reason := "unsafe topic value"
			var te *propeller.TopicError
			if errors.As(err, &te) {
				reason = string(te.Reason)
			}
			r.refused(reason, 1, "Message refused: its topic cannot hold this id; not published",
				zap.String("message", kind), zap.String("task_id", clip(vals.TaskID, 64)), zap.String("proplet_id", clip(vals.PropletID, 64)),
				zap.String("template", tpl.String()), zap.Error(err))
			continue
		}
		outs = append(outs, outgoing{topic: string(topic), payload: payload, item: item})
	}
	return outs, topic
}

// build maps every resource to its messages and topics. Payloads are appended to one arena per
// batch; each message keeps its own slice of it until the broker acknowledged it.
func (e *mqttExporter) build(md pmetric.Metrics, now time.Time) (outs []outgoing) {
	arena := make([]byte, 0, 1024)
	topic := make([]byte, 0, 128)
	vals := propeller.Values{DomainID: e.cfg.DomainID, ChannelID: e.cfg.ChannelID}
	add := func(tpls []propeller.Template, payload []byte, res int, kind string) {
		outs, topic = e.topics(e.refusals, outs, topic, tpls, &vals, payload, res, kind)
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
				e.refusals.refused(reasonNoPropletID, len(e.tpl.proplet), "Proplet message refused: no proplet id (set propeller.proplet.id or the exporter's proplet_id)")
				continue
			}
			msg := e.mapper.propletMessage(vals.PropletID, s)
			start := len(arena)
			arena = msg.AppendJSON(arena)
			add(e.tpl.proplet, arena[start:len(arena):len(arena)], i, "proplet")
		}
	}
	return outs
}

// clip cuts an id or a topic to n bytes for a log field: a refused id may be 70,000 bytes long.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
