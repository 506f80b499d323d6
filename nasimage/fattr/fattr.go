// Package fattr is NFSv3 file attributes (RFC 1813 fattr3 and wcc_attr) as
// the front door's hot path puts them on the wire: the filesystem side
// (nfsfs) fills an Attr, the RPC side (rpc) encodes it, and neither has to
// know the other.
package fattr

import (
	"encoding/binary"
	"io/fs"
	"syscall"
)

// NFSv3 file types (ftype3).
const (
	TypeReg  = 1
	TypeDir  = 2
	TypeBlk  = 3
	TypeChr  = 4
	TypeLnk  = 5
	TypeSock = 6
	TypeFIFO = 7
)

// Time is an nfstime3.
type Time struct{ Sec, Nsec uint32 }

// Attr is an fattr3.
type Attr struct {
	Type                uint32
	Mode                uint32
	Nlink, UID, GID     uint32
	Size, Used          uint64
	Rdev                [2]uint32
	FSID, FileID        uint64
	Atime, Mtime, Ctime Time
}

// Size is the XDR size of an fattr3; WccSize that of a wcc_attr.
const (
	Size    = 84
	WccSize = 24
)

// Put writes a as XDR into b[:Size].
func (a *Attr) Put(b []byte) {
	_ = b[Size-1]
	be := binary.BigEndian
	be.PutUint32(b[0:], a.Type)
	be.PutUint32(b[4:], a.Mode)
	be.PutUint32(b[8:], a.Nlink)
	be.PutUint32(b[12:], a.UID)
	be.PutUint32(b[16:], a.GID)
	be.PutUint64(b[20:], a.Size)
	be.PutUint64(b[28:], a.Used)
	be.PutUint32(b[36:], a.Rdev[0])
	be.PutUint32(b[40:], a.Rdev[1])
	be.PutUint64(b[44:], a.FSID)
	be.PutUint64(b[52:], a.FileID)
	putTime(b[60:], a.Atime)
	putTime(b[68:], a.Mtime)
	putTime(b[76:], a.Ctime)
}

// PutWcc writes a's wcc_attr (size, mtime, ctime) into b[:WccSize].
func (a *Attr) PutWcc(b []byte) {
	_ = b[WccSize-1]
	binary.BigEndian.PutUint64(b[0:], a.Size)
	putTime(b[8:], a.Mtime)
	putTime(b[16:], a.Ctime)
}

func putTime(b []byte, t Time) {
	binary.BigEndian.PutUint32(b[0:], t.Sec)
	binary.BigEndian.PutUint32(b[4:], t.Nsec)
}

// FromStat fills a from a stat result the way go-nfs (v0.0.4) does, so that
// attributes answered by the hot path and by go-nfs agree: the mode word is
// Go's fs.FileMode bits, every time is the modification time, used is the
// size, fsid is 0. fileID is the identity-based number clients see.
func (a *Attr) FromStat(st *syscall.Stat_t, fileID uint64) {
	m := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		m |= fs.ModeDir
		a.Type = TypeDir
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
		a.Type = TypeLnk
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
		a.Type = TypeBlk
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
		a.Type = TypeChr
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
		a.Type = TypeFIFO
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
		a.Type = TypeSock
	default:
		a.Type = TypeReg
	}
	if st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	a.Mode = uint32(m)
	a.Nlink = uint32(st.Nlink)
	a.UID, a.GID = st.Uid, st.Gid
	a.Size = uint64(st.Size)
	a.Used = a.Size
	a.Rdev = [2]uint32{major(uint64(st.Rdev)), minor(uint64(st.Rdev))}
	a.FSID = 0
	a.FileID = fileID
	t := Time{Sec: uint32(st.Mtim.Sec), Nsec: uint32(st.Mtim.Nsec)}
	a.Atime, a.Mtime, a.Ctime = t, t, t
}

// major and minor are Linux's device number split (unix.Major/Minor).
func major(dev uint64) uint32 { return uint32((dev>>8)&0xfff) | uint32((dev>>32)&^0xfff) }
func minor(dev uint64) uint32 { return uint32(dev&0xff) | uint32((dev>>12)&^0xff) }
