// Package access decides, as knfsd does, what an NFS caller may do with a
// file: the caller's AUTH_UNIX credentials after squashing (/etc/exports
// root_squash, all_squash, anonuid, anongid) against the file's owner,
// group and mode, with knfsd's owner override (the owner of a file may read
// and write it whatever its mode: git writes objects it created 0444).
//
// nasd runs as one unprivileged uid, so the filesystem cannot make these
// checks for it: the front door makes them before a call reaches go-nfs,
// against the owner nasd reports (nfsfs keeps it in an xattr).
package access

import "io/fs"

// Cred is a caller's identity: AUTH_UNIX uid, gid and supplementary groups.
type Cred struct {
	UID, GID uint32
	Groups   []uint32
}

// Squash is the /etc/exports user mapping.
type Squash int

// Squash modes.
const (
	RootSquash   Squash = iota // uid/gid 0 become anonuid/anongid (default)
	NoRootSquash               // ids are used as given
	AllSquash                  // every caller becomes anonuid/anongid
)

// Mapping is an export's squash mode and anonymous ids.
type Mapping struct {
	Squash           Squash
	AnonUID, AnonGID uint32
}

// Map applies the squash mode to a caller, as knfsd's nfsd_setuser does:
// all_squash drops the groups, root_squash maps uid 0, gid 0 and group 0.
func (m Mapping) Map(c Cred) Cred {
	switch m.Squash {
	case AllSquash:
		return Cred{UID: m.AnonUID, GID: m.AnonGID}
	case RootSquash:
		out := Cred{UID: c.UID, GID: c.GID, Groups: make([]uint32, len(c.Groups))}
		if out.UID == 0 {
			out.UID = m.AnonUID
		}
		if out.GID == 0 {
			out.GID = m.AnonGID
		}
		for i, g := range c.Groups {
			if g == 0 {
				g = m.AnonGID
			}
			out.Groups[i] = g
		}
		return out
	}
	return c
}

// Anonymous is the caller without AUTH_UNIX credentials (AUTH_NONE).
func (m Mapping) Anonymous() Cred { return Cred{UID: m.AnonUID, GID: m.AnonGID} }

// Attr is what the checks need of a file: its owner, group and mode (the
// permission bits and the type).
type Attr struct {
	UID, GID uint32
	Mode     fs.FileMode
}

// Want is what an operation needs, in knfsd's NFSD_MAY_* terms.
type Want uint8

// The bits of Want.
const (
	Exec          Want = 1 << iota // search a directory, run a file
	Write                          // change a file, or a directory's entries
	Read                           // read a file, list a directory
	OwnerOverride                  // the owner passes whatever the mode (READ, WRITE, COMMIT, truncate)
)

// Root reports whether the caller has root's powers (uid 0 after squashing:
// knfsd keeps CAP_DAC_OVERRIDE only then).
func (c Cred) Root() bool { return c.UID == 0 }

// InGroup reports whether the caller's gid or a supplementary group is g.
func (c Cred) InGroup(g uint32) bool {
	if c.GID == g {
		return true
	}
	for _, x := range c.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// Owns reports whether the caller owns the file.
func (c Cred) Owns(a Attr) bool { return c.UID == a.UID }

// May reports whether the caller may do what w says with the file, as
// knfsd's nfsd_permission and the VFS's generic_permission decide.
func (c Cred) May(a Attr, w Want) bool {
	if w&OwnerOverride != 0 && c.Owns(a) {
		return true
	}
	need := w & (Exec | Write | Read)
	if need == 0 {
		return true
	}
	if c.allows(a, need) {
		return true
	}
	// knfsd: a READ that the mode refuses but exec allows is fine (a
	// client reads the program it runs).
	return w&OwnerOverride != 0 && need == Read && a.Mode.IsRegular() && c.allows(a, Exec)
}

// allows is the plain mode check (generic_permission): root may read and
// write anything, and search any directory or run a file with an x bit.
func (c Cred) allows(a Attr, need Want) bool {
	if c.Root() {
		if need&Exec != 0 && !a.Mode.IsDir() && a.Mode.Perm()&0o111 == 0 {
			return false
		}
		return true
	}
	perm := a.Mode.Perm()
	var bits fs.FileMode
	switch {
	case c.Owns(a):
		bits = perm >> 6
	case c.InGroup(a.GID):
		bits = perm >> 3
	default:
		bits = perm
	}
	bits &= 7
	// Want's Exec, Write, Read are the rwx bits' order reversed: x=1 w=2 r=4.
	return fs.FileMode(need)&^bits == 0
}

// ACCESS3 bits (RFC 1813 section 3.3.4).
const (
	AccessRead    = 0x01
	AccessLookup  = 0x02
	AccessModify  = 0x04
	AccessExtend  = 0x08
	AccessDelete  = 0x10
	AccessExecute = 0x20
)

// accessMap is knfsd's nfs3_regaccess, nfs3_diraccess and nfs3_anyaccess:
// what each ACCESS3 bit needs, for a file, a directory, anything else.
var accessMap = [3][]struct {
	bit  uint32
	want Want
}{
	{{AccessRead, Read}, {AccessExecute, Exec}, {AccessModify, Write}, {AccessExtend, Write}},
	{{AccessRead, Read}, {AccessLookup, Exec}, {AccessModify, Exec | Write}, {AccessExtend, Exec | Write}, {AccessDelete, Exec | Write}},
	{{AccessRead, Read}, {AccessExecute, Exec}, {AccessModify, Write}, {AccessExtend, Write}},
}

// Access returns the ACCESS3 bits of req the caller is granted on the file
// (knfsd's nfsd_access: no owner override, and on a read-only export
// nothing that writes, except for special files).
func (c Cred) Access(a Attr, req uint32, readOnly bool) uint32 {
	kind := 2
	switch {
	case a.Mode.IsRegular():
		kind = 0
	case a.Mode.IsDir():
		kind = 1
	}
	var got uint32
	for _, m := range accessMap[kind] {
		if req&m.bit == 0 {
			continue
		}
		if m.want&Write != 0 && readOnly && kind != 2 {
			continue
		}
		if c.allows(a, m.want) {
			got |= m.bit
		}
	}
	return got
}

// Setattr is what a SETATTR changes.
type Setattr struct {
	Mode, Size  bool
	UID, GID    *uint32 // the new owner or group, if set
	Times       bool    // atime or mtime
	ClientTimes bool    // to times the client gives (not the server's now)
}

// Verdict is the outcome of a check: OK, or knfsd's refusal.
type Verdict int

// Verdicts.
const (
	OK    Verdict = iota
	Perm          // NFS3ERR_PERM: only the owner (or root) may
	Acces         // NFS3ERR_ACCES: the mode refuses it
)

// SetattrVerdict decides a SETATTR as nfsd_setattr and the VFS's
// setattr_prepare do: a size change needs write permission (owner
// override); touching the times to now needs the same; times the client
// gives, a mode change and a group change need the owner (the group one
// the caller is in); only root gives a file away.
func (c Cred) SetattrVerdict(a Attr, s Setattr) Verdict {
	if (s.Size || (s.Times && !s.ClientTimes)) && !c.May(a, Write|OwnerOverride) {
		return Acces
	}
	if c.Root() {
		return OK
	}
	owner := c.Owns(a)
	switch {
	case s.UID != nil && (*s.UID != a.UID || !owner):
		return Perm
	case s.GID != nil && !(owner && (*s.GID == a.GID || c.InGroup(*s.GID))):
		return Perm
	case (s.Mode || s.ClientTimes) && !owner:
		return Perm
	}
	return OK
}
