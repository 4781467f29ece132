package monitor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-propeller/otelcol-propeller/internal/admission"
)

func TestStateMachine(t *testing.T) {
	t.Parallel()
	all := []State{StatePending, StateActive, StateDisabled, StateExited, StateInProcess, StateStopped}
	allowed := map[[2]State]bool{}
	for from, tos := range transitions {
		for _, to := range tos {
			allowed[[2]State{from, to}] = true
		}
	}
	for _, from := range all {
		if from != StateStopped {
			assert.True(t, canMove(from, StateStopped), "every task can be stopped, %s too", from)
		}
		for _, to := range all {
			assert.Equal(t, allowed[[2]State{from, to}], canMove(from, to), "%s -> %s", from, to)
		}
	}
	assert.Empty(t, transitions[StateStopped], "stopped is final")
	assert.False(t, canMove(StateExited, StateActive), "an exited fixed-pid task never comes back")
	assert.False(t, canMove(StateInProcess, StateActive), "an in-process task is never sampled")
}

func TestIllegalMoveIsRefusedAndLogged(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.ErrorLevel)
	m := &Monitor{log: zap.New(core), hooks: defaultHooks()}

	tk := &task{spec: admission.Spec{ID: "t"}, state: StateExited}
	m.setState(tk, StateActive)
	assert.Equal(t, StateExited, tk.state, "state kept")
	assert.Equal(t, 1, logs.FilterMessageSnippet("not allowed").Len())

	m.setState(tk, StateStopped)
	assert.Equal(t, StateStopped, tk.state)
}
