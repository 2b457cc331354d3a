/*
 * The preservation store on special filesystems, each a fresh loop device:
 * - XFS with reflink: preserved ranges are shared extents, not copies
 *   (stats count reflinked bytes; the filesystem's used space grows by
 *   the new data only);
 * - a nearly full ext4: preserving fails with ENOSPC, the snapshot that
 *   needed it is invalidated (its reads fail EIO), the writer is unharmed.
 * Needs root, mount -o loop, mkfs.xfs; skipped otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "mount_util.h"
#include "test_util.h"

struct fixture {
	struct test_mount m;
};

/* A fresh loop filesystem of size_mib on m.src, then stablefs over it. */
static int setup_fs(void **state, const char *mkfs, int size_mib, const char *opts)
{
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (geteuid() != 0)
		return -1;
	return test_loop_setup(&f->m, "storefs", mkfs, size_mib, true, opts);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	test_mount_destroy(&f->m);
	free(f);
	return 0;
}

static int setup_xfs_with(void **state, const char *opts)
{
	if (system("command -v mkfs.xfs >/dev/null 2>&1"))
		return 0;	/* the test skips */
	return setup_fs(state, "mkfs.xfs -q -m reflink=1", 3072, opts);
}

/* Snapshots preserved range by range, as on every filesystem. */
static int setup_xfs(void **state)
{
	return setup_xfs_with(state, "clone=off");
}

/* Snapshots taken as clones at open (the default where SRC can). */
static int setup_xfs_clones(void **state)
{
	return setup_xfs_with(state, NULL);
}

static int setup_small_ext4(void **state)
{
	return setup_fs(state, "mkfs.ext4 -q -F -m 0", 24, NULL);
}

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 31 + seed);
}

static int write_file(const char *path, size_t len, unsigned seed, int flags)
{
	unsigned char *buf = malloc(len);
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);
	ssize_t n;

	fill(buf, len, seed);
	n = fd < 0 ? -1 : pwrite(fd, buf, len, 0);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(buf);
	return n == (ssize_t)len ? 0 : -1;
}

static uint64_t used_bytes(const char *path)
{
	struct statvfs sv;

	sync();
	statvfs(path, &sv);
	return (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
}

#define BIG (1ull << 30)		/* a 1 GiB rewrite (doc/performance.md) */
#define CHUNK (16u << 20)

/* Write len bytes of pattern seed at 0 of fd, a chunk at a time. */
static int write_pattern(int fd, uint64_t len, unsigned seed)
{
	unsigned char *buf = malloc(CHUNK);
	int rc = buf ? 0 : -1;

	for (uint64_t off = 0; !rc && off < len; off += CHUNK) {
		fill(buf, CHUNK, seed + (unsigned)(off / CHUNK));
		if (pwrite(fd, buf, CHUNK, (off_t)off) != CHUNK)
			rc = -1;
	}
	free(buf);
	return rc ? rc : fsync(fd);
}

/* Does fd hold pattern seed over [0, len)? */
static bool has_pattern(int fd, uint64_t len, unsigned seed)
{
	unsigned char *buf = malloc(CHUNK), *want = malloc(CHUNK);
	bool ok = buf && want;

	for (uint64_t off = 0; ok && off < len; off += CHUNK) {
		fill(want, CHUNK, seed + (unsigned)(off / CHUNK));
		ok = pread(fd, buf, CHUNK, (off_t)off) == CHUNK &&
		     memcmp(buf, want, CHUNK) == 0;
	}
	free(buf);
	free(want);
	return ok;
}

static void test_xfs_preserves_by_reflink(void **state)
{
	struct fixture *f = *state;
	char src[PATH_MAX + 8], mnt[PATH_MAX + 8];
	uint64_t before, after;
	int r, w, s;

	if (!f || !f->m.mounted)
		skip();
	snprintf(src, sizeof(src), "%s/big", f->m.src);
	snprintf(mnt, sizeof(mnt), "%s/big", f->m.mnt);
	s = open(src, O_WRONLY | O_CREAT, 0644);
	assert_true(s >= 0);
	assert_int_equal(write_pattern(s, BIG, 1), 0);
	close(s);
	r = open(mnt, O_RDONLY);
	w = open(mnt, O_RDWR);
	assert_true(r >= 0 && w >= 0);
	before = used_bytes(f->m.src);
	/* Overwrite all of it through MNT while the snapshot is open. */
	assert_int_equal(write_pattern(w, BIG, 100), 0);
	after = used_bytes(f->m.src);
	printf("# xfs: 1 GiB rewrite under a snapshot: used %llu -> %llu MiB; "
	       "preserved %lld, reflinked %lld bytes\n",
	       (unsigned long long)(before >> 20), (unsigned long long)(after >> 20),
	       mount_counter(f->m.mnt, "bytes_preserved"), mount_counter(f->m.mnt, "bytes_reflinked_total"));
	/* All of it kept, a little more where writes were not block aligned
	 * (chunks are widened to whole blocks so they can be shared)... */
	assert_true(mount_counter(f->m.mnt, "bytes_preserved") >= (long long)BIG);
	assert_true(mount_counter(f->m.mnt, "bytes_preserved") <= (long long)(BIG + (16 << 20)));
	/* ...and every preserved byte a shared extent, none copied. */
	assert_int_equal(mount_counter(f->m.mnt, "bytes_reflinked_total"),
			 mount_counter(f->m.mnt, "bytes_preserved"));
	/* The old blocks are shared with the store, the new data is new:
	 * the filesystem grew by the new data (plus XFS's copy-on-write
	 * preallocation), not by twice that as a copy would. */
	assert_true(after - before < BIG + BIG / 4);
	/* The snapshot still reads the original, the writer the new data. */
	assert_true(has_pattern(r, BIG, 1));
	assert_true(has_pattern(w, BIG, 100));
	close(r);
	close(w);
}

#define SMALL (32u << 20)	/* whole CHUNKs */

/* The open-time bytes of the file, checked through a snapshot fd. */
static void assert_reads_seed(int fd, uint64_t len, unsigned seed)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, (off_t)len);
	assert_true(has_pattern(fd, len, seed));
}

/*
 * With clones, a snapshot never reads the live file again: writers that
 * write to SRC directly -- even with an fd opened before the mount, which
 * no watch can see -- change nothing a snapshot reads, and nothing fails.
 */
static void test_xfs_clone_immune_to_writers_in_src(void **state)
{
	struct fixture *f = *state;
	char src[PATH_MAX + 8], mnt[PATH_MAX + 8], unrelated[PATH_MAX + 8];
	int early, r1, r2, w;

	if (!f || !f->m.mounted)
		skip();
	assert_int_equal(mount_counter(f->m.mnt, "clones"), 1);
	snprintf(src, sizeof(src), "%s/db", f->m.src);
	snprintf(mnt, sizeof(mnt), "%s/db", f->m.mnt);
	snprintf(unrelated, sizeof(unrelated), "%s/other", f->m.src);
	/* A writer whose fd predates this mount: remount stablefs after. */
	early = open(src, O_RDWR | O_CREAT, 0644);
	assert_true(early >= 0);
	assert_int_equal(write_pattern(early, SMALL, 1), 0);
	r1 = open(mnt, O_RDONLY);
	assert_true(r1 >= 0);
	/* In SRC, behind the mount: rewrite, truncate, punch, extend. */
	assert_int_equal(write_pattern(early, SMALL, 2), 0);
	r2 = open(mnt, O_RDONLY);		/* a snapshot of seed 2 */
	assert_true(r2 >= 0);
	assert_int_equal(ftruncate(early, SMALL / 2), 0);
	assert_int_equal(fallocate(early, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   0, 1 << 20), 0);
	w = open(src, O_RDWR);			/* a fresh fd in SRC too */
	assert_true(w >= 0);
	assert_int_equal(write_pattern(w, SMALL, 3), 0);
	close(w);
	assert_reads_seed(r1, SMALL, 1);
	assert_reads_seed(r2, SMALL, 2);
	printf("# xfs clones: %lld snapshots cloned (%lld bytes), eio_reads %lld, "
	       "oob_changes %lld\n", mount_counter(f->m.mnt, "snapshot_clones_total"),
	       mount_counter(f->m.mnt, "bytes_cloned_total"),
	       mount_counter(f->m.mnt, "eio_reads"),
	       mount_counter(f->m.mnt, "oob_changes"));
	assert_int_equal(mount_counter(f->m.mnt, "snapshot_clones_total"), 2);
	assert_int_equal(mount_counter(f->m.mnt, "eio_reads"), 0);
	close(r1);
	close(r2);
	close(early);
	/* Space comes back once the snapshots are closed. */
	for (int i = 0; i < 100 && mount_counter(f->m.mnt, "bytes_preserved") != 0; i++)
		usleep(10000);
	assert_int_equal(mount_counter(f->m.mnt, "bytes_preserved"), 0);
	(void)unrelated;
}

/* The control: without clones the same writes in SRC fail reads (EIO). */
static void test_xfs_without_clones_detects(void **state)
{
	struct fixture *f = *state;
	char src[PATH_MAX + 8], mnt[PATH_MAX + 8];
	unsigned char buf[4096];
	int r, w;

	if (!f || !f->m.mounted)
		skip();
	assert_int_equal(mount_counter(f->m.mnt, "clones"), 0);
	snprintf(src, sizeof(src), "%s/db", f->m.src);
	snprintf(mnt, sizeof(mnt), "%s/db", f->m.mnt);
	w = open(src, O_RDWR | O_CREAT, 0644);
	assert_true(w >= 0);
	assert_int_equal(write_pattern(w, SMALL, 1), 0);
	r = open(mnt, O_RDONLY);
	assert_true(r >= 0);
	assert_int_equal(write_pattern(w, SMALL, 2), 0);
	errno = 0;
	assert_int_equal(pread(r, buf, sizeof(buf), 0), -1);
	assert_int_equal(errno, EIO);
	close(r);
	close(w);
}

static void test_enospc_invalidates_snapshot_not_writer(void **state)
{
	struct fixture *f = *state;
	char src[PATH_MAX + 8], mnt[PATH_MAX + 8], filler[PATH_MAX + 8];
	size_t len = 12u << 20;
	unsigned char *buf = malloc(len), *got = malloc(len);
	int r, w;

	if (!f || !f->m.mounted)
		skip();
	snprintf(src, sizeof(src), "%s/data", f->m.src);
	snprintf(mnt, sizeof(mnt), "%s/data", f->m.mnt);
	snprintf(filler, sizeof(filler), "%s/filler", f->m.src);
	assert_int_equal(write_file(src, len, 1, 0), 0);
	/* Leave less free space than the file: preserving it cannot fit. */
	test_run("fallocate -l $(( $(stat -f -c '%%a*%%S' '%s') - 4*1024*1024 )) '%s'",
	    f->m.src, filler);
	r = open(mnt, O_RDONLY);
	w = open(mnt, O_RDWR);
	assert_true(r >= 0 && w >= 0);
	fill(buf, len, 7);
	/* In place, the overwrite needs no new blocks: it must succeed. */
	assert_int_equal(pwrite(w, buf, len, 0), (ssize_t)len);
	assert_int_equal(pread(w, got, len, 0), (ssize_t)len);
	assert_memory_equal(got, buf, len);
	/* The snapshot could not be kept: EIO, never the new bytes. */
	errno = 0;
	assert_int_equal(pread(r, got, 4096, 0), -1);
	assert_int_equal(errno, EIO);
	printf("# ext4 full: snapshots_invalidated_enospc=%lld eio_reads=%lld\n",
	       mount_counter(f->m.mnt, "snapshots_invalidated_enospc"), mount_counter(f->m.mnt, "eio_reads"));
	assert_true(mount_counter(f->m.mnt, "snapshots_invalidated_enospc") >= 1);
	close(r);
	close(w);
	/* Space comes back once the snapshot is closed. */
	for (int i = 0; i < 100 && mount_counter(f->m.mnt, "bytes_preserved") != 0; i++)
		usleep(10000);
	assert_int_equal(mount_counter(f->m.mnt, "bytes_preserved"), 0);
	free(buf);
	free(got);
}

/*
 * A file of more than SFS_CLONE_MAX_EXTENTS (1024) extents is not cloned at
 * open (a clone costs per extent: ~150 ms for 10,000 on XFS here): its
 * snapshot stays lazy, preserved range by range, and still reads its
 * open-time bytes after a rewrite through the mount. A file of few
 * extents next to it is cloned.
 */
static void test_xfs_fragmented_file_not_cloned(void **state)
{
	struct fixture *f = *state;
	char src[PATH_MAX + 16], mnt[PATH_MAX + 16];
	unsigned char block[4096], got[4096];
	const int blocks = 2 * 1100;
	int fd, r, w;

	if (!f || !f->m.mounted)
		skip();
	snprintf(src, sizeof(src), "%s/fragmented", f->m.src);
	snprintf(mnt, sizeof(mnt), "%s/fragmented", f->m.mnt);
	fd = open(src, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	/* Every other block: 1,100 data extents between holes. */
	for (int i = 0; i < blocks; i += 2) {
		memset(block, 'a' + i % 26, sizeof(block));
		assert_int_equal(pwrite(fd, block, sizeof(block), (off_t)i * 4096),
				 (ssize_t)sizeof(block));
	}
	assert_int_equal(fsync(fd), 0);
	close(fd);
	r = open(mnt, O_RDONLY);
	assert_true(r >= 0);
	printf("# %d-extent file: snapshot_clones_declined %lld, "
	       "snapshot_clones_total %lld\n", blocks / 2,
	       mount_counter(f->m.mnt, "snapshot_clones_declined"),
	       mount_counter(f->m.mnt, "snapshot_clones_total"));
	assert_int_equal(mount_counter(f->m.mnt, "snapshot_clones_declined"), 1);
	assert_int_equal(mount_counter(f->m.mnt, "snapshot_clones_total"), 0);
	/* Rewritten through the mount: preserved lazily for r. */
	w = open(mnt, O_WRONLY);
	assert_true(w >= 0);
	memset(block, 'Z', sizeof(block));
	for (int i = 0; i < blocks; i += 64)
		assert_int_equal(pwrite(w, block, sizeof(block), (off_t)i * 4096),
				 (ssize_t)sizeof(block));
	close(w);
	for (int i = 0; i < blocks; i += 64) {
		assert_int_equal(pread(r, got, sizeof(got), (off_t)i * 4096),
				 (ssize_t)sizeof(got));
		memset(block, 'a' + i % 26, sizeof(block));
		assert_memory_equal(got, block, sizeof(got));
	}
	close(r);
	/* A file of one extent is cloned. */
	snprintf(src, sizeof(src), "%s/whole", f->m.src);
	snprintf(mnt, sizeof(mnt), "%s/whole", f->m.mnt);
	assert_int_equal(write_file(src, 1 << 20, 4, O_TRUNC), 0);
	r = open(mnt, O_RDONLY);
	assert_true(r >= 0);
	assert_int_equal(mount_counter(f->m.mnt, "snapshot_clones_total"), 1);
	close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_xfs_preserves_by_reflink,
						setup_xfs, teardown),
		cmocka_unit_test_setup_teardown(test_xfs_clone_immune_to_writers_in_src,
						setup_xfs_clones, teardown),
		cmocka_unit_test_setup_teardown(test_xfs_fragmented_file_not_cloned,
						setup_xfs_clones, teardown),
		cmocka_unit_test_setup_teardown(test_xfs_without_clones_detects,
						setup_xfs, teardown),
		cmocka_unit_test_setup_teardown(test_enospc_invalidates_snapshot_not_writer,
						setup_small_ext4, teardown),
	};

	if (geteuid() != 0)
		test_skip_all("loop filesystems need root");
	test_require_fuse();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
