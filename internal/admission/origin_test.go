package admission

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWhoMayEndWhat is the ownership rule, door by door.
func TestWhoMayEndWhat(t *testing.T) {
	origins := []Origin{OriginConfig, OriginTaskAPI, OriginManager, OriginDiscovery}
	end := map[Origin][]Origin{
		OriginTaskAPI: {OriginTaskAPI},
		OriginManager: {OriginManager, OriginDiscovery},
	}
	change := map[Origin][]Origin{
		OriginTaskAPI: origins,
		OriginManager: {OriginManager, OriginDiscovery},
	}
	for _, door := range origins {
		for _, owner := range origins {
			assert.Equal(t, contains(end[door], owner), MayEnd(door, owner), "%s ends a task of %s", door, owner)
			assert.Equal(t, contains(change[door], owner), MayChange(door, owner), "%s changes a task of %s", door, owner)
		}
	}
}

func contains(os []Origin, o Origin) bool {
	for _, x := range os {
		if x == o {
			return true
		}
	}
	return false
}

func TestOwnerErrorNamesBothDoorsAndTheFix(t *testing.T) {
	err := CheckEnd(OriginManager, "t1", OriginConfig)
	var oe *OwnerError
	require.True(t, errors.As(err, &oe))
	assert.Equal(t, `task "t1" came from the receiver's configuration: the manager may not end it (each door ends only the tasks it created); remove it from the receiver's configuration`, err.Error())
	assert.Contains(t, CheckChange(OriginManager, "t2", OriginTaskAPI).Error(), "the manager may not change the profile of it")
	assert.NoError(t, CheckEnd(OriginManager, "t3", OriginDiscovery))
}

func TestAdmitKeepsTheOrigin(t *testing.T) {
	p, _, err := NewPolicy(nil, "standard", "long_running_daemon")
	require.NoError(t, err)
	spec, _, err := p.Admit(Request{ID: "t", PID: 1, Origin: OriginManager})
	require.NoError(t, err)
	assert.Equal(t, OriginManager, spec.Origin)
}

// TestCgroupUnderTheMount: with a cgroup mount set, a task's cgroup outside it, as written or
// through a symbolic link, is refused.
func TestCgroupUnderTheMount(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	require.NoError(t, os.Symlink(elsewhere, filepath.Join(root, "escape")))
	p, _, err := NewPolicy(nil, "standard", "long_running_daemon")
	require.NoError(t, err)
	p.CgroupRoot = root
	for _, ok := range []string{"tasks/t1", filepath.Join(root, "tasks/t1")} {
		_, _, err := p.Admit(Request{ID: "t", Cgroup: ok})
		assert.NoError(t, err, ok)
	}
	for _, bad := range []string{elsewhere, "escape/t1", "/dev"} {
		_, _, err := p.Admit(Request{ID: "t", Cgroup: bad})
		if assert.Error(t, err, bad) {
			assert.Contains(t, err.Error(), "cgroup: must lie under the cgroup mount "+root)
			assert.Equal(t, "cgroup", Reason(err))
		}
	}
}
