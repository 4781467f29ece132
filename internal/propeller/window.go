package propeller

import (
	"math"
	"sort"
)

// Entry is one task sample as the window keeps it.
type Entry struct {
	Time       int64   // sample timestamp, Unix nanoseconds; the window's key
	Has        Has     // HasCPU, HasMemory, HasDisk, HasNetwork
	CPUTime    float64 // cumulative CPU seconds, for the next sample's cpu_percent
	CPUPercent float64
	Memory     uint64
	DiskRead   uint64 // cumulative
	DiskWrite  uint64
	NetRx      uint64 // cumulative
	NetTx      uint64
}

// Window is a FIFO of a task's last samples, ordered by time. Adding a sample with a time the
// window already holds changes nothing, so a batch that is sent again after a failure yields
// the same messages.
type Window struct {
	size    int
	entries []Entry // ordered by Time, at most size
}

// NewWindow returns a window of the last size samples (at least 1: the last sample is kept
// even without history, for CPU deltas and retries).
func NewWindow(size int) *Window { return &Window{size: max(size, 1)} }

// Resize changes the window length, dropping the oldest samples if it shrinks.
func (w *Window) Resize(size int) {
	w.size = max(size, 1)
	if over := len(w.entries) - w.size; over > 0 {
		w.entries = append(w.entries[:0], w.entries[over:]...)
	}
	if cap(w.entries) > w.size {
		w.entries = append(make([]Entry, 0, w.size), w.entries...)
	}
}

// Find returns the entry with the given time.
func (w *Window) Find(t int64) (Entry, bool) {
	i := sort.Search(len(w.entries), func(i int) bool { return w.entries[i].Time >= t })
	if i < len(w.entries) && w.entries[i].Time == t {
		return w.entries[i], true
	}
	return Entry{}, false
}

// Before returns the latest entry older than t.
func (w *Window) Before(t int64) (Entry, bool) {
	i := sort.Search(len(w.entries), func(i int) bool { return w.entries[i].Time >= t })
	if i == 0 {
		return Entry{}, false
	}
	return w.entries[i-1], true
}

// Add inserts e in time order; it reports false if an entry with that time exists. When the
// window is full the oldest entry goes.
func (w *Window) Add(e Entry) bool {
	n := len(w.entries)
	i := n
	if n > 0 && e.Time <= w.entries[n-1].Time {
		i = sort.Search(n, func(i int) bool { return w.entries[i].Time >= e.Time })
		if i < n && w.entries[i].Time == e.Time {
			return false
		}
	}
	if n == w.size {
		if i == 0 {
			return false // older than everything the window keeps
		}
		copy(w.entries, w.entries[1:i])
		w.entries[i-1] = e
		return true
	}
	if n == cap(w.entries) {
		// Grown by doubling, as append grows, but never past size: a window of 100 entries
		// holds 100 (8,000 B), not append's 128 (10,240 B), for every task, for its whole life.
		grown := make([]Entry, n, min(max(2*n, 4), w.size))
		copy(grown, w.entries)
		w.entries = grown
	}
	w.entries = w.entries[:n+1]
	copy(w.entries[i+1:], w.entries[i:])
	w.entries[i] = e
	return true
}

// Aggregate summarises the entries up to and including time t: averages and maxima, totals as
// last minus first cumulative value, and the count. CPU percentages are rounded to four
// decimals, as a message's cpu_percent is.
func (w *Window) Aggregate(t int64) Aggregated {
	var a Aggregated
	var cpuN, memN int
	var firstDisk, firstNet *Entry
	var lastDisk, lastNet *Entry
	for i := range w.entries {
		e := &w.entries[i]
		if e.Time > t {
			break
		}
		a.SampleCount++
		if e.Has&HasCPU != 0 && !math.IsNaN(e.CPUPercent) {
			a.AvgCPUUsage += e.CPUPercent
			if cpuN == 0 || e.CPUPercent > a.MaxCPUUsage {
				a.MaxCPUUsage = e.CPUPercent
			}
			cpuN++
		}
		if e.Has&HasMemory != 0 {
			a.AvgMemoryUsage += float64(e.Memory)
			a.MaxMemoryUsage = max(a.MaxMemoryUsage, e.Memory)
			memN++
		}
		if e.Has&HasDisk != 0 {
			if firstDisk == nil {
				firstDisk = e
			}
			lastDisk = e
		}
		if e.Has&HasNetwork != 0 {
			if firstNet == nil {
				firstNet = e
			}
			lastNet = e
		}
	}
	if cpuN > 0 {
		a.Has |= HasCPU
		a.AvgCPUUsage = roundPercent(a.AvgCPUUsage / float64(cpuN))
		a.MaxCPUUsage = roundPercent(a.MaxCPUUsage)
	}
	if memN > 0 {
		a.Has |= HasMemory
		a.AvgMemoryUsage /= float64(memN)
	}
	if firstDisk != nil {
		a.Has |= HasDisk
		a.TotalDiskRead = sub(lastDisk.DiskRead, firstDisk.DiskRead)
		a.TotalDiskWrite = sub(lastDisk.DiskWrite, firstDisk.DiskWrite)
	}
	if firstNet != nil {
		a.Has |= HasNetwork
		a.TotalNetworkRx = sub(lastNet.NetRx, firstNet.NetRx)
		a.TotalNetworkTx = sub(lastNet.NetTx, firstNet.NetTx)
	}
	return a
}

// roundPercent rounds a percentage to four decimals: more digits are noise from float
// arithmetic (an average of five samples is 98.61855263157896).
func roundPercent(v float64) float64 { return math.Round(v*1e4) / 1e4 }

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
