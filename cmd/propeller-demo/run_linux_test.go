package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test binary plays the demo (and, as the demo's own executable, its tasks) and a
// stand-in collector, so the signal path of `propeller-demo run` is tested end to end without
// the distribution.
const roleEnv = "PROPELLER_DEMO_TEST_ROLE"

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "demo" {
		if len(os.Args) > 1 && os.Args[1] == "--config" {
			fakeCollectorMain()
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeCollectorMain stands in for otelcol-propeller: ready once it handles signals, then it
// exits 0 at the first SIGINT or SIGTERM, saying which.
func fakeCollectorMain() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	fmt.Println("fake collector ready")
	fmt.Println("fake collector got", signalName(<-sigs))
	os.Exit(0)
}

// TestRunCtrlC runs `propeller-demo run` in a process group of its own, as a shell runs a
// foreground job, and sends SIGINT to the whole group, as a terminal's Ctrl-C does. The demo
// forwards it to the collector, waits for it, stops its tasks and exits 0, every time.
func TestRunCtrlC(t *testing.T) {
	for i := range 3 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "run", "--collector", os.Args[0], "--prometheus-port", "0")
			cmd.Env = append(os.Environ(), roleEnv+"=demo")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

			var mu sync.Mutex
			var out strings.Builder
			ready := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					mu.Lock()
					out.WriteString(sc.Text() + "\n")
					mu.Unlock()
					if sc.Text() == "fake collector ready" {
						close(ready)
					}
				}
				_, _ = io.Copy(io.Discard, stdout)
			}()
			select {
			case <-ready:
			case <-time.After(30 * time.Second):
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("the demo did not start the collector:\n%s\n%s", out.String(), stderr.String())
			}

			require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGINT))
			<-done
			err = cmd.Wait()
			mu.Lock()
			defer mu.Unlock()
			require.NoError(t, err, "exit status after Ctrl-C\n%s\n%s", out.String(), stderr.String())
			assert.Contains(t, out.String(), "interrupt: stopping the collector\nfake collector got interrupt\n",
				"the signal is forwarded once and the collector waited for")
			assert.NotContains(t, out.String(), "collector stopped")
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			assert.Contains(t, lines[len(lines)-1], "propeller-demo: everything it started is stopped (", "the last line says everything is down")
			assert.Empty(t, stderr.String())

			for _, m := range regexp.MustCompile(`started task \w+ +pid (\d+)`).FindAllStringSubmatch(out.String(), -1) {
				pid, _ := strconv.Atoi(m[1])
				assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "task pid %d is stopped", pid)
			}
		})
	}
}
