package process

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResolveCgroup(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(root, "tasks"), 0o755))
	require.NoError(t, os.Symlink(elsewhere, filepath.Join(root, "escape")))
	require.NoError(t, os.Symlink("tasks", filepath.Join(root, "inside")))
	realRoot, err := filepath.EvalSymlinks(root)
	require.NoError(t, err)
	for _, c := range []struct {
		path, want string
	}{
		{"tasks", filepath.Join(realRoot, "tasks")},
		{"tasks/t1", filepath.Join(realRoot, "tasks/t1")},
		{filepath.Join(root, "tasks/t1/a"), filepath.Join(realRoot, "tasks/t1/a")},
		{"inside/t2", filepath.Join(realRoot, "tasks/t2")},
	} {
		got, err := ResolveCgroup(root, c.path)
		if assert.NoError(t, err, c.path) {
			assert.Equal(t, c.want, got, c.path)
		}
	}
	for _, p := range []string{"escape", "escape/t1", elsewhere, "/etc", filepath.Join(root, "../x")} {
		_, err := ResolveCgroup(root, p)
		assert.ErrorIs(t, err, ErrOutsideCgroupRoot, p)
	}
	_, err = ResolveCgroup("", "x")
	assert.Error(t, err, "no v2 hierarchy")
}
