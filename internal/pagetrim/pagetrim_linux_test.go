package pagetrim

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExecutableRegions(t *testing.T) {
	// /proc/<pid>/smaps, most counters left out
	const smaps = `00400000-00c3c000 r-xp 00000000 fd:01 1837393                            /usr/bin/otelcol-propeller-edge
Size:               8432 kB
Rss:                4316 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00c3c000-01611000 r--p 0083c000 fd:01 1837393                            /usr/bin/otelcol-propeller-edge
Rss:                7504 kB
Anonymous:            12 kB
VmFlags: rd mr mw me
01611000-016a3000 rw-p 01211000 fd:01 1837393                            /usr/bin/otelcol-propeller-edge
Anonymous:           280 kB
016a3000-016e5000 rw-p 00000000 00:00 0 
Anonymous:           264 kB
c000000000-c000400000 rw-p 00000000 00:00 0 
Anonymous:          4096 kB
7f10a0000000-7f10a0021000 r--s 00000000 fd:01 2201                       /var/lib/otelcol-propeller/queue/exporter_mqtt__metrics
Anonymous:             0 kB
7f10a1000000-7f10a1021000 r-xp 00000000 fd:02 1837393                    /mnt/other-device-same-inode
Anonymous:             0 kB
7f10a2000000-7f10a2021000 r-xp 00000000 fd:01 1837394                    /usr/lib/other-file
Anonymous:             0 kB
7ffd5b9e6000-7ffd5ba07000 rw-p 00000000 00:00 0                          [stack]
Anonymous:           132 kB
7ffd5bbd2000-7ffd5bbd4000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
`
	exe := file{major: 0xfd, minor: 0x01, ino: 1837393, path: "/usr/local/bin/otelcol-propeller-edge"}
	got, err := executableRegions([]byte(smaps), exe)
	require.NoError(t, err)
	// the code and the read-only data (with its written pages counted); not the writable
	// data, the bss, another device's file with the same inode number, another file, or
	// anonymous memory
	assert.Equal(t, []region{{0x400000, 0xc3c000, 0}, {0xc3c000, 0x1611000, 12}}, got)

	// overlayfs: smaps names the underlying file's device and inode; the path still matches
	const overlay = `00400000-00c3c000 r-xp 00000000 00:2a 99                                 /otelcol propeller edge
Anonymous:             0 kB
00c3c000-01611000 r--p 0083c000 00:2a 99                                 /otelcol propeller edge
Anonymous:             0 kB
`
	got, err = executableRegions([]byte(overlay), file{major: 0, minor: 0x3f, ino: 5, path: "/otelcol propeller edge"})
	require.NoError(t, err)
	assert.Equal(t, []region{{0x400000, 0xc3c000, 0}, {0xc3c000, 0x1611000, 0}}, got)

	_, err = executableRegions([]byte("zz-00c3c000 r-xp 00000000 fd:01 7 /x\n"), file{major: 0xfd, minor: 0x01, ino: 7})
	assert.ErrorContains(t, err, `bad range "zz-00c3c000"`)
}

// TestPageOut pages out this test binary: its read-only mappings are found and its resident
// file-backed memory goes down, whoever owns the file (run it as another user to see the
// MADV_DONTNEED path: MADV_PAGEOUT then leaves the file's pages alone).
func TestPageOut(t *testing.T) {
	res, err := PageOut()
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	require.NoError(t, err)
	assert.GreaterOrEqual(t, res.Mappings, 2, "the code and the read-only data")
	assert.Greater(t, res.Mapped, uint64(1<<20))
	assert.Greater(t, res.Before, uint64(0))
	assert.Less(t, res.After, res.Before)
}
