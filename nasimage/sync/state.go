package sync

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

// ancestorFile is the engine's file in the state directory.
const ancestorFile = "sync-ancestor.gob"

const stateVersion = 1

// savedState is the on-disk form of the ancestor. The roots are kept so that
// pointing the engine at other directories starts from scratch instead of
// reading every file as deleted.
type savedState struct {
	Version  int
	Windows  string
	NFS      string
	Ancestor reconcile.Ancestor
}

// loadAncestor reads the ancestor saved for these roots; a missing or
// foreign file gives an empty one.
func loadAncestor(dir, windows, nfs string) (reconcile.Ancestor, error) {
	f, err := os.Open(filepath.Join(dir, ancestorFile))
	if errors.Is(err, fs.ErrNotExist) {
		return reconcile.Ancestor{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st savedState
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&st); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if st.Version != stateVersion || st.Windows != windows || st.NFS != nfs || st.Ancestor == nil {
		return reconcile.Ancestor{}, nil
	}
	return st.Ancestor, nil
}

// saveAncestor writes the ancestor atomically (temp file, fsync, rename), so
// a crash leaves either the old or the new state, never a torn one.
func saveAncestor(dir, windows, nfs string, anc reconcile.Ancestor) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ancestorFile+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	bw := bufio.NewWriterSize(f, 1<<16)
	err = gob.NewEncoder(bw).Encode(savedState{Version: stateVersion, Windows: windows, NFS: nfs, Ancestor: anc})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, ancestorFile))
}
