package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeTool returns the command that runs `compose config`: docker-compose (v1 or v2), else
// the docker CLI's compose plugin; or skips the test saying why. podman-compose 1.0.3 (Debian
// 12's) has no config command.
func composeTool(t *testing.T) []string {
	t.Helper()
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	if p, err := exec.LookPath("docker"); err == nil && exec.Command(p, "compose", "version").Run() == nil {
		return []string{p, "compose"}
	}
	t.Skip("no compose tool with a config command (docker-compose, or docker compose; apt-get install -y docker-compose): the add-on is not validated")
	return nil
}

// A stand-in for Propeller's docker/.env (the keys the add-on reads, with the same nested
// interpolation of the broker address).
const propellerEnv = `MG_NGINX_MQTT_PORT=1883
PROPLET_MQTT_ADDRESS="tcp://nginx:${MG_NGINX_MQTT_PORT}"
PROPLET_TENANT_ID=0b4a8b7e-7d5c-4b8f-9a55-3c1d2e6f7a81
PROPLET_CHANNEL_ID=1c5b9c8f-8e6d-4c9a-8b66-4d2e3f7a8b92
PROPLET_ENTITY_ID=7c9e6679-7425-40de-944b-e07fc1f90ae7
PROPLET_API_KEY=secret
PROPLET_MANAGER_K8S_NAMESPACE="default"
PROPLET_EXTERNAL_WASM_RUNTIME="wasmtime"
MG_PROMETHEUS_PORT=9090
MG_GRAFANA_PORT=3000
`

// A stand-in for Propeller's docker/compose.propeller.yaml: its proplet service and network.
const propellerStack = `networks:
  propeller-base-net:
    external: true
    name: propeller-base-net
services:
  proplet:
    image: ghcr.io/absmach/propeller/proplet:latest
    container_name: propeller-proplet
    environment:
      PROPLET_MQTT_ADDRESS: ${PROPLET_MQTT_ADDRESS}
      PROPLET_EXTERNAL_WASM_RUNTIME: ${PROPLET_EXTERNAL_WASM_RUNTIME}
    networks:
      - propeller-base-net
`

// TestComposeAddon installs deploy/compose into a stand-in of Propeller's tree as the add-on's
// comment says (docker/addons/otelcol-propeller), runs `compose config` on Propeller's
// compose file plus the add-on, and checks the result: the collector in the proplet's PID
// namespace with Propeller's .env, the files it binds present, Prometheus scraping the
// collector, our dashboard next to Propeller's; and the collector's config validates with that
// environment. Nothing is run: the images cannot be pulled here. With PROPELLER_DOCKER set to
// Propeller's docker/ folder, that folder is used instead of the stand-in (a compose tool that
// accepts its top-level name:, docker compose v2, is needed).
func TestComposeAddon(t *testing.T) {
	tool := composeTool(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	docker := filepath.Join(tree, "docker")
	addon := filepath.Join(docker, "addons", "otelcol-propeller")
	files := []string{"-f", "docker/compose.propeller.yaml"}
	if real := os.Getenv("PROPELLER_DOCKER"); real != "" {
		// Propeller's own docker/ folder, with the test's ids appended to its .env (later lines win).
		copyDir(t, real, docker)
		env, err := os.ReadFile(filepath.Join(real, ".env"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(docker, ".env"), string(env)+"\n"+propellerEnv)
		files = []string{"-f", "docker/compose.yaml", "-f", "docker/compose.propeller.yaml"}
	} else {
		writeFile(t, filepath.Join(docker, ".env"), propellerEnv)
		writeFile(t, filepath.Join(docker, "compose.propeller.yaml"), propellerStack)
		writeFile(t, filepath.Join(docker, "addons", "grafana", "grafana", "dashboards", "propeller.json"), "{}")
	}
	copyDir(t, filepath.Join(root, "deploy", "compose"), addon)

	args := append(append(tool[1:], files...), "-f", "docker/addons/otelcol-propeller/compose.yaml", "config")
	t.Logf("%s %s", tool[0], strings.Join(args, " "))
	cmd := exec.Command(tool[0], args...)
	cmd.Dir = tree
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s config: %v\n%s", strings.Join(tool, " "), err, stderr.String())
	}
	var cfg struct {
		Services map[string]struct {
			Image       string
			Pid         string
			NetworkMode string `yaml:"network_mode"`
			Environment map[string]string
			CapAdd      []string `yaml:"cap_add"`
			CapDrop     []string `yaml:"cap_drop"`
			ReadOnly    bool     `yaml:"read_only"`
			Command     []string
			Volumes     []any
		}
	}
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("compose config output: %v\n%s", err, out)
	}
	col, ok := cfg.Services["otelcol-propeller"]
	if !ok {
		t.Fatalf("no otelcol-propeller service:\n%s", out)
	}
	if p := cfg.Services["proplet"]; p.Environment["PROPLET_ENABLE_MONITORING"] != "false" || p.Environment["PROPLET_EXTERNAL_WASM_RUNTIME"] != "wasmtime" {
		t.Errorf("the proplet's environment after the add-on: %v (want its own monitoring off, Propeller's settings kept)", p.Environment)
	}
	if col.Pid != "service:proplet" || col.NetworkMode != "service:proplet" {
		t.Errorf("pid %q network_mode %q: the collector is not in the proplet's namespaces", col.Pid, col.NetworkMode)
	}
	if col.Environment["PROPLET_MQTT_ADDRESS"] != "tcp://nginx:1883" || col.Environment["PROPLET_ENTITY_ID"] != "7c9e6679-7425-40de-944b-e07fc1f90ae7" ||
		col.Environment["PROPLET_API_KEY"] != "secret" {
		t.Errorf("the collector does not get Propeller's .env: %v", col.Environment)
	}
	if !slices.Contains(col.CapAdd, "SYS_PTRACE") || !slices.Contains(col.CapAdd, "DAC_READ_SEARCH") || len(col.CapAdd) != 2 ||
		!slices.Equal(col.CapDrop, []string{"ALL"}) || !col.ReadOnly {
		t.Errorf("capabilities: add %v drop %v, read-only %v", col.CapAdd, col.CapDrop, col.ReadOnly)
	}

	binds := map[string]string{}                                                  // service/target: source
	for _, name := range []string{"otelcol-propeller", "prometheus", "grafana"} { // the add-on's services
		for _, v := range cfg.Services[name].Volumes {
			m, ok := v.(map[string]any)
			if !ok || m["type"] != "bind" {
				continue
			}
			src, _ := m["source"].(string)
			if !filepath.IsAbs(src) {
				src = filepath.Join(docker, src)
			}
			if _, err := os.Stat(src); err != nil {
				t.Errorf("%s binds %s, which is not there (paths are relative to docker/): %v", name, m["target"], err)
			}
			binds[name+" "+m["target"].(string)] = src
		}
	}
	want := map[string]string{
		"otelcol-propeller /etc/otelcol-propeller/config.yaml":        filepath.Join(addon, "config.yaml"),
		"prometheus /etc/prometheus/prometheus.yml":                   filepath.Join(addon, "prometheus", "prometheus.yaml"),
		"grafana /var/lib/grafana/dashboards/Propeller":               filepath.Join(docker, "addons", "grafana", "grafana", "dashboards"),
		"grafana /var/lib/grafana/dashboards/otelcol-propeller":       filepath.Join(addon, "grafana", "dashboards"),
		"grafana /etc/grafana/provisioning/dashboards/dashboard.yaml": filepath.Join(addon, "grafana", "dashboard.yaml"),
	}
	for k, src := range want {
		if filepath.Clean(binds[k]) != src {
			t.Errorf("%s: bound from %q, want %s", k, binds[k], src)
		}
	}

	// Prometheus scrapes the collector where it listens: in the proplet's network namespace.
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string                       `yaml:"job_name"`
			StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	raw, err := os.ReadFile(filepath.Join(addon, "prometheus", "prometheus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &prom); err != nil {
		t.Fatal(err)
	}
	scraped := map[string]string{}
	for _, j := range prom.ScrapeConfigs {
		for _, s := range j.StaticConfigs {
			for _, tg := range s.Targets {
				scraped[tg] = j.JobName
			}
		}
	}
	for tg, job := range map[string]string{"propeller-proplet:9464": "otelcol-propeller", "propeller-proplet:8888": "otelcol-propeller-telemetry", "propeller-proplet:9092": "propeller-proplet"} {
		if scraped[tg] != job {
			t.Errorf("%s is scraped by job %q, want %q", tg, scraped[tg], job)
		}
	}

	// Our dashboard, the same as examples/grafana's.
	a, _ := os.ReadFile(filepath.Join(root, "examples", "grafana", "propeller-tasks.json"))
	b, _ := os.ReadFile(filepath.Join(root, "deploy", "compose", "grafana", "dashboards", "propeller-tasks.json"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("deploy/compose/grafana/dashboards/propeller-tasks.json differs from examples/grafana/propeller-tasks.json: copy it again")
	}

	// The collector's configuration validates with the environment compose gives it.
	bin := filepath.Join(root, "_build", "otelcol-propeller")
	if _, err := os.Stat(bin); err != nil {
		t.Logf("not validating the collector config: %s is not built", bin)
		return
	}
	v := exec.Command(bin, "validate", "--config", filepath.Join(addon, "config.yaml"))
	v.Env = os.Environ()
	for k, val := range col.Environment {
		v.Env = append(v.Env, k+"="+val)
	}
	if o, err := v.CombinedOutput(); err != nil {
		t.Errorf("otelcol-propeller validate: %v\n%s", err, o)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		writeFile(t, filepath.Join(to, rel), string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
