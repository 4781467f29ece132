package e2e

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/propeller"
)

// controlPlaneDoc is the page an operator copies start and stop requests from.
const controlPlaneDoc = "../docs/control-plane.md"

// docRequest is one mosquitto_pub line of a page: the topic (with its shell variables) and the
// payload.
type docRequest struct {
	topic   string
	payload string
}

var (
	mosquittoPub = regexp.MustCompile(`(?m)^mosquitto_pub .*-t "([^"]+)" .*-m '([^']+)'$`)
	jsonBlock    = regexp.MustCompile("(?s)```json\n(.*?)```")
)

// docRequests reads every mosquitto_pub line of path.
func docRequests(t *testing.T, path string) []docRequest {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []docRequest
	for _, m := range mosquittoPub.FindAllStringSubmatch(string(b), -1) {
		out = append(out, docRequest{topic: m[1], payload: m[2]})
	}
	return out
}

// TestControlPlaneDocDecodes: every request the page shows is read by the receiver's decoder as
// the page says, and every JSON block is exactly one of the payloads its mosquitto_pub lines send.
func TestControlPlaneDocDecodes(t *testing.T) {
	reqs := docRequests(t, controlPlaneDoc)
	require.Len(t, reqs, 3, "the page shows two start requests and a stop request")

	const propletID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	std, ok := profile.Builtin(profile.Standard)
	require.True(t, ok)
	var starts, stops int
	for _, r := range reqs {
		require.True(t, strings.HasPrefix(r.topic, "m/$PROPLET_TENANT_ID/c/$PROPLET_CHANNEL_ID/control/manager/"), r.topic)
		switch {
		case strings.HasSuffix(r.topic, "/start"):
			starts++
			s, err := propeller.DecodeStart([]byte(r.payload))
			require.NoError(t, err, r.payload)
			require.NotNil(t, s.Profile, "every start request of the page has a monitoring profile")
			p := s.Profile.Apply(std)
			require.NoError(t, p.Validate(), r.payload)
			switch s.ID {
			case "550e8400-e29b-41d4-a716-446655440042": // the manager's form: nanoseconds, all ten keys
				assert.Equal(t, "compute", s.Name)
				assert.Equal(t, propletID, s.PropletID)
				assert.Equal(t, time.Second, p.Interval)
				assert.False(t, p.ExportToMQTT)
				assert.Equal(t, 60, p.HistorySize)
			case "550e8400-e29b-41d4-a716-446655440043": // by hand: seconds, partial
				assert.Equal(t, "by-hand", s.Name)
				assert.Empty(t, s.PropletID, "a broadcast")
				assert.Equal(t, 2*time.Second, p.Interval)
				assert.Equal(t, 20, p.HistorySize)
				assert.True(t, p.CollectDiskIO, "missing keys are standard's")
			default:
				t.Errorf("a start request the test does not know: %s", s.ID)
			}
		case strings.HasSuffix(r.topic, "/stop"):
			stops++
			s, err := propeller.DecodeStop([]byte(r.payload))
			require.NoError(t, err, r.payload)
			assert.Equal(t, "550e8400-e29b-41d4-a716-446655440042", s.ID, "the page stops the task it started")
			assert.Equal(t, propletID, s.PropletID)
		default:
			t.Errorf("not a manager topic: %s", r.topic)
		}
	}
	assert.Equal(t, 2, starts)
	assert.Equal(t, 1, stops)

	// The JSON the page shows is what its mosquitto_pub lines send.
	b, err := os.ReadFile(controlPlaneDoc)
	require.NoError(t, err)
	sent := map[string]bool{}
	for _, r := range reqs {
		sent[r.payload] = true
	}
	blocks := jsonBlock.FindAllStringSubmatch(string(b), -1)
	require.Len(t, blocks, 3)
	for _, m := range blocks {
		var compact bytes.Buffer
		require.NoError(t, json.Compact(&compact, []byte(m[1])), m[1])
		assert.True(t, sent[compact.String()], "a JSON block that no mosquitto_pub line sends:\n%s", m[1])
	}
}

// markdownLink is a link or image of a Markdown page: [text](target).
var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// fence is a fenced code block, whose text is not Markdown.
var fence = regexp.MustCompile("(?ms)^\\s*```.*?^\\s*```")

// headingAnchor is the anchor GitHub gives a heading: lower case, punctuation dropped, spaces
// as hyphens.
func headingAnchor(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors lists the heading anchors of a Markdown page.
func anchors(page string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(fence.ReplaceAllString(page, ""), "\n") {
		if strings.HasPrefix(l, "#") {
			out[headingAnchor(strings.TrimLeft(l, "#"))] = true
		}
	}
	return out
}

// TestDocLinks: every relative link of every Markdown page of the repository names a file
// that exists and, for a Markdown page, a heading it has, so that a page moved or a heading
// renamed cannot leave a link dangling.
func TestDocLinks(t *testing.T) {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	var pages []string
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() != ".." && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			pages = append(pages, path)
		}
		return nil
	}))
	require.NotEmpty(t, pages)
	for _, page := range pages {
		b, err := os.ReadFile(page)
		require.NoError(t, err)
		rel, _ := filepath.Rel(root, page)
		for _, m := range markdownLink.FindAllStringSubmatch(fence.ReplaceAllString(string(b), ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			file := page
			if path != "" {
				file = filepath.Join(filepath.Dir(page), path)
			}
			if _, err := os.Stat(file); err != nil {
				t.Errorf("%s: link %s: no such file", rel, target)
				continue
			}
			if anchor == "" || !strings.HasSuffix(file, ".md") {
				continue
			}
			linked, err := os.ReadFile(file)
			require.NoError(t, err)
			if !anchors(string(linked))[anchor] {
				t.Errorf("%s: link %s: no heading with that anchor", rel, target)
			}
		}
	}
}

// documented is a metric or resource attribute as a component's generated documentation.md
// lists it.
type documented struct {
	unit, kind string // metrics: the unit, and "gauge", "sum" or "monotonic sum"
	typ        string // resource attributes: Str, Int, Double, Bool
	enabled    bool   // resource attributes: on by default
}

// generatedDocs reads the metrics and resource attributes of a documentation.md.
func generatedDocs(t *testing.T, path string) (metrics, attrs map[string]documented) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	metrics, attrs = map[string]documented{}, map[string]documented{}
	section, metric := "", ""
	var header []string
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "## "):
			section, metric, header = l[3:], "", nil
		case strings.HasPrefix(l, "### "):
			metric, header = l[4:], nil
		case strings.HasPrefix(l, "#### "): // a metric's data point attributes
			metric, header = "", nil
		case strings.HasPrefix(l, "| ---"), !strings.HasPrefix(l, "|"):
		case header == nil:
			header = tableCells(l)
		case strings.HasSuffix(section, "Metrics") && metric != "" && header[0] == "Unit":
			row := map[string]string{}
			for i, c := range tableCells(l) {
				row[header[i]] = c
			}
			kind := strings.ToLower(row["Metric Type"])
			if row["Monotonic"] == "true" {
				kind = "monotonic " + kind
			}
			metrics[metric] = documented{unit: row["Unit"], kind: kind}
		case section == "Resource Attributes":
			c := tableCells(l)
			attrs[c[0]] = documented{typ: strings.TrimPrefix(c[2], "Any "), enabled: c[3] == "true"}
		}
	}
	return metrics, attrs
}

func tableCells(row string) []string {
	cells := strings.Split(strings.Trim(strings.TrimSpace(row), "|"), "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

// readmeTable reads the rows of the Markdown table of page whose header row starts with
// header, keyed by the first cell without its backticks.
func readmeTable(t *testing.T, page, header string) map[string][]string {
	t.Helper()
	rows := map[string][]string{}
	in := false
	for _, l := range strings.Split(page, "\n") {
		switch {
		case strings.HasPrefix(l, header):
			in = true
		case in && strings.HasPrefix(l, "| ---"):
		case in && strings.HasPrefix(l, "|"):
			c := tableCells(l)
			rows[strings.Trim(c[0], "`")] = c
		default:
			in = false
		}
	}
	require.NotEmpty(t, rows, "no table %q", header)
	return rows
}

// TestReceiverTablesMatchGeneratedDocs: the proplet receiver's README lists exactly the
// metrics and resource attributes of its generated documentation.md (from metadata.yaml),
// with the same units, kinds, types and defaults, so a metric added, renamed or turned off
// by default cannot be documented wrong.
func TestReceiverTablesMatchGeneratedDocs(t *testing.T) {
	const dir = "../receiver/propletreceiver/"
	metrics, attrs := generatedDocs(t, dir+"documentation.md")
	require.NotEmpty(t, metrics)
	require.NotEmpty(t, attrs)
	b, err := os.ReadFile(dir + "README.md")
	require.NoError(t, err)
	page := string(b)

	rows := readmeTable(t, page, "| metric | unit | type |")
	for name, d := range metrics {
		row, ok := rows[name]
		if !assert.True(t, ok, "metric %s is not in the README's table", name) {
			continue
		}
		assert.Equal(t, d.unit, row[1], "unit of %s", name)
		kind := "gauge"
		if strings.Contains(row[2], "sum") {
			kind = "sum"
			if strings.Contains(row[2], "monotonic") && !strings.Contains(row[2], "non-monotonic") {
				kind = "monotonic sum"
			}
		}
		assert.Equal(t, d.kind, kind, "kind of %s (README: %q)", name, row[2])
	}
	for name := range rows {
		assert.Contains(t, metrics, name, "the README lists metric %s, which documentation.md does not", name)
	}

	types := map[string]string{"string": "Str", "int": "Int", "double": "Double", "bool": "Bool"}
	rows = readmeTable(t, page, "| attribute | type | on by default |")
	for name, d := range attrs {
		row, ok := rows[name]
		if !assert.True(t, ok, "resource attribute %s is not in the README's table", name) {
			continue
		}
		assert.Equal(t, d.typ, types[row[1]], "type of %s", name)
		assert.Equal(t, d.enabled, row[2] == "yes", "default of %s", name)
	}
	for name := range rows {
		assert.Contains(t, attrs, name, "the README lists resource attribute %s, which documentation.md does not", name)
	}
}
