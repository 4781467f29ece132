// Package packaging_test checks the .deb and .rpm packages that make package builds from
// packaging/nfpm.yaml: their contents, modes and maintainer scripts, the systemd unit (with
// systemd-analyze verify on the installed layout), the claim that ambient capabilities survive
// NoNewPrivileges, and, when asked (PROPLET_PACKAGE_INSTALL_TEST=1), a real dpkg install and
// purge. Each test skips, saying why, when a tool it needs is not installed.
package packaging_test

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
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

func TestDebContents(t *testing.T) {
	need(t, "dpkg-deb")
	deb, _ := packages(t)

	// drwxr-xr-x root/root 0 2026-11-25 15:11 ./etc/otelcol-propeller/
	got := map[string]entry{}
	for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || strings.HasPrefix(f[0], "d") {
			continue
		}
		owner, group, _ := strings.Cut(f[1], "/")
		got[strings.TrimPrefix(f[len(f)-1], ".")] = entry{f[0], owner, group}
	}
	if !maps.Equal(got, wantFiles) {
		t.Errorf("dpkg-deb -c: files\n got %v\nwant %v", got, wantFiles)
	}

	fields := map[string]string{}
	for _, f := range []string{"Package", "Architecture", "Pre-Depends"} {
		fields[f] = strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, f))
	}
	if want := (map[string]string{"Package": name, "Architecture": debArch(), "Pre-Depends": "passwd"}); !maps.Equal(fields, want) {
		t.Errorf("dpkg-deb -f: got %v, want %v", fields, want)
	}

	control := t.TempDir()
	run(t, "dpkg-deb", "-e", deb, control)
	conffiles := strings.Fields(readFile(t, filepath.Join(control, "conffiles")))
	slices.Sort(conffiles)
	if !slices.Equal(conffiles, wantConffiles) {
		t.Errorf("conffiles: got %v, want %v", conffiles, wantConffiles)
	}
	for _, s := range wantScripts {
		path := filepath.Join(control, s.deb)
		info, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", s.deb, err)
			continue
		}
		if info.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v, want -rwxr-xr-x", s.deb, info.Mode())
		}
		if readFile(t, path) != readFile(t, filepath.Join("scripts", s.src)) {
			t.Errorf("%s differs from scripts/%s", s.deb, s.src)
		}
	}
	t.Logf("dpkg-deb -I:\n%s", run(t, "dpkg-deb", "-I", deb))
}

func TestRPMContents(t *testing.T) {
	need(t, "rpm")
	_, rpm := packages(t)

	got := map[string]entry{}
	var conffiles []string
	out := run(t, "rpm", "-qp", "--queryformat", `[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags}. %{FILENAMES}\n]`, rpm)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			t.Fatalf("rpm -qp --queryformat: %q", line)
		}
		if strings.HasPrefix(f[0], "d") {
			continue
		}
		got[f[4]] = entry{f[0], f[1], f[2]}
		// c: %config, n: noreplace (the trailing dot keeps an empty flag list a field).
		if flags := strings.TrimSuffix(f[3], "."); flags != "" {
			if flags != "cn" {
				t.Errorf("%s: file flags %q, want cn (%%config(noreplace))", f[4], flags)
			}
			conffiles = append(conffiles, f[4])
		}
	}
	if !maps.Equal(got, wantFiles) {
		t.Errorf("rpm -qlpv: files\n got %v\nwant %v", got, wantFiles)
	}
	slices.Sort(conffiles)
	if !slices.Equal(conffiles, wantConffiles) {
		t.Errorf("config files: got %v, want %v", conffiles, wantConffiles)
	}
	if arch := run(t, "rpm", "-qp", "--queryformat", "%{ARCH}", rpm); runtime.GOARCH == "amd64" && arch != "x86_64" {
		t.Errorf("rpm arch %q, want x86_64", arch)
	}
	if requires := run(t, "rpm", "-qpR", rpm); !strings.Contains(requires, "shadow-utils") {
		t.Errorf("rpm -qpR: no shadow-utils (useradd):\n%s", requires)
	}

	scripts := run(t, "rpm", "-qp", "--scripts", rpm)
	for _, s := range wantScripts {
		// "preinstall scriptlet (using /bin/sh):\n<the script>"
		_, body, ok := strings.Cut(scripts, s.rpm+" (using /bin/sh):\n")
		if !ok {
			t.Errorf("rpm -qp --scripts: no %s", s.rpm)
			continue
		}
		if src := readFile(t, filepath.Join("scripts", s.src)); !strings.HasPrefix(body, strings.TrimSpace(src)) {
			t.Errorf("rpm %s differs from scripts/%s", s.rpm, s.src)
		}
	}
	t.Logf("rpm -qlpv:\n%s", run(t, "rpm", "-qlpv", rpm))
}

// TestPreinstallCreatesUser runs the preinstall script with useradd, groupadd and getent
// replaced by recorders: on a first install it creates the system group and a system user with
// no login shell and no home directory; when they exist (an upgrade) it creates nothing.
func TestPreinstallCreatesUser(t *testing.T) {
	shells := []string{"/usr/sbin/nologin", "/sbin/nologin", "/bin/false"}
	wantShell := shells[len(shells)-1]
	for _, s := range shells {
		if info, err := os.Stat(s); err == nil && info.Mode()&0o111 != 0 {
			wantShell = s
			break
		}
	}
	for _, tc := range []struct {
		name   string
		exists bool
		arg    string
		want   []string
	}{
		{"deb install", false, "install", []string{
			"groupadd --system otelcol-propeller",
			"useradd --system --gid otelcol-propeller --no-create-home --home-dir /var/lib/otelcol-propeller --shell " + wantShell +
				" --comment otelcol-propeller (Propeller task monitoring) otelcol-propeller",
		}},
		{"rpm install", false, "1", nil}, // same calls as the deb install: filled in below
		{"deb upgrade", true, "upgrade", []string{}},
		{"rpm upgrade", true, "2", []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil {
				tc.want = []string{
					"groupadd --system otelcol-propeller",
					"useradd --system --gid otelcol-propeller --no-create-home --home-dir /var/lib/otelcol-propeller --shell " + wantShell +
						" --comment otelcol-propeller (Propeller task monitoring) otelcol-propeller",
				}
			}
			bin := t.TempDir()
			log := filepath.Join(bin, "calls")
			getent := "exit 2" // getent: key not found
			if tc.exists {
				getent = "exit 0"
			}
			record := `printf '%s' "$(basename "$0")" >>` + log + `; for a in "$@"; do printf ' %s' "$a" >>` + log + `; done; echo >>` + log
			for tool, body := range map[string]string{"getent": getent, "groupadd": record, "useradd": record} {
				if err := os.WriteFile(filepath.Join(bin, tool), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("sh", filepath.Join("scripts", "preinstall.sh"), tc.arg)
			cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("preinstall.sh %s: %v\n%s", tc.arg, err, out)
			}
			calls := []string{}
			if b, err := os.ReadFile(log); err == nil {
				calls = strings.Split(strings.TrimSpace(string(b)), "\n")
			}
			if !slices.Equal(calls, tc.want) {
				t.Errorf("calls:\n got %q\nwant %q", calls, tc.want)
			}
		})
	}
}

// TestScriptsSyntax parses every maintainer script with dash, Debian's /bin/sh, as well as sh.
func TestScriptsSyntax(t *testing.T) {
	for _, s := range wantScripts {
		for _, shell := range []string{"sh", "dash", "bash"} {
			if _, err := exec.LookPath(shell); err != nil {
				continue
			}
			if out, err := exec.Command(shell, "-n", filepath.Join("scripts", s.src)).CombinedOutput(); err != nil {
				t.Errorf("%s -n scripts/%s: %v\n%s", shell, s.src, err, out)
			}
		}
	}
}

// unitKeys reads the [Service] section of the unit: each key's values, in order.
func unitKeys(t *testing.T) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(readFile(t, name+".service")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			keys[k] = append(keys[k], v)
		}
	}
	return keys
}

// ambientCaps is the unit's AmbientCapabilities= list.
func ambientCaps(t *testing.T) []string {
	t.Helper()
	var caps []string
	for _, v := range unitKeys(t)["AmbientCapabilities"] {
		caps = append(caps, strings.Fields(v)...)
	}
	return caps
}

// TestUnit checks what the unit promises: the service user, the capabilities, the env file and
// configuration the packages install, a state directory that holds the configured queue, and
// hardening that leaves /proc whole.
func TestUnit(t *testing.T) {
	keys := unitKeys(t)
	one := func(k string) string {
		if len(keys[k]) != 1 {
			t.Errorf("%s= set %d times, want once", k, len(keys[k]))
			return ""
		}
		return keys[k][0]
	}
	for k, want := range map[string]string{
		"User":                  name,
		"Group":                 name,
		"EnvironmentFile":       envPath,
		"ExecStart":             binPath + " --config " + cfgPath,
		"StateDirectory":        name,
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"ProtectHome":           "read-only",
		"ReadWritePaths":        stateDir,
		"AmbientCapabilities":   "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_NET_ADMIN",
		"CapabilityBoundingSet": "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_NET_ADMIN",
	} {
		if got := one(k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	if n, err := strconv.Atoi(one("LimitNOFILE")); err != nil || n < 65536 {
		t.Errorf("LimitNOFILE=%s, want at least 65536 (the receiver keeps /proc files open per task)", one("LimitNOFILE"))
	}
	// /proc/<pid>/ of other users' tasks and /proc/stat, /proc/meminfo must stay visible;
	// capabilities inside a private user namespace reach no host process.
	for k, bad := range map[string]string{"ProtectProc": "invisible", "ProcSubset": "pid", "PrivateUsers": "yes", "DynamicUser": "yes"} {
		for _, v := range keys[k] {
			if v == bad || (k == "ProtectProc" && v == "noaccess") || (bad == "yes" && v == "true") {
				t.Errorf("%s=%s hides what the receiver reads", k, v)
			}
		}
	}

	// ProtectSystem=strict leaves only the state directory writable: the configured
	// persistent queue must be in it (the default of ${env:NAME:-default} when the env file
	// leaves the variable unset, as it ships).
	cfg := readFile(t, filepath.Join(repoRoot, "examples", "agent.yaml"))
	for _, m := range regexp.MustCompile(`(?m)^\s+directory:\s*(?:\$\{env:[A-Z_]+:-([^}]*)\}|(\S+))`).FindAllStringSubmatch(cfg, -1) {
		if dir := m[1] + m[2]; dir != stateDir && !strings.HasPrefix(dir, stateDir+"/") {
			t.Errorf("examples/agent.yaml: directory %s is outside the state directory %s (read-only under ProtectSystem=strict)", dir, stateDir)
		}
	}
}

// extract unpacks the .deb into a fresh root.
func extract(t *testing.T, deb string) string {
	t.Helper()
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	return root
}

// TestUnitVerify runs systemd-analyze verify on the unit as the .deb installs it, in a root
// that also holds the host's unit files (the targets it orders itself after) and the binary at
// the path ExecStart names. Any message fails the test, warnings too.
func TestUnitVerify(t *testing.T) {
	need(t, "dpkg-deb", "systemd-analyze")
	deb, _ := packages(t)
	root := t.TempDir()
	unitDir := filepath.Join(root, "usr", "lib", "systemd", "system")
	if err := os.MkdirAll(unitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(dir, "sysinit.target")); err == nil {
			run(t, "cp", "-a", dir+"/.", unitDir)
			break
		}
	}
	run(t, "dpkg-deb", "-x", deb, root)

	out, err := exec.Command("systemd-analyze", "verify", "--root="+root, name+".service").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify --root=%s %s.service: %v\n%s", root, name, err, out)
	}

	// The check has teeth: a misspelt directive is reported.
	unit := filepath.Join(unitDir, name+".service")
	bad := strings.Replace(readFile(t, unit), "ProtectSystem=strict", "ProtectSytem=strict", 1)
	if err := os.WriteFile(unit, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("systemd-analyze", "verify", "--root="+root, name+".service").CombinedOutput(); !strings.Contains(string(out), "ProtectSytem") {
		t.Errorf("systemd-analyze verify passed a misspelt directive:\n%s", out)
	}

	if out, err := exec.Command("systemd-analyze", "security", "--offline=yes", filepath.Join(name+".service")).CombinedOutput(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Logf("systemd-analyze security --offline=yes: %s", lines[len(lines)-1])
	}
}

// TestInstalledLayout checks the unpacked .deb: a static binary that runs, and a configuration
// that validates with the packaged env file, whose variables cover every ${env:...} it reads.
func TestInstalledLayout(t *testing.T) {
	need(t, "dpkg-deb")
	deb, _ := packages(t)
	root := extract(t, deb)
	bin := filepath.Join(root, binPath)

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("%s: %v", binPath, err)
	}
	cgo := ""
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" {
			cgo = s.Value
		}
	}
	if cgo != "0" {
		t.Errorf("%s built with CGO_ENABLED=%q, want 0 (a static binary)", binPath, cgo)
	}
	if out := run(t, bin, "components"); !strings.Contains(out, "proplet") || !strings.Contains(out, "mqtt") {
		t.Errorf("%s components: no proplet receiver or mqtt exporter:\n%s", binPath, out)
	}

	cfg := readFile(t, filepath.Join(root, cfgPath))
	if want := readFile(t, filepath.Join(repoRoot, "examples", "agent.yaml")); cfg != want {
		t.Errorf("%s is not examples/agent.yaml", cfgPath)
	}

	// NAME=value and commented-out #NAME=value lines of the env file.
	assigned := map[string]string{}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^(#?)([A-Z][A-Z0-9_]*)=(.*)$`).FindAllStringSubmatch(readFile(t, filepath.Join(root, envPath)), -1) {
		documented[m[2]] = true
		if m[1] == "" {
			assigned[m[2]] = m[3]
		}
	}
	for _, m := range regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(cfg, -1) {
		if !documented[m[1]] {
			t.Errorf("%s reads ${env:%s}, which %s does not mention", cfgPath, m[1], envPath)
		}
	}
	for _, v := range []string{"PROPLET_TENANT_ID", "PROPLET_CHANNEL_ID", "PROPLET_ENTITY_ID", "PROPLET_API_KEY",
		"PROPLET_MQTT_ADDRESS", "PROPLET_MQTT_QOS", "PROPLET_METRICS_INTERVAL", "PROPLET_MANAGER_K8S_NAMESPACE"} {
		if !documented[v] {
			t.Errorf("%s does not document %s", envPath, v)
		}
	}

	// The env file as shipped, its empty required values filled in as an operator would.
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	for k, v := range assigned {
		if v == "" {
			v = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
			if k == "PROPLET_API_KEY" {
				v = "secret"
			}
		}
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(bin, "validate", "--config", filepath.Join(root, cfgPath))
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("otelcol-propeller validate --config %s with the env file: %v\n%s", cfgPath, err, out)
	}
}

// TestAmbientCapabilitiesWithNoNewPrivileges shows what the unit relies on: a process of an
// unprivileged user with the unit's ambient capabilities and no_new_privs set (as systemd sets
// them for User=, AmbientCapabilities= and NoNewPrivileges=yes) keeps them across execve of
// a plain binary (here twice: sh, then cat and ls) and reads another user's /proc/<pid>/io and
// fd/, which it cannot without them.
func TestAmbientCapabilitiesWithNoNewPrivileges(t *testing.T) {
	need(t, "setpriv")
	if os.Geteuid() != 0 {
		t.Skip("not root: setpriv cannot switch users and grant capabilities")
	}
	var caps []string
	for _, c := range ambientCaps(t) {
		caps = append(caps, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	if len(caps) == 0 {
		t.Fatal("the unit sets no AmbientCapabilities")
	}
	// A root process the unprivileged user may not inspect.
	target := exec.Command("sleep", "60")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Process.Kill(); target.Wait() })
	pid := target.Process.Pid
	probe := fmt.Sprintf("grep -E '^(CapEff|CapAmb|NoNewPrivs)' /proc/self/status; head -c 0 /proc/%d/io && ls /proc/%d/fd >/dev/null && echo READ-OK", pid, pid)

	setpriv := func(with bool) string {
		args := []string{"--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs"}
		set := "-all"
		if with {
			set = "-all,+" + strings.Join(caps, ",+")
		}
		args = append(args, "--inh-caps="+set, "--ambient-caps="+set, "--bounding-set="+set, "sh", "-c", probe)
		out, err := exec.Command("setpriv", args...).CombinedOutput()
		if err != nil && with {
			// The container may not hold the capabilities to hand out.
			if strings.Contains(string(out), "Operation not permitted") && strings.Contains(string(out), "setpriv") {
				t.Skipf("setpriv cannot grant %v here: %s", caps, out)
			}
		}
		return string(out)
	}
	if out := setpriv(true); !strings.Contains(out, "READ-OK") || !strings.Contains(out, "NoNewPrivs:\t1") {
		t.Errorf("with ambient %v and no_new_privs: cannot read /proc/%d/io and fd/:\n%s", caps, pid, out)
	} else {
		t.Logf("with ambient %v and no_new_privs:\n%s", caps, out)
	}
	if out := setpriv(false); strings.Contains(out, "READ-OK") {
		t.Errorf("without capabilities the probe read /proc/%d/io: it proves nothing here:\n%s", pid, out)
	}
}

// TestDebInstallPurge installs the .deb on this machine with dpkg, checks the service user and
// the installed files, installs it again over an edited env file (an upgrade), and purges it. It changes the machine, so it runs only when asked:
// PROPLET_PACKAGE_INSTALL_TEST=1, as root, with the package and the user not there before. A
// user it created is deleted afterwards (a purge keeps it, as is usual for system users).
func TestDebInstallPurge(t *testing.T) {
	if os.Getenv("PROPLET_PACKAGE_INSTALL_TEST") != "1" {
		t.Skip("installs a package on this machine: set PROPLET_PACKAGE_INSTALL_TEST=1 to run it")
	}
	need(t, "dpkg", "dpkg-deb")
	if os.Geteuid() != 0 {
		t.Skip("not root: dpkg -i needs root")
	}
	if err := exec.Command("dpkg-query", "-W", name).Run(); err == nil {
		t.Skipf("%s is already installed here; not touching it", name)
	}
	if err := exec.Command("getent", "passwd", name).Run(); err == nil {
		t.Skipf("user %s already exists here; not touching it", name)
	}
	deb, _ := packages(t)
	t.Cleanup(func() {
		exec.Command("dpkg", "--purge", name).Run()
		exec.Command("userdel", name).Run()
		exec.Command("groupdel", name).Run()
	})
	t.Logf("dpkg -i:\n%s", run(t, "dpkg", "-i", deb))

	passwd := strings.Split(strings.TrimSpace(run(t, "getent", "passwd", name)), ":")
	if len(passwd) != 7 || passwd[5] != stateDir || !strings.HasSuffix(passwd[6], "nologin") {
		t.Errorf("getent passwd %s: %q, want home %s and a nologin shell", name, passwd, stateDir)
	} else if uid, _ := strconv.Atoi(passwd[2]); uid == 0 || uid >= 1000 {
		t.Errorf("uid %d, want a system uid", uid)
	}
	if _, err := os.Stat(stateDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists after install (%v): systemd's StateDirectory= creates it", stateDir, err)
	}
	if got := strings.TrimSpace(run(t, "stat", "-c", "%A %U %G", envPath)); got != "-rw-r----- root "+name {
		t.Errorf("%s: %s, want -rw-r----- root %s", envPath, got, name)
	}
	for path := range wantFiles {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("after dpkg -i: %v", err)
		}
	}
	if status := run(t, "dpkg-query", "-W", "-f=${Status}", name); status != "install ok installed" {
		t.Errorf("dpkg-query: %q", status)
	}

	// An upgrade (the same package again: preinst upgrade, postinst configure <version>) keeps
	// an edited conffile, and its owner and mode.
	f, err := os.OpenFile(envPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "PROPLET_TENANT_ID=edited")
	f.Close()
	t.Logf("dpkg -i again:\n%s", run(t, "dpkg", "-i", deb))
	if !strings.Contains(readFile(t, envPath), "PROPLET_TENANT_ID=edited") {
		t.Errorf("the upgrade replaced the edited %s", envPath)
	}
	if got := strings.TrimSpace(run(t, "stat", "-c", "%A %U %G", envPath)); got != "-rw-r----- root "+name {
		t.Errorf("after the upgrade %s: %s, want -rw-r----- root %s", envPath, got, name)
	}

	t.Logf("dpkg --purge:\n%s", run(t, "dpkg", "--purge", name))
	for path := range wantFiles {
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after dpkg --purge: %s: %v", path, err)
		}
	}
	if _, err := os.Stat(filepath.Dir(envPath)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after dpkg --purge: %s remains", filepath.Dir(envPath))
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
