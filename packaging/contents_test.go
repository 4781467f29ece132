package packaging_test

import (
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

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
