package procmatch

import (
	"hash/maphash"
	"slices"

	"github.com/otelcol-propeller/otelcol-propeller/internal/process"
)

// Candidate is a process a single-process rule (the proplet's, or a task's) matched.
type Candidate struct {
	Entry process.Entry
	UID   int64 // effective uid, for the log
	// Ours says the process is the parent of a process that is, or would be, one of the
	// collector's tasks.
	Ours bool
}

// How a single-process rule's choice was made, for the log.
const (
	ChoseOnly     = "only_match"        // one process matched
	ChoseOurs     = "parent_of_a_task"  // the only one whose children are our tasks
	ChoseEarliest = "earliest_started"  // the first started of a task's candidates
	ChoseNone     = "ambiguous_refused" // several matched and none is known to be ours
)

// ChooseProplet decides which of the processes a proplet rule matched is the proplet: the only
// one; else the only one whose children are our tasks; else none. Two proplet processes of
// the same user that both could be ours are not told apart by their age (another job's
// proplet can be younger or older), and sampling the wrong one publishes another job's
// numbers as this proplet's: refusing is logged, and the operator narrows the rule
// (pid_file, cmdline) or starts a task, whose parent settles it. It returns the index of the
// chosen candidate, or -1, and how it decided.
func ChooseProplet(cands []Candidate) (int, string) {
	switch len(cands) {
	case 0:
		return -1, ""
	case 1:
		return 0, ChoseOnly
	}
	chosen := -1
	for i, c := range cands {
		if c.Ours {
			if chosen >= 0 {
				return -1, ChoseNone
			}
			chosen = i
		}
	}
	if chosen < 0 {
		return -1, ChoseNone
	}
	return chosen, ChoseOurs
}

// ChooseTask decides which of the processes a task's rule matched is the task: the earliest
// started. Every candidate has already passed the rule's ownership conditions (a child of the
// bound proplet, of its user, started after the task's previous process), so they are all the
// proplet's own processes for this task; the first started is the one the proplet ran for it,
// a later one a retry or a helper.
func ChooseTask(cands []Candidate) (int, string) {
	switch len(cands) {
	case 0:
		return -1, ""
	case 1:
		return 0, ChoseOnly
	}
	best := 0
	for i, c := range cands {
		if c.Entry.ID.Start < cands[best].Entry.ID.Start ||
			(c.Entry.ID.Start == cands[best].Entry.ID.Start && c.Entry.ID.PID < cands[best].Entry.ID.PID) {
			best = i
		}
	}
	return best, ChoseEarliest
}

// maxChoices bounds the rules whose last choice Notices remembers.
const maxChoices = 4096

// Notices remembers what was reported about single-process rules, so a choice among several
// processes is logged once per change of the candidates, and a process refused for whom it
// belongs to once per process. The zero value is ready.
type Notices struct {
	seed    maphash.Seed
	choices map[string]uint64      // rule key -> hash of the candidates last reported
	refused map[process.ID]Verdict // processes reported as refused
}

// ChoiceChanged reports whether the candidates of the rule with this key (and which are ours)
// differ from those last reported for it (the order does not matter), and remembers them.
func (n *Notices) ChoiceChanged(key string, cands []Candidate) bool {
	if n.choices == nil {
		n.seed, n.choices = maphash.MakeSeed(), map[string]uint64{}
	}
	var sum uint64
	for _, c := range cands {
		var h maphash.Hash
		h.SetSeed(n.seed)
		var b [13]byte
		pid, start := uint32(c.Entry.ID.PID), c.Entry.ID.Start
		for i := range 4 {
			b[i] = byte(pid >> (8 * i))
		}
		for i := range 8 {
			b[4+i] = byte(start >> (8 * i))
		}
		if c.Ours {
			b[12] = 1
		}
		_, _ = h.Write(b[:])
		sum += h.Sum64() // a sum: the same set in any order
	}
	if old, ok := n.choices[key]; ok && old == sum {
		return false
	}
	if len(n.choices) >= maxChoices {
		// Rules of tasks long gone: forgetting them costs at most one repeated warning.
		clear(n.choices)
	}
	n.choices[key] = sum
	return true
}

// AnyChoice reports whether a choice among several is remembered for some rule.
func (n *Notices) AnyChoice() bool { return len(n.choices) > 0 }

// ForgetChoice drops what was reported for a rule: its next choice among several is reported.
func (n *Notices) ForgetChoice(key string) { delete(n.choices, key) }

// Refused reports whether a process refused with v has not been reported yet, and remembers it.
func (n *Notices) Refused(id process.ID, v Verdict) bool {
	if n.refused == nil {
		n.refused = map[process.ID]Verdict{}
	}
	if old, ok := n.refused[id]; ok && old == v {
		return false
	}
	n.refused[id] = v
	return true
}

// Forget drops the processes that are gone, so the memory follows the processes alive.
func (n *Notices) Forget(gone func(process.ID) bool) {
	for id := range n.refused {
		if gone(id) {
			delete(n.refused, id)
		}
	}
}

// Sorted returns the candidates in start order, for a stable log line.
func Sorted(cands []Candidate) []Candidate {
	out := slices.Clone(cands)
	slices.SortFunc(out, func(a, b Candidate) int {
		if a.Entry.ID.Start != b.Entry.ID.Start {
			if a.Entry.ID.Start < b.Entry.ID.Start {
				return -1
			}
			return 1
		}
		return int(a.Entry.ID.PID - b.Entry.ID.PID)
	})
	return out
}
