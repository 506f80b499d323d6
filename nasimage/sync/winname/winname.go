// Package winname knows which names a Windows directory cannot hold, so the
// sync engine can report and skip them instead of failing on them forever.
package winname

import (
	"slices"
	"strings"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

// Problem returns why Windows cannot hold a file named name (one path
// element), or "" when it can.
func Problem(name string) string {
	for _, r := range name {
		switch {
		case r < 0x20:
			return "control character in name"
		case strings.ContainsRune(`<>:"\|?*`, r):
			return "character " + string(r) + " not allowed on Windows"
		}
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return "trailing dot or space"
	}
	base := strings.ToUpper(name)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	base = strings.TrimRight(base, " ")
	switch base {
	case "CON", "PRN", "AUX", "NUL":
		return "reserved device name"
	}
	if len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) && base[3] >= '1' && base[3] <= '9' {
		return "reserved device name"
	}
	return ""
}

// Unsyncable returns the NFS paths that cannot be copied to Windows, with the
// reason: a name Windows cannot hold, or a case-only twin of another path in
// the same directory. Of a set of twins the one already synced (in the
// ancestor) stays, else the one Windows has, else the first in byte order.
func Unsyncable(nfs, windows reconcile.Tree, anc reconcile.Ancestor) map[string]string {
	out := map[string]string{}
	// Only paths not synced yet can be new problems: a synced path was
	// checked when it was new, and won any twin contest since. So a rescan
	// with nothing new costs one map lookup per path.
	var dirs map[string]bool
	for p := range nfs {
		if _, ok := anc[p]; ok {
			continue
		}
		if why := Problem(p[strings.LastIndexByte(p, '/')+1:]); why != "" {
			out[p] = why
			continue
		}
		if dirs == nil {
			dirs = map[string]bool{}
		}
		dirs[reconcile.Parent(p)] = true
	}
	if dirs == nil {
		return out
	}
	// Twins differ only in case, so at least one of them has an upper-case
	// letter: group those first, then add the lower-case paths that match a
	// group. Memory goes with the mixed-case paths, not with the tree.
	groups := map[string][]string{}
	trees := []reconcile.Tree{nfs, windows}
	for _, t := range trees {
		for p := range t {
			if k := strings.ToLower(p); k != p && dirs[reconcile.Parent(p)] && out[p] == "" {
				groups[k] = append(groups[k], p)
			}
		}
	}
	if len(groups) == 0 {
		return out
	}
	for _, t := range trees {
		for p := range t {
			if g, ok := groups[p]; ok && out[p] == "" {
				groups[p] = append(g, p)
			}
		}
	}
	for _, g := range groups {
		g = slices.Compact(slices.Sorted(slices.Values(g)))
		if len(g) < 2 {
			continue
		}
		rank := func(p string) int {
			if _, ok := anc[p]; ok {
				return 0
			}
			if _, ok := windows[p]; ok {
				return 1
			}
			return 2
		}
		keep := g[0]
		for _, p := range g[1:] {
			if rank(p) < rank(keep) {
				keep = p
			}
		}
		for _, p := range g {
			if _, ok := nfs[p]; ok && p != keep {
				out[p] = "differs only in case from " + keep
			}
		}
	}
	return out
}
