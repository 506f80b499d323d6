// Package apply carries out reconcile actions on the two directory trees,
// atomically and only when the disk still looks as the plan saw it: a file is
// copied to a temp name in the destination directory, synced, given its
// mtime and mode, and renamed into place only if the source did not change
// meanwhile.
package apply

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
	"github.com/nas-topology/nas-topology/nasimage/sync/scan"
)

// ErrStale means the disk no longer matches the plan (the source changed
// during the copy, or the destination changed since the scan). It is not a
// failure: the next scan sees the change and plans again.
var ErrStale = errors.New("changed since the scan")

// Applier acts on the two roots.
type Applier struct {
	Windows, NFS string
	// ChunkDelay slows copies down (a pause per chunk): fault tests use it to
	// kill the engine in the middle of a copy.
	ChunkDelay time.Duration
	// Installing, if set, is told right before a copy is renamed into place
	// at rel on side to (the engine's watcher then knows the event is ours).
	Installing func(to reconcile.Side, rel string)
	// Keep, if set, returns the identity a file or directory copied to an
	// export where it is absent must have instead of the derived one (the
	// engine's identity journal, for a new pod's export), given the
	// Windows entry copied.
	Keep func(rel string, src reconcile.Entry) (fileid.ID, bool)
}

// keep gives the new NFS copy at host path p of a the identity Keep
// returns, if any.
func (ap *Applier) keep(a reconcile.Action, p string) error {
	if ap.Keep == nil || a.To != reconcile.NFS || a.Dest.Kind != reconcile.Absent {
		return nil
	}
	if id, ok := ap.Keep(a.Path, a.Source); ok {
		return fileid.Set(p, id)
	}
	return nil
}

// Outcome is what an applied action left behind.
type Outcome struct {
	// Pair is both sides' entries after a Copy or Mkdir, for the ancestor.
	Pair  reconcile.Pair
	Bytes int64
}

// Root returns the directory of side s.
func (ap *Applier) Root(s reconcile.Side) string {
	if s == reconcile.Windows {
		return ap.Windows
	}
	return ap.NFS
}

// Apply carries out one filesystem action (Copy, Mkdir, Remove, Rename).
func (ap *Applier) Apply(ctx context.Context, a reconcile.Action) (Outcome, error) {
	var out Outcome
	var err error
	switch a.Op {
	case reconcile.Copy:
		out, err = ap.copy(ctx, a)
	case reconcile.Mkdir:
		out, err = ap.mkdir(a)
	case reconcile.Remove:
		err = ap.remove(a)
	case reconcile.Rename:
		err = ap.rename(a)
	default:
		err = fmt.Errorf("not a filesystem action: %v", a.Op)
	}
	if err != nil {
		return out, wrap(a, err)
	}
	return out, nil
}

func wrap(a reconcile.Action, err error) error {
	return fmt.Errorf("%s %s on %s: %w", a.Op, a.Path, a.To, err)
}

func (ap *Applier) expect(root, rel string, want reconcile.Entry, what string) error {
	got, err := scan.Stat(root, rel)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s %w", what, ErrStale)
	}
	return nil
}

// pair is the ancestor entry for a Mkdir just done: the source as planned
// and the destination as it now is.
func (ap *Applier) pair(a reconcile.Action) (reconcile.Pair, error) {
	dst, err := scan.Stat(ap.Root(a.To), a.Path)
	if err != nil {
		return reconcile.Pair{}, err
	}
	return pairOf(a, dst), nil
}

// pairOf is the ancestor entry for a Copy or Mkdir: the source as planned and
// verified (not as it may be by now: a change after the copy is the next
// round's to see) and dst, the destination as installed. A copy's dst is read
// from its temp file before the rename (the same inode): read after it, a
// client's change or removal in between would be recorded as what we wrote.
func pairOf(a reconcile.Action, dst reconcile.Entry) reconcile.Pair {
	if a.To == reconcile.NFS {
		return reconcile.Pair{Windows: a.Source, NFS: dst}
	}
	return reconcile.Pair{Windows: dst, NFS: a.Source}
}

func (ap *Applier) copy(ctx context.Context, a reconcile.Action) (Outcome, error) {
	srcRoot, dstRoot := ap.Root(a.To.Other()), ap.Root(a.To)
	if err := ap.expect(srcRoot, a.Path, a.Source, "source"); err != nil {
		return Outcome{}, err
	}
	if err := ap.expect(dstRoot, a.Path, a.Dest, "destination"); err != nil {
		return Outcome{}, err
	}
	dst := filepath.Join(dstRoot, filepath.FromSlash(a.Path))
	tmp := filepath.Join(filepath.Dir(dst), scan.TempPrefix+randomHex()+scan.TempSuffix)
	var n int64
	var err error
	if a.Source.Kind == reconcile.Symlink {
		err = os.Symlink(a.Source.Target, tmp)
	} else {
		n, err = ap.writeTemp(ctx, filepath.Join(srcRoot, filepath.FromSlash(a.Path)), tmp, a.Source, true)
	}
	if err != nil {
		os.Remove(tmp)
		return Outcome{}, err
	}
	got, err := ap.install(a, tmp)
	if err != nil {
		os.Remove(tmp)
		return Outcome{}, err
	}
	syncDir(filepath.Dir(dst))
	return Outcome{Pair: pairOf(a, got), Bytes: n}, nil
}

// writeTemp copies src to the new file tmp with want's mode and mtime,
// fsynced if durable (a Batch makes many durable at once).
func (ap *Applier) writeTemp(ctx context.Context, src, tmp string, want reconcile.Entry, durable bool) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := ap.copyData(ctx, out, in)
	if err == nil && durable {
		err = out.Sync()
	}
	if err == nil {
		// Best effort: 9p and SMB shares may refuse or ignore modes. The
		// ancestor records what the destination really holds.
		_ = out.Chmod(want.Mode)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	mt := time.Unix(0, want.ModTime)
	return n, os.Chtimes(tmp, mt, mt)
}

const chunk = 1 << 20

func (ap *Applier) copyData(ctx context.Context, out io.Writer, in io.Reader) (int64, error) {
	if ap.ChunkDelay == 0 {
		return io.Copy(out, in)
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := io.CopyN(out, in, chunk)
		total += n
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		time.Sleep(ap.ChunkDelay)
	}
}

func (ap *Applier) mkdir(a reconcile.Action) (Outcome, error) {
	dst := filepath.Join(ap.Root(a.To), filepath.FromSlash(a.Path))
	if err := os.Mkdir(dst, 0o755); err != nil {
		if fi, serr := os.Lstat(dst); serr != nil || !fi.IsDir() {
			return Outcome{}, err
		}
	} else if err := ap.keep(a, dst); err != nil {
		return Outcome{}, err
	}
	p, err := ap.pair(a)
	return Outcome{Pair: p}, err
}

func (ap *Applier) remove(a reconcile.Action) error {
	root := ap.Root(a.To)
	if err := ap.expect(root, a.Path, a.Dest, "destination"); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(root, filepath.FromSlash(a.Path)))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func (ap *Applier) rename(a reconcile.Action) error {
	root := ap.Root(a.To)
	if err := ap.expect(root, a.Path, a.Dest, "conflicting version"); err != nil {
		return err
	}
	to := filepath.Join(root, filepath.FromSlash(a.NewPath))
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("conflict name %s already exists", a.NewPath)
	}
	return os.Rename(filepath.Join(root, filepath.FromSlash(a.Path)), to)
}

// RemoveTemps deletes temp files an interrupted copy left on one side.
func RemoveTemps(root string, temps []string) error {
	var errs []error
	for _, t := range temps {
		if err := os.Remove(filepath.Join(root, filepath.FromSlash(t))); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// syncDir makes a rename durable. Best effort: not every filesystem lets a
// directory be fsynced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// SameBytes reports whether the files at rel under the two roots hold the
// same bytes. The sync engine asks only when both sides changed a file to
// the same size (or there is no ancestor): metadata cannot tell two such
// versions apart.
func (ap *Applier) SameBytes(rel string) (bool, error) {
	a, err := os.Open(filepath.Join(ap.Windows, filepath.FromSlash(rel)))
	if err != nil {
		return false, err
	}
	defer a.Close()
	b, err := os.Open(filepath.Join(ap.NFS, filepath.FromSlash(rel)))
	if err != nil {
		return false, err
	}
	defer b.Close()
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, errA := io.ReadFull(a, bufA)
		nb, errB := io.ReadFull(b, bufB)
		if na != nb || !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		aEnd := errors.Is(errA, io.EOF) || errors.Is(errA, io.ErrUnexpectedEOF)
		bEnd := errors.Is(errB, io.EOF) || errors.Is(errB, io.ErrUnexpectedEOF)
		if errA != nil && !aEnd {
			return false, errA
		}
		if errB != nil && !bEnd {
			return false, errB
		}
		if aEnd || bEnd {
			return aEnd && bEnd, nil
		}
	}
}
