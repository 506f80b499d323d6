//go:build kernellab

package scenarios

import (
	"bufio"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/components/spec"
	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

// TestEveryPVMountedAsRendered: every server's PV is mounted by the kernel
// client through its clusterIP and port 111, with the PV's options, all
// servers at once.
func TestEveryPVMountedAsRendered(t *testing.T) {
	mounts := procMounts(t)
	for _, s := range lab.Servers {
		t.Run(s.Name, func(t *testing.T) {
			v := lab.Volume(s)
			m, ok := mounts[node.MountPoint(s)]
			require.True(t, ok, "%s not mounted", node.MountPoint(s))
			assert.Equal(t, lab.Pods[s.Name].ClusterIP+":"+v.ExportPath, m.source, "kubelet mounts clusterIP:exportPath")
			assert.Equal(t, "nfs", m.fstype)
			opts := map[string]string{}
			for _, o := range strings.Split(m.options, ",") {
				k, val, _ := strings.Cut(o, "=")
				opts[k] = val
			}
			for _, o := range v.MountOptions {
				k, val, _ := strings.Cut(o, "=")
				switch k {
				case "nfsvers":
					assert.Equal(t, val, opts["vers"], "vers")
				default:
					got, has := opts[k]
					assert.True(t, has, "option %s missing in %s", k, m.options)
					assert.Equal(t, val, got, "option %s", k)
				}
			}
			_, ro := opts["ro"]
			assert.Equal(t, v.ReadOnly, ro, "read-only mount")
			entries, err := os.ReadDir(node.MountPoint(s))
			require.NoError(t, err)
			_ = entries
		})
	}
}

type mountEntry struct{ source, fstype, options string }

func procMounts(t *testing.T) map[string]mountEntry {
	f, err := os.Open("/proc/mounts")
	require.NoError(t, err)
	defer f.Close()
	out := map[string]mountEntry{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 4 {
			out[fields[1]] = mountEntry{fields[0], fields[2], fields[3]}
		}
	}
	return out
}

// TestAppWorkloads runs what apps do on a mount against every writable PV,
// and against knfsd's twin of it.
func TestAppWorkloads(t *testing.T) {
	for _, tg := range writable() {
		t.Run(tg.name+"/"+tg.server.Name, func(t *testing.T) {
			runWorkloads(t, tg)
		})
	}
}

func runWorkloads(t *testing.T, tg target) {
	big := tg.server.Role == spec.RoleOutput
	t.Run("dd-fsync-readback", func(t *testing.T) {
		dir := workdir(t, tg)
		mb := "32"
		if big {
			mb = "256"
		}
		sh(t, "/tmp", "dd if=/dev/urandom of=/tmp/dd.src bs=1M count="+mb+" status=none")
		sh(t, dir, "dd if=/tmp/dd.src of=big bs=1M conv=fsync status=none")
		dropCaches(t)
		sh(t, dir, "cmp /tmp/dd.src big")
		os.Remove("/tmp/dd.src")
	})
	t.Run("cp-a-tar-x-diff", func(t *testing.T) {
		dir := workdir(t, tg)
		treeOnce.Do(func() {
			// A real tree with read-only files and directories in it.
			sh(t, "/tmp", "mkdir -p /tmp/tree && cp -a /usr/local/go/src/encoding /tmp/tree/ && "+
				"chmod 0444 /tmp/tree/encoding/json/*.go && chmod 0555 /tmp/tree/encoding/xml && tar cf /tmp/tree.tar -C /tmp/tree encoding")
		})
		sh(t, dir, "cp -a /tmp/tree/encoding cpa && diff -r /tmp/tree/encoding cpa")
		sh(t, dir, "mkdir tarx && tar xf /tmp/tree.tar -C tarx && diff -r /tmp/tree/encoding tarx/encoding")
		sh(t, dir, "chmod -R u+w cpa tarx && rm -rf cpa tarx && test ! -e cpa")
	})
	t.Run("git", func(t *testing.T) {
		dir := workdir(t, tg)
		sh(t, dir, "mkdir repo && cd repo && git init -q && printf 'a\\n' > a.txt && mkdir sub && printf 'b\\n' > sub/b.txt && "+
			"git add . && git commit -q -m first && printf 'c\\n' >> a.txt && git commit -q -am second && "+
			"test \"$(git log --oneline | wc -l)\" = 2 && git gc -q && git fsck --strict && git status --porcelain | (! grep .)")
	})
	t.Run("rename-open-fds", func(t *testing.T) { noAppErrors(t, app(t, "rename-open-fds", appArgs{Dir: workdir(t, tg)})) })
	t.Run("write-rename-close", func(t *testing.T) { noAppErrors(t, app(t, "write-rename-close", appArgs{Dir: workdir(t, tg)})) })
	t.Run("log-rotation", func(t *testing.T) { noAppErrors(t, app(t, "log-rotation", appArgs{Dir: workdir(t, tg)})) })
	t.Run("editor-save", func(t *testing.T) { noAppErrors(t, app(t, "editor-save", appArgs{Dir: workdir(t, tg)})) })
	t.Run("mmap-read", func(t *testing.T) { noAppErrors(t, app(t, "mmap-read", appArgs{Dir: workdir(t, tg)})) })
	t.Run("two-appenders", func(t *testing.T) { noAppErrors(t, app(t, "two-appenders", appArgs{Dir: workdir(t, tg)})) })
	t.Run("chmod-touch-truncate", func(t *testing.T) {
		dir := workdir(t, tg)
		sh(t, dir, "printf 0123456789 > f && chmod 0640 f && test \"$(stat -c %a f)\" = 640 && "+
			"touch -m -d @1000000000 f && test \"$(stat -c %Y f)\" = 1000000000 && "+
			"truncate -s 4 f && test \"$(cat f)\" = 0123 && truncate -s 100000 f && test \"$(stat -c %s f)\" = 100000 && "+
			"truncate -s 0 f && test ! -s f")
	})
	t.Run("symlinks", func(t *testing.T) {
		dir := workdir(t, tg)
		sh(t, dir, "mkdir d && printf x > d/t && ln -s d/t rel && ln -s nowhere dangling && ln -s d dl && "+
			"test \"$(readlink rel)\" = d/t && test \"$(cat rel)\" = x && test \"$(cat dl/t)\" = x && "+
			"test -L dangling && ! test -e dangling && rm rel dangling dl")
	})
	t.Run("hard-links", func(t *testing.T) {
		dir := workdir(t, tg)
		sh(t, dir, "printf one > a && ln a b && test \"$(stat -c %h a)\" = 2 && printf two >> b && test \"$(cat a)\" = onetwo && "+
			"rm a && test \"$(cat b)\" = onetwo && test \"$(stat -c %h b)\" = 1 && "+
			"mkdir t && printf z > t/z && cp -al t t2 && test \"$(stat -c %h t/z)\" = 2")
	})
	t.Run("sqlite-journal", func(t *testing.T) {
		dir := workdir(t, tg)
		sh(t, dir, "sqlite3 db.sqlite 'pragma journal_mode=delete; create table t(i integer primary key, v text);' >/dev/null && "+
			"for b in 1 2 3 4 5; do sqlite3 db.sqlite \"begin; $(seq 1 200 | sed 's/.*/insert into t(v) values (hex(randomblob(64)));/') commit;\"; done && "+
			"test \"$(sqlite3 db.sqlite 'select count(*) from t')\" = 1000 && test \"$(sqlite3 db.sqlite 'pragma integrity_check')\" = ok")
	})
	t.Run("rm-rf", func(t *testing.T) {
		dir := workdir(t, tg)
		sh(t, dir, "mkdir -p a/b/c && for i in $(seq 1 50); do printf $i > a/b/c/f$i; printf $i > a/g$i; done && rm -rf a && test ! -e a && test -z \"$(ls -A)\"")
	})
}

var treeOnce sync.Once

func noAppErrors(t *testing.T, r appResult) {
	t.Helper()
	assert.Empty(t, r.Errors)
}
