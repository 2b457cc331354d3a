/*
 * user.stablefs.xxh3 on sparse and changing files (issue "Reliability II",
 * items 7 and 8). Every case runs on a fresh mount:
 *
 *   A 1 TiB sparse file with three small data extents: its digest reads
 *   about the data only (counter digest_bytes_read), not the holes.
 *   A 200 MiB sparse file (data at unaligned offsets, across the digest's
 *   64 MiB chunks, at the end): the digest equals XXH3-128 of the bytes the
 *   test reads through the mount; the same on a snapshot fd while another
 *   fd punches and fills holes (that fd keeps the old bytes' digest); with
 *   -o snapshot=off for the live file.
 *   Callers killed (SIGKILL) mid-digest of a 15 TiB sparse file with
 *   -o max_threads=2: they are reaped promptly (the daemon answered their
 *   requests), and the mount then answers a read and a small digest.
 *   -o snapshot=off: a write to a file during a long digest of it is
 *   answered at once (the digest locks a chunk at a time); digests of a
 *   file changed all the time are of one content or fail EAGAIN, never a
 *   mix.
 *   -o snapshot=off: a same-size rewrite through MNT with the old mtime put
 *   back (touch -d) gives the new digest, not the cached old one.
 *   A same-size change made in SRC directly, mtime put back: the digest is
 *   the new content's (default mount, -o oob=ignore, -o snapshot=off).
 *
 * Time is never asserted except as deadlines far above the expected run
 * (seconds against minutes before the fix); what is asserted is counted
 * by the daemon or compared byte for byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "mount_util.h"
#include "test_util.h"

#define KiB 1024LL
#define MiB (1024LL * KiB)
#define GiB (1024LL * MiB)
#define TiB (1024LL * GiB)
#define XATTR_DIGEST "user.stablefs.xxh3"

struct fixture {
	struct test_mount m;
	const char *opts;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->opts = *state;
	*state = f;
	if (test_mount_prepare(&f->m, "digest"))
		return -1;
	return test_mount_start(&f->m, f->opts);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = test_mount_finish(&f->m);

	free(f);
	return rc;
}

static void hex_of(const unsigned char d[16], char hex[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static void xxh3_hex(const void *buf, size_t len, char hex[33])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(buf, len));
	hex_of(c.digest, hex);
}

/* user.stablefs.xxh3 of path into hex; 0, or -1 with errno. */
static int digest_of(const char *path, char hex[33])
{
	ssize_t n = getxattr(path, XATTR_DIGEST, hex, 32);

	if (n != 32) {
		if (n >= 0)
			errno = EIO;
		return -1;
	}
	hex[32] = '\0';
	return 0;
}

static void must_digest(const char *path, char hex[33])
{
	if (digest_of(path, hex))
		fail_msg("getxattr(%s, %s): %s", path, XATTR_DIGEST, strerror(errno));
}

static void fd_path(int fd, char path[64])
{
	snprintf(path, 64, "/proc/self/fd/%d", fd);
}

/* Never zero: a byte of data is never taken for a hole's. */
static void fill(unsigned char *buf, long long pos, size_t len, int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(((pos + (long long)i + seed * 37) % 251) + 1);
}

/* An empty file of size bytes at path with data [off, off + len) each. */
static void make_sparse(const char *path, long long size, const long long *off,
			const long long *len, int n, int seed)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	for (int i = 0; i < n; i++) {
		unsigned char *buf = malloc((size_t)len[i]);

		assert_non_null(buf);
		fill(buf, off[i], (size_t)len[i], seed);
		assert_int_equal(pwrite_all(fd, buf, (size_t)len[i], off[i]), 0);
		free(buf);
	}
	assert_int_equal(close(fd), 0);
}

/* read() fd from 0 to EOF into a fresh buffer of cap bytes. */
static unsigned char *read_all(int fd, size_t cap, size_t *len)
{
	unsigned char *buf = malloc(cap);
	size_t got = 0;

	assert_non_null(buf);
	while (got < cap) {
		ssize_t n = pread(fd, buf + got, cap - got, (off_t)got);

		if (n < 0)
			fail_msg("pread at %zu: %s", got, strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*len = got;
	return buf;
}

/* The digest of what fd reads equals user.stablefs.xxh3 of fd. */
static void assert_fd_digest(int fd, size_t cap, const char *what)
{
	char path[64], want[33], got[33];
	size_t len;
	unsigned char *buf = read_all(fd, cap, &len);

	xxh3_hex(buf, len, want);
	free(buf);
	fd_path(fd, path);
	must_digest(path, got);
	if (strcmp(want, got))
		fail_msg("%s: user.stablefs.xxh3 %s, XXH3-128 of the %zu bytes "
			 "read: %s", what, got, len, want);
}

static long long counter(struct fixture *f, const char *name)
{
	long long v = mount_counter(f->m.mnt, name);

	if (v < 0) {
		print_mount_stats(f->m.mnt);
		fail_msg("no counter %s in the mount's stats", name);
	}
	return v;
}

/* ------------------------------------------------------------------ */

static void test_holes_not_read(void **state)
{
	struct fixture *f = *state;
	const long long off[] = { 0, 512 * GiB + 12345, TiB - 100 * KiB };
	const long long len[] = { 64 * KiB, 64 * KiB, 64 * KiB };
	char src[PATH_MAX], mnt[PATH_MAX], hex[33], again[33];
	long long before, read_bytes;
	double t0;

	path_in(src, f->m.src, "sparse");
	path_in(mnt, f->m.mnt, "sparse");
	make_sparse(src, TiB, off, len, 3, 0);
	before = counter(f, "digest_bytes_read");
	t0 = now_s();
	must_digest(mnt, hex);
	read_bytes = counter(f, "digest_bytes_read") - before;
	printf("# 1 TiB sparse file, 192 KiB of data: digest in %.1f s, %lld "
	       "bytes read by the daemon\n", now_s() - t0, read_bytes);
	/* The data, rounded out to blocks and extents, at most. */
	if (read_bytes < 3 * 64 * KiB || read_bytes > 4 * MiB)
		fail_msg("the digest read %lld bytes of a file holding %lld bytes "
			 "of data", read_bytes, 3 * 64 * KiB);
	/* Cached: the same answer without reading again. */
	before = counter(f, "digest_bytes_read");
	must_digest(mnt, again);
	assert_string_equal(hex, again);
	assert_int_equal(counter(f, "digest_bytes_read"), before);
}

#define MID_SIZE (200 * MiB + 777)

static void make_mid(struct fixture *f, const char *name, int seed)
{
	/* Unaligned, across the 64 MiB chunk boundaries, up to the end. */
	const long long off[] = { 1, 3 * MiB + 5, 64 * MiB - 3000, 130 * MiB + 4095,
				  MID_SIZE - 10000 };
	const long long len[] = { 100, 70000, 9000, 2 * MiB + 3, 10000 };
	char src[PATH_MAX];

	path_in(src, f->m.src, name);
	make_sparse(src, MID_SIZE, off, len, 5, seed);
}

static void test_sparse_digest_exact(void **state)
{
	struct fixture *f = *state;
	char mnt[PATH_MAX];
	int fd;

	make_mid(f, "mid", 0);
	path_in(mnt, f->m.mnt, "mid");
	fd = open(mnt, O_RDONLY);
	assert_true(fd >= 0);
	assert_fd_digest(fd, MID_SIZE + 1, "200 MiB sparse file");
	close(fd);
}

/* A snapshot fd keeps its bytes' digest while another fd reshapes holes. */
static void test_snapshot_digest_exact(void **state)
{
	struct fixture *f = *state;
	unsigned char junk[5000];
	char mnt[PATH_MAX];
	int r, w;

	make_mid(f, "mid", 0);
	path_in(mnt, f->m.mnt, "mid");
	r = open(mnt, O_RDONLY);
	w = open(mnt, O_RDWR);
	assert_true(r >= 0 && w >= 0);
	fill(junk, 0, sizeof(junk), 3);
	/* Data into holes, a hole into data, in several chunks. */
	assert_int_equal(pwrite_all(w, junk, sizeof(junk), 10 * MiB + 1), 0);
	assert_int_equal(pwrite_all(w, junk, sizeof(junk), 64 * MiB - 100), 0);
	assert_int_equal(fallocate(w, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   130 * MiB + 8192, MiB), 0);
	assert_fd_digest(r, MID_SIZE + 1, "snapshot fd after changes");
	assert_fd_digest(w, MID_SIZE + 1, "writer fd (the live file)");
	close(r);
	close(w);
}

/*
 * Wait (10 s at most) until n digests reached the daemon's digest threads;
 * a daemon without the counter is given the same 10 s.
 */
static void wait_queued(struct fixture *f, long long n)
{
	for (long t0 = now_ms(); now_ms() - t0 < 10000; sleep_ms(20))
		if (mount_counter(f->m.mnt, "digests_queued") >= n)
			return;
}

/* A child doing one getxattr of path; the caller kills it. */
static pid_t digest_child(const char *path)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char hex[33];

		_exit(digest_of(path, hex) ? 1 : 0);
	}
	return pid;
}

/* A child reading small and its digest: 0 if both worked. */
static pid_t probe_child(const char *small)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		unsigned char buf[4096];
		char hex[33];
		int fd = open(small, O_RDONLY);

		_exit(fd < 0 || pread(fd, buf, sizeof(buf), 0) != sizeof(buf) ||
		      digest_of(small, hex) ? 1 : 0);
	}
	return pid;
}

#define KILLED 4

static void test_killed_callers_free_workers(void **state)
{
	struct fixture *f = *state;
	char huge[PATH_MAX], small_src[PATH_MAX], small[PATH_MAX];
	const long long off[] = { 0 }, len[] = { 64 * KiB };
	pid_t kids[KILLED], probe;
	long reaped_ms, t0;
	int status;

	path_in(huge, f->m.src, "huge");
	make_sparse(huge, 15 * TiB, off, len, 1, 0);
	path_in(huge, f->m.mnt, "huge");
	path_in(small_src, f->m.src, "small");
	make_sparse(small_src, 64 * KiB, off, len, 1, 1);
	path_in(small, f->m.mnt, "small");

	for (int i = 0; i < KILLED; i++)
		kids[i] = digest_child(huge);
	wait_queued(f, KILLED);	/* all of them in the daemon by now */
	t0 = now_ms();
	for (int i = 0; i < KILLED; i++)
		assert_int_equal(kill(kids[i], SIGKILL), 0);
	/* Reaped = the daemon answered (they wait for it even killed). */
	for (int i = 0; i < KILLED; i++)
		if (!wait_pid_ms(kids[i], &status, 30000))
			fail_msg("digest caller %d (pid %d) still waits for the "
				 "daemon 30 s after SIGKILL", i, kids[i]);
	reaped_ms = now_ms() - t0;
	probe = probe_child(small);
	if (!wait_pid_ms(probe, &status, 30000)) {
		kill(probe, SIGKILL);
		fail_msg("after the killed digests, a read and a small digest "
			 "got no answer within 30 s");
	}
	printf("# %d callers killed mid-digest of 15 TiB: reaped in %ld ms; "
	       "digests_interrupted %lld\n", KILLED, reaped_ms,
	       counter(f, "digests_interrupted"));
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(counter(f, "digests_interrupted") >= 1);
}

/* A child doing one 4 KiB pwrite at off of path: 0 if it worked. */
static pid_t write_child(const char *path, long long off)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char buf[4096];
		int fd = open(path, O_WRONLY);

		memset(buf, 'w', sizeof(buf));
		_exit(fd < 0 || pwrite(fd, buf, sizeof(buf), off) != sizeof(buf));
	}
	return pid;
}

/*
 * snapshot=off: a long digest holds the file a chunk at a time, not whole:
 * a write to the file while it runs is answered at once (it used to wait
 * for the end of the digest, ~20 minutes for 15 TiB).
 */
static void test_write_during_digest(void **state)
{
	struct fixture *f = *state;
	const long long off[] = { 0 }, len[] = { 64 * KiB };
	char huge[PATH_MAX];
	pid_t kid, writer;
	int status;
	long t0;

	path_in(huge, f->m.src, "huge");
	make_sparse(huge, 15 * TiB, off, len, 1, 0);
	path_in(huge, f->m.mnt, "huge");
	kid = digest_child(huge);
	wait_queued(f, 1);
	sleep_ms(100);		/* and hashing */
	t0 = now_ms();
	writer = write_child(huge, 8 * TiB);
	if (!wait_pid_ms(writer, &status, 30000)) {
		kill(writer, SIGKILL);
		kill(kid, SIGKILL);
		fail_msg("a write to a file being digested waited over 30 s");
	}
	printf("# snapshot=off: write during a digest of 15 TiB answered in "
	       "%ld ms\n", now_ms() - t0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The digest itself is not over: it is interrupted. */
	assert_int_equal(kill(kid, SIGKILL), 0);
	if (!wait_pid_ms(kid, &status, 30000))
		fail_msg("digest caller still waits 30 s after SIGKILL");
}

struct flipper {
	const char *path;
	long long off;
	bool stop;			/* atomic */
	long flips, errors;
};

/* Write 'a', 'b', 'a', ... at off through MNT until told to stop. */
static void *flip(void *arg)
{
	struct flipper *fl = arg;
	int fd = open(fl->path, O_WRONLY);

	if (fd < 0) {
		fl->errors++;
		return NULL;
	}
	while (!__atomic_load_n(&fl->stop, __ATOMIC_RELAXED)) {
		char c = fl->flips % 2 ? 'b' : 'a';

		if (pwrite(fd, &c, 1, fl->off) != 1)
			fl->errors++;
		fl->flips++;
		sleep_ms(3);
	}
	close(fd);
	return NULL;
}

/*
 * snapshot=off, a file above the inline size (hashed chunk by chunk by a
 * digest thread) changed all the time through MNT: every digest is of one
 * of the two contents it ever has, or fails with EAGAIN; never a mix.
 */
static void test_consistent_under_changes(void **state)
{
	struct fixture *f = *state;
	const long long size = 100 * MiB, at = 90 * MiB + 7;
	const long long off[] = { 5 * MiB, 89 * MiB }, len[] = { MiB, 2 * MiB };
	struct flipper fl = { .off = at };
	unsigned char *content = calloc(1, (size_t)size);
	char src[PATH_MAX], mnt[PATH_MAX], ha[33], hb[33], got[33];
	long ok_a = 0, ok_b = 0, again = 0;
	pthread_t th;

	assert_non_null(content);
	path_in(src, f->m.src, "flip");
	path_in(mnt, f->m.mnt, "flip");
	make_sparse(src, size, off, len, 2, 0);
	for (int i = 0; i < 2; i++)
		fill(content + off[i], off[i], (size_t)len[i], 0);
	content[at] = 'a';
	xxh3_hex(content, (size_t)size, ha);
	content[at] = 'b';
	xxh3_hex(content, (size_t)size, hb);
	fl.path = mnt;
	assert_int_equal(pthread_create(&th, NULL, flip, &fl), 0);
	for (double end = now_s() + 3; now_s() < end;) {
		if (digest_of(mnt, got)) {
			if (errno != EAGAIN) {
				__atomic_store_n(&fl.stop, true, __ATOMIC_RELAXED);
				pthread_join(th, NULL);
				fail_msg("digest under changes: %s", strerror(errno));
			}
			again++;
		} else if (!strcmp(got, ha)) {
			ok_a++;
		} else if (!strcmp(got, hb)) {
			ok_b++;
		} else {
			__atomic_store_n(&fl.stop, true, __ATOMIC_RELAXED);
			pthread_join(th, NULL);
			fail_msg("digest %s is of neither content (a mix of them?)", got);
		}
	}
	__atomic_store_n(&fl.stop, true, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	printf("# snapshot=off, %ld writes during 3 s of digests: %ld of one "
	       "content, %ld of the other, %ld EAGAIN\n", fl.flips, ok_a, ok_b,
	       again);
	assert_int_equal(fl.errors, 0);
	assert_true(ok_a + ok_b + again > 0);
	assert_true(counter(f, "digests_queued") > 0);	/* the chunked path */
	must_digest(mnt, got);
	assert_string_equal(got, fl.flips % 2 ? ha : hb);
	free(content);
}

/* Write new bytes over the whole of path (same size), put mtime back. */
static void rewrite_same_size(const char *path, size_t size, int seed,
			      unsigned char *now)
{
	struct timespec times[2];
	struct stat st;
	int fd;

	assert_int_equal(stat(path, &st), 0);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	fill(now, 0, size, seed);
	assert_int_equal(pwrite_all(fd, now, size, 0), 0);
	assert_int_equal(close(fd), 0);
	times[0] = st.st_atim;
	times[1] = st.st_mtim;		/* touch -d <the old mtime> */
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, times[1].tv_sec);
	assert_int_equal(st.st_mtim.tv_nsec, times[1].tv_nsec);
}

/* Digest, rewrite in where ("src" or MNT), digest: the new content's. */
static void check_rewrite(struct fixture *f, bool in_src)
{
	size_t size = MiB + 11;
	unsigned char *old = malloc(size), *now = malloc(size);
	char src[PATH_MAX], mnt[PATH_MAX], first[33], want[33], got[33];

	assert_non_null(old);
	assert_non_null(now);
	path_in(src, f->m.src, "f");
	path_in(mnt, f->m.mnt, "f");
	{
		int fd = open(src, O_CREAT | O_TRUNC | O_WRONLY, 0644);

		assert_true(fd >= 0);
		fill(old, 0, size, 0);
		assert_int_equal(pwrite_all(fd, old, size, 0), 0);
		assert_int_equal(close(fd), 0);
	}
	must_digest(mnt, first);
	xxh3_hex(old, size, want);
	assert_string_equal(first, want);
	sleep_ms(20);		/* a ctime tick later, also on coarse clocks */
	rewrite_same_size(in_src ? src : mnt, size, 1, now);
	must_digest(mnt, got);
	xxh3_hex(now, size, want);
	if (strcmp(got, want))
		fail_msg("%s: same-size rewrite %s, mtime put back: digest %s, "
			 "expected %s%s", f->opts ? f->opts : "default",
			 in_src ? "in SRC directly" : "through MNT", got, want,
			 strcmp(got, first) ? "" : " (the OLD content's, cached)");
	free(old);
	free(now);
}

static void test_rewrite_through_mnt(void **state)
{
	check_rewrite(*state, false);
}

static void test_rewrite_in_src(void **state)
{
	check_rewrite(*state, true);
}

#define CASE(name, fn, opts) \
	{ name, fn, setup, teardown, (void *)(opts) }

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE("1 TiB sparse: holes not read", test_holes_not_read, NULL),
		CASE("sparse digest exact", test_sparse_digest_exact, NULL),
		CASE("sparse digest exact, snapshot=off", test_sparse_digest_exact,
		     "snapshot=off"),
		CASE("snapshot fd digest exact under changes",
		     test_snapshot_digest_exact, NULL),
		CASE("killed callers free the workers",
		     test_killed_callers_free_workers, "max_threads=2"),
		CASE("killed callers free the workers, snapshot=off",
		     test_killed_callers_free_workers, "max_threads=2,snapshot=off"),
		CASE("snapshot=off: a write during a long digest",
		     test_write_during_digest, "snapshot=off"),
		CASE("snapshot=off: digests consistent under changes",
		     test_consistent_under_changes, "snapshot=off"),
		CASE("snapshot=off: same-size rewrite, mtime back",
		     test_rewrite_through_mnt, "snapshot=off"),
		CASE("rewrite through MNT, mtime back", test_rewrite_through_mnt, NULL),
		CASE("SRC rewritten, mtime back", test_rewrite_in_src, NULL),
		CASE("SRC rewritten, mtime back, oob=ignore", test_rewrite_in_src,
		     "oob=ignore"),
		CASE("SRC rewritten, mtime back, snapshot=off", test_rewrite_in_src,
		     "snapshot=off"),
	};
	const char *filter = getenv("SFS_TEST_FILTER");

	test_require_fuse();
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	io_messages(true);
	return cmocka_run_group_tests_name("digest", tests, NULL, NULL);
}
