package propeller

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleAlert() TaskAlert {
	return TaskAlert{
		TaskID: "550e8400-e29b-41d4-a716-446655440001", PropletID: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		Kind: AlertMemoryHigh, Value: 60397977, Limit: 67108864,
		HasSecondsToLimit: true, SecondsToLimit: 0.8, Timestamp: ts,
	}
}

func TestTaskAlertGolden(t *testing.T) {
	m := sampleAlert()
	assert.Equal(t, `{"task_id":"550e8400-e29b-41d4-a716-446655440001","proplet_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7",`+
		`"kind":"memory_high","value":60397977,"limit":67108864,"seconds_to_limit":0.8,"timestamp":"2025-01-15T10:35:22.123456789Z"}`,
		string(m.AppendJSON(nil)))

	m.Kind, m.HasSecondsToLimit = AlertMemoryRecovered, false
	m.Timestamp = m.Timestamp.In(time.FixedZone("CET", 3600))
	assert.Equal(t, `{"task_id":"550e8400-e29b-41d4-a716-446655440001","proplet_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7",`+
		`"kind":"memory_recovered","value":60397977,"limit":67108864,"timestamp":"2025-01-15T10:35:22.123456789Z"}`,
		string(m.AppendJSON(nil)), "seconds_to_limit left out when unknown; the time in UTC")
}

// alertJSON is the message as a fleet reader decodes it.
type alertJSON struct {
	TaskID         string   `json:"task_id"`
	PropletID      string   `json:"proplet_id"`
	Kind           string   `json:"kind"`
	Value          uint64   `json:"value"`
	Limit          uint64   `json:"limit"`
	SecondsToLimit *float64 `json:"seconds_to_limit"`
	Timestamp      string   `json:"timestamp"`
}

// TestTaskAlertRoundTrip: the JSON a reader decodes is the message encoded, through the compact
// form the exporter's queue keeps, for values at their extremes too.
func TestTaskAlertRoundTrip(t *testing.T) {
	for _, m := range []TaskAlert{
		sampleAlert(),
		{TaskID: "t", PropletID: "p", Kind: AlertMemoryRecovered, Value: math.MaxUint64, Limit: 1, Timestamp: ts},
		{TaskID: "t", PropletID: "p", Kind: AlertMemoryHigh, HasSecondsToLimit: true, SecondsToLimit: 0, Timestamp: ts},
		{TaskID: "t", PropletID: "p", Kind: AlertMemoryHigh, HasSecondsToLimit: true, SecondsToLimit: 1e-7, Timestamp: ts},
	} {
		b, err := m.AppendBinary(nil)
		require.NoError(t, err)
		var back TaskAlert
		require.NoError(t, back.UnmarshalBinary(b))
		assert.Equal(t, m, back)

		var got alertJSON
		require.NoError(t, json.Unmarshal(back.AppendJSON(nil), &got))
		assert.Equal(t, m.TaskID, got.TaskID)
		assert.Equal(t, m.PropletID, got.PropletID)
		assert.Equal(t, m.Kind, got.Kind)
		assert.Equal(t, m.Value, got.Value)
		assert.Equal(t, m.Limit, got.Limit)
		if m.HasSecondsToLimit {
			require.NotNil(t, got.SecondsToLimit)
			assert.Equal(t, m.SecondsToLimit, *got.SecondsToLimit)
		} else {
			assert.Nil(t, got.SecondsToLimit)
		}
		at, err := time.Parse(time.RFC3339Nano, got.Timestamp)
		require.NoError(t, err)
		assert.True(t, m.Timestamp.Equal(at))
	}
}

func FuzzTaskAlertIsValidJSON(f *testing.F) {
	f.Add("550e8400-e29b-41d4-a716-446655440001", "p", AlertMemoryHigh, uint64(1), 0.8, true)
	f.Add("\"\\\x00\xff", "\u2028", "", uint64(math.MaxUint64), math.Inf(1), true)
	f.Add("t", "p", AlertMemoryRecovered, uint64(0), math.NaN(), false)
	f.Fuzz(func(t *testing.T, id, proplet, kind string, value uint64, eta float64, hasETA bool) {
		m := TaskAlert{TaskID: id, PropletID: proplet, Kind: kind, Value: value, Limit: value / 2, HasSecondsToLimit: hasETA, SecondsToLimit: eta, Timestamp: ts}
		var v map[string]any
		if err := json.Unmarshal(m.AppendJSON(nil), &v); err != nil {
			t.Fatalf("invalid JSON for %+v: %v", m, err)
		}
		_, has := v["seconds_to_limit"]
		if want := hasETA && !math.IsNaN(eta) && !math.IsInf(eta, 0); has != want {
			t.Fatalf("seconds_to_limit present %v, want %v for %v", has, want, eta)
		}
		b, _ := m.AppendBinary(nil)
		var back TaskAlert
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if string(back.AppendJSON(nil)) != string(m.AppendJSON(nil)) {
			t.Fatalf("the compact form changed the JSON of %+v", m)
		}
	})
}

func BenchmarkEncodeTaskAlert(b *testing.B) {
	m := sampleAlert()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}
