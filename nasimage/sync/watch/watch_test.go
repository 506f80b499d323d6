package watch

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func waitChanged(t *testing.T, w *Watcher) {
	t.Helper()
	select {
	case <-w.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("no change signalled")
	}
}

func TestWatchesNewDirectoriesAndReportsBusyPaths(t *testing.T) {
	root := t.TempDir()
	w, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	os.MkdirAll(filepath.Join(root, "a"), 0o755)
	waitChanged(t, w)
	// Give the watcher a moment to add the new directory, then write in it.
	time.Sleep(50 * time.Millisecond)
	os.WriteFile(filepath.Join(root, "a", "f"), []byte("x"), 0o644)
	waitChanged(t, w)
	deadline := time.Now().Add(5 * time.Second)
	for {
		busy, wait := w.Busy(time.Now(), time.Minute)
		if _, ok := busy["a/f"]; ok && wait > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a/f not busy: %v", busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if busy, _ := w.Busy(time.Now().Add(2*time.Minute), time.Minute); len(busy) != 0 {
		t.Fatalf("still busy after the quiet period: %v", busy)
	}
}

func TestNilWatcherNeverFires(t *testing.T) {
	var w *Watcher
	select {
	case <-w.Changed():
		t.Fatal("nil watcher fired")
	case <-w.Errors():
		t.Fatal("nil watcher errored")
	default:
	}
}

// TestOverflowRewatchesTheTree: events lost in an overflow may include the
// creation of a directory, which then has no watch. Recovery adds the tree
// again, so changes inside such a directory are seen afterwards.
func TestOverflowRewatchesTheTree(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "a", "b")
	os.MkdirAll(sub, 0o755)
	w, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// As if the event that created a/b was lost: no watch on it.
	if err := w.fw.Remove(sub); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sub, "unseen"), nil, 0o644)
	select {
	case <-w.Changed():
		t.Fatal("a directory without a watch fired")
	case <-time.After(200 * time.Millisecond):
	}
	w.overflowed()
	waitChanged(t, w) // the overflow asks for a scan
	os.WriteFile(filepath.Join(sub, "seen"), nil, 0o644)
	waitChanged(t, w)
	if busy, _ := w.Busy(time.Now(), time.Minute); busy["a/b/seen"] == "" {
		t.Fatalf("a/b/seen not reported: %v", busy)
	}
}
