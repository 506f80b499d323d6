package main

import (
	"flag"
	"path/filepath"
	"strings"
	"time"

	nassync "github.com/nas-topology/nas-topology/nasimage/sync"
	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

// The sync engine's flags and worker. Without --windows-dir nasd only serves
// NFS.

type syncFlags struct {
	windowsDir   string
	mirror       bool
	rescan       time.Duration
	quiet        time.Duration
	fullRescan   time.Duration
	flushTimeout time.Duration
	watchWindows bool
	maxPath      int
	winGran      time.Duration
	excludes     stringList
}

// stringList is a repeatable flag; each value may also hold comma-separated
// items (so NASD_EXCLUDE can carry several).
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func init() {
	var f syncFlags
	registerExtension(extension{
		name: "sync",
		flags: func(fs *flag.FlagSet) {
			f = syncFlags{} // serve may run more than once in a process (tests)
			fs.StringVar(&f.windowsDir, "windows-dir", "", "Windows directory (hostPath of the Windows share) to sync with the export; empty disables sync")
			fs.BoolVar(&f.mirror, "mirror", false, "input/backup: make the export an exact copy of Windows, removing files NFS clients created (rsync --delete)")
			fs.DurationVar(&f.rescan, "rescan-interval", nassync.DefaultRescanInterval, "how often both sides are rescanned (Windows shares fire no inotify events)")
			fs.DurationVar(&f.quiet, "quiet-period", nassync.DefaultQuietPeriod, "an NFS file must go this long without writes before it is copied to Windows")
			fs.DurationVar(&f.fullRescan, "full-rescan-interval", nassync.DefaultFullRescanInterval, "longest time the export's scan is trusted without inotify events")
			fs.DurationVar(&f.flushTimeout, "sync-flush-timeout", nassync.DefaultFlushTimeout, "on shutdown, time allowed for the final sync (keep below --shutdown-grace)")
			fs.BoolVar(&f.watchWindows, "watch-windows", false, "also use inotify on the Windows directory (only useful if the share delivers events)")
			fs.DurationVar(&f.winGran, "windows-mtime-granularity", 0, "timestamp granularity of the Windows share (e.g. 2s for FAT/exFAT); 0 measures it at start")
			fs.IntVar(&f.maxPath, "windows-max-path", 0, "longest relative path copied to Windows, in UTF-16 units (0: 32767; programs limited to MAX_PATH need 260 minus the share's own path)")
			fs.Var(&f.excludes, "exclude", "glob of names (or, with a /, relative paths) not to sync, besides the defaults (Thumbs.db, desktop.ini, ~$*, ...); repeatable or comma-separated")
		},
		worker: func(env Env) (Worker, error) {
			if f.windowsDir == "" {
				return nil, nil
			}
			role, err := nassync.ParseRole(env.Role)
			if err != nil {
				return nil, err
			}
			// A halted sync (a root in doubt or emptied) is a warning: named
			// on /readyz and /syncz, while NFS clients keep being served.
			health := func(problem string) {
				if env.Ready == nil {
					return
				}
				if problem != "" {
					problem = "halted: " + problem
				}
				env.Ready.Warn("sync", problem)
			}
			return nassync.New(nassync.Config{
				WindowsDir:         f.windowsDir,
				NFSDir:             env.ExportDir,
				StateDir:           filepath.Join(env.StateDir, "sync"),
				Role:               role,
				Mirror:             f.mirror,
				RescanInterval:     f.rescan,
				QuietPeriod:        f.quiet,
				FullRescanInterval: f.fullRescan,
				FlushTimeout:       f.flushTimeout,
				Excludes:           f.excludes,
				WatchWindows:       f.watchWindows,
				MaxWindowsPath:     f.maxPath,
				Granularity:        map[reconcile.Side]time.Duration{reconcile.Windows: f.winGran},
				Health:             health,
				Installed:          env.Installed,
				Logger:             env.Logger,
				Registerer:         env.Registerer,
			})
		},
	})
}
