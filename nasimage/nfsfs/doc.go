// Package nfsfs is nasd's go-nfs Handler: the exported directory as a
// confined billy filesystem, export options in /etc/exports terms, and file
// handles that survive restarts and cannot be forged.
//
// A file handle is fsid + the file's 16-byte identity (package fileid: it
// follows the file through renames, not its path) + a MAC keyed by the
// handle secret (HandleCodec). The identity is mapped back to a path with
// an in-memory index (O(1)); after a restart the index is empty and is
// rebuilt by walking the export on the first miss, so handles clients hold
// keep working.
//
// The NFS fileid attribute (GETATTR, READDIR(PLUS) entries, post-op and
// wcc attributes) is the identity's fileid.ID.Number, not the inode
// number: go-nfs takes it from FileInfo.Sys(), which exportFS's Lstat,
// Stat and ReadDir fill (attrs). A new pod's export has other inodes, and
// the Linux client rejects a handle whose fileid changed.
package nfsfs
