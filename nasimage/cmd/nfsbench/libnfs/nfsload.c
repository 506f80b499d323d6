/*
 * nfsload: an NFSv3 load generator on Debian's libnfs (libnfs-dev), a
 * client nasd's project did not write and whose cost is small next to the
 * server's: one TCP connection, DEPTH calls kept in flight with libnfs's
 * async API, one poll loop. nfsbench builds it with gcc and runs it against
 * every server.
 *
 *   nfsload URL CASE DEPTH N
 *
 * URL is nfs://host/export?nfsport=P&mountport=P&version=3. Cases (files are
 * in the export's root):
 *   read      read file "big" sequentially in 1 MiB calls      -> MiB/s
 *   write     write N MiB to "big", UNSTABLE, no COMMIT        -> MiB/s
 *   writec    the same, then COMMIT (fsync)                    -> MiB/s
 *   syncwrite N 64 KiB FILE_SYNC writes to "sync" (O_SYNC)     -> MiB/s
 *   create    create s%06d (0..N-1), write 4 KiB, close        -> files/s
 *   stat      stat s%06d                                       -> files/s
 *   openread  open s%06d, read 4 KiB, close                    -> files/s
 *   unlink    unlink s%06d                                     -> files/s
 *   readdir   list the export's root N times (READDIRPLUS pages,
 *             libnfs's directory cache off)                    -> entries/s
 * It prints "<rate> <unit>" on stdout; any failed call is fatal (exit 1).
 */
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <nfsc/libnfs.h>

#define MiB (1024 * 1024)

static struct nfs_context *nfs;
static const char *mode;
static int depth, total, issued, done, inflight;
static uint64_t size; /* bytes of "big" for read */
static struct nfsfh *bigfh;
static char *buf;

static void die(const char *what, const char *err)
{
	fprintf(stderr, "nfsload %s: %s: %s\n", mode, what, err ? err : "");
	exit(1);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A small-file chain (create/openread) carries its index and handle. */
struct item {
	int i;
	struct nfsfh *fh;
	char path[32];
};

static void issue(void);

static void finished(void)
{
	done++;
	inflight--;
	issue();
}

static void io_cb(int err, struct nfs_context *n, void *data, void *priv)
{
	(void)n;
	(void)priv;
	if (err < 0)
		die("read/write", (char *)data);
	finished();
}

static void close_cb(int err, struct nfs_context *n, void *data, void *priv)
{
	(void)n;
	free(priv);
	if (err < 0)
		die("close", (char *)data);
	finished();
}

static void chain_io_cb(int err, struct nfs_context *n, void *data, void *priv)
{
	struct item *it = priv;
	if (err < 0)
		die("small read/write", (char *)data);
	if (nfs_close_async(n, it->fh, close_cb, it) < 0)
		die("close", nfs_get_error(n));
}

static void opened_cb(int err, struct nfs_context *n, void *data, void *priv)
{
	struct item *it = priv;
	if (err < 0)
		die(it->path, (char *)data);
	it->fh = data;
	int r;
	if (!strcmp(mode, "create"))
		r = nfs_pwrite_async(n, it->fh, 0, 4096, buf, chain_io_cb, it);
	else
		r = nfs_pread_async(n, it->fh, 0, 4096, chain_io_cb, it);
	if (r < 0)
		die("small io", nfs_get_error(n));
}

static void path_cb(int err, struct nfs_context *n, void *data, void *priv)
{
	(void)n;
	free(priv);
	if (err < 0)
		die("stat/unlink", (char *)data);
	finished();
}

static long entries;

static void dir_cb(int err, struct nfs_context *n, void *data, void *priv)
{
	(void)priv;
	if (err < 0)
		die("opendir", (char *)data);
	struct nfsdir *d = data;
	while (nfs_readdir(n, d))
		entries++;
	nfs_closedir(n, d);
	finished();
}

/* issue starts calls until DEPTH are in flight or all are issued. */
static void issue(void)
{
	while (inflight < depth && issued < total) {
		int i = issued++, r = 0;
		inflight++;
		if (!strcmp(mode, "read")) {
			r = nfs_pread_async(nfs, bigfh, (uint64_t)i * MiB, MiB, io_cb, NULL);
		} else if (!strcmp(mode, "write") || !strcmp(mode, "writec")) {
			r = nfs_pwrite_async(nfs, bigfh, (uint64_t)i * MiB, MiB, buf, io_cb, NULL);
		} else if (!strcmp(mode, "syncwrite")) {
			r = nfs_pwrite_async(nfs, bigfh, (uint64_t)i * 65536, 65536, buf, io_cb, NULL);
		} else if (!strcmp(mode, "readdir")) {
			r = nfs_opendir_async(nfs, "/", dir_cb, NULL);
		} else {
			struct item *it = calloc(1, sizeof *it);
			it->i = i;
			snprintf(it->path, sizeof it->path, "/s%06d", i);
			if (!strcmp(mode, "create"))
				r = nfs_create_async(nfs, it->path, O_WRONLY | O_TRUNC, 0644, opened_cb, it);
			else if (!strcmp(mode, "openread"))
				r = nfs_open_async(nfs, it->path, O_RDONLY, opened_cb, it);
			else if (!strcmp(mode, "stat"))
				r = nfs_stat64_async(nfs, it->path, path_cb, it);
			else if (!strcmp(mode, "unlink"))
				r = nfs_unlink_async(nfs, it->path, path_cb, it);
			else
				die("unknown case", mode);
		}
		if (r < 0)
			die("issue", nfs_get_error(nfs));
	}
}

static int committed;

static void commit_cb(int err, struct nfs_context *n, void *data, void *priv)
{
	(void)n;
	(void)priv;
	if (err < 0)
		die("commit", (char *)data);
	committed = 1;
}

static void loop(int *until)
{
	while (!*until) {
		struct pollfd p = {.fd = nfs_get_fd(nfs), .events = nfs_which_events(nfs)};
		if (poll(&p, 1, 1000) < 0)
			die("poll", "");
		if (nfs_service(nfs, p.revents) < 0)
			die("service", nfs_get_error(nfs));
	}
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: nfsload URL CASE DEPTH N\n");
		return 2;
	}
	mode = argv[2];
	depth = atoi(argv[3]);
	total = atoi(argv[4]);
	nfs = nfs_init_context();
	if (!nfs)
		die("init", "");
	struct nfs_url *url = nfs_parse_url_dir(nfs, argv[1]);
	if (!url)
		die("url", nfs_get_error(nfs));
	if (nfs_mount(nfs, url->server, url->path) < 0)
		die("mount", nfs_get_error(nfs));
	buf = malloc(MiB);
	for (int i = 0; i < MiB; i++)
		buf[i] = (char)(i * 7);

	const char *unit = "files/s";
	double scale = 1;
	if (!strcmp(mode, "read")) {
		struct nfs_stat_64 st;
		if (nfs_stat64(nfs, "/big", &st) < 0)
			die("stat big", nfs_get_error(nfs));
		size = st.nfs_size;
		total = (int)(size / MiB);
		if (nfs_open(nfs, "/big", O_RDONLY, &bigfh) < 0)
			die("open big", nfs_get_error(nfs));
		unit = "MiB/s";
	} else if (!strcmp(mode, "write") || !strcmp(mode, "writec")) {
		if (nfs_create(nfs, "/big", O_RDWR | O_TRUNC, 0644, &bigfh) < 0)
			die("create big", nfs_get_error(nfs));
		unit = "MiB/s";
	} else if (!strcmp(mode, "syncwrite")) {
		if (nfs_create(nfs, "/sync", O_RDWR | O_TRUNC | O_SYNC, 0644, &bigfh) < 0)
			die("create sync", nfs_get_error(nfs));
		unit = "MiB/s";
		scale = 1.0 / 16;
	} else if (!strcmp(mode, "readdir")) {
		nfs_set_dircache(nfs, 0); /* every listing reaches the server */
		unit = "entries/s";
	}

	double start = now();
	issue();
	int all = 0;
	while (done < total) {
		struct pollfd p = {.fd = nfs_get_fd(nfs), .events = nfs_which_events(nfs)};
		if (poll(&p, 1, 1000) < 0)
			die("poll", "");
		if (nfs_service(nfs, p.revents) < 0)
			die("service", nfs_get_error(nfs));
	}
	if (!strcmp(mode, "writec")) {
		if (nfs_fsync_async(nfs, bigfh, commit_cb, NULL) < 0)
			die("commit", nfs_get_error(nfs));
		loop(&committed);
	}
	double secs = now() - start;
	(void)all;
	if (!strcmp(mode, "readdir"))
		scale = (double)entries / total;
	printf("%.1f %s\n", total * scale / secs, unit);
	if (bigfh)
		nfs_close(nfs, bigfh);
	nfs_umount(nfs);
	nfs_destroy_context(nfs);
	return 0;
}
