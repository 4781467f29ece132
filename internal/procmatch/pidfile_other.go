//go:build !unix

package procmatch

import (
	"io"
	"os"
)

// readSmallFile reads a regular file into buf and returns how many bytes it read, at most
// len(buf). Anything but a regular file is refused before any read, and so is a file that says
// it is larger than buf.
func readSmallFile(path string, buf []byte) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() > int64(len(buf)) {
		return 0, false
	}
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return 0, false
	}
	return n, true
}
