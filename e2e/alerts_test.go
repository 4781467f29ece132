package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
)

const (
	alertRules = "../examples/alerts.yml"
	alertTests = "../examples/alerts_test.yml"
	dashboard  = "../examples/grafana/propeller-tasks.json"
)

// TestAlertRules runs promtool on the example alerting rules: they parse, and each unit test
// in alerts_test.yml passes.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus), so examples/alerts.yml is not checked")
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../examples"
		out, err := cmd.CombinedOutput()
		assert.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// TestEveryAlertIsTested holds the rules file to its promise: every alert has a unit test in
// which it fires and one in which it must not, and every alert a test names exists.
func TestEveryAlertIsTested(t *testing.T) {
	rules := alertNames(t)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range list(yamlFile(t, alertTests)["tests"]) {
		for _, a := range list(asMap(tc)["alert_rule_test"]) {
			name, _ := asMap(a)["alertname"].(string)
			require.Contains(t, rules, name, "alerts_test.yml tests an alert alerts.yml does not have")
			if len(list(asMap(a)["exp_alerts"])) > 0 {
				fires[name] = true
			} else {
				silent[name] = true
			}
		}
	}
	for _, name := range rules {
		assert.True(t, fires[name], "%s: no test in which it fires", name)
		assert.True(t, silent[name], "%s: no test in which it must not fire", name)
	}
}

// TestDashboardShowsEveryAlert checks that the dashboard is valid JSON and that its firing
// alerts panel selects every alert of the rules file.
func TestDashboardShowsEveryAlert(t *testing.T) {
	b, err := os.ReadFile(dashboard)
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &d), "the dashboard is not valid JSON")
	selector := regexp.MustCompile(`ALERTS\{[^}]*alertname=~"([^"]+)"`)
	var pattern string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if m := selector.FindStringSubmatch(tg.Expr); m != nil {
				pattern = m[1]
			}
		}
	}
	require.NotEmpty(t, pattern, "no panel queries ALERTS{alertname=~...}")
	re := regexp.MustCompile("^(?:" + pattern + ")$") // PromQL regular expressions are anchored
	for _, name := range alertNames(t) {
		assert.True(t, re.MatchString(name), "the dashboard's alerts panel (%q) does not show %s", pattern, name)
	}
}

func alertNames(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, g := range list(yamlFile(t, alertRules)["groups"]) {
		for _, r := range list(asMap(g)["rules"]) {
			if name, ok := asMap(r)["alert"].(string); ok {
				names = append(names, name)
			}
		}
	}
	require.NotEmpty(t, names)
	return names
}

func yamlFile(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	r, err := confmap.NewRetrievedFromYAML(b)
	require.NoError(t, err)
	raw, err := r.AsRaw()
	require.NoError(t, err)
	return asMap(raw)
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}
