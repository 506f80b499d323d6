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
