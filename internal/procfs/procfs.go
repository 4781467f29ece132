package procfs

import "errors"

// ErrMalformed is returned when a file's content does not have the kernel's format:
// truncated, a field that is not a number, or a line that is missing.
var ErrMalformed = errors.New("malformed content")

// UserHZ is the unit of the clock-tick fields in /proc/<pid>/stat and /proc/stat. The kernel
// reports them in USER_HZ, which is 100 on every Linux architecture Go supports.
const UserHZ = 100

// ErrAbsent is returned when a file has the kernel's format but not the fields asked for:
// the kernel feature or cgroup controller that writes them is off.
var ErrAbsent = errors.New("fields absent")
