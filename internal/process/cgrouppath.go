package process

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// ErrOutsideCgroupRoot is returned for a cgroup path that does not lie under the cgroup
// mount, as written or once its symbolic links are resolved: such a directory is not a cgroup,
// and its "cgroup files" can be anything its owner made them.
var ErrOutsideCgroupRoot = errors.New("outside the cgroup hierarchy")

// ResolveCgroup returns the directory a task's cgroup path names, with every symbolic link
// resolved: path is absolute, or relative to root (the cgroup v2 mount). It fails with
// ErrOutsideCgroupRoot when the directory is not under root. A path that does not exist yet
// (a cgroup created when its task starts) is resolved as far as it exists: the elements past
// that cannot be links yet, and the open resolves the path again.
func ResolveCgroup(root, path string) (string, error) {
	if root == "" {
		return "", fmt.Errorf("cgroup %s: no cgroup v2 hierarchy is mounted", path)
	}
	realRoot, err := resolveExisting(filepath.Clean(root))
	if err != nil {
		return "", fmt.Errorf("cgroup root %s: %w", root, err)
	}
	dir := path
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	dir = filepath.Clean(dir)
	if !within(filepath.Clean(root), dir) && !within(realRoot, dir) {
		return "", fmt.Errorf("cgroup %s: %w %s", path, ErrOutsideCgroupRoot, root)
	}
	real, err := resolveExisting(dir)
	if err != nil {
		return "", fmt.Errorf("cgroup %s: %w", path, err)
	}
	if !within(realRoot, real) {
		return "", fmt.Errorf("cgroup %s resolves to %s: %w %s", path, real, ErrOutsideCgroupRoot, root)
	}
	return real, nil
}

// resolveExisting resolves the symbolic links of the longest existing prefix of an absolute,
// clean path and appends the rest.
func resolveExisting(p string) (string, error) {
	rest := ""
	for {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// within reports whether p is root or lies under it; both are clean.
func within(root, p string) bool {
	if root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}
