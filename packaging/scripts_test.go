package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

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
