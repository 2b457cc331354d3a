/*
 * Tree views (G7) under -o max_preserve: past the cap the oldest view is
 * invalidated whole, oldest first by the instant things were taken, and
 * writers never fail or wait for it.
 *
 * Every test mounts with max_preserve=768K and makes NFILES files of
 * FILE_SIZE bytes (64 KiB: whole blocks, so each full rewrite under a view
 * preserves exactly FILE_SIZE) holding pattern A. A view "old" is taken,
 * every file rewritten (B: 512 KiB kept for old), a view "new" taken and
 * every file rewritten again (C): new needs another 512 KiB, which passes
 * the cap at the fifth file.
 *
 *   oldest view invalidated whole: every file of old answers EIO (open,
 *      stat, read and SEEK_DATA through an fd opened before, and its
 *      root's listing), none some other way; new reads B exactly; the live files are C and
 *      every write was whole; views_invalidated_max_preserve is 1 and no
 *      file was lost on its own (snapshots_invalidated_max_preserve 0);
 *      --list (plain and --json) marks old invalid, new valid, and
 *      .snapshots still lists old; old's bytes are gone from the store;
 *      deleting old works and new stays.
 *   plain snapshot newer than the view outlives it: a file opened
 *      read-only through MNT between old and new still reads B; old goes.
 *   plain snapshot older than the view goes first: one opened before old
 *      is invalidated (EIO) before old, which goes too (still over).
 *   change bigger than the cap: a view keeping nothing yet, one change
 *      (a truncate to 0) needing more than the cap for it: the view goes whole (its
 *      unchanged files EIO too), the writer succeeds, nothing is kept.
 *
 * Needs root and /dev/fuse. SFS_TEST_FILTER selects tests (cmocka glob).
 */
#include <dirent.h>
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
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "sfs/view_ioctl.h"
#include "mount_util.h"
#include "test_util.h"

#define KiB 1024L
#define FILE_SIZE (64 * KiB)
#define NFILES 8
#define CAP "768K"
#define CAP_BYTES (768 * KiB)
#define SNAPDIR ".snapshots"

/* The three contents of every file, by generation. */
enum gen { GEN_A, GEN_B, GEN_C };

struct fixture {
	struct test_mount m;
	const char *skip;
	int fd;			/* a test's open file, or -1 */
	int plain;		/* a plain snapshot (read-only through MNT), or -1 */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f)
		return -1;
	f->fd = f->plain = -1;
	return test_mount_setup(&f->m, "views_cap", "max_preserve=" CAP,
				&f->skip);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	close_fd(&f->fd);
	close_fd(&f->plain);
	if (f->m.base[0] && test_mount_finish(&f->m))
		rc = -1;
	free(f);
	*state = NULL;
	return rc;
}

/* ---- views -------------------------------------------------------------- */

static int view_ioctl(const char *mnt, unsigned long cmd, const char *name)
{
	struct sfs_ioc_view v;
	int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return errno;
	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "%s", name);
	if (ioctl(fd, cmd, &v))
		err = errno;
	close(fd);
	return err;
}

static void view_ok(struct fixture *f, unsigned long cmd, const char *name)
{
	int err = view_ioctl(f->m.mnt, cmd, name);

	if (err)
		fail_msg("%s view %s: %s", cmd == SFS_IOC_VIEW_CREATE ?
			 "taking" : "deleting", name, strerror(err));
}

/* What `stablefs snapshot --list MNT [--json]` prints (malloc'd). */
static char *cli_list(const char *mnt, bool json)
{
	char cmd[2 * PATH_MAX + 64], *buf = malloc(64 * KiB);
	size_t n = 0;
	FILE *p;

	assert_non_null(buf);
	snprintf(cmd, sizeof(cmd), "'%s' snapshot --list '%s'%s",
		 test_stablefs_bin(), mnt, json ? " --json" : "");
	p = popen(cmd, "r");
	if (!p)
		fail_msg("%s: %s", cmd, strerror(errno));
	n = fread(buf, 1, 64 * KiB - 1, p);
	buf[n] = '\0';
	if (pclose(p) != 0)
		fail_msg("%s failed: %s", cmd, buf);
	return buf;
}

/*
 * Is view name listed by `stablefs snapshot --list --json`, and is it
 * "invalid":true there and "invalid" in the plain listing? -1 if not
 * listed.
 */
static int view_listed_invalid(const char *mnt, const char *name)
{
	char *json = cli_list(mnt, false), key[128];
	const char *p, *end, *inv;
	bool plain_invalid;
	int r = -1;

	/* The plain listing: one line per view, its state last. */
	snprintf(key, sizeof(key), "\n%s ", name);
	p = strstr(json, key);
	plain_invalid = p && (end = strchr(p + 1, '\n')) &&
			end - p > 8 && !strncmp(end - 7, "invalid", 7);
	free(json);

	json = cli_list(mnt, true);
	snprintf(key, sizeof(key), "\"name\":\"%s\"", name);
	p = strstr(json, key);
	if (p) {
		end = strchr(p, '}');
		inv = strstr(p, "\"invalid\":");
		if (!end || !inv || inv > end)
			fail_msg("no \"invalid\" for %s: %s", name, json);
		r = !strncmp(inv, "\"invalid\":true", 14);
		if (r != plain_invalid)
			fail_msg("--list and --list --json disagree on %s", name);
	}
	free(json);
	return r;
}

/* ---- files -------------------------------------------------------------- */

static unsigned char gen_byte(enum gen g, long pos)
{
	return g == GEN_A ? pattern_byte(pos) :
	       g == GEN_B ? new_byte(pos) :
	       (unsigned char)(pattern_byte(pos) ^ new_byte(pos) ^ 0x5a) | 1;
}

static void fill_gen(unsigned char *buf, enum gen g)
{
	for (long i = 0; i < FILE_SIZE; i++)
		buf[i] = gen_byte(g, i);
}

static void file_path(char *out, const char *dir, int i)
{
	char rel[32];

	snprintf(rel, sizeof(rel), "f%d", i);
	path_in(out, dir, rel);
}

/* MNT/.snapshots/view[/fi] (i < 0: the view's root). */
static void view_file(char *out, struct fixture *f, const char *view, int i)
{
	char dir[PATH_MAX], rel[64];

	snprintf(rel, sizeof(rel), "%s/%s", SNAPDIR, view);
	path_in(dir, f->m.mnt, rel);
	if (i < 0)
		snprintf(out, PATH_MAX, "%s", dir);
	else
		file_path(out, dir, i);
}

/* Rewrite every file through MNT with g, in place: each pwrite whole. */
static void rewrite_all(struct fixture *f, enum gen g)
{
	static unsigned char buf[FILE_SIZE];
	char path[PATH_MAX];

	fill_gen(buf, g);
	for (int i = 0; i < NFILES; i++) {
		int fd;

		file_path(path, f->m.mnt, i);
		fd = open(path, (g == GEN_A ? O_CREAT : 0) | O_WRONLY | O_CLOEXEC,
			  0644);
		if (fd < 0)
			fail_msg("open %s for writing: %s", path, strerror(errno));
		if (pwrite_all(fd, buf, FILE_SIZE, 0))
			fail_msg("a writer failed: pwrite %s: %s", path,
				 strerror(errno));
		assert_int_equal(close(fd), 0);
	}
}

/* fd's FILE_SIZE bytes must be generation g, exactly. */
static void expect_fd(int fd, enum gen g, const char *what)
{
	static unsigned char got[FILE_SIZE + 1];
	ssize_t n = pread(fd, got, sizeof(got), 0);

	if (n != FILE_SIZE)
		fail_msg("%s: read %zd bytes (%s), expected %ld", what, n,
			 n < 0 ? strerror(errno) : "short", FILE_SIZE);
	for (long i = 0; i < FILE_SIZE; i++)
		if (got[i] != gen_byte(g, i))
			fail_msg("%s: byte %ld is 0x%02x, expected 0x%02x "
				 "(generation %c)", what, i, got[i],
				 gen_byte(g, i), 'A' + g);
}

static void expect_file(const char *path, enum gen g)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	expect_fd(fd, g, path);
	close(fd);
}

/* Every file of view reads generation g. */
static void expect_view(struct fixture *f, const char *view, enum gen g)
{
	char path[PATH_MAX];

	for (int i = 0; i < NFILES; i++) {
		view_file(path, f, view, i);
		expect_file(path, g);
	}
}

/*
 * op fails with EIO, never succeeds nor fails otherwise. The kernel may
 * answer from its cache until the daemon's evictor thread has dropped it
 * (it does so right after the invalidation): a few seconds at most. What
 * it answers from there meanwhile is the instant's, never anything else.
 */
#define EXPECT_EIO(what, op)                                                 \
	do {                                                                 \
		long deadline_ = now_ms() + 5000;                            \
		int r_;                                                      \
		while ((r_ = (op)) >= 0 && now_ms() < deadline_)             \
			sleep_ms(20);                                        \
		if (r_ >= 0)                                                 \
			fail_msg("%s still succeeds in an invalidated view", \
				 what);                                      \
		if (errno != EIO)                                            \
			fail_msg("%s: %s, expected EIO", what,               \
				 strerror(errno));                           \
	} while (0)

static int open_close(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
	return fd;
}

static int stat_of(const char *path)
{
	struct stat st;

	return stat(path, &st);
}

/* Reads through fd (opened before the invalidation) give the instant's
 * bytes (from the kernel's cache) or EIO; then only EIO. */
static int read_old(int fd)
{
	static unsigned char got[FILE_SIZE];
	ssize_t n = pread(fd, got, sizeof(got), 0);

	if (n < 0)
		return -1;
	for (long i = 0; i < n; i++)
		if (got[i] != gen_byte(GEN_A, i))
			fail_msg("an invalidated view's open file read byte "
				 "%ld as 0x%02x, not the instant's", i, got[i]);
	return 0;
}

static int list_dir(const char *path)
{
	DIR *d = opendir(path);

	if (!d)
		return -1;
	while (readdir(d))
		;
	closedir(d);
	return 0;
}

/* Does readdir of dir list name? */
static bool dir_lists(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;

	if (!d)
		fail_msg("opendir %s: %s", dir, strerror(errno));
	while ((e = readdir(d)))
		found |= !strcmp(e->d_name, name);
	closedir(d);
	return found;
}

/* Every object of view answers EIO: each file, its root, an fd from before. */
static void expect_view_eio(struct fixture *f, const char *view, int fd_before)
{
	char path[PATH_MAX], what[PATH_MAX + 32];

	for (int i = 0; i < NFILES; i++) {
		view_file(path, f, view, i);
		snprintf(what, sizeof(what), "open %s", path);
		EXPECT_EIO(what, open_close(path));
		snprintf(what, sizeof(what), "stat %s", path);
		EXPECT_EIO(what, stat_of(path));
	}
	if (fd_before >= 0) {
		EXPECT_EIO("read of a file opened before", read_old(fd_before));
		EXPECT_EIO("SEEK_DATA in a file opened before",
			   (int)lseek(fd_before, 0, SEEK_DATA));
	}
	view_file(path, f, view, -1);
	EXPECT_EIO("listing the view's root", list_dir(path));
}

static long long counter(struct fixture *f, const char *name)
{
	long long v = mount_counter(f->m.mnt, name);

	if (v < 0)
		fail_msg("stats have no %s", name);
	return v;
}

/* Common start: the files (A) on a mount where the cap is what we say. */
static void begin(struct fixture *f)
{
	if (f->skip) {
		print_message("# skip: %s\n", f->skip);
		skip();
	}
	/* Clones (XFS/btrfs SRC) preserve whole files at open: other sums. */
	if (counter(f, "clones") != 0) {
		print_message("# skip: SRC takes clones; the sums below assume "
			      "copies\n");
		skip();
	}
	assert_int_equal(counter(f, "max_preserve"), CAP_BYTES);
	rewrite_all(f, GEN_A);
}

/* ---- tests -------------------------------------------------------------- */

static void test_oldest_view_whole(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	begin(f);
	view_ok(f, SFS_IOC_VIEW_CREATE, "old");
	/* Read once: the kernel caches old's entries and pages. */
	expect_view(f, "old", GEN_A);
	view_file(path, f, "old", 0);
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(f->fd >= 0);
	expect_fd(f->fd, GEN_A, "old/f0 held open");
	rewrite_all(f, GEN_B);
	assert_int_equal(counter(f, "bytes_preserved"), NFILES * FILE_SIZE);
	view_ok(f, SFS_IOC_VIEW_CREATE, "new");
	rewrite_all(f, GEN_C);

	expect_view(f, "new", GEN_B);
	expect_view_eio(f, "old", f->fd);
	assert_int_equal(counter(f, "views_invalidated_max_preserve"), 1);
	assert_int_equal(counter(f, "snapshots_invalidated_max_preserve"), 0);
	for (int i = 0; i < NFILES; i++) {
		file_path(path, f->m.mnt, i);
		expect_file(path, GEN_C);
	}
	/* Old's bytes went back: only new's are kept. */
	assert_int_equal(counter(f, "bytes_preserved"), NFILES * FILE_SIZE);
	assert_int_equal(view_listed_invalid(f->m.mnt, "old"), 1);
	assert_int_equal(view_listed_invalid(f->m.mnt, "new"), 0);
	/* Still listed where users look, so they can see it and delete it. */
	path_in(path, f->m.mnt, SNAPDIR);
	assert_true(dir_lists(path, "old"));

	close_fd(&f->fd);
	view_ok(f, SFS_IOC_VIEW_DELETE, "old");
	assert_int_equal(view_listed_invalid(f->m.mnt, "old"), -1);
	path_in(path, f->m.mnt, SNAPDIR);
	assert_false(dir_lists(path, "old"));
	view_file(path, f, "old", -1);
	assert_int_equal(stat_of(path), -1);
	assert_int_equal(errno, ENOENT);
	expect_view(f, "new", GEN_B);
	assert_int_equal(counter(f, "views_invalidated_max_preserve"), 1);
}

static void test_plain_newer_outlives_view(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	begin(f);
	view_ok(f, SFS_IOC_VIEW_CREATE, "old");
	rewrite_all(f, GEN_B);
	file_path(path, f->m.mnt, 0);
	f->plain = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(f->plain >= 0);
	view_ok(f, SFS_IOC_VIEW_CREATE, "new");
	rewrite_all(f, GEN_C);

	expect_fd(f->plain, GEN_B, "plain snapshot taken after old");
	expect_view(f, "new", GEN_B);
	expect_view_eio(f, "old", -1);
	assert_int_equal(counter(f, "views_invalidated_max_preserve"), 1);
	assert_int_equal(counter(f, "snapshots_invalidated_max_preserve"), 0);
}

static void test_plain_older_goes_first(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	unsigned char byte;

	begin(f);
	file_path(path, f->m.mnt, 0);
	f->plain = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(f->plain >= 0);
	view_ok(f, SFS_IOC_VIEW_CREATE, "old");
	rewrite_all(f, GEN_B);
	view_ok(f, SFS_IOC_VIEW_CREATE, "new");
	rewrite_all(f, GEN_C);

	/* The plain snapshot shares its bytes with old: losing it alone
	 * frees nothing, so old goes too. */
	errno = 0;
	assert_int_equal(pread(f->plain, &byte, 1, 0), -1);
	assert_int_equal(errno, EIO);
	expect_view(f, "new", GEN_B);
	expect_view_eio(f, "old", -1);
	assert_int_equal(counter(f, "snapshots_invalidated_max_preserve"), 1);
	assert_int_equal(counter(f, "views_invalidated_max_preserve"), 1);
}

/*
 * One change needs more for a view than the cap allows at all, and the
 * view keeps nothing yet (so it was no candidate for making room): the
 * view goes whole rather than lose that file alone.
 */
static void test_change_bigger_than_cap(void **state)
{
	struct fixture *f = *state;
	long big = CAP_BYTES + 256 * KiB;
	unsigned char *buf = malloc((size_t)big), *got = malloc((size_t)big);
	char path[PATH_MAX], root[PATH_MAX];
	int fd;

	assert_non_null(buf);
	assert_non_null(got);
	begin(f);
	fill_pattern(buf, 0, big, false);
	path_in(path, f->m.mnt, "big");
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite_all(fd, buf, (size_t)big, 0), 0);
	view_ok(f, SFS_IOC_VIEW_CREATE, "only");
	/* One change that needs all of it kept at once (a write would come
	 * in pieces, and the view would then keep bytes before the cap). */
	if (ftruncate(fd, 0))
		fail_msg("the writer failed: ftruncate: %s", strerror(errno));
	fill_pattern(buf, 0, big, true);
	if (pwrite_all(fd, buf, (size_t)big, 0))
		fail_msg("the writer failed: %s", strerror(errno));
	assert_int_equal(close(fd), 0);

	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread_all(fd, got, (size_t)big, 0), 0);
	assert_memory_equal(got, buf, (size_t)big);
	close(fd);
	/* Unchanged files too: the view is gone as a whole. */
	expect_view_eio(f, "only", -1);
	view_file(root, f, "only", -1);
	path_in(path, root, "big");
	EXPECT_EIO("open only/big", open_close(path));
	assert_int_equal(counter(f, "views_invalidated_max_preserve"), 1);
	assert_int_equal(counter(f, "snapshots_invalidated_max_preserve"), 0);
	assert_int_equal(counter(f, "bytes_preserved"), 0);
	assert_int_equal(view_listed_invalid(f->m.mnt, "only"), 1);
	free(buf);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_oldest_view_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plain_newer_outlives_view,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_plain_older_goes_first,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_bigger_than_cap,
						setup, teardown),
	};

	test_require_fuse();
	cmocka_set_test_filter(getenv("SFS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
