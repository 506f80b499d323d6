package ops

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReadyzWaitsForEveryCondition(t *testing.T) {
	ready := NewReadiness("nfs")
	ready.Add("sync")
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "nasd_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	srv := httptest.NewServer(Handler(ready, reg))
	defer srv.Close()
	get := getter(t, srv.URL)
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "nfs") || !strings.Contains(body, "sync") {
		t.Fatalf("/readyz with nothing ready: %d %q", code, body)
	}
	ready.Set("nfs", true)
	if code, body := get("/readyz"); code != 503 || strings.Contains(body, "nfs") {
		t.Fatalf("/readyz with sync pending: %d %q", code, body)
	}
	ready.Set("sync", true)
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz all ready: %d", code)
	}
	ready.Add("shutdown")
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("/readyz during shutdown: %d", code)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	ready.Fail("nfs", errors.New("listener closed"))
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "nfs: listener closed") {
		t.Fatalf("/healthz after a failure: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "nasd_test_total 1") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Fatalf("/metrics: %d", code)
	}
}

// getter returns a GET of a path of base: status and body.
func getter(t *testing.T, base string) func(path string) (int, string) {
	return func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"msg":"shown"`) {
		t.Fatalf("log output %q", out)
	}
	if _, err := NewLogger(&buf, "xml", "info"); err == nil {
		t.Fatal("bad format accepted")
	}
	if _, err := NewLogger(&buf, "text", "loud"); err == nil {
		t.Fatal("bad level accepted")
	}
}

// TestWarningsKeepReady: a warning (the sync halted) is named on /readyz,
// which stays 200 so the pod stays in the Service, and fails /syncz.
func TestWarningsKeepReady(t *testing.T) {
	r := NewReadiness("nfs")
	r.Set("nfs", true)
	srv := httptest.NewServer(Handler(r, NewRegistry()))
	defer srv.Close()
	get := getter(t, srv.URL)
	if code, body := get("/syncz"); code != 200 {
		t.Fatalf("/syncz without warnings: %d %q", code, body)
	}
	r.Warn("sync", "halted: windows root emptied")
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "warning: sync: halted: windows root emptied") {
		t.Fatalf("/readyz with a warning: %d %q", code, body)
	}
	if code, body := get("/syncz"); code != 503 || !strings.Contains(body, "sync: halted: windows root emptied") {
		t.Fatalf("/syncz with a warning: %d %q", code, body)
	}
	r.Warn("sync", "")
	if code, body := get("/syncz"); code != 200 || len(r.Warnings()) != 0 {
		t.Fatalf("/syncz after the warning cleared: %d %q", code, body)
	}
}
