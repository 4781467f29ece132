//go:build linux

package packaging_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/otelcol-propeller/otelcol-propeller/internal/mqtttest"
)

// TestServiceUserReadsOtherUsersTasks runs the packaged binary with the packaged config.yaml
// as the unit runs it, but started by setpriv instead of systemd: an unprivileged user (nobody,
// standing in for otelcol-propeller), no_new_privs, and the unit's ambient capabilities, with
// the env file's variables. It follows a start request from a broker, as with a real manager,
// and publishes the task's disk I/O and file descriptor count although the task's process
// belongs to root: what the ambient capabilities are for; run again without them, it publishes
// the task without those numbers. Overridden by a second configuration,
// as the end-to-end tests do: the ports, the queue directory, the proplet process.
func TestServiceUserReadsOtherUsersTasks(t *testing.T) {
	need(t, "dpkg-deb", "setpriv")
	if os.Geteuid() != 0 {
		t.Skip("not root: setpriv cannot switch users and grant capabilities")
	}
	deb, _ := packages(t)

	withCaps, status := runAsService(t, deb, true)
	// Read from root's /proc/<pid>/io and fd/: present only with CAP_SYS_PTRACE.
	for _, k := range []string{"disk_read_bytes", "disk_write_bytes"} {
		if _, ok := withCaps[k]; !ok {
			t.Errorf("task sample without %s (root's /proc/<pid>/io unread): %v", k, withCaps)
		}
	}
	if n, _ := withCaps["file_descriptor_count"].(float64); n < 1 {
		t.Errorf("task sample file_descriptor_count %v, want at least 1 (root's /proc/<pid>/fd unread): %v", withCaps["file_descriptor_count"], withCaps)
	}
	// The collector runs unprivileged, with the unit's capabilities (CAP_SYS_PTRACE,
	// CAP_DAC_READ_SEARCH, CAP_NET_ADMIN: bits 19, 2 and 12) and no_new_privs.
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "NoNewPrivs:\t1", "CapAmb:\t0000000000081004"} {
		if !strings.Contains(status, want) {
			t.Errorf("collector /proc/<pid>/status has no %q:\n%s", want, status)
		}
	}
	t.Logf("task sample as user nobody with the unit's ambient capabilities: %v", withCaps)

	// The same without capabilities: what the unit's AmbientCapabilities= line adds.
	without, _ := runAsService(t, deb, false)
	for _, k := range []string{"disk_read_bytes", "disk_write_bytes", "file_descriptor_count"} {
		if _, ok := without[k]; ok {
			t.Errorf("without capabilities the task sample has %s: the test proves nothing here: %v", k, without)
		}
	}
	t.Logf("task sample as user nobody without capabilities: %v", without)
}

// runAsService runs the packaged collector as user nobody, as the unit runs it, with the
// unit's ambient capabilities or none, until it publishes a measured sample of a root task;
// it returns the sample's metrics and the collector's /proc/<pid>/status.
func runAsService(t *testing.T, deb string, caps bool) (map[string]any, string) {
	t.Helper()
	// A tree the unprivileged user can read: the unpacked package, the override, the queue.
	dir, err := os.MkdirTemp("", "otelcol-propeller-service-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	run(t, "dpkg-deb", "-x", deb, root)
	queue := filepath.Join(dir, "queue")
	if err := os.Mkdir(queue, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(queue, 65534, 65534); err != nil {
		t.Fatal(err)
	}

	broker := mqtttest.Start(t, mqtttest.Options{})
	sub := mqtttest.Subscribe(t, broker.Endpoint(), "m/tenant-pkg/c/channel-pkg/#", mqtttest.SubscriberOptions{})

	// Root's processes: the proplet, and its child the task, as the Rust proplet runs it with an
	// external runtime (its id in /tmp/proplet_<id>.wasm on the command line).
	const taskID = "22222222-0000-4000-8000-000000000001"
	proplet := startRoot(t, "sh", "-c", "sh -c 'sleep 120; exit 0' wasmtime run /tmp/proplet_"+taskID+".wasm & wait")

	override := fmt.Sprintf(`
extensions:
  health_check: { endpoint: %s }
  file_storage: { directory: %s }
receivers:
  proplet:
    proplet: { match: null, pid: %d }
    discovery_interval: 200ms
    start_jitter: 0s
exporters:
  prometheus: { endpoint: %s }
service:
  telemetry: { metrics: { readers: [ { pull: { exporter: { prometheus: { host: 127.0.0.1, port: %s } } } } ] } }
`, mqtttest.FreeAddress(t), queue, proplet, mqtttest.FreeAddress(t), portOf(mqtttest.FreeAddress(t)))
	overridePath := filepath.Join(dir, "override.yaml")
	if err := os.WriteFile(overridePath, []byte(override), 0o644); err != nil {
		t.Fatal(err)
	}

	// The env file as systemd's EnvironmentFile= reads it, filled in as an operator would.
	env := []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	for _, line := range strings.Split(readFile(t, filepath.Join(root, envPath)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch k {
		case "PROPLET_TENANT_ID":
			v = "tenant-pkg"
		case "PROPLET_CHANNEL_ID":
			v = "channel-pkg"
		case "PROPLET_ENTITY_ID":
			v = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
		case "PROPLET_API_KEY":
			v = "key"
		case "PROPLET_MQTT_ADDRESS":
			v = broker.Endpoint()
		case "PROPLET_METRICS_INTERVAL":
			v = "1"
		}
		env = append(env, k+"="+v)
	}

	set := "-all"
	for _, c := range ambientCaps(t) {
		if !caps {
			break
		}
		set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	col := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--no-new-privs",
		"--inh-caps="+set, "--ambient-caps="+set, "--bounding-set="+set,
		filepath.Join(root, binPath), "--config", filepath.Join(root, cfgPath), "--config", overridePath)
	col.Env = env
	var logs strings.Builder
	col.Stdout, col.Stderr = &logs, &logs
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		col.Process.Kill()
		col.Wait()
		if t.Failed() {
			t.Logf("collector output:\n%s", logs.String())
		}
	})

	manager := paho.NewClient(paho.NewClientOptions().AddBroker(broker.Endpoint()).SetClientID("manager"))
	if tok := manager.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("manager connect: %v", tok.Error())
	}
	defer manager.Disconnect(100)
	start := `{"id":"` + taskID + `","name":"pkg","monitoring_profile":{"enabled":true,"interval":1,"collect_cpu":true,"collect_memory":true,"collect_disk_io":true,"collect_threads":true,"collect_file_descriptors":true,"export_to_mqtt":true,"retain_history":true,"history_size":10}}`

	// Until the collector has subscribed, a start request is lost: send it again until a
	// measured sample of the task arrives.
	var sample map[string]any
	deadline := time.Now().Add(60 * time.Second)
	for sample == nil && time.Now().Before(deadline) {
		tok := manager.Publish("m/tenant-pkg/c/channel-pkg/control/manager/start", 2, false, start)
		tok.WaitTimeout(5 * time.Second)
		time.Sleep(500 * time.Millisecond)
		for _, m := range sub.Messages() {
			if !strings.HasSuffix(m.Topic, "/control/proplet/task_metrics") {
				continue
			}
			v := m.Decoded(t)
			if v["task_id"] != taskID {
				continue
			}
			if metrics, _ := v["metrics"].(map[string]any); metrics != nil && metrics["cpu_percent"] != nil {
				sample = metrics
			}
		}
	}
	if sample == nil {
		t.Fatalf("no task_metrics sample for task %s", taskID)
	}

	status := readFile(t, fmt.Sprintf("/proc/%d/status", collectorPid(t, col.Process.Pid)))
	col.Process.Kill()
	col.Wait()
	return sample, status
}

// startRoot starts a process of the test's own user (root) that lives until the test ends.
func startRoot(t *testing.T, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func portOf(addr string) string {
	return addr[strings.LastIndex(addr, ":")+1:]
}

// collectorPid is setpriv's pid: setpriv execs the collector, so the pid is the collector's.
func collectorPid(t *testing.T, pid int) int {
	t.Helper()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || !strings.HasSuffix(exe, "otelcol-propeller") {
		t.Fatalf("pid %d is %q (%v), not the collector", pid, exe, err)
	}
	return pid
}
