package packaging_test

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

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
