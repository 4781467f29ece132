//go:build linux

package process

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestMemoryCgroupLimit: the smallest limit of a cgroup and its ancestors, "max" and v1's
// no-limit value are none, a level without the file is skipped, and a removed cgroup or a
// file that is not one is an error, not "no limit".
func TestMemoryCgroupLimit(t *testing.T) {
	tree := func(t *testing.T, file string, values ...string) (root, leaf string) {
		root = t.TempDir()
		leaf = root
		for i, v := range values {
			if i > 0 {
				leaf = filepath.Join(leaf, "c")
				require.NoError(t, os.Mkdir(leaf, 0o755))
			}
			if v != "" {
				require.NoError(t, os.WriteFile(filepath.Join(leaf, file), []byte(v+"\n"), 0o600))
			}
		}
		return root, leaf
	}
	tests := map[string]struct {
		v2      bool
		values  []string // the root first; "" is a level without the file
		limit   uint64
		limited bool
	}{
		"v2 leaf":              {true, []string{"", "max", "67108864"}, 64 << 20, true},
		"v2 parent is smaller": {true, []string{"", "1048576", "max"}, 1 << 20, true},
		"v2 none":              {true, []string{"", "max", "max"}, 0, false},
		"v2 undelegated leaf":  {true, []string{"", "2097152", ""}, 2 << 20, true},
		"v1":                   {false, []string{"9223372036854771712", "9223372036854771712", "67108864"}, 64 << 20, true},
		"v1 none":              {false, []string{"9223372036854771712", "9223372036854771712"}, 0, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			file := "memory.limit_in_bytes"
			if tt.v2 {
				file = "memory.max"
			}
			root, leaf := tree(t, file, tt.values...)
			limit, limited, err := MemoryCgroup{Dir: leaf, V2: tt.v2, Root: root}.Limit()
			require.NoError(t, err)
			assert.Equal(t, tt.limited, limited)
			assert.Equal(t, tt.limit, limit)
		})
	}

	t.Run("own limit without a root", func(t *testing.T) {
		_, leaf := tree(t, "memory.max", "1048576", "4194304")
		limit, limited, err := MemoryCgroup{Dir: leaf, V2: true}.Limit()
		require.NoError(t, err)
		assert.True(t, limited)
		assert.Equal(t, uint64(4<<20), limit, "the parent's is not read without Root")
	})
	t.Run("removed", func(t *testing.T) {
		root := t.TempDir()
		_, _, err := MemoryCgroup{Dir: filepath.Join(root, "gone"), V2: true, Root: root}.Limit()
		assert.ErrorIs(t, err, ErrGone)
		_, _, err = MemoryCgroup{}.Limit()
		assert.ErrorIs(t, err, ErrGone)
	})
	t.Run("a FIFO", func(t *testing.T) {
		root, leaf := tree(t, "memory.max", "", "max")
		require.NoError(t, os.Remove(filepath.Join(leaf, "memory.max")))
		require.NoError(t, unix.Mkfifo(filepath.Join(leaf, "memory.max"), 0o600))
		_, _, err := MemoryCgroup{Dir: leaf, V2: true, Root: root}.Limit()
		assert.ErrorIs(t, err, ErrNotCgroupFile, "refused before any read: the read would block")
	})
}

// TestMemoryCgroupLimitOfThisProcess: the limit read from a process's memory cgroup is the one
// CgroupMemory finds from /proc/<pid>/cgroup.
func TestMemoryCgroupLimitOfThisProcess(t *testing.T) {
	s := newSource(t)
	mc, ok := s.MemoryCgroupOf(int32(os.Getpid()))
	if !ok {
		t.Skip("this process is in no memory cgroup the source can read")
	}
	_, _, want, wantOK := s.CgroupMemory(int32(os.Getpid()))
	limit, limited, err := mc.Limit()
	require.NoError(t, err)
	assert.Equal(t, wantOK, limited)
	assert.Equal(t, want, limit)
	assert.NotEmpty(t, mc.Root)
}
