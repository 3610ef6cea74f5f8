package securitytest

import (
	"runtime"
	"testing"
	"time"
)

// Goroutines returns the number of goroutines now.
func Goroutines() int { return runtime.NumGoroutine() }

// WaitGoroutines waits, polling, up to timeout for the goroutine count to
// come back to at most baseline+slack, and fails the test with the
// stacks if it does not. It returns the last count.
func WaitGoroutines(t testing.TB, baseline, slack int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	n := runtime.NumGoroutine()
	for n > baseline+slack && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > baseline+slack {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines, baseline %d (+%d allowed): leak?\n%s", n, baseline, slack, buf)
	}
	return n
}
