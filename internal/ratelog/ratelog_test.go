package ratelog

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestEachReasonIsLoggedOncePerInterval(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	now := time.Unix(1000, 0)
	l := New(zap.New(core), time.Minute, "dropped").WithClock(func() time.Time { return now })

	l.Log(zapcore.WarnLevel, "a", 1, "dropped")
	l.Log(zapcore.WarnLevel, "a", 2, "dropped")
	l.Log(zapcore.WarnLevel, "b", 1, "dropped")
	now = now.Add(59 * time.Second)
	l.Log(zapcore.WarnLevel, "a", 1, "dropped")
	now = now.Add(time.Second)
	l.Log(zapcore.WarnLevel, "a", 1, "dropped")

	var got []string
	var counts []int64
	for _, e := range logs.All() {
		got = append(got, e.Level.String()+" "+e.ContextMap()["reason"].(string))
		if e.Level == zapcore.WarnLevel {
			counts = append(counts, e.ContextMap()["dropped_since_last_logged"].(int64))
		}
	}
	assert.Equal(t, []string{"warn a", "debug a", "warn b", "debug a", "warn a"}, got)
	assert.Equal(t, []int64{1, 1, 4}, counts, "the count since the last line, the events of that line included")
}

func TestAllowCountsEvents(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(zap.NewNop(), time.Second, "x").WithClock(func() time.Time { return now })
	show, n := l.Allow("r", 3)
	assert.True(t, show)
	assert.Equal(t, 3, n)
	show, n = l.Allow("r", 2)
	assert.False(t, show)
	assert.Equal(t, 2, n)
	now = now.Add(time.Second)
	show, n = l.Allow("r", 1)
	assert.True(t, show)
	assert.Equal(t, 3, n)
}
