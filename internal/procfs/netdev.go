package procfs

import "bytes"

// NetDev holds interface byte counters of /proc/<pid>/net/dev summed over every interface
// except loopback. The file describes a whole network namespace, not one process.
type NetDev struct {
	RxBytes uint64
	TxBytes uint64
}

// ParseNetDev parses the content of /proc/<pid>/net/dev into n, skipping the two header lines
// and the "lo" interface.
func ParseNetDev(b []byte, n *NetDev) error {
	*n = NetDev{}
	off := 0
	var l []byte
	for range 2 {
		if off >= len(b) {
			return ErrMalformed
		}
		l, off = line(b, off)
		if bytes.IndexByte(l, '|') < 0 {
			return ErrMalformed
		}
	}
	for off < len(b) {
		l, off = line(b, off)
		if len(trimSpace(l)) == 0 {
			continue
		}
		colon := bytes.IndexByte(l, ':')
		if colon < 0 {
			return ErrMalformed
		}
		if string(trimSpace(l[:colon])) == "lo" {
			continue
		}
		f := fields{b: l[colon+1:]}
		rx, ok := f.nextUint()
		if !ok || !f.skip(7) {
			return ErrMalformed
		}
		tx, ok := f.nextUint()
		if !ok {
			return ErrMalformed
		}
		n.RxBytes += rx
		n.TxBytes += tx
	}
	return nil
}
