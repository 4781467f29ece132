package propeller

import (
	"time"
)

// Kinds of task alert.
const (
	// AlertMemoryHigh: the task's memory passed its warning share of its limit, or is still
	// above it (a reminder, or its time to the limit halved).
	AlertMemoryHigh = "memory_high"
	// AlertMemoryRecovered: it fell back below the share, or the warning was turned off.
	AlertMemoryRecovered = "memory_recovered"
)

// TaskAlert is the task alert message, published on the task_alerts topics: the early warning
// that a task nears its memory limit, where the kernel's OOM killer would end it, and the all
// clear. The fleet side keys an alert by task_id and kind.
type TaskAlert struct {
	TaskID    string
	PropletID string
	Kind      string // AlertMemoryHigh or AlertMemoryRecovered
	Value     uint64 // bytes of memory the task uses: its RSS, or its cgroup's usage
	Limit     uint64 // bytes: the limit the warning measures it against
	// HasSecondsToLimit: the usage is growing, and SecondsToLimit says when it reaches Limit
	// at its rate over the last samples; without it the key is left out.
	HasSecondsToLimit bool
	SecondsToLimit    float64
	Timestamp         time.Time // when the sample that raised the alert was taken
}

// AppendJSON appends the message's JSON encoding to b, keys in a fixed order. seconds_to_limit
// is left out when it is not known, or not a finite number.
func (m *TaskAlert) AppendJSON(b []byte) []byte {
	o := beginObject(b)
	o.str("task_id", m.TaskID)
	o.str("proplet_id", m.PropletID)
	o.str("kind", m.Kind)
	o.uint("value", m.Value)
	o.uint("limit", m.Limit)
	if m.HasSecondsToLimit {
		o.float("seconds_to_limit", m.SecondsToLimit)
	}
	o.time("timestamp", m.Timestamp)
	return o.end()
}

// AppendBinary appends the message's compact form to b. It never fails.
func (m *TaskAlert) AppendBinary(b []byte) ([]byte, error) {
	b = appendStr(b, m.TaskID)
	b = appendStr(b, m.PropletID)
	b = appendStr(b, m.Kind)
	b = appendUvarints(b, m.Value, m.Limit)
	if m.HasSecondsToLimit {
		b = appendFloat(append(b, 1), m.SecondsToLimit)
	} else {
		b = append(b, 0)
	}
	return appendCompactTime(b, m.Timestamp), nil
}

// UnmarshalBinary reads a compact form written by AppendBinary; data must hold exactly one.
func (m *TaskAlert) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	*m = TaskAlert{TaskID: r.str(), PropletID: r.str(), Kind: r.str()}
	r.uvarints(&m.Value, &m.Limit)
	if r.byte() == 1 {
		m.HasSecondsToLimit, m.SecondsToLimit = true, r.float()
	}
	m.Timestamp = r.time()
	return r.done("task alert message")
}
