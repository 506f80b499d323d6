//go:build kernellab

package scenarios

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exclusiveProbe creates files with O_CREAT|O_EXCL (the kernel client's
// EXCLUSIVE CREATE, then its SETATTR of mode and times), as the shell's
// noclobber does them. What it prints must not depend on the
// mount: the outcomes, the modes, and whether the times are now (an
// EXCLUSIVE CREATE keeps its verifier in the times until that SETATTR).
const exclusiveProbe = `
now() { date +%s; }
recent() { t=$(stat -c "$1" "$2"); n=$(now); if [ $((n - t)) -lt 300 ] && [ $((t - n)) -lt 300 ]; then echo "$2 $1 recent"; else echo "$2 $1 $t, now $n"; fi; }
set -C
echo one > f && echo "f created"
if (echo two > f) 2>/dev/null; then echo "f overwritten"; else echo "f refused"; fi
cat f
(umask 0137; echo g > g) && echo "g created"
if (echo again > g) 2>/dev/null; then echo "g opened twice"; else echo "g EEXIST"; fi
stat -c '%n %a %s' f g
recent %Y f; recent %X f; recent %Y g
`

// TestExclusiveCreateAsKnfsd: O_EXCL creates through the kernel client give
// on nasd what they give on knfsd, and nasd answered the client's
// EXCLUSIVE CREATEs itself (the client falls back to GUARDED after a
// NOTSUPP, which gives the same outcomes in one more round trip).
func TestExclusiveCreateAsKnfsd(t *testing.T) {
	for _, s := range lab.Servers {
		if s.ReadOnly {
			continue
		}
		got := map[string]string{}
		for _, tg := range targets(s.Role) {
			if tg.server.Name != s.Name {
				continue
			}
			got[tg.name] = sh(t, workdir(t, tg), exclusiveProbe)
		}
		for _, want := range []string{"f created", "f refused", "g created", "g EEXIST", "f %Y recent", "f %X recent", "g %Y recent"} {
			assert.Contains(t, got["nasd"], want, "%s: nasd", s.Name)
		}
		assert.Equal(t, got["knfsd"], got["nasd"], "%s: nasd and knfsd", s.Name)
		m, err := lab.Pods[s.Name].Metrics()
		require.NoError(t, err)
		assert.NotEmpty(t, series(m, `procedure="CREATE",program="nfs",status="OK"`), "%s: nasd answered no CREATE", s.Name)
		assert.Empty(t, series(m, `procedure="CREATE",program="nfs",status="NOTSUPP"`), "%s: nasd's metrics", s.Name)
	}
}

// series is the line of a /metrics page whose labels are labels, or "".
func series(metrics, labels string) string {
	for _, l := range strings.Split(metrics, "\n") {
		if strings.Contains(l, "{"+labels+"}") {
			return l
		}
	}
	return ""
}
