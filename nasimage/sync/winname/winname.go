// Package winname knows which names a Windows directory cannot hold, so the
// sync engine can report and skip them instead of failing on them forever.
package winname

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/nas-topology/nas-topology/nasimage/sync/reconcile"
)

// MaxComponent is the longest name Windows holds: 255 UTF-16 code units
// (NTFS, exFAT and SMB all count in UTF-16, not bytes). Linux's 255 bytes
// is never more, so an export cannot hold such a name today; the check
// stays for exports on filesystems with longer names.
const MaxComponent = 255

// MaxPath is the longest path the Win32 API takes (with the \\?\ prefix or
// long paths enabled), in UTF-16 code units. Many Windows programs stop at
// MAX_PATH (260) for the whole path, share prefix included: the engine's
// limit for relative paths is configurable for that reason.
const MaxPath = 32767

// Problem returns why Windows cannot hold a file named name (one path
// element), or "" when it can.
func Problem(name string) string {
	if !utf8.ValidString(name) {
		return "name is not valid UTF-8"
	}
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
	if n := utf16Len(name); n > MaxComponent {
		return fmt.Sprintf("name is %d UTF-16 units long (Windows holds %d)", n, MaxComponent)
	}
	if Reserved(name) {
		return "reserved device name"
	}
	return ""
}

// Reserved reports whether name is a DOS device name, with or without an
// extension: CON, PRN, AUX, NUL, COM0-COM9, LPT0-LPT9, COM and LPT with a
// superscript 1, 2 or 3 (Windows counts those as digits), CONIN$ and
// CONOUT$. Case and spaces before the extension do not matter ("con .txt").
func Reserved(name string) bool {
	base := name
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	base = strings.ToUpper(strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(base) < 4 || base[:3] != "COM" && base[:3] != "LPT" {
		return false
	}
	switch base[3:] {
	case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2", "\u00b3":
		return true
	}
	return false
}

// PathProblem returns why Windows cannot hold the relative path rel under a
// share whose paths may be max UTF-16 units long (0: MaxPath), or "".
func PathProblem(rel string, max int) string {
	if max <= 0 {
		max = MaxPath
	}
	if n := utf16Len(rel); n > max {
		return fmt.Sprintf("path is %d UTF-16 units long (limit %d)", n, max)
	}
	return ""
}

// utf16Len is the length of valid UTF-8 s in UTF-16 code units.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// Unsyncable returns the NFS paths that cannot be copied to Windows, with the
// reason: a name Windows cannot hold, a path too long, or a case-only twin of another path in
// the same directory. Of a set of twins the one already synced (in the
// ancestor) stays, else the one Windows has, else the first in byte order.
// maxPath is PathProblem's limit (0: MaxPath).
func Unsyncable(nfs, windows reconcile.Tree, anc reconcile.Ancestor, maxPath int) map[string]string {
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
		if why := PathProblem(p, maxPath); why != "" {
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
