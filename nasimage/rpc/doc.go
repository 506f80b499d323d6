// Package rpc is nasd's front door: it owns the TCP connections of NFS
// clients and speaks ONC RPC itself, in front of github.com/willscott/go-nfs.
//
// It reassembles multi-fragment records and bounds their size, answers the
// portmapper (PMAP v2, RPCBIND v3/v4) on the NFS port and on its own
// listener, answers the whole MOUNT v3 program (MNT with the export's access
// list, DUMP, UMNT, UMNTALL, EXPORT), rejects unknown programs, versions and
// procedures with the right RPC error, checks file handles and read-only
// exports before go-nfs sees a call, and hands the remaining NFSv3 calls to
// go-nfs over a small pool of in-memory connections so that calls of one
// client connection run concurrently (go-nfs serves one call at a time per
// connection, and a kernel client multiplexes everything over one).
//
// One file per protocol procedure: portmap_*.go, rpcbind_*.go, mount_*.go.
package rpc
