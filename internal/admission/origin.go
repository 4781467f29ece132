package admission

import "fmt"

// Origin is the door a task came through. It decides which door may end the task or change
// its profile: each door owns the tasks it created, so one door cannot take away what another
// asked for (a manager's stop cannot end a task the operator configured).
type Origin uint8

const (
	// OriginConfig is a task of the receiver's configuration. No door ends it: it runs until
	// the configuration no longer lists it.
	OriginConfig Origin = iota
	// OriginTaskAPI is a task created through the task API.
	OriginTaskAPI
	// OriginManager is a task the Propeller manager started through the control plane.
	OriginManager
	// OriginDiscovery is a task a discovery rule found among the proplet's processes: the
	// manager's task, found before (or without) its start request.
	OriginDiscovery
)

// String is the origin as logs, errors and the task API name it.
func (o Origin) String() string {
	switch o {
	case OriginConfig:
		return "configuration"
	case OriginTaskAPI:
		return "task_api"
	case OriginManager:
		return "manager"
	case OriginDiscovery:
		return "discovery"
	}
	return fmt.Sprintf("origin(%d)", uint8(o))
}

// words is the origin in a sentence.
func (o Origin) words() string {
	switch o {
	case OriginConfig:
		return "the receiver's configuration"
	case OriginTaskAPI:
		return "the task API"
	case OriginManager:
		return "the manager"
	case OriginDiscovery:
		return "a discovery rule"
	}
	return o.String()
}

// MayEnd reports whether door may end a task of the given owner: the task API ends its own
// tasks; the manager ends the tasks it started and those discovery found among its proplet's
// processes; nothing ends a configuration task.
func MayEnd(door, owner Origin) bool {
	switch door {
	case OriginTaskAPI:
		return owner == OriginTaskAPI
	case OriginManager:
		return owner == OriginManager || owner == OriginDiscovery
	}
	return false
}

// MayChange reports whether door may change the profile of a task of the given owner. The
// manager changes what it may end. The task API, the local operator's tool behind its token,
// changes any task's profile: a profile change takes no task away from its owner.
func MayChange(door, owner Origin) bool {
	return door == OriginTaskAPI || MayEnd(door, owner)
}

// NotOwnerReason is the refusal reason of a request to end or change a task of another door.
const NotOwnerReason = "not_owner"

// OwnerError refuses a door's request to end or change a task another door owns.
type OwnerError struct {
	ID          string
	Door, Owner Origin
	Change      bool // a profile change, not an end
}

func (e *OwnerError) Error() string {
	what := "end"
	if e.Change {
		what = "change the profile of"
	}
	var fix string
	switch e.Owner {
	case OriginConfig:
		fix = "remove it from the receiver's configuration"
	case OriginDiscovery:
		fix = "stop it through the manager, or end its process"
	default:
		fix = "ask " + e.Owner.words()
	}
	return fmt.Sprintf("task %s came from %s: %s may not %s it (each door ends only the tasks it created); %s",
		Quote(e.ID), e.Owner.words(), e.Door.words(), what, fix)
}

// CheckEnd returns an *OwnerError when door may not end task id of owner.
func CheckEnd(door Origin, id string, owner Origin) error {
	if MayEnd(door, owner) {
		return nil
	}
	return &OwnerError{ID: id, Door: door, Owner: owner}
}

// CheckChange returns an *OwnerError when door may not change the profile of task id of owner.
func CheckChange(door Origin, id string, owner Origin) error {
	if MayChange(door, owner) {
		return nil
	}
	return &OwnerError{ID: id, Door: door, Owner: owner, Change: true}
}
