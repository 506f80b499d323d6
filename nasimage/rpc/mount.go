package rpc

import (
	"sync"
)

// MOUNT protocol v3 (RFC 1813 appendix I). go-nfs only knows MNT and UMNT;
// the front door answers the whole program itself.

const (
	mountProcNull    = 0
	mountProcMnt     = 1
	mountProcDump    = 2
	mountProcUmnt    = 3
	mountProcUmntAll = 4
	mountProcExport  = 5

	mnt3OK        = 0
	mnt3ErrNoEnt  = 2
	mnt3ErrAcces  = 13
	mnt3ErrNotDir = 20

	mountPathLen = 1024
	mountNameLen = 255
)

var mountProcNames = [...]string{"NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"}

// mount answers one MOUNT call. Versions 1 to 3 share every procedure
// except MNT, whose v1 reply has another handle type: MNT is v3 only.
func (s *Server) mount(c *conn, call Call) (rep []byte, proc, status string) {
	if call.Vers < 1 || call.Vers > 3 {
		return progMismatchReply(call.XID, 1, 3), "-", "PROG_MISMATCH"
	}
	if int(call.Proc) >= len(mountProcNames) {
		return acceptedReply(call.XID, acceptProcUnavail, nil), "-", "PROC_UNAVAIL"
	}
	proc = mountProcNames[call.Proc]
	r := xdrReader{buf: call.Args}
	var w xdrWriter
	switch call.Proc {
	case mountProcNull:
		status = "OK"
	case mountProcMnt:
		if call.Vers != 3 {
			return progMismatchReply(call.XID, 3, 3), proc, "PROG_MISMATCH"
		}
		status = s.mountMnt(c, &r, &w)
	case mountProcDump:
		status = s.mountDump(&w)
	case mountProcUmnt:
		status = s.mountUmnt(c, &r)
	case mountProcUmntAll:
		status = s.mountUmntAll(c)
	case mountProcExport:
		status = s.mountExport(&w)
	}
	if r.err != nil {
		return acceptedReply(call.XID, acceptGarbageArgs, nil), proc, "GARBAGE_ARGS"
	}
	return successReply(call.XID, w.buf), proc, status
}

// mountTable remembers who mounted what, for DUMP. It is advisory (as in
// every NFS server) and bounded so that clients cannot grow it forever.
type mountTable struct {
	mu      sync.Mutex
	entries map[mountEntry]struct{}
}

type mountEntry struct{ host, dir string }

const maxMountEntries = 1024

func (t *mountTable) add(e mountEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil {
		t.entries = map[mountEntry]struct{}{}
	}
	if len(t.entries) < maxMountEntries {
		t.entries[e] = struct{}{}
	}
}

func (t *mountTable) remove(match func(mountEntry) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for e := range t.entries {
		if match(e) {
			delete(t.entries, e)
		}
	}
}

func (t *mountTable) list() []mountEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]mountEntry, 0, len(t.entries))
	for e := range t.entries {
		out = append(out, e)
	}
	return out
}
