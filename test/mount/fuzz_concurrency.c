/*
 * Concurrency fuzzer on a real mount.
 *
 * One stablefs mount (-o allow_other) on fresh temporary directories.
 * Several forked processes (SFS_FUZZ_CHILDREN) - some of them switched to user nobody
 * (65534) after the mount - run random operations on a handful of names in
 * a world-writable directory, so that they collide all the time: opens of
 * every access mode (O_TRUNC, O_APPEND, O_CREAT, O_RDONLY|O_TRUNC), reads,
 * splice to a pipe drained slowly, sendfile, pwrite, append, truncate,
 * fallocate punch/zero, copy_file_range in both directions between the
 * same files, rename over, unlink and recreate, reopen of an open fd
 * through /proc/self/fd/N, open_by_handle_at, flock/F_SETLK/F_OFD_SETLK
 * (also blocking, under alarm()), getxattr user.stablefs.xxh3,
 * stat/fstat/readdir, and opens whose opener is SIGKILLed mid-way.
 *
 * What fails the test:
 *   - a hang: every child publishes in shared memory what it is doing and
 *     since when; an operation running longer than HANG_SECONDS makes the
 *     parent print every child's operation, abort the FUSE connection
 *     (/sys/fs/fuse/connections/<minor>/abort), SIGKILL its own children,
 *     detach the mount lazily and fail;
 *   - the daemon exiting (or the mount vanishing, or ENOTCONN/ECONNABORTED
 *     reaching a child): fail with the daemon's exit status;
 *   - data: a file opened read-only is a snapshot, so an fd opened
 *     O_RDONLY (never written through: it cannot be) must read the same
 *     bytes (XXH3-128) every time it is read whole; its user.stablefs.xxh3
 *     (through /proc/self/fd/N) must be that digest; bytes spliced from it
 *     into a pipe and drained later must equal a pread of the same range;
 *   - two processes holding conflicting locks at once (flock, or POSIX/OFD
 *     record locks: exclusive against anything) on one file (by st_ino,
 *     whatever FUSE node each fd is on);
 *   - an error no random operation can legitimately get (see legit_errno()).
 *
 * Errors that ARE legitimate outcomes of random operations are counted
 * per operation and errno, and printed as TAP comments at the end:
 *   ENOENT     another process unlinked or renamed the name away;
 *   EACCES, EPERM  permission checks that depend on who runs the op:
 *              open_by_handle_at needs CAP_DAC_READ_SEARCH (nobody gets
 *              EPERM); everything is created 0666 in a 0777 directory,
 *              so other EACCES/EPERM are rare but legitimate outcomes of
 *              mixing users;
 *   EAGAIN     a non-blocking lock that is held by someone else;
 *   EINTR      a blocking lock interrupted by its alarm() (ALARM_SECONDS);
 *   EBADF      an operation on an fd of the wrong access mode (the fuzzer
 *              picks held fds at random: e.g. fallocate on O_RDONLY; the
 *              kernel answers that before FUSE is asked);
 *   EINVAL     copy_file_range with overlapping ranges of one file, or an
 *              fd opened O_APPEND as destination; fallocate on O_APPEND;
 *   EOPNOTSUPP name_to_handle_at/open_by_handle_at or a fallocate mode the
 *              mount does not offer;
 *   EEXIST     O_CREAT|O_EXCL of a name that exists;
 *   EXDEV      copy_file_range refused by the kernel (it normally falls
 *              back to a copy by itself; counted if it ever shows);
 *   ESTALE from open_by_handle_at only: the file the handle names was
 *              unlinked meanwhile (that is what ESTALE means there).
 * Not legitimate (fail): EIO (no max_preserve cap and nothing changes SRC
 * behind the mount's back, so no snapshot may be invalidated), ENOTCONN,
 * ECONNABORTED, EBUSY and ETXTBSY (nothing here is executed or mounted on,
 * so nothing may answer them), EFAULT, ENOMEM, anything else.
 * ESTALE from anything else: the daemon answers ESTALE to an open that
 * landed on the wrong incarnation and the kernel is meant to retry with a
 * fresh LOOKUP; it should never reach a user. It is counted and reported;
 * with SFS_FUZZ_ESTALE=fail it fails the test.
 *
 * Environment:
 *   SFS_FUZZ_SECONDS   duration (default 60)
 *   SFS_FUZZ_SEED      seed (default 1; printed)
 *   SFS_FUZZ_OPS       comma-separated op kinds (default: DEFAULT_OPS;
 *                      "all" for every kind)
 *   SFS_FUZZ_CHILDREN  processes (default 6; every third one is nobody)
 *   SFS_FUZZ_ESTALE    "fail": an ESTALE fails the test
 *   SFS_FUZZ_MOUNT_OPTS  extra -o options (e.g. max_threads=1,fd_cache=16)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "mount_util.h"
#include "test_util.h"

#define KiB 1024L
#define MAX_FILE (256 * KiB)	/* writes keep files about this small */
#define MAX_IO (32 * KiB)
#define N_NAMES 4		/* f0..f3: everyone works on these */
#define MAX_CHILDREN 16
#define HELD 6			/* open fds a child keeps between ops */
#define HANG_SECONDS 30
#define ALARM_SECONDS 5		/* blocking locks */
#define DEFAULT_SECONDS 60
#define NOBODY 65534
#define MAX_REPORTS 20
#define LOCK_SLOTS 1024
#define LOCK_EXCL (-1000000)	/* a lock_slot holder: held exclusively */
#define XATTR_DIGEST "user.stablefs.xxh3"

/*
 * The op kinds. DEFAULT_OPS below is what runs unless SFS_FUZZ_OPS says
 * otherwise.
 */
enum op {
	OP_OPEN, OP_RDTRUNC, OP_READ, OP_REREAD, OP_SPLICE, OP_SENDFILE,
	OP_PWRITE, OP_APPEND, OP_TRUNCATE, OP_FALLOCATE, OP_COPY, OP_RENAME,
	OP_UNLINK, OP_PROCREOPEN, OP_HANDLE, OP_LOCK, OP_XATTR, OP_STAT,
	OP_KILLOPEN, N_OPS
};

static const char *const op_name[N_OPS] = {
	[OP_OPEN] = "open", [OP_RDTRUNC] = "rdtrunc", [OP_READ] = "read",
	[OP_REREAD] = "reread", [OP_SPLICE] = "splice",
	[OP_SENDFILE] = "sendfile", [OP_PWRITE] = "pwrite",
	[OP_APPEND] = "append", [OP_TRUNCATE] = "truncate",
	[OP_FALLOCATE] = "fallocate", [OP_COPY] = "copy",
	[OP_RENAME] = "rename", [OP_UNLINK] = "unlink",
	[OP_PROCREOPEN] = "procreopen", [OP_HANDLE] = "handle",
	[OP_LOCK] = "lock", [OP_XATTR] = "xattr", [OP_STAT] = "stat",
	[OP_KILLOPEN] = "killopen",
};

/* Relative weights: the fd-making and data ops a bit more often. */
static const int op_weight[N_OPS] = {
	[OP_OPEN] = 4, [OP_RDTRUNC] = 1, [OP_READ] = 3, [OP_REREAD] = 3,
	[OP_SPLICE] = 2, [OP_SENDFILE] = 2, [OP_PWRITE] = 3, [OP_APPEND] = 2,
	[OP_TRUNCATE] = 1, [OP_FALLOCATE] = 1, [OP_COPY] = 2, [OP_RENAME] = 1,
	[OP_UNLINK] = 1, [OP_PROCREOPEN] = 2, [OP_HANDLE] = 1, [OP_LOCK] = 2,
	[OP_XATTR] = 2, [OP_STAT] = 2, [OP_KILLOPEN] = 1,
};

/*
 * Every op kind but two runs clean (seed 1, 30-60 s, both builds). The
 * first version of this fuzzer found, within 20-30 s each: a daemon crash
 * on /proc/self/fd reopens and open_by_handle_at (route_set use-after-
 * free), a copy_file_range A->B / B->A deadlock, O_RDONLY|O_TRUNC opens
 * bypassing the protocol, locks split across incarnations, an eviction
 * hang with one worker, and a use-after-free in reply_opened after a
 * connection abort; all fixed (test/mount/reliability.c has a case for each).
 * Left out:
 *   rename, unlink  opens racing renames and unlinks of the same names
 *               still get, in about 1 of 1,000 opens, ESTALE (the kernel
 *               retries an ESTALE'd open once) or EBUSY (the retry lands
 *               on a node another thread's lookup gave, where no snapshot
 *               can be had): errors, never wrong bytes (0 data failures).
 */
#define DEFAULT_OPS "open,rdtrunc,read,reread,splice,sendfile,pwrite," \
	"append,truncate,fallocate,copy,procreopen,handle,lock,xattr,stat," \
	"killopen"

/* errno buckets for the counts; 0 = success, last = anything else. */
static const int err_list[] = {
	0, ENOENT, EACCES, EPERM, EAGAIN, EINTR, EBADF, EINVAL, EOPNOTSUPP,
	EEXIST, EXDEV, ENODATA, ESTALE, EIO, ENOTCONN, ECONNABORTED, EBUSY, ETXTBSY,
	ENOSPC, EFBIG, -1
};
#define N_ERR ((int)(sizeof(err_list) / sizeof(err_list[0])))

static int err_bucket(int err)
{
	for (int i = 0; i < N_ERR - 1; i++)
		if (err_list[i] == err)
			return i;
	return N_ERR - 1;
}

/* Errors a random operation may legitimately get (see the top comment). */
static bool legit_errno(enum op op, int err)
{
	switch (err) {
	case ENOENT: case EACCES: case EPERM: case EAGAIN: case EINTR:
	case EBADF: case EINVAL: case EOPNOTSUPP: case EEXIST: case EXDEV:
		return true;
	case ESTALE:
		return op == OP_HANDLE;
	case EBUSY:	/* a writable reopen of a snapshot's fd (by design) */
		return op == OP_PROCREOPEN || op == OP_HANDLE;
	default:
		return false;
	}
}

/* ------------------------------------------------------------------ */
/* Shared memory                                                      */
/* ------------------------------------------------------------------ */

struct child_state {
	atomic_int pid;
	atomic_int op;			/* -1: between ops */
	atomic_long op_start_ms;	/* now_ms() when op began */
	atomic_long ops_done;
	atomic_bool done;
	char what[160];			/* detail of the current op */
};

struct lock_slot {
	atomic_ulong ino;		/* 0: free */
	/* [flock, posix]: number of shared holders, or LOCK_EXCL. */
	atomic_int holder[2];
};

struct shared {
	atomic_bool stop;
	atomic_long deadline_ms;
	atomic_long count[N_OPS][N_ERR];
	atomic_long unexpected, estale, data_bad, lock_bad, disconnected;
	atomic_long reports;
	atomic_long snap_checks, splice_checks, xattr_checks, lock_checks;
	struct lock_slot locks[LOCK_SLOTS];
	struct child_state child[MAX_CHILDREN];
};

static struct shared *sh;

/* One line on stdout in one write (children share it). */
static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(1, line, (size_t)n) < 0)
		return;
}

static bool may_report(void)
{
	return atomic_fetch_add(&sh->reports, 1) < MAX_REPORTS;
}

/* ------------------------------------------------------------------ */
/* A child                                                            */
/* ------------------------------------------------------------------ */

struct held {
	int fd;			/* -1: free slot */
	int flags;		/* open flags */
	int name;		/* index of the name it was opened by, or -1 */
	bool live;		/* read-only, yet the live file (see snapshot_fd) */
	bool hashed;		/* snapshot digest taken */
	long len;
	XXH128_hash_t hash;
};

struct child {
	int id;
	uid_t uid;
	uint64_t seed;
	const char *dir;	/* MNT/w */
	const char *mnt;
	int mnt_fd;		/* for open_by_handle_at */
	bool ops[N_OPS];
	int total_weight;
	struct held h[HELD];
	unsigned char *buf, *buf2;
	struct child_state *st;
};

static void name_path(const struct child *c, int name, char out[PATH_MAX])
{
	snprintf(out, PATH_MAX, "%s/f%d", c->dir, name);
}

static void set_what(struct child *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->st->what, sizeof(c->st->what), fmt, ap);
	va_end(ap);
}

/*
 * Count the outcome of op (rc < 0: failed with err). Unexpected errors are
 * reported; ENOTCONN/ECONNABORTED mean the daemon is gone: stop.
 */
static void outcome(struct child *c, enum op op, int rc, int err)
{
	if (rc >= 0) {
		atomic_fetch_add(&sh->count[op][0], 1);
		return;
	}
	atomic_fetch_add(&sh->count[op][err_bucket(err)], 1);
	if (legit_errno(op, err))
		return;
	if (err == ENOTCONN || err == ECONNABORTED) {
		if (atomic_fetch_add(&sh->disconnected, 1) == 0)
			say("# child %d: %s: %s: the daemon is gone", c->id,
			    c->st->what, strerror(err));
		atomic_store(&sh->stop, true);
		return;
	}
	if (err == ESTALE) {
		atomic_fetch_add(&sh->estale, 1);
		if (may_report())
			say("# ESTALE reached a user: child %d (uid %d): %s",
			    c->id, (int)c->uid, c->st->what);
		return;
	}
	atomic_fetch_add(&sh->unexpected, 1);
	if (may_report())
		say("# UNEXPECTED %s: child %d (uid %d): %s", strerror(err),
		    c->id, (int)c->uid, c->st->what);
}

static void rnd_fill(struct child *c, unsigned char *b, long len)
{
	for (long i = 0; i < len; i++)
		b[i] = (unsigned char)(rnd(&c->seed) >> 56);
}

static int acc(int flags)
{
	return flags & O_ACCMODE;
}

static bool readable(const struct held *h)
{
	return h->fd >= 0 && acc(h->flags) != O_WRONLY;
}

static bool writable(const struct held *h)
{
	return h->fd >= 0 && acc(h->flags) != O_RDONLY;
}

static void drop(struct held *h)
{
	close_fd(&h->fd);
	h->hashed = false;
}

/* Keep fd in a free slot (or in place of a random one). */
static void keep(struct child *c, int fd, int flags, int name)
{
	int slot = -1;

	for (int i = 0; i < HELD && slot < 0; i++)
		if (c->h[i].fd < 0)
			slot = i;
	if (slot < 0) {
		slot = (int)rnd_below(&c->seed, HELD);
		drop(&c->h[slot]);
	}
	c->h[slot] = (struct held){ .fd = fd, .flags = flags, .name = name };
}

static void mark_live(struct child *c, int fd, bool live)
{
	for (int i = 0; i < HELD; i++)
		if (c->h[i].fd == fd)
			c->h[i].live = live;
}

/* A held fd that pred accepts, at random; NULL if none. */
static struct held *pick(struct child *c, bool (*pred)(const struct held *))
{
	int n = 0, idx[HELD];

	for (int i = 0; i < HELD; i++)
		if (c->h[i].fd >= 0 && pred(&c->h[i]))
			idx[n++] = i;
	return n ? &c->h[idx[rnd_below(&c->seed, n)]] : NULL;
}

static bool any_fd(const struct held *h)
{
	return h->fd >= 0;
}

/*
 * A read-only fd is a snapshot, except where the daemon gives the live
 * file by design (doc/design.md): O_RDONLY|O_TRUNC opens (a change, bound
 * as one), a read-only /proc reopen of a writable fd, and opens by handle
 * (no lookup: they open in place, on whatever node the handle names).
 */
static bool snapshot_fd(const struct held *h)
{
	return h->fd >= 0 && acc(h->flags) == O_RDONLY && !(h->flags & O_TRUNC) &&
	       !h->live;
}

/*
 * An fd to work on: a held one that pred accepts half the time, else a
 * fresh open of a random name with flags (*fresh is then true: close it).
 */
static int get_fd(struct child *c, bool (*pred)(const struct held *),
		  int flags, bool *fresh, struct held **hp)
{
	struct held *h = rnd(&c->seed) & 1 ? pick(c, pred) : NULL;
	char p[PATH_MAX];
	int name;

	*hp = h;
	*fresh = !h;
	if (h)
		return h->fd;
	name = (int)rnd_below(&c->seed, N_NAMES);
	name_path(c, name, p);
	return open(p, flags | O_CLOEXEC, 0666);
}

/* Whole file through pread; its length, or -1 (errno). */
static long read_whole(int fd, unsigned char *b, long cap)
{
	long got = 0;

	while (got < cap) {
		ssize_t n = pread(fd, b + got, (size_t)(cap - got), got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += n;
	}
	return got;
}

static void hex128(XXH128_hash_t h, char out[33])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, h);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", c.digest[i]);
}

/* A snapshot fd read whole: same bytes as its first whole read. */
static int check_snapshot(struct child *c, struct held *h)
{
	long n = read_whole(h->fd, c->buf, 4 * MAX_FILE);
	XXH128_hash_t d;

	if (n < 0)
		return -1;
	d = XXH3_128bits(c->buf, (size_t)n);
	if (!h->hashed) {
		h->hashed = true;
		h->len = n;
		h->hash = d;
		return 0;
	}
	atomic_fetch_add(&sh->snap_checks, 1);
	if (n != h->len || !XXH128_isEqual(d, h->hash)) {
		char a[33], b[33];

		hex128(h->hash, a);
		hex128(d, b);
		atomic_fetch_add(&sh->data_bad, 1);
		if (may_report())
			say("# DATA: child %d: snapshot fd of f%d (flags %#x) read "
			    "%ld bytes xxh3 %s, first read %ld bytes xxh3 %s",
			    c->id, h->name, h->flags, n, b, h->len, a);
	}
	return 0;
}

/* Keep a file small: past MAX_FILE, truncate it to half. */
static void keep_small(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && st.st_size > MAX_FILE)
		if (ftruncate(fd, MAX_FILE / 2))
			return;
}

/* An offset that mostly falls inside fd's file (or just past it). */
static long off_in(struct child *c, int fd)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) || st.st_size <= 0 || !(rnd(&c->seed) & 7))
		return rnd_off(&c->seed, MAX_FILE);
	return rnd_off(&c->seed, st.st_size + 1);
}

static const int open_variants[] = {
	O_RDONLY, O_RDONLY, O_RDONLY, O_RDWR, O_WRONLY, O_RDWR | O_TRUNC,
	O_WRONLY | O_TRUNC, O_WRONLY | O_APPEND, O_RDWR | O_CREAT,
	O_WRONLY | O_CREAT | O_EXCL,
};

static int op_open(struct child *c, bool rdtrunc)
{
	int name = (int)rnd_below(&c->seed, N_NAMES);
	int flags = rdtrunc ? O_RDONLY | O_TRUNC :
		open_variants[rnd_below(&c->seed,
			(long)(sizeof(open_variants) / sizeof(open_variants[0])))];
	char p[PATH_MAX];
	int fd;

	name_path(c, name, p);
	set_what(c, "open f%d flags %#x", name, flags);
	fd = open(p, flags | O_CLOEXEC, 0666);
	if (fd < 0)
		return -1;
	keep(c, fd, flags, name);
	if (acc(flags) == O_RDONLY && rnd(&c->seed) & 1) {
		/* Take the snapshot's digest right away, half the time. */
		struct held *h = NULL;

		for (int i = 0; i < HELD; i++)
			if (c->h[i].fd == fd)
				h = &c->h[i];
		if (h && check_snapshot(c, h))
			return -1;
	}
	return 0;
}

static int op_read(struct child *c)
{
	bool fresh;
	struct held *h;
	int fd = get_fd(c, readable, O_RDONLY, &fresh, &h);
	long off = off_in(c, fd);
	long len = 1 + rnd_below(&c->seed, MAX_IO);
	ssize_t n;
	int err;

	set_what(c, "pread %s fd %d off %ld len %ld", fresh ? "fresh" : "held",
		 fd, off, len);
	if (fd < 0)
		return -1;
	n = pread(fd, c->buf, (size_t)len, off);
	err = errno;
	if (fresh)
		close(fd);
	errno = err;
	return n < 0 ? -1 : 0;
}

static int op_reread(struct child *c)
{
	struct held *h = pick(c, snapshot_fd);

	if (!h)
		return op_open(c, false);
	set_what(c, "reread snapshot of f%d fd %d", h->name, h->fd);
	return check_snapshot(c, h);
}

/*
 * splice a range into a pipe, let others work, drain it slowly. For a
 * snapshot fd the drained bytes must equal a pread of the range now.
 */
static int op_splice(struct child *c)
{
	bool fresh;
	struct held *h;
	int fd = get_fd(c, rnd(&c->seed) & 1 ? snapshot_fd : readable, O_RDONLY,
			&fresh, &h);
	bool snap = h && snapshot_fd(h);
	loff_t off = off_in(c, fd), o = off;
	long len = 1 + rnd_below(&c->seed, 64 * KiB - 1);
	int p[2] = { -1, -1 }, err = 0;
	ssize_t n;
	long got = 0;

	set_what(c, "splice %s fd %d off %lld len %ld, slow drain",
		 fresh ? "fresh" : "held", fd, (long long)off, len);
	if (fd < 0)
		return -1;
	if (make_pipe(p, 64 * KiB)) {
		err = errno;
		goto out;
	}
	n = splice(fd, &o, p[1], NULL, (size_t)len, SPLICE_F_NONBLOCK);
	if (n < 0) {
		err = errno;
		goto out;
	}
	close_fd(&p[1]);
	sleep_us(rnd_below(&c->seed, 20000));
	while (got < n) {
		ssize_t m = read(p[0], c->buf + got,
				 (size_t)(n - got < 4096 ? n - got : 4096));

		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0) {
			err = m < 0 ? errno : EIO;
			goto out;
		}
		got += m;
		sleep_us(rnd_below(&c->seed, 500));
	}
	if (snap && n > 0) {
		ssize_t m = pread(fd, c->buf2, (size_t)n, off);

		if (m < 0) {
			err = errno;
			goto out;
		}
		atomic_fetch_add(&sh->splice_checks, 1);
		if (m != n || memcmp(c->buf, c->buf2, (size_t)n)) {
			atomic_fetch_add(&sh->data_bad, 1);
			if (may_report())
				say("# DATA: child %d: %zd bytes spliced from the "
				    "snapshot of f%d (flags %#x) at %lld differ "
				    "from a pread of them after the drain (%zd)",
				    c->id, n, h->name, h->flags,
				    (long long)off, m);
		}
	}
out:
	close_fd(&p[0]);
	close_fd(&p[1]);
	if (fresh)
		close(fd);
	errno = err;
	return err ? -1 : 0;
}

/* sendfile from one name into another (both through the mount). */
static int op_sendfile(struct child *c)
{
	bool fresh;
	struct held *h;
	int in = get_fd(c, readable, O_RDONLY, &fresh, &h);
	int name = (int)rnd_below(&c->seed, N_NAMES), out, err = 0;
	off_t off = off_in(c, in);
	long len = 1 + rnd_below(&c->seed, MAX_IO);
	char p[PATH_MAX];

	set_what(c, "sendfile %s fd %d off %lld len %ld -> f%d",
		 fresh ? "fresh" : "held", in, (long long)off, len, name);
	if (in < 0)
		return -1;
	name_path(c, name, p);
	out = open(p, O_WRONLY | O_CLOEXEC);
	if (out < 0) {
		err = errno;
	} else {
		if (lseek(out, rnd_off(&c->seed, MAX_FILE / 2), SEEK_SET) < 0 ||
		    sendfile(out, in, &off, (size_t)len) < 0)
			err = errno;
		close(out);
	}
	if (fresh)
		close(in);
	errno = err;
	return err ? -1 : 0;
}

static int op_pwrite(struct child *c)
{
	bool fresh;
	struct held *h;
	int fd = get_fd(c, writable, O_WRONLY, &fresh, &h), err = 0;
	long off = rnd_off(&c->seed, MAX_FILE);
	long len = 1 + rnd_below(&c->seed, MAX_IO);

	set_what(c, "pwrite %s fd %d off %ld len %ld", fresh ? "fresh" : "held",
		 fd, off, len);
	if (fd < 0)
		return -1;
	rnd_fill(c, c->buf, len);
	if (pwrite(fd, c->buf, (size_t)len, off) < 0)
		err = errno;
	if (fresh)
		close(fd);
	errno = err;
	return err ? -1 : 0;
}

static int op_append(struct child *c)
{
	int name = (int)rnd_below(&c->seed, N_NAMES), fd, err = 0;
	long len = 1 + rnd_below(&c->seed, 8 * KiB);
	char p[PATH_MAX];

	name_path(c, name, p);
	set_what(c, "append f%d len %ld", name, len);
	fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return -1;
	keep_small(fd);
	rnd_fill(c, c->buf, len);
	if (write(fd, c->buf, (size_t)len) < 0)
		err = errno;
	if (!err && rnd(&c->seed) & 1)
		keep(c, fd, O_WRONLY | O_APPEND, name);
	else
		close(fd);
	errno = err;
	return err ? -1 : 0;
}

static int op_truncate(struct child *c)
{
	long len = rnd_off(&c->seed, MAX_FILE);

	if (rnd(&c->seed) & 1) {
		int name = (int)rnd_below(&c->seed, N_NAMES);
		char p[PATH_MAX];

		name_path(c, name, p);
		set_what(c, "truncate f%d to %ld", name, len);
		return truncate(p, len);
	}
	{
		bool fresh;
		struct held *h;
		int fd = get_fd(c, writable, O_WRONLY, &fresh, &h), err = 0;

		set_what(c, "ftruncate %s fd %d to %ld",
			 fresh ? "fresh" : "held", fd, len);
		if (fd < 0)
			return -1;
		if (ftruncate(fd, len))
			err = errno;
		if (fresh)
			close(fd);
		errno = err;
		return err ? -1 : 0;
	}
}

static int op_fallocate(struct child *c)
{
	bool fresh;
	struct held *h;
	int fd = get_fd(c, writable, O_RDWR, &fresh, &h), err = 0;
	bool punch = rnd(&c->seed) & 1;
	long off = off_in(c, fd);
	long len = 1 + rnd_below(&c->seed, 64 * KiB);

	set_what(c, "fallocate %s %s fd %d off %ld len %ld",
		 punch ? "punch" : "zero", fresh ? "fresh" : "held", fd, off, len);
	if (fd < 0)
		return -1;
	if (fallocate(fd, punch ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE :
		      FALLOC_FL_ZERO_RANGE, off, len))
		err = errno;
	if (fresh)
		close(fd);
	errno = err;
	return err ? -1 : 0;
}

/*
 * copy_file_range between two names; half the time f0 <-> f1 in a random
 * direction, so that A->B and B->A run at the same time in two processes.
 */
static int op_copy(struct child *c)
{
	int a, b, in, out, err = 0;
	char pa[PATH_MAX], pb[PATH_MAX];
	loff_t oi, oo;
	long len = 1 + rnd_below(&c->seed, MAX_FILE);

	if (rnd(&c->seed) & 1) {
		a = (int)(rnd(&c->seed) & 1);
		b = 1 - a;
	} else {
		a = (int)rnd_below(&c->seed, N_NAMES);
		b = (int)rnd_below(&c->seed, N_NAMES);
	}
	name_path(c, a, pa);
	name_path(c, b, pb);
	set_what(c, "copy_file_range f%d -> f%d: opening", a, b);
	/* Mostly O_RDWR: from a snapshot (O_RDONLY) the daemon answers EXDEV
	 * and the kernel copies through splice instead. */
	in = open(pa, (rnd(&c->seed) & 3 ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (in < 0)
		return -1;
	out = open(pb, (rnd(&c->seed) & 1 ? O_WRONLY : O_RDWR) | O_CLOEXEC);
	if (out < 0) {
		err = errno;
		close(in);
		errno = err;
		return -1;
	}
	oi = off_in(c, in);
	oo = off_in(c, out);
	set_what(c, "copy_file_range f%d@%lld -> f%d@%lld len %ld", a,
		 (long long)oi, b, (long long)oo, len);
	if (copy_file_range(in, &oi, out, &oo, (size_t)len, 0) < 0)
		err = errno;
	close(in);
	close(out);
	errno = err;
	return err ? -1 : 0;
}

/* rename over: a fresh temporary name, or another of the names. */
static int op_rename(struct child *c)
{
	int to = (int)rnd_below(&c->seed, N_NAMES), err = 0;
	char from[PATH_MAX], p[PATH_MAX];

	name_path(c, to, p);
	if (rnd(&c->seed) & 1) {
		long len = rnd_below(&c->seed, MAX_IO);
		int fd;

		snprintf(from, sizeof(from), "%s/t%d", c->dir, c->id);
		set_what(c, "create t%d (%ld bytes), rename over f%d", c->id,
			 len, to);
		fd = open(from, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (fd < 0)
			return -1;
		rnd_fill(c, c->buf, len);
		if (write(fd, c->buf, (size_t)len) < 0)
			err = errno;
		close(fd);
		if (err) {
			errno = err;
			return -1;
		}
	} else {
		int name = (int)rnd_below(&c->seed, N_NAMES);

		name_path(c, name, from);
		set_what(c, "rename f%d over f%d", name, to);
	}
	return rename(from, p);
}

static int op_unlink(struct child *c)
{
	int name = (int)rnd_below(&c->seed, N_NAMES), fd, err = 0;
	long len = rnd_below(&c->seed, MAX_IO);
	char p[PATH_MAX];

	name_path(c, name, p);
	set_what(c, "unlink f%d and recreate (%ld bytes)", name, len);
	if (unlink(p))
		return -1;
	if (rnd(&c->seed) & 3) {
		fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0)
			return -1;
		rnd_fill(c, c->buf, len);
		if (write(fd, c->buf, (size_t)len) < 0)
			err = errno;
		keep(c, fd, O_RDWR, name);
	}
	errno = err;
	return err ? -1 : 0;
}

/* Reopen an open fd through /proc/self/fd/N, to read or to write. */
static int op_procreopen(struct child *c)
{
	struct held *h = pick(c, any_fd);
	static const int modes[] = { O_RDONLY, O_RDWR, O_WRONLY, O_RDONLY };
	int flags = modes[rnd_below(&c->seed, 4)], fd, name;
	bool live;
	char p[64];

	if (!h)
		return op_open(c, false);
	name = h->name;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", h->fd);
	set_what(c, "reopen %s (f%d, flags %#x) with flags %#x", p, h->name,
		 h->flags, flags);
	fd = open(p, flags | O_CLOEXEC);
	if (fd < 0)
		return -1;
	live = !snapshot_fd(h);		/* a reopen reads what h reads */
	keep(c, fd, flags, name);
	mark_live(c, fd, live);
	return 0;
}

static int op_handle(struct child *c)
{
	int name = (int)rnd_below(&c->seed, N_NAMES), mount_id, fd;
	int flags = rnd(&c->seed) & 1 ? O_RDONLY : O_RDWR;
	union {
		struct file_handle fh;
		char space[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} u;
	char p[PATH_MAX];

	name_path(c, name, p);
	set_what(c, "name_to_handle_at f%d, open_by_handle_at flags %#x",
		 name, flags);
	u.fh.handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(AT_FDCWD, p, &u.fh, &mount_id, 0))
		return -1;
	fd = open_by_handle_at(c->mnt_fd, &u.fh, flags | O_CLOEXEC);
	if (fd < 0)
		return -1;
	keep(c, fd, flags, name);
	mark_live(c, fd, true);
	return 0;
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* The shared record of who holds kind's exclusive lock on ino. */
static atomic_int *lock_holder(unsigned long ino, int kind)
{
	for (int i = 0; i < LOCK_SLOTS; i++) {
		unsigned long cur = atomic_load(&sh->locks[i].ino);

		if (cur == ino)
			return &sh->locks[i].holder[kind];
		if (cur == 0) {
			unsigned long zero = 0;

			if (atomic_compare_exchange_strong(&sh->locks[i].ino,
							   &zero, ino) ||
			    zero == ino)
				return &sh->locks[i].holder[kind];
		}
	}
	return NULL;	/* table full: no check */
}

/* Note that we now hold the lock (excl or shared); false: a conflict. */
static bool lock_enter(atomic_int *holder, bool excl, int *seen)
{
	int v = atomic_load(holder);

	if (excl) {
		*seen = 0;
		return atomic_compare_exchange_strong(holder, seen, LOCK_EXCL);
	}
	for (;;) {
		*seen = v;
		if (v < 0)
			return false;
		if (atomic_compare_exchange_weak(holder, &v, v + 1))
			return true;
	}
}

/*
 * Take a lock on any fd - flock, F_SETLK or F_OFD_SETLK, exclusive on a
 * writable fd half the time, else shared; blocking ones under alarm() -,
 * note it in shared memory (by st_ino: one file, whatever FUSE node the
 * fd is on), where no conflicting holder may be noted now, hold it a
 * little, then let go. The lock only lives inside this op.
 */
static int op_lock(struct child *c)
{
	static const char *const how[] = { "flock", "F_SETLK", "F_OFD_SETLK" };
	int kind = (int)rnd_below(&c->seed, 3);
	bool block = rnd(&c->seed) & 1;
	bool fresh, excl;
	struct held *h;
	int fd = get_fd(c, any_fd, rnd(&c->seed) & 1 ? O_RDONLY : O_RDWR,
			&fresh, &h), rc, err = 0;
	int flags = h ? h->flags : 0;
	struct flock fl = { .l_whence = SEEK_SET };
	struct stat st;
	atomic_int *holder = NULL;

	if (fd < 0) {
		set_what(c, "%s: open", how[kind]);
		return -1;
	}
	if (fresh)
		flags = fcntl(fd, F_GETFL);
	/* POSIX locks need the access: F_WRLCK a writable fd, F_RDLCK a
	 * readable one. */
	if (acc(flags) == O_RDONLY)
		excl = kind == 0 && rnd(&c->seed) & 1;
	else if (acc(flags) == O_WRONLY)
		excl = true;
	else
		excl = rnd(&c->seed) & 1;
	fl.l_type = excl ? F_WRLCK : F_RDLCK;
	set_what(c, "%s %s%s on %s fd %d (flags %#x)", how[kind],
		 excl ? "exclusive" : "shared", block ? " (blocking)" : "",
		 fresh ? "fresh" : "held", fd, flags);
	if (block)
		alarm(ALARM_SECONDS);
	if (kind == 0)
		rc = flock(fd, (excl ? LOCK_EX : LOCK_SH) | (block ? 0 : LOCK_NB));
	else if (kind == 1)
		rc = fcntl(fd, block ? F_SETLKW : F_SETLK, &fl);
	else
		rc = fcntl(fd, block ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
	if (rc)
		err = errno;
	if (block)
		alarm(0);
	if (rc)
		goto out;
	if (fstat(fd, &st) == 0)
		holder = lock_holder((unsigned long)st.st_ino, kind ? 1 : 0);
	if (holder) {
		int seen;

		atomic_fetch_add(&sh->lock_checks, 1);
		if (!lock_enter(holder, excl, &seen)) {
			atomic_fetch_add(&sh->lock_bad, 1);
			if (may_report())
				say("# LOCK: child %d got %s %s on ino %lu (fd flags "
				    "%#x) while another process holds it %s", c->id,
				    how[kind], excl ? "exclusive" : "shared",
				    (unsigned long)st.st_ino, flags,
				    seen < 0 ? "exclusively" : "shared");
			holder = NULL;
		}
	}
	sleep_us(rnd_below(&c->seed, 10000));
	if (holder) {
		if (excl)
			atomic_store(holder, 0);
		else
			atomic_fetch_sub(holder, 1);
	}
	if (kind == 0) {
		flock(fd, LOCK_UN);
	} else {
		fl.l_type = F_UNLCK;
		fcntl(fd, kind == 1 ? F_SETLK : F_OFD_SETLK, &fl);
	}
out:
	if (fresh)
		close(fd);
	errno = err;
	return err ? -1 : 0;
}

/* user.stablefs.xxh3 of a name, or of a snapshot fd (checked). */
static int op_xattr(struct child *c)
{
	struct held *h = rnd(&c->seed) & 1 ? pick(c, snapshot_fd) : NULL;
	char p[PATH_MAX], val[64];
	ssize_t n;

	if (h) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", h->fd);
		if (!h->hashed) {
			set_what(c, "read snapshot of f%d fd %d whole", h->name, h->fd);
			if (check_snapshot(c, h))
				return -1;
		}
	} else {
		name_path(c, (int)rnd_below(&c->seed, N_NAMES), p);
	}
	set_what(c, "getxattr %s %s", p, XATTR_DIGEST);
	n = getxattr(p, XATTR_DIGEST, val, sizeof(val) - 1);
	if (n < 0)
		return -1;
	if (h) {
		char want[33];

		val[n] = '\0';
		hex128(h->hash, want);
		atomic_fetch_add(&sh->xattr_checks, 1);
		if (strcmp(val, want)) {
			atomic_fetch_add(&sh->data_bad, 1);
			if (may_report())
				say("# DATA: child %d: %s of the snapshot of f%d "
				    "is %s, its bytes hash to %s", c->id,
				    XATTR_DIGEST, h->name, val, want);
		}
	}
	return 0;
}

static int op_stat(struct child *c)
{
	int what = (int)rnd_below(&c->seed, 3);
	struct stat st;

	if (what == 0) {
		char p[PATH_MAX];
		int name = (int)rnd_below(&c->seed, N_NAMES);

		name_path(c, name, p);
		set_what(c, "stat f%d", name);
		return stat(p, &st);
	}
	if (what == 1) {
		struct held *h = pick(c, any_fd);

		if (h) {
			set_what(c, "fstat fd %d (f%d)", h->fd, h->name);
			return fstat(h->fd, &st);
		}
	}
	{
		DIR *d;
		struct dirent *e;
		int err = 0;

		set_what(c, "readdir %s", c->dir);
		d = opendir(c->dir);
		if (!d)
			return -1;
		errno = 0;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW);
		err = errno;
		closedir(d);
		errno = err;
		return err ? -1 : 0;
	}
}

/*
 * An open interrupted by the opener's death: a grandchild opens (and
 * closes) a name in a loop and is SIGKILLed after a moment, so that the
 * daemon often answers an open whose opener is gone.
 */
static int op_killopen(struct child *c)
{
	int name = (int)rnd_below(&c->seed, N_NAMES);
	int flags = open_variants[rnd_below(&c->seed,
		(long)(sizeof(open_variants) / sizeof(open_variants[0])))];
	long us = rnd_below(&c->seed, 3000);
	char p[PATH_MAX];
	pid_t pid;

	name_path(c, name, p);
	set_what(c, "open f%d flags %#x in a loop in a grandchild, SIGKILLed "
		 "after %ld us", name, flags, us);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			int fd = open(p, flags | O_CLOEXEC, 0666);

			if (fd >= 0)
				close(fd);
		}
	}
	sleep_us(us);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return 0;
}

static int run_op(struct child *c, enum op op)
{
	switch (op) {
	case OP_OPEN: return op_open(c, false);
	case OP_RDTRUNC: return op_open(c, true);
	case OP_READ: return op_read(c);
	case OP_REREAD: return op_reread(c);
	case OP_SPLICE: return op_splice(c);
	case OP_SENDFILE: return op_sendfile(c);
	case OP_PWRITE: return op_pwrite(c);
	case OP_APPEND: return op_append(c);
	case OP_TRUNCATE: return op_truncate(c);
	case OP_FALLOCATE: return op_fallocate(c);
	case OP_COPY: return op_copy(c);
	case OP_RENAME: return op_rename(c);
	case OP_UNLINK: return op_unlink(c);
	case OP_PROCREOPEN: return op_procreopen(c);
	case OP_HANDLE: return op_handle(c);
	case OP_LOCK: return op_lock(c);
	case OP_XATTR: return op_xattr(c);
	case OP_STAT: return op_stat(c);
	case OP_KILLOPEN: return op_killopen(c);
	case N_OPS: break;
	}
	errno = EINVAL;
	return -1;
}

static enum op choose(struct child *c)
{
	long r = rnd_below(&c->seed, c->total_weight);

	for (int op = 0; op < N_OPS; op++) {
		if (!c->ops[op])
			continue;
		if (r < op_weight[op])
			return (enum op)op;
		r -= op_weight[op];
	}
	return OP_STAT;
}

static void child_main(struct child *c)
{
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */

	/* mount_util's cleanup handlers would unmount: not ours to run. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGABRT, SIG_DFL);
	sigaction(SIGALRM, &sa, NULL);
	if (c->uid) {
		if (setgroups(0, NULL) || setresgid(c->uid, c->uid, c->uid) ||
		    setresuid(c->uid, c->uid, c->uid)) {
			say("# child %d: cannot become uid %d: %s", c->id,
			    (int)c->uid, strerror(errno));
			_exit(2);
		}
	}
	/* After setresuid (which clears it): die with the test. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	umask(0);
	c->mnt_fd = open(c->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	c->buf = malloc(4 * MAX_FILE);
	c->buf2 = malloc(4 * MAX_FILE);
	if (c->mnt_fd < 0 || !c->buf || !c->buf2) {
		say("# child %d: setup: %s", c->id, strerror(errno));
		_exit(2);
	}
	for (int i = 0; i < HELD; i++)
		c->h[i].fd = -1;
	while (!atomic_load(&sh->stop) && now_ms() < atomic_load(&sh->deadline_ms)) {
		enum op op = choose(c);
		int rc, err;

		/* Until the op says more (its fd may be a fresh open). */
		set_what(c, "%s: opening an fd", op_name[op]);
		atomic_store(&c->st->op_start_ms, now_ms());
		atomic_store(&c->st->op, (int)op);
		errno = 0;
		rc = run_op(c, op);
		err = errno;
		atomic_store(&c->st->op, -1);
		outcome(c, op, rc, err);
		atomic_fetch_add(&c->st->ops_done, 1);
		sleep_us(rnd_below(&c->seed, 1000));
	}
	for (int i = 0; i < HELD; i++) {
		/* Last look at every snapshot still open (watched too). */
		if (!atomic_load(&sh->stop) && snapshot_fd(&c->h[i]) &&
		    c->h[i].hashed) {
			set_what(c, "final reread of the snapshot of f%d",
				 c->h[i].name);
			atomic_store(&c->st->op_start_ms, now_ms());
			atomic_store(&c->st->op, OP_REREAD);
			check_snapshot(c, &c->h[i]);
			atomic_store(&c->st->op, -1);
		}
		set_what(c, "close fd %d", c->h[i].fd);
		atomic_store(&c->st->op_start_ms, now_ms());
		atomic_store(&c->st->op, OP_OPEN);
		drop(&c->h[i]);
		atomic_store(&c->st->op, -1);
	}
	close(c->mnt_fd);
	atomic_store(&c->st->done, true);
	_exit(0);
}

/* ------------------------------------------------------------------ */
/* The parent                                                         */
/* ------------------------------------------------------------------ */

struct config {
	double seconds;
	uint64_t seed;
	int children;
	bool fail_estale;
	bool ops[N_OPS];
	char mount_opts[256];
};

static int parse_ops(const char *list, bool ops[N_OPS])
{
	char buf[512], *save = NULL, *tok;

	memset(ops, 0, sizeof(bool) * N_OPS);
	if (strcmp(list, "all") == 0) {
		for (int i = 0; i < N_OPS; i++)
			ops[i] = true;
		return 0;
	}
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		int i;

		for (i = 0; i < N_OPS; i++)
			if (strcmp(tok, op_name[i]) == 0)
				break;
		if (i == N_OPS) {
			fprintf(stderr, "SFS_FUZZ_OPS: unknown op kind '%s' (kinds:", tok);
			for (int j = 0; j < N_OPS; j++)
				fprintf(stderr, " %s", op_name[j]);
			fprintf(stderr, ")\n");
			return -1;
		}
		ops[i] = true;
	}
	return 0;
}

static int get_config(struct config *cf)
{
	const char *s;
	int any = 0;

	memset(cf, 0, sizeof(*cf));
	s = getenv("SFS_FUZZ_SECONDS");
	cf->seconds = s && *s && atof(s) > 0 ? atof(s) : DEFAULT_SECONDS;
	s = getenv("SFS_FUZZ_SEED");
	cf->seed = s && *s ? strtoull(s, NULL, 0) : 1;
	s = getenv("SFS_FUZZ_CHILDREN");
	cf->children = s && *s ? atoi(s) : 6;
	if (cf->children < 1)
		cf->children = 1;
	if (cf->children > MAX_CHILDREN)
		cf->children = MAX_CHILDREN;
	s = getenv("SFS_FUZZ_ESTALE");
	cf->fail_estale = s && strcmp(s, "fail") == 0;
	s = getenv("SFS_FUZZ_OPS");
	if (parse_ops(s && *s ? s : DEFAULT_OPS, cf->ops))
		return -1;
	for (int i = 0; i < N_OPS; i++)
		any += cf->ops[i];
	if (!any)
		return -1;
	s = getenv("SFS_FUZZ_MOUNT_OPTS");
	snprintf(cf->mount_opts, sizeof(cf->mount_opts), "allow_other%s%s",
		 s && *s ? "," : "", s && *s ? s : "");
	return 0;
}

struct fixture {
	struct test_mount m;
	struct config cf;
	char dir[PATH_MAX];
	unsigned minor;		/* of the mount's st_dev: its connection */
	pid_t kids[MAX_CHILDREN];
};

static int teardown(void **state);

static int setup_fixture(struct fixture *f)
{
	struct stat st;

	if (get_config(&f->cf))
		return -1;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		sh = NULL;
		return -1;
	}
	if (test_mount_prepare(&f->m, "fuzz"))
		return -1;
	if (test_mount_start(&f->m, f->cf.mount_opts))
		return -1;
	if (stat(f->m.mnt, &st))
		return -1;
	f->minor = minor(st.st_dev);
	if (join_path(f->dir, f->m.mnt, "w") || mkdir(f->dir, 0777) ||
	    chmod(f->dir, 0777))
		return -1;
	for (int i = 0; i < N_NAMES; i++) {
		unsigned char b[16 * KiB];
		char p[PATH_MAX], name[16];
		int fd;

		snprintf(name, sizeof(name), "f%d", i);
		if (join_path(p, f->dir, name))
			return -1;
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		fill_pattern(b, 0, (long)sizeof(b), false);
		if (fd < 0 || pwrite_all(fd, b, sizeof(b), 0) || fchmod(fd, 0666)) {
			perror(p);
			return -1;
		}
		close(fd);
	}
	return 0;
}

/* cmocka runs no teardown after a failed setup: clean up here then. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f)
		return -1;
	if (setup_fixture(f)) {
		teardown(state);
		return -1;
	}
	return 0;
}

/* The children still running, SIGKILLed and reaped (ours only, by PID). */
static void kill_children(struct fixture *f)
{
	for (int i = 0; i < f->cf.children; i++)
		if (f->kids[i] > 0)
			kill(f->kids[i], SIGKILL);
	for (int i = 0; i < f->cf.children; i++) {
		if (f->kids[i] > 0 && !wait_pid_ms(f->kids[i], NULL, 10000))
			printf("# child pid %d did not die\n", (int)f->kids[i]);
		f->kids[i] = 0;
	}
}

static void print_children(struct fixture *f)
{
	long t = now_ms();

	for (int i = 0; i < f->cf.children; i++) {
		struct child_state *cs = &sh->child[i];
		int op = atomic_load(&cs->op);

		if (op < 0)
			printf("#   child %d pid %d: %s, %ld ops\n", i,
			       atomic_load(&cs->pid), atomic_load(&cs->done) ?
			       "done" : "between ops", atomic_load(&cs->ops_done));
		else
			printf("#   child %d pid %d: %s for %ld ms: %s\n", i,
			       atomic_load(&cs->pid), op_name[op],
			       t - atomic_load(&cs->op_start_ms), cs->what);
	}
}

/* The daemon's threads' kernel stacks (where it hangs), if readable. */
static void print_daemon_stacks(pid_t pid)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "for t in /proc/%d/task/*; do echo \"# task ${t##*/}: "
		 "$(cat $t/comm) $(cat $t/wchan)\"; sed 's/^/#     /' $t/stack; "
		 "done 2>/dev/null", (int)pid);
	fflush(stdout);
	if (system(cmd) < 0)
		printf("# cannot list the daemon's threads\n");
}

static void print_counts(void)
{
	printf("# per op kind: ok, then errno counts\n");
	for (int op = 0; op < N_OPS; op++) {
		char line[512];
		int n = 0;
		long total = 0;

		for (int e = 0; e < N_ERR; e++)
			total += atomic_load(&sh->count[op][e]);
		if (!total)
			continue;
		n += snprintf(line + n, sizeof(line) - (size_t)n, "#   %-10s %7ld ok",
			      op_name[op], atomic_load(&sh->count[op][0]));
		for (int e = 1; e < N_ERR && n < (int)sizeof(line) - 40; e++) {
			long v = atomic_load(&sh->count[op][e]);

			if (v)
				n += snprintf(line + n, sizeof(line) - (size_t)n, ", %s %ld",
					      err_list[e] < 0 ? "other" :
					      strerrorname_np(err_list[e]), v);
		}
		printf("%s\n", line);
	}
	printf("# checks: %ld snapshot re-reads, %ld spliced ranges, %ld "
	       "digests by xattr, %ld locks held\n",
	       atomic_load(&sh->snap_checks), atomic_load(&sh->splice_checks),
	       atomic_load(&sh->xattr_checks), atomic_load(&sh->lock_checks));
	printf("# failures: %ld data, %ld lock, %ld unexpected errors, %ld "
	       "ESTALE, %ld disconnected\n", atomic_load(&sh->data_bad),
	       atomic_load(&sh->lock_bad), atomic_load(&sh->unexpected),
	       atomic_load(&sh->estale), atomic_load(&sh->disconnected));
	fflush(stdout);
}

static const char *status_str(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "status %#x", status);
	return buf;
}

enum verdict { RUN_OK, RUN_HANG, RUN_DAEMON_EXIT, RUN_UNMOUNTED };

/*
 * Watch the children until they are done: a hang, the daemon's exit or
 * the mount's disappearance ends the run early.
 */
static enum verdict watch(struct fixture *f, int *daemon_status, char *hang,
			  size_t hang_len)
{
	long last_mount_check = 0;

	for (;;) {
		long t = now_ms();
		int done = 0;

		for (int i = 0; i < f->cf.children; i++) {
			struct child_state *cs = &sh->child[i];
			int op = atomic_load(&cs->op);
			int status;

			if (f->kids[i] > 0 &&
			    waitpid(f->kids[i], &status, WNOHANG) == f->kids[i]) {
				f->kids[i] = 0;
				if (!WIFEXITED(status) || WEXITSTATUS(status)) {
					char b[64];

					printf("# child %d ended: %s\n", i,
					       status_str(status, b, sizeof(b)));
					atomic_fetch_add(&sh->unexpected, 1);
				}
			}
			if (f->kids[i] == 0) {
				done++;
				continue;
			}
			if (op >= 0 && t - atomic_load(&cs->op_start_ms) >
			    HANG_SECONDS * 1000L) {
				snprintf(hang, hang_len, "child %d: %s for %ld s: %s",
					 i, op_name[op],
					 (t - atomic_load(&cs->op_start_ms)) / 1000,
					 cs->what);
				return RUN_HANG;
			}
		}
		if (f->m.pid > 0 &&
		    waitpid(f->m.pid, daemon_status, WNOHANG) == f->m.pid) {
			f->m.pid = 0;
			return RUN_DAEMON_EXIT;
		}
		if (t - last_mount_check >= 1000) {
			last_mount_check = t;
			if (!test_is_stablefs_mount(f->m.mnt))
				return RUN_UNMOUNTED;
		}
		if (done == f->cf.children)
			return RUN_OK;
		if (t > atomic_load(&sh->deadline_ms) + 10000)
			atomic_store(&sh->stop, true);
		sleep_ms(100);
	}
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	kill_children(f);
	if (f->m.base[0] && test_mount_finish(&f->m))
		rc = -1;
	if (sh)
		munmap(sh, sizeof(*sh));
	sh = NULL;
	free(f);
	*state = NULL;
	return rc;
}

static void test_fuzz(void **state)
{
	struct fixture *f = *state;
	struct config *cf = &f->cf;
	char hang[256] = "", b[64];
	int daemon_status = 0;
	enum verdict v;

	printf("# seed %llu (SFS_FUZZ_SEED), %.0f s, %d processes, mount -o %s\n"
	       "# ops:", (unsigned long long)cf->seed, cf->seconds, cf->children,
	       cf->mount_opts);
	for (int i = 0; i < N_OPS; i++)
		if (cf->ops[i])
			printf(" %s", op_name[i]);
	printf("\n");
	fflush(stdout);

	atomic_store(&sh->deadline_ms, now_ms() + (long)(cf->seconds * 1000));
	for (int i = 0; i < cf->children; i++) {
		struct child c = {
			.id = i,
			.uid = i % 3 == 2 ? NOBODY : 0,
			.seed = (cf->seed + 1) * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 0xBF58476D1CE4E5B9ULL,
			.dir = f->dir,
			.mnt = f->m.mnt,
			.st = &sh->child[i],
		};
		pid_t pid;

		rnd(&c.seed);
		for (int op = 0; op < N_OPS; op++) {
			c.ops[op] = cf->ops[op];
			c.total_weight += cf->ops[op] ? op_weight[op] : 0;
		}
		atomic_store(&c.st->op, -1);
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			atomic_store(&c.st->pid, (int)getpid());
			child_main(&c);
		}
		if (pid < 0) {
			atomic_store(&sh->stop, true);
			break;
		}
		f->kids[i] = pid;
		atomic_store(&c.st->pid, (int)pid);
	}

	v = watch(f, &daemon_status, hang, sizeof(hang));
	atomic_store(&sh->stop, true);
	/* A child saw the connection go: give the daemon's exit a moment. */
	if (v == RUN_OK && atomic_load(&sh->disconnected) && f->m.pid > 0 &&
	    wait_pid_ms(f->m.pid, &daemon_status, 5000)) {
		f->m.pid = 0;
		v = RUN_DAEMON_EXIT;
	}
	if (v == RUN_HANG) {
		printf("# HANG: %s\n# what every child was doing:\n", hang);
		print_children(f);
		if (f->m.pid > 0)
			print_daemon_stacks(f->m.pid);
		printf("# aborting FUSE connection %u\n", f->minor);
		fflush(stdout);
		if (test_abort_connection(f->minor) && f->m.pid > 0) {
			/* Its death aborts the connection too. */
			printf("# killing daemon %d instead\n", (int)f->m.pid);
			kill(f->m.pid, SIGKILL);
		}
		if (f->m.pid > 0) {
			if (!wait_pid_ms(f->m.pid, &daemon_status, 10000)) {
				printf("# daemon %d still there 10 s after the "
				       "abort: killing it\n", (int)f->m.pid);
				kill(f->m.pid, SIGKILL);
				waitpid(f->m.pid, &daemon_status, 0);
			}
			printf("# daemon after the abort: %s\n",
			       status_str(daemon_status, b, sizeof(b)));
			f->m.pid = 0;
		}
	} else if (v != RUN_OK) {
		printf("# what every child was doing:\n");
		print_children(f);
	}
	if (v != RUN_OK) {
		kill_children(f);
		test_fusermount("-uz", f->m.mnt);
		f->m.mounted = false;
	}
	print_counts();
	switch (v) {
	case RUN_HANG:
		fail_msg("hang: %s (seed %llu)", hang, (unsigned long long)cf->seed);
		break;
	case RUN_DAEMON_EXIT:
		fail_msg("the daemon exited during the run: %s (seed %llu)",
			 status_str(daemon_status, b, sizeof(b)),
			 (unsigned long long)cf->seed);
		break;
	case RUN_UNMOUNTED:
		fail_msg("the mount disappeared during the run (seed %llu)",
			 (unsigned long long)cf->seed);
		break;
	case RUN_OK:
		break;
	}
	print_mount_stats(f->m.mnt);
	if (atomic_load(&sh->disconnected))
		fail_msg("ENOTCONN/ECONNABORTED reached a process (seed %llu)",
			 (unsigned long long)cf->seed);
	if (atomic_load(&sh->data_bad) || atomic_load(&sh->lock_bad) ||
	    atomic_load(&sh->unexpected))
		fail_msg("%ld data, %ld lock, %ld unexpected-error failures "
			 "(seed %llu)", atomic_load(&sh->data_bad),
			 atomic_load(&sh->lock_bad), atomic_load(&sh->unexpected),
			 (unsigned long long)cf->seed);
	if (cf->fail_estale && atomic_load(&sh->estale))
		fail_msg("%ld ESTALE reached processes (seed %llu)",
			 atomic_load(&sh->estale), (unsigned long long)cf->seed);
	for (int i = 0; i < cf->children; i++)
		assert_true(atomic_load(&sh->child[i].ops_done) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fuzz, setup, teardown),
	};

	test_require_fuse();
	if (geteuid() != 0)
		test_skip_all("needs root (children switch to user nobody)");
	return cmocka_run_group_tests_name("fuzz_concurrency", tests, NULL, NULL);
}
