// Package packaging_test checks the .deb and .rpm packages that make package builds from
// packaging/nfpm.yaml: their contents, modes and maintainer scripts, the systemd unit (with
// systemd-analyze verify on the installed layout), the claim that ambient capabilities survive
// NoNewPrivileges, and, when asked (PROPLET_PACKAGE_INSTALL_TEST=1), a real dpkg install and
// purge. Each test skips, saying why, when a tool it needs is not installed.
package packaging_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

const (
	name    = "otelcol-propeller"
	binPath = "/usr/bin/otelcol-propeller"
	unitDst = "/usr/lib/systemd/system/otelcol-propeller.service"
	cfgPath = "/etc/otelcol-propeller/config.yaml"
	envPath = "/etc/otelcol-propeller/otelcol-propeller.env"
	// stateDir is where systemd's StateDirectory= puts the service's writable state.
	stateDir = "/var/lib/otelcol-propeller"
)

// repoRoot is the repository root, seen from this package's directory (go test's working directory).
const repoRoot = ".."

// distBinary is what make build produces and make package packs by default.
var distBinary = filepath.Join(repoRoot, "_build", name)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	buildSkip string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// packages builds the .deb and .rpm once per test binary with the Makefile's own target (make
// package, into a temporary PKG_DIR) and returns their paths. The distribution binary is taken
// as it is (-o): a test never starts a Collector build.
func packages(t *testing.T) (deb, rpm string) {
	t.Helper()
	buildOnce.Do(func() {
		if _, err := os.Stat(distBinary); err != nil {
			buildSkip = "no " + distBinary + " (make build first; make test does)"
			return
		}
		if _, err := exec.LookPath("make"); err != nil {
			buildSkip = "make is not installed"
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "otelcol-propeller-packages-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("make", "-s", "-C", repoRoot, "-o", "_build/"+name, "package", "PKG_DIR="+buildDir)
		// A make test parent's flags (-j, -k, variables) are not this make's.
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
			return strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MFLAGS=") || strings.HasPrefix(kv, "MAKELEVEL=")
		})
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("make package: %w\n%s", err, out)
		}
	})
	if buildSkip != "" {
		t.Skip(buildSkip)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	debs, _ := filepath.Glob(filepath.Join(buildDir, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(buildDir, "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("make package made %v and %v, want one .deb and one .rpm", debs, rpms)
	}
	return debs[0], rpms[0]
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian: apt-get install %s)", tool, map[string]string{
				"dpkg-deb": "dpkg", "dpkg": "dpkg", "rpm": "rpm", "systemd-analyze": "systemd", "setpriv": "util-linux",
			}[tool])
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// entry is one file of a package as its package manager lists it.
type entry struct{ mode, owner, group string }

// wantFiles is every regular file the packages install, with the mode and owners they must have.
var wantFiles = map[string]entry{
	binPath: {"-rwxr-xr-x", "root", "root"},
	unitDst: {"-rw-r--r--", "root", "root"},
	cfgPath: {"-rw-r--r--", "root", "root"},
	// The MQTT password: the service's group reads it, nobody else.
	envPath: {"-rw-r-----", "root", name},
}

// wantConffiles are kept across upgrades (dpkg conffiles; rpm %config(noreplace)).
var wantConffiles = []string{cfgPath, envPath}

// wantScripts maps each maintainer script in the source tree to its .deb and .rpm names.
var wantScripts = []struct{ src, deb, rpm string }{
	{"preinstall.sh", "preinst", "preinstall scriptlet"},
	{"postinstall.sh", "postinst", "postinstall scriptlet"},
	{"preremove.sh", "prerm", "preuninstall scriptlet"},
	{"postremove.sh", "postrm", "postuninstall scriptlet"},
}

// debArch is the Debian name of this machine's architecture, which make package builds for.
func debArch() string {
	if runtime.GOARCH == "arm" {
		return "armhf"
	}
	return runtime.GOARCH
}

// extract unpacks the .deb into a fresh root.
func extract(t *testing.T, deb string) string {
	t.Helper()
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	return root
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
