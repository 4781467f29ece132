package propeller

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The compact form of a message is what a queue holds in place of the message's JSON: the
// same fields in binary (varints, 8-byte floats, length-prefixed strings), about a third of
// the JSON's size. Decoding it and encoding the JSON gives the same bytes every time, so a
// message kept in a queue and sent again is the message first built. The form has no version
// of its own: whoever stores it keeps a kind tag beside it and changes the tag when the form
// changes.

// errShort is a compact message that ends before its last field.
var errShort = errors.New("compact message truncated")

// AppendBinary appends the message's compact form to b. It never fails; the error is
// encoding.BinaryAppender's.
func (m *TaskMessage) AppendBinary(b []byte) ([]byte, error) {
	b = appendStr(b, m.TaskID)
	b = appendStr(b, m.PropletID)
	t := &m.Metrics
	b = binary.AppendUvarint(b, uint64(t.Has))
	b = appendFloat(b, t.CPUPercent)
	b = binary.AppendUvarint(b, t.MemoryBytes)
	b = appendFloat(b, t.MemoryPercent)
	b = appendUvarints(b, t.DiskReadBytes, t.DiskWriteBytes, t.NetworkRxBytes, t.NetworkTxBytes, t.UptimeSeconds)
	b = binary.AppendVarint(b, t.ThreadCount)
	b = binary.AppendVarint(b, t.FileDescriptorCount)
	b = appendCompactTime(b, t.Timestamp)
	a := m.Aggregated
	if a == nil {
		return append(b, 0), nil
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(a.Has))
	b = appendFloat(b, a.AvgCPUUsage)
	b = appendFloat(b, a.MaxCPUUsage)
	b = appendFloat(b, a.AvgMemoryUsage)
	b = appendUvarints(b, a.MaxMemoryUsage, a.TotalDiskRead, a.TotalDiskWrite, a.TotalNetworkRx, a.TotalNetworkTx, uint64(max(a.SampleCount, 0)))
	return b, nil
}

// UnmarshalBinary reads a compact form written by AppendBinary; data must hold exactly one.
func (m *TaskMessage) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	*m = TaskMessage{TaskID: r.str(), PropletID: r.str()}
	t := &m.Metrics
	t.Has = Has(r.uvarint())
	t.CPUPercent = r.float()
	t.MemoryBytes = r.uvarint()
	t.MemoryPercent = r.float()
	r.uvarints(&t.DiskReadBytes, &t.DiskWriteBytes, &t.NetworkRxBytes, &t.NetworkTxBytes, &t.UptimeSeconds)
	t.ThreadCount = r.varint()
	t.FileDescriptorCount = r.varint()
	t.Timestamp = r.time()
	if r.byte() == 1 {
		a := &Aggregated{}
		a.Has = Has(r.uvarint())
		a.AvgCPUUsage, a.MaxCPUUsage, a.AvgMemoryUsage = r.float(), r.float(), r.float()
		var n uint64
		r.uvarints(&a.MaxMemoryUsage, &a.TotalDiskRead, &a.TotalDiskWrite, &a.TotalNetworkRx, &a.TotalNetworkTx, &n)
		a.SampleCount = int(min(n, math.MaxInt32))
		m.Aggregated = a
	}
	return r.done("task message")
}

// AppendBinary appends the message's compact form to b. It never fails.
func (m *PropletMessage) AppendBinary(b []byte) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(m.Has))
	b = appendStr(b, m.PropletID)
	b = appendStr(b, m.Namespace)
	b = appendCompactTime(b, m.Timestamp)
	b = appendFloat(b, m.UserSeconds)
	b = appendFloat(b, m.SystemSeconds)
	b = appendFloat(b, m.Percent)
	return appendUvarints(b, m.RSSBytes, m.ContainerUsageBytes, m.ContainerLimitBytes), nil
}

// UnmarshalBinary reads a compact form written by AppendBinary; data must hold exactly one.
func (m *PropletMessage) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	*m = PropletMessage{Has: Has(r.uvarint()), PropletID: r.str(), Namespace: r.str(), Timestamp: r.time()}
	m.UserSeconds, m.SystemSeconds, m.Percent = r.float(), r.float(), r.float()
	r.uvarints(&m.RSSBytes, &m.ContainerUsageBytes, &m.ContainerLimitBytes)
	return r.done("proplet message")
}

// Flags of a task usage message's booleans in its compact form.
const (
	usageNetwork byte = 1 << iota
	usageExitCode
	usageExitSignal
	usageOOM
	usageExact
)

// AppendBinary appends the message's compact form to b. It never fails.
func (m *TaskUsage) AppendBinary(b []byte) ([]byte, error) {
	b = appendStr(b, m.TaskID)
	b = appendStr(b, m.PropletID)
	b = appendCompactTime(b, m.StartedAt)
	b = appendCompactTime(b, m.EndedAt)
	b = appendFloat(b, m.DurationSeconds)
	b = appendFloat(b, m.CPUUserSeconds)
	b = appendFloat(b, m.CPUSystemSeconds)
	b = appendUvarints(b, m.PeakMemoryBytes, m.DiskReadBytes, m.DiskWriteBytes, m.NetworkRxBytes, m.NetworkTxBytes)
	var flags byte
	for _, f := range [...]struct {
		on  bool
		bit byte
	}{{m.HasNetwork, usageNetwork}, {m.HasExitCode, usageExitCode}, {m.HasExitSignal, usageExitSignal}, {m.OOMKilled, usageOOM}, {m.Exact, usageExact}} {
		if f.on {
			flags |= f.bit
		}
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, m.ExitCode)
	b = binary.AppendVarint(b, m.ExitSignal)
	b = appendCompactTime(b, m.Timestamp)
	// The delays, after the fields of the form before them: a flag byte, then the value of
	// each delay set.
	ds := m.delays()
	var set byte
	for _, d := range ds {
		if *d.has {
			set |= d.bit
		}
	}
	b = append(b, set)
	for _, d := range ds {
		if *d.has {
			b = appendFloat(b, *d.seconds)
		}
	}
	return b, nil
}

// UnmarshalBinary reads a compact form written by AppendBinary; data must hold exactly one.
func (m *TaskUsage) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	m.unmarshal(&r)
	set := r.byte()
	for _, d := range m.delays() {
		if set&d.bit != 0 {
			*d.has, *d.seconds = true, r.float()
		}
	}
	if set&^0xf != 0 && r.err == nil {
		return fmt.Errorf("read task usage message: unknown delay flags %#x", set)
	}
	return r.done("task usage message")
}

// UnmarshalBinaryWithoutDelays reads the compact form of a task usage message written before
// the delays were added (a persistent queue's records of an earlier version): the delays are
// absent.
func (m *TaskUsage) UnmarshalBinaryWithoutDelays(data []byte) error {
	r := reader{b: data}
	m.unmarshal(&r)
	return r.done("task usage message")
}

// unmarshal reads the fields the compact forms with and without delays share.
func (m *TaskUsage) unmarshal(r *reader) {
	*m = TaskUsage{TaskID: r.str(), PropletID: r.str(), StartedAt: r.time(), EndedAt: r.time()}
	m.DurationSeconds, m.CPUUserSeconds, m.CPUSystemSeconds = r.float(), r.float(), r.float()
	r.uvarints(&m.PeakMemoryBytes, &m.DiskReadBytes, &m.DiskWriteBytes, &m.NetworkRxBytes, &m.NetworkTxBytes)
	flags := r.byte()
	m.HasNetwork, m.HasExitCode, m.HasExitSignal = flags&usageNetwork != 0, flags&usageExitCode != 0, flags&usageExitSignal != 0
	m.OOMKilled, m.Exact = flags&usageOOM != 0, flags&usageExact != 0
	m.ExitCode, m.ExitSignal = r.varint(), r.varint()
	m.Timestamp = r.time()
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

func appendUvarints(b []byte, vs ...uint64) []byte {
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// appendCompactTime keeps the instant, not the location: the JSON writes every time in UTC.
func appendCompactTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

// reader reads a compact form; the first field that does not fit sets err, and every later
// read returns zero.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShort
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarints(dst ...*uint64) {
	for _, d := range dst {
		*d = r.uvarint()
	}
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) float() float64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) time() time.Time {
	s, ns := r.varint(), r.uvarint()
	if ns >= 1e9 {
		r.fail()
		return time.Time{}
	}
	return time.Unix(s, int64(ns)).UTC()
}

// done reports a truncated form, or bytes left over after the last field.
func (r *reader) done(what string) error {
	switch {
	case r.err != nil:
		return fmt.Errorf("read %s: %w", what, r.err)
	case len(r.b) != 0:
		return fmt.Errorf("read %s: %d bytes after its last field", what, len(r.b))
	}
	return nil
}
