//go:build !race

package procmatch

// raceEnabled says the race detector is on: its instrumentation allocates.
const raceEnabled = false
