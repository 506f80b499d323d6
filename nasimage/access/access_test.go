package access

import (
	"io/fs"
	"testing"
)

func file(uid, gid uint32, perm fs.FileMode) Attr { return Attr{UID: uid, GID: gid, Mode: perm} }
func dir(uid, gid uint32, perm fs.FileMode) Attr {
	return Attr{UID: uid, GID: gid, Mode: fs.ModeDir | perm}
}

// TestMay follows generic_permission and nfsd_permission: owner, group,
// other bits (the first class that matches decides), root's override
// (not for running a file without x), knfsd's owner override, and a READ
// the mode refuses but exec allows.
func TestMay(t *testing.T) {
	owner, member, other, root := Cred{UID: 1}, Cred{UID: 2, GID: 9, Groups: []uint32{5}}, Cred{UID: 3}, Cred{}
	for _, tc := range []struct {
		name string
		c    Cred
		a    Attr
		w    Want
		ok   bool
	}{
		{"owner reads 0600", owner, file(1, 5, 0o600), Read, true},
		{"other reads 0600", other, file(1, 5, 0o600), Read, false},
		{"other reads 0604", other, file(1, 5, 0o604), Read, true},
		{"member reads 0640 by supplementary group", member, file(1, 5, 0o640), Read, true},
		{"member writes 0640", member, file(1, 5, 0o640), Write, false},
		{"owner class decides: 0077 refuses the owner", owner, file(1, 5, 0o077), Read, false},
		{"owner override writes 0444", owner, file(1, 5, 0o444), Write | OwnerOverride, true},
		{"no override for others", other, file(1, 5, 0o444), Write | OwnerOverride, false},
		{"read of an executable the mode refuses", other, file(1, 5, 0o711), Read | OwnerOverride, true},
		{"root reads 0000", root, file(1, 5, 0), Read | Write, true},
		{"root runs no x file", root, file(1, 5, 0o644), Exec, false},
		{"root runs x file", root, file(1, 5, 0o100), Exec, true},
		{"root searches 0000 dir", root, dir(1, 5, 0), Exec, true},
		{"other creates in 0755 dir", other, dir(1, 5, 0o755), Write | Exec, false},
		{"other creates in 0777 dir", other, dir(1, 5, 0o777), Write | Exec, true},
		{"nothing needed", other, file(1, 5, 0), 0, true},
	} {
		if got := tc.c.May(tc.a, tc.w); got != tc.ok {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.ok)
		}
	}
}

// TestMap follows nfsd_setuser.
func TestMap(t *testing.T) {
	c := Cred{UID: 0, GID: 0, Groups: []uint32{0, 4}}
	rs := Mapping{RootSquash, 65534, 65533}.Map(c)
	if rs.UID != 65534 || rs.GID != 65533 || rs.Groups[0] != 65533 || rs.Groups[1] != 4 {
		t.Errorf("root_squash: %+v", rs)
	}
	if c.Groups[0] != 0 {
		t.Error("Map changed its argument")
	}
	as := Mapping{AllSquash, 7, 8}.Map(Cred{UID: 5, GID: 5, Groups: []uint32{1}})
	if as.UID != 7 || as.GID != 8 || len(as.Groups) != 0 {
		t.Errorf("all_squash: %+v", as)
	}
	if nr := (Mapping{NoRootSquash, 7, 8}).Map(c); nr.UID != 0 || !nr.Root() {
		t.Errorf("no_root_squash: %+v", nr)
	}
}

func TestAccess(t *testing.T) {
	all := uint32(0x3f)
	owner, other := Cred{UID: 1}, Cred{UID: 3}
	for _, tc := range []struct {
		name string
		c    Cred
		a    Attr
		ro   bool
		want uint32
	}{
		{"owner of 0644 file", owner, file(1, 1, 0o644), false, AccessRead | AccessModify | AccessExtend},
		{"owner of 0755 file", owner, file(1, 1, 0o755), false, AccessRead | AccessModify | AccessExtend | AccessExecute},
		{"no owner override in ACCESS", owner, file(1, 1, 0o444), false, AccessRead},
		{"other of 0644 file", other, file(1, 1, 0o644), false, AccessRead},
		{"owner of dir", owner, dir(1, 1, 0o755), false, AccessRead | AccessLookup | AccessModify | AccessExtend | AccessDelete},
		{"other of 0755 dir", other, dir(1, 1, 0o755), false, AccessRead | AccessLookup},
		{"read-only export", owner, dir(1, 1, 0o777), true, AccessRead | AccessLookup},
		{"root on read-only file", Cred{}, file(1, 1, 0o644), true, AccessRead},
	} {
		if got := tc.c.Access(tc.a, all, tc.ro); got != tc.want {
			t.Errorf("%s: %#x, want %#x", tc.name, got, tc.want)
		}
	}
	if got := owner.Access(file(1, 1, 0o644), AccessRead, false); got != AccessRead {
		t.Errorf("only what was asked: %#x", got)
	}
}

// TestSetattrVerdict follows nfsd_setattr and setattr_prepare.
func TestSetattrVerdict(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	owner, member, other, root := Cred{UID: 1, GID: 1, Groups: []uint32{6}}, Cred{UID: 2, GID: 5}, Cred{UID: 3}, Cred{}
	f := file(1, 5, 0o664)
	for _, tc := range []struct {
		name string
		c    Cred
		a    Attr
		s    Setattr
		want Verdict
	}{
		{"owner chmod", owner, f, Setattr{Mode: true}, OK},
		{"group member chmod", member, f, Setattr{Mode: true}, Perm},
		{"owner chown away", owner, f, Setattr{UID: u(9)}, Perm},
		{"owner chown to self", owner, f, Setattr{UID: u(1)}, OK},
		{"root chown", root, f, Setattr{UID: u(9)}, OK},
		{"owner chgrp to own group", owner, f, Setattr{GID: u(6)}, OK},
		{"owner chgrp to a group it is not in", owner, f, Setattr{GID: u(7)}, Perm},
		{"group member truncates g+w", member, f, Setattr{Size: true}, OK},
		{"other truncates", other, f, Setattr{Size: true}, Acces},
		{"owner truncates 0444", owner, file(1, 5, 0o444), Setattr{Size: true}, OK},
		{"member touches to now", member, f, Setattr{Times: true}, OK},
		{"member sets client times", member, f, Setattr{Times: true, ClientTimes: true}, Perm},
		{"other touches to now", other, f, Setattr{Times: true}, Acces},
		{"owner sets client times", owner, f, Setattr{Times: true, ClientTimes: true}, OK},
	} {
		if got := tc.c.SetattrVerdict(tc.a, tc.s); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
