package mqttexporter // import "github.com/otelcol-propeller/otelcol-propeller/exporter/mqttexporter"

import (
	"bytes"
	"context"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exporterhelper/xexporterhelper"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	pdatareq "go.opentelemetry.io/collector/pdata/xpdata/request"
)

// The sending queue holds what will be sent, not the pdata it came from: each batch is mapped
// to Propeller messages when it is queued, and the queue keeps them in their compact form
// (internal/propeller), a record each:
//
//	uvarint length of the rest | kind | uvarint topic mask | compact message
//
// The kind says which message follows (and is how a later compact form would be told from
// this one in a persistent queue). Bit i of the topic mask is set when the kind's topic
// template i could hold the message's ids when it was queued: a template that could not was
// refused and counted then, and is not tried again.
//
// The message, its aggregated block and its cpu_percent are fixed when the batch is queued,
// so a retry, or a collector that restarts on a persistent queue, sends the very bytes first
// built, whatever the task's window holds by then.
const (
	kindTask    byte = 1
	kindProplet byte = 2
	// kindUsageWithoutDelays is the task usage message's compact form before the delays were
	// added: read still, for a persistent queue an earlier version wrote; never written.
	kindUsageWithoutDelays byte = 3
	kindUsage              byte = 4
	kindAlert              byte = 5
)

// reasonUnreadable refuses a queued message that cannot be read back: a persistent queue
// written by a version with another compact form.
const reasonUnreadable = "queued message unreadable"

// maxTopicsPerKind is how many topic templates of one kind a record's mask covers.
const maxTopicsPerKind = 64

// queued is one request of the sending queue: records of Propeller messages. The memory it
// takes is its buffer, of exactly BytesSize bytes, so the bytes sizer counts what the queue
// costs.
type queued struct {
	buf []byte
	n   int
}

var (
	_ xexporterhelper.Request             = (*queued)(nil)
	_ xexporterhelper.RequestErrorHandler = (*queued)(nil)
)

// ItemsCount is the number of messages (each published to every topic of its kind).
func (q *queued) ItemsCount() int { return q.n }

// BytesSize is the size of the records: what the request holds in memory and on disk.
func (q *queued) BytesSize() int { return len(q.buf) }

// records calls fn with each record, whole (rec, to copy it) and without its length (body:
// kind, mask and message).
func (q *queued) records(fn func(i int, rec, body []byte)) error {
	b := q.buf
	for i := 0; len(b) > 0; i++ {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return fmt.Errorf("queued record %d: broken length at byte %d of %d", i, len(q.buf)-len(b), len(q.buf))
		}
		end := w + int(n)
		fn(i, b[:end], b[w:end])
		b = b[end:]
	}
	return nil
}

// subset copies the records with the given indexes into a new request.
func (q *queued) subset(keep map[int]bool) *queued {
	out := &queued{}
	_ = q.records(func(i int, rec, _ []byte) {
		if keep[i] {
			out.buf = append(out.buf, rec...)
			out.n++
		}
	})
	return out
}

// MergeSplit merges other (when not nil) after q and cuts the result into requests of at
// most maxSize messages (items sizer) or bytes (bytes sizer); a record is never cut, so a
// record larger than maxSize bytes makes a request of its own. It is used only when
// sending_queue.batch is set.
func (q *queued) MergeSplit(_ context.Context, maxSize int, sizer exporterhelper.RequestSizerType, other xexporterhelper.Request) ([]xexporterhelper.Request, error) {
	all := &queued{buf: append([]byte(nil), q.buf...), n: q.n}
	if other != nil {
		o, ok := other.(*queued)
		if !ok {
			return nil, fmt.Errorf("merge a %T into the MQTT exporter's queue: not its request type", other)
		}
		all.buf, all.n = append(all.buf, o.buf...), all.n+o.n
	}
	if maxSize <= 0 || sizer == exporterhelper.RequestSizerTypeRequests {
		return []xexporterhelper.Request{all}, nil
	}
	var out []xexporterhelper.Request
	cur := &queued{}
	_ = all.records(func(_ int, rec, _ []byte) {
		full := cur.n > 0 && (sizer == exporterhelper.RequestSizerTypeItems && cur.n+1 > maxSize ||
			sizer == exporterhelper.RequestSizerTypeBytes && len(cur.buf)+len(rec) > maxSize)
		if full {
			out = append(out, cur)
			cur = &queued{}
		}
		cur.buf = append(cur.buf, rec...)
		cur.n++
	})
	if cur.n > 0 || len(out) == 0 {
		out = append(out, cur)
	}
	return out, nil
}

// OnError returns what is left to send after a push that failed in part: the records whose
// messages the broker did not acknowledge.
func (q *queued) OnError(err error) xexporterhelper.Request {
	var f *unacknowledged
	if errors.As(err, &f) {
		return f.left
	}
	return q
}

// unacknowledged is a push's error when some messages were not acknowledged; left holds
// their records, to be sent again.
type unacknowledged struct {
	err  error
	left *queued
}

func (u *unacknowledged) Error() string { return u.err.Error() }
func (u *unacknowledged) Unwrap() error { return u.err }

// queueEncoding is the persistent queue's: a format byte, then the records as they are in
// memory. legacy maps a request the exporter queued as pdata, before it queued messages (the
// first collector start after an upgrade), so that queue is sent, not dropped.
type queueEncoding struct {
	legacy func([]byte) (xexporterhelper.Request, error)
}

// queueFormat is the first byte of a stored request. A pdata request starts with a protobuf
// tag (0x0a or 0x0d), never with it.
const queueFormat byte = 1

func (queueEncoding) Marshal(_ context.Context, r xexporterhelper.Request) ([]byte, error) {
	q, ok := r.(*queued)
	if !ok {
		return nil, fmt.Errorf("store a %T in the MQTT exporter's persistent queue: not its request type", r)
	}
	return append([]byte{queueFormat}, q.buf...), nil
}

func (enc queueEncoding) Unmarshal(b []byte) (context.Context, xexporterhelper.Request, error) {
	if len(b) > 0 && b[0] != queueFormat && enc.legacy != nil {
		r, err := enc.legacy(b)
		if err != nil {
			return context.Background(), nil, fmt.Errorf("read a request of the MQTT exporter's persistent queue queued as pdata: %w", err)
		}
		return context.Background(), r, nil
	}
	if len(b) == 0 || b[0] != queueFormat {
		return context.Background(), nil, fmt.Errorf("read a request of the MQTT exporter's persistent queue: unknown format %v", b[:min(len(b), 1)])
	}
	q := &queued{buf: b[1:]}
	if err := q.records(func(int, []byte, []byte) { q.n++ }); err != nil {
		return context.Background(), nil, fmt.Errorf("read a request of the MQTT exporter's persistent queue: %w", err)
	}
	return context.Background(), q, nil
}

// legacyMetrics maps a metrics batch the exporter queued as pdata.
func (e *mqttExporter) legacyMetrics(b []byte) (xexporterhelper.Request, error) {
	_, md, err := pdatareq.UnmarshalMetrics(b)
	if errors.Is(err, pdatareq.ErrInvalidFormat) {
		md, err = (&pmetric.ProtoUnmarshaler{}).UnmarshalMetrics(b)
	}
	if err != nil {
		return nil, err
	}
	return e.build(md, time.Now()), nil
}

// legacyLogs maps a logs batch the exporter queued as pdata.
func (e *mqttExporter) legacyLogs(b []byte) (xexporterhelper.Request, error) {
	_, ld, err := pdatareq.UnmarshalLogs(b)
	if errors.Is(err, pdatareq.ErrInvalidFormat) {
		ld, err = (&plog.ProtoUnmarshaler{}).UnmarshalLogs(b)
	}
	if err != nil {
		return nil, err
	}
	return e.buildLogs(ld), nil
}

// recorder builds a request record by record.
type recorder struct {
	q    queued
	body []byte
}

func newRecorder(sizeHint int) *recorder {
	return &recorder{q: queued{buf: make([]byte, 0, sizeHint)}, body: make([]byte, 0, 256)}
}

// add appends one message's record.
func (r *recorder) add(kind byte, mask uint64, m encoding.BinaryAppender) {
	r.body = binary.AppendUvarint(append(r.body[:0], kind), mask)
	r.body, _ = m.AppendBinary(r.body) // the compact forms never fail
	r.q.buf = append(binary.AppendUvarint(r.q.buf, uint64(len(r.body))), r.body...)
	r.q.n++
}

// request returns the records in a buffer of their exact size: the queue holds it for as
// long as the outage lasts, and the spare capacity of a grown buffer would be memory the
// bytes sizer does not see.
func (r *recorder) request() *queued {
	return &queued{buf: bytes.Clone(r.q.buf), n: r.q.n}
}
