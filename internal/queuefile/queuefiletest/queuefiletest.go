// Package queuefiletest damages bbolt files the ways a queue file is found after a power
// loss or on a failing disk, for the tests of what reads them.
package queuefiletest // import "github.com/otelcol-propeller/otelcol-propeller/internal/queuefile/queuefiletest"

import (
	"bytes"
	"os"
)

// Corruptions are the damages, by name: the file cut short, pages in its middle overwritten,
// and both meta pages (bbolt keeps two, so one bad meta page alone is survived) overwritten.
var Corruptions = map[string]func(path string) error{
	"truncated": func(path string) error {
		return os.Truncate(path, 3*int64(os.Getpagesize()))
	},
	"overwritten": func(path string) error {
		page := int64(os.Getpagesize())
		return overwrite(path, 2*page, bytes.Repeat([]byte{0xAB}, int(8*page)))
	},
	"meta pages": func(path string) error {
		page := int64(os.Getpagesize())
		// Past each page's header: the meta's magic, version and checksum.
		if err := overwrite(path, 16, bytes.Repeat([]byte{0x5A}, 64)); err != nil {
			return err
		}
		return overwrite(path, page+16, bytes.Repeat([]byte{0x5A}, 64))
	},
}

func overwrite(path string, at int64, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, at); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
