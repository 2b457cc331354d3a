/*
 * systemd's readiness protocol (fs/notify.c), seen from a fake systemd: the
 * test binds an AF_UNIX datagram socket, starts "stablefs -f SRC MNT" with
 * NOTIFY_SOCKET pointing at it, and reads what arrives, with the sender's
 * pid (SO_PASSCRED) as systemd checks it for NotifyAccess=main.
 *
 * - READY=1 arrives from the daemon's own pid, and at the moment it is
 *   read MNT is already the stablefs mount in /proc/self/mounts (a unit
 *   ordered after the service must never see the empty directory), and a
 *   file of SRC reads through it.
 * - STOPPING=1 arrives, once and after READY=1, both when the daemon is
 *   sent SIGTERM (systemctl stop) and when MNT is unmounted
 *   (fusermount3 -u): queued before the process exited, since we read it
 *   only after reaping the daemon. The daemon exits 0, the mount is gone.
 * - A SRC whose name holds "\nMAINPID=1" does not add that assignment to
 *   the STATUS= line that names it.
 * - A mount that fails (MNT not empty) sends no READY=1 and exits 1.
 * - With stderr the stream JOURNAL_STREAM names, error lines start "<3>"
 *   (the journal's priority prefix); with stderr elsewhere, they do not.
 *
 * Each case mounts on fresh temporary directories and always unmounts
 * (mount_util.c); only the daemon we started is signalled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mount_util.h"
#include "test_util.h"

#define WAIT_MS 10000
#define CONTENT "what SRC holds\n"

/* What the fake systemd was told, in order, by whom. */
struct heard {
	int ready, stopping;	/* how many of each */
	int order;		/* messages heard so far */
	int ready_at, stopping_at;	/* position of the first of each */
	bool foreign;		/* a message from another pid */
	bool mounted_at_ready;	/* MNT was the mount when READY=1 was read */
	int mainpid;		/* MAINPID= lines: only a path could put one */
};

struct fixture {
	struct test_mount m;
	int sock;
	char sock_path[PATH_MAX];
	pid_t daemon;		/* the one we started (m.pid is 0 once reaped) */
	struct heard h;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int on = 1;

	assert_non_null(f);
	f->sock = -1;
	*state = f;
	assert_int_equal(test_mount_prepare(&f->m, "notify"), 0);
	path_in(f->sock_path, f->m.base, "notify.sock");
	assert_true(strlen(f->sock_path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, f->sock_path);
	f->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(f->sock >= 0);
	assert_int_equal(setsockopt(f->sock, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
	assert_int_equal(bind(f->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = test_mount_finish(&f->m);	/* also removes the socket */

	close_fd(&f->sock);
	free(f);
	return rc;
}

/* Does the datagram hold the line "line"? */
static bool has_line(const char *msg, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = msg; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

/* Take in one datagram: 1, 0 if none came within ms, -1 on error. */
static int hear_one(struct fixture *f, int ms)
{
	char msg[4096], ctl[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { msg, sizeof(msg) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct pollfd pfd = { f->sock, POLLIN, 0 };
	struct cmsghdr *c;
	pid_t sender = 0;
	ssize_t n;

	if (poll(&pfd, 1, ms) <= 0)
		return 0;
	n = recvmsg(f->sock, &mh, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN ? 0 : -1;
	msg[n] = '\0';
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
			sender = ((struct ucred *)CMSG_DATA(c))->pid;
	f->h.order++;
	if (has_line(msg, "READY=1") && f->h.ready++ == 0) {
		/* Right now, before anything else: is the mount there? */
		f->h.mounted_at_ready = test_is_stablefs_mount(f->m.mnt);
		f->h.ready_at = f->h.order;
	}
	for (const char *p = msg; (p = strstr(p, "\nMAINPID=")); p++)
		f->h.mainpid++;
	if (has_line(msg, "STOPPING=1") && f->h.stopping++ == 0)
		f->h.stopping_at = f->h.order;
	if (sender != f->daemon)
		f->h.foreign = true;
	printf("# heard from pid %d: %s\n", (int)sender, strtok(msg, "\n"));
	return 1;
}

/* Start the daemon told to notify our socket; listen until READY=1. */
static void start_and_hear_ready(struct fixture *f)
{
	long deadline = now_ms() + WAIT_MS;
	int status;

	assert_int_equal(setenv("NOTIFY_SOCKET", f->sock_path, 1), 0);
	assert_int_equal(test_mount_spawn(&f->m, NULL), 0);
	f->daemon = f->m.pid;
	unsetenv("NOTIFY_SOCKET");
	while (!f->h.ready && now_ms() < deadline) {
		assert_true(hear_one(f, 50) >= 0);
		if (!f->h.ready && waitpid(f->m.pid, &status, WNOHANG) == f->m.pid) {
			f->m.pid = 0;
			fail_msg("stablefs exited (status 0x%x) without READY=1", status);
		}
	}
	assert_int_equal(f->h.ready, 1);
	f->m.mounted = true;	/* so that teardown unmounts whatever happens */
	assert_true(f->h.mounted_at_ready);
	assert_false(f->h.foreign);
	assert_int_equal(f->h.stopping, 0);
}

/* A file put in SRC reads through MNT, whole. */
static void assert_served(struct fixture *f)
{
	char path[PATH_MAX], got[64] = "";
	int fd;

	path_in(path, f->m.src, "file");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, CONTENT, strlen(CONTENT)), 0);
	close(fd);
	path_in(path, f->m.mnt, "file");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, got, sizeof(got) - 1), (ssize_t)strlen(CONTENT));
	close(fd);
	assert_string_equal(got, CONTENT);
}

/* The daemon exits 0 by itself, the mount gone; then STOPPING=1 was sent. */
static void assert_clean_exit_after_stopping(struct fixture *f)
{
	int status = 0;

	assert_true(wait_pid_ms(f->m.pid, &status, WAIT_MS));
	f->m.pid = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_false(test_is_stablefs_mount(f->m.mnt));
	f->m.mounted = false;
	/* Reaped: whatever it sent is queued by now. */
	while (hear_one(f, 0) > 0)
		;
	assert_int_equal(f->h.stopping, 1);
	assert_true(f->h.stopping_at > f->h.ready_at);
	assert_int_equal(f->h.ready, 1);
	assert_false(f->h.foreign);
}

static void test_ready_once_mounted_stopping_on_sigterm(void **state)
{
	struct fixture *f = *state;

	start_and_hear_ready(f);
	assert_served(f);
	assert_int_equal(kill(f->m.pid, SIGTERM), 0);
	assert_clean_exit_after_stopping(f);
}

static void test_stopping_on_unmount(void **state)
{
	struct fixture *f = *state;

	start_and_hear_ready(f);
	assert_served(f);
	test_fusermount("-u", f->m.mnt);
	assert_clean_exit_after_stopping(f);
}

/* SRC named "src\nMAINPID=1": STATUS= must not pass the newline on. */
static void test_path_cannot_add_assignments(void **state)
{
	struct fixture *f = *state;

	assert_true(strlen(f->m.base) + 32 < sizeof(f->m.src));
	snprintf(f->m.src, sizeof(f->m.src), "%s/src\nMAINPID=1", f->m.base);
	assert_int_equal(mkdir(f->m.src, 0755), 0);
	start_and_hear_ready(f);
	assert_int_equal(f->h.mainpid, 0);
	assert_int_equal(kill(f->m.pid, SIGTERM), 0);
	assert_clean_exit_after_stopping(f);
	assert_int_equal(f->h.mainpid, 0);
}

static void test_no_ready_when_mount_fails(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	int status = 0, fd;

	/* MNT not empty: refused before mounting. */
	path_in(path, f->m.mnt, "occupied");
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(setenv("NOTIFY_SOCKET", f->sock_path, 1), 0);
	assert_int_equal(test_mount_spawn(&f->m, NULL), 0);
	f->daemon = f->m.pid;
	unsetenv("NOTIFY_SOCKET");
	assert_true(wait_pid_ms(f->m.pid, &status, WAIT_MS));
	f->m.pid = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	while (hear_one(f, 0) > 0)
		;
	assert_int_equal(f->h.ready, 0);
	assert_false(test_is_stablefs_mount(f->m.mnt));
}

/*
 * Run stablefs with args (argv[0] added), its stderr a pipe whose text goes
 * to out. JOURNAL_STREAM names that pipe (as systemd names the journal's
 * stream) if as_journal, else another inode.
 */
static void run_with_stderr(const char *const args[], bool as_journal,
			    char *out, size_t cap)
{
	const char *argv[8] = { test_stablefs_bin() };
	char stream[64];
	struct stat st;
	size_t len = 0;
	int p[2], status;
	ssize_t n;
	pid_t pid;

	for (int i = 0; args[i] && i < 6; i++)
		argv[i + 1] = args[i];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(fstat(p[1], &st), 0);
	snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + (as_journal ? 0 : 1));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		setenv("JOURNAL_STREAM", stream, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (len < cap - 1 && (n = read(p[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(p[0]);
	assert_true(wait_pid_ms(pid, &status, WAIT_MS));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	printf("# stderr (JOURNAL_STREAM %s): %s", as_journal ? "is it" : "is not it", out);
}

/* Every line of out starts with prefix (and there is one). */
static void assert_lines_start(const char *out, const char *prefix)
{
	assert_true(out[0] != '\0');
	for (const char *p = out; *p; p = strchr(p, '\n') + 1) {
		assert_true(strncmp(p, prefix, strlen(prefix)) == 0);
		assert_non_null(strchr(p, '\n'));
	}
}

/*
 * Under systemd, stderr is the journal: errors carry "<3>" (syslog's
 * LOG_ERR) so that journalctl -p err finds them, both our own refusals and
 * libfuse's messages; when stderr is not the stream JOURNAL_STREAM names
 * (a script redirected it), lines stay plain.
 */
static void test_journal_priorities(void **state)
{
	struct fixture *f = *state;
	char missing[PATH_MAX], out[4096];
	const char *ours[] = { missing, f->m.mnt, NULL };
	const char *libfuse[] = { "-o", "frobnicate", f->m.src, f->m.mnt, NULL };

	path_in(missing, f->m.base, "missing");
	run_with_stderr(ours, true, out, sizeof(out));
	assert_lines_start(out, "<3>stablefs: ");
	assert_non_null(strstr(out, "missing"));
	run_with_stderr(libfuse, true, out, sizeof(out));
	assert_lines_start(out, "<3>stablefs: ");
	assert_non_null(strstr(out, "frobnicate"));
	run_with_stderr(ours, false, out, sizeof(out));
	assert_lines_start(out, "stablefs: ");
	run_with_stderr(libfuse, false, out, sizeof(out));
	assert_lines_start(out, "stablefs: ");
	assert_false(test_is_stablefs_mount(f->m.mnt));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ready_once_mounted_stopping_on_sigterm,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stopping_on_unmount, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_cannot_add_assignments,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_ready_when_mount_fails,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_priorities, setup, teardown),
	};

	if (geteuid() != 0)
		test_skip_all("mounts as root");
	test_require_fuse();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
