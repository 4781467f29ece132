// Package kubernetes_test decodes the Kubernetes manifests into the Kubernetes API types,
// strictly (an unknown or misspelt field fails), checks what docs/deployment.md promises of them, and
// validates the collector configuration they carry with the built distribution.
package kubernetes_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

type manifests struct {
	secret    *corev1.Secret
	configMap *corev1.ConfigMap
	daemonSet *appsv1.DaemonSet
	deploy    *appsv1.Deployment
}

// load decodes every document of file by its kind, rejecting unknown fields.
func load(t *testing.T, file string) manifests {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m manifests
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		var meta struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s document %d: %v", file, i, err)
		}
		var obj any
		switch meta.APIVersion + " " + meta.Kind {
		case "v1 Secret":
			m.secret = &corev1.Secret{}
			obj = m.secret
		case "v1 ConfigMap":
			m.configMap = &corev1.ConfigMap{}
			obj = m.configMap
		case "apps/v1 DaemonSet":
			m.daemonSet = &appsv1.DaemonSet{}
			obj = m.daemonSet
		case "apps/v1 Deployment":
			m.deploy = &appsv1.Deployment{}
			obj = m.deploy
		default:
			t.Fatalf("%s document %d: unexpected %q %q", file, i, meta.APIVersion, meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s document %d (%s): %v", file, i, meta.Kind, err)
		}
	}
	if m.secret == nil || m.configMap == nil {
		t.Fatalf("%s: a Secret and a ConfigMap are expected", file)
	}
	return m
}

func TestDaemonSet(t *testing.T) {
	m := load(t, "daemonset.yaml")
	ds := m.daemonSet
	if ds == nil {
		t.Fatal("no DaemonSet")
	}
	if !labelsMatch(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) {
		t.Errorf("the selector %v does not select the template's labels %v", ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels)
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostPID {
		t.Error("hostPID is not set")
	}
	c := collector(t, pod)
	mount := mountOf(t, c, "/hostfs/proc")
	if !mount.ReadOnly {
		t.Error("/hostfs/proc is not mounted read-only")
	}
	if v := volume(t, pod, mount.Name); v.HostPath == nil || v.HostPath.Path != "/proc" {
		t.Errorf("/hostfs/proc is not the host's /proc: %+v", v.VolumeSource)
	}
	if v := volume(t, pod, mountOf(t, c, "/var/lib/otelcol-propeller").Name); v.HostPath == nil {
		t.Error("the queue is not on the host: it would not survive a pod restart")
	}
	conf := checkCollector(t, m, pod, c)
	if !strings.Contains(conf, "proc_root: /hostfs/proc") {
		t.Error("the config does not point proc_root at /hostfs/proc")
	}
}

func TestSidecar(t *testing.T) {
	m := load(t, "sidecar.yaml")
	d := m.deploy
	if d == nil {
		t.Fatal("no Deployment")
	}
	if !labelsMatch(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("the selector %v does not select the template's labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	pod := d.Spec.Template.Spec
	if pod.ShareProcessNamespace == nil || !*pod.ShareProcessNamespace {
		t.Error("shareProcessNamespace is not set")
	}
	if pod.HostPID {
		t.Error("the sidecar should not need the host's PID namespace")
	}
	var proplet *corev1.Container
	for i := range pod.Containers {
		if pod.Containers[i].Name == "proplet" {
			proplet = &pod.Containers[i]
		}
	}
	if proplet == nil {
		t.Fatal("no proplet container")
	}
	if !envHas(*proplet, "PROPLET_ENABLE_MONITORING", "false") || !strings.Contains(m.configMap.Data["config.yaml"], "export_to_mqtt: always") {
		t.Error("not the replace mode: the proplet and the collector would both publish")
	}
	if !envHas(*proplet, "PROPLET_EXTERNAL_WASM_RUNTIME", "wasmtime") {
		t.Error("the proplet does not run tasks as wasmtime processes, so they have none of their own to measure")
	}
	c := collector(t, pod)
	if len(proplet.EnvFrom) != 1 || len(c.EnvFrom) != 1 || proplet.EnvFrom[0].SecretRef.Name != c.EnvFrom[0].SecretRef.Name {
		t.Error("the proplet and the collector do not read the same Secret")
	}
	conf := checkCollector(t, m, pod, c)
	if !strings.Contains(conf, "proc_root: /proc") {
		t.Error("the config does not read the pod's /proc")
	}
}

// checkCollector checks what both variants share, and returns the collector's configuration.
func checkCollector(t *testing.T, m manifests, pod corev1.PodSpec, c corev1.Container) string {
	t.Helper()
	// The configuration from the ConfigMap, at the path the arguments name.
	if strings.Join(c.Args, " ") != "--config /etc/otelcol-propeller/config.yaml" {
		t.Errorf("args %q", c.Args)
	}
	v := volume(t, pod, mountOf(t, c, "/etc/otelcol-propeller").Name)
	if v.ConfigMap == nil || v.ConfigMap.Name != m.configMap.Name {
		t.Errorf("/etc/otelcol-propeller is not the ConfigMap %s: %+v", m.configMap.Name, v.VolumeSource)
	}
	conf, ok := m.configMap.Data["config.yaml"]
	if !ok {
		t.Fatal("the ConfigMap has no config.yaml")
	}
	// The MQTT credentials from the Secret.
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != m.secret.Name {
		t.Errorf("the collector's environment is not the Secret %s: %+v", m.secret.Name, c.EnvFrom)
	}
	for _, k := range []string{"PROPLET_MQTT_ADDRESS", "PROPLET_TENANT_ID", "PROPLET_CHANNEL_ID", "PROPLET_ENTITY_ID", "PROPLET_API_KEY"} {
		if _, ok := m.secret.StringData[k]; !ok {
			t.Errorf("the Secret has no %s", k)
		}
		if !strings.Contains(conf, "${env:"+k) {
			t.Errorf("the config does not read %s", k)
		}
	}
	if strings.Contains(conf, "password: ") && !strings.Contains(conf, "password: ${env:PROPLET_API_KEY}") {
		t.Error("a password in the ConfigMap: it belongs in the Secret")
	}
	// Requests and limits.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okr := c.Resources.Requests[r]
		lim, okl := c.Resources.Limits[r]
		if !okr || !okl || req.Cmp(lim) > 0 {
			t.Errorf("%s: request %v and limit %v", r, req.String(), lim.String())
		}
	}
	// The liveness probe on the health_check extension.
	p := c.LivenessProbe
	if p == nil || p.HTTPGet == nil {
		t.Fatal("no HTTP liveness probe")
	}
	port := p.HTTPGet.Port
	if port.Type == intstr.String {
		for _, cp := range c.Ports {
			if cp.Name == port.StrVal {
				port = intstr.FromInt32(cp.ContainerPort)
			}
		}
	}
	if port.IntValue() != 13133 || !strings.Contains(conf, ":13133") {
		t.Errorf("the liveness probe's port %v is not the health_check extension's 13133", p.HTTPGet.Port)
	}
	// Capabilities: only those reading other users' /proc needs, and NET_ADMIN for the
	// kernel's process events where they are delivered (the host's PID namespace).
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || (sc.Privileged != nil && *sc.Privileged) {
		t.Fatalf("security context %+v", sc)
	}
	if d := sc.Capabilities.Drop; len(d) != 1 || d[0] != "ALL" {
		t.Errorf("capabilities dropped: %v, want ALL", d)
	}
	want := []corev1.Capability{"SYS_PTRACE", "DAC_READ_SEARCH"}
	if pod.HostPID {
		want = append(want, "NET_ADMIN")
	}
	if a := sc.Capabilities.Add; !slices.Equal(a, want) {
		t.Errorf("capabilities added: %v, want %v", a, want)
	}
	validate(t, conf, m.secret)
	return conf
}

// validate runs the built distribution's validate on the configuration, with the Secret's
// values and a pod IP as the environment. It skips when the distribution is not built.
func validate(t *testing.T, conf string, secret *corev1.Secret) {
	t.Helper()
	bin, err := filepath.Abs("../../_build/otelcol-propeller")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Logf("not validating the collector config: %s is not built (make build)", bin)
		return
	}
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "validate", "--config", file)
	cmd.Env = append(os.Environ(), "POD_IP=127.0.0.1")
	for k, v := range secret.StringData {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("otelcol-propeller validate: %v\n%s", err, out.String())
	}
}

func collector(t *testing.T, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	for _, c := range pod.Containers {
		if c.Name == "otelcol-propeller" {
			return c
		}
	}
	t.Fatal("no otelcol-propeller container")
	return corev1.Container{}
}

func mountOf(t *testing.T, c corev1.Container, path string) corev1.VolumeMount {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return m
		}
	}
	t.Fatalf("nothing is mounted at %s", path)
	return corev1.VolumeMount{}
}

func volume(t *testing.T, pod corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %s", name)
	return corev1.Volume{}
}

func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func envHas(c corev1.Container, name, value string) bool {
	for _, e := range c.Env {
		if e.Name == name && e.Value == value {
			return true
		}
	}
	return false
}
