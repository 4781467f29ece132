//go:build linux

package taskapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

func TestMain(m *testing.M) {
	testworkload.MainIfChild()
	os.Exit(m.Run())
}

type fixture struct {
	srv     *httptest.Server
	mon     *monitor.Monitor
	samples chan monitor.Sample
}

func start(t *testing.T, token string) *fixture {
	t.Helper()
	return startWith(t, token, monitor.Config{}, nil)
}

func startWith(t *testing.T, token string, cfg monitor.Config, refused func(string, error)) *fixture {
	t.Helper()
	samples := make(chan monitor.Sample, 100)
	cfg.ProcRoot, cfg.CgroupRoot, cfg.MaxConcurrency, cfg.DiscoveryInterval = "/proc", "/sys/fs/cgroup", 2, 100*time.Millisecond
	mon, err := monitor.New(cfg, zaptest.NewLogger(t), nil, samples)
	require.NoError(t, err)
	require.NoError(t, mon.Start(context.Background()))
	t.Cleanup(func() { _ = mon.Shutdown(context.Background()) })
	policy, _, err := admission.NewPolicy(nil, profile.Standard, profile.LongRunningDaemon)
	require.NoError(t, err)
	srv := httptest.NewServer(New(Config{Registry: mon, Policy: policy, Token: token, Refused: refused}))
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, mon: mon, samples: samples}
}

func (f *fixture) do(t *testing.T, method, path, body, token string) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var obj map[string]any
	_ = json.Unmarshal(b, &obj)
	if resp.StatusCode >= 400 {
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "errors are JSON")
		assert.NotEmpty(t, obj["error"], "%s %s: %s", method, path, b)
	}
	return resp.StatusCode, obj, string(b)
}

func TestRoutes(t *testing.T) {
	f := start(t, "")
	cmd := testworkload.Start(t, testworkload.Sleep, 0)

	code, _, _ := f.do(t, "GET", "/health", "", "")
	assert.Equal(t, http.StatusOK, code)

	// A Propeller task's body, with a pid and a partial profile in Propeller's units (nanoseconds).
	body := fmt.Sprintf(`{"id":"test-123","name":"compute","file":"...","pid":%d,"monitoring_profile":{"enabled":true,"interval":5000000000,"export_to_mqtt":true}}`, cmd.Process.Pid)
	code, obj, raw := f.do(t, "POST", "/tasks", body, "")
	require.Equal(t, http.StatusCreated, code, raw)
	assert.Equal(t, "test-123", obj["id"])
	assert.Equal(t, "inline", obj["profile"])
	assert.InDelta(t, 5.0, obj["monitoring_profile"].(map[string]any)["interval"], 0)

	code, _, _ = f.do(t, "POST", "/tasks", body, "")
	assert.Equal(t, http.StatusConflict, code, "the same id twice")

	require.Eventually(t, func() bool {
		_, obj, _ := f.do(t, "GET", "/tasks/test-123", "", "")
		return obj["state"] == "active" && obj["pid"] == float64(cmd.Process.Pid)
	}, 5*time.Second, 20*time.Millisecond)

	_, _, raw = f.do(t, "GET", "/tasks", "", "")
	assert.Contains(t, raw, `"id":"test-123"`)

	// A manual collect produces a sample at once.
	code, _, _ = f.do(t, "POST", "/tasks/test-123/collect", "", "")
	assert.Equal(t, http.StatusAccepted, code)
	select {
	case s := <-f.samples:
		assert.Equal(t, "test-123", s.TaskID)
		assert.True(t, s.HasUtil)
	case <-time.After(3 * time.Second):
		t.Fatal("no sample after POST /tasks/test-123/collect")
	}
	code, obj, _ = f.do(t, "POST", "/collect", "", "")
	assert.Equal(t, http.StatusAccepted, code)
	assert.InDelta(t, 1.0, obj["triggered"], 0)

	code, obj, raw = f.do(t, "PUT", "/tasks/test-123/profile", `{"profile":"intensive"}`, "")
	require.Equal(t, http.StatusOK, code, raw)
	assert.Equal(t, "intensive", obj["profile"])
	code, obj, raw = f.do(t, "PUT", "/tasks/test-123/profile", `{"interval":2,"collect_disk_io":false}`, "")
	require.Equal(t, http.StatusOK, code, raw)
	assert.InDelta(t, 2.0, obj["monitoring_profile"].(map[string]any)["interval"], 0)
	assert.Equal(t, false, obj["monitoring_profile"].(map[string]any)["collect_disk_io"])

	// DELETE removes the task at once and takes a last sample: at once with /proc scans, and
	// with the kernel's process events (as root) once its process ends or after 5 s (the
	// process keeps running here).
	for len(f.samples) > 0 {
		<-f.samples
	}
	code, _, _ = f.do(t, "DELETE", "/tasks/test-123", "", "")
	assert.Equal(t, http.StatusNoContent, code)
	select {
	case s := <-f.samples:
		assert.True(t, s.Final)
	case <-time.After(10 * time.Second):
		t.Fatal("no last sample on DELETE")
	}
	code, _, _ = f.do(t, "GET", "/tasks/test-123", "", "")
	assert.Equal(t, http.StatusNotFound, code)
}

func TestErrors(t *testing.T) {
	f := start(t, "")
	tests := []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"POST", "/tasks", `{"id":`, http.StatusBadRequest, "invalid JSON"},
		{"POST", "/tasks", `{"id":5,"pid":1}`, http.StatusBadRequest, "invalid JSON"},
		{"POST", "/tasks", `{"id":"x"}`, http.StatusBadRequest, "one of pid, pid_file, match, in_process or cgroup is required"},
		{"POST", "/tasks", `{"id":"x","pid":1,"pid_file":"/p"}`, http.StatusBadRequest, "set only one of"},
		{"POST", "/tasks", `{"id":"","pid":1}`, http.StatusBadRequest, "id: must be set"},
		{"POST", "/tasks", `{"id":"a\u0000b","pid":1}`, http.StatusBadRequest, "id: may hold only A-Z, a-z, 0-9"},
		{"POST", "/tasks", `{"id":"x","cgroup":"propeller/../../memory"}`, http.StatusBadRequest, "cgroup: must not contain a '..' element"},
		{"POST", "/tasks", `{"id":"x","pid":1,"monitoring_profile":{"interval":0}}`, http.StatusBadRequest, "interval: must be positive"},
		{"POST", "/tasks", `{"id":"x","pid":1,"monitoring_profile":{"interval":"10s"}}`, http.StatusBadRequest, "interval: must be a number"},
		{"POST", "/tasks", `{"id":"x","pid":1,"profile":"nope"}`, http.StatusBadRequest, `unknown profile "nope"`},
		{"POST", "/tasks", `{"id":"x","match":{"cmdline":"("}}`, http.StatusBadRequest, "match.cmdline: invalid regular expression"},
		{"POST", "/tasks", `{"id":"x","pid":1,"profile":"standard","monitoring_profile":{}}`, http.StatusBadRequest, "not both"},
		{"POST", "/tasks", `{"id":"` + strings.Repeat("a", maxBody) + `"}`, http.StatusRequestEntityTooLarge, "larger than"},
		{"GET", "/tasks/nope", "", http.StatusNotFound, `no task "nope"`},
		{"DELETE", "/tasks/nope", "", http.StatusNotFound, `no task "nope"`},
		{"PUT", "/tasks/nope/profile", `{"profile":"intensive"}`, http.StatusNotFound, `no task "nope"`},
		{"POST", "/tasks/nope/collect", "", http.StatusNotFound, `no task "nope"`},
		{"GET", "/nowhere", "", http.StatusNotFound, "no route"},
		{"PATCH", "/tasks", "", http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.msg, func(t *testing.T) {
			code, obj, raw := f.do(t, tt.method, tt.path, tt.body, "")
			assert.Equal(t, tt.code, code, raw)
			if tt.msg != "" {
				assert.Contains(t, obj["error"], tt.msg)
			}
		})
	}

	// A task whose process is not there yet can be registered; it cannot be sampled yet.
	code, _, raw := f.do(t, "POST", "/tasks", `{"id":"later","pid_file":"/nonexistent/task.pid"}`, "")
	require.Equal(t, http.StatusCreated, code, raw)
	code, obj, _ := f.do(t, "POST", "/tasks/later/collect", "", "")
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, obj["error"], "pending")
	code, _, raw = f.do(t, "PUT", "/tasks/later/profile", `{"interval":0}`, "")
	assert.Equal(t, http.StatusBadRequest, code, raw)
}

func TestBearerToken(t *testing.T) {
	f := start(t, "s3cret")
	code, _, _ := f.do(t, "GET", "/tasks", "", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _, _ = f.do(t, "GET", "/tasks", "", "wrong")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _, _ = f.do(t, "GET", "/tasks", "", "s3cret")
	assert.Equal(t, http.StatusOK, code)
	code, _, _ = f.do(t, "GET", "/health", "", "")
	assert.Equal(t, http.StatusOK, code, "health needs no token")
}

func TestRefusalsAreToldWithTheirReason(t *testing.T) {
	var reasons []string
	f := startWith(t, "", monitor.Config{MaxPendingTasks: 1}, func(reason string, _ error) { reasons = append(reasons, reason) })
	code, _, raw := f.do(t, "POST", "/tasks", `{"id":"a","pid_file":"/nonexistent/a.pid"}`, "")
	require.Equal(t, http.StatusCreated, code, raw)
	code, obj, _ := f.do(t, "POST", "/tasks", `{"id":"b","pid_file":"/nonexistent/b.pid"}`, "")
	assert.Equal(t, http.StatusTooManyRequests, code)
	assert.Contains(t, obj["error"], "max_pending_tasks")
	code, _, _ = f.do(t, "POST", "/tasks", `{"id":"a","pid_file":"/nonexistent/a.pid"}`, "")
	assert.Equal(t, http.StatusConflict, code)
	f.do(t, "POST", "/tasks", `{"id":"a/b","pid":1}`, "")
	f.do(t, "POST", "/tasks", `{"id":`, "")
	assert.Equal(t, []string{"too_many_pending", "duplicate", "id", "malformed"}, reasons)
}

// TestCreateWithAPIDAnswersItsState: a task created with the pid of a running process answers
// "active" and the pid in the POST's own answer; with a pid no process has, "pending", the pid
// and a warning that names it, so a script tells a wrong pid from a slow one.
func TestCreateWithAPIDAnswersItsState(t *testing.T) {
	f := start(t, "")
	cmd := testworkload.Start(t, testworkload.Sleep, 0)
	code, obj, raw := f.do(t, "POST", "/tasks", fmt.Sprintf(`{"id":"live","pid":%d}`, cmd.Process.Pid), "")
	require.Equal(t, http.StatusCreated, code, raw)
	assert.Equal(t, "active", obj["state"], raw)
	assert.Equal(t, float64(cmd.Process.Pid), obj["pid"], raw)
	assert.Nil(t, obj["warnings"], raw)

	gone := testworkload.Command(t, testworkload.Sleep, 0)
	require.NoError(t, gone.Start())
	pid := gone.Process.Pid
	require.NoError(t, gone.Process.Kill())
	_ = gone.Wait()
	code, obj, raw = f.do(t, "POST", "/tasks", fmt.Sprintf(`{"id":"gone","pid":%d}`, pid), "")
	require.Equal(t, http.StatusCreated, code, raw)
	assert.Equal(t, "pending", obj["state"], raw)
	assert.Equal(t, float64(pid), obj["pid"], raw)
	assert.Contains(t, fmt.Sprint(obj["warnings"]), fmt.Sprintf("process %d was not found", pid), raw)
}
