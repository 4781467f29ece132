//go:build linux

package testworkload

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// delayacctSwitch is the kernel's delay accounting switch (Linux 5.14 and later).
const delayacctSwitch = "/proc/sys/kernel/task_delayacct"

// delayacctLock is the lock every test that sets the switch holds until it has restored it:
// go test runs packages in parallel processes, and the switch is the machine's.
const delayacctLock = "/tmp/otelcol-propeller-test-task_delayacct.lock"

// SetDelayAccounting sets kernel.task_delayacct for the rest of the test and restores it when
// the test ends, holding a lock across test processes meanwhile. It skips the test where the
// switch does not exist; setting it needs root.
func SetDelayAccounting(tb testing.TB, on bool) {
	tb.Helper()
	was, err := os.ReadFile(delayacctSwitch)
	if err != nil {
		tb.Skipf("no delay accounting switch here (Linux 5.14+): %v", err)
	}
	lock, err := os.OpenFile(delayacctLock, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		tb.Fatalf("open %s: %v", delayacctLock, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		_ = lock.Close()
		tb.Fatalf("lock %s: %v", delayacctLock, err)
	}
	if was, err = os.ReadFile(delayacctSwitch); err != nil { // as it is now that we hold the lock
		_ = lock.Close()
		tb.Fatalf("read %s: %v", delayacctSwitch, err)
	}
	tb.Cleanup(func() {
		if err := os.WriteFile(delayacctSwitch, was, 0o644); err != nil {
			tb.Errorf("restore %s to %q: %v", delayacctSwitch, strings.TrimSpace(string(was)), err)
		}
		_ = lock.Close() // releases the lock
	})
	v := "0"
	if on {
		v = "1"
	}
	if err := os.WriteFile(delayacctSwitch, []byte(v), 0o644); err != nil {
		tb.Fatalf("set %s to %s (root only): %v", delayacctSwitch, v, err)
	}
}
