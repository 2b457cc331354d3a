/*
 * Kernel facts K1-K3, K6 and K7 of doc/kernel-facts.md, as self-checking
 * tests (S8); K4 and K5 are in kernel_facts_fuse.c (they need a naive
 * daemon). K6 - the daemon's own reply pipe holds backing page-cache pages
 * until the kernel copies them out - is K1 seen from the daemon: libfuse
 * splices the backing file into its pipe exactly as these tests splice a
 * file into theirs, so the K1 cases below are what K6 rests on.
 *
 * The whole design of stablefs rests on how this kernel treats page-cache
 * pages that sit in a pipe after splice(2): they are *references*, not
 * copies, so whoever later modifies those pages in place changes bytes a
 * reader believed it had already received. If a future kernel copies, or
 * stops zeroing folios in place, these tests fail and the design must be
 * revisited rather than silently carrying dead (or missing) defences.
 *
 * Every scenario is the same five steps, parameterised by the modification:
 *   fill a file with a known pattern (and make sure it is in the page cache),
 *   splice SPLICE_LEN bytes at SPLICE_OFF into a pipe,
 *   modify the file,
 *   only then drain the pipe,
 *   count how many drained bytes differ from what the file held at splice time.
 * Each test prints what it observed ("# ...") and asserts what
 * doc/kernel-facts.md states.
 *
 * Measured while writing this (6.18.44): the folio size decides the aligned
 * cases, and it depends on how the data entered the page cache - a big
 * buffered write leaves 2 MiB folios (ext4, tmpfs huge=always), readahead
 * after eviction order-0 folios. So every K1/K2 case is run on both kinds
 * of fill, and each case five times to show the outcome is deterministic.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "mount_util.h"
#include "test_util.h"

#define KiB 1024L
#define MiB (1024L * KiB)

/* >= 2 MiB so the page cache may use large folios (up to PMD size). */
#define FILE_SIZE (4 * MiB)
/* Well inside the file and inside one 2 MiB-aligned region. */
#define SPLICE_OFF (1 * MiB)
#define SPLICE_LEN (64 * KiB)
#define PAGE 4096L
/* A pipe big enough that one splice/tee of SPLICE_LEN never blocks. */
#define PIPE_SIZE ((int)(2 * SPLICE_LEN))
/* Every K1/K2 case runs this often: some outcomes hinge on folio sizes. */
#define REPEAT 5

/* ------------------------------------------------------------------ */
/* Patterns (pattern_byte() and new_byte() are in test_util)          */
/* ------------------------------------------------------------------ */

static bool pattern_ok(const unsigned char *buf, long pos, long len)
{
	for (long i = 0; i < len; i++)
		if (buf[i] != pattern_byte(pos + i))
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* Modifications                                                      */
/* ------------------------------------------------------------------ */

/* What a modification gets: the file (open O_RDWR) and its path. */
struct target {
	int fd;
	const char *path;
};

static int mod_pwrite(const struct target *t)
{
	unsigned char buf[SPLICE_LEN];

	fill_pattern(buf, SPLICE_OFF, SPLICE_LEN, true);
	return pwrite_all(t->fd, buf, SPLICE_LEN, SPLICE_OFF);
}

static int punch(const struct target *t, off_t off, off_t len)
{
	if (fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len)) {
		fprintf(stderr, "fallocate(PUNCH_HOLE): %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Neither end on a page boundary: partial pages are zeroed in place (K1). */
static int mod_punch_unaligned(const struct target *t)
{
	return punch(t, SPLICE_OFF + 100, SPLICE_LEN - 200);
}

/*
 * Whole pages only, [off+4K, off+60K). With order-0 folios the pages would
 * just be dropped from the cache (pipe keeps them); with large folios that
 * cannot be split (the pipe holds references) the kernel zeroes the punched
 * part of the folio in place instead (K1: "page alignment is not enough").
 */
static int mod_punch_aligned(const struct target *t)
{
	return punch(t, SPLICE_OFF + PAGE, SPLICE_LEN - 2 * PAGE);
}

static int truncate_to(const struct target *t, off_t size)
{
	if (ftruncate(t->fd, size)) {
		fprintf(stderr, "ftruncate: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* 100 bytes into the range: the tail of the partial page is zeroed (K1). */
static int mod_truncate_unaligned(const struct target *t)
{
	return truncate_to(t, SPLICE_OFF + 100);
}

/*
 * Page-aligned, 16 KiB into the range. K2 first said the pipe survived this;
 * measured: only with small folios - a large one is zeroed in place like
 * the aligned punch above.
 */
static int mod_truncate_aligned(const struct target *t)
{
	return truncate_to(t, SPLICE_OFF + 4 * PAGE);
}

/* Shared writable mapping: stores go straight into the cached pages (K1). */
static int mod_mmap_write(const struct target *t)
{
	unsigned char *map = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE,
				  MAP_SHARED, t->fd, 0);

	if (map == MAP_FAILED) {
		fprintf(stderr, "mmap(MAP_SHARED): %s\n", strerror(errno));
		return -1;
	}
	fill_pattern(map + SPLICE_OFF, SPLICE_OFF, SPLICE_LEN, true);
	munmap(map, FILE_SIZE);
	return 0;
}

/*
 * O_DIRECT write of the whole range (K2): the kernel writes back and
 * invalidates the cached folios and writes the disk directly; the folios the
 * pipe references are dropped from the cache, not rewritten.
 */
static int mod_odirect_pwrite(const struct target *t)
{
	unsigned char *buf = NULL;
	int dfd, rc = -1;

	if (posix_memalign((void **)&buf, PAGE, SPLICE_LEN))
		return -1;
	fill_pattern(buf, SPLICE_OFF, SPLICE_LEN, true);
	dfd = open(t->path, O_WRONLY | O_DIRECT | O_CLOEXEC);
	if (dfd < 0) {
		fprintf(stderr, "open(O_DIRECT): %s\n", strerror(errno));
	} else {
		rc = pwrite_all(dfd, buf, SPLICE_LEN, SPLICE_OFF);
		close(dfd);
	}
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The scenario                                                       */
/* ------------------------------------------------------------------ */

/*
 * How the data got into the page cache decides the folio size, and the
 * folio size decides what an aligned punch or truncate does to a pipe
 * (measured here: ext4 and tmpfs huge=always give 2 MiB folios for one big
 * buffered write, readahead after eviction gives order-0 folios).
 */
enum fill {
	FILL_WRITTEN,	/* one 4 MiB buffered write, fsync: large folios */
	FILL_READ_IN,	/* ... then evicted and read back: readahead folios */
};

static const char *const fill_name[] = {
	[FILL_WRITTEN] = "written",
	[FILL_READ_IN] = "read in",
};

/* One case: a modification and the range of changed bytes the fact gives. */
struct kcase {
	const char *what;
	int (*modify)(const struct target *);
	bool via_tee;
	long min, max;	/* expected number of changed piped bytes */
};


static void print_observation(const char *fs, const char *what, bool via_tee,
			      const struct pipe_change *o)
{
	printf("# %s: %s%s: %ld of %ld piped bytes changed", fs, what,
	       via_tee ? " (tee'd pipe)" : "", o->changed, SPLICE_LEN);
	if (o->changed)
		printf(" (zeroed %ld, new bytes %ld, at +%ld..+%ld)",
		       o->zeroed, o->rewritten, o->first, o->last);
	printf("\n");
	fflush(stdout);
}

/* Create path with FILE_SIZE pattern bytes, clean and in the page cache. */
static int create_pattern_file(const char *path, enum fill fill)
{
	unsigned char *buf = malloc(FILE_SIZE);
	int fd, rc = -1;

	if (!buf)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		free(buf);
		return -1;
	}
	fill_pattern(buf, 0, FILE_SIZE, false);
	/*
	 * One big buffered write (lets the filesystem allocate large folios),
	 * fsync so the folios are clean like those of a file that was read,
	 * optionally evict them, and read everything back so it is cached.
	 */
	if (pwrite_all(fd, buf, FILE_SIZE, 0) == 0 && fsync(fd) == 0 &&
	    (fill != FILL_READ_IN ||
	     posix_fadvise(fd, 0, FILE_SIZE, POSIX_FADV_DONTNEED) == 0) &&
	    pread_all(fd, buf, FILE_SIZE, 0) == 0)
		rc = 0;
	free(buf);
	if (rc) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * fill, splice, modify, drain, compare. With via_tee the spliced pipe A is
 * duplicated by tee(2) into pipe B before the modification and only B is
 * drained: tee copies page references too, so B is hit just like A.
 * Returns 0 and fills *o, or -1 if a system call failed.
 */
static int run_scenario(const char *dir, enum fill fill, const struct kcase *c,
			struct pipe_change *o)
{
	char path[PATH_MAX];
	int fd, a[2] = { -1, -1 }, b[2] = { -1, -1 }, rc = -1;
	int drain_fd;
	unsigned char got[SPLICE_LEN];
	long n;

	if (join_path(path, dir, "k-file"))
		return -1;
	fd = create_pattern_file(path, fill);
	if (fd < 0)
		return -1;
	if (make_pipe(a, PIPE_SIZE))
		goto out;
	if (splice_all(fd, SPLICE_OFF, a[1], SPLICE_LEN))
		goto out;
	close_fd(&a[1]);
	drain_fd = a[0];
	if (c->via_tee) {
		if (make_pipe(b, PIPE_SIZE))
			goto out;
		n = tee(a[0], b[1], SPLICE_LEN, 0);
		if (n != SPLICE_LEN) {
			fprintf(stderr, "tee: %ld: %s\n", n, strerror(errno));
			goto out;
		}
		close_fd(&b[1]);
		close_fd(&a[0]);	/* only B's references remain */
		drain_fd = b[0];
	}

	if (c->modify(&(struct target){ .fd = fd, .path = path }))
		goto out;

	n = drain_pipe(drain_fd, got, sizeof(got));
	if (n != SPLICE_LEN) {
		fprintf(stderr, "drained %ld of %ld bytes\n", n, SPLICE_LEN);
		goto out;
	}
	compare_with_pattern(got, SPLICE_OFF, SPLICE_LEN, o);
	rc = 0;
out:
	close_fd(&a[0]);
	close_fd(&a[1]);
	close_fd(&b[0]);
	close_fd(&b[1]);
	close(fd);
	unlink(path);
	return rc;
}

/*
 * Run one case REPEAT times on fresh files and assert every result lies in
 * [min, max]. Repetition because several outcomes hinge on folio sizes:
 * they are asserted only because they were the same in every run here, and
 * a run that differs from the first is printed as well.
 */
static void check_case(const char *dir, const char *fs, enum fill fill,
		       const struct kcase *c)
{
	char label[128];
	struct pipe_change first, o;
	int same = 1;

	snprintf(label, sizeof(label), "%s, %s", fill_name[fill], c->what);
	for (int i = 0; i < REPEAT; i++) {
		assert_int_equal(run_scenario(dir, fill, c, &o), 0);
		if (i == 0) {
			first = o;
			print_observation(fs, label, c->via_tee, &o);
		} else if (o.changed != first.changed || o.first != first.first) {
			print_observation(fs, label, c->via_tee, &o);
		} else {
			same++;
		}
		if (o.changed < c->min || o.changed > c->max)
			fail_msg("%s: %s: %ld bytes changed, expected %ld..%ld",
				 fs, label, o.changed, c->min, c->max);
	}
	if (same != REPEAT)
		printf("# %s: %s: only %d of %d runs identical\n", fs, label,
		       same, REPEAT);
}

static void check_cases(const char *dir, const char *fs, enum fill fill,
			const struct kcase *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		check_case(dir, fs, fill, &cases[i]);
}

#define CHECK_CASES(f, fill, cases) \
	check_cases((f)->dir, (f)->fs, fill, cases, sizeof(cases) / sizeof(cases[0]))

/* ------------------------------------------------------------------ */
/* Fixtures: a fresh directory on ext4 (/tmp), or a fresh tmpfs       */
/* ------------------------------------------------------------------ */

struct fixture {
	char dir[PATH_MAX];
	const char *fs;		/* label printed with each observation */
	bool tmpfs_mounted;
	/* K3 only: the mount and what a test holds open on it. */
	struct test_mount m;
	int fd;
	unsigned char *map;
};

static struct fixture *new_fixture(void **state, const char *fs)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f) {
		f->fs = fs;
		f->fd = -1;
	}
	*state = f;
	return f;
}

static int make_tmpdir(struct fixture *f, const char *tag)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/sfs-kf-%s-XXXXXX", tag);
	if (!mkdtemp(f->dir)) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		f->dir[0] = '\0';
		return -1;
	}
	return 0;
}

static int setup_ext4(void **state)
{
	struct fixture *f = new_fixture(state, "ext4");

	return f ? make_tmpdir(f, "ext4") : -1;
}

static int mount_tmpfs(void **state, const char *label, const char *opts)
{
	struct fixture *f = new_fixture(state, label);

	if (!f)
		return -1;
	if (geteuid() != 0)
		return 0;	/* the test skips itself */
	if (make_tmpdir(f, "tmpfs"))
		return -1;
	if (mount("sfs-kf", f->dir, "tmpfs", MS_NOSUID | MS_NODEV, opts)) {
		fprintf(stderr, "mount tmpfs -o %s: %s\n", opts, strerror(errno));
		return -1;
	}
	f->tmpfs_mounted = true;
	return 0;
}

/* tmpfs as mounted by default here (shmem_enabled never): order-0 folios. */
static int setup_tmpfs(void **state)
{
	return mount_tmpfs(state, "tmpfs", "size=64m,mode=0700,huge=never");
}

/* tmpfs with huge=always: 2 MiB folios, like the written ext4 file. */
static int setup_tmpfs_huge(void **state)
{
	return mount_tmpfs(state, "tmpfs huge=always",
			   "size=64m,mode=0700,huge=always");
}

/* Also runs when a test failed (cmocka longjmps out of it first). */
static int teardown_dir(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	if (f->tmpfs_mounted) {
		if (umount2(f->dir, 0) && umount2(f->dir, MNT_DETACH)) {
			fprintf(stderr, "umount %s: %s\n", f->dir, strerror(errno));
			rc = -1;
		}
		f->tmpfs_mounted = false;
	}
	if (f->dir[0]) {
		test_rm_rf(f->dir);
		if (access(f->dir, F_OK) == 0) {
			fprintf(stderr, "could not remove %s\n", f->dir);
			rc = -1;
		}
	}
	free(f);
	*state = NULL;
	return rc;
}

static void require_tmpfs(const struct fixture *f)
{
	if (!f->tmpfs_mounted) {
		printf("# tmpfs part skipped: mounting tmpfs needs root\n");
		skip();
	}
}

/* ------------------------------------------------------------------ */
/* K1: in-place modifications change piped bytes (ext4 and tmpfs)     */
/* ------------------------------------------------------------------ */

/* K1 cases that corrupt the pipe whatever the folio size. */
static const struct kcase k1_any_folio[] = {
	/* pwrite rewrites the very pages the pipe references: all of them. */
	{ "pwrite over range", mod_pwrite, false, SPLICE_LEN, SPLICE_LEN },
	/* tee duplicates references, not data: the twin pipe is hit too. */
	{ "pwrite over range", mod_pwrite, true, SPLICE_LEN, SPLICE_LEN },
	/*
	 * The partial pages at both ends are zeroed in place (at least those,
	 * at most the whole punched range when the folio cannot be split).
	 */
	{ "unaligned punch", mod_punch_unaligned, false,
	  2 * (PAGE - 100), SPLICE_LEN - 200 },
	/* At least the tail of the page holding the new EOF is zeroed. */
	{ "truncate to range+100", mod_truncate_unaligned, false,
	  PAGE - 100, SPLICE_LEN - 100 },
	/* Stores through a shared mapping land in the referenced pages. */
	{ "MAP_SHARED store", mod_mmap_write, false, SPLICE_LEN, SPLICE_LEN },
};

/*
 * K1 "page alignment is not enough": a large folio the pipe holds a
 * reference to cannot be split, so the kernel zeroes the punched / truncated
 * part of it in place - exactly the whole pages concerned.
 */
static const struct kcase k1_large_folio[] = {
	{ "4K-aligned punch of [+4K, +60K)", mod_punch_aligned, false,
	  SPLICE_LEN - 2 * PAGE, SPLICE_LEN - 2 * PAGE },
	{ "truncate to range+16K (page-aligned)", mod_truncate_aligned, false,
	  SPLICE_LEN - 4 * PAGE, SPLICE_LEN - 4 * PAGE },
};

/* K2: order-0 folios are dropped from the cache; the pipe keeps them. */
static const struct kcase k2_small_folio[] = {
	{ "4K-aligned punch of [+4K, +60K)", mod_punch_aligned, false, 0, 0 },
	{ "truncate to range+16K (page-aligned)", mod_truncate_aligned, false, 0, 0 },
};

/* K2: O_DIRECT invalidates and drops the cached folios, whatever their size. */
static const struct kcase k2_odirect[] = {
	{ "O_DIRECT pwrite over range", mod_odirect_pwrite, false, 0, 0 },
};

static void test_k1_ext4(void **state)
{
	const struct fixture *f = *state;

	CHECK_CASES(f, FILL_WRITTEN, k1_any_folio);
	CHECK_CASES(f, FILL_READ_IN, k1_any_folio);
}

/* K1: on ext4 even a 4 KiB-aligned punch changed piped data. */
static void test_k1_ext4_large_folios(void **state)
{
	CHECK_CASES((const struct fixture *)*state, FILL_WRITTEN, k1_large_folio);
}

static void test_k1_tmpfs(void **state)
{
	const struct fixture *f = *state;

	require_tmpfs(f);
	CHECK_CASES(f, FILL_WRITTEN, k1_any_folio);
	/* huge=never: order-0 folios, aligned operations drop them (K2). */
	CHECK_CASES(f, FILL_WRITTEN, k2_small_folio);
}

/* The same large-folio effect on tmpfs, so it is not an ext4 quirk. */
static void test_k1_tmpfs_huge(void **state)
{
	const struct fixture *f = *state;

	require_tmpfs(f);
	CHECK_CASES(f, FILL_WRITTEN, k1_large_folio);
}

/* ------------------------------------------------------------------ */
/* K2: what does NOT change the pipe (ext4)                           */
/* ------------------------------------------------------------------ */

static void test_k2_ext4_odirect(void **state)
{
	const struct fixture *f = *state;

	CHECK_CASES(f, FILL_WRITTEN, k2_odirect);
	CHECK_CASES(f, FILL_READ_IN, k2_odirect);
}

/*
 * K2 first said a page-aligned ftruncate did not change the pipe. Measured:
 * true only for small folios (data read in); for a freshly written file
 * (2 MiB folios) it zeroes in place, see test_k1_ext4_large_folios.
 */
static void test_k2_ext4_small_folios(void **state)
{
	CHECK_CASES((const struct fixture *)*state, FILL_READ_IN, k2_small_folio);
}

/* ------------------------------------------------------------------ */
/* K3: splice from a FUSE file hands out FUSE page-cache pages        */
/* ------------------------------------------------------------------ */

static int setup_fuse(void **state)
{
	struct fixture *f = new_fixture(state, "stablefs");

	if (!f)
		return -1;
	/* Missing prerequisites skip in the test itself (f->m.mounted false). */
	if (!test_can_mount())
		return 0;
	if (test_mount_prepare(&f->m, "kf"))
		return -1;
	/*
	 * oob=ignore: the K3 probe below writes SRC behind the daemon's back;
	 * out-of-band detection must not answer that by invalidating the very
	 * cache we observe. Fall back to the defaults if the option is unknown.
	 */
	if (test_mount_start(&f->m, "oob=ignore") && test_mount_start(&f->m, NULL))
		return -1;
	return 0;
}

/* Close what the test held (a failed assert skips its own cleanup). */
static int teardown_fuse(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	if (f->map)
		munmap(f->map, FILE_SIZE);
	close_fd(&f->fd);
	if (f->m.base[0])
		test_mount_destroy(&f->m);
	free(f);
	*state = NULL;
	return 0;
}

static void require_mount(const struct fixture *f)
{
	if (!f->m.mounted) {
		printf("# K3 skipped: no /dev/fuse, fusermount3 or %s\n",
		       test_stablefs_bin());
		skip();
	}
}

/* A pattern file in SRC; its paths in SRC and through the mount. */
static void make_fuse_file(const struct fixture *f, char *spath, char *mpath)
{
	int fd;

	assert_int_equal(join_path(spath, f->m.src, "k3-file"), 0);
	assert_int_equal(join_path(mpath, f->m.mnt, "k3-file"), 0);
	fd = create_pattern_file(spath, FILL_WRITTEN);
	assert_true(fd >= 0);
	close(fd);
}

/* Splice PAGE bytes at SPLICE_OFF from fd: do they hold the pattern? */
static bool splice_page_is_original(int fd)
{
	unsigned char got[PAGE], want[PAGE];
	int p[2];
	long n = -1;

	if (make_pipe(p, PIPE_SIZE))
		return false;
	if (splice_all(fd, SPLICE_OFF, p[1], PAGE) == 0) {
		close_fd(&p[1]);
		n = drain_pipe(p[0], got, PAGE);
	}
	close_fd(&p[0]);
	close_fd(&p[1]);
	fill_pattern(want, SPLICE_OFF, PAGE, false);
	return n == PAGE && memcmp(got, want, PAGE) == 0;
}

/*
 * K3, first half: splices of the same 4 KiB are served from the FUSE inode's
 * page cache, one FUSE_READ for all of them - also on handles stablefs opens
 * FOPEN_DIRECT_IO (writers). Observable from user space: after the first
 * splice, rewrite those bytes in SRC behind the daemon's back; if the next
 * two splices still return the old bytes, no FUSE_READ reached the daemon (a
 * read would have fetched the new bytes, or failed EIO for a snapshot, G3).
 * A kernel that makes direct_io splices go to the daemon (the 2026
 * copy_splice_read patch) fails here: then per-handle data via splice
 * becomes possible and the incarnation design can be revisited.
 * The control case: a user O_DIRECT open makes the VFS itself use
 * copy_splice_read, so there every splice must reach the daemon.
 */
static void k3_splices(struct fixture *f, int flags, const char *how,
		       bool expect_cached)
{
	char spath[PATH_MAX], mpath[PATH_MAX];
	unsigned char fresh[PAGE];
	bool orig[3];
	int sfd;

	require_mount(f);
	make_fuse_file(f, spath, mpath);
	f->fd = open(mpath, flags | O_CLOEXEC);
	assert_true(f->fd >= 0);
	orig[0] = splice_page_is_original(f->fd);

	/* Out-of-band change of the backing bytes (not through MNT). */
	sfd = open(spath, O_WRONLY | O_CLOEXEC);
	assert_true(sfd >= 0);
	fill_pattern(fresh, SPLICE_OFF, PAGE, true);
	assert_int_equal(pwrite_all(sfd, fresh, PAGE, SPLICE_OFF), 0);
	assert_int_equal(fsync(sfd), 0);
	close(sfd);

	orig[1] = splice_page_is_original(f->fd);
	orig[2] = splice_page_is_original(f->fd);
	close_fd(&f->fd);
	printf("# stablefs %s: 3 splices of the same 4 KiB, SRC rewritten after "
	       "the first; original bytes: %s, %s, %s\n", how,
	       orig[0] ? "yes" : "no", orig[1] ? "yes" : "no",
	       orig[2] ? "yes" : "no");
	assert_true(orig[0]);
	if (expect_cached && (!orig[1] || !orig[2]))
		fail_msg("a splice from a FUSE file reached the daemon again: "
			 "either the kernel no longer serves it from the page "
			 "cache (K3 changed) or the daemon invalidated the cache");
	if (!expect_cached && (orig[1] || orig[2]))
		fail_msg("a splice from an O_DIRECT FUSE file was served from "
			 "the page cache: the VFS no longer uses copy_splice_read "
			 "for O_DIRECT files");
}

static void test_k3_splice_cached_rdonly(void **state)
{
	k3_splices(*state, O_RDONLY, "O_RDONLY", true);
}

static void test_k3_splice_cached_rdwr(void **state)
{
	k3_splices(*state, O_RDWR, "O_RDWR", true);
}

static void test_k3_splice_odirect_uncached(void **state)
{
	k3_splices(*state, O_RDONLY | O_DIRECT, "O_RDONLY|O_DIRECT", false);
}

/*
 * K3, second half: the pipe holds *the* page-cache pages, not copies. The
 * only in-place change of FUSE page-cache pages that no daemon can intercept
 * is a store through a shared writable mapping of the same open file (K4).
 * stablefs may refuse that mmap (G1): then the fact cannot be shown from
 * user space through our daemon, and the test says why and skips.
 */
/*
 * G1 through stablefs: a writable shared mapping would let user stores
 * land in cached folios that pipes reference (K4), so it is refused:
 * write-capable handles are FOPEN_DIRECT_IO, which the kernel will not
 * map shared without FUSE_DIRECT_IO_ALLOW_MMAP (ENODEV, as cache=never).
 * Private mappings and read-only shared mappings keep working. That pipes
 * do hold FUSE folios, and stores would reach them, is shown with a naive
 * daemon in kernel_facts_fuse.
 */
static void test_shared_writable_mmap_refused(void **state)
{
	struct fixture *f = *state;
	char spath[PATH_MAX], mpath[PATH_MAX];
	unsigned char *map;
	int ro;

	require_mount(f);
	make_fuse_file(f, spath, mpath);
	f->fd = open(mpath, O_RDWR | O_CLOEXEC);
	assert_true(f->fd >= 0);
	map = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
	if (map != MAP_FAILED) {
		munmap(map, FILE_SIZE);
		fail_msg("MAP_SHARED|PROT_WRITE of an O_RDWR handle was allowed");
	}
	assert_int_equal(errno, ENODEV);
	printf("# stablefs: MAP_SHARED|PROT_WRITE on O_RDWR: ENODEV\n");
	/* A private writable mapping copies on write: allowed, file intact. */
	map = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, f->fd, 0);
	assert_true(map != MAP_FAILED);
	assert_true(pattern_ok(map + SPLICE_OFF, SPLICE_OFF, 4096));
	map[SPLICE_OFF] ^= 0xff;
	munmap(map, FILE_SIZE);
	/* A read-only handle may map shared for reading. */
	ro = open(mpath, O_RDONLY | O_CLOEXEC);
	assert_true(ro >= 0);
	map = mmap(NULL, FILE_SIZE, PROT_READ, MAP_SHARED, ro, 0);
	close(ro);
	assert_true(map != MAP_FAILED);
	assert_true(pattern_ok(map + SPLICE_OFF, SPLICE_OFF, 4096));
	munmap(map, FILE_SIZE);
}

/*
 * K7: an OPEN answered ESTALE makes the VFS look the name up again and
 * retry, and open() succeeds; truncate(path) likewise; fstat on an fd
 * opened before keeps working (GETATTR carries no handle: never ESTALE).
 * Snapshots rest on this. Here: a reader holds a snapshot node; the file
 * changes; new opens by the same (cached) path land on the stale node and
 * are steered. If the kernel stopped retrying, they would fail with ESTALE.
 */
static void test_k7_estale_open_is_retried(void **state)
{
	struct fixture *f = *state;
	char spath[PATH_MAX], mpath[PATH_MAX];
	long long before;
	struct stat st;
	int reader, writer, again;

	require_mount(f);
	make_fuse_file(f, spath, mpath);
	reader = open(mpath, O_RDONLY | O_CLOEXEC);
	assert_true(reader >= 0);
	before = mount_counter(f->m.mnt, "estale_redirects");
	/* A writer through the same (cached) dentry: steered to the live node. */
	writer = open(mpath, O_RDWR | O_CLOEXEC);
	assert_true(writer >= 0);
	assert_int_equal(pwrite(writer, "changed", 7, 0), 7);
	assert_int_equal(ftruncate(writer, FILE_SIZE / 2), 0);
	/* A reader by path after the change: its own, current snapshot. */
	again = open(mpath, O_RDONLY | O_CLOEXEC);
	assert_true(again >= 0);
	assert_int_equal(fstat(again, &st), 0);
	assert_int_equal(st.st_size, FILE_SIZE / 2);
	/* truncate(path) steered the same way, applied once. */
	assert_int_equal(truncate(mpath, FILE_SIZE / 4), 0);
	assert_int_equal(fstat(writer, &st), 0);
	assert_int_equal(st.st_size, FILE_SIZE / 4);
	/* The first reader's fstat still works and shows its version. */
	assert_int_equal(fstat(reader, &st), 0);
	assert_int_equal(st.st_size, FILE_SIZE);
	printf("# K7: ESTALE redirects %lld (open for write, open for read, "
	       "truncate by path all retried by the VFS)\n",
	       mount_counter(f->m.mnt, "estale_redirects") - before);
	assert_true(mount_counter(f->m.mnt, "estale_redirects") - before >= 2);
	close(again);
	close(writer);
	close(reader);
}

/* ------------------------------------------------------------------ */
/* K11: a filesystem's time stamps order changes around an instant    */
/* ------------------------------------------------------------------ */

static bool ts_later(struct timespec a, struct timespec b)
{
	return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

/* The ctime of a new O_TMPFILE in dir: the filesystem's clock now. */
static struct timespec fs_stamp(const char *dir)
{
	struct stat st;
	int fd = open(dir, O_TMPFILE | O_RDWR, 0600);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	return st.st_ctim;
}

/* Write n bytes as path's whole content: 0 or -1. */
static int put_file(const char *path, const char *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc;

	if (fd < 0)
		return -1;
	rc = write_all(fd, data, n);
	close(fd);
	return rc;
}

static struct timespec ctime_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_ctim;
}

/*
 * What tree views rely on (fs/views.c): a stamp taken from an O_TMPFILE
 * (which leaves its directory's times alone) is later than or equal to the
 * ctime of every change made before it, and once a second stamp is later
 * than the first, every change made after has a later ctime than the
 * first: so "ctime past the view's stamp" means "changed after the view".
 * Run many times over writes, chmods, creates, renames and unlinks.
 */
static void check_k11(const char *dir, const char *fs)
{
	char file[PATH_MAX], other[PATH_MAX];
	struct timespec d_before, stamp, now;
	int fails_before = 0, fails_after = 0, waits = 0;

	snprintf(file, sizeof(file), "%s/k11", dir);
	snprintf(other, sizeof(other), "%s/k11-renamed", dir);
	assert_int_equal(put_file(file, "x", 1), 0);
	d_before = ctime_of(dir);
	(void)fs_stamp(dir);
	assert_false(ts_later(ctime_of(dir), d_before));
	for (int i = 0; i < 300; i++) {
		int op = i % 4;

		/* A change, then the stamp: the change is not later. */
		assert_int_equal(chmod(file, i % 2 ? 0600 : 0644), 0);
		stamp = fs_stamp(dir);
		if (ts_later(ctime_of(file), stamp))
			fails_before++;
		/* Wait for the clock to pass the stamp, then change. */
		do {
			now = fs_stamp(dir);
			waits++;
		} while (!ts_later(now, stamp));
		if (op == 0)
			assert_int_equal(put_file(file, "yy", 2), 0);
		else if (op == 1)
			assert_int_equal(chmod(file, 0640), 0);
		else if (op == 2)
			assert_int_equal(rename(file, other) || rename(other, file), 0);
		else
			assert_int_equal(put_file(other, "z", 1) || unlink(other), 0);
		if (!ts_later(ctime_of(op == 3 ? dir : file), stamp))
			fails_after++;
	}
	printf("# K11 %s: 300 rounds, %d stamps taken waiting for the clock; "
	       "changes before a stamp later than it: %d; after it, not later: %d\n",
	       fs, waits, fails_before, fails_after);
	assert_int_equal(fails_before, 0);
	assert_int_equal(fails_after, 0);
}

static void test_k11_ext4(void **state)
{
	struct fixture *f = *state;

	check_k11(f->dir, f->fs);
}

static void test_k11_tmpfs(void **state)
{
	struct fixture *f = *state;

	require_tmpfs(f);
	check_k11(f->dir, f->fs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_k1_ext4, setup_ext4, teardown_dir),
		cmocka_unit_test_setup_teardown(test_k1_ext4_large_folios,
						setup_ext4, teardown_dir),
		cmocka_unit_test_setup_teardown(test_k1_tmpfs, setup_tmpfs, teardown_dir),
		cmocka_unit_test_setup_teardown(test_k1_tmpfs_huge,
						setup_tmpfs_huge, teardown_dir),
		cmocka_unit_test_setup_teardown(test_k2_ext4_odirect,
						setup_ext4, teardown_dir),
		cmocka_unit_test_setup_teardown(test_k2_ext4_small_folios,
						setup_ext4, teardown_dir),
		cmocka_unit_test_setup_teardown(test_k3_splice_cached_rdonly,
						setup_fuse, teardown_fuse),
		cmocka_unit_test_setup_teardown(test_k3_splice_cached_rdwr,
						setup_fuse, teardown_fuse),
		cmocka_unit_test_setup_teardown(test_k3_splice_odirect_uncached,
						setup_fuse, teardown_fuse),
		cmocka_unit_test_setup_teardown(test_shared_writable_mmap_refused,
						setup_fuse, teardown_fuse),
		cmocka_unit_test_setup_teardown(test_k11_ext4, setup_ext4, teardown_dir),
		cmocka_unit_test_setup_teardown(test_k11_tmpfs, setup_tmpfs, teardown_dir),
		cmocka_unit_test_setup_teardown(test_k7_estale_open_is_retried,
						setup_fuse, teardown_fuse),
	};

	io_messages(true);	/* these tests report failed I/O on stderr */
	return cmocka_run_group_tests_name("kernel_facts", tests, NULL, NULL);
}
