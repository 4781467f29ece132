package schema

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCPUPercent(t *testing.T) {
	tests := map[string]struct {
		cpu, wall, want float64
	}{
		"half a core":            {5, 10, 50},
		"two full cores":         {20, 10, 200},
		"idle":                   {0, 10, 0},
		"counters went back":     {-3, 10, 0},
		"no wall time":           {5, 0, 0},
		"negative wall time":     {5, -1, 0},
		"NaN CPU time":           {math.NaN(), 10, 0},
		"NaN wall time":          {5, math.NaN(), 0},
		"sub-second interval":    {0.025, 0.1, 25},
		"since start, 40 of 100": {40, 100, 40},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			assert.InDelta(t, tt.want, CPUPercent(tt.cpu, tt.wall), 1e-9)
		})
	}
}

func TestNamesAreUniqueAndWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range ResourceAttributes {
		assert.False(t, seen[a.Name], "resource attribute %s listed twice", a.Name)
		seen[a.Name] = true
		assert.Contains(t, []Type{String, Int, Double, Bool}, a.Type, a.Name)
	}
	seen = map[string]bool{}
	for _, m := range Metrics {
		assert.False(t, seen[m.Name], "metric %s listed twice", m.Name)
		seen[m.Name] = true
		assert.NotEmpty(t, m.Unit, m.Name)
		assert.Equal(t, m.Attr == "", len(m.Values) == 0, "%s: an attribute comes with its values", m.Name)
		assert.Equal(t, m.Attr2 == "", len(m.Values2) == 0, "%s: a second attribute comes with its values", m.Name)
		assert.False(t, m.Attr == "" && m.Attr2 != "", "%s: a second attribute only after a first", m.Name)
		assert.True(t, strings.HasPrefix(m.Name, "process.") || strings.HasPrefix(m.Name, "system.") || strings.HasPrefix(m.Name, "propeller."), m.Name)
	}
}
