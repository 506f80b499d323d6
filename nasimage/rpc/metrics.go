package rpc

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the front door's Prometheus metrics.
type Metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	readBytes    prometheus.Counter
	writtenBytes prometheus.Counter
	conns        prometheus.Gauge
	connsTotal   prometheus.Counter
	connErrors   *prometheus.CounterVec
	inflight     prometheus.Gauge
	acceptErrors prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered anywhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nasd_rpc_requests_total",
			Help: "RPC calls answered, by program (nfs, mount, portmap), procedure and status (NFS status or RPC error).",
		}, []string{"program", "procedure", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nasd_rpc_request_duration_seconds",
			Help:    "Time from reading a call to sending its reply, by program.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 9),
		}, []string{"program"}),
		readBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nasd_nfs_read_bytes_total", Help: "File data returned by NFS READ.",
		}),
		writtenBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nasd_nfs_written_bytes_total", Help: "File data received by NFS WRITE.",
		}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nasd_rpc_connections", Help: "Open client connections (NFS and portmapper ports).",
		}),
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nasd_rpc_connections_total", Help: "Client connections accepted.",
		}),
		connErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nasd_rpc_connection_errors_total",
			Help: "Connections closed by the server, by reason (limit: refused at the connection limit; idle; record_timeout: a record stopped half-way; protocol errors).",
		}, []string{"reason"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nasd_nfs_inflight_requests", Help: "NFS calls being served by go-nfs.",
		}),
		acceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nasd_rpc_accept_errors_total", Help: "Transient accept failures (e.g. out of file descriptors), each retried after a backoff.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.readBytes, m.writtenBytes,
			m.conns, m.connsTotal, m.connErrors, m.inflight, m.acceptErrors)
	}
	return m
}

func (m *Metrics) observe(program, proc, status string, start time.Time) {
	m.requests.WithLabelValues(program, proc, status).Inc()
	m.duration.WithLabelValues(program).Observe(time.Since(start).Seconds())
}
