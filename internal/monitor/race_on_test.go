//go:build race

package monitor

// maxIdleShare is the most of a core the monitor may use with 10,000 pending tasks, with the
// race detector, which makes every memory access several times slower.
const maxIdleShare = 0.25
