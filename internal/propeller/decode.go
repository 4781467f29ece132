package propeller

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	jsoniter "github.com/json-iterator/go"

	"github.com/otelcol-propeller/otelcol-propeller/internal/schema"
)

// Source is who sent a metrics message, as far as its timestamp tells: each sender writes it
// its own way, and nothing else in a message tells them apart.
type Source uint8

// Sources of messages.
const (
	// SourceUnknown: no timestamp, or one of a shape no known sender writes. Never repaired.
	SourceUnknown Source = iota
	// SourceRFC3339: an RFC 3339 string, as this project's exporter and Propeller's Go
	// proplets write it.
	SourceRFC3339
	// SourceRustProplet: {"secs_since_epoch":..,"nanos_since_epoch":..}, serde's form of
	// Rust's SystemTime, which only the Rust proplet sends.
	SourceRustProplet
	// SourceEmbedded: a number, as the embedded proplet sends.
	SourceEmbedded
)

// Sources lists every source, for telemetry attributes.
var Sources = []Source{SourceUnknown, SourceRFC3339, SourceRustProplet, SourceEmbedded}

// String names the source as the fleet gateway's counters do.
func (s Source) String() string {
	switch s {
	case SourceRFC3339:
		return "rfc3339"
	case SourceRustProplet:
		return "rust_proplet"
	case SourceEmbedded:
		return "embedded"
	}
	return "unknown"
}

// MaxPayload bounds the size of a metrics message: the largest real one is under 1 KiB.
const MaxPayload = 64 << 10

// MaxIDLength is Propeller's limit on ids (VARCHAR(36) in its Postgres store): task and
// proplet ids in a message, domain and channel ids in a topic.
const MaxIDLength = 36

// DecodeOptions say how received messages are checked and repaired.
type DecodeOptions struct {
	// Repair corrects the Rust proplet's messages: memory_bytes divided by 1024 (it multiplies
	// RSS in KiB by 1024 twice), and its memory_percent, always 0, dropped.
	Repair bool
	// MaxAge is how far in the past a message's timestamp may be: older messages are dropped.
	MaxAge time.Duration
	// MaxAhead is how far in the future a message's timestamp may be.
	MaxAhead time.Duration
}

// DefaultDecodeOptions repairs, and accepts timestamps from a week ago (a gateway's
// persistent session keeps messages across a long outage) to an hour ahead (clock skew of
// edge hosts).
func DefaultDecodeOptions() DecodeOptions {
	return DecodeOptions{Repair: true, MaxAge: 7 * 24 * time.Hour, MaxAhead: time.Hour}
}

// Received is one decoded metrics message: the same types the encoder writes, the field flags
// (Has) set for each field the sender carried, and what the topic and the timestamp said.
type Received struct {
	Topic    Topic // where it came from: domain, channel, kind
	Source   Source
	Repaired bool  // the Rust proplet's mistakes were corrected
	Time     int64 // Unix nanoseconds: the message's RFC 3339 timestamp, else the receive time
	// Task is a task message (Topic.Kind KindTask); its Aggregated is not read (a window over
	// samples a backend already has).
	Task TaskMessage
	// Proplet is a proplet message (Topic.Kind KindProplet).
	Proplet PropletMessage
}

// The wire forms. optNumber records whether a field was present, so a sender that does not
// measure something (the Rust proplet has no network counters) is not reported as 0.
type optNumber struct {
	v   float64
	set bool
	bad bool // overflowed float64
}

type stamp struct {
	source Source
	t      int64
	ok     bool // t holds an RFC 3339 time
}

type wireTaskMetrics struct {
	CPUPercent    optNumber `json:"cpu_percent"`
	MemoryBytes   optNumber `json:"memory_bytes"`
	MemoryPercent optNumber `json:"memory_percent"`
	DiskRead      optNumber `json:"disk_read_bytes"`
	DiskWrite     optNumber `json:"disk_write_bytes"`
	NetworkRx     optNumber `json:"network_rx_bytes"`
	NetworkTx     optNumber `json:"network_tx_bytes"`
	Uptime        optNumber `json:"uptime_seconds"`
	Threads       optNumber `json:"thread_count"`
	FDs           optNumber `json:"file_descriptor_count"`
	// At most ten fields: jsoniter matches up to ten by hash, more by a string per key.
}

// wireAggregated is read and not used, but named, so that it is stepped over without a
// string per key.
type wireAggregated struct {
	AvgCPU      optNumber `json:"avg_cpu_usage"`
	MaxCPU      optNumber `json:"max_cpu_usage"`
	AvgMemory   optNumber `json:"avg_memory_usage"`
	MaxMemory   optNumber `json:"max_memory_usage"`
	DiskRead    optNumber `json:"total_disk_read"`
	DiskWrite   optNumber `json:"total_disk_write"`
	NetworkRx   optNumber `json:"total_network_rx"`
	NetworkTx   optNumber `json:"total_network_tx"`
	SampleCount optNumber `json:"sample_count"`
}

type wireCPU struct {
	User    optNumber `json:"user_seconds"`
	System  optNumber `json:"system_seconds"`
	Percent optNumber `json:"percent"`
}

type wireMemory struct {
	RSS         optNumber `json:"rss_bytes"`
	CgroupUsage optNumber `json:"container_usage_bytes"`
	CgroupLimit optNumber `json:"container_limit_bytes"`
}

type wireMessage struct {
	TaskID    string          `json:"task_id"`
	PropletID string          `json:"proplet_id"`
	Namespace string          `json:"namespace"`
	Timestamp stamp           `json:"timestamp"`
	Metrics   wireTaskMetrics `json:"metrics"`
	Aggr      wireAggregated  `json:"aggregated"`
	CPU       wireCPU         `json:"cpu_metrics"`
	Memory    wireMemory      `json:"memory_metrics"`
}

// api decodes with the field names exactly as Propeller writes them.
var api = jsoniter.Config{CaseSensitive: true}.Froze()

// jsoniter keys decoders by the type's name; these two types are this package's own.
func init() {
	jsoniter.RegisterTypeDecoderFunc("propeller.optNumber", decodeNumber)
	jsoniter.RegisterTypeDecoderFunc("propeller.stamp", decodeStamp)
}

func decodeNumber(ptr unsafe.Pointer, it *jsoniter.Iterator) {
	n := (*optNumber)(ptr)
	switch it.WhatIsNext() {
	case jsoniter.NilValue:
		it.Skip() // null: not measured, as the manager's "aggregated": null
		*n = optNumber{}
	case jsoniter.NumberValue:
		n.v = it.ReadFloat64()
		n.set = true
		if it.Error != nil && errors.Is(it.Error, strconv.ErrRange) {
			it.Error = nil
			n.bad = true
		}
	default:
		it.ReportError("decode number", "not a number")
	}
}

func decodeStamp(ptr unsafe.Pointer, it *jsoniter.Iterator) {
	s := (*stamp)(ptr)
	*s = stamp{}
	switch it.WhatIsNext() {
	case jsoniter.StringValue:
		// The manager's rule: an RFC 3339 time with nanoseconds, else its own receive time.
		s.source = SourceRFC3339
		if t, err := time.Parse(time.RFC3339Nano, it.ReadString()); err == nil {
			s.t, s.ok = t.UnixNano(), true
		}
	case jsoniter.ObjectValue:
		var secs, nanos bool
		it.ReadObjectCB(func(it *jsoniter.Iterator, key string) bool {
			switch key {
			case "secs_since_epoch":
				secs = it.WhatIsNext() == jsoniter.NumberValue
			case "nanos_since_epoch":
				nanos = it.WhatIsNext() == jsoniter.NumberValue
			}
			it.Skip()
			return true
		})
		if secs && nanos {
			s.source = SourceRustProplet
		}
	case jsoniter.NumberValue:
		s.source = SourceEmbedded
		it.Skip()
	default:
		// Read as the manager reads it: not a time, so the receive time; the source unknown.
		it.Skip()
	}
}

// Decode parses one metrics message received on topic t at now (Unix nanoseconds), checks
// it (the topic's ids, the message's ids, its timestamp, every value against its physical
// bound), and repairs it when opts say so. A message that cannot be used returns a
// *DropError.
func Decode(payload []byte, t Topic, now int64, opts DecodeOptions, m *Received) error {
	*m = Received{Topic: t}
	if err := t.Check(); err != nil {
		return err
	}
	if len(payload) > MaxPayload {
		return drop(DropTooLarge, "%d bytes, more than %d", len(payload), MaxPayload)
	}
	var w wireMessage
	it := api.BorrowIterator(payload)
	defer api.ReturnIterator(it)
	if it.WhatIsNext() != jsoniter.ObjectValue {
		return drop(DropNotJSON, "not a JSON object")
	}
	it.ReadVal(&w)
	if it.Error != nil {
		// Told apart only when it happens, so a good message is scanned once.
		if !json.Valid(payload) {
			return drop(DropNotJSON, "not valid JSON")
		}
		return drop(DropWrongType, "%v", it.Error)
	}
	if t.Kind == schema.KindTask {
		if err := checkID("task_id", w.TaskID); err != nil {
			return err
		}
	}
	if err := checkID("proplet_id", w.PropletID); err != nil {
		return err
	}
	m.Source = w.Timestamp.source
	m.Time = now
	if w.Timestamp.ok {
		ts := w.Timestamp.t
		if ts < now-int64(opts.MaxAge) || ts > now+int64(opts.MaxAhead) {
			return drop(DropTimestamp, "timestamp %s is outside [now-%s, now+%s]",
				time.Unix(0, ts).UTC().Format(time.RFC3339Nano), opts.MaxAge, opts.MaxAhead)
		}
		m.Time = ts
	}
	at := time.Unix(0, m.Time).UTC()
	var c check
	if t.Kind == schema.KindTask {
		m.Task = TaskMessage{TaskID: w.TaskID, PropletID: w.PropletID}
		mt := &m.Task.Metrics
		mt.Timestamp = at
		c.task(mt, &w.Metrics)
		if c.err == nil && opts.Repair && m.Source == SourceRustProplet {
			mt.MemoryBytes /= 1024
			mt.MemoryPercent = 0
			mt.Has &^= HasMemoryPercent
			m.Repaired = true
		}
		if c.err == nil && mt.Has == 0 {
			return drop(DropNoMetrics, "no metric this bridge carries")
		}
	} else {
		m.Proplet = PropletMessage{PropletID: w.PropletID, Namespace: w.Namespace, Timestamp: at}
		c.proplet(&m.Proplet, &w.CPU, &w.Memory)
		if c.err == nil && m.Proplet.Has == 0 {
			return drop(DropNoMetrics, "no metric this bridge carries")
		}
	}
	return c.err
}

// checkID checks a Propeller id in a message: present, at most MaxIDLength characters, a
// UUID (Propeller's manager makes every task and proplet id one).
func checkID(key, id string) error {
	switch {
	case id == "":
		return drop(DropMissingID, "%s is missing or empty", key)
	case len(id) > MaxIDLength:
		return drop(DropIDTooLong, "%s is %d bytes long, more than %d", key, len(id), MaxIDLength)
	case !isUUID(id):
		return drop(DropIDNotUUID, "%s %q is not a UUID", key, id)
	}
	return nil
}

// isUUID reports whether s is a UUID in its text form: 8-4-4-4-12 hexadecimal digits, any case.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// DropReason names why a received message was dropped, for counting.
type DropReason string

// Reasons a received message is dropped.
const (
	DropNotJSON   DropReason = "not_json"               // not a JSON object
	DropWrongType DropReason = "wrong_type"             // a known field of the wrong JSON type
	DropMissingID DropReason = "missing_id"             // task_id (task messages) or proplet_id missing or empty
	DropIDTooLong DropReason = "id_too_long"            // an id (in the message or the topic) longer than MaxIDLength
	DropIDNotUUID DropReason = "id_not_uuid"            // a task or proplet id that is not a UUID
	DropTopicID   DropReason = "bad_topic_id"           // a domain or channel id in the topic that CheckValue refuses
	DropTimestamp DropReason = "timestamp_out_of_range" // an RFC 3339 timestamp too far in the future or the past
	DropValue     DropReason = "bad_value"              // a number out of its physical bounds (Bounds), negative or overflowing
	DropNoMetrics DropReason = "no_metrics"             // a valid message with no metric this bridge carries
	DropTooLarge  DropReason = "too_large"              // a payload larger than MaxPayload
)

// DropReasons lists every reason, for tests, telemetry and documentation.
var DropReasons = []DropReason{DropNotJSON, DropWrongType, DropMissingID, DropIDTooLong, DropIDNotUUID,
	DropTopicID, DropTimestamp, DropValue, DropNoMetrics, DropTooLarge}

// DropError is the error of a received message that cannot be used: why, and what was wrong.
type DropError struct {
	Reason DropReason
	Detail string
}

func (e *DropError) Error() string { return string(e.Reason) + ": " + e.Detail }

func drop(r DropReason, format string, args ...any) error {
	return &DropError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// DropReasonOf returns the reason of an error Decode returned.
func DropReasonOf(err error) DropReason {
	var de *DropError
	if errors.As(err, &de) {
		return de.Reason
	}
	return DropNotJSON
}
