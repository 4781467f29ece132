// Command propeller-demo runs the otelcol-propeller distribution on real processes, so a
// newcomer sees it work: it starts two task processes (one busy, one idle), uses the local
// MQTT broker on 127.0.0.1:1883 or starts one of its own, runs the collector with a pipeline
// proplet -> [mqtt, prometheus], and prints a line for every Propeller message the collector
// publishes. Ctrl-C stops the collector (the signal is forwarded, and the demo waits for it)
// and the tasks, and exits 0.
//
//	propeller-demo run --collector _build/otelcol-propeller
//	propeller-demo watch --endpoint tcp://127.0.0.1:1883
package main

import (
	"context"
	"crypto/rand"
	"errors"
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
	watchTopic = "m/+/c/+/control/proplet/#"
	// stopTimeout is how long the collector has to stop after the signal is forwarded.
	stopTimeout = 10 * time.Second
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
	// On a timer, not in an empty select: without cgo the runtime kills a process whose
	// goroutines all wait on channels as deadlocked.
	for {
		time.Sleep(time.Hour)
		runtime.KeepAlive(mem)
	}
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
	promPort := fs.Int("prometheus-port", 9464, "port of the Prometheus endpoint on 127.0.0.1 (another free port when it is taken)")
	_ = fs.Parse(args)

	defer foreground()()
	// What the demo started, said stopped once the deferred stops below have run (this runs
	// last): the line a user waits for after Ctrl-C.
	var started []string
	defer func() {
		if len(started) > 0 {
			fmt.Printf("propeller-demo: everything it started is stopped (%s)\n", strings.Join(started, ", "))
		}
	}()
	// Registered before anything starts, so a Ctrl-C at any point is ours to handle.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	b, err := broker()
	if err != nil {
		return err
	}
	defer b.close()
	if b.own {
		started = append(started, "the broker")
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	// Each run has a proplet id of its own, so two demos on one broker print only their own
	// messages.
	propletID := uuid()
	names := map[string]string{} // task id -> task name, for the printed lines
	var children []*exec.Cmd
	defer func() {
		for _, c := range children {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	for _, name := range []string{"busy", "idle"} {
		id := uuid()
		c := exec.Command(self, "workload", name, "--task-name="+name, "--task-id="+id)
		// The demo stops its tasks itself, after the collector, so the collector does not
		// see them die of the terminal's Ctrl-C first.
		ownGroup(c, syscall.SIGKILL)
		if err := c.Start(); err != nil {
			return fmt.Errorf("start %s task: %w", name, err)
		}
		children = append(children, c)
		started = append(started, fmt.Sprintf("task %s pid %d", name, c.Process.Pid))
		names[id] = name
		fmt.Printf("started task %-4s pid %d (%s)\n", name, c.Process.Pid, strings.Join(c.Args[1:], " "))
	}

	prom, err := freePort(*promPort)
	if err != nil {
		return err
	}
	if *promPort != 0 && prom != *promPort {
		fmt.Printf("port %d is taken (another demo?); Prometheus is served on %d\n", *promPort, prom)
	}
	// The Collector serves its own metrics on localhost:8888 unless told otherwise; a second
	// collector on the host would fail to start on it.
	telemetry, err := freePort(0)
	if err != nil {
		return err
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
		"PropletID": propletID, "Endpoint": b.endpoint, "Domain": domainID, "Channel": channelID,
		"ParentPID": os.Getpid(), "PromPort": prom, "TelemetryPort": telemetry,
	})
	_ = f.Close()
	if err != nil {
		return err
	}

	col := exec.Command(*collector, "--config", cfgPath)
	col.Stdout, col.Stderr = os.Stdout, os.Stderr
	// In a process group of its own, the collector gets the signal from us, not from the
	// terminal: it stops once, when the demo says so.
	ownGroup(col, syscall.SIGTERM)
	if err := col.Start(); err != nil {
		return fmt.Errorf("start the collector (run `make build` first?): %w", err)
	}
	started = append(started, fmt.Sprintf("the collector pid %d", col.Process.Pid))
	fmt.Print(banner(bannerInfo{
		CollectorPID: col.Process.Pid, Config: cfgPath, PromPort: prom, TelemetryPort: telemetry,
		Endpoint: b.endpoint, OwnBroker: b.own,
	}))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = subscribe(ctx, b.endpoint, watchTopic, func(topic string, payload []byte) {
			if l, ok := line(topic, payload, propletID, names); ok {
				fmt.Println(l)
			}
		})
	}()
	exited := make(chan error, 1)
	go func() { exited <- col.Wait() }()
	return supervise(sigs, exited, col.Process, stopTimeout, os.Stdout)
}

// process is the part of *os.Process that supervise uses.
type process interface {
	Signal(os.Signal) error
	Kill() error
}

// signalGrace is how long a collector that exited with status 0 waits for a signal that may be
// on its way to the demo too (a Ctrl-C reaches the whole foreground process group where the
// collector cannot have a group of its own).
const signalGrace = 500 * time.Millisecond

// supervise waits for the collector to exit or for a signal. A signal is a clean stop: it is
// forwarded to the collector, the collector is waited for (killed after timeout) and the result
// is nil. A collector that fails on its own is an error; one that stops
// with status 0 on its own is not.
func supervise(sigs <-chan os.Signal, exited <-chan error, col process, timeout time.Duration, out io.Writer) error {
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("the collector stopped: %v (its log above says why)", err)
		}
		select {
		case <-sigs:
		case <-time.After(signalGrace):
			fmt.Fprintln(out, "the collector stopped")
		}
		return nil
	case sig := <-sigs:
		fmt.Fprintf(out, "\n%s: stopping the collector\n", signalName(sig))
		if err := col.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			_ = col.Kill()
		}
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
		for {
			select {
			case err := <-exited:
				if err != nil {
					fmt.Fprintf(out, "the collector stopped: %v\n", err)
				}
				return nil
			case <-sigs:
				// The same Ctrl-C often comes twice (to the demo and to its process group, as
				// timeout(1) sends it); the collector is already stopping.
			case <-deadline.C:
				fmt.Fprintf(out, "the collector did not stop within %s: killing it\n", timeout)
				_ = col.Kill()
			}
		}
	}
}

func signalName(sig os.Signal) string {
	if sig == os.Interrupt {
		return "interrupt"
	}
	return sig.String()
}

// freePort returns port when it is free on 127.0.0.1, else a port the kernel chooses (also
// when port is 0).
func freePort(port int) (int, error) {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil && port != 0 {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// bannerInfo is what the banner tells about a running demo.
type bannerInfo struct {
	CollectorPID  int
	Config        string
	PromPort      int
	TelemetryPort int
	Endpoint      string
	OwnBroker     bool // the demo started the broker, and stops it
}

func banner(b bannerInfo) string {
	stops := "Ctrl-C stops the collector and the tasks (the MQTT broker on " + strings.TrimPrefix(b.Endpoint, "tcp://") + " is not the demo's: it keeps running)."
	if b.OwnBroker {
		stops = "Ctrl-C stops the collector, the tasks and the demo's MQTT broker."
	}
	return fmt.Sprintf(`
otelcol-propeller is running (pid %d) with %s
  Prometheus:      curl -s http://127.0.0.1:%d/metrics | grep propeller_task_name
  Self-telemetry:  curl -s http://127.0.0.1:%d/metrics | grep otelcol_receiver_proplet
  MQTT:            mosquitto_sub -h 127.0.0.1 -p %s -t '%s' -v
                   (or: go run ./cmd/propeller-demo watch --endpoint %s)
  The collector logs warnings and errors only; below, one line per message it publishes.
  %s

`, b.CollectorPID, b.Config, b.PromPort, b.TelemetryPort, portOf(b.Endpoint), watchTopic, b.Endpoint, stops)
}

func portOf(endpoint string) string {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(endpoint, "tcp://"))
	return port
}

// demoBroker is the broker the demo publishes to.
type demoBroker struct {
	endpoint string
	own      bool   // started by the demo
	close    func() // stops it when it is the demo's own
}

// broker returns the local Mosquitto when it answers, else an embedded broker of its own.
func broker() (demoBroker, error) {
	if c, err := net.DialTimeout("tcp", "127.0.0.1:1883", 300*time.Millisecond); err == nil {
		_ = c.Close()
		fmt.Println("using the MQTT broker on 127.0.0.1:1883")
		return demoBroker{endpoint: "tcp://127.0.0.1:1883", close: func() {}}, nil
	}
	port, err := freePort(0)
	if err != nil {
		return demoBroker{}, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return demoBroker{}, err
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: addr})); err != nil {
		return demoBroker{}, err
	}
	if err := s.Serve(); err != nil {
		return demoBroker{}, err
	}
	fmt.Println("no broker on 127.0.0.1:1883; started one on", addr)
	return demoBroker{endpoint: "tcp://" + addr, own: true, close: func() { _ = s.Close() }}, nil
}

func watch(args []string) error {
	fs := flag.NewFlagSet("watch", flag.ExitOnError)
	endpoint := fs.String("endpoint", "tcp://127.0.0.1:1883", "broker URL")
	topic := fs.String("topic", watchTopic, "topic filter")
	_ = fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return subscribe(ctx, *endpoint, *topic, func(topic string, payload []byte) {
		l, _ := line(topic, payload, "", nil)
		fmt.Println(l)
	})
}

// subscribe hands every message on topic to handle until ctx ends.
func subscribe(ctx context.Context, endpoint, topic string, handle func(topic string, payload []byte)) error {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(endpoint).SetClientID("propeller-demo-" + uuid()[:8]).
		SetAutoReconnect(true).SetConnectRetry(true).SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { handle(m.Topic(), m.Payload()) })
	}))
	if t := c.Connect(); t.WaitTimeout(10*time.Second) && t.Error() != nil {
		return t.Error()
	}
	<-ctx.Done()
	c.Disconnect(100)
	return nil
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
    resource_constant_labels:   # one series per task, labelled with these attributes
      included: [propeller.task.id, propeller.task.name, propeller.proplet.id]

service:
  telemetry:
    logs:
      level: warn         # the demo prints a line per message; the collector only what goes wrong
    metrics:              # the Collector's own metrics, on a port of this demo's (default: localhost:8888)
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{.TelemetryPort}}
  pipelines:
    metrics:
      receivers: [proplet]
      exporters: [mqtt, prometheus]
`))
