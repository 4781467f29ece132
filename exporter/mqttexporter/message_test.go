package mqttexporter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestTaskStateIsDroppedWhenTheTaskStopsReporting(t *testing.T) {
	m := newMapper(createDefaultConfig().(*Config))
	p := taskProfile{historySize: 100, retain: true, export: true, interval: 10 * time.Second}
	now := time.Now()
	for i, id := range []string{"a", "b"} {
		s := &sample{ts: pcommon.NewTimestampFromTime(now.Add(time.Duration(i) * time.Second)), hasRSS: true, rss: 1}
		m.taskMessage(id, "p", p, s, now)
	}
	assert.Len(t, m.tasks, 2)

	// "a" keeps reporting; "b" falls silent for longer than three intervals (at least a minute).
	later := now.Add(2 * time.Minute)
	m.taskMessage("a", "p", p, &sample{ts: pcommon.NewTimestampFromTime(later), hasRSS: true, rss: 1}, later)
	m.sweep(later)
	assert.Contains(t, m.tasks, "a")
	assert.NotContains(t, m.tasks, "b")
}
