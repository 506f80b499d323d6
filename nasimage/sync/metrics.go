package sync

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

type metrics struct {
	lastSync    *prometheus.GaugeVec
	pending     prometheus.Gauge
	files       *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	conflicts   prometheus.Counter
	compared    prometheus.Counter
	halted      *prometheus.GaugeVec
	interval    prometheus.Gauge
	skipped     prometheus.Gauge
	errors      *prometheus.CounterVec
	scanSeconds *prometheus.HistogramVec
}

// direction names the way data flows into side to.
func direction(to reconcile.Side) string {
	if to == reconcile.NFS {
		return "windows_to_nfs"
	}
	return "nfs_to_windows"
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lastSync: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nasd_sync_last_success_timestamp_seconds",
			Help: "When a sync round last completed with nothing left to do in this direction.",
		}, []string{"direction"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nasd_sync_pending_actions",
			Help: "Actions planned but not yet applied (or failed and waiting for a retry).",
		}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nasd_sync_files_copied_total",
			Help: "Files copied by the sync engine.",
		}, []string{"direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nasd_sync_bytes_copied_total",
			Help: "Bytes copied by the sync engine.",
		}, []string{"direction"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nasd_sync_conflicts_total",
			Help: "Paths changed on both sides; the Windows version was kept under a conflict name.",
		}),
		compared: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nasd_sync_content_compared_total",
			Help: "Files whose two sides' contents were compared (both changed to the same size, no ancestor, or a racy timestamp).",
		}),
		halted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nasd_sync_halted",
			Help: "1 while this side's root halts the sync: in doubt (marker missing or another, directory gone) or emptied in one round.",
		}, []string{"side"}),
		interval: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nasd_sync_rescan_interval_seconds",
			Help: "The rescan interval in force: --rescan-interval, or 25 times the last scan's duration if longer.",
		}),
		skipped: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nasd_sync_skipped_names",
			Help: "NFS paths not synced because Windows cannot hold their names (illegal characters, reserved names, case-only twins).",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nasd_sync_errors_total",
			Help: "Failed sync operations, by operation.",
		}, []string{"op"}),
		scanSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nasd_sync_scan_duration_seconds",
			Help:    "Time to scan one side.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"side"}),
	}
	for _, c := range []prometheus.Collector{m.lastSync, m.pending, m.files, m.bytes, m.conflicts, m.compared, m.halted, m.interval, m.skipped, m.errors, m.scanSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
