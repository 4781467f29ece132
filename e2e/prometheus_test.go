//go:build linux

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseExposition reads the Prometheus text format the exporter serves: comments skipped,
// label values unescaped (\\, \", \n), a timestamp after the value ignored.
func parseExposition(t *testing.T, body string) []sample {
	t.Helper()
	var out []sample
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		s := sample{labels: map[string]string{}}
		i := strings.IndexAny(line, "{ ")
		require.Positive(t, i, "line %q", line)
		s.name, line = line[:i], line[i:]
		if line[0] == '{' {
			line = line[1:]
			for line[0] != '}' {
				eq := strings.IndexByte(line, '=')
				require.Positive(t, eq, "labels %q", line)
				key := line[:eq]
				require.Equal(t, byte('"'), line[eq+1], "labels %q", line)
				line = line[eq+2:]
				var v strings.Builder
				for line[0] != '"' {
					if line[0] == '\\' {
						line = line[1:]
						if line[0] == 'n' {
							v.WriteByte('\n')
							line = line[1:]
							continue
						}
					}
					v.WriteByte(line[0])
					line = line[1:]
				}
				s.labels[key] = v.String()
				line = strings.TrimPrefix(line[1:], ",")
			}
			line = line[1:]
		}
		fields := strings.Fields(line)
		require.NotEmpty(t, fields, "no value")
		v, err := strconv.ParseFloat(fields[0], 64)
		require.NoError(t, err)
		s.value = v
		out = append(out, s)
	}
	return out
}

func scrape(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// documentedLabels is the prometheus exporter's resource_constant_labels block of
// examples/agent.yaml, the configuration docs/proplet-host.md documents, as flow YAML for a test's
// configuration.
func documentedLabels(t *testing.T) string {
	t.Helper()
	c, err := confmaptest.LoadConf("../examples/agent.yaml")
	require.NoError(t, err)
	included, ok := c.Get("exporters::prometheus::resource_constant_labels::included").([]any)
	require.True(t, ok, "examples/agent.yaml: exporters.prometheus.resource_constant_labels.included is not a list")
	names := make([]string, len(included))
	for i, v := range included {
		names[i] = fmt.Sprint(v)
	}
	return "resource_constant_labels: { included: [" + strings.Join(names, ", ") + "] }"
}

// syncBuffer is a collector's output, read while the collector writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
