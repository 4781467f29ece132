//go:build linux

package taskapi

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
	"github.com/otelcol-propeller/otelcol-propeller/internal/monitor"
	"github.com/otelcol-propeller/otelcol-propeller/internal/profile"
)

// TestDeleteEndsOnlyTheAPIsOwnTasks: a DELETE of a configuration task or a manager's task is
// refused with 403, counted, and the task keeps running; the API's own task is ended.
func TestDeleteEndsOnlyTheAPIsOwnTasks(t *testing.T) {
	prof, _ := profile.Builtin(profile.Standard)
	spec := func(id string, o admission.Origin) admission.Spec {
		return admission.Spec{ID: id, ProfileName: profile.Standard, Profile: prof, Locator: admission.Locator{PIDFile: "/nonexistent/" + id}, Origin: o}
	}
	var reasons []string
	f := startWith(t, "", monitor.Config{Tasks: []admission.Spec{spec("configured", admission.OriginConfig)}},
		func(reason string, _ error) { reasons = append(reasons, reason) })
	require.NoError(t, f.mon.AddTask(spec("started", admission.OriginManager)))
	code, _, raw := f.do(t, "POST", "/tasks", `{"id":"mine","pid_file":"/nonexistent/mine"}`, "")
	require.Equal(t, http.StatusCreated, code, raw)

	for id, owner := range map[string]string{"configured": "the receiver's configuration", "started": "the manager"} {
		code, obj, _ := f.do(t, "DELETE", "/tasks/"+id, "", "")
		assert.Equal(t, http.StatusForbidden, code, id)
		assert.Contains(t, obj["error"], "came from "+owner+": the task API may not end it")
		s, ok := f.mon.Task(id)
		assert.True(t, ok, "%s is still registered", id)
		code, obj, _ = f.do(t, "GET", "/tasks/"+id, "", "")
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, s.Origin.String(), obj["origin"])
	}
	code, _, _ = f.do(t, "DELETE", "/tasks/mine", "", "")
	assert.Equal(t, http.StatusNoContent, code)
	_, ok := f.mon.Task("mine")
	assert.False(t, ok)
	assert.Equal(t, []string{admission.NotOwnerReason, admission.NotOwnerReason}, reasons)
}
