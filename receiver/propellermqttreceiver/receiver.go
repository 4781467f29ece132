package propellermqttreceiver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/otelcol-propeller/otelcol-propeller/internal/fleet"
	"github.com/otelcol-propeller/otelcol-propeller/internal/mqttconn"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
	"github.com/otelcol-propeller/otelcol-propeller/internal/ratelog"
	"github.com/otelcol-propeller/otelcol-propeller/receiver/propellermqttreceiver/internal/metadata"
)

const (
	// maxBatch resources are handed on together, by a goroutine of their own, so converting
	// the next messages and handing on the last ones overlap. At most two full batches wait:
	// past that the client's goroutine waits too, so a slow pipeline slows the reading of
	// messages (the broker keeps the rest).
	maxBatch = 256
	// linger bounds how long a message waits for its batch to fill.
	linger = 20 * time.Millisecond
)

// batch is a batch of converted messages and how many of each kind it holds.
type batch struct {
	md      pmetric.Metrics
	counted [2]int64
}

type fleetReceiver struct {
	cfg     *Config
	set     receiver.Settings
	next    consumer.Metrics
	obsrecv *receiverhelper.ObsReport
	opts    propeller.DecodeOptions
	scope   fleet.Scope
	tracked *fleet.Tracker

	tel      *metadata.TelemetryBuilder
	kinds    [2]metric.MeasurementOption
	repaired map[propeller.Source]metric.MeasurementOption
	reasons  map[propeller.DropReason]metric.MeasurementOption
	drops    *ratelog.Log

	mu      sync.Mutex // guards batch and n
	batch   pmetric.Metrics
	n       int
	counted [2]int64 // messages of the batch by kind
	full    chan batch
	// raw holds messages read and not yet converted; when it is full, reading waits.
	raw        chan received
	stopping   chan struct{}
	workerDone chan struct{}
	// queued counts the full batches taken and not yet handed on. A partial batch is newer
	// than all of them, so it waits until they are gone: data is handed on in the order read.
	queued int

	sub     *mqttconn.Subscriber
	session sessionTelemetry
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	stopOnce sync.Once
}

func newReceiver(set receiver.Settings, cfg *Config, next consumer.Metrics) (*fleetReceiver, error) {
	obsrecv, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              "mqtt",
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	return &fleetReceiver{
		cfg: cfg, set: set, next: next, obsrecv: obsrecv, opts: cfg.options(), tracked: fleet.NewTracker(cfg.limits()),
		scope:    fleet.Scope{Name: metadata.ScopeName, Version: set.BuildInfo.Version},
		batch:    pmetric.NewMetrics(),
		full:     make(chan batch, 2),
		raw:      make(chan received, maxBatch),
		stopping: make(chan struct{}),
	}, nil
}

func (r *fleetReceiver) Start(_ context.Context, _ component.Host) error {
	if err := r.initTelemetry(); err != nil {
		return err
	}
	// The receiver's context outlives Start's: it carries the data handed on.
	r.ctx, r.cancel = context.WithCancel(context.Background())
	var err error
	if r.sub, err = r.connect(); err != nil {
		return err
	}
	r.wg.Add(1)
	go r.flushLoop()
	r.workerDone = make(chan struct{})
	go r.convertLoop()
	if err := r.sub.Start(); err != nil {
		r.stopOnce.Do(r.stop)
		return err
	}
	return nil
}

// Shutdown stops reading, converts what was read, and hands it all on. It may be called more
// than once.
func (r *fleetReceiver) Shutdown(context.Context) error {
	r.stopOnce.Do(r.stop)
	return nil
}

func (r *fleetReceiver) stop() {
	if r.sub != nil {
		r.sub.Stop()
	}
	// The messages read are converted, then the batches handed on, then what is left.
	close(r.stopping)
	if r.workerDone != nil {
		<-r.workerDone
	}
	if r.cancel != nil {
		r.cancel()
		r.wg.Wait()
	}
	// What was read before the connection closed is handed on: the broker counts it as
	// delivered.
	r.flush(context.Background())
	if r.tel != nil {
		r.tel.Shutdown()
	}
}

// received is a message as read, waiting to be converted.
type received struct {
	topic   string
	payload []byte
	at      int64
}

// onMessage passes a message to the converting goroutine. paho acknowledges the message when
// this returns, and the broker sends the next one only within its window of unacknowledged
// messages (Mosquitto: 20): converting here would hold up that window.
func (r *fleetReceiver) onMessage(msg mqttconn.Message) {
	if msg.Retained && !r.cfg.AcceptRetained {
		r.retained(msg.Topic)
		return
	}
	m := received{msg.Topic, msg.Payload, time.Now().UnixNano()}
	select {
	case r.raw <- m:
	case <-r.stopping:
		r.handle(m.topic, m.payload, m.at)
	}
}

// convertLoop converts the messages read, in order, until stopping, then those still waiting.
func (r *fleetReceiver) convertLoop() {
	defer close(r.workerDone)
	for {
		select {
		case m := <-r.raw:
			r.handle(m.topic, m.payload, m.at)
		case <-r.stopping:
			for {
				select {
				case m := <-r.raw:
					r.handle(m.topic, m.payload, m.at)
				default:
					return
				}
			}
		}
	}
}

// handle converts one message into the current batch, and hands the batch on when full.
func (r *fleetReceiver) handle(topic string, payload []byte, now int64) {
	t, ok := propeller.ParseTopic(topic)
	if !ok || !r.subscribed(topic) {
		r.tel.ReceiverPropellerMqttIgnoredMessages.Add(r.ctx, 1)
		r.set.Logger.Debug("Message on a topic that is not a metrics topic of the configured filters", zap.String("topic", topic))
		return
	}
	var m propeller.Received
	if err := propeller.Decode(payload, t, now, r.opts, &m); err != nil {
		r.dropped(propeller.DropReasonOf(err), topic, err)
		return
	}
	if !r.tracked.Track(&m, now) {
		r.overCap(&m, topic)
		return
	}
	if m.Repaired {
		r.tel.ReceiverPropellerMqttRepairedMessages.Add(r.ctx, 1, r.repaired[m.Source])
	}
	r.mu.Lock()
	fleet.Append(r.batch.ResourceMetrics(), &m, r.scope)
	r.counted[t.Kind]++
	r.n++
	if r.n < maxBatch {
		r.mu.Unlock()
		return
	}
	b := r.take()
	r.queued++
	r.mu.Unlock()
	select {
	case r.full <- b:
	case <-r.ctx.Done():
		r.consume(context.Background(), b)
		r.mu.Lock()
		r.queued--
		r.mu.Unlock()
	}
}

// subscribed reports whether a configured filter matches topic.
func (r *fleetReceiver) subscribed(topic string) bool {
	for _, f := range r.cfg.Topics {
		if propeller.Match(f, topic) {
			return true
		}
	}
	return false
}

// take returns the current batch and starts a new one. r.mu is held.
func (r *fleetReceiver) take() batch {
	b := batch{md: r.batch, counted: r.counted}
	r.batch, r.n, r.counted = pmetric.NewMetrics(), 0, [2]int64{}
	return b
}

// flush hands on the partial batch, unless full batches are still waiting (they go first).
func (r *fleetReceiver) flush(ctx context.Context) {
	r.mu.Lock()
	if r.n == 0 || r.queued > 0 {
		r.mu.Unlock()
		return
	}
	b := r.take()
	r.mu.Unlock()
	r.consume(ctx, b)
}

// flushLoop hands on full batches, and every linger what has gathered since.
func (r *fleetReceiver) flushLoop() {
	defer r.wg.Done()
	tick := time.NewTicker(linger)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			for {
				select {
				case b := <-r.full:
					r.handOn(context.Background(), b)
				default:
					return
				}
			}
		case b := <-r.full:
			r.handOn(r.ctx, b)
		case <-tick.C:
			r.flush(r.ctx)
		}
	}
}

// handOn hands on a full batch from the queue.
func (r *fleetReceiver) handOn(ctx context.Context, b batch) {
	r.consume(ctx, b)
	r.mu.Lock()
	r.queued--
	r.mu.Unlock()
}

func (r *fleetReceiver) consume(ctx context.Context, b batch) {
	counted := b.counted
	n := b.md.DataPointCount()
	ctx = r.obsrecv.StartMetricsOp(ctx)
	err := r.next.ConsumeMetrics(ctx, b.md)
	r.obsrecv.EndMetricsOp(ctx, metadata.Type.String(), n, err)
	if err != nil {
		messages := counted[0] + counted[1]
		r.tel.ReceiverPropellerMqttDroppedMessages.Add(context.Background(), messages, r.reasons[reasonRefused])
		r.drops.Log(zapcore.WarnLevel, string(reasonRefused), int(messages), "Propeller metrics messages dropped: the pipeline refused them",
			zap.Error(fmt.Errorf("the pipeline refused %d messages: %w", messages, err)))
		return
	}
	for k, c := range counted {
		if c > 0 {
			r.tel.ReceiverPropellerMqttMessages.Add(context.Background(), c, r.kinds[k])
		}
	}
}
