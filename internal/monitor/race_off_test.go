//go:build !race

package monitor

// maxIdleShare is the most of a core the monitor may use with 10,000 pending tasks.
const maxIdleShare = 0.05
