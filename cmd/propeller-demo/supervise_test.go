package main

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeCollector records what supervise does to the collector; it exits (on exited) when
// told to by exitOn.
type fakeCollector struct {
	mu      sync.Mutex
	signals []os.Signal
	killed  bool
	exited  chan error
	exitOn  func(os.Signal) bool // exit with status 0 on this signal
}

func newFake(exitOn func(os.Signal) bool) *fakeCollector {
	return &fakeCollector{exited: make(chan error, 1), exitOn: exitOn}
}

func (f *fakeCollector) Signal(s os.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, s)
	if f.exitOn(s) {
		f.exited <- nil
	}
	return nil
}

func (f *fakeCollector) Kill() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.killed = true
	f.exited <- errors.New("signal: killed")
	return nil
}

func always(os.Signal) bool { return true }
func never(os.Signal) bool  { return false }

func TestSuperviseCtrlCIsACleanStop(t *testing.T) {
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			sigs := make(chan os.Signal, 1)
			col := newFake(always)
			var out bytes.Buffer
			sigs <- sig
			require.NoError(t, supervise(sigs, col.exited, col, time.Minute, &out))
			assert.Equal(t, []os.Signal{sig}, col.signals, "the signal is forwarded as it came")
			assert.False(t, col.killed)
			assert.Contains(t, out.String(), ": stopping the collector")
			assert.NotContains(t, out.String(), "collector stopped")
		})
	}
}

// TestSuperviseCollectorStoppedByTheSameSignal: where the collector shares the terminal's
// process group, Ctrl-C stops it too, and it may exit before the demo sees the signal. That
// is the same clean stop, not "collector exited: <nil>" and exit status 1.
func TestSuperviseCollectorStoppedByTheSameSignal(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	exited := make(chan error, 1)
	exited <- nil
	go func() {
		time.Sleep(signalGrace / 5)
		sigs <- os.Interrupt
	}()
	col := newFake(never)
	var out bytes.Buffer
	require.NoError(t, supervise(sigs, exited, col, time.Minute, &out))
	assert.Empty(t, out.String())
}

func TestSuperviseCollectorFails(t *testing.T) {
	exited := make(chan error, 1)
	exited <- errors.New("exit status 1")
	col := newFake(never)
	err := supervise(make(chan os.Signal), exited, col, time.Minute, &bytes.Buffer{})
	require.Error(t, err)
	assert.Equal(t, "the collector stopped: exit status 1 (its log above says why)", err.Error())
	assert.Empty(t, col.signals)
}

func TestSuperviseCollectorStopsOnItsOwn(t *testing.T) {
	exited := make(chan error, 1)
	exited <- nil
	var out bytes.Buffer
	require.NoError(t, supervise(make(chan os.Signal), exited, newFake(never), time.Minute, &out))
	assert.Equal(t, "the collector stopped\n", out.String())
}

func TestSuperviseKillsACollectorThatDoesNotStop(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		sigs := make(chan os.Signal, 1)
		sigs <- os.Interrupt
		col := newFake(never)
		var out bytes.Buffer
		require.NoError(t, supervise(sigs, col.exited, col, 50*time.Millisecond, &out))
		assert.True(t, col.killed)
		assert.Contains(t, out.String(), "the collector did not stop within 50ms: killing it")
	})
	t.Run("the same Ctrl-C twice", func(t *testing.T) {
		sigs := make(chan os.Signal, 2)
		sigs <- os.Interrupt
		sigs <- os.Interrupt
		col := newFake(never)
		var out bytes.Buffer
		require.NoError(t, supervise(sigs, col.exited, col, 200*time.Millisecond, &out))
		assert.Equal(t, []os.Signal{os.Interrupt}, col.signals, "forwarded once")
		assert.Len(t, sigs, 0, "the repeated signal was read, not acted on")
		assert.Contains(t, out.String(), "the collector did not stop within 200ms: killing it")
	})
}
