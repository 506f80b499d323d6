// Package nfsfs is nasd's go-nfs Handler: the exported directory as a
// confined billy filesystem, export options in /etc/exports terms, and file
// handles that survive restarts and cannot be forged.
//
// A file handle is fsid + a 16-byte identity derived from the file's path +
// a MAC keyed by a secret kept in the state directory (HandleCodec). The
// identity is mapped back to the path with an in-memory index (O(1)); after
// a restart the index is empty and is rebuilt by walking the export on the
// first miss, so handles clients hold keep working. Because the identity is
// the path, renaming a file (or a directory above it) changes its handle:
// clients re-look it up on NFS3ERR_STALE, as with any path-based server.
package nfsfs
