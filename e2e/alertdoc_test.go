package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

// TestTaskAlertDocExample: the task alert message the mqtt exporter's README shows is the one
// the exporter writes for its values, byte for byte.
func TestTaskAlertDocExample(t *testing.T) {
	b, err := os.ReadFile("../exporter/mqttexporter/README.md")
	require.NoError(t, err)
	var example string
	for _, m := range jsonBlock.FindAllStringSubmatch(string(b), -1) {
		if strings.Contains(m[1], `"kind":"memory_`) {
			example = strings.TrimSpace(m[1])
		}
	}
	require.NotEmpty(t, example, "the README shows a task alert message")

	var doc struct {
		TaskID         string   `json:"task_id"`
		PropletID      string   `json:"proplet_id"`
		Kind           string   `json:"kind"`
		Value          uint64   `json:"value"`
		Limit          uint64   `json:"limit"`
		SecondsToLimit *float64 `json:"seconds_to_limit"`
		Timestamp      string   `json:"timestamp"`
	}
	require.NoError(t, json.Unmarshal([]byte(example), &doc))
	at, err := time.Parse(time.RFC3339Nano, doc.Timestamp)
	require.NoError(t, err)
	m := propeller.TaskAlert{TaskID: doc.TaskID, PropletID: doc.PropletID, Kind: doc.Kind, Value: doc.Value, Limit: doc.Limit, Timestamp: at}
	if doc.SecondsToLimit != nil {
		m.HasSecondsToLimit, m.SecondsToLimit = true, *doc.SecondsToLimit
	}
	assert.Contains(t, []string{propeller.AlertMemoryHigh, propeller.AlertMemoryRecovered}, doc.Kind)
	assert.Equal(t, example, string(m.AppendJSON(nil)), "the exporter writes these values so")
}
