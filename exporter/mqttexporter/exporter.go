package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper/xexporterhelper"
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
	item    int // index of the record it came from, to retry only what failed
}

// convertMetrics maps a batch to its messages before it is queued (the sending queue holds
// them, not the pdata). It never fails: what cannot make a message is refused and counted here.
func (e *mqttExporter) convertMetrics(_ context.Context, md pmetric.Metrics) (xexporterhelper.Request, error) {
	now := time.Now()
	e.mapper.sweep(now)
	return e.build(md, now), nil
}

// pushQueued publishes a queued request of the metrics signal.
func (e *mqttExporter) pushQueued(ctx context.Context, req xexporterhelper.Request) error {
	return e.send(ctx, req, e.refusals)
}

// send publishes a queued request. It returns nil only when the broker acknowledged every
// message (QoS 1 and 2). Otherwise the records whose messages failed are what the retry sends
// again (at least once: the same bytes). A refused message (an MQTT 5 broker's refusal) is
// counted and logged, never retried: it cannot succeed, and it must not hold back the rest of
// the batch.
func (e *mqttExporter) send(ctx context.Context, req xexporterhelper.Request, r *refusals) error {
	q, ok := req.(*queued)
	if !ok {
		return consumererror.NewPermanent(fmt.Errorf("send a %T: not the MQTT exporter's request type", req))
	}
	outs := e.expand(q, r)
	failed, err := e.publish(ctx, outs, r)
	if err == nil || len(failed) == 0 {
		return err
	}
	return &unacknowledged{err: err, left: q.subset(failed)}
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

// checkTopics says which of tpls can be built with vals: bit i of mask for tpls[i]. A topic
// that cannot be built is refused, for that topic only: the message goes to the others.
func (e *mqttExporter) checkTopics(r *refusals, topic []byte, tpls []propeller.Template, vals *propeller.Values, kind string) (mask uint64, _ []byte) {
	for i, tpl := range tpls {
		var err error
		topic, err = tpl.AppendTopic(topic[:0], vals)
		if err != nil {
			r.refused(topicReason(err), 1, "Message refused: its topic cannot hold this id; not published",
				zap.String("message", kind), zap.String("task_id", clip(vals.TaskID, 64)), zap.String("proplet_id", clip(vals.PropletID, 64)),
				zap.String("template", tpl.String()), zap.Error(err))
			continue
		}
		if i < maxTopicsPerKind {
			mask |= 1 << i
		}
	}
	return mask, topic
}

// topicReason is the refusal reason of a topic that cannot be built.
func topicReason(err error) string {
	var te *propeller.TopicError
	if errors.As(err, &te) {
		return string(te.Reason)
	}
	return "unsafe topic value"
}

// build maps every resource to its messages, in their compact form, with the topics each can
// go to.
func (e *mqttExporter) build(md pmetric.Metrics, now time.Time) *queued {
	rms := md.ResourceMetrics()
	rec := newRecorder(rms.Len() * 192)
	topic := make([]byte, 0, 128)
	vals := propeller.Values{DomainID: e.cfg.DomainID, ChannelID: e.cfg.ChannelID}
	var mask uint64
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
				if mask, topic = e.checkTopics(e.refusals, topic, e.tpl.task, &vals, "task"); mask == 0 {
					continue
				}
				msg := e.mapper.taskMessage(vals.TaskID, vals.PropletID, a.profile, s, now)
				rec.add(kindTask, mask, &msg)
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
			if mask, topic = e.checkTopics(e.refusals, topic, e.tpl.proplet, &vals, "proplet"); mask == 0 {
				continue
			}
			msg := e.mapper.propletMessage(vals.PropletID, s)
			rec.add(kindProplet, mask, &msg)
		}
	}
	return rec.request()
}

// expand turns a queued request back into its messages: the JSON of each record, for every
// topic its mask allows. A record that cannot be read (a persistent queue written by another
// version), or a topic that can no longer be built (the configuration changed across a
// restart), is refused and counted.
func (e *mqttExporter) expand(q *queued, r *refusals) []outgoing {
	outs := make([]outgoing, 0, q.n*len(e.tpl.task))
	arena := make([]byte, 0, q.n*700) // a full task message is about 670 bytes of JSON
	topic := make([]byte, 0, 128)
	vals := propeller.Values{DomainID: e.cfg.DomainID, ChannelID: e.cfg.ChannelID}
	var task propeller.TaskMessage
	var proplet propeller.PropletMessage
	var usage propeller.TaskUsage
	var alert propeller.TaskAlert
	err := q.records(func(i int, _, body []byte) {
		if len(body) == 0 {
			r.refused(reasonUnreadable, 1, "Queued message refused: empty record; not published")
			return
		}
		kind := body[0]
		mask, w := binary.Uvarint(body[1:])
		if w <= 0 {
			r.refused(reasonUnreadable, 1, "Queued message refused: broken topic mask; not published")
			return
		}
		msg := body[1+w:]
		var tpls []propeller.Template
		var err error
		start := len(arena)
		switch kind {
		case kindTask:
			if err = task.UnmarshalBinary(msg); err == nil {
				tpls, vals.TaskID, vals.PropletID = e.tpl.task, task.TaskID, task.PropletID
				arena = task.AppendJSON(arena)
			}
		case kindProplet:
			if err = proplet.UnmarshalBinary(msg); err == nil {
				tpls, vals.TaskID, vals.PropletID = e.tpl.proplet, "", proplet.PropletID
				arena = proplet.AppendJSON(arena)
			}
		case kindUsage, kindUsageWithoutDelays:
			if kind == kindUsage {
				err = usage.UnmarshalBinary(msg)
			} else {
				err = usage.UnmarshalBinaryWithoutDelays(msg)
			}
			if err == nil {
				tpls, vals.TaskID, vals.PropletID = e.tpl.usage, usage.TaskID, usage.PropletID
				arena = usage.AppendJSON(arena)
			}
		case kindAlert:
			if err = alert.UnmarshalBinary(msg); err == nil {
				tpls, vals.TaskID, vals.PropletID = e.tpl.alerts, alert.TaskID, alert.PropletID
				arena = alert.AppendJSON(arena)
			}
		default:
			err = fmt.Errorf("unknown message kind %d", kind)
		}
		if err != nil {
			r.refused(reasonUnreadable, 1, "Queued message refused: it cannot be read (a persistent queue written by another version?); not published", zap.Error(err))
			return
		}
		payload := arena[start:len(arena):len(arena)]
		for j, tpl := range tpls {
			if j < maxTopicsPerKind && mask&(1<<j) == 0 {
				continue // refused when it was queued
			}
			var err error
			if topic, err = tpl.AppendTopic(topic[:0], &vals); err != nil {
				r.refused(topicReason(err), 1, "Queued message refused: its topic cannot be built with the current topics configuration; not published",
					zap.String("template", tpl.String()), zap.String("task_id", clip(vals.TaskID, 64)), zap.Error(err))
				continue
			}
			outs = append(outs, outgoing{topic: string(topic), payload: payload, item: i})
		}
	})
	if err != nil {
		r.refused(reasonUnreadable, 1, "Queued request cut short: the rest of its messages cannot be read; not published", zap.Error(err))
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
