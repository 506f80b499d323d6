//go:build kernellab

package scenarios

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nas-topology/nas-topology/tests/kernellab/node"
)

// The credential model through the kernel client: the app's files guarded
// by their modes against another uid (su to it), a group member, and root
// (squashed), errno for errno as knfsd answers the same calls.

// credentialProbes are, per identity, the shell steps tried on the app's
// files: each prints its outcome (the tool's message, or "ok"), with
// relative names so that the output is the same on every mount.
var credentialProbes = []struct {
	who           string
	uid, gid      int
	groups        string
	script        string
	mustBeRefused []string // steps whose outcome must be a refusal
}{
	{"another uid", node.AppUID + 1, node.AppGID + 1, "", `
p read-0600 cat private
p write-0600 sh -c 'echo x >> private'
p chmod-0600 chmod 0666 private
p touch-time-0600 touch -d @1000000000 private
p list-0700 ls closed
p read-in-0700 cat closed/f
p create-in-0755 touch newfile
p remove-in-0755 rm -f shared
p read-0644 cat shared
p write-0644 sh -c 'echo x >> shared'`,
		[]string{"read-0600", "write-0600", "chmod-0600", "touch-time-0600", "list-0700", "read-in-0700", "create-in-0755", "remove-in-0755", "write-0644"}},
	{"a member of the app's group", node.AppUID + 2, node.AppGID + 2, "", `
p read-0640 cat grouped
p write-0640 sh -c 'echo x >> grouped'
p write-0660 sh -c 'echo x >> groupw'`,
		[]string{"write-0640"}},
	{"root, squashed", 0, 0, "", `
p read-0600 cat private
p write-0600 sh -c 'echo x >> private'
p chown-0644 chown 0 shared
p create-in-0777 sh -c 'echo r > open/byroot && stat -c %u:%g open/byroot'`,
		[]string{"read-0600", "write-0600", "chown-0644"}},
}

// probeHelpers define p: run a step, print "name: outcome".
const probeHelpers = `p() { n=$1; shift; if out=$("$@" 2>&1); then echo "$n: ok $out"; else echo "$n: $(printf %s "$out" | sed 's/^[a-z]*: //' | head -1)"; fi; }
`

func TestCredentialsAsKnfsd(t *testing.T) {
	// The member probe gets the app's group as a supplementary group.
	credentialProbes[1].groups = strconv.Itoa(node.AppGID)
	granted := map[string][]string{"a member of the app's group": {"read-0640", "write-0660"}, "another uid": {"read-0644"}}
	for _, s := range lab.Servers {
		if s.ReadOnly {
			continue
		}
		outcomes := map[string]map[string]string{} // who -> nasd/knfsd -> output
		for _, tg := range targets(s.Role) {
			if tg.server.Name != s.Name {
				continue
			}
			dir := workdir(t, tg)
			sh(t, dir, "printf secret > private && chmod 0600 private && mkdir closed && printf f > closed/f && chmod 0700 closed && "+
				"printf g > grouped && chmod 0640 grouped && printf g > groupw && chmod 0660 groupw && printf s > shared && chmod 0644 shared && "+
				"mkdir open && chmod 0777 open && chmod 0755 .")
			for _, pr := range credentialProbes {
				out, err := shAs(pr.uid, pr.gid, pr.groups, dir, probeHelpers+pr.script)
				require.NoError(t, err, "%s on %s: %s", pr.who, tg.name, out)
				if outcomes[pr.who] == nil {
					outcomes[pr.who] = map[string]string{}
				}
				outcomes[pr.who][tg.name] = out
				for _, step := range pr.mustBeRefused {
					line := lineOf(out, step)
					assert.True(t, strings.Contains(line, "denied") || strings.Contains(line, "not permitted"),
						"%s/%s: %s %s: %q", s.Name, tg.name, pr.who, step, line)
				}
				for _, step := range granted[pr.who] {
					assert.True(t, strings.HasPrefix(lineOf(out, step), step+": ok"), "%s/%s: %s %s: %q", s.Name, tg.name, pr.who, step, lineOf(out, step))
				}
			}
			got := sh(t, dir, "cat private")
			assert.Equal(t, "secret", got, "%s/%s: the 0600 file is unchanged", s.Name, tg.name)
		}
		for who, by := range outcomes {
			assert.Equal(t, by["knfsd"], by["nasd"], "%s: %s: knfsd's outcomes vs nasd's", s.Name, who)
			t.Logf("%s, %s:\n%s", s.Name, who, by["nasd"])
		}
	}
}

func lineOf(out, step string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, step+":") {
			return l
		}
	}
	return ""
}
