/*
 * Out-of-band changes (G3 in doc/guarantees.md): when a file is changed in
 * SRC directly while a snapshot of it is open through MNT, the snapshot's
 * reads fail with EIO -- whole reads, never a short read first. A short
 * read is what the kernel gives when some of the asked pages are still
 * cached in the snapshot's node and the rest fail: GNU tar and cpio take it
 * for the end of a file that shrank, pad the member with zeros and go on
 * (tar: "File shrank by N bytes; padding with zeros"). So the daemon drops
 * the node's cached pages as soon as it knows (fanotify event, or the first
 * failing read).
 *
 *   whole EIO: a snapshot fd reads its first 256 KiB (cached), SRC is
 *      rewritten further on, and once the daemon has seen the event a read
 *      of 4 MiB from offset 0 fails with EIO, not a short count. Without
 *      fanotify's help (-o oob=... not involved: the read-time check), the
 *      second read after the first failure must fail whole too.
 *   created through MNT: such a file is ignored by the watch from its
 *      create on, until a snapshot's open arms it: the same rewrite in SRC
 *      must still fail that snapshot's reads.
 *   tar: tar reads an 8 MiB file through MNT into a pipe nobody drains,
 *      the file is rewritten in SRC meanwhile; tar must report a read
 *      error and fail, never pad zeros and exit 0. Raw twin: the same run
 *      on SRC tears (tar says the file changed, or not even that), so the
 *      test shows what the mount adds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "mount_util.h"
#include "test_util.h"

#define MiB (1024 * 1024)
#define BIG (8 * MiB)

struct fixture {
	struct test_mount m;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	*state = f;
	if (test_mount_prepare(&f->m, "oob"))
		return -1;
	return test_mount_start(&f->m, NULL);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	if (test_mount_finish(&f->m))
		rc = -1;
	free(f);
	return rc;
}

static void write_file(const char *path, const unsigned char *buf, size_t len)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, buf, len), 0);
	assert_int_equal(close(fd), 0);
}

/* Rewrite [off, off + len) of SRC's file directly, with new bytes. */
static void change_in_src(const char *path, off_t off, size_t len)
{
	unsigned char *buf = malloc(len);
	int fd = open(path, O_WRONLY);

	assert_non_null(buf);
	assert_true(fd >= 0);
	fill_pattern(buf, off, (long)len, true);
	assert_int_equal(pwrite_all(fd, buf, len, off), 0);
	assert_int_equal(close(fd), 0);
	free(buf);
}

/* Wait (up to 5 s) until the daemon has counted an out-of-band change. */
static bool oob_seen(const char *mnt, long long before)
{
	for (int i = 0; i < 500; i++) {
		if (mount_counter(mnt, "oob_changes") > before)
			return true;
		sleep_ms(10);
	}
	return false;
}

static void test_whole_eio_after_event(void **state)
{
	struct fixture *f = *state;
	static unsigned char buf[BIG];
	char src[PATH_MAX], mnt[PATH_MAX];
	long long before;
	ssize_t n;
	int fd;

	fill_pattern(buf, 0, BIG, false);
	path_in(src, f->m.src, "f");
	path_in(mnt, f->m.mnt, "f");
	write_file(src, buf, BIG);
	fd = open(mnt, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread_all(fd, buf, 256 * 1024, 0), 0);	/* cached */
	before = mount_counter(f->m.mnt, "oob_changes");
	change_in_src(src, 6 * MiB, 4096);
	if (!oob_seen(f->m.mnt, before)) {
		close(fd);
		skip();		/* no fanotify watch (not root?) */
	}
	sleep_ms(200);		/* the eviction runs on the evictor thread */
	errno = 0;
	n = pread(fd, buf, 4 * MiB, 0);
	printf("# read of 4 MiB after the change in SRC: %zd (%s)\n", n,
	       n < 0 ? strerror(errno) : "bytes");
	assert_int_equal(n, -1);
	assert_int_equal(errno, EIO);
	assert_int_equal(close(fd), 0);
}

/*
 * A file created through MNT is ignored by the watch at its create (no
 * event for our own first write); a snapshot's open must still make its
 * changes in SRC reach us.
 */
/*
 * The daemon's fanotify inode mark on the file, as /proc/PID/fdinfo of its
 * group lists it: its mask and ignore mask. False when there is none.
 */
static bool daemon_mark(pid_t pid, const char *path_in_src, unsigned *mask,
			unsigned *ignored)
{
	struct stat st;
	char dir[64], path[320], line[512];
	struct dirent *d;
	bool found = false;
	DIR *fds;

	assert_int_equal(stat(path_in_src, &st), 0);
	snprintf(dir, sizeof(dir), "/proc/%d/fdinfo", (int)pid);
	fds = opendir(dir);
	assert_non_null(fds);
	while (!found && (d = readdir(fds))) {
		FILE *fp;

		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		fp = d->d_name[0] == '.' ? NULL : fopen(path, "r");
		while (fp && !found && fgets(line, sizeof(line), fp)) {
			unsigned long i;

			found = sscanf(line, "fanotify ino:%lx sdev:%*x mflags:%*x mask:%x "
				       "ignored_mask:%x", &i, mask, ignored) == 3 && i == st.st_ino;
		}
		if (fp)
			fclose(fp);
	}
	closedir(fds);
	return found;
}

static void test_created_through_mnt_still_watched(void **state)
{
	struct fixture *f = *state;
	static unsigned char buf[BIG];
	char src[PATH_MAX], mnt[PATH_MAX];
	unsigned mask, ignored;
	long long before;
	int fd;

	fill_pattern(buf, 0, BIG, false);
	path_in(src, f->m.src, "f");
	path_in(mnt, f->m.mnt, "f");
	write_file(mnt, buf, BIG);
	if (mount_counter(f->m.mnt, "oob_ignore_marks") < 1)
		skip();		/* no fanotify watch (not root?) */
	/* Ignored at create, by an inode mark that also carries the
	 * filesystem mark's mask ... */
	assert_true(daemon_mark(f->m.pid, src, &mask, &ignored));
	assert_int_not_equal(mask, 0);
	assert_int_not_equal(ignored, 0);
	fd = open(mnt, O_RDONLY);
	assert_true(fd >= 0);
	/* ... so the snapshot's open removes only the ignore mask: the mark
	 * (and the kernel's connector, whose teardown costs an SRCU grace
	 * period per file) stays. */
	assert_true(daemon_mark(f->m.pid, src, &mask, &ignored));
	assert_int_not_equal(mask, 0);
	assert_int_equal(ignored, 0);
	assert_int_equal(pread_all(fd, buf, 256 * 1024, 0), 0);
	before = mount_counter(f->m.mnt, "oob_changes");
	change_in_src(src, 6 * MiB, 4096);
	assert_true(oob_seen(f->m.mnt, before));
	sleep_ms(200);		/* the eviction runs on the evictor thread */
	errno = 0;
	assert_int_equal(pread(fd, buf, 4 * MiB, 0), -1);
	assert_int_equal(errno, EIO);
	assert_int_equal(close(fd), 0);
}

/* Without an event first: the read-time check fails one read (which may
 * be short), and every later read fails whole. */
static void test_whole_eio_after_first_failure(void **state)
{
	struct fixture *f = *state;
	static unsigned char buf[BIG];
	char src[PATH_MAX], mnt[PATH_MAX];
	struct stat st;
	ssize_t n;
	int fd, w;

	fill_pattern(buf, 0, BIG, false);
	path_in(src, f->m.src, "g");
	path_in(mnt, f->m.mnt, "g");
	write_file(src, buf, BIG);
	fd = open(mnt, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread_all(fd, buf, 256 * 1024, 0), 0);
	/* Grow it in SRC: size and mtime change, which the read path sees. */
	w = open(src, O_WRONLY | O_APPEND);
	assert_true(w >= 0);
	assert_int_equal(write_all(w, "tail", 4), 0);
	assert_int_equal(close(w), 0);
	assert_int_equal(stat(src, &st), 0);
	n = pread(fd, buf, 4 * MiB, 0);
	printf("# first read after the change: %zd\n", n);
	sleep_ms(200);
	for (int i = 0; i < 3; i++) {
		errno = 0;
		n = pread(fd, buf, 4 * MiB, 0);
		assert_int_equal(n, -1);
		assert_int_equal(errno, EIO);
	}
	assert_int_equal(close(fd), 0);
}

/*
 * tar -cf - -C dir name > pipe: tar opens the file, fills the pipe and
 * blocks; the file is rewritten in SRC; then the pipe is drained. Returns
 * tar's exit status; its stderr into err.
 */
static int tar_while_rewritten(const char *dir, const char *src_file,
			       char *err, size_t errlen)
{
	int out[2], errp[2], status;
	char sink[65536];
	size_t got = 0;
	pid_t pid;

	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(errp), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(errp[1], 2);
		close(out[0]);
		close(errp[0]);
		execlp("tar", "tar", "-cf", "-", "-C", dir, "f", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	close(errp[1]);
	/* tar has the file open once the pipe has its first bytes; wait until
	 * it is full (tar blocked) by letting it run a little. */
	struct pollfd p = { out[0], POLLIN, 0 };
	assert_int_equal(poll(&p, 1, 10000), 1);
	sleep_ms(300);
	change_in_src(src_file, 0, BIG);	/* whole-file rewrite */
	sleep_ms(300);
	while (read(out[0], sink, sizeof(sink)) > 0)
		;
	for (ssize_t n; got + 1 < errlen &&
	     (n = read(errp[0], err + got, errlen - 1 - got)) > 0;)
		got += (size_t)n;
	err[got] = '\0';
	close(out[0]);
	close(errp[0]);
	assert_true(wait_pid_ms(pid, &status, 60000));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_tar_reports_read_error(void **state)
{
	struct fixture *f = *state;
	static unsigned char buf[BIG];
	char src[PATH_MAX], raw_dir[PATH_MAX], raw[PATH_MAX], err[4096];
	int rc;

	fill_pattern(buf, 0, BIG, false);
	/* Raw twin: tar over SRC itself, rewritten the same way. */
	path_in(raw_dir, f->m.base, "raw");
	assert_int_equal(mkdir(raw_dir, 0755), 0);
	path_in(raw, raw_dir, "f");
	write_file(raw, buf, BIG);
	rc = tar_while_rewritten(raw_dir, raw, err, sizeof(err));
	printf("# raw SRC: tar exit %d, stderr: %s\n", rc, err[0] ? err : "(none)");

	path_in(src, f->m.src, "f");
	write_file(src, buf, BIG);
	rc = tar_while_rewritten(f->m.mnt, src, err, sizeof(err));
	printf("# through MNT: tar exit %d, stderr: %s\n", rc, err[0] ? err : "(none)");
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(err, "Input/output error"));
	assert_null(strstr(err, "padding with zeros"));
	assert_null(strstr(err, "shrank"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_whole_eio_after_event, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_created_through_mnt_still_watched,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_whole_eio_after_first_failure,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_tar_reports_read_error, setup,
						teardown),
	};

	if (geteuid() != 0)
		test_skip_all("needs root (fanotify watch of SRC)");
	test_require_fuse();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
