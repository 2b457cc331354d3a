/*
 * Tree views (G7) and changes made in SRC directly, on an ext4 loop SRC.
 *
 * With -o oob=preserve the kernel holds every writer of SRC's filesystem
 * at its pre-content hook (K9) until the daemon answers. When a view is
 * alive and the held access may change a file the view still needs as it
 * was, the daemon captures the file first: the view then reads the
 * instant's bytes and size, whatever is written in SRC directly (pwrite,
 * open O_TRUNC, truncate, append, fallocate). Reading in SRC captures
 * nothing. What the kernel reports only after the fact (a name created in
 * SRC) still makes the view answer EIO for that directory: never the new
 * state, never a mix; so does a file whose capture came only after a
 * change nothing announced (a chmod in SRC). With -o oob=detect (the control) a file written in
 * SRC after the view answers EIO in it.
 *
 * Needs root (loop devices, fanotify) and a kernel with pre-content
 * events (6.14+); skips otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mount_util.h"
#include "sfs/fanotify_compat.h"
#include "sfs/view_ioctl.h"
#include "test_util.h"

#define SIZE (256 * 1024)

struct fixture {
	struct test_mount m;
	unsigned char old[SIZE];
};

/* Does this kernel hold accesses for a pre-content group on ext4 here? */
static bool kernel_has_pre_content(const char *dir)
{
	int fan = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC, O_RDONLY);
	bool ok;

	if (fan < 0)
		return false;
	ok = fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
			   FAN_PRE_ACCESS, AT_FDCWD, dir) == 0;
	close(fan);
	return ok;
}

static void fill(unsigned char *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)((i * 2654435761u) >> 13 ^ seed);
}

static int setup_with(void **state, const char *opts)
{
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f || test_loop_setup(&f->m, "voob", "mkfs.ext4 -q -F", 512, false,
				  NULL))
		return -1;
	if (!kernel_has_pre_content(f->m.src)) {
		test_mount_destroy(&f->m);
		free(f);
		*state = NULL;	/* the tests skip */
		return 0;
	}
	if (test_mount_start(&f->m, opts)) {
		test_mount_destroy(&f->m);
		return -1;
	}
	return 0;
}

static int setup_preserve(void **state)
{
	return setup_with(state, "oob=preserve");
}

static int setup_detect(void **state)
{
	return setup_with(state, "oob=detect");
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f) {
		test_mount_destroy(&f->m);
		free(f);
	}
	return 0;
}

static struct fixture *fixture_or_skip(void **state)
{
	if (!*state) {
		printf("# no pre-content fanotify events on this kernel\n");
		skip();
	}
	return *state;
}

static void take_view(struct fixture *f, const char *name)
{
	struct sfs_ioc_view v = { { 0 } };
	int fd = open(f->m.mnt, O_RDONLY | O_DIRECTORY);

	assert_true(fd >= 0);
	snprintf(v.name, sizeof(v.name), "%s", name);
	assert_int_equal(ioctl(fd, SFS_IOC_VIEW_CREATE, &v), 0);
	close(fd);
}

/* SRC/name gets the old bytes, and is read once through MNT. */
static void make_file(struct fixture *f, const char *name, unsigned seed)
{
	char path[PATH_MAX];
	unsigned char buf[SIZE];
	int fd;

	fill(f->old, SIZE, seed);
	path_in(path, f->m.src, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, f->old, SIZE), 0);
	close(fd);
	path_in(path, f->m.mnt, name);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, SIZE), SIZE);
	close(fd);
}

/* The view's file reads exactly want (n bytes): errno 0, or the error. */
static int view_reads(struct fixture *f, const char *view, const char *name,
		      const unsigned char *want, size_t n)
{
	static unsigned char got[SIZE + 1];
	char rel[PATH_MAX], path[PATH_MAX];
	ssize_t r;
	int fd;

	snprintf(rel, sizeof(rel), ".snapshots/%s/%s", view, name);
	path_in(path, f->m.mnt, rel);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return errno;
	r = read(fd, got, sizeof(got));
	close(fd);
	if (r < 0)
		return errno;
	printf("# %s in view %s: %zd bytes, %s\n", name, view, r,
	       (size_t)r == n && !memcmp(got, want, n) ? "the instant's" : "OTHER");
	assert_int_equal(r, n);
	assert_memory_equal(got, want, n);
	return 0;
}

/* Changes made in SRC directly, each after a view of its own. */
static void test_src_changes_preserved(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	unsigned char new[SIZE];
	char path[PATH_MAX];
	long long before;
	int fd;

	fill(new, SIZE, 0x5a);
	make_file(f, "a", 1);
	path_in(path, f->m.src, "a");
	before = mount_counter(f->m.mnt, "view_oob_captures");

	take_view(f, "pwrite");
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite_all(fd, new, 4096, 8192), 0);
	close(fd);
	assert_int_equal(view_reads(f, "pwrite", "a", f->old, SIZE), 0);
	memcpy(f->old + 8192, new, 4096);	/* the live file now */

	take_view(f, "trunc");
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, new, 1000), 0);
	close(fd);
	assert_int_equal(view_reads(f, "trunc", "a", f->old, SIZE), 0);
	/* The earlier view still reads its own instant. */
	{
		unsigned char first[SIZE];

		fill(first, SIZE, 1);
		assert_int_equal(view_reads(f, "pwrite", "a", first, SIZE), 0);
	}
	memcpy(f->old, new, 1000);

	take_view(f, "grow");
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, new, 5000), 0);
	close(fd);
	assert_int_equal(truncate(path, 100), 0);
	assert_int_equal(view_reads(f, "grow", "a", f->old, 1000), 0);

	printf("# view_oob_captures %lld -> %lld, view_eio %lld\n", before,
	       mount_counter(f->m.mnt, "view_oob_captures"),
	       mount_counter(f->m.mnt, "view_eio"));
	assert_true(mount_counter(f->m.mnt, "view_oob_captures") >= before + 3);
	assert_int_equal(mount_counter(f->m.mnt, "view_eio"), 0);
}

/* fallocate in SRC (punch and zero) after the view. */
static void test_src_fallocate_preserved(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	char path[PATH_MAX];
	int fd;

	make_file(f, "b", 2);
	take_view(f, "v");
	path_in(path, f->m.src, "b");
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   4096, 65536), 0);
	assert_int_equal(fallocate(fd, FALLOC_FL_ZERO_RANGE, 131072, 8192), 0);
	close(fd);
	assert_int_equal(view_reads(f, "v", "b", f->old, SIZE), 0);
}

/* Reading in SRC captures nothing. */
static void test_src_reads_capture_nothing(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	unsigned char buf[SIZE];
	char path[PATH_MAX];
	long long captures;
	int fd;

	make_file(f, "c", 3);
	take_view(f, "v");
	captures = mount_counter(f->m.mnt, "view_captures");
	path_in(path, f->m.src, "c");
	for (int i = 0; i < 3; i++) {
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(read(fd, buf, SIZE), SIZE);
		close(fd);
	}
	assert_int_equal(mount_counter(f->m.mnt, "view_captures"), captures);
	assert_int_equal(view_reads(f, "v", "c", f->old, SIZE), 0);
}

/* A name made in SRC directly: only known after the fact, so EIO. */
static void test_src_new_name_is_eio(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	char path[PATH_MAX];
	int fd;

	assert_int_equal(mkdir(strcat(strcpy(path, f->m.src), "/d"), 0755), 0);
	take_view(f, "v");
	path_in(path, f->m.src, "d/new");
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	path_in(path, f->m.mnt, ".snapshots/v/d/new");
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(errno, EIO);
	assert_true(mount_counter(f->m.mnt, "view_eio") > 0);
}

/*
 * A change in SRC that nothing announces (chmod: no pre-content event),
 * then a change that captures the file: through MNT, or written in SRC.
 * The capture is of a state after the instant, so the view must not
 * serve it (it did: the view showed the new mode as the instant's).
 */
static void test_capture_after_unannounced_change_is_eio(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	const char *names[] = { "through-mnt", "in-src" };
	unsigned char new[4096];
	char path[PATH_MAX], rel[PATH_MAX];
	struct stat st;
	int fd;

	fill(new, sizeof(new), 0x33);
	for (int i = 0; i < 2; i++)
		make_file(f, names[i], 10 + i);
	take_view(f, "v");
	for (int i = 0; i < 2; i++) {
		path_in(path, f->m.src, names[i]);
		assert_int_equal(chmod(path, 0600), 0);
		path_in(path, i == 0 ? f->m.mnt : f->m.src, names[i]);
		fd = open(path, O_WRONLY);
		assert_true(fd >= 0);
		assert_int_equal(pwrite_all(fd, new, sizeof(new), 0), 0);
		close(fd);
		snprintf(rel, sizeof(rel), ".snapshots/v/%s", names[i]);
		path_in(path, f->m.mnt, rel);
		if (stat(path, &st) == 0)
			fail_msg("%s: the view serves mode %o, a state after the "
				 "instant (0644)", names[i], st.st_mode & 07777);
		assert_int_equal(errno, EIO);
	}
}

/*
 * Views taken while writers in SRC rewrite their files over and over, in
 * order, one 64 KiB pwrite at a time (generation g over g - 1). Each
 * pwrite is held and captured before it lands, so a view's file is some
 * state the file had: chunks [0, k) of one generation, the rest of the
 * one before, every chunk whole; it reads the same later, and never EIO.
 * (A write of the thread's previous grant still counted as running made
 * the capture fail, and the view answered EIO: 2 of 188 files under load.)
 */
#define RW_FILES 2
#define RW_CHUNK 65536
#define RW_VIEWS 12

static unsigned char rw_byte(unsigned gen, size_t pos)
{
	return (unsigned char)(gen * 131 + pos / RW_CHUNK * 7 + 1);
}

static void rw_writer(const char *path)
{
	static unsigned char chunk[RW_CHUNK];
	int fd = open(path, O_WRONLY);

	if (fd < 0)
		_exit(2);
	for (unsigned gen = 1;; gen++)
		for (size_t off = 0; off < SIZE; off += RW_CHUNK) {
			memset(chunk, rw_byte(gen, off), RW_CHUNK);
			if (pwrite_all(fd, chunk, RW_CHUNK, (off_t)off))
				_exit(3);
		}
}

/* Is buf a state of a writer's file: every chunk whole, generation g up
 * to some chunk, g - 1 after it? (Generations repeat every 256.) */
static bool rw_state_ok(const unsigned char *buf)
{
	unsigned gen = 0;
	size_t k = 0;

	for (size_t c = 0; c < SIZE; c += RW_CHUNK)
		for (size_t i = 1; i < RW_CHUNK; i++)
			if (buf[c + i] != buf[c])
				return false;
	while (gen < 256 && buf[0] != rw_byte(gen, 0))
		gen++;
	if (gen == 256)
		return false;
	while (k < SIZE && buf[k] == rw_byte(gen, k))
		k += RW_CHUNK;
	for (; k < SIZE; k += RW_CHUNK)
		if (buf[k] != rw_byte(gen + 255, k))
			return false;
	return true;
}

static void test_views_during_src_rewrites(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	static unsigned char first[RW_VIEWS][RW_FILES][SIZE], again[SIZE];
	pid_t pids[RW_FILES];
	char path[PATH_MAX], name[64], rel[PATH_MAX];
	int eio = 0;

	for (int i = 0; i < RW_FILES; i++) {
		unsigned char buf[SIZE];
		int fd;

		for (size_t k = 0; k < SIZE; k++)
			buf[k] = rw_byte(0, k);
		snprintf(name, sizeof(name), "rw%d", i);
		path_in(path, f->m.src, name);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write_all(fd, buf, SIZE), 0);
		close(fd);
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0)
			rw_writer(path);
	}
	for (int v = 0; v < RW_VIEWS; v++) {
		sleep_ms(150);
		snprintf(name, sizeof(name), "v%d", v);
		take_view(f, name);
		for (int i = 0; i < RW_FILES; i++) {
			int fd;

			snprintf(rel, sizeof(rel), ".snapshots/v%d/rw%d", v, i);
			path_in(path, f->m.mnt, rel);
			fd = open(path, O_RDONLY);
			if (fd < 0 || read(fd, first[v][i], SIZE) != SIZE) {
				printf("# view %d, file %d: %s\n", v, i, strerror(errno));
				eio += errno == EIO;
				memset(first[v][i], 0, SIZE);
			}
			if (fd >= 0)
				close(fd);
		}
	}
	for (int i = 0; i < RW_FILES; i++) {
		kill(pids[i], SIGKILL);
		waitpid(pids[i], NULL, 0);
	}
	printf("# %d views of %d files rewritten in SRC: %d EIO, view_oob_captures %lld, "
	       "view_eio %lld\n", RW_VIEWS, RW_FILES, eio,
	       mount_counter(f->m.mnt, "view_oob_captures"),
	       mount_counter(f->m.mnt, "view_eio"));
	assert_int_equal(eio, 0);
	for (int v = 0; v < RW_VIEWS; v++)
		for (int i = 0; i < RW_FILES; i++) {
			int fd;

			assert_true(rw_state_ok(first[v][i]));
			snprintf(rel, sizeof(rel), ".snapshots/v%d/rw%d", v, i);
			path_in(path, f->m.mnt, rel);
			fd = open(path, O_RDONLY);
			assert_true(fd >= 0);
			assert_int_equal(read(fd, again, SIZE), SIZE);
			close(fd);
			assert_memory_equal(again, first[v][i], SIZE);
		}
	assert_int_equal(mount_counter(f->m.mnt, "view_eio"), 0);
}

/* Control: with oob=detect nothing is preserved; the view says EIO. */
static void test_detect_is_eio(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	unsigned char new[SIZE];
	char path[PATH_MAX];
	int fd;

	fill(new, SIZE, 0x77);
	make_file(f, "a", 4);
	take_view(f, "v");
	path_in(path, f->m.src, "a");
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite_all(fd, new, 4096, 0), 0);
	close(fd);
	assert_int_equal(view_reads(f, "v", "a", f->old, SIZE), EIO);
	assert_int_equal(mount_counter(f->m.mnt, "view_oob_captures"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_src_changes_preserved,
						setup_preserve, teardown),
		cmocka_unit_test_setup_teardown(test_src_fallocate_preserved,
						setup_preserve, teardown),
		cmocka_unit_test_setup_teardown(test_src_reads_capture_nothing,
						setup_preserve, teardown),
		cmocka_unit_test_setup_teardown(test_src_new_name_is_eio,
						setup_preserve, teardown),
		cmocka_unit_test_setup_teardown(test_capture_after_unannounced_change_is_eio,
						setup_preserve, teardown),
		cmocka_unit_test_setup_teardown(test_views_during_src_rewrites,
						setup_preserve, teardown),
		cmocka_unit_test_setup_teardown(test_detect_is_eio,
						setup_detect, teardown),
	};

	test_require_fuse();
	if (geteuid() != 0)
		test_skip_all("needs root (loop devices, fanotify)");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
