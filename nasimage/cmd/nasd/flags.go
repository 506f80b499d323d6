package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/rpc"
)

// Flags of `nasd serve`. Every flag can also be set from the environment
// as NASD_<NAME> (upper case, dashes as underscores); the command line
// wins. Other files of this package add flags through extensions (see
// registerExtension), without editing this file.

// serveFlags are the flags of the NFS side of `nasd serve`.
type serveFlags struct {
	export        string
	exportPath    string
	state         string
	listen        string
	portmapListen string
	portmapUDP    bool
	advertisePort int
	advertisePmap int
	advertiseHost string
	httpListen    string
	options       string
	allow         string
	filesOwner    string
	fsid          uint64
	role          string
	backends      int
	maxRecord     int
	maxConns      int
	idleTimeout   time.Duration
	recordTimeout time.Duration
	handleKeyFile string
	grace         time.Duration
	logFormat     string
	logLevel      string
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.export, "export", "", "directory to export over NFS (required)")
	fs.StringVar(&f.exportPath, "export-path", "/", "path clients mount (MOUNT dirpath): use the physical NAS's export path so PVs are identical in every stack")
	fs.StringVar(&f.state, "state", "/var/lib/nasd", "state directory: handle secret (keeps client file handles valid across restarts) and sync state")
	fs.StringVar(&f.listen, "listen", ":20490", "NFSv3 + MOUNT (+ portmapper) TCP listen address; a high port, the Service maps 2049 to it")
	fs.StringVar(&f.portmapListen, "portmap-listen", ":20111", "portmapper TCP listen address (the Service maps 111 to it); empty disables")
	fs.BoolVar(&f.portmapUDP, "portmap-udp", true, "also answer the portmapper over UDP on the --portmap-listen address (some clients ask over UDP first)")
	fs.IntVar(&f.advertisePort, "advertise-port", 2049, "NFS/MOUNT port the portmapper answers (the Service port); 0 = the --listen port")
	fs.IntVar(&f.advertisePmap, "advertise-portmap-port", 111, "portmapper port the portmapper advertises for itself")
	fs.StringVar(&f.advertiseHost, "advertise-host", "", "host in RPCBIND universal addresses; empty = the address the client connected to")
	fs.StringVar(&f.httpListen, "http-listen", ":8080", "HTTP listen address for /healthz, /readyz and /metrics; empty disables")
	fs.StringVar(&f.options, "options", "rw,sync,root_squash", "export options in /etc/exports terms: ro|rw, sync|async, root_squash|no_root_squash|all_squash, insecure_squash (no credential checks), anonuid=N, anongid=N, fsid=N")
	fs.StringVar(&f.filesOwner, "files-owner", "", "UID:GID clients see as the owner of files that have no recorded one (the files from Windows, the export root); empty = nasd's own")
	fs.StringVar(&f.allow, "allow", "*", "client networks allowed to mount and use the export, comma-separated CIDRs or addresses; * = everyone")
	fs.Uint64Var(&f.fsid, "fsid", 0, "unique export id, part of every file handle (overrides fsid= in --options when set)")
	fs.StringVar(&f.role, "role", "output", "server role: input (Windows -> NFS), backup (Windows -> NFS, forced read-only), output (both ways)")
	fs.IntVar(&f.backends, "nfs-concurrency", 8, "NFS calls served at once (go-nfs connections)")
	fs.IntVar(&f.maxRecord, "max-record", rpc.DefaultMaxRecord, "largest RPC record accepted, in bytes; bigger ones close the connection")
	fs.IntVar(&f.maxConns, "max-connections", rpc.DefaultMaxConns, "client connections open at once (NFS and portmapper ports); more are closed at once; -1 = no limit")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", rpc.DefaultIdleTimeout, "close a client connection that sends nothing for this long (knfsd: 6m); -1ns = never")
	fs.DurationVar(&f.recordTimeout, "record-timeout", rpc.DefaultRecordTimeout, "close a connection whose RPC record, once started, does not arrive whole within this time, or that does not take a reply within it")
	fs.StringVar(&f.handleKeyFile, "handle-key-file", "", "file holding the file-handle secret (at least 32 bytes, e.g. a mounted Kubernetes Secret) so handles survive pod replacement; empty = <state>/handle.key, generated once")
	fs.DurationVar(&f.grace, "shutdown-grace", 25*time.Second, "on SIGTERM, time to finish NFS calls and let workers flush before exiting")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

var errUsage = errors.New("usage error")

// parseFlags parses args, then fills unset flags from NASD_* variables.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: nasd serve [flags]\n\nServes --export over NFSv3 with MOUNT and a portmapper, plus /healthz, /readyz and /metrics.\n"+
			"Every flag can be set from the environment as NASD_<FLAG> (e.g. NASD_EXPORT, NASD_ALLOW); flags win.\n\n"+
			"sync vs async: with sync (default) UNSTABLE writes are answered UNSTABLE and made durable by COMMIT (fsync),\n"+
			"FILE_SYNC/DATA_SYNC writes are synced before the reply, and the write verifier changes on every start, so\n"+
			"nothing a client was told is stable is lost in a node crash; async never fsyncs and answers every WRITE\n"+
			"and COMMIT as stable: a node crash can silently lose acknowledged writes.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "NASD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}
