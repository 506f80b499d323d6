package nfsfs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
	"syscall"

	"github.com/nas-topology/nas-topology/nasimage/fileid"
)

// A handle is 44 bytes (NFSv3 allows 64):
//
//	magic+version (4) | fsid (8) | identity (16) | MAC (16)
//
// Its length is a multiple of 4 on purpose: go-nfs decodes opaques without
// skipping XDR padding, so an unpadded handle would shift every argument
// after it.
//
// identity = the file's fileid.ID (it names a file, not a path: see package
// fileid); MAC = HMAC-SHA-256(secret, magic|fsid|identity), truncated. The
// MAC makes handles unforgeable; the fsid tells exports apart.
const (
	HandleSize = 4 + 8 + 16 + 16
	keySize    = 32
)

// handleMagic starts every handle: "nas" and the format version. Version 1
// handles named paths; they are answered STALE (clients look the name up
// again) instead of BADHANDLE.
var (
	handleMagic   = [4]byte{'n', 'a', 's', 2}
	handleMagicV1 = [4]byte{'n', 'a', 's', 1}
)

// FileID identifies a file of the export.
type FileID = fileid.ID

// HandleCodec encodes and authenticates file handles of one export.
type HandleCodec struct {
	key  []byte
	fsid uint64

	// verified remembers handles whose MAC was checked (direct-mapped by
	// a hash of the handle): a client sends the same few handles over and
	// over, and a hit needs the exact bytes, so it is as authentic.
	mu       sync.Mutex
	verified [1024]struct {
		fh [HandleSize]byte
		ok bool
	}
	macs sync.Pool // of HMACs keyed with key
	// encoded remembers the handles Encode made, by identity.
	encoded [1024]struct {
		id FileID
		fh [HandleSize]byte
		ok bool
	}
}

// NewHandleCodec returns a codec for the export fsid with the secret key.
func NewHandleCodec(key []byte, fsid uint64) *HandleCodec {
	return &HandleCodec{key: append([]byte(nil), key...), fsid: fsid}
}

// Encode returns the handle for id.
func (c *HandleCodec) Encode(id FileID) []byte {
	slot := &c.encoded[int(binary.BigEndian.Uint16(id[14:]))%len(c.encoded)]
	c.mu.Lock()
	if slot.ok && slot.id == id {
		fh := slot.fh
		c.mu.Unlock()
		return fh[:]
	}
	c.mu.Unlock()
	fh := make([]byte, 0, HandleSize)
	fh = append(fh, handleMagic[:]...)
	fh = binary.BigEndian.AppendUint64(fh, c.fsid)
	fh = append(fh, id[:]...)
	fh = append(fh, c.mac(fh)...)
	c.mu.Lock()
	slot.id, slot.fh, slot.ok = id, [HandleSize]byte(fh), true
	c.mu.Unlock()
	return fh
}

// Decode authenticates fh and returns its identity. Errors are
// ErrBadHandle (malformed or forged) or ErrStale (another export's fsid).
func (c *HandleCodec) Decode(fh []byte) (FileID, error) {
	var id FileID
	if len(fh) == HandleSize && [4]byte(fh[:4]) == handleMagicV1 {
		return id, ErrStale
	}
	if len(fh) != HandleSize || [4]byte(fh[:4]) != handleMagic {
		return id, ErrBadHandle
	}
	if binary.BigEndian.Uint64(fh[4:12]) != c.fsid {
		return id, ErrStale
	}
	copy(id[:], fh[12:28])
	slot := &c.verified[slotOf(fh)]
	c.mu.Lock()
	hit := slot.ok && slot.fh == [HandleSize]byte(fh)
	c.mu.Unlock()
	if hit {
		return id, nil
	}
	if !hmac.Equal(fh[28:], c.mac(fh[:28])) {
		return FileID{}, ErrBadHandle
	}
	c.mu.Lock()
	slot.fh, slot.ok = [HandleSize]byte(fh), true
	c.mu.Unlock()
	return id, nil
}

// slotOf hashes a handle (FNV-1a of its MAC, which is random) to a slot of
// HandleCodec.verified.
func slotOf(fh []byte) int {
	h := uint32(2166136261)
	for _, b := range fh[28:] {
		h = (h ^ uint32(b)) * 16777619
	}
	return int(h % 1024)
}

func (c *HandleCodec) mac(msg []byte) []byte {
	// A used HMAC resets to its keyed state: no key schedule per handle
	// (a READDIRPLUS encodes one handle an entry).
	m, _ := c.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, c.key)
	} else {
		m.Reset()
	}
	m.Write(msg)
	sum := m.Sum(nil)[:16]
	c.macs.Put(m)
	return sum
}

// handleError carries the NFS status the RPC front door answers with.
type handleError struct {
	status uint32
	msg    string
}

func (e *handleError) Error() string     { return e.msg }
func (e *handleError) NFSStatus() uint32 { return e.status }

// Handle errors.
var (
	ErrBadHandle error = &handleError{10001, "nfsfs: malformed or forged file handle"}
	ErrStale     error = &handleError{70, "nfsfs: stale file handle"}
)

// statusErr turns a filesystem error into one that carries its NFSv3
// status (RFC 1813 nfsstat3), for the procedures the front door answers.
func statusErr(err error) error {
	if err == nil {
		return nil
	}
	var he *handleError
	if errors.As(err, &he) {
		return err
	}
	status := uint32(5) // IO
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EPERM:
			status = 1
		case syscall.ENOENT:
			status = 2
		case syscall.EACCES:
			status = 13
		case syscall.EEXIST:
			status = 17
		case syscall.EXDEV:
			status = 18
		case syscall.ENOTDIR, syscall.ELOOP:
			status = 20
		case syscall.EISDIR:
			status = 21
		case syscall.EINVAL:
			status = 22
		case syscall.ENOSPC:
			status = 28
		case syscall.EROFS:
			status = 30
		case syscall.EMLINK:
			status = 31
		case syscall.ENAMETOOLONG:
			status = 63
		case syscall.EDQUOT:
			status = 69
		}
	}
	return &handleError{status, err.Error()}
}
