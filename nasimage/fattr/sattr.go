package fattr

import "io/fs"

// Time settings of a sattr3 (time_how).
const (
	DontChange    = 0
	SetServerTime = 1
	SetClientTime = 2
)

// Sattr is a decoded sattr3: each Set* says whether the value beside it
// is to be set.
type Sattr struct {
	SetMode, SetUID, SetGID, SetSize bool
	Mode, UID, GID                   uint32
	Size                             uint64
	Atime, Mtime                     uint32 // DontChange, SetServerTime, SetClientTime
	ATime, MTime                     Time   // with SetClientTime
}

// Perm is the owner, group and permission bits (with fs.ModeDir,
// fs.ModeSymlink or fs.ModeIrregular for what is not a regular file) the
// credential checks compare a caller with.
func (a *Attr) Perm() (uid, gid uint32, mode fs.FileMode) {
	mode = fs.FileMode(a.Mode & 0o777)
	switch a.Type {
	case TypeDir:
		mode |= fs.ModeDir
	case TypeLnk:
		mode |= fs.ModeSymlink
	case TypeReg:
	default:
		mode |= fs.ModeIrregular
	}
	return a.UID, a.GID, mode
}
