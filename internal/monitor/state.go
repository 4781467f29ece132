package monitor

import (
	"time"

	"go.uber.org/zap"
)

// State is where a task is in its life. Every change goes through setState, which allows
// only the moves in transitions:
//
//	(registered) ──▶ pending, or in_process for a task that runs inside the proplet
//	pending      ── bound to its process or cgroup ──▶ active, or disabled (enabled: false)
//	active       ◀── SetProfile ──▶ disabled
//	active, disabled ── process exited ──▶ pending, when a pid file or match rule can find
//	                                       the next process
//	                                  ──▶ exited, for a fixed pid; a task made by a discovery
//	                                       rule then leaves the registry
//	every state  ── StopTask ──▶ stopped: the task leaves the registry; its last sample and
//	                               usage report are taken at once (scanning), or when its
//	                               process ends, within hooks.stopGrace (process events)
//	pending      ── PendingTimeout, for a task registered at run time ──▶ stopped: it leaves
//	                the registry, counted as refused (pending_expired)
//
// Who calls into the monitor, and under which lock:
//   - scheduler workers (internal/schedule, at most max_concurrency at once) run the
//     discovery pass, task samples and the proplet sample; a job never runs twice at once, so
//     there is one discovery pass at a time;
//   - MQTT callbacks (the control plane's client goroutine) call AddTask, SetProfile and
//     EndTask;
//   - HTTP handlers (one goroutine per request) call AddTask, SetProfile, EndTask, Collect,
//     CollectAll, Tasks and Task;
//   - the receiver's lifecycle calls New, Start and Shutdown.
//
// Monitor.mu guards the registry map only. task.mu guards every field of one task, its state
// included, and is held while the task is bound, sampled, refreshed or stopped. The order is
// task.mu, then Monitor.mu: Monitor.mu is never held while waiting for a task.mu. The discovery
// pass only TryLocks tasks, so a sample stuck in the kernel never stalls discovery; a task it
// cannot lock is looked at again next pass. It reads pid files and matches the process table
// holding no lock at all, and takes a task's lock only to bind it: a pid file on a hung mount
// stalls the pass (one worker), never Tasks, Task, AddTask or StopTask. proplet.mu
// orders the discovery pass (which finds the proplet) and the proplet sample.
type State string

// Task states.
const (
	StatePending  State = "pending"  // registered, its process (or cgroup) not found (yet)
	StateActive   State = "active"   // bound to a process or cgroup and sampled
	StateDisabled State = "disabled" // bound, but its profile says enabled: false
	StateExited   State = "exited"   // its process exited and cannot come back (a fixed pid)
	// StateInProcess is a task that runs inside the proplet process: the proplet's own metrics
	// cover it; it is not sampled on its own.
	StateInProcess State = "in_process"
	StateStopped   State = "stopped" // stopped by a request; no longer registered
)

// transitions lists every move the state machine allows.
var transitions = map[State][]State{
	StatePending:   {StateActive, StateDisabled, StateStopped},
	StateActive:    {StateDisabled, StatePending, StateExited, StateStopped},
	StateDisabled:  {StateActive, StatePending, StateExited, StateStopped},
	StateExited:    {StateStopped},
	StateInProcess: {StateStopped},
}

// canMove reports whether the state machine allows a task to move from one state to another.
func canMove(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// logIllegalMove reports a move the state machine does not allow: a bug, logged at error.
func logIllegalMove(m *Monitor, t *task, to State) {
	m.log.Error("Internal error: task state move not allowed; state kept",
		zap.String("task_id", t.spec.ID), zap.String("from", string(t.state)), zap.String("to", string(to)))
}

// setState moves a task to another state. Every change of task.state goes through here, and
// so does the count of pending tasks that max_pending_tasks bounds. The caller holds t.mu.
func (m *Monitor) setState(t *task, to State) {
	if t.state == to {
		return
	}
	if !canMove(t.state, to) {
		m.hooks.illegalMove(m, t, to)
		return
	}
	switch {
	case t.state == StatePending:
		m.pending.Add(-1)
	case to == StatePending:
		m.pending.Add(1)
		t.pendingSince = time.Now()
		t.notFoundLogged = time.Time{}
	}
	if t.registered {
		m.tel.TaskState(t.state, to)
	}
	t.state = to
}

// activate makes a task that was just bound active and schedules its samples, or disabled
// when its profile says so. Process and cgroup tasks both come through here. The caller holds
// t.mu.
func (m *Monitor) activate(t *task) {
	if !t.spec.Profile.Enabled {
		m.setState(t, StateDisabled)
		return
	}
	m.setState(t, StateActive)
	iv := t.spec.Profile.Interval
	m.sched.Add(sampleJob{m, t}, iv, iv+m.spread())
}
