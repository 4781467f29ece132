package controlplane

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
)

// TestManagerEndsOnlyItsOwnTasks: a stop or a start again of a task of the configuration or
// of the task API is refused, counted and logged, and leaves the task as it was; the
// manager's own tasks and the discovered ones are stopped.
func TestManagerEndsOnlyItsOwnTasks(t *testing.T) {
	reg := newRegistry()
	for id, o := range map[string]admission.Origin{"cfg": admission.OriginConfig, "api": admission.OriginTaskAPI, "found": admission.OriginDiscovery} {
		require.NoError(t, reg.AddTask(admission.Spec{ID: id, Origin: o}))
	}
	refused := map[string]int{}
	core, logs := observer.New(zap.WarnLevel)
	f := New(testConfig(t), reg, zap.New(core), func(reason string) { refused[reason]++ })
	ctx := context.Background()

	require.NoError(t, f.HandleStart(ctx, []byte(`{"id":"mine"}`)))
	spec, _ := reg.spec("mine")
	assert.Equal(t, admission.OriginManager, spec.Origin)

	for _, id := range []string{"cfg", "api"} {
		err := f.HandleStop(ctx, []byte(`{"id":"`+id+`"}`))
		require.Error(t, err, id)
		assert.Contains(t, err.Error(), "the manager may not end it")
		_, ok := reg.spec(id)
		assert.True(t, ok, "%s keeps running", id)
		err = f.HandleStart(ctx, []byte(`{"id":"`+id+`","monitoring_profile":{"interval":2}}`))
		require.Error(t, err, id)
		assert.Contains(t, err.Error(), "the manager may not change the profile of it")
	}
	assert.Empty(t, reg.profiles, "no profile of another door's task changed")
	for _, id := range []string{"mine", "found"} {
		require.NoError(t, f.HandleStop(ctx, []byte(`{"id":"`+id+`"}`)))
	}
	assert.Equal(t, []string{"mine", "found"}, reg.stopped)
	assert.Equal(t, map[string]int{admission.NotOwnerReason: 4}, refused)
	require.Positive(t, logs.Len(), "the refusal is logged")
	assert.Contains(t, logs.All()[0].ContextMap()["error"], "came from the receiver's configuration")
}
