/*
 * File locks through MNT conflict across every open of a file, whatever
 * FUSE node (incarnation) the open landed on, exactly as on SRC, and with
 * processes locking the file on SRC directly:
 *
 *   flock LOCK_EX on an O_RDWR fd, then LOCK_EX|LOCK_NB and LOCK_SH|LOCK_NB
 *   on a new O_RDONLY fd: EWOULDBLOCK (flock(1) opens read-only).
 *   POSIX: a write lock by a child via O_RDWR, the file then changed (a
 *   later read-only open is a new snapshot node); another process's read
 *   lock via O_RDONLY conflicts, F_GETLK names the holder's pid.
 *   OFD locks likewise, across two opens of one process.
 *   SRC: a locker on SRC blocks MNT lockers and the other way round, for
 *   POSIX and flock; F_GETLK through MNT names the SRC holder.
 *   Closing any fd of the file releases the closing process's POSIX locks.
 *   Blocking F_SETLKW and flock waits are granted when the holder unlocks.
 *   With -o max_threads=2, six blocked waiters leave the mount answering
 *   stat and read; all six get the lock in turn afterwards.
 *   A signal to a blocked waiter interrupts it (EINTR); the mount works on.
 *   A holder that exits leaves no locks behind.
 *   A thread's F_SETLKW goes on when another thread of the process closes
 *   the file, and is then the process's lock.
 *   SIGTERM to the daemon while a waiter blocks: the waiter gets ENOTCONN,
 *   the daemon exits cleanly.
 *
 * flock locks and OFD locks belong to an open file description, which the
 * kernel releases (RELEASE) asynchronously after the last close: the cases
 * that wait for that retry for up to LOCK_RETRY_MS. POSIX locks go at
 * close itself (FLUSH), and are checked without retrying.
 *
 * Every case runs on a fresh mount, unmounted in the teardown also after a
 * failure; the children a case started are killed by pid there.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mount_util.h"
#include "test_util.h"

#define MAX_KIDS 16
#define REPLY_MS 5000		/* a child's answer that should come */
#define BLOCKED_MS 300		/* how long a wait must stay blocked */
#define LOCK_RETRY_MS 2000	/* for releases after an async RELEASE */
#define FILE_SIZE 4096
#define MAX_FDS 8

enum kind { K_FLOCK, K_POSIX, K_OFD };

struct tcase {
	const char *opts;
};

static const struct tcase tc_default = { NULL };
static const struct tcase tc_two_threads = { "max_threads=2" };

struct kid {
	pid_t pid;
	int to, from;		/* commands in, results out */
};

struct fixture {
	struct test_mount m;
	char file[PATH_MAX + 8];	/* MNT/f */
	char src_file[PATH_MAX + 8];	/* SRC/f */
	struct kid kids[MAX_KIDS];
	int nkids;
	int fds[MAX_FDS];	/* open in this process; -1: free */
};

/* ---- locking ---------------------------------------------------------- */

/* 0 or the errno of one lock request. */
static int do_lock(int fd, enum kind kind, short type, off_t start, off_t len,
		   bool wait)
{
	struct flock fl = {
		.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len,
	};
	int cmd, op;

	if (kind == K_FLOCK) {
		op = type == F_WRLCK ? LOCK_EX : type == F_RDLCK ? LOCK_SH : LOCK_UN;
		return flock(fd, op | (wait ? 0 : LOCK_NB)) ? errno : 0;
	}
	if (kind == K_POSIX)
		cmd = wait ? F_SETLKW : F_SETLK;
	else
		cmd = wait ? F_OFD_SETLKW : F_OFD_SETLK;
	return fcntl(fd, cmd, &fl) ? errno : 0;
}

static bool is_conflict(int err)
{
	return err == EAGAIN || err == EACCES;	/* EWOULDBLOCK == EAGAIN */
}

/* The lock is granted within LOCK_RETRY_MS (non-blocking tries). */
static int lock_soon(int fd, enum kind kind, short type)
{
	long end = now_ms() + LOCK_RETRY_MS;
	int err;

	while ((err = do_lock(fd, kind, type, 0, 0, false)) && is_conflict(err) &&
	       now_ms() < end)
		sleep_ms(10);
	return err;
}

/* ---- children ----------------------------------------------------------- */

static void send_int(int fd, int v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v))
		_exit(3);
}

/* A child's next int, or -ETIMEDOUT / -EPIPE. */
static int kid_recv(struct kid *k, int ms)
{
	struct pollfd p = { .fd = k->from, .events = POLLIN };
	int v;

	if (poll(&p, 1, ms) != 1)
		return -ETIMEDOUT;
	if (read(k->from, &v, sizeof(v)) != sizeof(v))
		return -EPIPE;
	return v;
}

static int kid_cmd(struct kid *k, char c)
{
	if (write(k->to, &c, 1) != 1)
		return -EPIPE;
	return kid_recv(k, REPLY_MS);
}

struct job {
	const char *path;
	int flags;		/* open flags */
	enum kind kind;
	short type;
	off_t start, len;
	bool wait;		/* waiter: blocking request, then unlock and exit */
};

static void on_usr1(int sig)
{
	(void)sig;
}

/*
 * A holder: open, lock (non-blocking), say the result, then obey: 'U'
 * unlock, 'W' write a byte, 'C' open and close another fd of the file,
 * 'X' exit. A waiter: say it is about to block, block for the lock, say
 * the result, unlock and exit. SIGUSR1 interrupts (no SA_RESTART).
 */
static void kid_main(const struct job *j, int in, int out)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	int fd, fd2;
	char c;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	fd = open(j->path, j->flags | O_CLOEXEC);
	if (fd < 0) {
		send_int(out, errno);
		_exit(1);
	}
	if (j->wait) {
		send_int(out, 0);
		send_int(out, do_lock(fd, j->kind, j->type, j->start, j->len, true));
		do_lock(fd, j->kind, F_UNLCK, j->start, j->len, false);
		_exit(0);
	}
	send_int(out, do_lock(fd, j->kind, j->type, j->start, j->len, false));
	while (read(in, &c, 1) == 1) {
		switch (c) {
		case 'U':
			send_int(out, do_lock(fd, j->kind, F_UNLCK, j->start,
					      j->len, false));
			break;
		case 'W':
			send_int(out, pwrite(fd, "w", 1, 0) == 1 ? 0 : errno);
			break;
		case 'C':
			fd2 = open(j->path, O_RDONLY | O_CLOEXEC);
			send_int(out, fd2 < 0 || close(fd2) ? errno : 0);
			break;
		default:
			_exit(0);
		}
	}
	_exit(0);
}

static struct kid *kid_start(struct fixture *f, const struct job *j)
{
	int to[2], from[2];
	struct kid *k;

	assert_true(f->nkids < MAX_KIDS);
	assert_int_equal(pipe2(to, O_CLOEXEC), 0);
	assert_int_equal(pipe2(from, O_CLOEXEC), 0);
	k = &f->kids[f->nkids];
	k->pid = fork();
	assert_true(k->pid >= 0);
	if (k->pid == 0) {
		close(to[1]);
		close(from[0]);
		kid_main(j, to[0], from[1]);
	}
	f->nkids++;
	close(to[0]);
	close(from[1]);
	k->to = to[1];
	k->from = from[0];
	return k;
}

/* Start a holder and check its lock was granted. */
static struct kid *holder(struct fixture *f, const struct job *j)
{
	struct kid *k = kid_start(f, j);

	assert_int_equal(kid_recv(k, REPLY_MS), 0);
	return k;
}

/* Start a waiter and check it stays blocked for BLOCKED_MS. */
static struct kid *waiter(struct fixture *f, const struct job *j)
{
	struct kid *k = kid_start(f, j);

	assert_int_equal(kid_recv(k, REPLY_MS), 0);	/* about to block */
	assert_int_equal(kid_recv(k, BLOCKED_MS), -ETIMEDOUT);
	return k;
}

/* The child exited with status 0 within REPLY_MS. */
static void kid_exited(struct kid *k)
{
	long end = now_ms() + REPLY_MS;
	int status;
	pid_t r;

	while ((r = waitpid(k->pid, &status, WNOHANG)) == 0 && now_ms() < end)
		sleep_ms(5);
	assert_int_equal(r, k->pid);
	k->pid = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void kid_exit(struct kid *k)
{
	char c = 'X';

	assert_int_equal(write(k->to, &c, 1), 1);
	kid_exited(k);
}

/* ---- fixture ------------------------------------------------------------ */

static int setup(void **state)
{
	const struct tcase *tc = *state;
	struct fixture *f = calloc(1, sizeof(*f));
	char buf[FILE_SIZE];
	int fd;

	if (!f)
		return -1;
	*state = f;
	for (int i = 0; i < MAX_FDS; i++)
		f->fds[i] = -1;
	if (test_mount_prepare(&f->m, "locks") ||
	    test_mount_start(&f->m, tc->opts))
		return -1;
	snprintf(f->file, sizeof(f->file), "%s/f", f->m.mnt);
	snprintf(f->src_file, sizeof(f->src_file), "%s/f", f->m.src);
	memset(buf, 'a', sizeof(buf));
	fd = open(f->file, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, buf, sizeof(buf)) || close(fd))
		return -1;
	return 0;
}

/* Runs after failures too: our children killed by pid, always unmounted. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	for (int i = 0; i < f->nkids; i++) {
		struct kid *k = &f->kids[i];

		if (k->pid > 0) {
			kill(k->pid, SIGKILL);
			waitpid(k->pid, NULL, 0);
		}
		close(k->to);
		close(k->from);
	}
	for (int i = 0; i < MAX_FDS; i++)
		if (f->fds[i] >= 0)
			close(f->fds[i]);
	if (f->m.pid && test_mount_finish(&f->m))
		rc = -1;
	free(f);
	*state = NULL;
	return rc;
}

/* Open, remembered for the teardown (a failed case leaves fds open, and
 * the mount busy, otherwise). */
static int must_open(struct fixture *f, const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	for (int i = 0; i < MAX_FDS; i++) {
		if (f->fds[i] < 0) {
			f->fds[i] = fd;
			return fd;
		}
	}
	fail_msg("too many fds");
	return -1;
}

static void tclose(struct fixture *f, int fd)
{
	for (int i = 0; i < MAX_FDS; i++)
		if (f->fds[i] == fd)
			f->fds[i] = -1;
	close(fd);
}

/* ---- cases -------------------------------------------------------------- */

static void test_flock_rdwr_vs_rdonly(void **state)
{
	struct fixture *f = *state;
	int w = must_open(f, f->file, O_RDWR), r;

	assert_int_equal(do_lock(w, K_FLOCK, F_WRLCK, 0, 0, false), 0);
	r = must_open(f, f->file, O_RDONLY);
	assert_int_equal(do_lock(r, K_FLOCK, F_WRLCK, 0, 0, false), EWOULDBLOCK);
	assert_int_equal(do_lock(r, K_FLOCK, F_RDLCK, 0, 0, false), EWOULDBLOCK);
	assert_int_equal(do_lock(w, K_FLOCK, F_UNLCK, 0, 0, false), 0);
	assert_int_equal(do_lock(r, K_FLOCK, F_WRLCK, 0, 0, false), 0);
	/* Now the other way round: the reader's lock stops the writer. */
	assert_int_equal(do_lock(w, K_FLOCK, F_RDLCK, 0, 0, false), EWOULDBLOCK);
	tclose(f, r);
	assert_int_equal(lock_soon(w, K_FLOCK, F_WRLCK), 0);
	tclose(f, w);
}

static void test_posix_across_nodes(void **state)
{
	struct fixture *f = *state;
	struct job j = { f->file, O_RDWR, K_POSIX, F_WRLCK, 0, 100, false };
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET,
			    .l_start = 50, .l_len = 10 };
	struct kid *k = holder(f, &j);
	int r;

	assert_int_equal(kid_cmd(k, 'W'), 0);	/* readers: a new version */
	r = must_open(f, f->file, O_RDONLY);
	assert_true(is_conflict(do_lock(r, K_POSIX, F_RDLCK, 50, 10, false)));
	assert_int_equal(fcntl(r, F_GETLK, &fl), 0);
	assert_int_equal(fl.l_type, F_WRLCK);
	assert_int_equal(fl.l_pid, k->pid);
	assert_int_equal(fl.l_start, 0);
	assert_int_equal(fl.l_len, 100);
	/* Outside the holder's range: granted. */
	assert_int_equal(do_lock(r, K_POSIX, F_RDLCK, 200, 10, false), 0);
	assert_int_equal(kid_cmd(k, 'U'), 0);
	assert_int_equal(do_lock(r, K_POSIX, F_RDLCK, 0, 0, false), 0);
	kid_exit(k);
	tclose(f, r);
}

static void test_ofd_across_nodes(void **state)
{
	struct fixture *f = *state;
	int w = must_open(f, f->file, O_RDWR), r;
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };

	assert_int_equal(do_lock(w, K_OFD, F_WRLCK, 0, 0, false), 0);
	assert_int_equal(pwrite(w, "x", 1, 0), 1);
	r = must_open(f, f->file, O_RDONLY);
	assert_true(is_conflict(do_lock(r, K_OFD, F_RDLCK, 0, 0, false)));
	assert_int_equal(fcntl(r, F_OFD_GETLK, &fl), 0);
	assert_int_equal(fl.l_type, F_WRLCK);
	assert_int_equal(fl.l_pid, -1);
	/* The same process's POSIX lock conflicts with the OFD lock too. */
	assert_true(is_conflict(do_lock(r, K_POSIX, F_RDLCK, 0, 0, false)));
	tclose(f, w);
	assert_int_equal(lock_soon(r, K_OFD, F_RDLCK), 0);
	tclose(f, r);
}

static void test_src_locker_blocks_mnt(void **state)
{
	struct fixture *f = *state;
	struct job j = { f->file, O_RDONLY, K_POSIX, F_RDLCK, 0, 0, false };
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	int s = must_open(f, f->src_file, O_RDWR), r;
	struct kid *k;

	/* POSIX write lock on SRC by this process; a child reads via MNT. */
	assert_int_equal(do_lock(s, K_POSIX, F_WRLCK, 0, 0, false), 0);
	k = kid_start(f, &j);
	assert_true(is_conflict(kid_recv(k, REPLY_MS)));
	kid_exit(k);
	r = must_open(f, f->file, O_RDONLY);
	/* F_GETLK through MNT by another process would name us; from this
	 * process our own lock does not conflict, so ask via OFD. */
	assert_int_equal(fcntl(r, F_OFD_GETLK, &fl), 0);
	assert_int_equal(fl.l_type, F_WRLCK);
	/* flock on SRC stops flock via MNT. */
	assert_int_equal(do_lock(s, K_FLOCK, F_WRLCK, 0, 0, false), 0);
	assert_int_equal(do_lock(r, K_FLOCK, F_RDLCK, 0, 0, false), EWOULDBLOCK);
	assert_int_equal(do_lock(s, K_FLOCK, F_UNLCK, 0, 0, false), 0);
	assert_int_equal(do_lock(r, K_FLOCK, F_RDLCK, 0, 0, false), 0);
	tclose(f, r);
	tclose(f, s);
}

static void test_src_getlk_pid(void **state)
{
	struct fixture *f = *state;
	struct job j = { f->src_file, O_RDWR, K_POSIX, F_WRLCK, 10, 20, false };
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	struct kid *k = holder(f, &j);	/* locks SRC directly */
	int r = must_open(f, f->file, O_RDONLY);

	assert_int_equal(fcntl(r, F_GETLK, &fl), 0);
	assert_int_equal(fl.l_type, F_WRLCK);
	assert_int_equal(fl.l_pid, k->pid);
	assert_int_equal(fl.l_start, 10);
	assert_int_equal(fl.l_len, 20);
	kid_exit(k);
	tclose(f, r);
}

static void test_mnt_locker_blocks_src(void **state)
{
	struct fixture *f = *state;
	struct job j = { f->file, O_RDONLY, K_POSIX, F_RDLCK, 0, 0, false };
	int s = must_open(f, f->src_file, O_RDWR), m;
	struct kid *k = holder(f, &j);

	assert_true(is_conflict(do_lock(s, K_POSIX, F_WRLCK, 0, 0, false)));
	assert_int_equal(do_lock(s, K_POSIX, F_RDLCK, 0, 0, false), 0);
	kid_exit(k);	/* exit closes: its locks go at that FLUSH */
	assert_int_equal(do_lock(s, K_POSIX, F_WRLCK, 0, 0, false), 0);
	assert_int_equal(do_lock(s, K_POSIX, F_UNLCK, 0, 0, false), 0);
	m = must_open(f, f->file, O_RDONLY);
	assert_int_equal(do_lock(m, K_FLOCK, F_RDLCK, 0, 0, false), 0);
	assert_int_equal(do_lock(s, K_FLOCK, F_WRLCK, 0, 0, false), EWOULDBLOCK);
	tclose(f, m);
	assert_int_equal(lock_soon(s, K_FLOCK, F_WRLCK), 0);
	tclose(f, s);
}

/* POSIX: a process's locks on a file go at any close of one of its fds. */
static void test_close_releases_posix(void **state)
{
	struct fixture *f = *state;
	struct job j = { f->file, O_RDWR, K_POSIX, F_WRLCK, 0, 0, false };
	struct kid *k = holder(f, &j);
	int r = must_open(f, f->file, O_RDONLY);

	assert_true(is_conflict(do_lock(r, K_POSIX, F_RDLCK, 0, 0, false)));
	assert_int_equal(kid_cmd(k, 'C'), 0);	/* another fd, closed */
	assert_int_equal(do_lock(r, K_POSIX, F_RDLCK, 0, 0, false), 0);
	kid_exit(k);
	tclose(f, r);
}

static void test_blocking_granted(void **state)
{
	struct fixture *f = *state;
	struct job hp = { f->file, O_RDWR, K_POSIX, F_WRLCK, 0, 0, false };
	struct job wp = { f->file, O_RDONLY, K_POSIX, F_RDLCK, 0, 0, true };
	struct job hf = { f->file, O_RDWR, K_FLOCK, F_WRLCK, 0, 0, false };
	struct job wf = { f->file, O_RDONLY, K_FLOCK, F_WRLCK, 0, 0, true };
	struct kid *h = holder(f, &hp), *w = waiter(f, &wp);

	assert_int_equal(kid_cmd(h, 'U'), 0);
	assert_int_equal(kid_recv(w, REPLY_MS), 0);
	kid_exited(w);
	kid_exit(h);

	h = holder(f, &hf);
	w = waiter(f, &wf);
	assert_int_equal(kid_cmd(h, 'U'), 0);
	assert_int_equal(kid_recv(w, REPLY_MS), 0);
	kid_exited(w);
	kid_exit(h);
}

/* stat and a read of the file through MNT, each within REPLY_MS. */
static void assert_mount_answers(struct fixture *f)
{
	long t0 = now_ms();
	char buf[16];
	struct stat st;
	int fd;

	assert_int_equal(stat(f->file, &st), 0);
	assert_int_equal(st.st_size, FILE_SIZE);
	fd = must_open(f, f->file, O_RDONLY);
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	tclose(f, fd);
	assert_true(now_ms() - t0 < REPLY_MS);
}

/* -o max_threads=2: six waiters block in the daemon, not in its workers. */
static void test_waiters_beyond_threads(void **state)
{
	struct fixture *f = *state;
	struct job hf = { f->file, O_RDWR, K_FLOCK, F_WRLCK, 0, 0, false };
	struct job hp = { f->file, O_RDWR, K_POSIX, F_WRLCK, 0, 0, false };
	struct job wf = { f->file, O_RDONLY, K_FLOCK, F_WRLCK, 0, 0, true };
	struct job wp = { f->file, O_RDWR, K_POSIX, F_WRLCK, 0, 0, true };
	struct kid *h1 = holder(f, &hf), *h2 = holder(f, &hp), *w[6];

	for (int i = 0; i < 6; i++)
		w[i] = waiter(f, i % 2 ? &wp : &wf);
	assert_mount_answers(f);
	assert_int_equal(kid_cmd(h1, 'U'), 0);
	assert_int_equal(kid_cmd(h2, 'U'), 0);
	/* Each waiter takes the lock, drops it and exits: all six get it. */
	for (int i = 0; i < 6; i++) {
		assert_int_equal(kid_recv(w[i], REPLY_MS), 0);
		kid_exited(w[i]);
	}
	kid_exit(h1);
	kid_exit(h2);
	assert_mount_answers(f);
}

static void test_signal_interrupts_waiter(void **state)
{
	struct fixture *f = *state;
	struct job hp = { f->file, O_RDWR, K_POSIX, F_WRLCK, 0, 0, false };
	struct job wp = { f->file, O_RDONLY, K_POSIX, F_RDLCK, 0, 0, true };
	struct job wf = { f->file, O_RDONLY, K_FLOCK, F_RDLCK, 0, 0, true };
	struct kid *h = holder(f, &hp), *w;
	int fd;

	w = waiter(f, &wp);
	assert_int_equal(kill(w->pid, SIGUSR1), 0);
	assert_int_equal(kid_recv(w, REPLY_MS), EINTR);
	kid_exited(w);
	/* The interrupted wait left no lock behind: the holder can relock
	 * (and upgrade) its whole range, and the mount answers. */
	assert_int_equal(kid_cmd(h, 'U'), 0);
	kid_exit(h);
	fd = must_open(f, f->file, O_RDWR);
	assert_int_equal(do_lock(fd, K_POSIX, F_WRLCK, 0, 0, false), 0);
	assert_int_equal(do_lock(fd, K_FLOCK, F_WRLCK, 0, 0, false), 0);
	w = waiter(f, &wf);
	assert_int_equal(kill(w->pid, SIGUSR1), 0);
	assert_int_equal(kid_recv(w, REPLY_MS), EINTR);
	kid_exited(w);
	tclose(f, fd);
	assert_mount_answers(f);
	fd = must_open(f, f->file, O_RDONLY);
	assert_int_equal(lock_soon(fd, K_FLOCK, F_WRLCK), 0);
	assert_int_equal(do_lock(fd, K_POSIX, F_RDLCK, 0, 0, false), 0);
	tclose(f, fd);
}

static void test_exit_releases(void **state)
{
	struct fixture *f = *state;
	struct job hp = { f->file, O_RDWR, K_POSIX, F_WRLCK, 0, 0, false };
	struct job hf = { f->file, O_RDONLY, K_FLOCK, F_WRLCK, 0, 0, false };
	struct job ho = { f->file, O_RDWR, K_OFD, F_WRLCK, 0, 0, false };
	int fd = must_open(f, f->file, O_RDONLY);
	struct kid *k = holder(f, &hp);

	assert_true(is_conflict(do_lock(fd, K_POSIX, F_RDLCK, 0, 0, false)));
	kid_exit(k);
	assert_int_equal(do_lock(fd, K_POSIX, F_RDLCK, 0, 0, false), 0);
	assert_int_equal(do_lock(fd, K_POSIX, F_UNLCK, 0, 0, false), 0);

	k = holder(f, &hf);
	assert_int_equal(do_lock(fd, K_FLOCK, F_RDLCK, 0, 0, false), EWOULDBLOCK);
	kid_exit(k);
	assert_int_equal(lock_soon(fd, K_FLOCK, F_RDLCK), 0);
	assert_int_equal(do_lock(fd, K_FLOCK, F_UNLCK, 0, 0, false), 0);

	k = holder(f, &ho);
	assert_true(is_conflict(do_lock(fd, K_OFD, F_RDLCK, 0, 0, false)));
	kid_exit(k);
	assert_int_equal(lock_soon(fd, K_OFD, F_RDLCK), 0);
	tclose(f, fd);
}

struct thread_wait {
	int fd;
	int err;
};

static void *wait_posix(void *arg)
{
	struct thread_wait *t = arg;

	t->err = do_lock(t->fd, K_POSIX, F_WRLCK, 0, 0, true);
	return NULL;
}

/*
 * One thread of this process waits (F_SETLKW) while another closes a
 * different fd of the file, which drops the process's POSIX locks: the
 * wait goes on and, granted, is the process's lock like any other.
 */
static void test_wait_survives_close(void **state)
{
	struct fixture *f = *state;
	struct job hp = { f->file, O_RDWR, K_POSIX, F_WRLCK, 0, 0, false };
	struct job probe = { f->file, O_RDONLY, K_POSIX, F_RDLCK, 0, 0, false };
	struct thread_wait t = { .err = -1 };
	struct kid *h = holder(f, &hp), *p;
	pthread_t th;

	t.fd = must_open(f, f->file, O_RDWR);
	assert_int_equal(pthread_create(&th, NULL, wait_posix, &t), 0);
	sleep_ms(BLOCKED_MS);
	tclose(f, must_open(f, f->file, O_RDONLY));	/* a FLUSH for us */
	sleep_ms(50);
	assert_int_equal(kid_cmd(h, 'U'), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(t.err, 0);
	p = kid_start(f, &probe);	/* another process: must conflict */
	assert_true(is_conflict(kid_recv(p, REPLY_MS)));
	kid_exit(p);
	kid_exit(h);
	tclose(f, t.fd);
}

/* The daemon told to stop while a waiter blocks: the waiter gets an error
 * (not ERESTARTSYS leaking out as 512) and the daemon exits cleanly. */
static void test_stop_with_waiter(void **state)
{
	struct fixture *f = *state;
	struct job wf = { f->file, O_RDONLY, K_FLOCK, F_WRLCK, 0, 0, true };
	int s = must_open(f, f->src_file, O_RDONLY);
	struct kid *w;

	assert_int_equal(do_lock(s, K_FLOCK, F_WRLCK, 0, 0, false), 0);
	w = waiter(f, &wf);
	assert_int_equal(kill(f->m.pid, SIGTERM), 0);
	assert_int_equal(kid_recv(w, REPLY_MS), ENOTCONN);
	kid_exited(w);
	tclose(f, s);
}

#define CASE(name, fn, tc) \
	{ name, fn, setup, teardown, (void *)(tc) }

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE("flock", test_flock_rdwr_vs_rdonly, &tc_default),
		CASE("posix", test_posix_across_nodes, &tc_default),
		CASE("ofd", test_ofd_across_nodes, &tc_default),
		CASE("src blocks mnt", test_src_locker_blocks_mnt, &tc_default),
		CASE("src getlk pid", test_src_getlk_pid, &tc_default),
		CASE("mnt blocks src", test_mnt_locker_blocks_src, &tc_default),
		CASE("close releases posix", test_close_releases_posix, &tc_default),
		CASE("blocking granted", test_blocking_granted, &tc_default),
		CASE("waiters beyond threads", test_waiters_beyond_threads,
		     &tc_two_threads),
		CASE("signal interrupts", test_signal_interrupts_waiter, &tc_default),
		CASE("exit releases", test_exit_releases, &tc_default),
		CASE("wait survives a close", test_wait_survives_close,
		     &tc_default),
		CASE("stop with a waiter", test_stop_with_waiter, &tc_default),
	};
	const char *filter = getenv("SFS_TEST_FILTER");

	test_require_fuse();
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests_name("locks", tests, NULL, NULL);
}
