//go:build !linux

package scan

import (
	"os"
	"path/filepath"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

type statter struct{}

func (s *statter) open(*os.File) {}

func (s *statter) entry(d *os.File, name string) (reconcile.Entry, bool, error) {
	fi, err := os.Lstat(filepath.Join(d.Name(), name))
	if err != nil {
		return reconcile.Entry{}, false, err
	}
	e, ok := entryOf(fi)
	return e, ok, nil
}
