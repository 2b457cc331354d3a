/*
 * Out-of-band writers under -o oob=preserve (G6 in doc/guarantees.md),
 * seen the way users meet them: tools copying MNT while SRC is rewritten
 * directly, writers the kernel never announces, and a daemon that dies
 * while writers wait for it. SRC is a loop filesystem (tmpfs refuses
 * pre-content marks, K9 in doc/kernel-facts.md).
 *
 *   tools: NFILES files of 1-4 MiB in SRC; a writer process rewrites them
 *      directly in a loop (in place in CHUNK pwrites, open(O_TRUNC) and
 *      write, ftruncate then pwrite) and journals every state each file
 *      passes through, one per syscall. Meanwhile tar -cf, then rsync -a,
 *      copy MNT, twice each (the first time the mount never opened the
 *      files before). Every copied file must be exactly one journaled
 *      state, and one the file still had when the tool started: a
 *      snapshot is the file at its open, and an open falls between two
 *      syscalls of the writer, not always between two versions. Each block
 *      of a version names its file, version and offset, so a torn copy
 *      (bytes of a third version, old bytes before new ones, zeros padded
 *      by tar) is seen. No read error, no "shrank"; tar may only say "file
 *      changed as we read it" (it compares ctimes, which stay live, G2).
 *      Control: the same copies of SRC itself must tear.
 *   first open: a file the mount only looked up, then changed in SRC,
 *      then opened: its snapshot's size is that of the open, not of the
 *      lookup (what the tools' first run above depends on).
 *   pre-mount writer: a write through an fd opened before the mount (no
 *      pre-content event, K9) makes the snapshot's reads of the rest fail
 *      whole with EIO once the daemon has its FAN_MODIFY, and counts
 *      oob_unpreserved; a read racing that event may be short (G3); a
 *      store through a mapping of such an fd raises no event at all and
 *      is found by the read-time check, counted the same. On XFS, where
 *      snapshots are clones, the snapshot just reads its open-time bytes.
 *   write under way: a pwrite that passed its pre-content hook before the
 *      file had a snapshot is still copying when one is opened: the bytes
 *      it lands after the open must not reach the snapshot (or EIO).
 *   kill -9: a direct writer held by a pre-content event of a stopped
 *      daemon goes on once the daemon is killed (the kernel allows what
 *      a closed group held), its write lands, and a new mount of the same
 *      SRC preserves again.
 *
 * SFS_OOB_TOOLS_TESTS=<glob> runs a subset (cmocka's test filter), e.g.
 * 'test_tar*'. SFS_OOB_TOOLS_OPTS overrides the tools' mount options (default
 * "oob=preserve"): with oob=ignore the copies tear, with oob=detect tar
 * and rsync fail on EIO, which shows the assertions can fail.
 * Needs root, loop devices, mkfs.ext4; rsync and mkfs.xfs are optional.
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
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mount_util.h"
#include "test_util.h"

#define KiB 1024
#define MiB (1024 * 1024)

#include "sfs/fanotify_compat.h"

struct fixture {
	struct test_mount m;
	int early_fd;		/* an fd of SRC opened before the mount */
	int snap_fd;		/* a snapshot's fd through MNT */
	pid_t child;		/* a writer we forked, or 0 */
	bool daemon_stopped;	/* SIGSTOPped: SIGTERM would not reach it */
};

/* ---- fixtures: a fresh loop filesystem as SRC, mounted by each test -- */

static int setup_loop(void **state, const char *mkfs, int size_mib)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->early_fd = -1;
	f->snap_fd = -1;
	*state = f;
	return test_loop_setup(&f->m, "oobtools", mkfs, size_mib, false, NULL);
}

static int setup_ext4(void **state)
{
	return setup_loop(state, "mkfs.ext4 -q -F", 256);
}

/* XFS is optional: without mkfs.xfs the fixture stays empty, the test skips. */
static int setup_xfs(void **state)
{
	if (system("command -v mkfs.xfs >/dev/null 2>&1")) {
		*state = NULL;
		return 0;
	}
	return setup_loop(state, "mkfs.xfs -q -m reflink=1", 320);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	/* A stopped daemon holds every writer of SRC: kill it before
	 * anything (also our own unmount) could wait for it. */
	if (f->daemon_stopped && f->m.pid > 0)
		kill(f->m.pid, SIGKILL);
	if (f->child > 0) {
		kill(f->child, SIGKILL);
		waitpid(f->child, NULL, 0);
	}
	close_fd(&f->early_fd);
	close_fd(&f->snap_fd);	/* else the unmount is lazy, the daemon stays */
	test_mount_destroy(&f->m);
	free(f);
	return 0;
}

/*
 * Can this kernel hold accesses to SRC's filesystem (6.14+)? Asked of the
 * kernel, not of the daemon: a daemon that silently falls back to
 * detecting must fail these tests, not skip them.
 */
static bool kernel_has_pre_content(const char *src)
{
	int fan = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC, O_RDONLY);
	bool ok;

	if (fan < 0)
		return false;
	ok = fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
			   FAN_PRE_ACCESS, AT_FDCWD, src) == 0;
	close(fan);
	return ok;
}

static void mount_or_fail(struct fixture *f, const char *opts)
{
	if (test_mount_start(&f->m, opts))
		fail_msg("cannot mount stablefs -o %s", opts ? opts : "(none)");
}

/* Wait (up to 5 s) until the mount's counter reaches at least want. */
static long long counter_reaches(const char *mnt, const char *name, long long want)
{
	long long v = -1;

	for (long end = now_ms() + 5000; now_ms() < end; sleep_ms(10)) {
		v = mount_counter(mnt, name);
		if (v >= want)
			break;
	}
	return v;
}

/*
 * A failed snapshot read drops the cached pages of the file's nodes (live
 * and snapshot, one count each) on the evictor thread (fs/evictor.c),
 * after the reply: wait until evictions beyond `before` are done and no
 * more follow for 100 ms, or the next read may still meet cached pages.
 */
static void wait_eviction_after(const char *mnt, long long before)
{
	long long seen = counter_reaches(mnt, "evictions", before + 1), now;

	assert_true(seen > before);
	for (;; seen = now) {
		sleep_ms(100);
		now = mount_counter(mnt, "evictions");
		if (now == seen)
			break;
	}
}

/* ---- versions whose every block says what it is ---------------------- */

#define NFILES 20
#define BLK 64			/* bytes per self-describing block */
#define CHUNK (256 * KiB)	/* the writer's pwrite size */
#define MIN_LEN (1 * MiB)
#define MAX_LEN (4 * MiB)
#define MAX_STATES (1u << 18)

/* splitmix64's finalizer: the filler words of a block. */
static uint64_t mix64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/*
 * Block idx of version ver of file: a head word naming all three, then
 * words derived from it. Unique per (file, version, block): any byte of
 * another version, another file or another offset breaks the block.
 */
static void gen_block(uint64_t *w, unsigned file, uint32_t ver, uint64_t idx)
{
	w[0] = (uint64_t)(file + 1) << 56 | (uint64_t)ver << 32 | idx;
	for (int k = 1; k < BLK / 8; k++)
		w[k] = mix64(w[0] * (BLK / 8) + (uint64_t)k);
}

/* buf = bytes [off, off + len) of the version (off, len: whole blocks). */
static void gen_bytes(unsigned char *buf, unsigned file, uint32_t ver,
		      uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i += BLK)
		gen_block((uint64_t *)(buf + i), file, ver, (off + i) / BLK);
}

/* The version a block at idx belongs to, or 0 if it is of none. */
static uint32_t block_version(const unsigned char *p, unsigned file, uint64_t idx)
{
	uint64_t w[BLK / 8], head;
	uint32_t ver;

	memcpy(&head, p, sizeof(head));
	ver = (uint32_t)(head >> 32) & 0xffffff;
	if (head >> 56 != file + 1 || (head & 0xffffffff) != idx || ver == 0)
		return 0;
	gen_block(w, file, ver, idx);
	return memcmp(w, p, BLK) ? 0 : ver;
}

/*
 * The journal, shared between the writer process and the test: every
 * state a file has had, as "bytes [0, b) of version new, [b, size) of
 * version old". Each is recorded after the syscall that made it returned.
 */
struct file_state {
	uint32_t file, new, old;
	uint32_t b, size;
	bool whole;		/* one complete version */
};

struct journal {
	int stop;		/* the test tells the writer to end */
	int err;		/* the writer's errno, if it failed */
	uint32_t nstates;	/* published with release: states[] below it */
	uint32_t versions;	/* the last version number given */
	uint32_t rewrites;	/* by the writer, completed */
	uint32_t cur[NFILES], len[NFILES];
	uint64_t syscalls;
	struct file_state states[MAX_STATES];
};

static void record(struct journal *j, unsigned file, uint32_t nv, uint32_t b,
		   uint32_t size, uint32_t new_len)
{
	struct file_state *s = &j->states[j->nstates];

	s->file = file;
	s->new = nv;
	s->old = j->cur[file];
	s->b = b;
	s->size = size;
	s->whole = (b == size && size == new_len) ||
		   (b == 0 && size == j->len[file]);
	__atomic_store_n(&j->nstates, j->nstates + 1, __ATOMIC_RELEASE);
	j->syscalls++;
}

static void file_path(char *out, const char *dir, unsigned file)
{
	char name[16];

	snprintf(name, sizeof(name), "f%02u", file);
	path_in(out, dir, name);
}

/* Write chunks of version nv from 0 to len; each chunk one state. */
static int write_chunks(struct journal *j, int fd, unsigned file, uint32_t nv,
			uint32_t len, uint32_t keep, bool append, unsigned char *buf)
{
	for (uint32_t off = 0; off < len; off += CHUNK) {
		uint32_t n = len - off < CHUNK ? len - off : CHUNK;

		gen_bytes(buf, file, nv, off, n);
		if (append ? write_all(fd, buf, n) : pwrite_all(fd, buf, n, off))
			return -1;
		record(j, file, nv, off + n, off + n > keep ? off + n : keep, len);
	}
	return 0;
}

static uint32_t random_len(uint64_t *seed)
{
	return (uint32_t)(MIN_LEN + rnd_below(seed, (MAX_LEN - MIN_LEN) / BLK + 1) * BLK);
}

/*
 * One new version of file, written one of three ways: in place (same
 * length), open(O_TRUNC) then write, ftruncate to a page-aligned length
 * both versions have, then pwrite. The file's states in between are
 * journaled too. Returns 0 or -1 (errno).
 */
static int rewrite(struct journal *j, const char *dir, unsigned file,
		   unsigned how, uint64_t *seed, unsigned char *buf)
{
	uint32_t nv = ++j->versions, len = j->len[file], t;
	uint32_t keep = len;	/* the size the file keeps meanwhile */
	char path[PATH_MAX];
	int fd, rc;

	file_path(path, dir, file);
	if (how != 0) {
		len = random_len(seed);
		keep = 0;
	}
	fd = open(path, O_WRONLY | (how == 1 ? O_TRUNC : 0));
	if (fd < 0)
		return -1;
	if (how == 1) {
		record(j, file, nv, 0, 0, len);
	} else if (how == 2) {
		t = len < j->len[file] ? len : j->len[file];
		keep = (uint32_t)rnd_below(seed, t / 4096 + 1) * 4096;
		if (ftruncate(fd, keep)) {
			close(fd);
			return -1;
		}
		record(j, file, nv, 0, keep, len);
	}
	rc = write_chunks(j, fd, file, nv, len, keep, how == 1, buf);
	if (close(fd) || rc)
		return -1;
	j->cur[file] = nv;
	j->len[file] = len;
	__atomic_add_fetch(&j->rewrites, 1, __ATOMIC_RELEASE);
	return 0;
}

/* The writer process: rewrites random files until told to stop. */
static void writer_main(struct journal *j, const char *dir, uint64_t seed)
{
	unsigned char *buf = malloc(CHUNK);

	for (unsigned i = 0; buf && !__atomic_load_n(&j->stop, __ATOMIC_ACQUIRE); i++) {
		/* Room for the longest rewrite's states. */
		if (j->nstates + MAX_LEN / CHUNK + 2 > MAX_STATES)
			break;
		if (rewrite(j, dir, (unsigned)rnd_below(&seed, NFILES), i % 3,
			    &seed, buf)) {
			j->err = errno;
			_exit(1);
		}
	}
	_exit(buf ? 0 : 1);
}

/* Version 1..NFILES: the files as they are before any tool runs. */
static void create_files(struct journal *j, const char *dir, uint64_t *seed)
{
	unsigned char *buf = malloc(CHUNK);

	assert_non_null(buf);
	for (unsigned file = 0; file < NFILES; file++) {
		char path[PATH_MAX];
		uint32_t len = random_len(seed), nv = ++j->versions;
		int fd;

		file_path(path, dir, file);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write_chunks(j, fd, file, nv, len, 0, true, buf), 0);
		assert_int_equal(close(fd), 0);
		j->cur[file] = nv;
		j->len[file] = len;
	}
	free(buf);
}

/* Version numbers go on across journals: no run's bytes are another's. */
static uint32_t last_version;

static struct journal *journal_new(void)
{
	struct journal *j = mmap(NULL, sizeof(*j), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(j != MAP_FAILED);
	j->versions = last_version;
	return j;
}

/* ---- checking a copy ------------------------------------------------- */

/* A copy as runs of blocks of one version each (at most two matter). */
struct runs {
	bool torn;		/* a block of no version, or a third run */
	unsigned n;
	uint32_t ver[2];
	uint64_t end[2];	/* byte offsets */
	uint64_t bad;		/* where it tore */
};

static void split_runs(const unsigned char *buf, uint64_t len, unsigned file,
		       struct runs *r)
{
	memset(r, 0, sizeof(*r));
	if (len % BLK) {
		r->torn = true;
		r->bad = len;
		return;
	}
	for (uint64_t off = 0; off < len; off += BLK) {
		uint32_t v = block_version(buf + off, file, off / BLK);

		if (v && r->n && r->ver[r->n - 1] == v) {
			r->end[r->n - 1] = off + BLK;
			continue;
		}
		if (!v || r->n == 2) {
			r->torn = true;
			r->bad = off;
			return;
		}
		r->ver[r->n] = v;
		r->end[r->n++] = off + BLK;
	}
}

static bool runs_are_state(const struct runs *r, const struct file_state *s,
			   uint64_t len)
{
	struct runs want = { .n = 0 };

	if (s->size != len)
		return false;
	if (s->b > 0) {
		want.ver[want.n] = s->new;
		want.end[want.n++] = s->b;
	}
	if (s->size > s->b) {
		want.ver[want.n] = s->old;
		want.end[want.n++] = s->size;
	}
	if (want.n != r->n)
		return false;
	for (unsigned i = 0; i < r->n; i++)
		if (want.ver[i] != r->ver[i] || want.end[i] != r->end[i])
			return false;
	return true;
}

struct tally {
	unsigned whole;		/* one complete version */
	unsigned between;	/* a state between two syscalls of a rewrite */
	unsigned torn;		/* no state the file ever had */
	unsigned stale;		/* a state gone before the tool started */
	unsigned missing;
};

/* Was state i of its file replaced before the tool started (at start)? */
static bool gone_before(const struct journal *j, uint32_t i, uint32_t start)
{
	for (uint32_t k = i + 1; k < start; k++)
		if (j->states[k].file == j->states[i].file)
			return true;
	return false;
}

/* What a torn copy holds where it tore, and what the file was then. */
static void say_torn(unsigned file, const unsigned char *buf, uint64_t len,
		     const struct runs *r, const struct journal *j)
{
	uint64_t head = 0, zeros = 0;

	if (r->bad + BLK <= len) {
		memcpy(&head, buf + r->bad, sizeof(head));
		while (r->bad + zeros < len && !buf[r->bad + zeros])
			zeros++;
	}
	printf("# f%02u torn: %llu bytes: v%u to %llu, v%u to %llu", file,
	       (unsigned long long)len, r->ver[0], (unsigned long long)r->end[0],
	       r->ver[1], (unsigned long long)r->end[1]);
	if (r->torn)
		printf("; then at %llu a block of file %llu v%llu block %llu and "
		       "%llu zero bytes", (unsigned long long)r->bad,
		       (unsigned long long)(head >> 56) - 1,
		       (unsigned long long)(head >> 32 & 0xffffff),
		       (unsigned long long)(head & 0xffffffff),
		       (unsigned long long)zeros);
	printf("\n");
	/* The sizes those versions had, whole. */
	for (uint32_t i = 0; i < j->nstates; i++) {
		const struct file_state *s = &j->states[i];

		if (s->file == file && s->whole && s->b == s->size && s->b &&
		    (s->new == r->ver[0] || s->new == r->ver[1]))
			printf("#   v%u: %u bytes\n", s->new, s->size);
	}
}

static void check_copy(const char *dir, unsigned file, const struct journal *j,
		       uint32_t start, struct tally *t, bool verbose)
{
	static unsigned char buf[MAX_LEN + BLK];
	char path[PATH_MAX];
	struct runs r;
	ssize_t len;
	int fd;

	file_path(path, dir, file);
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("# %s: %s\n", path, strerror(errno));
		t->missing++;
		return;
	}
	len = 0;
	for (ssize_t n; (n = read(fd, buf + len, sizeof(buf) - (size_t)len)) > 0;)
		len += n;
	close(fd);
	assert_true(len <= MAX_LEN);
	split_runs(buf, (uint64_t)len, file, &r);
	for (uint32_t i = 0; !r.torn && i < j->nstates; i++) {
		const struct file_state *s = &j->states[i];

		if (s->file != file || !runs_are_state(&r, s, (uint64_t)len))
			continue;
		if (gone_before(j, i, start)) {
			t->stale++;
			printf("# f%02u: state %u (v%u|v%u at %u, size %u) was "
			       "replaced before the tool started\n", file, i,
			       s->new, s->old, s->b, s->size);
		} else if (s->whole) {
			t->whole++;
		} else {
			t->between++;
		}
		return;
	}
	t->torn++;
	if (verbose)
		say_torn(file, buf, (uint64_t)len, &r, j);
}

/* ---- running a tool while the writer runs ---------------------------- */

struct tool_run {
	int status;		/* the tool's exit status */
	char err[8192];		/* its stderr */
	struct tally t;
	uint32_t versions;	/* the writer's, during the run */
	uint64_t syscalls;
	double seconds;
};

static void read_text(const char *path, char *out, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? 0 : read(fd, out, cap - 1);

	out[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

static pid_t start_writer(struct journal *j, const char *dir, uint64_t seed)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		/* It loops until told: not past the test's own end. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		writer_main(j, dir, seed);
	}
	/* Going: a rewrite done. */
	for (long end = now_ms() + 10000; now_ms() < end; sleep_ms(1))
		if (__atomic_load_n(&j->rewrites, __ATOMIC_ACQUIRE) > 0)
			break;
	return pid;
}

static void stop_writer(struct fixture *f, struct journal *j)
{
	int status;

	__atomic_store_n(&j->stop, 1, __ATOMIC_RELEASE);
	assert_true(wait_pid_ms(f->child, &status, 60000));
	f->child = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("the writer failed: %s", strerror(j->err));
}

enum tool { TAR, RSYNC };

/*
 * Copy from (a directory) with the tool into a fresh directory of the
 * test's base while the writer rewrites SRC's files, then check every
 * copied file against the journal.
 */
static void run_tool(struct fixture *f, enum tool tool, const char *from,
		     const char *tag, uint64_t seed, struct tool_run *run)
{
	char out[PATH_MAX], archive[PATH_MAX], errfile[PATH_MAX], data[PATH_MAX];
	char name[64];
	struct journal *j = journal_new();
	uint32_t start, v0;
	uint64_t c0;
	double t0;

	memset(run, 0, sizeof(*run));
	path_in(data, f->m.src, "data");
	path_in(out, f->m.base, tag);
	snprintf(name, sizeof(name), "%s.tar", tag);
	path_in(archive, f->m.base, name);
	snprintf(name, sizeof(name), "%s.err", tag);
	path_in(errfile, f->m.base, name);
	assert_int_equal(mkdir(out, 0755), 0);
	create_files(j, data, &seed);
	f->child = start_writer(j, data, seed);
	start = __atomic_load_n(&j->nstates, __ATOMIC_ACQUIRE);
	v0 = __atomic_load_n(&j->versions, __ATOMIC_ACQUIRE);
	c0 = __atomic_load_n(&j->syscalls, __ATOMIC_ACQUIRE);
	t0 = now_s();
	if (tool == TAR)
		run->status = test_run("tar -cf '%s' -C '%s' . 2>'%s'", archive,
				       from, errfile);
	else
		run->status = test_run("rsync -a '%s/' '%s/' 2>'%s'", from, out,
				       errfile);
	run->seconds = now_s() - t0;
	run->versions = __atomic_load_n(&j->versions, __ATOMIC_ACQUIRE) - v0;
	run->syscalls = __atomic_load_n(&j->syscalls, __ATOMIC_ACQUIRE) - c0;
	stop_writer(f, j);
	last_version = j->versions;
	run->status = WIFEXITED(run->status) ? WEXITSTATUS(run->status) : 128;
	read_text(errfile, run->err, sizeof(run->err));
	if (tool == TAR)
		assert_int_equal(test_run("tar -xf '%s' -C '%s' 2>/dev/null",
					  archive, out) >> 8 & 0xff, 0);
	for (unsigned file = 0; file < NFILES; file++)
		check_copy(out, file, j, start, &run->t, false);
	/* Torn ones again, said once the counts are known. */
	if (run->t.torn)
		for (unsigned file = 0, shown = 0; file < NFILES && shown < 3; file++) {
			struct tally one = { 0 };

			check_copy(out, file, j, start, &one, true);
			shown += one.torn;
		}
	munmap(j, sizeof(*j));
}

static void print_run(const char *what, const struct tool_run *r)
{
	printf("# %s: exit %d in %.2f s; writer %u versions, %llu syscalls "
	       "meanwhile; %d files: %u whole versions, %u between two "
	       "syscalls of a rewrite, %u torn, %u stale, %u missing\n",
	       what, r->status, r->seconds, r->versions,
	       (unsigned long long)r->syscalls, NFILES, r->t.whole,
	       r->t.between, r->t.torn, r->t.stale, r->t.missing);
	if (r->err[0])
		printf("# %s: stderr: %.600s\n", what, r->err);
}

/*
 * tar's one complaint a snapshot cannot avoid: after reading, tar
 * compares the file's ctime (fstat of its fd) with the one at open, and
 * only data and size are the snapshot's (G2: times are live). So each
 * warning must be that one; the bytes are checked by the journal.
 */
static unsigned count_lines(const char *text, const char *needle,
			    unsigned *others)
{
	unsigned n = 0;

	*others = 0;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[1024];

		snprintf(line, sizeof(line), "%.*s", (int)len, p);
		if (strstr(line, needle))
			n++;
		else if (len)
			(*others)++;
		p += len + (nl ? 1 : 0);
	}
	return n;
}

/* Through MNT: every copy whole, stale or torn none, no error. */
static void assert_clean_copy(const struct tool_run *r, enum tool tool)
{
	unsigned changed, others;

	assert_int_equal(r->t.missing, 0);
	assert_int_equal(r->t.torn, 0);
	assert_int_equal(r->t.stale, 0);
	assert_int_equal(r->t.whole + r->t.between, NFILES);
	assert_null(strstr(r->err, "shrank"));
	assert_null(strstr(r->err, "padding"));
	assert_null(strstr(r->err, "error"));	/* I/O error, read error */
	assert_null(strstr(r->err, "Error"));
	/*
	 * tar compares ctime before and after reading: a snapshot node
	 * shows its open-time times once the file has moved on, so tar has
	 * nothing to warn about either (it did, with live ctime).
	 */
	changed = count_lines(r->err, "file changed as we read it", &others);
	printf("# %s: exit %d, %u \"file changed as we read it\", %u other "
	       "stderr lines\n", tool == RSYNC ? "rsync" : "tar", r->status,
	       changed, others);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->err, "");
}

static const char *tools_opts(void)
{
	const char *o = getenv("SFS_OOB_TOOLS_OPTS");

	return o && *o ? o : "oob=preserve";
}

#define CONTROL_TRIES 10

/*
 * The control: the same copy of SRC itself, which must tear (else the
 * journal check proves nothing). Tearing takes the tool and the writer
 * in the same file at once: a few tries.
 */
static void control_tears(struct fixture *f, enum tool tool, const char *name)
{
	char data[PATH_MAX], tag[32], what[64];
	unsigned torn = 0;
	int i;

	path_in(data, f->m.src, "data");
	for (i = 0; i < CONTROL_TRIES && !torn; i++) {
		struct tool_run r;

		snprintf(tag, sizeof(tag), "%s-raw%d", name, i);
		snprintf(what, sizeof(what), "%s over SRC (control %d)", name, i + 1);
		run_tool(f, tool, data, tag, 0x5eed0000u + (unsigned)i, &r);
		print_run(what, &r);
		torn += r.t.torn;
	}
	printf("# %s control: %u torn files in %d runs\n", name, torn, i);
	assert_true(torn > 0);
}

static void tool_over_mnt(void **state, enum tool tool, const char *name)
{
	struct fixture *f = *state;
	char data[PATH_MAX], mnt_data[PATH_MAX], tag[32], what[64];
	struct tool_run runs[2];

	if (!kernel_has_pre_content(f->m.src))
		skip();		/* before 6.14: no pre-content events */
	path_in(data, f->m.src, "data");
	assert_int_equal(mkdir(data, 0755), 0);
	mount_or_fail(f, tools_opts());
	path_in(mnt_data, f->m.mnt, "data");
	/*
	 * Two runs: the tool's opens fall elsewhere in the rewrites, and the
	 * first one meets files the mount never opened before (their names
	 * looked up by the tool's readdir only).
	 */
	for (int i = 0; i < 2; i++) {
		snprintf(tag, sizeof(tag), "%s-mnt%d", name, i);
		snprintf(what, sizeof(what), "%s over MNT -o %s (run %d)", name,
			 tools_opts(), i + 1);
		run_tool(f, tool, mnt_data, tag, 0x1234u + (unsigned)i, &runs[i]);
		print_run(what, &runs[i]);
	}
	printf("# %s: oob_preserved %lld, oob_held %lld, oob_unpreserved %lld, "
	       "eio_reads %lld, bytes_preserved_total %lld\n", name,
	       mount_counter(f->m.mnt, "oob_preserved"),
	       mount_counter(f->m.mnt, "oob_held"),
	       mount_counter(f->m.mnt, "oob_unpreserved"),
	       mount_counter(f->m.mnt, "eio_reads"),
	       mount_counter(f->m.mnt, "bytes_preserved_total"));
	control_tears(f, tool, name);
	for (int i = 0; i < 2; i++)
		assert_clean_copy(&runs[i], tool);
	/* The writer's fds are all announced: nothing was only detected. */
	assert_int_equal(mount_counter(f->m.mnt, "oob_unpreserved"), 0);
	assert_int_equal(mount_counter(f->m.mnt, "eio_reads"), 0);
	assert_true(mount_counter(f->m.mnt, "oob_preserved") > 0);
}

static void test_tar_while_src_rewritten(void **state)
{
	tool_over_mnt(state, TAR, "tar");
}

static void test_rsync_while_src_rewritten(void **state)
{
	if (system("command -v rsync >/dev/null 2>&1"))
		skip();
	tool_over_mnt(state, RSYNC, "rsync");
}

/* ---- a writer whose fd predates the mount ---------------------------- */

#define FLEN (1 * MiB)
#define HEAD (256 * KiB)

static void write_file(const char *path, long len, bool fresh)
{
	unsigned char *buf = malloc((size_t)len);
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);

	assert_non_null(buf);
	assert_true(fd >= 0);
	fill_pattern(buf, 0, len, fresh);
	assert_int_equal(write_all(fd, buf, (size_t)len), 0);
	assert_int_equal(close(fd), 0);
	free(buf);
}

/* fd reads [off, off + len) of the pattern (fresh: of new_byte()s). */
static void assert_reads_pattern(int fd, long off, long len, bool fresh)
{
	unsigned char *got = malloc((size_t)len), *want = malloc((size_t)len);

	assert_non_null(got);
	assert_non_null(want);
	fill_pattern(want, off, len, fresh);
	assert_int_equal(pread_all(fd, got, (size_t)len, off), 0);
	assert_memory_equal(got, want, (size_t)len);
	free(got);
	free(want);
}

/*
 * SRC/f, FLEN of the pattern, with f->early_fd open for writing on it
 * since before the mount; then mounted with opts; f->snap_fd a snapshot
 * of it whose first HEAD bytes were read (the kernel caches some more:
 * readahead).
 */
static void premount_writer_setup(struct fixture *f, const char *opts)
{
	char src[PATH_MAX], mnt[PATH_MAX];

	path_in(src, f->m.src, "f");
	path_in(mnt, f->m.mnt, "f");
	write_file(src, FLEN, false);
	f->early_fd = open(src, O_RDWR);	/* RDWR: mmap wants it */
	assert_true(f->early_fd >= 0);
	mount_or_fail(f, opts);
	f->snap_fd = open(mnt, O_RDONLY);
	assert_true(f->snap_fd >= 0);
	assert_reads_pattern(f->snap_fd, 0, HEAD, false);
}

/* Rewrite all of SRC/f through the fd the kernel does not announce. */
static void write_through_early_fd(struct fixture *f)
{
	unsigned char *buf = malloc(FLEN);

	assert_non_null(buf);
	fill_pattern(buf, 0, FLEN, true);
	assert_int_equal(pwrite_all(f->early_fd, buf, FLEN, 0), 0);
	free(buf);
}

/* A read of [off, off + len) of the snapshot: -1 with EIO, whole. */
static void assert_read_fails_whole(int fd, long off, long len)
{
	unsigned char *buf = malloc((size_t)len);
	ssize_t n;

	assert_non_null(buf);
	errno = 0;
	n = pread(fd, buf, (size_t)len, off);
	if (n >= 0)
		printf("# read of %ld at %ld: %zd bytes, not EIO\n", len, off, n);
	assert_int_equal(n, -1);
	assert_int_equal(errno, EIO);
	free(buf);
}

static void print_oob_counters(const char *mnt)
{
	printf("# oob_unpreserved %lld, oob_changes %lld, eio_reads %lld, "
	       "oob_preserved %lld\n", mount_counter(mnt, "oob_unpreserved"),
	       mount_counter(mnt, "oob_changes"), mount_counter(mnt, "eio_reads"),
	       mount_counter(mnt, "oob_preserved"));
}

/*
 * The daemon hears of the change after it (FAN_MODIFY): from then on
 * every read of a live range fails whole, also where the node had pages
 * cached. Counted as a change that could not be preserved.
 */
static void test_premount_writer_ext4(void **state)
{
	struct fixture *f = *state;
	long long evictions;

	if (!kernel_has_pre_content(f->m.src))
		skip();
	premount_writer_setup(f, "oob=preserve");
	evictions = mount_counter(f->m.mnt, "evictions");
	write_through_early_fd(f);
	assert_true(counter_reaches(f->m.mnt, "oob_unpreserved", 1) >= 1);
	wait_eviction_after(f->m.mnt, evictions);
	print_oob_counters(f->m.mnt);
	assert_read_fails_whole(f->snap_fd, HEAD, FLEN - HEAD);
	assert_read_fails_whole(f->snap_fd, 0, FLEN);
	assert_int_equal(mount_counter(f->m.mnt, "oob_preserved"), 0);
	close_fd(&f->snap_fd);
}

/*
 * The first read of the rest of the snapshot after a change the daemon
 * could not preserve (after: what it was, for the log): EIO, or one short
 * read of the open-time bytes the node still had cached (G3, "Not
 * promised"), never a new byte.
 */
static void first_read_of_rest(struct fixture *f, const char *after)
{
	unsigned char *got = malloc(FLEN), *want = malloc(FLEN);
	ssize_t n;

	assert_non_null(got);
	assert_non_null(want);
	errno = 0;
	n = pread(f->snap_fd, got, FLEN - HEAD, HEAD);
	printf("# read of the rest %s: %zd (%s)\n", after, n,
	       n < 0 ? strerror(errno) : "bytes");
	if (n < 0) {
		assert_int_equal(errno, EIO);
	} else {
		fill_pattern(want, HEAD, n, false);
		assert_true(n < FLEN - HEAD);
		assert_memory_equal(got, want, (size_t)n);
	}
	free(got);
	free(want);
}

/*
 * The same read at once, racing the daemon's FAN_MODIFY: either detector
 * may see the change first. Never a new byte; the read-time check may
 * leave one short read of open-time bytes the node had cached (G3, "Not
 * promised"), after which every read fails whole.
 */
static void test_premount_writer_ext4_racing_read(void **state)
{
	struct fixture *f = *state;
	long long evictions;

	if (!kernel_has_pre_content(f->m.src))
		skip();
	premount_writer_setup(f, "oob=preserve");
	evictions = mount_counter(f->m.mnt, "evictions");
	write_through_early_fd(f);
	first_read_of_rest(f, "right after the write");
	counter_reaches(f->m.mnt, "oob_unpreserved", 1);
	wait_eviction_after(f->m.mnt, evictions);
	print_oob_counters(f->m.mnt);
	assert_read_fails_whole(f->snap_fd, HEAD, FLEN - HEAD);
	assert_read_fails_whole(f->snap_fd, 0, FLEN);
	assert_true(mount_counter(f->m.mnt, "eio_reads") >= 1);
	close_fd(&f->snap_fd);
}

/*
 * A store through a shared mapping of an fd opened before the mount: no
 * event at all (no pre-content event for such an fd's mapping, K9, and
 * page faults raise no FAN_MODIFY), so only the read-time check (mtime, size) finds it. It is
 * an outside change the daemon could not preserve all the same: counted
 * in oob_unpreserved, reads of the rest fail whole from then on.
 */
static void test_premount_mapping_ext4(void **state)
{
	struct fixture *f = *state;
	unsigned char *map;
	long long evictions;

	if (!kernel_has_pre_content(f->m.src))
		skip();
	premount_writer_setup(f, "oob=preserve");
	/* Mapped now, but through the old fd: as unseen as the fd (K9). */
	map = mmap(NULL, FLEN, PROT_READ | PROT_WRITE, MAP_SHARED, f->early_fd, 0);
	assert_true(map != MAP_FAILED);
	fill_pattern(map + FLEN / 2, FLEN / 2, 4096, true);	/* a fault: mtime */
	evictions = mount_counter(f->m.mnt, "evictions");
	first_read_of_rest(f, "after a store through an old mapping");
	wait_eviction_after(f->m.mnt, evictions);
	assert_read_fails_whole(f->snap_fd, HEAD, FLEN - HEAD);
	sleep_ms(200);		/* a late event, if any, counts too */
	print_oob_counters(f->m.mnt);
	assert_true(mount_counter(f->m.mnt, "oob_changes") >= 1);
	assert_true(mount_counter(f->m.mnt, "oob_unpreserved") >= 1);
	munmap(map, FLEN);
	close_fd(&f->snap_fd);
}

/* With clones the snapshot never reads the live file: no EIO at all. */
static void premount_writer_clone(void **state, const char *opts)
{
	struct fixture *f = *state;

	if (!f)
		skip();		/* no mkfs.xfs */
	premount_writer_setup(f, opts);
	assert_int_equal(mount_counter(f->m.mnt, "clones"), 1);
	write_through_early_fd(f);
	assert_reads_pattern(f->snap_fd, HEAD, FLEN - HEAD, false);
	assert_reads_pattern(f->snap_fd, 0, FLEN, false);
	printf("# xfs -o %s: snapshot_clones_total %lld, eio_reads %lld, "
	       "oob_unpreserved %lld\n", opts ? opts : "(defaults)",
	       mount_counter(f->m.mnt, "snapshot_clones_total"),
	       mount_counter(f->m.mnt, "eio_reads"),
	       mount_counter(f->m.mnt, "oob_unpreserved"));
	assert_int_equal(mount_counter(f->m.mnt, "snapshot_clones_total"), 1);
	assert_int_equal(mount_counter(f->m.mnt, "eio_reads"), 0);
	close_fd(&f->snap_fd);
}

static void test_premount_writer_xfs_clone(void **state)
{
	premount_writer_clone(state, NULL);
}

static void test_premount_writer_xfs_clone_preserve(void **state)
{
	premount_writer_clone(state, "oob=preserve");
}

/*
 * The first open of a file the mount only looked up, after SRC changed
 * it directly: the snapshot is the file at that open, size included
 * (fstat, and how much a read gets: the kernel stops at the size it
 * caches). tar and rsync do exactly this: readdir, then open.
 */
static void test_first_open_after_direct_change(void **state)
{
	struct fixture *f = *state;
	char src[PATH_MAX], mnt[PATH_MAX];
	unsigned char *buf = malloc(FLEN);
	struct stat st;
	ssize_t n;
	int w;

	assert_non_null(buf);
	path_in(src, f->m.src, "g");
	path_in(mnt, f->m.mnt, "g");
	write_file(src, HEAD, false);
	mount_or_fail(f, "oob=preserve");
	assert_int_equal(stat(mnt, &st), 0);
	assert_int_equal(st.st_size, HEAD);
	w = open(src, O_WRONLY);
	assert_true(w >= 0);
	fill_pattern(buf, 0, FLEN, true);
	assert_int_equal(pwrite_all(w, buf, FLEN, 0), 0);
	assert_int_equal(close(w), 0);
	f->snap_fd = open(mnt, O_RDONLY);
	assert_true(f->snap_fd >= 0);
	assert_int_equal(fstat(f->snap_fd, &st), 0);
	n = 0;
	for (ssize_t k; (k = read(f->snap_fd, buf + n, FLEN - (size_t)n)) > 0;)
		n += k;
	printf("# SRC grew %d -> %d after the lookup: the snapshot's fstat "
	       "says %lld, reads give %zd bytes\n", HEAD, FLEN,
	       (long long)st.st_size, n);
	assert_int_equal(st.st_size, FLEN);
	assert_int_equal(n, FLEN);
	assert_reads_pattern(f->snap_fd, 0, FLEN, true);
	close_fd(&f->snap_fd);
	free(buf);
}

/* ---- a write already under way when the snapshot is opened ---------- */

/* Read one byte from fd within ms; false if nothing came. */
static bool byte_within(int fd, long ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char c;

	return poll(&p, 1, (int)ms) == 1 && read(fd, &c, 1) == 1;
}


#define BIG (128 * MiB)

/* The writer: a fresh fd (announced), one pwrite of BIG new bytes. */
static void big_writer(const char *src, int ready, int go, int done)
{
	unsigned char *buf = malloc(BIG);
	int fd = open(src, O_WRONLY);
	char c;

	if (!buf || fd < 0)
		_exit(1);
	fill_pattern(buf, 0, BIG, true);
	if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
		_exit(1);
	if (pwrite(fd, buf, BIG, 0) != BIG || write(done, "d", 1) != 1)
		_exit(1);
	_exit(0);
}

/*
 * A pwrite that passed its pre-content hook before the file had a
 * snapshot (nothing to hold it for) is still copying when a snapshot is
 * opened. Its later bytes must not land after the open unseen: the open
 * waits for it. early_fd (opened before the mount, no events) tells what
 * the file held when the open returned.
 */
static void test_write_under_way_at_open(void **state)
{
	struct fixture *f = *state;
	char src[PATH_MAX], mnt[PATH_MAX];
	int ready[2], go[2], done[2], status;
	const long tail = BIG - 4096;

	if (!kernel_has_pre_content(f->m.src))
		skip();
	path_in(src, f->m.src, "h");
	path_in(mnt, f->m.mnt, "h");
	write_file(src, BIG, false);
	f->early_fd = open(src, O_RDONLY);
	assert_true(f->early_fd >= 0);
	mount_or_fail(f, "oob=preserve");
	assert_int_equal(pipe(ready) | pipe(go) | pipe(done), 0);
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0)
		big_writer(src, ready[1], go[0], done[1]);
	assert_true(byte_within(ready[0], 10000));
	assert_int_equal(write(go[1], "g", 1), 1);
	sleep_ms(20);
	f->snap_fd = open(mnt, O_RDONLY);
	assert_true(f->snap_fd >= 0);
	/*
	 * The file's first snapshot waits for a write under way (it holds
	 * the inode lock: oob_watch.c's barrier), so the open returns after
	 * the write, and the snapshot is the written file, whole: never the
	 * old head with a new tail, and no EIO.
	 */
	assert_reads_pattern(f->early_fd, tail, 4096, true);
	assert_true(byte_within(done[0], 10000));
	assert_reads_pattern(f->snap_fd, 0, 4096, true);
	assert_reads_pattern(f->snap_fd, tail, 4096, true);
	printf("# snapshot opened during a %d MiB pwrite: the open waited for "
	       "it and reads the written file; oob_unpreserved %lld\n", BIG / MiB,
	       mount_counter(f->m.mnt, "oob_unpreserved"));
	assert_int_equal(mount_counter(f->m.mnt, "oob_unpreserved"), 0);
	assert_true(wait_pid_ms(f->child, &status, 5000));
	f->child = 0;
	close_fd(&f->snap_fd);
	for (int i = 0; i < 2; i++) {
		close(ready[i]);
		close(go[i]);
		close(done[i]);
	}
}

/* ---- kill -9 of a daemon holding writers ----------------------------- */

#define HELD_OFF (128 * KiB)
#define HELD_LEN (64 * KiB)

/* The syscall number pid is in (/proc/PID/syscall), or -1. */
static long syscall_of(pid_t pid)
{
	char path[64], line[256];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	line[n] = '\0';
	return line[0] >= '0' && line[0] <= '9' ? strtol(line, NULL, 10) : -1;
}

/*
 * The held writer: opens SRC/f (answered by the daemon, still running),
 * says so on ready, waits for go, then pwrites HELD_LEN new bytes at
 * HELD_OFF and reports the result on done.
 */
static void held_writer(const char *src, int ready, int go, int done)
{
	unsigned char buf[HELD_LEN];
	ssize_t res[2];
	int fd = open(src, O_WRONLY);
	char c;

	if (fd < 0 || write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
		_exit(1);
	fill_pattern(buf, HELD_OFF, HELD_LEN, true);
	res[0] = pwrite(fd, buf, HELD_LEN, HELD_OFF);
	res[1] = errno;
	if (write(done, res, sizeof(res)) != sizeof(res))
		_exit(1);
	_exit(0);
}

/* The dead mount goes: lazily, and by aborting its connection if it
 * somehow still answers nothing. */
static void bury_mount(struct fixture *f, unsigned conn)
{
	test_fusermount("-uz", f->m.mnt);
	if (test_is_stablefs_mount(f->m.mnt)) {
		test_abort_connection(conn);
		test_fusermount("-uz", f->m.mnt);
	}
	f->m.mounted = false;
	assert_false(test_is_stablefs_mount(f->m.mnt));
}

/* Nothing of the dead daemon's store is visible in SRC. */
static void assert_src_holds_only_f(const char *src)
{
	struct dirent *d;
	DIR *dir = opendir(src);
	unsigned others = 0;

	assert_non_null(dir);
	while ((d = readdir(dir)))
		if (strcmp(d->d_name, ".") && strcmp(d->d_name, "..") &&
		    strcmp(d->d_name, "f") && strcmp(d->d_name, "lost+found")) {
			printf("# left in SRC: %s\n", d->d_name);
			others++;
		}
	closedir(dir);
	assert_int_equal(others, 0);
}

/* After the restart: a snapshot keeps its bytes against a direct write. */
static void assert_restart_preserves(struct fixture *f)
{
	char src[PATH_MAX], mnt[PATH_MAX];
	unsigned char *buf = malloc(FLEN);
	int w;

	assert_non_null(buf);
	path_in(src, f->m.src, "f");
	path_in(mnt, f->m.mnt, "f");
	mount_or_fail(f, "oob=preserve");
	f->snap_fd = open(mnt, O_RDONLY);
	assert_true(f->snap_fd >= 0);
	w = open(src, O_WRONLY);	/* after the mark: announced */
	assert_true(w >= 0);
	fill_pattern(buf, 0, FLEN, false);
	assert_int_equal(pwrite_all(w, buf, FLEN, 0), 0);
	assert_int_equal(close(w), 0);
	/* The snapshot is the file after the killed daemon's writer. */
	assert_reads_pattern(f->snap_fd, 0, HELD_OFF, false);
	assert_reads_pattern(f->snap_fd, HELD_OFF, HELD_LEN, true);
	assert_reads_pattern(f->snap_fd, HELD_OFF + HELD_LEN, FLEN - HELD_OFF - HELD_LEN, false);
	printf("# restarted: oob_preserved %lld, eio_reads %lld\n",
	       mount_counter(f->m.mnt, "oob_preserved"),
	       mount_counter(f->m.mnt, "eio_reads"));
	assert_true(mount_counter(f->m.mnt, "oob_preserved") >= 1);
	assert_int_equal(mount_counter(f->m.mnt, "eio_reads"), 0);
	close_fd(&f->snap_fd);
	free(buf);
}

static void test_kill9_with_held_writer(void **state)
{
	struct fixture *f = *state;
	char src[PATH_MAX], mnt[PATH_MAX];
	int ready[2], go[2], done[2], status;
	unsigned char head[4096];
	ssize_t res[2];
	struct stat st;
	unsigned conn;
	long t0;

	if (!kernel_has_pre_content(f->m.src))
		skip();
	path_in(src, f->m.src, "f");
	path_in(mnt, f->m.mnt, "f");
	write_file(src, FLEN, false);
	/* Opened before the mark: looks at SRC without waiting for anyone. */
	f->early_fd = open(src, O_RDONLY);
	assert_true(f->early_fd >= 0);
	mount_or_fail(f, "oob=preserve");
	assert_int_equal(stat(f->m.mnt, &st), 0);
	conn = minor(st.st_dev);
	f->snap_fd = open(mnt, O_RDONLY);	/* the snapshot */
	assert_true(f->snap_fd >= 0);
	assert_int_equal(pread_all(f->snap_fd, head, sizeof(head), 0), 0);
	assert_int_equal(pipe(ready) | pipe(go) | pipe(done), 0);
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0)
		held_writer(src, ready[1], go[0], done[1]);
	assert_true(byte_within(ready[0], 5000));

	/* From here until the kill, this process touches neither MNT nor
	 * files of SRC opened after the mount: both would wait too. */
	f->daemon_stopped = true;
	assert_true(test_stop_threads(f->m.pid));
	assert_int_equal(write(go[1], "g", 1), 1);
	sleep_ms(300);
	assert_false(byte_within(done[0], 0));
	printf("# held writer after 300 ms: in syscall %ld (pwrite64 is %d)\n",
	       syscall_of(f->child), SYS_pwrite64);
	assert_int_equal(syscall_of(f->child), SYS_pwrite64);
	assert_reads_pattern(f->early_fd, HELD_OFF, HELD_LEN, false);

	t0 = now_ms();
	assert_int_equal(kill(f->m.pid, SIGKILL), 0);
	assert_true(wait_pid_ms(f->m.pid, &status, 5000));
	f->m.pid = 0;
	f->daemon_stopped = false;
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	{
		struct pollfd p = { done[0], POLLIN, 0 };

		assert_int_equal(poll(&p, 1, 5000), 1);
	}
	assert_int_equal(read(done[0], res, sizeof(res)), (ssize_t)sizeof(res));
	printf("# writer went on %ld ms after the kill: pwrite %zd (%s)\n",
	       now_ms() - t0, res[0], res[0] < 0 ? strerror((int)res[1]) : "ok");
	assert_int_equal(res[0], HELD_LEN);
	assert_true(wait_pid_ms(f->child, &status, 5000));
	f->child = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_reads_pattern(f->early_fd, HELD_OFF, HELD_LEN, true);
	close_fd(&f->snap_fd);	/* the dead mount: nothing to answer it */
	for (int i = 0; i < 2; i++) {
		close(ready[i]);
		close(go[i]);
		close(done[i]);
	}
	bury_mount(f, conn);
	assert_src_holds_only_f(f->m.src);
	assert_restart_preserves(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tar_while_src_rewritten,
						setup_ext4, teardown),
		cmocka_unit_test_setup_teardown(test_rsync_while_src_rewritten,
						setup_ext4, teardown),
		cmocka_unit_test_setup_teardown(test_first_open_after_direct_change,
						setup_ext4, teardown),
		cmocka_unit_test_setup_teardown(test_premount_writer_ext4,
						setup_ext4, teardown),
		cmocka_unit_test_setup_teardown(test_premount_writer_ext4_racing_read,
						setup_ext4, teardown),
		cmocka_unit_test_setup_teardown(test_premount_mapping_ext4,
						setup_ext4, teardown),
		cmocka_unit_test_setup_teardown(test_premount_writer_xfs_clone,
						setup_xfs, teardown),
		cmocka_unit_test_setup_teardown(test_premount_writer_xfs_clone_preserve,
						setup_xfs, teardown),
		cmocka_unit_test_setup_teardown(test_write_under_way_at_open,
						setup_ext4, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_with_held_writer,
						setup_ext4, teardown),
	};

	if (geteuid() != 0)
		test_skip_all("needs root (loop devices, fanotify)");
	test_require_fuse();
	if (getenv("SFS_OOB_TOOLS_TESTS"))
		cmocka_set_test_filter(getenv("SFS_OOB_TOOLS_TESTS"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
