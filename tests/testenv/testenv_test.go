package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A developer's `pulumi config set` edits the working copy's stack file; the
// tests still get the committed one.
func TestCommittedCopyIgnoresWorkingCopyEdits(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	root := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	for _, f := range ConfigFiles {
		write(f, "committed "+f+"\n")
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "config")
	write("Pulumi.ocp.yaml", "config:\n  nas-topology:external: {adopt: true}\n")

	dir, err := CommittedCopy(root)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, f := range ConfigFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "committed "+f+"\n" {
			t.Errorf("%s: got %q, want the committed content", f, b)
		}
	}
}
