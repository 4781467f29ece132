package packaging_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

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
