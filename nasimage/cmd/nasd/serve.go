package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
	"github.com/nas-topology/nas-topology/nasimage/nfsfs"
	"github.com/nas-topology/nas-topology/nasimage/ops"
	"github.com/nas-topology/nas-topology/nasimage/rpc"
)

// Worker runs beside the NFS server for the life of `nasd serve` (the sync
// engine is one). Run calls ready once it is ready to serve (e.g. after the
// initial sync): /readyz answers 200 when every worker has. When ctx is
// cancelled (SIGTERM, after NFS calls have drained) Run must flush and
// return within the shutdown grace period.
type Worker interface {
	Run(ctx context.Context, ready func()) error
}

// Env is what `nasd serve` gives an extension to build its worker.
type Env struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // for the worker's metrics
	ExportDir  string                // the directory served over NFS
	StateDir   string                // the worker may keep state in a subdirectory
	Role       string                // input, backup or output
	ReadOnly   bool                  // the NFS export refuses writes
	Ready      *ops.Readiness        // a worker may add conditions of its own
	// Installed tells the NFS server of a file or directory a worker just
	// put in the export (its handle index learns the identity).
	Installed func(rel string)
}

// extension adds flags and optionally a worker to `nasd serve`. Other
// files of this package call registerExtension from init.
type extension struct {
	name string
	// flags registers the extension's flags (may be nil).
	flags func(fs *flag.FlagSet)
	// worker builds the worker once flags are parsed; (nil, nil) means the
	// extension has nothing to run with these flags.
	worker func(env Env) (Worker, error)
}

var extensions []extension

func registerExtension(e extension) { extensions = append(extensions, e) }

// listenNFS binds the NFS listener (a seam for tests that make it fail).
var listenNFS = net.Listen

// listening reports the bound addresses (for tests).
type listening struct{ nfs, portmap, http net.Addr }

// serve runs `nasd serve` until ctx is cancelled (SIGTERM), then shuts
// down gracefully and returns nil. started, if not nil, is called once the
// listeners are bound.
func serve(ctx context.Context, args []string, stderr io.Writer, started func(listening)) error {
	var f serveFlags
	fs := flag.NewFlagSet("nasd serve", flag.ContinueOnError)
	f.register(fs)
	for _, e := range extensions {
		if e.flags != nil {
			e.flags(fs)
		}
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	log, err := ops.NewLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	cfg, err := f.exportConfig(fs)
	if err != nil {
		return err
	}

	key, err := f.handleKey()
	if err != nil {
		return err
	}
	// The Deployment's emptyDir starts empty: the export is a directory in
	// it, 0755 (not the setgid bit fsGroup gives the emptyDir: clients see
	// this mode, with --files-owner as its owner).
	if _, err := os.Stat(f.export); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(f.export, 0o755); err != nil {
			return fmt.Errorf("export directory: %w", err)
		}
		if err := os.Chmod(f.export, 0o755); err != nil {
			return fmt.Errorf("export directory: %w", err)
		}
	}
	handler, err := nfsfs.NewHandler(f.export, cfg, key)
	if err != nil {
		return err
	}
	if !fileid.Supported(f.export) {
		log.Warn("the export's filesystem has no user xattrs: file identities are kept in memory, so handles of files created over NFS go stale when nasd restarts", "export", f.export)
	}
	go handler.Warm() // index the export for handles clients kept across a restart
	reg := ops.NewRegistry()
	ready := ops.NewReadiness("nfs")

	env := Env{Logger: log, Registerer: reg, ExportDir: f.export, StateDir: f.state, Role: f.role, ReadOnly: cfg.ReadOnly, Ready: ready, Installed: handler.Learn}
	type namedWorker struct {
		name string
		w    Worker
	}
	var workers []namedWorker
	for _, e := range extensions {
		if e.worker == nil {
			continue
		}
		w, err := e.worker(env)
		if err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
		if w != nil {
			workers = append(workers, namedWorker{e.name, w})
			ready.Add(e.name)
		}
	}

	// Bind everything before serving anything, so a bad address fails fast
	// and the portmapper knows the NFS port before its first answer.
	var lis listening
	nfsL, err := listenNFS("tcp", f.listen)
	if err != nil {
		return err
	}
	lis.nfs = nfsL.Addr()
	if f.advertisePort == 0 {
		f.advertisePort = nfsL.Addr().(*net.TCPAddr).Port
	}
	front := rpc.NewServer(rpc.Config{
		Export:        rpc.Export{Path: f.exportPath, Networks: cfg.Networks, ReadOnly: cfg.ReadOnly, Access: cfg.Mapping()},
		Handler:       handler,
		Handles:       handler,
		Commit:        handler.Commit,
		Data:          handler,
		NFSPort:       f.advertisePort,
		PortmapPort:   f.advertisePmap,
		AdvertiseHost: f.advertiseHost,
		MaxRecord:     f.maxRecord,
		Backends:      f.backends,
		MaxConns:      f.maxConns,
		IdleTimeout:   f.idleTimeout,
		RecordTimeout: f.recordTimeout,
		// Clients that reach this nasd before it is Ready (not through
		// the Service) get JUKEBOX, not STALE, while the workers fill it.
		Held:    len(workers) > 0,
		Logger:  log.With("component", "rpc"),
		Metrics: rpc.NewMetrics(reg),
	})

	var pmapL, httpL net.Listener
	closeAll := func() {
		for _, l := range []net.Listener{nfsL, pmapL, httpL} {
			if l != nil {
				l.Close()
			}
		}
	}
	if f.portmapListen != "" {
		if pmapL, err = net.Listen("tcp", f.portmapListen); err != nil {
			closeAll()
			return err
		}
		lis.portmap = pmapL.Addr()
	}
	if f.httpListen != "" {
		if httpL, err = net.Listen("tcp", f.httpListen); err != nil {
			closeAll()
			return err
		}
		lis.http = httpL.Addr()
	}

	var pmapUDP net.PacketConn
	if pmapL != nil && f.portmapUDP {
		if pmapUDP, err = net.ListenPacket("udp", f.portmapListen); err != nil {
			closeAll()
			return fmt.Errorf("portmapper over UDP (--portmap-udp=false to skip): %w", err)
		}
	}

	var opsSrv *ops.Server
	if httpL != nil {
		opsSrv = ops.Serve(httpL, ops.Handler(ready, reg), log)
	}
	// A listener that stops for good (not a transient accept error, which
	// the front door retries) fails /healthz so that the pod is restarted.
	listenerDone := func(name string, err error) {
		if err != nil && !errors.Is(err, rpc.ErrServerClosed) {
			log.Error("listener stopped", "listener", name, "err", err)
			ready.Fail(name, err)
		}
	}
	go func() { listenerDone("nfs", front.Serve(nfsL)) }()
	if pmapL != nil {
		go func() { listenerDone("portmap", front.ServePortmap(pmapL)) }()
	}
	if pmapUDP != nil {
		go func() { listenerDone("portmap-udp", front.ServePortmapUDP(pmapUDP)) }()
	}
	ready.Set("nfs", true)
	log.Info("serving", "export", f.export, "export_path", f.exportPath, "options", cfg.String(),
		"allow", f.allow, "role", f.role, "nfs", addrString(lis.nfs), "portmap", addrString(lis.portmap),
		"http", addrString(lis.http), "workers", len(workers))
	if started != nil {
		started(lis)
	}

	// Workers run until shutdown; one failing stops the server.
	workCtx, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	failed := make(chan error, len(workers))
	var wg sync.WaitGroup
	var notReady atomic.Int32
	notReady.Store(int32(len(workers)))
	for _, nw := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			err := nw.w.Run(workCtx, func() {
				once.Do(func() {
					// The worker may have filled the export (the initial
					// sync into a new pod's empty export): index it before
					// clients are let in, so that their handles resolve.
					handler.Reindex()
					log.Info("worker ready", "worker", nw.name, "indexed", handler.IndexSize())
					// Calls are admitted before /readyz can say 200: whoever
					// saw Ready is never told JUKEBOX.
					if notReady.Add(-1) == 0 {
						front.Release()
						log.Info("NFS calls admitted: every worker is ready")
					}
					ready.Set(nw.name, true)
				})
			})
			if err != nil && workCtx.Err() == nil {
				failed <- fmt.Errorf("worker %s: %w", nw.name, err)
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", f.grace)
	case runErr = <-failed:
		log.Error("worker failed, shutting down", "err", runErr)
	}
	ready.Add("shutdown") // /readyz fails from now on
	deadline, cancel := context.WithTimeout(context.Background(), f.grace)
	defer cancel()

	// 1. stop accepting NFS, finish calls in flight.
	if err := front.Shutdown(deadline); err != nil {
		log.Warn("NFS calls still running at the deadline were cut", "err", err)
	}
	// 2. let the workers flush.
	cancelWork()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-deadline.Done():
		log.Warn("workers did not stop within the shutdown grace period")
	}
	// 3. operations endpoint last, so probes see the shutdown.
	if opsSrv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		_ = opsSrv.Shutdown(sctx)
		scancel()
	}
	log.Info("stopped")
	return runErr
}

// handleKey is the file-handle secret: the content of --handle-key-file
// (a Secret that outlives the pod), else the one kept in the state
// directory.
func (f *serveFlags) handleKey() ([]byte, error) {
	if f.handleKeyFile == "" {
		key, err := nfsfs.LoadOrCreateKey(f.state)
		if err != nil {
			return nil, fmt.Errorf("handle secret: %w", err)
		}
		return key, nil
	}
	key, err := os.ReadFile(f.handleKeyFile)
	if err != nil {
		return nil, fmt.Errorf("--handle-key-file (NASD_HANDLE_KEY_FILE): %w", err)
	}
	if len(key) < nfsfs.MinKeySize {
		return nil, fmt.Errorf("--handle-key-file (NASD_HANDLE_KEY_FILE) %s: %d bytes, want at least %d", f.handleKeyFile, len(key), nfsfs.MinKeySize)
	}
	return key, nil
}

// exportConfig turns flags into export options.
func (f *serveFlags) exportConfig(fs *flag.FlagSet) (nfsfs.Options, error) {
	if f.export == "" {
		return nfsfs.Options{}, errors.New("--export (NASD_EXPORT) is required")
	}
	opts, err := nfsfs.ParseOptions(f.options)
	if err != nil {
		return opts, err
	}
	if isSet(fs, "fsid") {
		opts.FSID = f.fsid
	}
	switch f.role {
	case "input", "output":
	case "backup":
		opts.ReadOnly = true // the backup NAS is exported read-only, always
	default:
		return opts, fmt.Errorf("--role %q: want input, backup or output", f.role)
	}
	if opts.Networks, err = nfsfs.ParseNetworks(f.allow); err != nil {
		return opts, err
	}
	if f.filesOwner != "" {
		var uid, gid uint32
		if _, err := fmt.Sscanf(f.filesOwner, "%d:%d", &uid, &gid); err != nil || fmt.Sprintf("%d:%d", uid, gid) != f.filesOwner {
			return opts, fmt.Errorf("--files-owner %q: want UID:GID, e.g. 1000:1000", f.filesOwner)
		}
		opts.Owner = &[2]uint32{uid, gid}
	}
	return opts, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
