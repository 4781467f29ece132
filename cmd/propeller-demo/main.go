// Command propeller-demo runs the otelcol-propeller distribution on real processes, so a
// newcomer sees it work: it starts two task processes (one busy, one idle), uses the local
// MQTT broker on 127.0.0.1:1883 or starts one of its own, runs the collector with a pipeline
// proplet -> [mqtt, prometheus, debug], and prints a line for every Propeller message the
// collector publishes. Ctrl-C stops everything it started.
//
//	propeller-demo run --collector _build/otelcol-propeller
//	propeller-demo watch --endpoint tcp://127.0.0.1:1883
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/template"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

const (
	domainID   = "demo-domain"
	channelID  = "demo-channel"
	propletID  = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	watchTopic = "m/+/c/+/control/proplet/#"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "watch":
		err = watch(os.Args[2:])
	case "workload":
		workload(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "propeller-demo:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: propeller-demo run --collector PATH | watch [--endpoint URL] [--topic FILTER]")
	os.Exit(2)
}

// workload is a demo task: "busy" keeps one core busy, "idle" holds 64 MiB and sleeps.
func workload(args []string) {
	if len(args) > 0 && args[0] == "busy" {
		runtime.GOMAXPROCS(1)
		for x := 0; ; x++ {
			_ = x
		}
	}
	mem := make([]byte, 64<<20)
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	select {}
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	collector := fs.String("collector", "_build/otelcol-propeller", "path of the otelcol-propeller binary")
	promPort := fs.Int("prometheus-port", 9464, "port of the Prometheus endpoint on 127.0.0.1")
	_ = fs.Parse(args)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	endpoint, closeBroker, err := broker()
	if err != nil {
		return err
	}
	defer closeBroker()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var children []*exec.Cmd
	defer func() {
		for _, c := range children {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	for _, name := range []string{"busy", "idle"} {
		c := exec.Command(self, "workload", name, "--task-name="+name, "--task-id="+uuid())
		dieWithParent(c, syscall.SIGKILL)
		if err := c.Start(); err != nil {
			return fmt.Errorf("start %s task: %w", name, err)
		}
		children = append(children, c)
		fmt.Printf("started task %-4s pid %d (%s)\n", name, c.Process.Pid, strings.Join(c.Args[1:], " "))
	}

	dir, err := os.MkdirTemp("", "propeller-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "config.yaml")
	f, err := os.Create(cfgPath)
	if err != nil {
		return err
	}
	err = configTemplate.Execute(f, map[string]any{
		"PropletID": propletID, "Endpoint": endpoint, "Domain": domainID, "Channel": channelID,
		"ParentPID": os.Getpid(), "PromPort": *promPort,
	})
	_ = f.Close()
	if err != nil {
		return err
	}

	col := exec.Command(*collector, "--config", cfgPath)
	col.Stdout, col.Stderr = os.Stdout, os.Stderr
	dieWithParent(col, syscall.SIGTERM)
	if err := col.Start(); err != nil {
		return fmt.Errorf("start the collector (run `make build` first?): %w", err)
	}
	fmt.Printf(`
otelcol-propeller is running (pid %d) with %s
  Prometheus:  curl -s http://127.0.0.1:%d/metrics | grep propeller_task_id
  MQTT:        mosquitto_sub -h 127.0.0.1 -p %s -t '%s' -v
               (or: go run ./cmd/propeller-demo watch --endpoint %s)
  Ctrl-C stops the collector, the tasks%s.

`, col.Process.Pid, cfgPath, *promPort, portOf(endpoint), watchTopic, endpoint, map[bool]string{true: " and the demo broker", false: ""}[closeBroker != nil])

	go func() { _ = subscribe(ctx, endpoint, watchTopic, os.Stdout) }()
	exited := make(chan error, 1)
	go func() { exited <- col.Wait() }()
	select {
	case err := <-exited:
		return fmt.Errorf("collector exited: %v", err)
	case <-ctx.Done():
		fmt.Println("\nstopping")
		_ = col.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = col.Process.Kill()
		}
	}
	return nil
}

func portOf(endpoint string) string {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(endpoint, "tcp://"))
	return port
}

// broker returns the local Mosquitto when it answers, else an embedded broker of its own.
func broker() (string, func(), error) {
	if c, err := net.DialTimeout("tcp", "127.0.0.1:1883", 300*time.Millisecond); err == nil {
		_ = c.Close()
		fmt.Println("using the MQTT broker on 127.0.0.1:1883")
		return "tcp://127.0.0.1:1883", func() {}, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return "", nil, err
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: addr})); err != nil {
		return "", nil, err
	}
	if err := s.Serve(); err != nil {
		return "", nil, err
	}
	fmt.Println("no broker on 127.0.0.1:1883; started one on", addr)
	return "tcp://" + addr, func() { _ = s.Close() }, nil
}

func watch(args []string) error {
	fs := flag.NewFlagSet("watch", flag.ExitOnError)
	endpoint := fs.String("endpoint", "tcp://127.0.0.1:1883", "broker URL")
	topic := fs.String("topic", watchTopic, "topic filter")
	_ = fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return subscribe(ctx, *endpoint, *topic, os.Stdout)
}

// subscribe prints one compact line per Propeller message until ctx ends.
func subscribe(ctx context.Context, endpoint, topic string, out io.Writer) error {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(endpoint).SetClientID("propeller-demo-" + uuid()[:8]).
		SetAutoReconnect(true).SetConnectRetry(true).SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { fmt.Fprintln(out, summarize(m.Topic(), m.Payload())) })
	}))
	if t := c.Connect(); t.WaitTimeout(10*time.Second) && t.Error() != nil {
		return t.Error()
	}
	<-ctx.Done()
	c.Disconnect(100)
	return nil
}

func summarize(topic string, payload []byte) string {
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return fmt.Sprintf("%s: not JSON: %v", topic, err)
	}
	num := func(obj any, k string) string {
		o, _ := obj.(map[string]any)
		v, ok := o[k].(float64)
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%.1f", v)
	}
	mib := func(obj any, k string) string {
		o, _ := obj.(map[string]any)
		v, ok := o[k].(float64)
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%.1fMiB", v/(1<<20))
	}
	short := topic[strings.Index(topic, "/control/")+1:]
	if id, ok := m["task_id"].(string); ok {
		agg := "null"
		if a, ok := m["aggregated"].(map[string]any); ok {
			agg = fmt.Sprintf("n=%s avg_cpu=%s", num(a, "sample_count"), num(a, "avg_cpu_usage"))
		}
		return fmt.Sprintf("%-34s task %s cpu=%s%% mem=%s threads=%s fds=%s uptime=%ss aggregated{%s}",
			short, id[:8], num(m["metrics"], "cpu_percent"), mib(m["metrics"], "memory_bytes"),
			num(m["metrics"], "thread_count"), num(m["metrics"], "file_descriptor_count"), num(m["metrics"], "uptime_seconds"), agg)
	}
	return fmt.Sprintf("%-34s proplet %s machine_cpu=%s%% rss=%s", short, str(m["proplet_id"])[:8],
		num(m["cpu_metrics"], "percent"), mib(m["memory_metrics"], "rss_bytes"))
}

func str(v any) string {
	s, _ := v.(string)
	return s + "        "
}

var configTemplate = template.Must(template.New("config").Parse(`# Written by propeller-demo.
receivers:
  proplet:
    proplet_id: {{.PropletID}}
    proplet:
      self: true          # the collector plays the proplet in this demo
      interval: 5s
    profiles:
      demo_idle: { interval: 5s, history_size: 12, collect_disk_io: false }
    discovery:
      - match:
          cmdline: 'workload busy --task-name=(?P<task_name>\w+) --task-id=(?P<task_id>[0-9a-f-]{36})'
          parent_pid: {{.ParentPID}}
        profile: intensive
      - match:
          cmdline: 'workload idle --task-name=(?P<task_name>\w+) --task-id=(?P<task_id>[0-9a-f-]{36})'
          parent_pid: {{.ParentPID}}
        profile: demo_idle
    start_jitter: 0s

exporters:
  mqtt:
    endpoint: {{.Endpoint}}
    domain_id: {{.Domain}}
    channel_id: {{.Channel}}
  prometheus:
    endpoint: 127.0.0.1:{{.PromPort}}
    resource_to_telemetry_conversion:
      enabled: true
  debug:
    verbosity: basic

service:
  telemetry:
    logs:
      level: info
  pipelines:
    metrics:
      receivers: [proplet]
      exporters: [mqtt, prometheus, debug]
`))
