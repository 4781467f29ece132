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
//
// A task keeps its window for its whole life, and a host may run thousands of tasks, so the
// window keeps what Entry says in 32 bytes a sample (Entry itself is 72): the CPU percentage
// as an integer of 1/10,000ths (it is sent rounded to four decimals, so nothing is lost), and
// the disk and network counters in slices of their own, made only once a sample carries them.
// A task of the standard profile (history_size 100, disk counters, no network namespace of its
// own) keeps 4,800 B, not 7,200.
type Window struct {
	size  int
	slots []slot    // ordered by time, at most size
	disk  []counter // nil, or one per slot: read, write
	net   []counter // nil, or one per slot: rx, tx
}

// slot is an Entry but for its disk and network counters.
type slot struct {
	time    int64
	cpuTime float64
	memory  uint64
	cpu     int32 // CPUPercent x 10,000; noPercent for NaN
	has     Has
}

// counter is a pair of cumulative counters: disk read and write, or network rx and tx.
type counter struct{ a, b uint64 }

// noPercent stands for a CPU percentage that is NaN (none yet: the first sample of a task
// found late).
const noPercent = math.MinInt32

// percentScale is what a CPU percentage is kept as a multiple of: four decimals.
const percentScale = 1e4

func toPercent(v float64) int32 {
	if math.IsNaN(v) {
		return noPercent
	}
	return int32(math.Max(math.MinInt32+1, math.Min(math.MaxInt32, math.Round(v*percentScale))))
}

func fromPercent(p int32) float64 {
	if p == noPercent {
		return math.NaN()
	}
	return float64(p) / percentScale
}

// NewWindow returns a window of the last size samples (at least 1: the last sample is kept
// even without history, for CPU deltas and retries).
func NewWindow(size int) *Window { return &Window{size: max(size, 1)} }

// Resize changes the window length, dropping the oldest samples if it shrinks.
func (w *Window) Resize(size int) {
	w.size = max(size, 1)
	over := len(w.slots) - w.size
	w.slots = fit(w.slots, over, w.size)
	w.disk = fit(w.disk, over, w.size)
	w.net = fit(w.net, over, w.size)
}

// fit drops the first over elements of s (when over > 0) and gives back room past size.
func fit[T any](s []T, over, size int) []T {
	if s == nil {
		return nil
	}
	if over > 0 {
		s = append(s[:0], s[over:]...)
	}
	if cap(s) > size {
		s = append(make([]T, 0, size), s...)
	}
	return s
}

// entry rebuilds the Entry of slot i.
func (w *Window) entry(i int) Entry {
	s := &w.slots[i]
	e := Entry{Time: s.time, Has: s.has, CPUTime: s.cpuTime, CPUPercent: fromPercent(s.cpu), Memory: s.memory}
	if w.disk != nil {
		e.DiskRead, e.DiskWrite = w.disk[i].a, w.disk[i].b
	}
	if w.net != nil {
		e.NetRx, e.NetTx = w.net[i].a, w.net[i].b
	}
	return e
}

// search returns the index of the first slot at or after t.
func (w *Window) search(t int64) int {
	return sort.Search(len(w.slots), func(i int) bool { return w.slots[i].time >= t })
}

// Find returns the entry with the given time.
func (w *Window) Find(t int64) (Entry, bool) {
	i := w.search(t)
	if i < len(w.slots) && w.slots[i].time == t {
		return w.entry(i), true
	}
	return Entry{}, false
}

// Before returns the latest entry older than t.
func (w *Window) Before(t int64) (Entry, bool) {
	i := w.search(t)
	if i == 0 {
		return Entry{}, false
	}
	return w.entry(i - 1), true
}

// Add inserts e in time order; it reports false if an entry with that time exists. When the
// window is full the oldest entry goes. Its CPU percentage is kept to four decimals.
func (w *Window) Add(e Entry) bool {
	n := len(w.slots)
	i := n
	if n > 0 && e.Time <= w.slots[n-1].time {
		i = w.search(e.Time)
		if i < n && w.slots[i].time == e.Time {
			return false
		}
	}
	if n == w.size && i == 0 {
		return false // older than everything the window keeps
	}
	if e.Has&HasDisk != 0 && w.disk == nil {
		w.disk = make([]counter, n, cap(w.slots))
	}
	if e.Has&HasNetwork != 0 && w.net == nil {
		w.net = make([]counter, n, cap(w.slots))
	}
	s := slot{time: e.Time, cpuTime: e.CPUTime, memory: e.Memory, cpu: toPercent(e.CPUPercent), has: e.Has}
	w.slots = insert(w.slots, i, s, w.size)
	if w.disk != nil {
		w.disk = insert(w.disk, i, counter{e.DiskRead, e.DiskWrite}, w.size)
	}
	if w.net != nil {
		w.net = insert(w.net, i, counter{e.NetRx, e.NetTx}, w.size)
	}
	return true
}

// insert puts v at index i of s, which holds at most size elements: when s is full its first
// element goes (and i > 0). s grows by doubling, as append grows, but never past size: a
// window of 100 holds 100, not append's 128, for every task, for its whole life.
func insert[T any](s []T, i int, v T, size int) []T {
	n := len(s)
	if n == size {
		copy(s, s[1:i])
		s[i-1] = v
		return s
	}
	if n == cap(s) {
		grown := make([]T, n, min(max(2*n, 4), size))
		copy(grown, s)
		s = grown
	}
	s = s[:n+1]
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

// Aggregate summarises the entries up to and including time t: averages and maxima, totals as
// last minus first cumulative value, and the count. CPU percentages are rounded to four
// decimals, as a message's cpu_percent is.
func (w *Window) Aggregate(t int64) Aggregated {
	var a Aggregated
	var cpuN, memN int
	firstDisk, lastDisk, firstNet, lastNet := -1, -1, -1, -1
	for i := range w.slots {
		s := &w.slots[i]
		if s.time > t {
			break
		}
		a.SampleCount++
		if s.has&HasCPU != 0 && s.cpu != noPercent {
			cpu := fromPercent(s.cpu)
			a.AvgCPUUsage += cpu
			if cpuN == 0 || cpu > a.MaxCPUUsage {
				a.MaxCPUUsage = cpu
			}
			cpuN++
		}
		if s.has&HasMemory != 0 {
			a.AvgMemoryUsage += float64(s.memory)
			a.MaxMemoryUsage = max(a.MaxMemoryUsage, s.memory)
			memN++
		}
		if s.has&HasDisk != 0 {
			if firstDisk < 0 {
				firstDisk = i
			}
			lastDisk = i
		}
		if s.has&HasNetwork != 0 {
			if firstNet < 0 {
				firstNet = i
			}
			lastNet = i
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
	if firstDisk >= 0 {
		a.Has |= HasDisk
		a.TotalDiskRead = sub(w.disk[lastDisk].a, w.disk[firstDisk].a)
		a.TotalDiskWrite = sub(w.disk[lastDisk].b, w.disk[firstDisk].b)
	}
	if firstNet >= 0 {
		a.Has |= HasNetwork
		a.TotalNetworkRx = sub(w.net[lastNet].a, w.net[firstNet].a)
		a.TotalNetworkTx = sub(w.net[lastNet].b, w.net[firstNet].b)
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
