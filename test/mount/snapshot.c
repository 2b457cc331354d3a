/*
 * Copy-on-open snapshots (G2, G3, G5; acceptance scenarios S4, S5, S7: see
 * doc/guarantees.md).
 *
 * A regular file opened O_RDONLY through MNT is a snapshot of the file at
 * open(): read, pread, splice, mmap MAP_PRIVATE and fstat's size show the
 * open-time version while others change the file through MNT. Writers
 * (O_WRONLY, O_RDWR) see live data with POSIX semantics. Every test runs on
 * a fresh mount (or a fresh raw directory for the twin):
 *
 *   S4 (one generic run, one table row per modification): a file of
 *      1 MiB + 123 bytes is created in SRC; readers R1 (read()) and R2
 *      (splice) open it through MNT; a separate writer changes it (pwrite,
 *      truncate shorter, extend, punch, zero range, O_TRUNC rewrite, rename
 *      over, unlink, truncate(2) by path, copy_file_range into, O_APPEND
 *      write, pwrite by a writer opened before the readers); R1 and R2 must
 *      still give the original bytes, fstat its size, user.stablefs.xxh3
 *      its digest; a reader opened afterwards gets the new bytes, size and
 *      digest. SRC holds no hidden files (checked while preserved bytes
 *      exist, and after). Raw twin: the same run on a plain ext4 directory
 *      must show R1 seeing the change, or the check would prove nothing.
 *   S5: a writer's read/pread/splice/mmap see its own writes; O_APPEND
 *      writes land at the true end and SEEK_END gives the true size, while
 *      a snapshot of an older version is open.
 *   mmap MAP_PRIVATE of a snapshot fd, mapped before and after a change
 *      (also faulting beyond the live size after a truncate).
 *   copy_file_range from a snapshot copies the snapshot's bytes.
 *   S7 (G3): SRC changed directly under a live snapshot: reads of ranges
 *      not preserved fail with EIO, never new bytes; preserved ones still
 *      read; a fresh reader gets the new content. Detection compares
 *      (mtime, size) with what the daemon last saw, so a change of SRC that
 *      keeps both identical (same size, mtime restored) is NOT detectable;
 *      that limit is by design and deliberately not tested.
 *      -o oob=ignore trusts SRC: the same sequence gives no EIO (the
 *      snapshot then reads whatever SRC holds in unpreserved ranges).
 *   No false out-of-band detection: writes through MNT to one half of a
 *      file never make snapshot reads of the other half fail; the digest
 *      of the live file never fails while another fd truncates it (default
 *      mount and snapshot=off).
 *   Preservation economy: a 100-byte overwrite preserves a page or two,
 *      not the file; everything is released once all fds are closed.
 *   -o max_preserve=64K: a 1 MiB overwrite under a reader succeeds, the
 *      reader's snapshot is invalidated (EIO) and counted.
 *   -o snapshot=off: plain passthrough semantics (a reader sees a write),
 *      but stable splice (G1) still holds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "mount_util.h"
#include "test_util.h"

#define KiB 1024L
#define MiB (1024L * KiB)
#define PAGE 4096L

#define S4_SIZE (1 * MiB + 123)
#define XATTR_DIGEST "user.stablefs.xxh3"
#define MAX_FDS 16

/* ------------------------------------------------------------------ */
/* Patterns and digests                                               */
/* ------------------------------------------------------------------ */

/* Never zero; seed s and s+1 differ at every position. */
static unsigned char pat(long pos, int seed)
{
	return (unsigned char)(((pos + seed * 37L) % 251) + 1);
}

static void fill(unsigned char *buf, long pos, long len, int seed)
{
	for (long i = 0; i < len; i++)
		buf[i] = pat(pos + i, seed);
}

static void xxh3_hex(const void *buf, size_t len, char hex[33])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(buf, len));
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", c.digest[i]);
}

/* user.stablefs.xxh3 of an open file (through /proc/self/fd/N). */
static int fd_digest(int fd, char hex[33])
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = getxattr(path, XATTR_DIGEST, hex, 32);
	if (n != 32) {
		fprintf(stderr, "getxattr(%s, %s): %zd: %s\n", path, XATTR_DIGEST,
			n, n < 0 ? strerror(errno) : "wrong length");
		hex[0] = '\0';
		return -1;
	}
	hex[32] = '\0';
	return 0;
}

static void assert_fd_digest(int fd, const void *buf, size_t len, const char *what)
{
	char want[33], got[33];

	xxh3_hex(buf, len, want);
	assert_int_equal(fd_digest(fd, got), 0);
	if (strcmp(want, got))
		fail_msg("%s: user.stablefs.xxh3 %s, expected %s (XXH3-128 of "
			 "%zu bytes)", what, got, want, len);
}

/* ------------------------------------------------------------------ */
/* I/O helpers (report on stderr, return -1 keeping errno)            */
/* ------------------------------------------------------------------ */

/* read() from the current offset to EOF, at most cap bytes; -1 on error. */
static long read_to_eof(int fd, unsigned char *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "read: %s\n", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (long)got;
}

/* The whole file through splice(2) into a pipe, drained as it fills. */
static long splice_to_eof(int fd, unsigned char *buf, size_t cap)
{
	int p[2];
	loff_t off = 0;
	size_t got = 0;
	long rc = -1;

	if (pipe2(p, O_CLOEXEC)) {
		fprintf(stderr, "pipe2: %s\n", strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t n = splice(fd, &off, p[1], NULL, 64 * KiB, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "splice: %s\n", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		while (n > 0) {
			ssize_t m;

			if (got >= cap) {
				fprintf(stderr, "splice: more than %zu bytes\n", cap);
				goto out;
			}
			m = read(p[0], buf + got, cap - got < (size_t)n ? cap - got : (size_t)n);
			if (m < 0 && errno == EINTR)
				continue;
			if (m <= 0) {
				fprintf(stderr, "read(pipe): %s\n", strerror(errno));
				goto out;
			}
			got += (size_t)m;
			n -= m;
		}
	}
	rc = (long)got;
out:
	close(p[0]);
	close(p[1]);
	return rc;
}

/* Whole file of path (raw, not through the mount). */
static long slurp(const char *path, unsigned char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long n;

	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = read_to_eof(fd, buf, cap);
	close(fd);
	return n;
}

static int create_file(const char *path, const unsigned char *buf, size_t len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc;

	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		return -1;
	}
	rc = pwrite_all(fd, buf, len, 0);
	close(fd);
	return rc;
}

/* Index of the first differing byte, or -1. */
static long first_diff(const unsigned char *a, const unsigned char *b, long len)
{
	for (long i = 0; i < len; i++)
		if (a[i] != b[i])
			return i;
	return -1;
}

static void assert_same(const unsigned char *got, long got_len,
			const unsigned char *want, long want_len, const char *what)
{
	long d;

	if (got_len != want_len)
		fail_msg("%s: %ld bytes, expected %ld", what, got_len, want_len);
	d = first_diff(got, want, want_len);
	if (d >= 0)
		fail_msg("%s: byte %ld is 0x%02x, expected 0x%02x", what, d,
			 got[d], want[d]);
}

/* ------------------------------------------------------------------ */
/* Stats                                                              */
/* ------------------------------------------------------------------ */

/* One counter of the mount's stats, or -1 (and why on stderr). */
static long long stat_get(const char *mnt, const char *key)
{
	char buf[8192];
	long long v;

	if (read_mount_stats(mnt, buf, sizeof(buf)) < 0) {
		fprintf(stderr, "getxattr(%s, %s): %s\n", mnt, STATS_XATTR,
			strerror(errno));
		return -1;
	}
	v = stats_value(buf, key);
	if (v < 0)
		fprintf(stderr, "stats have no %s: %s\n", key, buf);
	return v;
}

/*
 * Releases are asynchronous (the kernel sends RELEASE after close returns):
 * poll until no snapshot, preserved byte or store file is left.
 */
static void assert_all_released(const char *mnt)
{
	long long live = -1, bytes = -1, files = -1;
	int waited;

	for (waited = 0; waited <= 3000; waited += 20) {
		live = stat_get(mnt, "snapshots_live");
		bytes = stat_get(mnt, "bytes_preserved");
		files = stat_get(mnt, "store_files");
		if (live == 0 && bytes == 0 && files == 0)
			break;
		sleep_ms(20);
	}
	if (waited > 500)
		printf("# note: releases took %d ms to show in the stats\n", waited);
	if (live || bytes || files) {
		print_mount_stats(mnt);
		fail_msg("after closing every fd: snapshots_live %lld, "
			 "bytes_preserved %lld, store_files %lld (expected 0)",
			 live, bytes, files);
	}
}

/* SRC holds exactly the names given (no store or temporary files). */
static void assert_dir_holds(const char *dir, const char *const *names, int n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		bool known = false;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		for (int i = 0; i < n; i++)
			known |= !strcmp(e->d_name, names[i]);
		if (!known) {
			closedir(d);
			fail_msg("unexpected entry in SRC %s: %s", dir, e->d_name);
		}
		found++;
	}
	closedir(d);
	if (found != n)
		fail_msg("SRC %s holds %d entries, expected %d", dir, found, n);
}

/* ------------------------------------------------------------------ */
/* Fixtures                                                           */
/* ------------------------------------------------------------------ */

/* What a test case is run on. */
struct tcase {
	const char *name;
	int op;			/* S4 row (enum s4_op), or 0 */
	const char *opts;	/* mount options, or NULL */
	bool raw;		/* a plain ext4 directory, no mount */
};

struct fixture {
	const struct tcase *tc;
	struct test_mount m;
	bool is_mount;
	char src[PATH_MAX];	/* where files are created directly */
	char dir[PATH_MAX];	/* where the test works: MNT or the raw dir */
	int fds[MAX_FDS];	/* closed by the teardown (after failures) */
	void *maps[4];
	size_t map_len[4];
};

static int setup(void **state)
{
	const struct tcase *tc = *state;
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f)
		return -1;
	f->tc = tc;
	for (int i = 0; i < MAX_FDS; i++)
		f->fds[i] = -1;
	if (tc->raw) {
		const char *tmp = getenv("TMPDIR");
		struct statfs s;

		snprintf(f->dir, sizeof(f->dir), "%s/sfs-snapraw-XXXXXX",
			 tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(f->dir)) {
			f->dir[0] = '\0';
			return -1;
		}
		snprintf(f->src, sizeof(f->src), "%s", f->dir);
		if (statfs(f->dir, &s) == 0 && s.f_type != EXT4_MAGIC)
			printf("# note: raw dir %s is not ext4\n", f->dir);
		return 0;
	}
	if (test_mount_prepare(&f->m, "snap"))
		return -1;
	f->is_mount = true;
	if (test_mount_start(&f->m, tc->opts))
		return -1;
	snprintf(f->src, sizeof(f->src), "%s", f->m.src);
	snprintf(f->dir, sizeof(f->dir), "%s", f->m.mnt);
	return 0;
}

/* Runs after failures too: close what the test left open, always unmount. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	for (int i = 0; i < 4; i++)
		if (f->maps[i])
			munmap(f->maps[i], f->map_len[i]);
	for (int i = 0; i < MAX_FDS; i++)
		if (f->fds[i] >= 0)
			close(f->fds[i]);
	if (f->is_mount) {
		if (test_mount_stop(&f->m)) {
			fprintf(stderr, "stablefs did not unmount/exit cleanly\n");
			rc = -1;
		}
		if (test_is_stablefs_mount(f->m.mnt)) {
			fprintf(stderr, "leaked mount %s\n", f->m.mnt);
			rc = -1;
		}
		test_mount_destroy(&f->m);
	} else if (f->dir[0]) {
		test_rm_rf(f->dir);
	}
	free(f);
	*state = NULL;
	return rc;
}

/* open() through the test dir, remembered for the teardown; -1: errno. */
static int open_at(struct fixture *f, const char *name, int flags)
{
	char path[PATH_MAX];
	int fd;

	path_in(path, f->dir, name);
	fd = open(path, flags | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	for (int i = 0; i < MAX_FDS; i++) {
		if (f->fds[i] < 0) {
			f->fds[i] = fd;
			return fd;
		}
	}
	fail_msg("too many fds");
	return -1;
}

static int must_open(struct fixture *f, const char *name, int flags)
{
	int fd = open_at(f, name, flags);

	if (fd < 0)
		fail_msg("open %s/%s (flags 0%o): %s", f->dir, name, flags,
			 strerror(errno));
	return fd;
}

static void close_tracked(struct fixture *f, int fd)
{
	for (int i = 0; i < MAX_FDS; i++) {
		if (f->fds[i] == fd) {
			f->fds[i] = -1;
			close(fd);
			return;
		}
	}
	close(fd);
}

static void close_all(struct fixture *f)
{
	for (int i = 0; i < MAX_FDS; i++) {
		if (f->fds[i] >= 0)
			close(f->fds[i]);
		f->fds[i] = -1;
	}
}

static void *map_tracked(struct fixture *f, int fd, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);

	if (p == MAP_FAILED)
		fail_msg("mmap MAP_PRIVATE of %zu bytes: %s", len, strerror(errno));
	for (int i = 0; i < 4; i++) {
		if (!f->maps[i]) {
			f->maps[i] = p;
			f->map_len[i] = len;
			return p;
		}
	}
	fail_msg("too many maps");
	return NULL;
}

static void unmap_all(struct fixture *f)
{
	for (int i = 0; i < 4; i++) {
		if (f->maps[i])
			munmap(f->maps[i], f->map_len[i]);
		f->maps[i] = NULL;
	}
}


static off_t fd_size(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_size;
}

/* A file of len bytes of pattern seed, created directly in SRC. */
static unsigned char *make_src_file(struct fixture *f, const char *name,
				    long len, int seed)
{
	unsigned char *buf = malloc((size_t)len);
	char path[PATH_MAX];

	assert_non_null(buf);
	fill(buf, 0, len, seed);
	path_in(path, f->src, name);
	assert_int_equal(create_file(path, buf, (size_t)len), 0);
	return buf;
}

/* ------------------------------------------------------------------ */
/* S4: snapshot readers across every modification                     */
/* ------------------------------------------------------------------ */

enum s4_op {
	S4_PWRITE = 1, S4_TRUNC_SHORTER, S4_EXTEND, S4_PUNCH, S4_ZERO_RANGE,
	S4_OTRUNC_REWRITE, S4_RENAME_OVER, S4_UNLINK, S4_PATH_TRUNCATE,
	S4_COPY_RANGE_INTO, S4_APPEND, S4_EARLY_WRITER,
};

/* The file's new content (len -1: the name is gone). */
struct content {
	unsigned char *buf;
	long len;
};

/*
 * Apply op through f->dir to "data" (orig: its S4_SIZE bytes) with a writer
 * opened separately; return the content a later reader must see.
 */
static struct content s4_apply(struct fixture *f, enum s4_op op,
			       const unsigned char *orig, int early_w)
{
	struct content c = { malloc(4 * MiB), S4_SIZE };
	char path[PATH_MAX], other[PATH_MAX];
	int w = -1;

	assert_non_null(c.buf);
	memcpy(c.buf, orig, S4_SIZE);
	path_in(path, f->dir, "data");
	path_in(other, f->dir, "other");
	if (op == S4_EARLY_WRITER)
		w = early_w;
	else if (op != S4_OTRUNC_REWRITE && op != S4_RENAME_OVER &&
		 op != S4_UNLINK && op != S4_PATH_TRUNCATE && op != S4_APPEND)
		w = must_open(f, "data", O_RDWR);
	switch (op) {
	case S4_EARLY_WRITER:	/* the writer was open before the readers */
		fill(c.buf + 4097, 4097, 900000, 1);
		assert_int_equal(pwrite_all(w, c.buf + 4097, 900000, 4097), 0);
		break;
	case S4_PATH_TRUNCATE:	/* SETATTR by path, no file handle */
		if (truncate(path, 200003))
			fail_msg("truncate(2): %s", strerror(errno));
		c.len = 200003;
		break;
	case S4_APPEND:
		w = must_open(f, "data", O_WRONLY | O_APPEND);
		fill(c.buf + S4_SIZE, S4_SIZE, 70001, 1);
		assert_int_equal(write_all(w, c.buf + S4_SIZE, 70001), 0);
		c.len = S4_SIZE + 70001;
		break;
	case S4_COPY_RANGE_INTO: {	/* from another file of the mount */
		int src = must_open(f, "other", O_RDWR | O_CREAT | O_EXCL);
		loff_t in = 0, out = 250001;
		ssize_t n;

		fill(c.buf + 250001, 0, 300000, 1);
		assert_int_equal(pwrite_all(src, c.buf + 250001, 300000, 0), 0);
		n = copy_file_range(src, &in, w, &out, 300000, 0);
		if (n != 300000)
			fail_msg("copy_file_range: %zd: %s", n, strerror(errno));
		close_tracked(f, src);
		break;
	}
	case S4_PWRITE:		/* unaligned, 200 000 bytes in the middle */
		fill(c.buf + 300001, 300001, 200000, 1);
		assert_int_equal(pwrite_all(w, c.buf + 300001, 200000, 300001), 0);
		break;
	case S4_TRUNC_SHORTER:
		assert_int_equal(ftruncate(w, 300001), 0);
		c.len = 300001;
		break;
	case S4_EXTEND:		/* grow, then write past the old end */
		assert_int_equal(ftruncate(w, 2 * MiB + 5), 0);
		memset(c.buf + S4_SIZE, 0, 2 * MiB + 5 - S4_SIZE);
		fill(c.buf + 3 * MiB / 2 + 7, 3 * MiB / 2 + 7, 10000, 1);
		assert_int_equal(pwrite_all(w, c.buf + 3 * MiB / 2 + 7, 10000,
					    3 * MiB / 2 + 7), 0);
		c.len = 2 * MiB + 5;
		break;
	case S4_PUNCH:
		if (fallocate(w, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      100003, 500000))
			fail_msg("punch hole: %s", strerror(errno));
		memset(c.buf + 100003, 0, 500000);
		break;
	case S4_ZERO_RANGE:
		if (fallocate(w, FALLOC_FL_ZERO_RANGE, 100003, 500000))
			fail_msg("zero range: %s", strerror(errno));
		memset(c.buf + 100003, 0, 500000);
		break;
	case S4_OTRUNC_REWRITE:
		w = must_open(f, "data", O_WRONLY | O_TRUNC);
		c.len = 700001;
		fill(c.buf, 0, c.len, 1);
		assert_int_equal(write_all(w, c.buf, (size_t)c.len), 0);
		break;
	case S4_RENAME_OVER:
		c.len = 500009;
		fill(c.buf, 0, c.len, 1);
		w = must_open(f, "other", O_RDWR | O_CREAT | O_EXCL);
		assert_int_equal(pwrite_all(w, c.buf, (size_t)c.len, 0), 0);
		close_tracked(f, w);
		w = -1;
		if (rename(other, path))
			fail_msg("rename over: %s", strerror(errno));
		break;
	case S4_UNLINK:
		if (unlink(path))
			fail_msg("unlink: %s", strerror(errno));
		c.len = -1;
		break;
	}
	/* The writer stays open while the readers read (a live node exists). */
	return c;
}

static void run_s4(struct fixture *f)
{
	enum s4_op op = (enum s4_op)f->tc->op;
	unsigned char *orig = make_src_file(f, "data", S4_SIZE, 0);
	unsigned char *got = malloc(4 * MiB);
	const char *names[] = { "data", "other" };
	int n_names = op == S4_COPY_RANGE_INTO ? 2 : 1;
	struct content c;
	long n;
	int r1, r2, r3, early_w = -1;

	assert_non_null(got);
	if (op == S4_EARLY_WRITER)
		early_w = must_open(f, "data", O_RDWR);
	r1 = must_open(f, "data", O_RDONLY);
	r2 = must_open(f, "data", O_RDONLY);
	c = s4_apply(f, op, orig, early_w);

	if (!f->is_mount) {
		/* Raw twin: the reader sees the change, so the check has teeth. */
		n = read_to_eof(r1, got, 4 * MiB);
		assert_true(n >= 0);
		printf("# raw ext4 %s: the reader got %ld bytes, %s\n", f->tc->name, n,
		       n == S4_SIZE && first_diff(got, orig, n) < 0 ?
		       "the original" : "changed content");
		assert_same(got, n, c.buf, c.len, "raw reader (sees the change)");
		goto out;
	}

	/* While snapshots hold preserved bytes, SRC shows nothing new. */
	assert_dir_holds(f->src, names, c.len < 0 ? 0 : n_names);

	n = read_to_eof(r1, got, 4 * MiB);
	assert_true(n >= 0);
	assert_same(got, n, orig, S4_SIZE, "R1 read() after the change");
	assert_int_equal(fd_size(r1), S4_SIZE);

	n = splice_to_eof(r2, got, 4 * MiB);
	assert_true(n >= 0);
	assert_same(got, n, orig, S4_SIZE, "R2 splice after the change");
	assert_int_equal(fd_size(r2), S4_SIZE);

	assert_fd_digest(r1, orig, S4_SIZE, "R1 (snapshot)");
	assert_fd_digest(r2, orig, S4_SIZE, "R2 (snapshot)");

	r3 = open_at(f, "data", O_RDONLY);
	if (c.len < 0) {
		assert_int_equal(r3, -1);
		assert_int_equal(errno, ENOENT);
	} else {
		if (r3 < 0)
			fail_msg("reader after the change: %s", strerror(errno));
		assert_int_equal(fd_size(r3), c.len);
		n = read_to_eof(r3, got, 4 * MiB);
		assert_same(got, n, c.buf, c.len, "reader opened after the change");
		n = splice_to_eof(r3, got, 4 * MiB);
		assert_same(got, n, c.buf, c.len, "splice of a reader opened after");
		assert_fd_digest(r3, c.buf, (size_t)c.len, "reader opened after");
	}

	/* R1 again, now that a newer snapshot exists too: still the old one. */
	assert_int_equal(lseek(r1, 0, SEEK_SET), 0);
	n = read_to_eof(r1, got, 4 * MiB);
	assert_same(got, n, orig, S4_SIZE, "R1 re-read after a newer reader");

	close_all(f);
	assert_all_released(f->dir);
	assert_dir_holds(f->src, names, c.len < 0 ? 0 : n_names);
out:
	free(c.buf);
	free(got);
	free(orig);
}

static void test_s4(void **state)
{
	run_s4(*state);
}

/* ------------------------------------------------------------------ */
/* S5: writer semantics while snapshot readers exist                  */
/* ------------------------------------------------------------------ */

#define S5_SIZE (256 * KiB + 77)

static void assert_writer_sees(int w, const unsigned char *model, long len,
			       const char *when)
{
	unsigned char *got = malloc((size_t)len + MiB);
	char what[160];
	void *map;
	long n;

	assert_non_null(got);
	snprintf(what, sizeof(what), "writer fstat size %s", when);
	if (fd_size(w) != len)
		fail_msg("%s: %lld, expected %ld", what, (long long)fd_size(w), len);

	assert_int_equal(lseek(w, 0, SEEK_SET), 0);
	n = read_to_eof(w, got, (size_t)len + MiB);
	snprintf(what, sizeof(what), "writer read() %s", when);
	assert_same(got, n, model, len, what);

	memset(got, 0, (size_t)len);
	n = pread(w, got, (size_t)len + MiB, 0);
	snprintf(what, sizeof(what), "writer pread %s", when);
	assert_same(got, n, model, len, what);

	n = splice_to_eof(w, got, (size_t)len + MiB);
	snprintf(what, sizeof(what), "writer splice %s", when);
	assert_same(got, n, model, len, what);

	map = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, w, 0);
	if (map == MAP_FAILED)
		fail_msg("writer mmap MAP_PRIVATE %s: %s", when, strerror(errno));
	snprintf(what, sizeof(what), "writer mmap MAP_PRIVATE %s", when);
	memcpy(got, map, (size_t)len);
	munmap(map, (size_t)len);
	assert_same(got, len, model, len, what);
	free(got);
}

static void test_s5_writer(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = make_src_file(f, "data", S5_SIZE, 0);
	unsigned char *model = calloc(1, 2 * MiB), *got = malloc(2 * MiB);
	unsigned char chunk[16 * KiB];
	long len = S5_SIZE, n;
	int r, w, a;

	assert_non_null(model);
	assert_non_null(got);
	memcpy(model, orig, S5_SIZE);
	r = must_open(f, "data", O_RDONLY);	/* the older version, held */
	w = must_open(f, "data", O_RDWR);

	/* Read-your-writes on every path. */
	fill(model + 10007, 10007, 5000, 1);
	assert_int_equal(pwrite_all(w, model + 10007, 5000, 10007), 0);
	assert_writer_sees(w, model, len, "after its pwrite");

	/* O_APPEND: at the true end, also after another fd moved it. */
	a = must_open(f, "data", O_WRONLY | O_APPEND);
	fill(chunk, len, 3000, 2);
	assert_int_equal(write_all(a, chunk, 3000), 0);
	memcpy(model + len, chunk, 3000);
	len += 3000;
	assert_int_equal(lseek(a, 0, SEEK_CUR), len);

	fill(model + len + 10000, len + 10000, 2000, 3);	/* gap stays 0 */
	assert_int_equal(pwrite_all(w, model + len + 10000, 2000, len + 10000), 0);
	len += 12000;
	fill(chunk, len, 1234, 4);
	assert_int_equal(write_all(a, chunk, 1234), 0);
	memcpy(model + len, chunk, 1234);
	len += 1234;
	assert_int_equal(lseek(w, 0, SEEK_END), len);
	assert_int_equal(lseek(a, 0, SEEK_END), len);
	assert_writer_sees(w, model, len, "after appends around an extension");

	/* Shrink, then append: lands at the new end, not the old one. */
	assert_int_equal(ftruncate(w, 100000), 0);
	memset(model + 100000, 0, (size_t)(len - 100000));
	len = 100000;
	fill(chunk, len, 999, 5);
	assert_int_equal(write_all(a, chunk, 999), 0);
	memcpy(model + len, chunk, 999);
	len += 999;
	assert_int_equal(lseek(w, 0, SEEK_END), len);
	assert_writer_sees(w, model, len, "after truncate + append");
	assert_fd_digest(w, model, (size_t)len, "writer fd (live content)");

	/* The final content on SRC itself. */
	{
		char p[PATH_MAX];

		path_in(p, f->src, "data");
		n = slurp(p, got, 2 * MiB);
		assert_same(got, n, model, len, "SRC after the appends");
	}

	/* The snapshot opened first still shows the original. */
	assert_int_equal(fd_size(r), S5_SIZE);
	n = read_to_eof(r, got, 2 * MiB);
	assert_same(got, n, orig, S5_SIZE, "snapshot reader after the writes");
	assert_fd_digest(r, orig, S5_SIZE, "snapshot reader");

	/* A reader opened now sees it all. */
	r = must_open(f, "data", O_RDONLY);
	n = splice_to_eof(r, got, 2 * MiB);
	assert_same(got, n, model, len, "new reader's splice");
	assert_fd_digest(r, model, (size_t)len, "new reader");

	close_all(f);
	assert_all_released(f->dir);
	{
		const char *names[] = { "data" };

		assert_dir_holds(f->src, names, 1);
	}
	free(model);
	free(got);
	free(orig);
}

/* ------------------------------------------------------------------ */
/* mmap MAP_PRIVATE of a snapshot                                     */
/* ------------------------------------------------------------------ */

static void test_snapshot_mmap(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = make_src_file(f, "data", S4_SIZE, 0);
	unsigned char *fresh = malloc(S4_SIZE), *got = malloc(2 * MiB);
	unsigned char *before, *after;
	long n;
	int r, w;

	assert_non_null(fresh);
	assert_non_null(got);
	r = must_open(f, "data", O_RDONLY);
	before = map_tracked(f, r, S4_SIZE);	/* mapped, not touched yet */

	w = must_open(f, "data", O_RDWR);
	fill(fresh, 0, S4_SIZE, 1);
	assert_int_equal(pwrite_all(w, fresh, S4_SIZE, 0), 0);
	assert_int_equal(ftruncate(w, 300001), 0);

	assert_int_equal(fd_size(r), S4_SIZE);
	after = map_tracked(f, r, S4_SIZE);
	/* Faults beyond the live size must work: the snapshot's size holds. */
	memcpy(got, before, S4_SIZE);
	assert_same(got, S4_SIZE, orig, S4_SIZE, "mapping made before the change");
	memcpy(got, after, S4_SIZE);
	assert_same(got, S4_SIZE, orig, S4_SIZE, "mapping made after the change");

	/* A reader opened after the change maps the new content. */
	{
		int r2 = must_open(f, "data", O_RDONLY);
		unsigned char *m2;

		assert_int_equal(fd_size(r2), 300001);
		m2 = map_tracked(f, r2, 300001);
		memcpy(got, m2, 300001);
		assert_same(got, 300001, fresh, 300001, "new reader's mapping");
	}
	/* A MAP_PRIVATE mapping keeps the snapshot after close(). */
	close_all(f);
	memcpy(got, after, S4_SIZE);
	assert_same(got, S4_SIZE, orig, S4_SIZE, "mapping after close()");
	n = stat_get(f->dir, "snapshots_live");
	assert_true(n >= 1);
	unmap_all(f);
	assert_all_released(f->dir);
	free(fresh);
	free(got);
	free(orig);
}

/*
 * copy_file_range(2) with a snapshot as the source (G2 names it): the copy
 * must hold the snapshot's bytes, not the live file's. Both files are in
 * MNT, so the kernel hands the copy to the daemon (FUSE_COPY_FILE_RANGE).
 */
static void test_snapshot_copy_range_source(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = make_src_file(f, "data", S4_SIZE, 0);
	unsigned char *fresh = malloc(S4_SIZE), *got = malloc(2 * MiB);
	loff_t in = 0, out = 0;
	int r, w, c;
	long n;

	assert_non_null(fresh);
	assert_non_null(got);
	r = must_open(f, "data", O_RDONLY);
	w = must_open(f, "data", O_RDWR);
	fill(fresh, 0, S4_SIZE, 1);
	assert_int_equal(pwrite_all(w, fresh, S4_SIZE, 0), 0);
	c = must_open(f, "copy", O_RDWR | O_CREAT | O_EXCL);
	while (in < S4_SIZE) {
		ssize_t k = copy_file_range(r, &in, c, &out, S4_SIZE - in, 0);

		if (k <= 0)
			fail_msg("copy_file_range from the snapshot at %lld: %zd: %s",
				 (long long)in, k, k < 0 ? strerror(errno) : "EOF");
	}
	n = pread(c, got, 2 * MiB, 0);
	if (n == S4_SIZE && !memcmp(got, fresh, S4_SIZE))
		fail_msg("copy_file_range from a snapshot copied the LIVE file's "
			 "bytes, not the snapshot's");
	assert_same(got, n, orig, S4_SIZE, "copy_file_range from a snapshot");
	close_all(f);
	assert_all_released(f->dir);
	free(fresh);
	free(got);
	free(orig);
}

/* ------------------------------------------------------------------ */
/* S7: out-of-band changes of SRC                                     */
/* ------------------------------------------------------------------ */

#define OOB_SIZE (1 * MiB)
#define OOB_OFF (512 * KiB)
#define OOB_PART (8 * PAGE)	/* 100 bytes preserved in this page */

/*
 * Reader R opens; a writer through MNT overwrites page 0 (so [0, 4096) gets
 * preserved for R) and 100 bytes at OOB_PART + 10 (a partial page); then SRC is changed directly: 4 KiB at
 * OOB_OFF rewritten and 4 KiB appended (the size changes, so the change is
 * detectable even if the mtime tick were too coarse). Returns R.
 * POSIX_FADV_RANDOM: reads are sent as asked, without readahead, so a read
 * of the preserved page does not drag unpreserved ones into its request.
 */
static int oob_prepare(struct fixture *f, unsigned char **orig_out,
		       unsigned char **now_out)
{
	unsigned char *orig = make_src_file(f, "data", OOB_SIZE, 0);
	unsigned char *now = malloc(OOB_SIZE + PAGE);
	char path[PATH_MAX];
	int r, w, raw;

	assert_non_null(now);
	memcpy(now, orig, OOB_SIZE);
	fill(now, 0, PAGE, 1);
	fill(now + OOB_PART + 10, OOB_PART + 10, 100, 1);
	r = must_open(f, "data", O_RDONLY);
	assert_int_equal(posix_fadvise(r, 0, 0, POSIX_FADV_RANDOM), 0);
	w = must_open(f, "data", O_RDWR);
	assert_int_equal(pwrite_all(w, now, PAGE, 0), 0);
	assert_int_equal(pwrite_all(w, now + OOB_PART + 10, 100, OOB_PART + 10), 0);
	close_tracked(f, w);

	fill(now + OOB_OFF, OOB_OFF, PAGE, 2);
	fill(now + OOB_SIZE, OOB_SIZE, PAGE, 2);
	path_in(path, f->src, "data");
	raw = open(path, O_RDWR | O_CLOEXEC);
	assert_true(raw >= 0);
	assert_int_equal(pwrite_all(raw, now + OOB_OFF, PAGE, OOB_OFF), 0);
	assert_int_equal(pwrite_all(raw, now + OOB_SIZE, PAGE, OOB_SIZE), 0);
	close(raw);
	*orig_out = orig;
	*now_out = now;
	return r;
}

static void test_s7_oob_detect(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig, *now, *got = malloc(2 * MiB);
	long long oob, eio;
	ssize_t n;
	int r;

	assert_non_null(got);
	r = oob_prepare(f, &orig, &now);

	/* The changed range was never preserved: EIO, never new bytes. */
	errno = 0;
	n = pread(r, got, PAGE, OOB_OFF);
	if (n >= 0)
		fail_msg("snapshot read of a range changed in SRC: %zd bytes "
			 "(%s), expected EIO", n,
			 n == PAGE && !memcmp(got, now + OOB_OFF, PAGE) ?
			 "the NEW bytes: mixed versions" : "not EIO");
	assert_int_equal(errno, EIO);

	/* Unchanged, unpreserved: EIO or the (identical) old bytes. */
	n = pread(r, got, PAGE, 800 * KiB);
	if (n >= 0)
		assert_same(got, n, orig + 800 * KiB, PAGE, "unchanged range");
	else
		assert_int_equal(errno, EIO);
	printf("# unchanged unpreserved range after the OOB change: %s\n",
	       n >= 0 ? "read" : "EIO");

	/* Preserved before the change: still reads, the original bytes. */
	n = pread(r, got, PAGE, 0);
	if (n < 0)
		fail_msg("snapshot read of its preserved page: %s", strerror(errno));
	assert_same(got, n, orig, PAGE, "preserved page after the OOB change");

	/*
	 * A page of which only 100 bytes were overwritten through MNT: the
	 * kernel reads whole pages, so this read needs bytes that were never
	 * overwritten. EIO or the old bytes are both within G3; mixed never.
	 */
	n = pread(r, got, PAGE, OOB_PART);
	if (n >= 0)
		assert_same(got, n, orig + OOB_PART, PAGE, "partly preserved page");
	else
		assert_int_equal(errno, EIO);
	printf("# page with 100 preserved bytes after the OOB change: %s\n",
	       n >= 0 ? "read (old bytes)" : "EIO");

	oob = stat_get(f->dir, "oob_changes");
	eio = stat_get(f->dir, "eio_reads");
	if (oob < 1 || eio < 1) {
		print_mount_stats(f->dir);
		fail_msg("stats: oob_changes %lld, eio_reads %lld (expected >= 1)",
			 oob, eio);
	}

	/* A fresh reader gets the new content. */
	r = must_open(f, "data", O_RDONLY);
	assert_int_equal(fd_size(r), OOB_SIZE + PAGE);
	n = read_to_eof(r, got, 2 * MiB);
	assert_same(got, n, now, OOB_SIZE + PAGE, "fresh reader after the OOB change");
	assert_fd_digest(r, now, OOB_SIZE + PAGE, "fresh reader after OOB");

	close_all(f);
	assert_all_released(f->dir);
	{
		const char *names[] = { "data" };

		assert_dir_holds(f->src, names, 1);
	}
	free(got);
	free(orig);
	free(now);
}

/*
 * -o oob=ignore trusts SRC not to change behind the mount's back: the same
 * sequence gives no EIO. What the snapshot then reads in unpreserved ranges
 * is whatever SRC holds (here: the new bytes) — the price of the mode.
 */
/*
 * An out-of-band change that hides from the (mtime, size) check: same
 * size, mtime set back. The fanotify watch on SRC's filesystem sees the
 * write itself (from a pid not the daemon's) and the snapshot distrusts
 * the live file. Events arrive asynchronously, so wait for the counter
 * before reading (a read racing the external write is G3's stated limit).
 */
static void test_s7_oob_hidden_mtime(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = make_src_file(f, "data", OOB_SIZE, 0);
	unsigned char evil[PAGE], got[PAGE];
	struct timespec times[2];
	char path[PATH_MAX];
	struct stat st;
	ssize_t n;
	int r, raw;

	r = must_open(f, "data", O_RDONLY);
	assert_int_equal(posix_fadvise(r, 0, 0, POSIX_FADV_RANDOM), 0);
	path_in(path, f->src, "data");
	assert_int_equal(stat(path, &st), 0);
	raw = open(path, O_RDWR | O_CLOEXEC);
	assert_true(raw >= 0);
	fill(evil, OOB_OFF, PAGE, 9);
	assert_int_equal(pwrite_all(raw, evil, PAGE, OOB_OFF), 0);
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	assert_int_equal(futimens(raw, times), 0);	/* hide it from mtime */
	close(raw);
	for (int i = 0; i < 200 && stat_get(f->dir, "oob_changes") < 1; i++)
		usleep(5000);
	if (stat_get(f->dir, "oob_changes") < 1)
		skip();	/* no fanotify here (not root, old kernel): mtime only */
	errno = 0;
	n = pread(r, got, PAGE, OOB_OFF);
	if (n >= 0)
		fail_msg("snapshot read after a hidden out-of-band write: %zd "
			 "bytes (%s), expected EIO", n,
			 n == PAGE && !memcmp(got, evil, PAGE) ? "the NEW bytes" :
			 "the old bytes, but G3 wants EIO");
	assert_int_equal(errno, EIO);
	printf("# write to SRC with mtime set back: caught by fanotify, EIO\n");
	close_all(f);
	free(orig);
}

/* G5: the digest is computed once per version, and a change makes a new one. */
static void test_digest_cached_per_version(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = make_src_file(f, "data", MiB, 0);
	char first[33], again[33], after[33];
	long long computed;
	int w = must_open(f, "data", O_RDWR);

	assert_int_equal(fd_digest(w, first), 0);
	computed = stat_get(f->dir, "digests_computed");
	assert_int_equal(fd_digest(w, again), 0);
	assert_string_equal(first, again);
	assert_int_equal(stat_get(f->dir, "digests_computed"), computed);
	assert_int_equal(pwrite_all(w, "changed", 7, 0), 0);
	assert_int_equal(fd_digest(w, after), 0);
	assert_string_not_equal(first, after);
	assert_int_equal(stat_get(f->dir, "digests_computed"), computed + 1);
	memcpy(orig, "changed", 7);
	assert_fd_digest(w, orig, MiB, "after the change");
	close_all(f);
	free(orig);
}

static void test_s7_oob_ignore(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig, *now, *got = malloc(2 * MiB);
	ssize_t n;
	int r;

	assert_non_null(got);
	r = oob_prepare(f, &orig, &now);
	n = pread(r, got, PAGE, OOB_OFF);
	if (n < 0)
		fail_msg("oob=ignore: snapshot read failed: %s", strerror(errno));
	assert_int_equal(n, PAGE);
	for (long i = 0; i < PAGE; i++)
		if (got[i] != orig[OOB_OFF + i] && got[i] != now[OOB_OFF + i])
			fail_msg("oob=ignore: byte %ld is neither old nor new", i);
	printf("# oob=ignore: the changed range read as the %s bytes\n",
	       !memcmp(got, now + OOB_OFF, PAGE) ? "new (SRC's)" : "old");
	n = pread(r, got, PAGE, 0);
	assert_int_equal(n, PAGE);
	assert_same(got, n, orig, PAGE, "oob=ignore: preserved page");
	assert_int_equal(stat_get(f->dir, "eio_reads"), 0);

	r = must_open(f, "data", O_RDONLY);
	n = read_to_eof(r, got, 2 * MiB);
	assert_same(got, n, now, OOB_SIZE + PAGE, "oob=ignore: fresh reader");

	close_all(f);
	assert_all_released(f->dir);
	free(got);
	free(orig);
	free(now);
}

/*
 * Changes through MNT are not out-of-band: while a writer keeps rewriting
 * the second half of a file, snapshot reads of the first half (dropped from
 * the page cache each time, so every read reaches the daemon) must all
 * succeed with the original bytes, and oob_changes must stay 0.
 */
struct busy_writer {
	int fd;
	bool truncate;		/* shrink and grow instead of writing */
	bool stop;		/* atomic */
	long writes, errors;
};

static void *busy_write(void *arg)
{
	struct busy_writer *b = arg;
	unsigned char page[PAGE];
	uint64_t x = 88172645463325252ULL;

	while (!__atomic_load_n(&b->stop, __ATOMIC_RELAXED)) {
		off_t off;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (b->truncate) {
			if (ftruncate(b->fd, (off_t)(x % (2 * MiB)) + 1))
				b->errors++;
			b->writes++;
			continue;
		}
		off = 2 * MiB + (off_t)(x % (2 * MiB / PAGE)) * PAGE;
		fill(page, off, PAGE, (int)(b->writes % 7) + 1);
		if (pwrite_all(b->fd, page, PAGE, off))
			b->errors++;
		b->writes++;
	}
	return NULL;
}

static void test_no_false_oob(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = make_src_file(f, "data", 4 * MiB, 0);
	unsigned char *got = malloc(64 * KiB);
	struct busy_writer b = { .fd = -1 };
	long reads = 0, failed = 0, wrong = 0;
	int first_errno = 0;
	long long oob;
	pthread_t th;
	time_t end;
	int r;

	assert_non_null(got);
	r = must_open(f, "data", O_RDONLY);
	b.fd = must_open(f, "data", O_RDWR);
	assert_int_equal(pthread_create(&th, NULL, busy_write, &b), 0);
	end = time(NULL) + 3;
	while (time(NULL) < end) {
		off_t off = (off_t)((reads * 7919) % 31) * 64 * KiB;
		ssize_t n;

		posix_fadvise(r, 0, 2 * MiB, POSIX_FADV_DONTNEED);
		n = pread(r, got, 64 * KiB, off);
		reads++;
		if (n < 0) {
			if (!failed++)
				first_errno = errno;
		} else if (n != 64 * KiB || memcmp(got, orig + off, 64 * KiB)) {
			wrong++;
		}
	}
	__atomic_store_n(&b.stop, true, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	oob = stat_get(f->dir, "oob_changes");
	printf("# %ld snapshot reads of an untouched half during %ld writes of "
	       "the other half: %ld failed (first: %s), %ld wrong; oob_changes "
	       "%lld\n", reads, b.writes, failed,
	       failed ? strerror(first_errno) : "-", wrong, oob);
	assert_int_equal(b.errors, 0);
	assert_int_equal(wrong, 0);
	if (failed || oob)
		fail_msg("writes through MNT were taken for out-of-band changes: "
			 "%ld of %ld snapshot reads failed, oob_changes %lld",
			 failed, reads, oob);
	close_all(f);
	assert_all_released(f->dir);
	free(got);
	free(orig);
}

/*
 * user.stablefs.xxh3 of the path (no snapshot: the live content) while
 * another fd shrinks and grows the file: each answer is the digest of some
 * version; it must never fail.
 */
static void assert_digest_survives_truncates(struct fixture *f, int w,
					     const char *label)
{
	struct busy_writer b = { .fd = w, .truncate = true };
	long calls = 0, failed = 0;
	int first_errno = 0;
	char path[PATH_MAX], hex[40];
	pthread_t th;
	time_t end = time(NULL) + 2;

	path_in(path, f->dir, "data");
	assert_int_equal(pthread_create(&th, NULL, busy_write, &b), 0);
	while (time(NULL) < end) {
		calls++;
		if (getxattr(path, XATTR_DIGEST, hex, sizeof(hex)) != 32 &&
		    !failed++)
			first_errno = errno;
	}
	__atomic_store_n(&b.stop, true, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	printf("# %s mount: %ld digests of the live file during %ld truncates: %ld "
	       "failed (first: %s)\n", label, calls, b.writes, failed,
	       failed ? strerror(first_errno) : "-");
	assert_int_equal(b.errors, 0);
	if (failed)
		fail_msg("%s mount: user.stablefs.xxh3 of the live file failed %ld of %ld "
			 "times (%s) while another fd truncated it", label,
			 failed, calls, strerror(first_errno));
}

/* No snapshot reader open; the fixture's mount options apply. */
static void test_live_digest_under_truncates(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = make_src_file(f, "data", MiB, 0);
	int w = must_open(f, "data", O_RDWR);

	assert_digest_survives_truncates(f, w, f->tc->name);
	close_all(f);
	if (!f->tc->opts)
		assert_all_released(f->dir);
	free(orig);
}

/* ------------------------------------------------------------------ */
/* Preservation economy                                               */
/* ------------------------------------------------------------------ */

static void test_preserve_economy(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = make_src_file(f, "data", 4 * MiB, 0);
	unsigned char small[100], *got = malloc(4 * MiB);
	long long p1, p2, p3, live;
	long n;
	int r1, r2, w;

	assert_non_null(got);
	r1 = must_open(f, "data", O_RDONLY);
	w = must_open(f, "data", O_RDWR);
	fill(small, 0, sizeof(small), 1);
	assert_int_equal(pwrite_all(w, small, sizeof(small), MiB + 1000), 0);
	p1 = stat_get(f->dir, "bytes_preserved");
	live = stat_get(f->dir, "snapshots_live");
	printf("# 100-byte overwrite under one reader: bytes_preserved %lld, "
	       "snapshots_live %lld, store_files %lld\n", p1, live,
	       stat_get(f->dir, "store_files"));
	if (p1 <= 0 || p1 % PAGE || p1 > 4 * PAGE)
		fail_msg("bytes_preserved %lld after a 100-byte overwrite: "
			 "expected a small multiple of 4096", p1);
	assert_true(live >= 1);

	/* The same range again: already preserved for that snapshot. */
	assert_int_equal(pwrite_all(w, small, sizeof(small), MiB + 1000), 0);
	p2 = stat_get(f->dir, "bytes_preserved");
	if (p2 != p1)
		fail_msg("bytes_preserved %lld after rewriting a preserved range "
			 "(was %lld)", p2, p1);

	/* A second snapshot (newer version) needs its own copy of the range. */
	r2 = must_open(f, "data", O_RDONLY);
	fill(small, 0, sizeof(small), 2);
	assert_int_equal(pwrite_all(w, small, sizeof(small), MiB + 1000), 0);
	p3 = stat_get(f->dir, "bytes_preserved");
	printf("# after a second snapshot and a third overwrite: %lld\n", p3);
	if (p3 <= p1 || p3 % PAGE || p3 > 8 * PAGE)
		fail_msg("bytes_preserved %lld with two snapshots (one had %lld)",
			 p3, p1);
	assert_true(stat_get(f->dir, "bytes_preserved_total") >= p3);

	n = pread(r1, got, 4 * MiB, 0);
	assert_same(got, n, orig, 4 * MiB, "first snapshot");
	fill(orig + MiB + 1000, 0, sizeof(small), 1);	/* what r2 saw there */
	n = pread(r2, got, 4 * MiB, 0);
	assert_same(got, n, orig, 4 * MiB, "second snapshot");

	close_all(f);
	assert_all_released(f->dir);
	free(got);
	free(orig);
}

/* ------------------------------------------------------------------ */
/* -o max_preserve                                                    */
/* ------------------------------------------------------------------ */

static void test_max_preserve(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = make_src_file(f, "data", 2 * MiB, 0);
	unsigned char *big = malloc(MiB), *got = malloc(2 * MiB);
	long long inval;
	ssize_t n;
	int r, w;

	assert_non_null(big);
	assert_non_null(got);
	r = must_open(f, "data", O_RDONLY);
	w = must_open(f, "data", O_RDWR);
	fill(big, 512 * KiB, MiB, 1);
	/* The writer proceeds whatever the cap does to snapshots. */
	assert_int_equal(pwrite_all(w, big, MiB, 512 * KiB), 0);
	n = pread(w, got, MiB, 512 * KiB);
	assert_same(got, n, big, MiB, "writer after its 1 MiB overwrite");

	errno = 0;
	n = pread(r, got, PAGE, MiB);
	if (n >= 0)
		fail_msg("reader of an invalidated snapshot got %zd bytes (%s), "
			 "expected EIO", n, n == PAGE && !memcmp(got, big + 512 * KiB, PAGE) ?
			 "the NEW bytes" : "old bytes beyond max_preserve");
	assert_int_equal(errno, EIO);
	inval = stat_get(f->dir, "snapshots_invalidated_max_preserve");
	if (inval < 1) {
		print_mount_stats(f->dir);
		fail_msg("snapshots_invalidated_max_preserve %lld", inval);
	}
	assert_true(stat_get(f->dir, "bytes_preserved") <= 64 * KiB);

	/* New readers are unaffected. */
	memcpy(orig + 512 * KiB, big, MiB);
	r = must_open(f, "data", O_RDONLY);
	n = read_to_eof(r, got, 2 * MiB);
	assert_same(got, n, orig, 2 * MiB, "reader opened after the overwrite");

	close_all(f);
	assert_all_released(f->dir);
	free(big);
	free(got);
	free(orig);
}

/* ------------------------------------------------------------------ */
/* -o snapshot=off                                                    */
/* ------------------------------------------------------------------ */

static void test_snapshot_off(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = make_src_file(f, "data", MiB, 0);
	unsigned char *buf = malloc(MiB), *got = malloc(MiB);
	int r, w, p[2];
	loff_t off = 256 * KiB;
	ssize_t n;

	assert_non_null(buf);
	assert_non_null(got);
	r = must_open(f, "data", O_RDONLY);
	w = must_open(f, "data", O_RDWR);

	/* Plain passthrough: the reader sees the writer's change. */
	memcpy(buf, orig, MiB);
	fill(buf, 0, 64 * KiB, 1);
	assert_int_equal(pwrite_all(w, buf, 64 * KiB, 0), 0);
	n = pread(r, got, 64 * KiB, 0);
	assert_same(got, n, buf, 64 * KiB, "snapshot=off: reader after a write");

	/* Stable splice still: splice, overwrite, drain -> the old bytes. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	n = splice(r, &off, p[1], NULL, 64 * KiB, 0);
	assert_int_equal(n, 64 * KiB);
	fill(buf + 256 * KiB, 256 * KiB, 64 * KiB, 2);
	assert_int_equal(pwrite_all(w, buf + 256 * KiB, 64 * KiB, 256 * KiB), 0);
	n = read(p[0], got, 64 * KiB);
	close(p[0]);
	close(p[1]);
	assert_same(got, n, orig + 256 * KiB, 64 * KiB,
		    "snapshot=off: pipe drained after a pwrite");

	/* The digest of a path without snapshot: the current content. */
	assert_fd_digest(r, buf, MiB, "snapshot=off reader (live content)");
	printf("# snapshot=off: snapshots_enabled %lld\n",
	       stat_get(f->dir, "snapshots_enabled"));
	assert_int_equal(stat_get(f->dir, "snapshots_live"), 0);

	close_all(f);
	{
		const char *names[] = { "data" };

		assert_dir_holds(f->src, names, 1);
	}
	free(buf);
	free(got);
	free(orig);
}

/* ------------------------------------------------------------------ */

#define S4(op_, raw_) \
	{ #op_, op_, NULL, raw_ }

static const struct tcase s4_cases[] = {
	S4(S4_PWRITE, false),
	S4(S4_TRUNC_SHORTER, false),
	S4(S4_EXTEND, false),
	S4(S4_PUNCH, false),
	S4(S4_ZERO_RANGE, false),
	S4(S4_OTRUNC_REWRITE, false),
	S4(S4_RENAME_OVER, false),
	S4(S4_UNLINK, false),
	S4(S4_PATH_TRUNCATE, false),
	S4(S4_COPY_RANGE_INTO, false),
	S4(S4_APPEND, false),
	S4(S4_EARLY_WRITER, false),
	S4(S4_PWRITE, true),
	S4(S4_TRUNC_SHORTER, true),
};

static const struct tcase tc_default = { "default", 0, NULL, false };
static const struct tcase tc_ignore = { "oob=ignore", 0, "oob=ignore", false };
static const struct tcase tc_cap = { "max_preserve", 0, "max_preserve=64K", false };
static const struct tcase tc_off = { "snapshot=off", 0, "snapshot=off", false };

#define CASE(name, fn, tc) \
	{ name, fn, setup, teardown, (void *)(tc) }

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE("s4 pwrite", test_s4, &s4_cases[0]),
		CASE("s4 truncate shorter", test_s4, &s4_cases[1]),
		CASE("s4 extend", test_s4, &s4_cases[2]),
		CASE("s4 punch hole", test_s4, &s4_cases[3]),
		CASE("s4 zero range", test_s4, &s4_cases[4]),
		CASE("s4 O_TRUNC rewrite", test_s4, &s4_cases[5]),
		CASE("s4 rename over", test_s4, &s4_cases[6]),
		CASE("s4 unlink", test_s4, &s4_cases[7]),
		CASE("s4 truncate(2) by path", test_s4, &s4_cases[8]),
		CASE("s4 copy_file_range into", test_s4, &s4_cases[9]),
		CASE("s4 O_APPEND write", test_s4, &s4_cases[10]),
		CASE("s4 pwrite by a writer opened before the readers", test_s4,
		     &s4_cases[11]),
		CASE("s4 pwrite raw ext4 twin", test_s4, &s4_cases[12]),
		CASE("s4 truncate raw ext4 twin", test_s4, &s4_cases[13]),
		CASE("s5 writer semantics", test_s5_writer, &tc_default),
		CASE("snapshot mmap MAP_PRIVATE", test_snapshot_mmap, &tc_default),
		CASE("copy_file_range from a snapshot", test_snapshot_copy_range_source,
		     &tc_default),
		CASE("s7 oob detect", test_s7_oob_detect, &tc_default),
		CASE("s7 oob=ignore", test_s7_oob_ignore, &tc_ignore),
		CASE("digest cached per version", test_digest_cached_per_version,
		     &tc_default),
		CASE("s7 oob hidden from mtime (fanotify)", test_s7_oob_hidden_mtime,
		     &tc_default),
		CASE("no false oob under writes through MNT", test_no_false_oob,
		     &tc_default),
		CASE("live digest under truncates", test_live_digest_under_truncates,
		     &tc_default),
		CASE("preservation economy", test_preserve_economy, &tc_default),
		CASE("max_preserve=64K", test_max_preserve, &tc_cap),
		CASE("snapshot=off", test_snapshot_off, &tc_off),
		CASE("snapshot=off live digest under truncates",
		     test_live_digest_under_truncates, &tc_off),
	};

	const char *filter = getenv("SFS_TEST_FILTER");	/* e.g. "s7*" */

	test_require_fuse();
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	io_messages(true);	/* these tests report failed I/O on stderr */
	return cmocka_run_group_tests_name("snapshot", tests, NULL, NULL);
}
