// Package fleet reads the metrics Propeller's proplets publish on MQTT (task metrics and
// proplet metrics, from this project's exporter, the Rust proplet, or any other sender) and
// turns each message into pdata metrics with the names, units and resource attributes the
// proplet receiver writes (internal/schema), so one dashboard shows every task of a fleet
// whichever side measured it.
//
// Decode parses and validates one message, and repairs the Rust proplet's known mistakes
// when asked; Append writes a decoded message as one resource. Neither knows the Collector's
// wiring: the propeller_mqtt receiver subscribes, counts and hands the result on.
package fleet // import "github.com/otelcol-propeller/otelcol-propeller/internal/fleet"

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"

	jsoniter "github.com/json-iterator/go"
)

// Kind is what a message describes, told by its topic.
type Kind uint8

// Kinds of messages.
const (
	KindTask    Kind = iota // control/proplet/task_metrics
	KindProplet             // control/proplet/metrics
)

// String names the kind as the receiver's counters do.
func (k Kind) String() string {
	if k == KindProplet {
		return "proplet"
	}
	return "task"
}

// Source is who sent a message, as far as its timestamp tells: each sender writes it its own
// way, and nothing else in a message tells them apart.
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

// String names the source as the receiver's counters do.
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

// Reason names why a message was dropped, for counting.
type Reason string

// Reasons a message is dropped.
const (
	ReasonNotJSON     Reason = "not_json"               // not a JSON object
	ReasonWrongType   Reason = "wrong_type"             // a known field of the wrong JSON type
	ReasonMissingID   Reason = "missing_id"             // task_id (task messages) or proplet_id missing or empty
	ReasonIDTooLong   Reason = "id_too_long"            // an id longer than 36 characters, Propeller's limit
	ReasonIDNotUUID   Reason = "id_not_uuid"            // an id that is not a UUID
	ReasonTimestamp   Reason = "timestamp_out_of_range" // an RFC 3339 timestamp too far in the future or the past
	ReasonValue       Reason = "bad_value"              // a number out of range (overflow, negative)
	ReasonNoMetrics   Reason = "no_metrics"             // a valid message with no metric this bridge carries
	ReasonBadPayloads Reason = "too_large"              // a payload larger than MaxPayload
)

// Reasons lists every reason, for tests and documentation.
var Reasons = []Reason{ReasonNotJSON, ReasonWrongType, ReasonMissingID, ReasonIDTooLong, ReasonIDNotUUID,
	ReasonTimestamp, ReasonValue, ReasonNoMetrics, ReasonBadPayloads}

// MaxPayload bounds the size of a message: the largest real one is under 1 KiB.
const MaxPayload = 64 << 10

// MaxIDLength is Propeller's limit on task and proplet ids (VARCHAR(36) in its Postgres store).
const MaxIDLength = 36

// DropError is the error of a message that cannot be used: why, and what was wrong.
type DropError struct {
	Reason Reason
	Detail string
}

func (e *DropError) Error() string { return string(e.Reason) + ": " + e.Detail }

func drop(r Reason, format string, args ...any) error {
	return &DropError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason of an error Decode returned.
func ReasonOf(err error) Reason {
	var de *DropError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ReasonNotJSON
}

// Options say how messages are checked and repaired.
type Options struct {
	// Repair corrects the Rust proplet's messages: memory_bytes divided by 1024 (it multiplies
	// RSS in KiB by 1024 twice), and its memory_percent, always 0, dropped.
	Repair bool
	// MaxAge is how far in the past a message's timestamp may be: older messages are dropped.
	MaxAge time.Duration
	// MaxAhead is how far in the future a message's timestamp may be.
	MaxAhead time.Duration
}

// DefaultOptions repairs, and accepts timestamps from a week ago (a gateway's persistent
// session keeps messages across a long outage) to an hour ahead (clock skew of edge hosts).
func DefaultOptions() Options {
	return Options{Repair: true, MaxAge: 7 * 24 * time.Hour, MaxAhead: time.Hour}
}

// Field presence bits of a Message.
const (
	HasCPUPercent uint32 = 1 << iota
	HasMemoryBytes
	HasMemoryPercent
	HasDiskRead
	HasDiskWrite
	HasNetworkRx
	HasNetworkTx
	HasUptime
	HasThreads
	HasFDs
	HasCPUUser
	HasCPUSystem
	HasMachineCPU
	HasRSS
	HasCgroupUsage
	HasCgroupLimit
)

// Message is one decoded message. Fields not sent are zero and their bit in Has is clear.
type Message struct {
	Kind      Kind
	Source    Source
	Repaired  bool  // the Rust proplet's mistakes were corrected
	Time      int64 // Unix nanoseconds: the message's RFC 3339 timestamp, else the receive time
	TaskID    string
	PropletID string
	Namespace string // proplet messages
	Has       uint32

	// Task messages.
	CPUPercent    float64 // 100 = one core
	MemoryBytes   int64
	MemoryPercent float64
	DiskRead      int64
	DiskWrite     int64
	NetworkRx     int64
	NetworkTx     int64
	Uptime        float64 // seconds
	Threads       int64
	FDs           int64

	// Proplet messages.
	CPUUser     float64 // seconds
	CPUSystem   float64 // seconds
	MachineCPU  float64 // 0-100
	RSS         int64
	CgroupUsage int64
	CgroupLimit int64
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

// wireAggregated is read and not used (it is a window over the samples a backend already
// has), but named, so that it is stepped over without a string per key.
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
	jsoniter.RegisterTypeDecoderFunc("fleet.optNumber", decodeNumber)
	jsoniter.RegisterTypeDecoderFunc("fleet.stamp", decodeStamp)
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

// Decode parses one message of kind k received at now (Unix nanoseconds), checks it, and
// repairs it when opts say so. A message that cannot be used returns a *DropError.
func Decode(payload []byte, k Kind, now int64, opts Options, m *Message) error {
	*m = Message{Kind: k}
	if len(payload) > MaxPayload {
		return drop(ReasonBadPayloads, "%d bytes, more than %d", len(payload), MaxPayload)
	}
	var w wireMessage
	it := api.BorrowIterator(payload)
	defer api.ReturnIterator(it)
	if it.WhatIsNext() != jsoniter.ObjectValue {
		return drop(ReasonNotJSON, "not a JSON object")
	}
	it.ReadVal(&w)
	if it.Error != nil {
		// Told apart only when it happens, so a good message is scanned once.
		if !json.Valid(payload) {
			return drop(ReasonNotJSON, "not valid JSON")
		}
		return drop(ReasonWrongType, "%v", it.Error)
	}
	if k == KindTask {
		if err := checkID("task_id", w.TaskID); err != nil {
			return err
		}
	}
	if err := checkID("proplet_id", w.PropletID); err != nil {
		return err
	}
	m.TaskID, m.PropletID, m.Namespace = w.TaskID, w.PropletID, w.Namespace
	m.Source = w.Timestamp.source
	m.Time = now
	if w.Timestamp.ok {
		t := w.Timestamp.t
		if t < now-int64(opts.MaxAge) || t > now+int64(opts.MaxAhead) {
			return drop(ReasonTimestamp, "timestamp %s is outside [now-%s, now+%s]",
				time.Unix(0, t).UTC().Format(time.RFC3339Nano), opts.MaxAge, opts.MaxAhead)
		}
		m.Time = t
	}
	var err error
	if k == KindTask {
		err = m.task(&w.Metrics)
		if err == nil && opts.Repair && m.Source == SourceRustProplet {
			m.MemoryBytes /= 1024
			m.MemoryPercent = 0
			m.Has &^= HasMemoryPercent
			m.Repaired = true
		}
	} else {
		err = m.proplet(&w.CPU, &w.Memory)
	}
	if err != nil {
		return err
	}
	if m.Has == 0 {
		return drop(ReasonNoMetrics, "no metric this bridge carries")
	}
	return nil
}

func (m *Message) task(w *wireTaskMetrics) error {
	var err error
	m.CPUPercent = m.float(&err, "metrics.cpu_percent", w.CPUPercent, HasCPUPercent)
	m.MemoryBytes = m.int(&err, "metrics.memory_bytes", w.MemoryBytes, HasMemoryBytes)
	m.MemoryPercent = m.float(&err, "metrics.memory_percent", w.MemoryPercent, HasMemoryPercent)
	m.DiskRead = m.int(&err, "metrics.disk_read_bytes", w.DiskRead, HasDiskRead)
	m.DiskWrite = m.int(&err, "metrics.disk_write_bytes", w.DiskWrite, HasDiskWrite)
	m.NetworkRx = m.int(&err, "metrics.network_rx_bytes", w.NetworkRx, HasNetworkRx)
	m.NetworkTx = m.int(&err, "metrics.network_tx_bytes", w.NetworkTx, HasNetworkTx)
	m.Uptime = m.float(&err, "metrics.uptime_seconds", w.Uptime, HasUptime)
	m.Threads = m.int(&err, "metrics.thread_count", w.Threads, HasThreads)
	m.FDs = m.int(&err, "metrics.file_descriptor_count", w.FDs, HasFDs)
	return err
}

func (m *Message) proplet(c *wireCPU, mem *wireMemory) error {
	var err error
	m.CPUUser = m.float(&err, "cpu_metrics.user_seconds", c.User, HasCPUUser)
	m.CPUSystem = m.float(&err, "cpu_metrics.system_seconds", c.System, HasCPUSystem)
	m.MachineCPU = m.float(&err, "cpu_metrics.percent", c.Percent, HasMachineCPU)
	if m.Has&HasMachineCPU != 0 && m.MachineCPU > 100 {
		err = drop(ReasonValue, "cpu_metrics.percent: %g is more than 100", m.MachineCPU)
	}
	m.RSS = m.int(&err, "memory_metrics.rss_bytes", mem.RSS, HasRSS)
	m.CgroupUsage = m.int(&err, "memory_metrics.container_usage_bytes", mem.CgroupUsage, HasCgroupUsage)
	m.CgroupLimit = m.int(&err, "memory_metrics.container_limit_bytes", mem.CgroupLimit, HasCgroupLimit)
	return err
}

// float checks one measured quantity: finite and not negative. The first error is kept.
func (m *Message) float(err *error, key string, n optNumber, bit uint32) float64 {
	if !n.set {
		return 0
	}
	if n.bad || math.IsInf(n.v, 0) || math.IsNaN(n.v) || n.v < 0 {
		if *err == nil {
			if n.bad {
				*err = drop(ReasonValue, "%s: out of range", key)
			} else {
				*err = drop(ReasonValue, "%s: %g is negative", key, n.v)
			}
		}
		return 0
	}
	m.Has |= bit
	return n.v
}

// maxInt is the largest float64 that converts to an int64 without overflow.
const maxInt = float64(1<<63 - 1024)

// int checks one counted quantity; a fraction is truncated, as the manager truncates.
func (m *Message) int(err *error, key string, n optNumber, bit uint32) int64 {
	v := m.float(err, key, n, bit)
	if v > maxInt {
		m.Has &^= bit
		if *err == nil {
			*err = drop(ReasonValue, "%s: %g does not fit a 64-bit integer", key, v)
		}
		return 0
	}
	return int64(v)
}

// checkID checks a Propeller id: present, at most 36 characters, a UUID (Propeller's manager
// makes every task and proplet id one).
func checkID(key, id string) error {
	switch {
	case id == "":
		return drop(ReasonMissingID, "%s is missing or empty", key)
	case len(id) > MaxIDLength:
		return drop(ReasonIDTooLong, "%s is %d bytes long, more than %d", key, len(id), MaxIDLength)
	case !isUUID(id):
		return drop(ReasonIDNotUUID, "%s %q is not a UUID", key, id)
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
