/*
 * Faults (reliability): what happens when things go wrong under a live mount.
 *
 * 1. kill -9 of the daemon at a random moment (50-500 ms into a run) while a
 *    child process writes records through MNT (pwrite + fsync each, and
 *    ftruncate now and then) with snapshot readers open, so the preservation
 *    store is in use. Every record acknowledged by a successful fsync is
 *    reported to us over a pipe; a truncate is reported *before* it is
 *    issued (it may be applied even if never acknowledged). Afterwards:
 *      - requests on MNT fail with ENOTCONN (or ECONNABORTED),
 *      - `fusermount3 -u MNT` (not lazy) detaches it,
 *      - every acknowledged record is in SRC with its bytes (up to the
 *        smallest truncate announced after it),
 *      - SRC holds only the test's files (the store is O_TMPFILE: nothing
 *        may remain),
 *      - a new daemon on the same SRC/MNT serves the same bytes and works.
 *    Five runs, each at a different delay.
 * 2. SRC removed (rm -rf), renamed away, or a tmpfs SRC lazily unmounted
 *    under a live mount: clear errors or empty results, no crash, no path
 *    escaping SRC, and a clean unmount (daemon exit status 0).
 * 3. fd exhaustion: the daemon runs with RLIMIT_NOFILE 64 (soft and hard,
 *    since it raises soft to hard at startup). Opening many files through
 *    MNT must fail with EMFILE/ENFILE/ENOMEM, never crash or hang; a writer
 *    whose snapshot cannot be preserved is not refused; after closing, the
 *    mount works again.
 *
 * Observations are printed as "# ..." lines; FAULTS_SEED=0x... replays a
 * kill -9 run (the seed fixes the delay and the writer's operations, not
 * the exact moment the kill lands). Only processes this test
 * started are killed, by pid.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mount_util.h"
#include "test_util.h"

#define KiB 1024L
#define MiB (1024L * KiB)

#define MAX_FDS 256

/* ------------------------------------------------------------------ */
/* Small helpers                                                      */
/* ------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Byte i of the record with this seed (random access). */
static unsigned char rec_byte(uint64_t seed, uint64_t i)
{
	return (unsigned char)(splitmix64(seed ^ ((i / 8) * 0x100000001b3ULL)) >> (8 * (i % 8)));
}

static void rec_fill(unsigned char *buf, uint64_t seed, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = rec_byte(seed, i);
}

/* splitmix64 steps (test_util's rnd() is xorshift64*). */
static uint64_t rnd_splitmix(uint64_t *state)
{
	*state = splitmix64(*state);
	return *state;
}

/* Whole file into a malloc'd buffer; -1 with errno. */
static int read_whole(const char *path, unsigned char **out, size_t *outlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 64 * KiB, len = 0;
	unsigned char *buf;

	*out = NULL;
	*outlen = 0;
	if (fd < 0)
		return -1;
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			unsigned char *nb = realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				close(fd);
				errno = ENOMEM;
				return -1;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			free(buf);
			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*out = buf;
	*outlen = len;
	return 0;
}

/* The daemon we started is still running (not exited, not a zombie). */
static bool daemon_alive(struct test_mount *m)
{
	int status;

	if (m->pid <= 0)
		return false;
	if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
		printf("# daemon pid %d ended: %s %d\n", m->pid,
		       WIFEXITED(status) ? "exit" : "signal",
		       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		m->pid = 0;
		return false;
	}
	return true;
}

static const char *status_str(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "status 0x%x", status);
	return buf;
}

/* fusermount3 FLAGS MNT; its exit status (or -1). */
static int fusermount(const char *flags, const char *mnt)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", flags, mnt, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* "major:minor" of the mount at path, from mountinfo (no syscall on it). */
static bool mount_devno(const char *path, unsigned *major, unsigned *minor)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192];
	bool found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned ma, mi;
		char dir[PATH_MAX];

		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &ma, &mi, dir) == 3 &&
		    strcmp(dir, path) == 0) {
			*major = ma;
			*minor = mi;
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* Is anything mounted at path, or below prefix (when prefix is true)? */
static bool mounted_at(const char *path, bool prefix)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char dev[PATH_MAX], dir[PATH_MAX], type[256];
	size_t n = strlen(path);
	bool found = false;

	if (!f)
		return false;
	while (fscanf(f, "%4095s %4095s %255s %*[^\n]", dev, dir, type) == 3) {
		if (strcmp(dir, path) == 0 ||
		    (prefix && strncmp(dir, path, n) == 0 && dir[n] == '/'))
			found = true;
	}
	fclose(f);
	return found;
}

/*
 * Names in dir other than "." and ".."; nonzero count of entries not in
 * the allowed list is returned, and each is printed.
 */
static int stray_entries(const char *dir, const char *const *allowed, int nallowed)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int strays = 0;

	if (!d) {
		printf("# opendir %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d))) {
		bool ok = false;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		for (int i = 0; i < nallowed; i++)
			if (!strcmp(de->d_name, allowed[i]))
				ok = true;
		if (!ok) {
			printf("# stray entry in %s: '%s' (type %d)\n", dir,
			       de->d_name, de->d_type);
			strays++;
		}
	}
	closedir(d);
	return strays;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                            */
/* ------------------------------------------------------------------ */

struct msg;

struct fixture {
	struct test_mount m;
	bool prepared;
	bool tmpfs_on_src;	/* we mounted tmpfs on m.src */
	unsigned fuse_minor;	/* of the current mount, 0 if unknown */
	pid_t writer;		/* child writer, or 0 */
	int pipe_rd;
	int fds[MAX_FDS];	/* closed by the teardown (after failures) */
	char moved[PATH_MAX];	/* where SRC was renamed to, or "" */
	struct msg *log;	/* the writer's reports (freed by the teardown) */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f)
		return -1;
	f->pipe_rd = -1;
	for (int i = 0; i < MAX_FDS; i++)
		f->fds[i] = -1;
	if (test_mount_prepare(&f->m, "faults"))
		return -1;
	f->prepared = true;
	return 0;
}

static void close_fds(struct fixture *f)
{
	for (int i = 0; i < MAX_FDS; i++) {
		if (f->fds[i] >= 0)
			close(f->fds[i]);
		f->fds[i] = -1;
	}
}

static int remember_fd(struct fixture *f, int fd)
{
	for (int i = 0; i < MAX_FDS; i++) {
		if (f->fds[i] < 0) {
			f->fds[i] = fd;
			return fd;
		}
	}
	close(fd);
	fail_msg("too many fds");
	return -1;
}

static void forget_fd(struct fixture *f, int fd)
{
	for (int i = 0; i < MAX_FDS; i++) {
		if (f->fds[i] == fd) {
			close(fd);
			f->fds[i] = -1;
			return;
		}
	}
}

static void kill_writer(struct fixture *f)
{
	int status;

	if (f->writer > 0) {
		kill(f->writer, SIGKILL);
		if (!wait_pid_ms(f->writer, &status, 10000))
			printf("# writer pid %d did not die within 10 s\n", f->writer);
		f->writer = 0;
	}
	if (f->pipe_rd >= 0)
		close(f->pipe_rd);
	f->pipe_rd = -1;
}

/* Runs after failures too: close, kill what we started, always unmount. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	close_fds(f);
	kill_writer(f);
	free(f->log);
	if (f->prepared) {
		if (test_mount_stop(&f->m)) {
			fprintf(stderr, "stablefs did not unmount/exit cleanly\n");
			rc = -1;
		}
		if (test_is_stablefs_mount(f->m.mnt)) {
			fprintf(stderr, "leaked mount %s\n", f->m.mnt);
			if (f->fuse_minor)
				test_abort_connection(f->fuse_minor);
			umount2(f->m.mnt, MNT_DETACH);
			rc = -1;
		}
		if (f->tmpfs_on_src && mounted_at(f->m.src, false))
			umount2(f->m.src, MNT_DETACH);
		if (mounted_at(f->m.base, true)) {
			fprintf(stderr, "something is still mounted under %s\n", f->m.base);
			rc = -1;
		}
		test_mount_destroy(&f->m);
	}
	free(f);
	*state = NULL;
	return rc;
}

static void start_mount(struct fixture *f, const char *opts)
{
	unsigned ma, mi;

	assert_int_equal(test_mount_start(&f->m, opts), 0);
	f->fuse_minor = mount_devno(f->m.mnt, &ma, &mi) ? mi : 0;
}

/* ------------------------------------------------------------------ */
/* 1. kill -9 during writes                                           */
/* ------------------------------------------------------------------ */

#define NDATA 3			/* record files data0..data2 */
#define SCRATCH NDATA		/* index of "scratch": random overwrites */
#define NFILES (NDATA + 1)
#define SCRATCH_SIZE (1 * MiB)
#define RESET_AT (24 * MiB)	/* a data file this long is truncated to 0 */
#define MAX_REC (256 * KiB)

static const char *const file_names[NFILES] = { "data0", "data1", "data2", "scratch" };

enum { MSG_READY = 1, MSG_REC, MSG_TRUNC, MSG_END };

/* One report, writer -> test; far below PIPE_BUF, so writes are atomic. */
struct msg {
	uint32_t type;
	uint32_t file;
	uint64_t off;		/* REC: offset; TRUNC: new size */
	uint64_t len;
	uint64_t seed;
	int32_t err;		/* END: errno that stopped the writer */
	int32_t op;		/* END: which operation failed */
};

enum { OP_OPEN = 1, OP_PWRITE, OP_FSYNC, OP_FTRUNCATE, OP_PREAD, OP_SNAPOPEN };

static const char *op_name(int op)
{
	switch (op) {
	case OP_OPEN: return "open";
	case OP_PWRITE: return "pwrite";
	case OP_FSYNC: return "fsync";
	case OP_FTRUNCATE: return "ftruncate";
	case OP_PREAD: return "pread";
	case OP_SNAPOPEN: return "snapshot open";
	default: return "?";
	}
}

struct reports {
	struct msg *v;
	struct msg **owner;	/* where the teardown finds v */
	size_t n, cap;
	bool ready, eof;
	struct msg end;		/* the writer's END, if any */
	bool have_end;
};

static void send_msg(int wfd, const struct msg *mg)
{
	if (write(wfd, mg, sizeof(*mg)) != (ssize_t)sizeof(*mg))
		_exit(3);
}

static void writer_stop(int wfd, int op, int err) __attribute__((noreturn));
static void writer_stop(int wfd, int op, int err)
{
	struct msg mg = { .type = MSG_END, .err = err, .op = op };

	send_msg(wfd, &mg);
	_exit(0);
}

/*
 * The child: creates the files, opens snapshots, then writes records
 * (never overlapping an earlier record of the same file except after a
 * truncate to 0 that was announced), overwrites the scratch file under a
 * snapshot, truncates now and then, reopens snapshots and reads them.
 * Stops at the first error (the daemon is gone) and says why.
 */
static void writer_main(const char *mnt, int wfd, uint64_t seed0) __attribute__((noreturn));
static void writer_main(const char *mnt, int wfd, uint64_t seed0)
{
	int fd[NFILES], snap[NFILES];
	uint64_t cursor[NFILES] = { 0 };
	uint64_t state = seed0, nrec = 0;
	unsigned char *buf = malloc(MAX_REC), *rbuf = malloc(MAX_REC);
	char path[PATH_MAX + 64];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(60);	/* never outlive a confused test */
	if (!buf || !rbuf)
		_exit(2);
	for (int i = 0; i < NFILES; i++) {
		uint64_t len = i == SCRATCH ? SCRATCH_SIZE : 4 * KiB + rnd_splitmix(&state) % (60 * KiB);
		struct msg mg = { .type = MSG_REC, .file = (uint32_t)i, .off = 0,
				  .len = len, .seed = seed0 + (++nrec << 8) };

		snprintf(path, sizeof(path), "%s/%s", mnt, file_names[i]);
		fd[i] = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd[i] < 0)
			writer_stop(wfd, OP_OPEN, errno);
		for (uint64_t done = 0; done < len; done += MAX_REC) {
			uint64_t n = len - done < (uint64_t)MAX_REC ? len - done : (uint64_t)MAX_REC;

			for (uint64_t j = 0; j < n; j++)
				buf[j] = rec_byte(mg.seed, done + j);
			if (pwrite_all(fd[i], buf, n, (off_t)done))
				writer_stop(wfd, OP_PWRITE, errno);
		}
		if (fsync(fd[i]))
			writer_stop(wfd, OP_FSYNC, errno);
		cursor[i] = len;
		if (i != SCRATCH)
			send_msg(wfd, &mg);
		snap[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (snap[i] < 0)
			writer_stop(wfd, OP_SNAPOPEN, errno);
	}
	{
		struct msg mg = { .type = MSG_READY };

		send_msg(wfd, &mg);
	}
	for (;;) {
		unsigned r = (unsigned)(rnd_splitmix(&state) % 100);
		int i = (int)(rnd_splitmix(&state) % NFILES);

		if (r < 8 && i != SCRATCH) {
			/* Truncate: announced before it is issued. */
			struct msg mg = { .type = MSG_TRUNC, .file = (uint32_t)i };
			uint64_t size;

			if (cursor[i] >= RESET_AT)
				size = 0;
			else if (rnd_splitmix(&state) % 2)
				size = rnd_splitmix(&state) % (cursor[i] + 1);
			else
				size = cursor[i] + rnd_splitmix(&state) % (128 * KiB);
			mg.off = size;
			send_msg(wfd, &mg);
			if (ftruncate(fd[i], (off_t)size))
				writer_stop(wfd, OP_FTRUNCATE, errno);
			if (fsync(fd[i]))
				writer_stop(wfd, OP_FSYNC, errno);
			if (size == 0)
				cursor[i] = 0;
		} else if (r < 14) {
			/* New snapshot (its version covers everything so far),
			 * and a read of it. */
			ssize_t n;

			snprintf(path, sizeof(path), "%s/%s", mnt, file_names[i]);
			close(snap[i]);
			snap[i] = open(path, O_RDONLY | O_CLOEXEC);
			if (snap[i] < 0)
				writer_stop(wfd, OP_SNAPOPEN, errno);
			n = pread(snap[i], rbuf, MAX_REC,
				  (off_t)(rnd_splitmix(&state) % (cursor[i] + 1)));
			if (n < 0)
				writer_stop(wfd, OP_PREAD, errno);
		} else if (i == SCRATCH) {
			/* Overwrite under a snapshot: preservation into the store. */
			uint64_t len = 1 + rnd_splitmix(&state) % (64 * KiB);
			uint64_t off = rnd_splitmix(&state) % (SCRATCH_SIZE - len);

			rec_fill(buf, rnd_splitmix(&state), len);
			if (pwrite_all(fd[i], buf, len, (off_t)off))
				writer_stop(wfd, OP_PWRITE, errno);
			if (rnd_splitmix(&state) % 4 == 0 && fsync(fd[i]))
				writer_stop(wfd, OP_FSYNC, errno);
		} else {
			/* A record: past every earlier record of this file. */
			uint64_t len = rnd_splitmix(&state) % 8 ? 1 + rnd_splitmix(&state) % (16 * KiB)
							: 1 + rnd_splitmix(&state) % MAX_REC;
			uint64_t off = cursor[i] + rnd_splitmix(&state) % (8 * KiB);
			struct msg mg = { .type = MSG_REC, .file = (uint32_t)i, .off = off,
					  .len = len, .seed = seed0 + (++nrec << 8) };

			rec_fill(buf, mg.seed, len);
			if (pwrite_all(fd[i], buf, len, (off_t)off))
				writer_stop(wfd, OP_PWRITE, errno);
			if (fsync(fd[i]))
				writer_stop(wfd, OP_FSYNC, errno);
			cursor[i] = off + len;
			send_msg(wfd, &mg);
		}
	}
}

/* Read what the pipe has (waiting up to ms for something); false on EOF. */
static bool drain_reports(int rd, struct reports *rp, long ms)
{
	struct pollfd p = { .fd = rd, .events = POLLIN };
	struct msg mg;

	if (rp->eof)
		return false;
	if (poll(&p, 1, (int)ms) <= 0)
		return true;
	for (;;) {
		ssize_t n = read(rd, &mg, sizeof(mg));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0) {
			rp->eof = true;
			return false;
		}
		if (n != (ssize_t)sizeof(mg)) {
			fail_msg("short report (%zd bytes)", n);
		}
		switch (mg.type) {
		case MSG_READY:
			rp->ready = true;
			break;
		case MSG_END:
			rp->end = mg;
			rp->have_end = true;
			break;
		default:
			if (rp->n == rp->cap) {
				size_t cap = rp->cap ? rp->cap * 2 : 1024;
				struct msg *nv = realloc(rp->v, cap * sizeof(*nv));

				assert_non_null(nv);
				rp->v = nv;
				*rp->owner = nv;
				rp->cap = cap;
			}
			rp->v[rp->n++] = mg;
		}
	}
}

/*
 * Every acknowledged record of every data file is in dir (SRC, or MNT of
 * a new daemon) with its bytes, up to the smallest truncate announced after
 * it. Returns the number of bad records (each printed).
 */
static int check_records(const char *dir, const struct reports *rp, size_t *checked,
			 uint64_t *checked_bytes)
{
	int bad = 0;

	*checked = 0;
	*checked_bytes = 0;
	for (int i = 0; i < NDATA; i++) {
		char path[PATH_MAX];
		unsigned char *data;
		size_t len;
		uint64_t limit = UINT64_MAX;

		path_in(path, dir, file_names[i]);
		if (read_whole(path, &data, &len)) {
			printf("# %s: %s\n", path, strerror(errno));
			bad++;
			continue;
		}
		for (size_t k = rp->n; k-- > 0;) {
			const struct msg *mg = &rp->v[k];
			uint64_t end;

			if (mg->file != (uint32_t)i)
				continue;
			if (mg->type == MSG_TRUNC) {
				if (mg->off < limit)
					limit = mg->off;
				continue;
			}
			end = mg->off + mg->len < limit ? mg->off + mg->len : limit;
			if (end <= mg->off)
				continue;
			(*checked)++;
			*checked_bytes += end - mg->off;
			if (end > len) {
				printf("# %s: record [%llu, +%llu) past EOF %zu\n", path,
				       (unsigned long long)mg->off,
				       (unsigned long long)mg->len, len);
				bad++;
				continue;
			}
			for (uint64_t b = mg->off; b < end; b++) {
				if (data[b] != rec_byte(mg->seed, b - mg->off)) {
					printf("# %s: record [%llu, +%llu) wrong at byte %llu "
					       "(0x%02x, expected 0x%02x)\n", path,
					       (unsigned long long)mg->off,
					       (unsigned long long)mg->len,
					       (unsigned long long)b, data[b],
					       rec_byte(mg->seed, b - mg->off));
					bad++;
					break;
				}
			}
		}
		free(data);
	}
	return bad;
}

/* Through MNT of a fresh daemon, each file reads exactly as in SRC. */
static int compare_src_mnt(struct test_mount *m)
{
	int bad = 0;

	for (int i = 0; i < NFILES; i++) {
		char sp[PATH_MAX], mp[PATH_MAX];
		unsigned char *sd, *md;
		size_t sl, ml;

		path_in(sp, m->src, file_names[i]);
		path_in(mp, m->mnt, file_names[i]);
		if (read_whole(sp, &sd, &sl)) {
			printf("# read %s: %s\n", sp, strerror(errno));
			bad++;
			continue;
		}
		if (read_whole(mp, &md, &ml)) {
			printf("# read %s: %s\n", mp, strerror(errno));
			free(sd);
			bad++;
			continue;
		}
		if (sl != ml || memcmp(sd, md, sl)) {
			printf("# %s: %zu bytes through MNT differ from %zu in SRC\n",
			       file_names[i], ml, sl);
			bad++;
		}
		free(sd);
		free(md);
	}
	return bad;
}

/* The restarted daemon works: write under a snapshot, read both back. */
static void exercise_mount(struct fixture *f, const char *name)
{
	char path[PATH_MAX];
	unsigned char w[8192], r[8192], old[8192];
	int wfd, rfd;

	path_in(path, f->m.mnt, name);
	wfd = remember_fd(f, open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	assert_true(wfd >= 0);
	memset(old, 'o', sizeof(old));
	assert_int_equal(pwrite_all(wfd, old, sizeof(old), 0), 0);
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(rfd >= 0);
	remember_fd(f, rfd);
	rec_fill(w, 42, sizeof(w));
	assert_int_equal(pwrite_all(wfd, w, sizeof(w), 0), 0);
	assert_int_equal(fsync(wfd), 0);
	assert_int_equal(pread(rfd, r, sizeof(r), 0), (ssize_t)sizeof(r));
	assert_memory_equal(r, old, sizeof(r));		/* the snapshot */
	assert_int_equal(pread(wfd, r, sizeof(r), 0), (ssize_t)sizeof(r));
	assert_memory_equal(r, w, sizeof(r));		/* the live file */
	forget_fd(f, rfd);
	forget_fd(f, wfd);
}

static void run_kill9(struct fixture *f, int run)
{
	struct reports rp = { 0 };
	const char *fixed = getenv("FAULTS_SEED");	/* to replay a run */
	uint64_t seed = fixed && *fixed ? strtoull(fixed, NULL, 0) :
		splitmix64(splitmix64((uint64_t)time(NULL) * 1000003u + (uint64_t)now_ms()) +
			   ((uint64_t)getpid() << 20) + (uint64_t)run * 0x9e3779b9u);
	long delay = 50 + run * 90 + (long)(seed % 91);
	int pfd[2], status, snapfd, bad, strays;
	long t_ready, t_kill, t_reaped, t_detach;
	size_t checked;
	uint64_t checked_bytes;
	char buf[128], path[PATH_MAX];
	const char *allowed[NFILES + 1];
	bool reaped;
	int e_statfs, e_open, e_stat, e_snap;
	struct statfs sfs;
	struct stat st;
	unsigned char tmp[4096];

	rp.owner = &f->log;
	start_mount(f, NULL);
	printf("# run %d: seed 0x%016llx, kill after %ld ms, daemon pid %d, fuse conn %u\n",
	       run, (unsigned long long)seed, delay, f->m.pid, f->fuse_minor);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	f->writer = fork();
	assert_true(f->writer >= 0);
	if (f->writer == 0) {
		close(pfd[0]);
		writer_main(f->m.mnt, pfd[1], seed);
	}
	close(pfd[1]);
	f->pipe_rd = pfd[0];
	fcntl(f->pipe_rd, F_SETFL, O_NONBLOCK);

	/* Wait until the files exist and the writer's snapshots are open. */
	for (long end = now_ms() + 20000; !rp.ready && !rp.eof && now_ms() < end;)
		drain_reports(f->pipe_rd, &rp, 100);
	if (!rp.ready && rp.have_end)
		fail_msg("writer stopped before starting: %s: %s",
			 op_name(rp.end.op), strerror(rp.end.err));
	assert_true(rp.ready);
	t_ready = now_ms();

	/* Our own snapshot reader, open across the kill. */
	path_in(path, f->m.mnt, file_names[SCRATCH]);
	snapfd = remember_fd(f, open(path, O_RDONLY | O_CLOEXEC));
	assert_true(snapfd >= 0);
	assert_int_equal(pread(snapfd, tmp, sizeof(tmp), 0), (ssize_t)sizeof(tmp));

	while (now_ms() < t_ready + delay)
		drain_reports(f->pipe_rd, &rp, t_ready + delay - now_ms());
	t_kill = now_ms();
	printf("# run %d: %zu reports (records + truncates) before the kill\n", run, rp.n);
	assert_int_equal(kill(f->m.pid, SIGKILL), 0);

	/* The daemon must die; if it hangs in D state, abort its connection. */
	reaped = wait_pid_ms(f->m.pid, &status, 10000);
	if (!reaped) {
		printf("# BUG: daemon pid %d not dead 10 s after SIGKILL; aborting conn %u\n",
		       f->m.pid, f->fuse_minor);
		if (f->fuse_minor)
			test_abort_connection(f->fuse_minor);
		reaped = wait_pid_ms(f->m.pid, &status, 10000);
	}
	assert_true(reaped);
	f->m.pid = 0;
	t_reaped = now_ms();
	printf("# run %d: daemon reaped %ld ms after SIGKILL (%s)\n", run,
	       t_reaped - t_kill, status_str(status, buf, sizeof(buf)));
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	/* The writer must stop by itself (its requests fail now). */
	for (long end = now_ms() + 10000; !rp.eof && now_ms() < end;)
		drain_reports(f->pipe_rd, &rp, 100);
	if (!rp.eof)
		printf("# BUG?: writer still running 10 s after the daemon died; killing it\n");
	if (f->writer > 0 && !wait_pid_ms(f->writer, &status, rp.eof ? 10000 : 0)) {
		kill(f->writer, SIGKILL);
		assert_true(wait_pid_ms(f->writer, &status, 10000));
		printf("# run %d: writer killed (%s)\n", run, status_str(status, buf, sizeof(buf)));
	} else {
		printf("# run %d: writer exited %ld ms after the kill (%s)\n", run,
		       now_ms() - t_kill, status_str(status, buf, sizeof(buf)));
	}
	f->writer = 0;
	close(f->pipe_rd);
	f->pipe_rd = -1;
	if (rp.have_end)
		printf("# run %d: writer stopped on %s: %s\n", run, op_name(rp.end.op),
		       strerror(rp.end.err));
	assert_true(rp.have_end);
	assert_true(rp.end.err == ENOTCONN || rp.end.err == ECONNABORTED);

	/* Requests on the dead mount fail with ENOTCONN. */
	e_statfs = statfs(f->m.mnt, &sfs) ? errno : 0;
	path_in(path, f->m.mnt, file_names[0]);
	e_open = -1;
	{
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		e_open = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
	}
	e_stat = stat(path, &st) ? errno : 0;
	e_snap = pread(snapfd, tmp, sizeof(tmp), 0) < 0 ? errno : 0;
	printf("# run %d: after the kill: statfs %s, open %s, stat %s, snapshot pread %s\n",
	       run, strerror(e_statfs), strerror(e_open), strerror(e_stat),
	       e_snap ? strerror(e_snap) : "ok (cached)");
	assert_true(e_statfs == ENOTCONN || e_statfs == ECONNABORTED);
	assert_true(e_open == ENOTCONN || e_open == ECONNABORTED);
	forget_fd(f, snapfd);

	/* Detach without -z. */
	assert_true(test_is_stablefs_mount(f->m.mnt));
	t_detach = now_ms();
	assert_int_equal(fusermount("-u", f->m.mnt), 0);
	assert_false(test_is_stablefs_mount(f->m.mnt));
	f->m.mounted = false;
	printf("# run %d: fusermount3 -u took %ld ms\n", run, now_ms() - t_detach);
	test_mount_stop(&f->m);	/* nothing left to stop: just forgets it */

	/* Acknowledged data is in SRC; nothing else is. */
	bad = check_records(f->m.src, &rp, &checked, &checked_bytes);
	printf("# run %d: %zu acknowledged records (%llu bytes) checked in SRC, %d bad\n",
	       run, checked, (unsigned long long)checked_bytes, bad);
	assert_int_equal(bad, 0);
	assert_true(checked >= NDATA);
	for (int i = 0; i < NFILES; i++)
		allowed[i] = file_names[i];
	strays = stray_entries(f->m.src, allowed, NFILES);
	assert_int_equal(strays, 0);

	/* A new daemon on the same SRC/MNT serves the same bytes and works. */
	start_mount(f, NULL);
	assert_int_equal(compare_src_mnt(&f->m), 0);
	bad = check_records(f->m.mnt, &rp, &checked, &checked_bytes);
	assert_int_equal(bad, 0);
	exercise_mount(f, "after");
	assert_true(daemon_alive(&f->m));
	assert_int_equal(test_mount_stop(&f->m), 0);
	allowed[NFILES] = "after";
	assert_int_equal(stray_entries(f->m.src, allowed, NFILES + 1), 0);
	printf("# run %d: restarted daemon served %d files correctly, clean unmount\n",
	       run, NFILES);
}

#define KILL9(n)							\
	static void test_kill9_run##n(void **state)			\
	{								\
		run_kill9(*state, n);					\
	}
KILL9(0)
KILL9(1)
KILL9(2)
KILL9(3)
KILL9(4)

/* ------------------------------------------------------------------ */
/* 2. SRC removed / renamed / unmounted under a live mount            */
/* ------------------------------------------------------------------ */

/* Create "a" through MNT with content; returns an fd kept open (O_RDWR). */
static int make_file_a(struct fixture *f)
{
	char path[PATH_MAX];
	int fd;

	path_in(path, f->m.mnt, "a");
	fd = remember_fd(f, open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	assert_true(fd >= 0);
	assert_int_equal(pwrite_all(fd, "hello", 5, 0), 0);
	assert_int_equal(fsync(fd), 0);
	return fd;
}

/* Results of poking MNT; errno 0 = success. */
struct probe {
	int stat_root, readdir, create, mkdir_, stat_a, open_a, fd_write, fd_read;
	int entries;		/* readdir entries besides . and .. */
	bool saw_a, saw_new;
};

static int readdir_count(const char *dir, int *entries, bool *saw_a)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	*entries = 0;
	*saw_a = false;
	if (!d)
		return errno;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		(*entries)++;
		if (!strcmp(de->d_name, "a"))
			*saw_a = true;
	}
	{
		int e = errno;

		closedir(d);
		return e;
	}
}

static void probe_mnt(struct fixture *f, int afd, struct probe *p, const char *what)
{
	char path[PATH_MAX], b[8];
	struct stat st;
	int fd;
	bool dummy;

	memset(p, 0, sizeof(*p));
	p->stat_root = stat(f->m.mnt, &st) ? errno : 0;
	p->readdir = readdir_count(f->m.mnt, &p->entries, &p->saw_a);
	path_in(path, f->m.mnt, "new");
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	p->create = fd < 0 ? errno : 0;
	if (fd >= 0) {
		if (pwrite_all(fd, "new", 3, 0))
			printf("# %s: write to new file: %s\n", what, strerror(errno));
		close(fd);
	}
	path_in(path, f->m.mnt, "newdir");
	p->mkdir_ = mkdir(path, 0755) ? errno : 0;
	path_in(path, f->m.mnt, "a");
	p->stat_a = stat(path, &st) ? errno : 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	p->open_a = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	p->fd_write = pwrite_all(afd, "HE", 2, 0) ? errno : 0;
	memset(b, 0, sizeof(b));
	p->fd_read = pread(afd, b, 5, 0) == 5 ? (memcmp(b, p->fd_write ? "hello" : "HEllo", 5) ? EBADMSG : 0)
					     : errno ? errno : EIO;
	readdir_count(f->m.mnt, &p->entries, &dummy);
	printf("# %s: stat(MNT) %s; readdir %s (%d entries%s); create %s; mkdir %s; "
	       "stat(a) %s; open(a) %s; write on old fd %s; read on old fd %s\n",
	       what, strerror(p->stat_root), strerror(p->readdir), p->entries,
	       p->saw_a ? ", incl. a" : "", strerror(p->create), strerror(p->mkdir_),
	       strerror(p->stat_a), strerror(p->open_a), strerror(p->fd_write),
	       strerror(p->fd_read));
}

static bool clear_errno(int e)
{
	return e == ENOENT || e == ESTALE || e == EIO || e == ENOTDIR;
}

static void finish_clean(struct fixture *f, int afd)
{
	assert_true(daemon_alive(&f->m));
	forget_fd(f, afd);
	assert_int_equal(test_mount_stop(&f->m), 0);
}

static void test_src_removed(void **state)
{
	struct fixture *f = *state;
	struct probe p;
	int afd;

	start_mount(f, NULL);
	afd = make_file_a(f);
	assert_int_equal(test_rm_rf(f->m.src), 0);
	assert_int_equal(access(f->m.src, F_OK), -1);
	probe_mnt(f, afd, &p, "rm -rf SRC");
	assert_true(daemon_alive(&f->m));
	/* stat of the root: works (a deleted dir still has attributes) or a
	 * clear error; readdir: an error or no entries. */
	assert_true(p.stat_root == 0 || clear_errno(p.stat_root));
	if (p.readdir == 0)
		assert_int_equal(p.entries, 0);
	else
		assert_true(clear_errno(p.readdir));
	/* Nothing can be created in a deleted directory. */
	assert_true(p.create != 0 && clear_errno(p.create));
	assert_true(p.mkdir_ != 0 && clear_errno(p.mkdir_));
	assert_true(p.stat_a == 0 || clear_errno(p.stat_a));
	assert_true(p.open_a == 0 || clear_errno(p.open_a));
	/* An open file stays usable (unlinked, not gone). */
	assert_int_equal(p.fd_write, 0);
	assert_int_equal(p.fd_read, 0);
	/* The path must not have come back. */
	assert_int_equal(access(f->m.src, F_OK), -1);
	finish_clean(f, afd);
}

static void test_src_renamed(void **state)
{
	struct fixture *f = *state;
	const char *const only_a_new[] = { "a", "new", "newdir" };
	struct probe p;
	int afd;

	start_mount(f, NULL);
	afd = make_file_a(f);
	snprintf(f->moved, sizeof(f->moved), "%s/moved", f->m.base);
	assert_int_equal(rename(f->m.src, f->moved), 0);
	/* Someone puts a new, empty directory where SRC was. */
	assert_int_equal(mkdir(f->m.src, 0755), 0);
	probe_mnt(f, afd, &p, "SRC renamed away, empty dir in its place");
	assert_true(daemon_alive(&f->m));
	/* The daemon works by fd: it keeps serving the renamed directory,
	 * or fails clearly; it never uses the new directory at the old path. */
	assert_true(p.stat_root == 0 || clear_errno(p.stat_root));
	assert_true(p.readdir == 0 || clear_errno(p.readdir));
	assert_true(p.create == 0 || clear_errno(p.create));
	assert_true(p.mkdir_ == 0 || clear_errno(p.mkdir_));
	assert_int_equal(p.fd_write, 0);
	assert_int_equal(p.fd_read, 0);
	assert_int_equal(stray_entries(f->m.src, NULL, 0), 0);
	assert_int_equal(stray_entries(f->moved, only_a_new, 3), 0);
	if (p.create == 0) {
		char path[PATH_MAX];

		path_in(path, f->moved, "new");
		assert_int_equal(access(path, F_OK), 0);
		printf("# SRC renamed: the created file landed in the renamed directory\n");
	}
	finish_clean(f, afd);
}

static void test_src_tmpfs_lazy_umount(void **state)
{
	struct fixture *f = *state;
	struct probe p;
	int afd;

	if (mount("sfs-faults", f->m.src, "tmpfs", 0, "size=16m,mode=0755")) {
		printf("# cannot mount tmpfs: %s\n", strerror(errno));
		skip();
	}
	f->tmpfs_on_src = true;
	start_mount(f, NULL);
	afd = make_file_a(f);
	assert_int_equal(umount2(f->m.src, MNT_DETACH), 0);
	assert_false(mounted_at(f->m.src, false));
	probe_mnt(f, afd, &p, "tmpfs SRC lazily unmounted");
	assert_true(daemon_alive(&f->m));
	/* The detached tmpfs lives on while the daemon holds it: serving it
	 * or a clear error are both fine; the empty dir below must stay empty. */
	assert_true(p.stat_root == 0 || clear_errno(p.stat_root));
	assert_true(p.readdir == 0 || clear_errno(p.readdir));
	assert_true(p.create == 0 || clear_errno(p.create));
	assert_true(p.stat_a == 0 || clear_errno(p.stat_a));
	assert_true(p.open_a == 0 || clear_errno(p.open_a));
	assert_int_equal(p.fd_write, 0);
	assert_int_equal(p.fd_read, 0);
	assert_int_equal(stray_entries(f->m.src, NULL, 0), 0);
	finish_clean(f, afd);
}

/* ------------------------------------------------------------------ */
/* 3. fd exhaustion                                                   */
/* ------------------------------------------------------------------ */

#define NOFILE_LIMIT 64
#define NOPEN 200

/*
 * test_mount_start() with RLIMIT_NOFILE soft = hard = nofile in the
 * daemon (it raises soft to hard at startup, so both must be low).
 */
static int start_mount_limited(struct fixture *f, rlim_t nofile)
{
	const char *bin = test_stablefs_bin();
	pid_t parent = getpid();
	unsigned ma, mi;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct rlimit rl = { nofile, nofile };

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		if (setrlimit(RLIMIT_NOFILE, &rl)) {
			fprintf(stderr, "setrlimit: %s\n", strerror(errno));
			_exit(126);
		}
		execl(bin, bin, "-f", f->m.src, f->m.mnt, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	f->m.pid = pid;
	for (long end = now_ms() + 10000; now_ms() < end;) {
		int status;

		if (test_is_stablefs_mount(f->m.mnt)) {
			f->m.mounted = true;
			f->fuse_minor = mount_devno(f->m.mnt, &ma, &mi) ? mi : 0;
			return 0;
		}
		if (waitpid(pid, &status, WNOHANG) == pid) {
			char buf[64];

			fprintf(stderr, "stablefs exited before mounting (%s)\n",
				status_str(status, buf, sizeof(buf)));
			f->m.pid = 0;
			return -1;
		}
		sleep_ms(10);
	}
	fprintf(stderr, "stablefs did not mount %s within 10 s\n", f->m.mnt);
	return -1;
}

static int count_daemon_fds(pid_t pid)
{
	char p[64];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(p, sizeof(p), "/proc/%d/fd", pid);
	d = opendir(p);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_fd_exhaustion(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], name[32];
	unsigned char old[4096], neu[4096], r[4096];
	int opened = 0, failed = 0, first_fail = -1, first_errno = 0, other_errno = 0;
	int errs[4] = { 0 };	/* EMFILE, ENFILE, ENOMEM, other */
	int xw, xs, e_write, e_snap, fd;
	long t0, slowest = 0;
	ssize_t n;

	/* Files made directly in SRC: the only fds spent are the daemon's. */
	for (int i = 0; i < NOPEN; i++) {
		snprintf(name, sizeof(name), "g%03d", i);
		path_in(path, f->m.src, name);
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(pwrite_all(fd, name, strlen(name), 0), 0);
		close(fd);
	}
	memset(old, 'x', sizeof(old));
	path_in(path, f->m.src, "x");
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite_all(fd, old, sizeof(old), 0), 0);
	close(fd);

	assert_int_equal(start_mount_limited(f, NOFILE_LIMIT), 0);
	printf("# daemon pid %d, RLIMIT_NOFILE %d, %d fds open at start\n", f->m.pid,
	       NOFILE_LIMIT, count_daemon_fds(f->m.pid));

	/* A writer and a snapshot of x, opened before the fds run out. */
	path_in(path, f->m.mnt, "x");
	xw = remember_fd(f, open(path, O_RDWR | O_CLOEXEC));
	assert_true(xw >= 0);
	xs = remember_fd(f, open(path, O_RDONLY | O_CLOEXEC));
	assert_true(xs >= 0);

	for (int i = 0; i < NOPEN; i++) {
		long t;

		snprintf(name, sizeof(name), "g%03d", i);
		path_in(path, f->m.mnt, name);
		t0 = now_ms();
		fd = open(path, (i % 2 ? O_RDWR : O_RDONLY) | O_CLOEXEC);
		t = now_ms() - t0;
		if (t > slowest)
			slowest = t;
		if (fd >= 0) {
			char b[8];

			remember_fd(f, fd);
			opened++;
			/* The open file works. */
			assert_int_equal(pread(fd, b, 4, 0), 4);
			assert_memory_equal(b, name, 4);
			continue;
		}
		if (first_fail < 0) {
			first_fail = i;
			first_errno = errno;
		}
		failed++;
		switch (errno) {
		case EMFILE: errs[0]++; break;
		case ENFILE: errs[1]++; break;
		case ENOMEM: errs[2]++; break;
		default:
			errs[3]++;
			if (!other_errno) {
				other_errno = errno;
				printf("# open %s failed with %s\n", name, strerror(errno));
			}
		}
		if (!daemon_alive(&f->m))
			fail_msg("daemon died after %d opens", i + 1);
	}
	printf("# %d opens through MNT: %d worked, %d failed (first at #%d: %s); "
	       "EMFILE %d, ENFILE %d, ENOMEM %d, other %d; slowest open %ld ms; "
	       "daemon holds %d fds\n",
	       NOPEN, opened, failed, first_fail, first_fail >= 0 ? strerror(first_errno) : "-",
	       errs[0], errs[1], errs[2], errs[3], slowest, count_daemon_fds(f->m.pid));
	assert_true(daemon_alive(&f->m));
	assert_true(failed > 0);	/* else the limit was not reached */
	assert_int_equal(errs[3], 0);

	/* Out of fds, a write under a live snapshot: the writer's data is
	 * never refused (at worst the snapshot is invalidated: EIO). */
	rec_fill(neu, 7, sizeof(neu));
	e_write = pwrite_all(xw, neu, sizeof(neu), 0) ? errno : 0;
	n = pread(xs, r, sizeof(r), 0);
	e_snap = n < 0 ? errno : n != (ssize_t)sizeof(r) ? -1
		 : !memcmp(r, old, sizeof(r)) ? 0 : !memcmp(r, neu, sizeof(r)) ? -2 : -3;
	printf("# out of fds: write under snapshot %s; snapshot read %s\n",
	       e_write ? strerror(e_write) : "ok",
	       e_snap > 0 ? strerror(e_snap) : e_snap == 0 ? "old bytes (preserved)" :
	       e_snap == -1 ? "short" : e_snap == -2 ? "NEW bytes (snapshot broken)" : "MIXED bytes");
	assert_int_equal(e_write, 0);
	assert_true(e_snap == 0 || e_snap == EIO);
	assert_int_equal(pread(xw, r, sizeof(r), 0), (ssize_t)sizeof(r));
	assert_memory_equal(r, neu, sizeof(r));
	assert_true(daemon_alive(&f->m));

	/* Close everything: the mount works normally again. */
	close_fds(f);
	sleep_ms(100);	/* RELEASE is asynchronous */
	printf("# after closing: daemon holds %d fds\n", count_daemon_fds(f->m.pid));
	exercise_mount(f, "fresh");
	/* And a file that failed before opens now. */
	if (first_fail >= 0) {
		char b[8];

		snprintf(name, sizeof(name), "g%03d", NOPEN - 1);
		path_in(path, f->m.mnt, name);
		fd = remember_fd(f, open(path, O_RDONLY | O_CLOEXEC));
		if (fd < 0)
			printf("# reopen %s: %s\n", name, strerror(errno));
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, b, 4, 0), 4);
		assert_memory_equal(b, name, 4);
		forget_fd(f, fd);
	}
	assert_true(daemon_alive(&f->m));
	assert_int_equal(test_mount_stop(&f->m), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill9_run0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_run1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_run2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_run3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_run4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_src_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_src_renamed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_src_tmpfs_lazy_umount, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_exhaustion, setup, teardown),
	};

	test_require_fuse();
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("faults", tests, NULL, NULL);
}
