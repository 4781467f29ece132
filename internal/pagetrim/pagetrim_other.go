//go:build !linux

package pagetrim

// PageOut returns ErrUnsupported outside Linux.
func PageOut() (Result, error) {
	return Result{}, ErrUnsupported
}
