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

// stateVersion 3 added the roots' identities: a version 2 ancestor names no
// export, so it is not trusted to describe one.
const stateVersion = 3

// stateHeader starts the on-disk ancestor; Count records follow in chunks,
// so neither saving nor loading holds a second copy of a large ancestor.
// The roots are kept so that pointing the engine at other directories starts
// from scratch instead of reading every file as deleted.
type stateHeader struct {
	Version int
	Windows string
	NFS     string
	Count   int
	// WindowsID and NFSID are the identities in the roots' markers when the
	// ancestor was saved; NFSDev and NFSIno identify the export directory.
	WindowsID, NFSID string
	NFSDev, NFSIno   uint64
}

type stateRecord struct {
	Path string
	Pair reconcile.Pair
}

const stateChunk = 4096

// loadAncestor reads the ancestor saved for these roots' paths; a missing or
// foreign file gives an empty one. The header says which roots' identities
// it belongs to (the caller checks them).
func loadAncestor(dir, windows, nfs string) (reconcile.Ancestor, stateHeader, error) {
	var h stateHeader
	f, err := os.Open(filepath.Join(dir, ancestorFile))
	if errors.Is(err, fs.ErrNotExist) {
		return reconcile.Ancestor{}, h, nil
	}
	if err != nil {
		return nil, h, err
	}
	defer f.Close()
	dec := gob.NewDecoder(bufio.NewReader(f))
	if err := dec.Decode(&h); err != nil {
		return nil, h, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if h.Version != stateVersion || h.Windows != windows || h.NFS != nfs {
		return reconcile.Ancestor{}, stateHeader{}, nil
	}
	anc := make(reconcile.Ancestor, h.Count)
	for len(anc) < h.Count {
		// A fresh slice each time: gob leaves zero-valued fields of reused
		// elements as they were.
		var chunk []stateRecord
		if err := dec.Decode(&chunk); err != nil {
			return nil, h, fmt.Errorf("read %s: %w", f.Name(), err)
		}
		if len(chunk) == 0 {
			return nil, h, fmt.Errorf("read %s: %d of %d records", f.Name(), len(anc), h.Count)
		}
		for _, r := range chunk {
			anc[r.Path] = r.Pair
		}
	}
	return anc, h, nil
}

// saveAncestor writes the ancestor atomically (temp file, fsync, rename), so
// a crash leaves either the old or the new state, never a torn one.
// h names the roots (Version and Count are filled in here).
func saveAncestor(dir string, h stateHeader, anc reconcile.Ancestor) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ancestorFile+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	bw := bufio.NewWriterSize(f, 1<<16)
	enc := gob.NewEncoder(bw)
	h.Version, h.Count = stateVersion, len(anc)
	err = enc.Encode(h)
	chunk := make([]stateRecord, 0, stateChunk)
	flush := func() {
		if err == nil && len(chunk) > 0 {
			err = enc.Encode(chunk)
		}
		chunk = chunk[:0]
	}
	for p, pair := range anc {
		chunk = append(chunk, stateRecord{Path: p, Pair: pair})
		if len(chunk) == stateChunk {
			flush()
		}
	}
	flush()
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
