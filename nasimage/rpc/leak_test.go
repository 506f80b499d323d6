package rpc_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/internal/nfstest"
)

// TestNoGoroutineLeak: 1,000 connect / mount / call / disconnect cycles
// leave no goroutine behind (the go-nfs backend pool is bounded and shared).
func TestNoGoroutineLeak(t *testing.T) {
	srv := nfstest.Start(t, nfstest.Options{Backends: 4})
	cycle := func() {
		c := nfstest.DialRaw(t, srv.Addr, "")
		root := c.Mnt(t, "/")
		if st := c.Getattr(t, root); st != 0 {
			t.Fatalf("GETATTR %d", st)
		}
		c.Conn.Close()
	}
	cycle()
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()
	for range 1000 {
		cycle()
	}
	// The backend pool may have grown to its bound (3 goroutines each).
	limit := base + 4*3
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for n > limit && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	t.Logf("goroutines: %d before, %d after 1,000 cycles (limit %d)", base, n, limit)
	if n > limit {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutine leak: %d before, %d after 1,000 cycles\n%s", base, n, buf[:runtime.Stack(buf, true)])
	}
}
