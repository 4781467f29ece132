package procfs

// Statm holds /proc/<pid>/statm, in pages.
type Statm struct {
	Size     uint64 // total program size (same as VmSize in status)
	Resident uint64 // resident set size (same as VmRSS in status)
	Shared   uint64 // resident shared pages (file-backed and shared memory)
}

// ParseStatm parses the content of /proc/<pid>/statm into s.
func ParseStatm(b []byte, s *Statm) error {
	f := fields{b: b}
	var ok1, ok2, ok3 bool
	s.Size, ok1 = f.nextUint()
	s.Resident, ok2 = f.nextUint()
	s.Shared, ok3 = f.nextUint()
	if !ok1 || !ok2 || !ok3 {
		return ErrMalformed
	}
	return nil
}
