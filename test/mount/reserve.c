/*
 * The root daemon writes on a caller's behalf with the caller's limits: on
 * an ext4 with reserved blocks (mkfs -m 25 on a fresh loop device), nobody
 * filling a file through MNT gets ENOSPC after as many bytes as nobody
 * filling one directly on SRC, not where root's would stop (ext4 lets
 * fsuid 0 and CAP_SYS_RESOURCE into the reserve, and quotas let
 * CAP_SYS_RESOURCE past hard limits: the daemon drops both for the write,
 * lib/cred.c sfs_cred_enter_data). Root through MNT still gets the reserve.
 * Needs root and mkfs.ext4; skipped otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mount_util.h"

#define NOBODY 65534
#define CHUNK (64 * 1024)
/* Metadata may be laid out a little differently; the reserve is 4 MiB. */
#define SLACK (512 * 1024)

struct fixture {
	struct test_mount m;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f || test_loop_setup(&f->m, "reserve", "mkfs.ext4 -q -F -m 25", 16, false, NULL))
		return -1;
	if (chmod(f->m.src, 01777) || test_mount_start(&f->m, "allow_other")) {
		test_mount_destroy(&f->m);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	test_mount_destroy(&f->m);
	free(f);
	return 0;
}

/*
 * Fill path (as nobody when drop) until a write fails; the bytes written,
 * or -1 if the failure was not ENOSPC. The file is removed afterwards.
 */
static long long fill(const char *path, bool drop)
{
	int p[2];
	long long n = -1;
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		static char buf[CHUNK];
		long long done = 0;
		ssize_t w;
		int fd;

		close(p[0]);
		if (drop && (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
			     setresuid(NOBODY, NOBODY, NOBODY)))
			_exit(2);
		memset(buf, 'r', sizeof(buf));
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd < 0)
			_exit(3);
		while ((w = write(fd, buf, sizeof(buf))) > 0)
			done += w;
		if (w < 0 && errno != ENOSPC)
			done = -1;
		fsync(fd);
		close(fd);
		if (write(p[1], &done, sizeof(done)) != sizeof(done))
			_exit(4);
		_exit(0);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], &n, sizeof(n)) != sizeof(n))
		n = -1;
	close(p[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	unlink(path);
	sync();
	return n;
}

static void test_callers_writes_stop_at_the_reserve(void **state)
{
	struct fixture *f = *state;
	char direct[PATH_MAX + 16], via[PATH_MAX + 16], root[PATH_MAX + 16];
	long long d, v, r;

	snprintf(direct, sizeof(direct), "%s/direct", f->m.src);
	snprintf(via, sizeof(via), "%s/via", f->m.mnt);
	snprintf(root, sizeof(root), "%s/root", f->m.mnt);
	d = fill(direct, true);
	v = fill(via, true);
	r = fill(root, false);
	printf("# nobody on SRC: %lld bytes, nobody through MNT: %lld, "
	       "root through MNT: %lld\n", d, v, r);
	assert_true(d > 0 && v > 0 && r > 0);
	/* The reserve is there (root gets it), so the comparison can fail. */
	assert_true(r > d + 2 * SLACK);
	assert_true(v <= d + SLACK && d <= v + SLACK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_callers_writes_stop_at_the_reserve,
						setup, teardown),
	};

	if (geteuid() != 0)
		test_skip_all("loop filesystems need root");
	if (system("command -v mkfs.ext4 >/dev/null 2>&1"))
		test_skip_all("no mkfs.ext4");
	test_require_fuse();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
