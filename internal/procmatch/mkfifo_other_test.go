//go:build !unix

package procmatch

import "errors"

func mkfifo(string) error { return errors.New("no FIFOs on this system") }
