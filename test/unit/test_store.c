/*
 * Unit tests of lib/store.c, and of history's use of it, when the store's
 * filesystem fills up: a copy into the store that fails part way fails
 * with its real errno (ENOSPC after a short write, not whatever errno an
 * earlier call left behind), gives back at once the blocks it had already
 * written, and invalidates only the snapshot that needed it, as "store
 * full"; bytes preserved before stay and read right.
 *
 * The store lives on a small tmpfs the test mounts, so its free space is
 * exact (statvfs, in pages) and nothing else writes to it. The live file is
 * on a second tmpfs ("apart": copy_file_range() fails EXDEV across
 * superblocks and the store falls back to pread/pwrite) or on the store's
 * own ("together": copy_file_range() does the copy). Mounts are made in a
 * mount namespace of this process's own, so even a crash leaves none
 * behind; teardown still unmounts them. Needs root; skipped otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "history_i.h"
#include "sfs/stats.h"
#include "sfs/store.h"

#define PAGE 4096u
#define LIVE_SIZE (2u << 20)		/* more than the store has free */
#define STORE_APART "size=1m"		/* 256 pages */
/* Together: 512 pages of live file, 256 left for the store, as apart. */
#define STORE_TOGETHER "size=3m"
#define LIVE_APART "size=8m"

struct fx {
	char base[256];			/* fresh mkdtemp(): store/ and live/ */
	char store_dir[272], live_dir[272];
	bool store_mounted, live_mounted;
	int store_dirfd, live;
	struct sfs_store *store;
	struct sfs_history h;
	unsigned char *orig;		/* the live file's bytes at setup */
};

static unsigned char byte_at(uint64_t pos, int gen)
{
	return (unsigned char)((pos * 7 + (uint64_t)gen * 13) % 251 + 1);
}

static void unmount_dir(const char *dir, bool *mounted)
{
	/* Lazily if busy: the namespace ends with the process anyway. */
	if (*mounted && umount2(dir, 0) && umount2(dir, MNT_DETACH))
		fprintf(stderr, "# umount %s: %s\n", dir, strerror(errno));
	*mounted = false;
}

/* Undo whatever setup got as far as; safe on a partial fixture. */
static void cleanup(struct fx *f)
{
	if (f->store) {
		sfs_history_destroy(&f->h, f->store);
		sfs_store_free(f->store);
	}
	if (f->live >= 0)
		close(f->live);
	if (f->store_dirfd >= 0)
		close(f->store_dirfd);
	unmount_dir(f->store_dir, &f->store_mounted);
	unmount_dir(f->live_dir, &f->live_mounted);
	if (f->base[0]) {
		rmdir(f->store_dir);
		rmdir(f->live_dir);
		if (rmdir(f->base))
			fprintf(stderr, "# rmdir %s: %s\n", f->base, strerror(errno));
	}
	free(f->orig);
	free(f);
}

static int mount_tmpfs(const char *dir, const char *opts, bool *mounted)
{
	if (mount("sfs-test-store", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts)) {
		fprintf(stderr, "# mount tmpfs on %s: %s\n", dir, strerror(errno));
		return -1;
	}
	*mounted = true;
	return 0;
}

/*
 * A store on a fresh tmpfs of store_opts, and a live file of LIVE_SIZE
 * bytes (generation 0) on its own tmpfs, or in the store's if together.
 */
static int setup_with(void **state, const char *store_opts, bool together)
{
	const char *tmp = getenv("TMPDIR");
	struct fx *f = calloc(1, sizeof(*f));
	char path[288], err[256];

	if (!f)
		return -1;
	f->store_dirfd = f->live = -1;
	f->orig = malloc(LIVE_SIZE);
	snprintf(f->base, sizeof(f->base), "%s/sfs-store-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!f->orig || !mkdtemp(f->base)) {
		f->base[0] = '\0';
		goto fail;
	}
	snprintf(f->store_dir, sizeof(f->store_dir), "%s/store", f->base);
	snprintf(f->live_dir, sizeof(f->live_dir), "%s/live", f->base);
	if (mkdir(f->store_dir, 0700) || mkdir(f->live_dir, 0700) ||
	    mount_tmpfs(f->store_dir, store_opts, &f->store_mounted) ||
	    (!together && mount_tmpfs(f->live_dir, LIVE_APART, &f->live_mounted)))
		goto fail;
	snprintf(path, sizeof(path), "%s/live",
		 together ? f->store_dir : f->live_dir);
	f->live = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
	for (uint64_t i = 0; i < LIVE_SIZE; i++)
		f->orig[i] = byte_at(i, 0);
	if (f->live < 0 ||
	    pwrite(f->live, f->orig, LIVE_SIZE, 0) != (ssize_t)LIVE_SIZE)
		goto fail;
	f->store_dirfd = open(f->store_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	f->store = sfs_store_new(f->store_dirfd, err, sizeof(err));
	if (!f->store) {
		fprintf(stderr, "# %s\n", err);
		goto fail;
	}
	sfs_history_init(&f->h);
	*state = f;
	return 0;
fail:
	cleanup(f);
	return -1;
}

static int setup_apart(void **state)
{
	return setup_with(state, STORE_APART, false);
}

static int setup_together(void **state)
{
	return setup_with(state, STORE_TOGETHER, true);
}

static int teardown(void **state)
{
	cleanup(*state);
	return 0;
}

/* Free pages of the store's filesystem (tmpfs counts them exactly). */
static uint64_t store_free(struct fx *f)
{
	struct statvfs sv;

	assert_int_equal(fstatvfs(f->store_dirfd, &sv), 0);
	return sv.f_bfree;
}

static struct sfs_store_stats store_stats(struct fx *f)
{
	struct sfs_store_stats st;

	sfs_store_stats_get(f->store, &st);
	return st;
}

/* The allocated bytes of a store file (st_blocks is in 512-byte units). */
static uint64_t allocated(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/*
 * The store's own fallback is what "apart" is for: if this kernel copies
 * across superblocks, the test would not reach copy_by_pread().
 */
static void require_copy_fallback(struct fx *f)
{
	int probe = openat(f->store_dirfd, ".", O_TMPFILE | O_RDWR, 0600);
	ssize_t n;

	assert_true(probe >= 0);
	n = copy_file_range(f->live, NULL, probe, NULL, 1, 0);
	close(probe);
	if (n != -1 || errno != EXDEV) {
		printf("# copy_file_range across tmpfs mounts: %zd (%s), not "
		       "EXDEV: the pread/pwrite fallback cannot be reached\n",
		       n, n == -1 ? strerror(errno) : "copied");
		skip();
	}
}

/*
 * Copy a block, then more than the store can hold after it: the second
 * copy fails ENOSPC and leaves the store as the first left it.
 */
static void copy_until_full(struct fx *f)
{
	unsigned char got[PAGE];
	uint64_t free_before;
	int fd = sfs_store_file(f->store);

	assert_true(fd >= 0);
	assert_int_equal(sfs_store_copy(f->store, f->live, 0, fd, 0, PAGE), 0);
	free_before = store_free(f);
	/* Store offset PAGE: the fallback's 64 KiB writes end in a short one
	 * (60 KiB of free space left), its successor in ENOSPC. */
	assert_int_equal(sfs_store_copy(f->store, f->live, PAGE, fd, PAGE,
					LIVE_SIZE - PAGE), ENOSPC);
	printf("# store pages free: %llu before the failed copy, %llu after\n",
	       (unsigned long long)free_before,
	       (unsigned long long)store_free(f));
	/* The failed copy's blocks were given back at once... */
	assert_int_equal(store_free(f), free_before);
	assert_int_equal(allocated(fd), PAGE);
	/* ...and are not counted; the first copy's still are, and read. */
	assert_int_equal(store_stats(f).bytes_live, PAGE);
	assert_int_equal(store_stats(f).bytes_copied, PAGE);
	assert_int_equal(pread(fd, got, PAGE, 0), (ssize_t)PAGE);
	assert_memory_equal(got, f->orig, PAGE);
	sfs_store_release(f->store, fd, 0, PAGE);
	sfs_store_file_close(f->store, fd);
	assert_int_equal(store_stats(f).bytes_live, 0);
}

/* copy_by_pread(): a short write is ENOSPC, not the stale EXDEV. */
static void test_copy_by_pread_full(void **state)
{
	struct fx *f = *state;

	require_copy_fallback(f);
	copy_until_full(f);
}

/* copy_file_range() within the store's filesystem: the same outcome. */
static void test_copy_file_range_full(void **state)
{
	copy_until_full(*state);
}

/*
 * The source ends before len (a short read, then none): EIO, whichever
 * way the bytes were copied, and what was copied is given back.
 */
static void test_source_shorter_than_len(void **state)
{
	struct fx *f = *state;
	uint64_t free_before = store_free(f);
	int fd = sfs_store_file(f->store);

	assert_true(fd >= 0);
	/* 96 KiB fit the store; the last 32 KiB of the 128 are not there. */
	assert_int_equal(sfs_store_copy(f->store, f->live, LIVE_SIZE - 96 * 1024,
					fd, 0, 128 * 1024), EIO);
	assert_int_equal(allocated(fd), 0);
	assert_int_equal(store_free(f), free_before);
	assert_int_equal(store_stats(f).bytes_live, 0);
	assert_int_equal(store_stats(f).bytes_copied, 0);
	sfs_store_file_close(f->store, fd);
}

static void test_source_shorter_by_pread(void **state)
{
	require_copy_fallback(*state);
	test_source_shorter_than_len(state);
}

static int live_fd_of(void *arg)
{
	return ((struct fx *)arg)->live;
}

/* Write generation gen over [off, end) of the live file. */
static void write_gen(struct fx *f, uint64_t off, uint64_t end, int gen)
{
	unsigned char *buf = malloc(end - off);

	assert_non_null(buf);
	for (uint64_t i = off; i < end; i++)
		buf[i - off] = byte_at(i, gen);
	assert_int_equal(pwrite(f->live, buf, end - off, (off_t)off),
			 (ssize_t)(end - off));
	free(buf);
}

/* A change through MNT, as the daemon makes it. */
static void change(struct fx *f, uint64_t off, uint64_t end, int gen)
{
	sfs_history_before_change(&f->h, f->store, live_fd_of, f, off, end);
	write_gen(f, off, end, gen);
	sfs_history_after_change(&f->h, f->live, true);
}

/* Read [off, off + len) of snap as the daemon would: bytes, or -errno. */
static long read_snap(struct fx *f, struct sfs_snap *snap, uint64_t off,
		      uint64_t len, unsigned char *buf)
{
	GArray *segs = g_array_new(FALSE, FALSE, sizeof(struct sfs_segment));
	const char *why = NULL;
	long total = 0;
	int err = sfs_snap_plan(&f->h, snap, off, len, segs, &why);
	bool planned = !err;

	for (guint i = 0; !err && i < segs->len; i++) {
		struct sfs_segment *s = &g_array_index(segs, struct sfs_segment, i);
		int fd = s->kind == SFS_SEG_LIVE ? f->live : f->h.store_fd;
		uint64_t at = s->kind == SFS_SEG_LIVE ? s->off : s->src_off;

		if (s->kind == SFS_SEG_ZERO)
			memset(buf + (s->off - off), 0, s->len);
		else if (pread(fd, buf + (s->off - off), s->len, (off_t)at) !=
			 (ssize_t)s->len)
			err = EIO;
		total += (long)s->len;
	}
	if (planned)
		sfs_snap_plan_done(&f->h, snap);
	g_array_free(segs, TRUE);
	return err ? -err : total;
}

/*
 * Snapshot a of a one-block file has that block preserved; the file grows
 * and b is opened on it; a change of everything past a's block needs more
 * than the store has free. b is invalidated as "store full", counted so;
 * a, which needed nothing of that change, still reads its block; and the
 * store has as many free pages as before, not less by the failed copy.
 */
static void test_store_full_invalidates_only_the_needy(void **state)
{
	struct fx *f = *state;
	uint64_t enospc = sfs_stat_get(SFS_STAT_INVALIDATED_ENOSPC);
	uint64_t other = sfs_stat_get(SFS_STAT_INVALIDATED_OTHER);
	uint64_t cap = sfs_stat_get(SFS_STAT_INVALIDATED_CAP);
	uint64_t free_empty = store_free(f), free_before;
	unsigned char got[PAGE];
	struct sfs_snap *a, *b;

	assert_int_equal(ftruncate(f->live, PAGE), 0);
	a = sfs_history_open(&f->h, f->live);
	change(f, 0, PAGE, 1);			/* a's block: preserved */
	change(f, PAGE, LIVE_SIZE, 0);		/* a does not reach here */
	b = sfs_history_open(&f->h, f->live);
	assert_ptr_not_equal(a, b);
	assert_int_equal(store_stats(f).bytes_live, PAGE);
	free_before = store_free(f);

	sfs_history_before_change(&f->h, f->store, live_fd_of, f, PAGE, LIVE_SIZE);
	printf("# store pages free: %llu empty, %llu before the failed "
	       "preservation, %llu after; b: %s\n",
	       (unsigned long long)free_empty, (unsigned long long)free_before,
	       (unsigned long long)store_free(f),
	       b->invalid ? b->invalid : "valid");
	assert_int_equal(store_free(f), free_before);
	write_gen(f, PAGE, LIVE_SIZE, 2);
	sfs_history_after_change(&f->h, f->live, true);

	assert_non_null(b->invalid);
	assert_string_equal(b->invalid, "store full (ENOSPC)");
	assert_int_equal(sfs_stat_get(SFS_STAT_INVALIDATED_ENOSPC), enospc + 1);
	assert_int_equal(sfs_stat_get(SFS_STAT_INVALIDATED_OTHER), other);
	assert_int_equal(sfs_stat_get(SFS_STAT_INVALIDATED_CAP), cap);
	assert_int_equal(read_snap(f, b, 0, PAGE, got), -EIO);
	/* a: generation 0, from the store, though the file now holds 1. */
	assert_null(a->invalid);
	assert_int_equal(read_snap(f, a, 0, 2 * PAGE, got), (long)PAGE);
	assert_memory_equal(got, f->orig, PAGE);
	assert_int_equal(store_stats(f).bytes_live, PAGE);

	sfs_history_close(&f->h, f->store, b);
	sfs_history_close(&f->h, f->store, a);
	assert_int_equal(store_stats(f).bytes_live, 0);
	assert_int_equal(f->h.store_fd, -1);
	assert_int_equal(store_free(f), free_empty);
}

int main(void)
{
#define T(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_copy_by_pread_full, setup_apart),
		T(test_copy_file_range_full, setup_together),
		T(test_source_shorter_by_pread, setup_apart),
		T(test_source_shorter_than_len, setup_together),
		T(test_store_full_invalidates_only_the_needy, setup_apart),
	};

	/* TAP's "skipped as a whole", and meson's skip status. */
	if (geteuid() != 0) {
		printf("1..0 # SKIP mounting tmpfs needs root\n");
		return 77;
	}
	/* Our mounts die with this process, however it ends. */
	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		printf("1..0 # SKIP no mount namespace: %s\n", strerror(errno));
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
