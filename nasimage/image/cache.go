package image

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// touch marks a cache entry as used, for pruneCache.
func touch(dir string) {
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
}

// pruneCache keeps the keep most recently used entries of cacheDir and
// removes the rest (each is a few MB; every source change adds one).
// Failures are ignored: a stale entry costs disk, not correctness.
func pruneCache(cacheDir string, keep int) {
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		return
	}
	type aged struct {
		path string
		mod  time.Time
	}
	var all []aged
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if strings.HasPrefix(e.Name(), ".build-") {
			// A build in progress, or one a killed process left behind.
			if time.Since(info.ModTime()) > 24*time.Hour {
				_ = os.RemoveAll(filepath.Join(cacheDir, e.Name()))
			}
			continue
		}
		all = append(all, aged{filepath.Join(cacheDir, e.Name()), info.ModTime()})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod.After(all[j].mod) })
	for i := keep; i < len(all); i++ {
		_ = os.RemoveAll(all[i].path)
	}
}
