package process

import "bytes"

// Owner is who a process runs as: its real and effective user ids. A process is owned by a
// user only when both are that user's: a set-user-id program started by one user runs with
// another's effective id, and the owner of /proc/<pid> is root for a process that made itself
// non-dumpable, so neither alone says who started the process.
type Owner struct {
	Real, Effective int64 // -1 when unknown
}

// unknownOwner is the Owner of a process whose status could not be read.
var unknownOwner = Owner{Real: -1, Effective: -1}

// Is reports whether the process runs as uid, both really and effectively.
func (o Owner) Is(uid int64) bool { return uid >= 0 && o.Real == uid && o.Effective == uid }

var uidKey = []byte("\nUid:")

// parseStatusUIDs reads the real and effective uids from the "Uid:" line of a
// /proc/<pid>/status file ("Uid:\t<real>\t<effective>\t<saved>\t<fs>"), without allocating.
func parseStatusUIDs(b []byte) (Owner, bool) {
	i := bytes.Index(b, uidKey)
	if i < 0 {
		return unknownOwner, false
	}
	b = b[i+len(uidKey):]
	var vals [2]int64
	for n := range vals {
		for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
			b = b[1:]
		}
		var v int64
		digits := 0
		for len(b) > 0 && b[0] >= '0' && b[0] <= '9' && digits < 10 {
			v = v*10 + int64(b[0]-'0')
			b, digits = b[1:], digits+1
		}
		if digits == 0 {
			return unknownOwner, false
		}
		vals[n] = v
	}
	return Owner{Real: vals[0], Effective: vals[1]}, true
}
