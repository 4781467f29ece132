//go:build linux

package mqtttest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a mosquitto process started by a test on a free port, with persistence on disk:
// on a graceful stop it saves sessions and queued messages, so a restart keeps what it
// acknowledged.
type Mosquitto struct {
	tb   testing.TB
	addr string
	conf string
	cmd  *exec.Cmd
}

// MosquittoAvailable reports whether the mosquitto binary is installed.
func MosquittoAvailable() bool {
	_, err := exec.LookPath("mosquitto")
	return err == nil
}

// StartMosquitto starts mosquitto on a free port of 127.0.0.1. It stops when the test ends.
func StartMosquitto(tb testing.TB) *Mosquitto {
	tb.Helper()
	dir := tb.TempDir()
	addr := FreeAddress(tb)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	content := strings.Join([]string{
		"listener " + port + " 127.0.0.1",
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + dir + "/",
		"max_queued_messages 100000",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	m := &Mosquitto{tb: tb, addr: addr, conf: conf}
	m.start()
	tb.Cleanup(m.Stop)
	return m
}

func (m *Mosquitto) start() {
	m.cmd = exec.Command("mosquitto", "-c", m.conf)
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		m.tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", m.addr, 100*time.Millisecond); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // polling for the listener
	}
	m.tb.Fatalf("mosquitto did not listen on %s", m.addr)
}

// Endpoint is the broker's URL.
func (m *Mosquitto) Endpoint() string { return "tcp://" + m.addr }

// Stop stops mosquitto gracefully (it saves its persistence file).
func (m *Mosquitto) Stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-done
	}
	m.cmd = nil
}

// Restart stops mosquitto and starts it again on the same port after down.
func (m *Mosquitto) Restart(down time.Duration) {
	m.Stop()
	time.Sleep(down) //nolint:forbidigo // the broker is down on purpose for this long
	m.start()
}
