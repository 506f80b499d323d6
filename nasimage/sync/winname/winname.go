// Package winname knows which names a Windows directory cannot hold, so the
// sync engine can report and skip them instead of failing on them forever.
package winname

import (
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
	groups := map[string][]string{}
	for p := range nfs {
		name := p[strings.LastIndexByte(p, '/')+1:]
		if why := Problem(name); why != "" {
			out[p] = why
			continue
		}
		k := strings.ToLower(p)
		groups[k] = append(groups[k], p)
	}
	for p := range windows {
		if _, ok := nfs[p]; ok {
			continue
		}
		k := strings.ToLower(p)
		if g, ok := groups[k]; ok {
			groups[k] = append(g, p)
		}
	}
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		keep := g[0]
		rank := func(p string) int {
			if _, ok := anc[p]; ok {
				return 0
			}
			if _, ok := windows[p]; ok {
				return 1
			}
			return 2
		}
		for _, p := range g[1:] {
			if rank(p) < rank(keep) || rank(p) == rank(keep) && p < keep {
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
