//go:build !(linux && (amd64 || arm64))

package scan

import (
	"io/fs"
	"os"
	"path/filepath"
)

// sysScanner: the portable directory reader keeps no state.
type sysScanner struct{}

func (s *scanner) dir(rel string) {
	d, err := os.Open(filepath.Join(s.root, filepath.FromSlash(rel)))
	var entries []fs.DirEntry
	if err == nil {
		entries, err = d.ReadDir(-1) // unsorted: order does not matter here
		defer d.Close()
	}
	if err != nil {
		s.unlisted(rel, err)
		return
	}
	for _, de := range entries {
		name := de.Name()
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		if IsTemp(name) {
			s.res.Temps = append(s.res.Temps, p)
			continue
		}
		if s.ex.Match(p, name) {
			continue
		}
		fi, err := os.Lstat(filepath.Join(d.Name(), name))
		if err != nil {
			continue // vanished
		}
		e, ok := entryOf(fi)
		if !ok {
			continue // a socket, device or fifo: not synced
		}
		if sub := s.found(p, e); sub != "" {
			s.dir(sub)
		}
		if s.mismatch {
			return
		}
	}
}
