//go:build race

package propletreceiver

// raceEnabled says the tests run with the race detector, whose bookkeeping makes the heap
// several times larger: a bound on the heap measures the receiver only without it.
const raceEnabled = true
