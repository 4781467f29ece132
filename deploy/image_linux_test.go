package deploy_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.yaml.in/yaml/v3"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
	"github.com/otelcol-propeller/otelcol-propeller/internal/testworkload"
)

func TestMain(m *testing.M) {
	testworkload.MainIfChild()
	os.Exit(m.Run())
}

// containerTool returns podman, else a docker whose daemon answers, or skips the test saying why.
func containerTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("podman"); err == nil {
		return p
	}
	p, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("neither podman nor docker is installed (apt-get install -y podman): the image is not built")
	}
	if out, err := exec.Command(p, "info").CombinedOutput(); err != nil {
		t.Skipf("podman is not installed and docker has no daemon (%v: %s): the image is not built", err, bytes.TrimSpace(out))
	}
	return p
}

const testImage = "localhost/otelcol-propeller:deploy-test"

// TestImage builds the container image with `make image`, inspects its configuration and files,
// and runs the binary it contains, with the configuration it contains, against the host's /proc
// and a broker on the host: a task started by a start request, as a child of the test process
// playing the proplet, is published on control/proplet/task_metrics.
//
// The image itself is not run: this machine refuses to run containers (setrlimit is not
// permitted), so the same static binary and configuration are run outside it, with proc_root
// at a symlink to the host's /proc standing for the container's /hostfs/proc bind mount.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the image build takes a while")
	}
	tool := containerTool(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	mk := exec.Command("make", "image", "IMAGE="+testImage, "CONTAINER="+tool)
	mk.Dir = root
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(tool, "rmi", "-f", testImage).Run() })

	// The image's configuration.
	out, err := exec.Command(tool, "image", "inspect", testImage).Output()
	if err != nil {
		t.Fatalf("image inspect: %v", err)
	}
	var inspected []struct {
		Config struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]any
			Labels       map[string]string
			Volumes      map[string]any
		}
	}
	if err := json.Unmarshal(out, &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("image inspect output: %v: %s", err, out)
	}
	cfg := inspected[0].Config
	if cfg.User != "10001:10001" {
		t.Errorf("user %q, want the numeric non-root 10001:10001", cfg.User)
	}
	if strings.Join(cfg.Entrypoint, " ") != "/otelcol-propeller" ||
		strings.Join(cfg.Cmd, " ") != "--config /etc/otelcol-propeller/config.yaml" {
		t.Errorf("entrypoint %q cmd %q", cfg.Entrypoint, cfg.Cmd)
	}
	for _, p := range []string{"13133/tcp", "9464/tcp", "8888/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed: %v", p, cfg.ExposedPorts)
		}
	}
	if _, ok := cfg.Volumes["/var/lib/otelcol-propeller"]; !ok {
		t.Errorf("the queue directory is not a volume: %v", cfg.Volumes)
	}
	if cfg.Labels["org.opencontainers.image.title"] != "otelcol-propeller" || cfg.Labels["org.opencontainers.image.source"] == "" {
		t.Errorf("labels %v", cfg.Labels)
	}

	// The image's files, from `save`.
	dir := t.TempDir()
	files := imageFiles(t, tool, dir)
	want := map[string]struct {
		uid  int
		kind byte
	}{
		"otelcol-propeller":                 {0, tar.TypeReg},
		"etc/ssl/certs/ca-certificates.crt": {0, tar.TypeReg},
		"etc/otelcol-propeller/config.yaml": {0, tar.TypeReg},
		"var/lib/otelcol-propeller/queue":   {10001, tar.TypeDir},
	}
	for name, w := range want {
		h, ok := files[name]
		if !ok {
			t.Errorf("%s is not in the image", name)
			continue
		}
		if h.Uid != w.uid || h.Typeflag != w.kind {
			t.Errorf("%s: uid %d type %c, want uid %d type %c", name, h.Uid, h.Typeflag, w.uid, w.kind)
		}
	}
	if h := files["otelcol-propeller"]; h != nil && h.Mode&0o111 == 0 {
		t.Errorf("the binary is not executable: %o", h.Mode)
	}
	var names []string
	for n, h := range files {
		if h.Typeflag == tar.TypeReg {
			names = append(names, n)
		}
	}
	if len(names) != 3 {
		t.Errorf("the image should hold only the binary, the CA bundle and the config; it has %v", names)
	}
	bin := filepath.Join(dir, "otelcol-propeller")
	conf := filepath.Join(dir, "config.yaml")
	if b, err := os.ReadFile(filepath.Join(root, "examples", "agent.yaml")); err != nil {
		t.Fatal(err)
	} else if c, _ := os.ReadFile(conf); !bytes.Equal(b, c) {
		t.Error("/etc/otelcol-propeller/config.yaml differs from examples/agent.yaml")
	}
	if ef, err := elf.Open(bin); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary is dynamically linked (it has an ELF interpreter); a scratch image has no libc")
			}
		}
		ef.Close()
	}

	runImageConfig(t, bin, conf)
}

// imageFiles saves the image as an archive and returns the headers of the files of its layers
// (upper layers win), writing the binary and the configuration to dir.
func imageFiles(t *testing.T, tool, dir string) map[string]*tar.Header {
	t.Helper()
	archive := filepath.Join(dir, "image.tar")
	if out, err := exec.Command(tool, "save", "-o", archive, testImage).CombinedOutput(); err != nil {
		t.Fatalf("save: %v: %s", err, out)
	}
	blobs := map[string][]byte{}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			blobs[path.Clean(h.Name)] = b
		}
	}
	var manifest []struct{ Layers []string }
	if err := json.Unmarshal(blobs["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json of the saved image: %v", err)
	}
	files := map[string]*tar.Header{}
	extract := map[string]string{"otelcol-propeller": "otelcol-propeller", "etc/otelcol-propeller/config.yaml": "config.yaml"}
	for _, l := range manifest[0].Layers {
		var r io.Reader = bytes.NewReader(blobs[path.Clean(l)])
		if b := blobs[path.Clean(l)]; len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
			if r, err = gzip.NewReader(r); err != nil {
				t.Fatal(err)
			}
		}
		lr := tar.NewReader(r)
		for {
			h, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", l, err)
			}
			name := strings.TrimPrefix(path.Clean(h.Name), "./")
			files[name] = h
			if to, ok := extract[name]; ok {
				b, err := io.ReadAll(lr)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, to), b, 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return files
}

const (
	tenantID  = "0b4a8b7e-7d5c-4b8f-9a55-3c1d2e6f7a81"
	channelID = "1c5b9c8f-8e6d-4c9a-8b66-4d2e3f7a8b92"
	entityID  = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	taskID    = "550e8400-e29b-41d4-a716-446655440042"
)

// runImageConfig runs bin with the image's configuration conf, as the container would, with
// the proplet's environment variables set. Changed, and only these: the listen addresses (free
// ports, so that tests running beside it do not collide), the queue directory (a temporary one),
// proc_root (a symlink to the host's /proc, standing for /hostfs/proc), the proplet (the test
// process, through a pid file, also as any rule's parent) and a literal broker address (the test broker). The task is a
// child of the test process named wasmtime whose command line carries the task id both ways
// the proplet gives it (`/tmp/proplet_<id>.wasm` and `TASK_ID=<id>`), and it is announced by
// a start request, so that a discovery rule and the control plane both find it.
func runImageConfig(t *testing.T, bin, conf string) {
	broker := mqtttest.Start(t, mqtttest.Options{})
	dir := t.TempDir()

	raw, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("the image's config is not YAML: %v", err)
	}
	pidFile := filepath.Join(dir, "proplet.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostfs := filepath.Join(dir, "hostfs")
	if err := os.MkdirAll(hostfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc", filepath.Join(hostfs, "proc")); err != nil {
		t.Fatal(err)
	}
	health := free(t)
	setKey(c, "127.0.0.1:"+health, "extensions", "health_check", "endpoint")
	setKey(c, filepath.Join(dir, "queue"), "extensions", "file_storage", "directory")
	setKey(c, filepath.Join(hostfs, "proc"), "receivers", "proplet", "proc_root")
	setKey(c, map[string]any{"pid_file": pidFile}, "receivers", "proplet", "proplet")
	replaceKey(c, "parent_pid_file", pidFile)
	if _, ok := dig(c, "exporters", "prometheus"); ok {
		setKey(c, "127.0.0.1:"+free(t), "exporters", "prometheus", "endpoint")
	}
	port, _ := strconv.Atoi(free(t))
	setKey(c, []any{map[string]any{"pull": map[string]any{"exporter": map[string]any{"prometheus": map[string]any{"host": "127.0.0.1", "port": port}}}}},
		"service", "telemetry", "metrics", "readers")
	for _, p := range [][]string{{"exporters", "mqtt", "endpoint"}, {"receivers", "proplet", "propeller", "endpoint"}} {
		if v, ok := dig(c, p...); ok {
			if s, _ := v.(string); !strings.Contains(s, "${") {
				setKey(c, broker.Endpoint(), p...)
			}
		}
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	runConf := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(runConf, out, 0o644); err != nil {
		t.Fatal(err)
	}

	// The task: a child of the proplet (this process) named wasmtime.
	wasmtime := filepath.Join(dir, "wasmtime")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(self); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(wasmtime, b, 0o755); err != nil {
		t.Fatal(err)
	}
	task := testworkload.Command(t, testworkload.Sleep, 0)
	task.Path = wasmtime
	task.Args = append([]string{"wasmtime"}, append(task.Args[1:], "run", "--env", "TASK_ID="+taskID, "/tmp/proplet_"+taskID+".wasm")...)
	testworkload.StartCmd(t, task)

	sub := mqtttest.Subscribe(t, broker.Endpoint(), "m/+/c/+/control/proplet/#", mqtttest.SubscriberOptions{})
	env := []string{
		"PROPLET_ID=" + entityID, "PROPLET_TENANT_ID=" + tenantID, "PROPLET_DOMAIN_ID=" + tenantID,
		"PROPLET_CHANNEL_ID=" + channelID, "PROPLET_ENTITY_ID=" + entityID, "PROPLET_API_KEY=secret",
		"PROPLET_MQTT_ADDRESS=" + broker.Endpoint(), "PROPLET_MQTT_QOS=1", "PROPLET_METRICS_INTERVAL=1",
		"PROPLET_MANAGER_K8S_NAMESPACE=default",
	}
	col := exec.Command(bin, "--config", runConf)
	col.Env = append(os.Environ(), env...)
	logs := &lockedBuffer{}
	col.Stdout, col.Stderr = logs, logs
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = col.Process.Kill()
		_ = col.Wait()
		if t.Failed() {
			t.Logf("collector output:\n%s\nconfig:\n%s", logs.String(), out)
		}
	})
	waitHealthy(t, "127.0.0.1:"+health, logs)

	// The start request, as the manager sends it, with a one-second profile.
	start := fmt.Sprintf(`{"id":%q,"name":"deploy-test","state":0,"cli_args":[],"broadcast":false,"daemon":false,"latent":false,"encrypted":false,"proplet_id":%q,`+
		`"monitoring_profile":{"enabled":true,"interval":1,"collect_cpu":true,"collect_memory":true,"collect_disk_io":true,"collect_threads":true,"collect_file_descriptors":true,"export_to_mqtt":true,"retain_history":true,"history_size":10}}`,
		taskID, entityID)
	publish(t, broker.Endpoint(), "m/"+tenantID+"/c/"+channelID+"/control/manager/start", start)

	topic := "m/" + tenantID + "/c/" + channelID + "/control/proplet/task_metrics"
	sub.Wait(t, 45*time.Second, func(msgs []mqtttest.Message) bool {
		for _, m := range msgs {
			if m.Topic == topic && m.Decoded(t)["task_id"] == taskID {
				return true
			}
		}
		return false
	})
}

func free(t *testing.T) string {
	t.Helper()
	_, p, _ := net.SplitHostPort(mqtttest.FreeAddress(t))
	return p
}

func dig(m map[string]any, keys ...string) (any, bool) {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// replaceKey sets every key named key, at any depth, to v.
func replaceKey(v any, key string, to any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == key {
				v[k] = to
			} else {
				replaceKey(x, key, to)
			}
		}
	case []any:
		for _, x := range v {
			replaceKey(x, key, to)
		}
	}
}

// setKey sets m[keys...] = v, creating the maps on the way.
func setKey(m map[string]any, v any, keys ...string) {
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
}

// waitHealthy waits for the health_check extension to answer, or fails with the collector's output.
func waitHealthy(t *testing.T, addr string, logs *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.Contains(line, " 200 ") {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the collector did not become healthy on %s:\n%s", addr, logs.String())
}

// publish sends one message at QoS 1, as the manager would.
func publish(t *testing.T, endpoint, topic, payload string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(endpoint).SetClientID("deploy-test-manager"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", endpoint, tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
