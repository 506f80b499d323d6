// Package ops is nasd's operations surface: /healthz, /readyz and the
// Prometheus /metrics endpoint, and the slog logger setup.
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness is a set of named conditions that must all hold before /readyz
// answers 200 (e.g. "nfs" once listening, "sync" after the initial sync).
//
// It also carries liveness: a part that stopped for good (the NFS listener
// failed) calls Fail, and /healthz answers 503 from then on, so that the
// kubelet restarts the pod instead of leaving a server that accepts no one.
//
// A warning is a problem that does not stop nasd from serving clients (the
// sync halted on a root in doubt): /readyz keeps answering 200 and names it,
// because failing readiness would take the pod out of the Service and hang
// every client of an export that still works; /syncz answers 503 with it.
type Readiness struct {
	mu       sync.Mutex
	pending  map[string]bool // name -> ready
	failed   map[string]string
	warnings map[string]string
}

// NewReadiness returns a Readiness waiting for the named conditions.
func NewReadiness(names ...string) *Readiness {
	r := &Readiness{pending: map[string]bool{}, failed: map[string]string{}, warnings: map[string]string{}}
	for _, n := range names {
		r.pending[n] = false
	}
	return r
}

// Add registers one more condition (not yet ready).
func (r *Readiness) Add(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending[name] = false
}

// Set marks a condition ready or not.
func (r *Readiness) Set(name string, ready bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending[name] = ready
}

// Warn sets (msg != "") or clears (msg == "") the warning of part name.
func (r *Readiness) Warn(name, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if msg == "" {
		delete(r.warnings, name)
		return
	}
	r.warnings[name] = msg
}

// Warnings lists the current warnings, sorted.
func (r *Readiness) Warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for n, m := range r.warnings {
		out = append(out, n+": "+m)
	}
	sort.Strings(out)
	return out
}

// Fail marks the part name as stopped for good: /healthz and /readyz fail.
func (r *Readiness) Fail(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed[name] = err.Error()
	r.pending[name] = false
}

// Healthy reports whether no part failed, and the failures otherwise.
func (r *Readiness) Healthy() (bool, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var failed []string
	for n, e := range r.failed {
		failed = append(failed, n+": "+e)
	}
	sort.Strings(failed)
	return len(failed) == 0, failed
}

// Ready reports whether every condition holds, and which do not.
func (r *Readiness) Ready() (bool, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var waiting []string
	for n, ok := range r.pending {
		if !ok {
			waiting = append(waiting, n)
		}
	}
	return len(waiting) == 0, waiting
}

// NewRegistry returns a Prometheus registry with the Go and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves /healthz, /readyz, /syncz and /metrics.
func Handler(ready *Readiness, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, failed := ready.Healthy(); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "failed: %s\n", strings.Join(failed, "; "))
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, waiting := ready.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "waiting for: %s\n", strings.Join(waiting, ", "))
			return
		}
		io.WriteString(w, "ready\n")
		for _, warning := range ready.Warnings() {
			fmt.Fprintf(w, "warning: %s\n", warning)
		}
	})
	mux.HandleFunc("/syncz", func(w http.ResponseWriter, _ *http.Request) {
		if warnings := ready.Warnings(); len(warnings) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%s\n", strings.Join(warnings, "\n"))
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

// Server is the operations HTTP server.
type Server struct{ srv *http.Server }

// Serve starts serving h on l in the background.
func Serve(l net.Listener, h http.Handler, log *slog.Logger) *Server {
	s := &Server{srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("operations HTTP server stopped", "err", err)
		}
	}()
	return s
}

// Shutdown stops the server gracefully.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// NewLogger returns the process logger: JSON or text on w at level.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want json or text", format)
}
