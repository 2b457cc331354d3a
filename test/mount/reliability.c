/*
 * Reliability: requests any user can send that once crashed, hung or
 * bypassed the daemon. Each case failed on the code before its fix.
 *
 *   proc reopen: reopening an open file through /proc/self/fd/N (or
 *      /dev/stdin) after the file changed. The kernel retries our ESTALE
 *      on the same node without a lookup; routing that retry twice freed
 *      the route's target and used it (SIGSEGV, the mount gone for
 *      everyone), triggered by `nobody`. Now a read-only reopen reads the
 *      snapshot it reopens, a writable one of a snapshot fails EBUSY.
 *   cross copy: copy_file_range A -> B and B -> A at once. The destination
 *      range lock was held while waiting for the source's: a cycle, every
 *      later I/O on both files hung. Watchdog: the connection is aborted
 *      and the test fails if no copy finishes for 20 s.
 *   O_RDONLY | O_TRUNC: truncates on Linux; it bypassed the modification
 *      protocol (no preservation), so a snapshot read EIO, or with
 *      -o oob=ignore zeros.
 *   trusted.* names: listed to unprivileged callers through MNT (the
 *      daemon lists with CAP_SYS_ADMIN); SRC's filesystem hides them.
 *   eviction vs. a finite worker pool: with -s (one worker), a truncate's
 *      cache eviction waited for a READ only that worker could answer.
 *   32-bit open(2): carries no O_LARGEFILE, like the kernel's own opens,
 *      which the daemon served as plain live handles on whatever node they
 *      named: on a snapshot's node, its reads put live bytes into the
 *      snapshot's page cache, where the snapshot's own reader found them.
 *   the kernel's own opens, 64-bit: FS_IOC_GETFLAGS, FS_IOC_FSGETXATTR
 *      and FS_IOC_SETFLAGS (chattr) open the fd's inode with exactly
 *      O_RDONLY and never retry an ESTALE. Served as ordinary read-only
 *      opens they fail on a snapshot reader's node once the file changed
 *      and on a writer's live node (ESTALE, or EBUSY after it); served in
 *      place they work, chattr +a acts as on SRC's filesystem, and the
 *      snapshot keeps its bytes.
 *   a lost eviction between two writers: with -o snapshot=off a read-only
 *      fd reads the live file through the page cache. Any READ set one
 *      flag per inode and each WRITE cleared it, evicting its range only
 *      if it was set: one writer's WRITE took the flag the READ had set
 *      for another's asynchronous (AIO) write in flight, whose range then
 *      stayed cached with the old bytes for mmap and splice readers.
 *   the store's default cap: the daemon writes preserved bytes as root,
 *      past quotas and the root reserve; unset, max_preserve is half the
 *      store's free space at mount (it was unlimited).
 *   SIGTERM with a stuck worker: SRC is itself a FUSE mount (kfuse_daemon)
 *      whose daemon is stopped, so a request through MNT blocks in the
 *      kernel; SIGTERM must still end stablefs (it once waited forever to
 *      join that worker) and detach MNT.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "mount_util.h"
#include "test_util.h"

#define NOBODY 65534
#define MiB (1024 * 1024)

struct fixture {
	struct test_mount m;
};

static int mount_with(void **state, const char *opts)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char pub[PATH_MAX];

	if (!f)
		return -1;
	*state = f;
	if (test_mount_prepare(&f->m, "reliab"))
		return -1;
	/* A world-writable directory for the unprivileged cases. */
	path_in(pub, f->m.src, "pub");
	if (mkdir(pub, 01777) || chmod(pub, 01777))
		return -1;
	return test_mount_start(&f->m, opts);
}

static int setup(void **state)
{
	return mount_with(state, "allow_other");
}

static int setup_single(void **state)
{
	return mount_with(state, "allow_other,max_threads=1,snapshot=off");
}

static int setup_oob_ignore(void **state)
{
	return mount_with(state, "allow_other,oob=ignore");
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	if (test_mount_finish(&f->m))
		rc = -1;	/* busy, or the daemon did not exit 0 */
	free(f);
	return rc;
}

/*
 * Abort the mount's FUSE connection: a hung request returns at once (a
 * daemon stuck in D state ignores SIGKILL until then). fusectl may not be
 * mounted yet.
 */
static void abort_connection(unsigned minor)
{
	char p[128];
	int fd;

	if (access("/sys/fs/fuse/connections", F_OK) == 0)
		mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL);
	snprintf(p, sizeof(p), "/sys/fs/fuse/connections/%u/abort", minor);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1", 1) != 1)
		printf("# abort %s: %s\n", p, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* The mount's device minor, asked while it still answers. */
static unsigned fuse_minor(const struct test_mount *m)
{
	struct stat st;

	assert_int_equal(stat(m->mnt, &st), 0);
	return minor(st.st_dev);
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, buf, len), 0);
	assert_int_equal(close(fd), 0);
}

/* Run fn in a child as nobody:nogroup; its exit status must be 0. */
static void as_nobody(int (*fn)(const char *dir), const char *dir)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY))
			_exit(99);
		_exit(fn(dir));
	}
	assert_true(wait_pid_ms(pid, &status, 30000));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("child as nobody: %s %d", WIFEXITED(status) ?
			 "failed at step" : "killed by signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* ---- reopen through /proc/self/fd --------------------------------- */

static int make(const char *dir, const char *name, const char *text, char *path)
{
	int fd;

	snprintf(path, PATH_MAX, "%s/%s", dir, name);
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0 || write_all(fd, text, strlen(text)) || close(fd))
		return -1;
	return 0;
}

static int append(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	if (fd < 0 || write_all(fd, text, strlen(text)) || close(fd))
		return -1;
	return 0;
}

/* Open path (as given) read-only and check its whole content. */
static int reads_as(const char *path, const char *want)
{
	char buf[64] = { 0 };
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n == (ssize_t)strlen(want) && memcmp(buf, want, (size_t)n) == 0 ? 0 : -1;
}

/* The reporter's sequences, as nobody in MNT/pub; step numbers on failure. */
static int proc_reopen_script(const char *dir)
{
	char g[PATH_MAX], f[PATH_MAX], proc[64];
	int fd, fd2, w;

	/* echo one > g; exec 3< g; echo x > /proc/self/fd/3 */
	if (make(dir, "g", "one\n", g))
		return 1;
	fd = open(g, O_RDONLY);
	if (fd < 0)
		return 2;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (int i = 0; i < 3; i++) {
		w = open(proc, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (w >= 0 || errno != EBUSY)
			return 3;
	}
	if (reads_as(g, "one\n") || reads_as(proc, "one\n"))
		return 4;
	close(fd);

	/* exec 3< f; echo two >> f; cat /proc/self/fd/3 */
	if (make(dir, "f", "one\n", f))
		return 5;
	fd = open(f, O_RDONLY);
	if (fd < 0 || append(f, "two\n"))
		return 6;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (reads_as(proc, "one\n"))	/* the snapshot it reopens */
		return 7;
	/* prog /dev/stdin < f, after the change */
	if (dup2(fd, 0) != 0 || reads_as("/dev/stdin", "one\n"))
		return 8;
	if (append(f, "three\n") || reads_as("/dev/stdin", "one\n"))
		return 9;
	if (reads_as(f, "one\ntwo\nthree\n"))	/* by name: the live file */
		return 10;
	/* A read-only reopen of a writer's fd: no snapshot can be had on the
	 * writer's node, and a live read-only fd would break G2: EBUSY. */
	w = open(f, O_RDWR);
	if (w < 0)
		return 11;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", w);
	if (append(f, "four\n") || open(proc, O_RDONLY) != -1 || errno != EBUSY)
		return 12;
	/* ...and a writable one works. */
	if (reads_as(f, "one\ntwo\nthree\nfour\n") ||
	    (fd2 = open(proc, O_WRONLY | O_APPEND)) < 0 ||
	    write_all(fd2, "five\n", 5) || close(fd2) ||
	    reads_as(f, "one\ntwo\nthree\nfour\nfive\n"))
		return 13;
	close(w);
	close(fd);
	return 0;
}

static void test_proc_reopen_as_nobody(void **state)
{
	struct fixture *f = *state;
	char dir[PATH_MAX];

	path_in(dir, f->m.mnt, "pub");
	as_nobody(proc_reopen_script, dir);
	/* The daemon is alive: the mount still answers. */
	assert_true(test_is_stablefs_mount(f->m.mnt));
	assert_int_equal(access(dir, F_OK), 0);
}

/* ---- copy_file_range A -> B and B -> A at once ---------------------- */

#define COPIERS 8
#define COPY_SECONDS 4

struct copier {
	const char *from, *to;
	atomic_long *progress;
	atomic_int *finished;
	atomic_bool *stop;
	int err;
};

static void *copy_loop(void *arg)
{
	struct copier *c = arg;
	int in = open(c->from, O_RDONLY), out = open(c->to, O_RDWR);
	uint64_t seed = (uintptr_t)c | 1;

	if (in < 0 || out < 0) {
		c->err = errno;
		goto out;
	}
	while (!atomic_load(c->stop)) {
		loff_t off_in = rnd_below(&seed, 15) * 65536;
		loff_t off_out = rnd_below(&seed, 15) * 65536;
		ssize_t n = copy_file_range(in, &off_in, out, &off_out, 65536, 0);

		if (n < 0) {
			c->err = errno;
			break;
		}
		atomic_fetch_add(c->progress, 1);
	}
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	atomic_fetch_add(c->finished, 1);
	return NULL;
}

static void test_cross_copy_file_range(void **state)
{
	struct fixture *f = *state;
	static unsigned char buf[MiB];
	char a[PATH_MAX], b[PATH_MAX];
	struct copier c[COPIERS];
	pthread_t th[COPIERS];
	atomic_long progress = 0;
	atomic_int finished = 0;
	atomic_bool stop = false;
	long last = -1, last_ms = now_ms(), start = now_ms();
	unsigned conn = fuse_minor(&f->m);
	bool hung = false;

	fill_pattern(buf, 0, MiB, false);
	path_in(a, f->m.mnt, "a");
	path_in(b, f->m.mnt, "b");
	write_file(a, buf, MiB);
	write_file(b, buf, MiB);
	for (int i = 0; i < COPIERS; i++) {
		c[i] = (struct copier){ .from = i % 2 ? a : b, .to = i % 2 ? b : a,
					.progress = &progress, .stop = &stop,
					.finished = &finished };
		assert_int_equal(pthread_create(&th[i], NULL, copy_loop, &c[i]), 0);
	}
	while (now_ms() - start < COPY_SECONDS * 1000) {
		sleep_ms(100);
		if (atomic_load(&progress) != last) {
			last = atomic_load(&progress);
			last_ms = now_ms();
		} else if (now_ms() - last_ms > 20000) {
			hung = true;
			break;
		}
	}
	atomic_store(&stop, true);
	/* The copiers stop within a copy each, unless stuck: then abort. */
	for (long t0 = now_ms(); !hung && atomic_load(&finished) < COPIERS;) {
		sleep_ms(50);
		hung = now_ms() - t0 > 20000;
	}
	if (hung)
		abort_connection(conn);
	for (int i = 0; i < COPIERS; i++)
		pthread_join(th[i], NULL);
	printf("# cross copy_file_range: %ld copies of 64 KiB by %d threads\n",
	       (long)atomic_load(&progress), COPIERS);
	assert_false(hung);
	for (int i = 0; i < COPIERS; i++)
		assert_int_equal(c[i].err, 0);
	assert_true(atomic_load(&progress) > COPIERS);
}

/* ---- O_RDONLY | O_TRUNC is a modification ------------------------- */

static void rdonly_trunc_keeps_snapshot(struct fixture *f)
{
	static unsigned char a[65536], got[65536];
	char path[PATH_MAX];
	struct stat st;
	int snap, t;

	memset(a, 'A', sizeof(a));
	path_in(path, f->m.mnt, "t");
	write_file(path, a, sizeof(a));
	snap = open(path, O_RDONLY);
	assert_true(snap >= 0);
	t = open(path, O_RDONLY | O_TRUNC);
	assert_true(t >= 0);
	assert_int_equal(close(t), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);		/* it did truncate */
	memset(got, 0, sizeof(got));
	assert_int_equal(pread_all(snap, got, sizeof(got), 0), 0);
	assert_memory_equal(got, a, sizeof(a));		/* 65,536 'A' */
	assert_int_equal(fstat(snap, &st), 0);
	assert_int_equal(st.st_size, sizeof(a));
	assert_int_equal(close(snap), 0);
	assert_int_equal(mount_counter(f->m.mnt, "eio_reads"), 0);
}

static void test_rdonly_trunc(void **state)
{
	rdonly_trunc_keeps_snapshot(*state);
}

static void test_rdonly_trunc_oob_ignore(void **state)
{
	rdonly_trunc_keeps_snapshot(*state);
}

/* ---- trusted.* names are root's ----------------------------------- */

static int list_has_trusted(const char *path)
{
	char list[4096];
	ssize_t n = listxattr(path, list, sizeof(list));
	ssize_t probe = listxattr(path, NULL, 0);

	if (n < 0 || probe != n)
		return 2;	/* the size probe must agree with the list */
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1)
		if (strncmp(list + i, "trusted.", 8) == 0)
			return 1;
	return strstr(list, "user.visible") ? 0 : 3;
}

static int nobody_lists(const char *path)
{
	return list_has_trusted(path);
}

static void test_trusted_names_hidden(void **state)
{
	struct fixture *f = *state;
	char src[PATH_MAX], mnt[PATH_MAX];

	path_in(src, f->m.src, "pub/x");
	path_in(mnt, f->m.mnt, "pub/x");
	write_file(src, "x", 1);
	assert_int_equal(chmod(src, 0644), 0);
	assert_int_equal(setxattr(src, "trusted.secret_name", "s", 1, 0), 0);
	assert_int_equal(setxattr(src, "user.visible", "v", 1, 0), 0);
	as_nobody(nobody_lists, src);		/* raw twin: hidden on SRC */
	as_nobody(nobody_lists, mnt);		/* ...and through MNT */
	assert_int_equal(list_has_trusted(mnt), 1);	/* root sees it */
}

/* ---- eviction with one worker --------------------------------------- */

struct reader {
	const char *path;
	atomic_bool *stop;
	atomic_long *reads;
};

static void *read_loop(void *arg)
{
	struct reader *r = arg;
	static unsigned char buf[MiB];

	while (!atomic_load(r->stop)) {
		int fd = open(r->path, O_RDONLY);	/* cached: no snapshots */

		if (fd < 0)
			continue;
		if (pread(fd, buf, sizeof(buf), 0) >= 0)
			atomic_fetch_add(r->reads, 1);
		close(fd);
	}
	return NULL;
}

struct changer {
	const char *path;
	atomic_bool *stop;
	atomic_long *changes;
	int err;
};

/* Truncates evict: each waits for cached reads in flight. */
static void *change_loop(void *arg)
{
	struct changer *c = arg;
	static unsigned char buf[MiB];
	int fd = open(c->path, O_RDWR);

	fill_pattern(buf, 0, MiB, false);
	if (fd < 0)
		c->err = errno;
	while (fd >= 0 && !atomic_load(c->stop)) {
		if (ftruncate(fd, 4096 + (atomic_load(c->changes) % 7) * 65536) ||
		    pwrite_all(fd, buf, MiB, 0)) {
			c->err = errno;
			break;
		}
		atomic_fetch_add(c->changes, 1);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void test_eviction_single_worker(void **state)
{
	struct fixture *f = *state;
	static unsigned char buf[MiB];
	char path[PATH_MAX];
	atomic_bool stop = false;
	atomic_long reads = 0, changes = 0;
	struct reader r = { .path = path, .stop = &stop, .reads = &reads };
	struct changer c = { .path = path, .stop = &stop, .changes = &changes };
	pthread_t rt, ct;
	long start = now_ms(), last_ms = now_ms(), last = 0;
	unsigned conn = fuse_minor(&f->m);
	bool hung = false;

	fill_pattern(buf, 0, MiB, false);
	path_in(path, f->m.mnt, "ev");
	write_file(path, buf, MiB);
	assert_int_equal(pthread_create(&rt, NULL, read_loop, &r), 0);
	assert_int_equal(pthread_create(&ct, NULL, change_loop, &c), 0);
	while (now_ms() - start < 3000 && !hung) {
		sleep_ms(100);
		if (atomic_load(&changes) != last) {
			last = atomic_load(&changes);
			last_ms = now_ms();
		}
		hung = now_ms() - last_ms > 10000;
	}
	atomic_store(&stop, true);
	for (long t0 = now_ms(); !hung;) {
		if (pthread_tryjoin_np(ct, NULL) != EBUSY)
			break;
		sleep_ms(50);
		hung = now_ms() - t0 > 10000;
	}
	if (hung) {
		abort_connection(conn);
		pthread_join(ct, NULL);
	}
	pthread_join(rt, NULL);
	printf("# one worker: %ld truncate+rewrite, %ld reads\n",
	       (long)atomic_load(&changes), (long)atomic_load(&reads));
	assert_false(hung);
	assert_int_equal(c.err, 0);
	assert_true(atomic_load(&changes) > 10);
}

/* ---- an open without O_LARGEFILE ------------------------------------- */

#define BIG (4 * MiB)

static int setup_long_timeout(void **state)
{
	/* The dentry must keep naming the snapshot's node for the test. */
	return mount_with(state, "allow_other,timeout=60");
}

/* open(2) through the 32-bit entry (int $0x80): no O_LARGEFILE added. */
static long compat_open(const char *path, int flags)
{
	char *low = mmap(NULL, PATH_MAX, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	long ret = 5;	/* __NR_open in the i386 table */

	if (low == MAP_FAILED)
		return -ENOMEM;
	strcpy(low, path);
	__asm__ volatile("int $0x80"
			 : "+a"(ret)
			 : "b"(low), "c"(flags), "d"(0)
			 : "memory", "r8", "r9", "r10", "r11");
	munmap(low, PATH_MAX);
	return ret;
}

static void test_open_without_largefile(void **state)
{
	struct fixture *f = *state;
	static unsigned char want[BIG], got[BIG], fresh[BIG];
	char sf[PATH_MAX], sg[PATH_MAX], mf[PATH_MAX], mg[PATH_MAX];
	int snap, w, status;
	pid_t child;

	fill_pattern(want, 0, BIG, false);
	fill_pattern(fresh, 0, BIG, true);
	path_in(sf, f->m.src, "f");
	path_in(sg, f->m.src, "g");
	write_file(sf, want, BIG);
	assert_int_equal(link(sf, sg), 0);	/* g: the same file */
	path_in(mf, f->m.mnt, "f");
	path_in(mg, f->m.mnt, "g");
	snap = open(mf, O_RDONLY);
	assert_true(snap >= 0);
	assert_int_equal(pread_all(snap, got, 4096, 0), 0);
	/* Rewrite it through the other name: f's dentry keeps naming the
	 * snapshot's node. */
	w = open(mg, O_RDWR);
	assert_true(w >= 0);
	assert_int_equal(pwrite_all(w, fresh, BIG, 0), 0);
	assert_int_equal(close(w), 0);
	child = fork();
	if (child == 0) {
		/* Not cmocka's handler: a kernel without the 32-bit entry
		 * answers int $0x80 with SIGSEGV, which only means "skip". */
		signal(SIGSEGV, SIG_DFL);
		long fd = compat_open(mf, O_RDONLY);
		static unsigned char buf[MiB];

		if (fd < 0)
			_exit(fd == -ENOSYS ? 77 : 1);
		_exit(pread((int)fd, buf, sizeof(buf), 2 * MiB) == MiB ? 0 : 2);
	}
	assert_true(wait_pid_ms(child, &status, 30000));
	if (WIFSIGNALED(status) || WEXITSTATUS(status) == 77) {
		close(snap);
		printf("# no 32-bit syscall entry here (ia32 emulation off)\n");
		skip();
	}
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The snapshot reads its own bytes where the 32-bit reader read. */
	assert_int_equal(pread_all(snap, got, BIG, 0), 0);
	assert_memory_equal(got, want, BIG);
	assert_int_equal(close(snap), 0);
}

/* ---- the kernel's own opens: attribute ioctls ------------------------- */

/*
 * FS_IOC_GETFLAGS and FS_IOC_FSGETXATTR on fd give what they give on SRC's
 * file (src_fd). The kernel serves both through vfs_fileattr_get(): it
 * opens the fd's FUSE inode itself, with exactly O_RDONLY, and never
 * retries that open after ESTALE.
 */
static void assert_attrs_as_src(int fd, const char *whose, int src_fd)
{
	struct fsxattr fsx, src_fsx;
	int flags, src_flags;

	assert_int_equal(ioctl(src_fd, FS_IOC_GETFLAGS, &src_flags), 0);
	assert_int_equal(ioctl(src_fd, FS_IOC_FSGETXATTR, &src_fsx), 0);
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags))
		fail_msg("FS_IOC_GETFLAGS on the %s's fd: %s", whose,
			 strerror(errno));
	if (ioctl(fd, FS_IOC_FSGETXATTR, &fsx))
		fail_msg("FS_IOC_FSGETXATTR on the %s's fd: %s", whose,
			 strerror(errno));
	assert_int_equal(flags, src_flags);
	assert_int_equal(fsx.fsx_xflags, src_fsx.fsx_xflags);
	assert_int_equal(fsx.fsx_extsize, src_fsx.fsx_extsize);
	assert_int_equal(fsx.fsx_projid, src_fsx.fsx_projid);
	assert_int_equal(fsx.fsx_cowextsize, src_fsx.fsx_cowextsize);
}

static int errno_of(long ret)
{
	return ret < 0 ? errno : 0;
}

/* chattr +a / -a through fd (FS_IOC_SETFLAGS: the kernel's open again). */
static int set_append_only(int fd, bool on)
{
	int flags;

	if (ioctl(fd, FS_IOC_GETFLAGS, &flags))
		return errno;
	flags = on ? flags | FS_APPEND_FL : flags & ~FS_APPEND_FL;
	return errno_of(ioctl(fd, FS_IOC_SETFLAGS, &flags));
}

/* chattr -a on SRC's side after a failed step (rm -rf could not remove it). */
static void undo_append_only(int fd)
{
	int flags;

	if (!ioctl(fd, FS_IOC_GETFLAGS, &flags) && (flags & FS_APPEND_FL))
		set_append_only(fd, false);
}

/* lsattr on a fresh read-only fd of path: 1 (append-only), 0 or -errno. */
static int shows_append_only(const char *path)
{
	int fd = open(path, O_RDONLY), flags, res;

	if (fd < 0)
		return -errno;
	res = ioctl(fd, FS_IOC_GETFLAGS, &flags) ? -errno :
						     !!(flags & FS_APPEND_FL);
	close(fd);
	return res;
}

/* Open path with flags and write text; 0 or the first errno. */
static int open_and_write(const char *path, int flags, const char *text)
{
	int fd = open(path, flags), err;

	if (fd < 0)
		return errno;
	err = write_all(fd, text, strlen(text)) ? errno : 0;
	close(fd);
	return err;
}

enum {
	AO_SET, AO_SHOWN, AO_OPEN_FOR_WRITE, AO_APPEND, AO_OVERWRITE,
	AO_TRUNCATE, AO_CLEAR, AO_SHOWN_AFTER, AO_OPEN_AFTER, AO_STEPS
};

static const char *const ao_step_names[AO_STEPS] = {
	"chattr +a", "lsattr", "open O_WRONLY", "O_APPEND write",
	"pwrite at 0 by the earlier writer", "ftruncate by it", "chattr -a",
	"lsattr after", "open O_WRONLY after",
};

/* A step's outcome in words: the lsattr steps give 1, 0 or -errno. */
static const char *ao_result(int step, int res)
{
	if (step != AO_SHOWN && step != AO_SHOWN_AFTER)
		return res ? strerror(res) : "done";
	if (res < 0)
		return strerror(-res);
	return res ? "append-only" : "not so";
}

/* chattr +a through writer w of path, what the file then allows, -a. */
static void append_only_steps(const char *path, int w, int res[AO_STEPS])
{
	res[AO_SET] = set_append_only(w, true);
	res[AO_SHOWN] = shows_append_only(path);
	res[AO_OPEN_FOR_WRITE] = open_and_write(path, O_WRONLY, "no");
	res[AO_APPEND] = open_and_write(path, O_WRONLY | O_APPEND, "tail");
	res[AO_OVERWRITE] = pwrite(w, "x", 1, 0) == 1 ? 0 : errno;
	res[AO_TRUNCATE] = errno_of(ftruncate(w, 1));
	res[AO_CLEAR] = set_append_only(w, false);
	res[AO_SHOWN_AFTER] = shows_append_only(path);
	res[AO_OPEN_AFTER] = open_and_write(path, O_WRONLY, "");
}

/* A whole file's bytes (at most cap) into buf; its length. */
static long slurp(const char *path, unsigned char *buf, long cap)
{
	int fd = open(path, O_RDONLY);
	long n = 0;
	ssize_t r = 1;

	assert_true(fd >= 0);
	while (n < cap && (r = read(fd, buf + n, (size_t)(cap - n))) > 0)
		n += r;
	assert_true(r >= 0);
	close(fd);
	return n;
}

#define KO_SIZE (64 * 1024)

static void test_kernel_open_ioctls(void **state)
{
	struct fixture *f = *state;
	static unsigned char old[KO_SIZE], fresh[KO_SIZE], got[2 * KO_SIZE],
			     want[2 * KO_SIZE];
	char mf[PATH_MAX], sf[PATH_MAX], twin[PATH_MAX];
	int snap, w, rd, src, tw, ours[AO_STEPS], theirs[AO_STEPS];
	struct stat st;
	long n;

	fill_pattern(old, 0, KO_SIZE, false);
	fill_pattern(fresh, 0, KO_SIZE, true);
	path_in(mf, f->m.mnt, "f");
	path_in(sf, f->m.src, "f");
	write_file(mf, old, KO_SIZE);
	snap = open(mf, O_RDONLY);
	assert_true(snap >= 0);
	assert_int_equal(pread_all(snap, got, 4096, 0), 0);
	/* Now snap's node shows a snapshot of an older version, and the
	 * writer's is the live node, in use: no plain read-only open can be
	 * had on either (ESTALE, EBUSY); only the kernel's, in place. */
	w = open(mf, O_RDWR);
	assert_true(w >= 0);
	assert_int_equal(pwrite_all(w, fresh, KO_SIZE, 0), 0);
	rd = open(mf, O_RDONLY);
	assert_true(rd >= 0);
	src = open(sf, O_RDONLY);
	assert_true(src >= 0);
	assert_attrs_as_src(snap, "snapshot reader", src);
	assert_attrs_as_src(rd, "fresh reader", src);
	assert_attrs_as_src(w, "writer", src);

	/* chattr +a and -a through the writer, step by step as on a twin
	 * beside SRC (same filesystem, outside the mount). */
	path_in(twin, f->m.base, "twin");
	write_file(twin, fresh, KO_SIZE);
	tw = open(twin, O_RDWR);
	assert_true(tw >= 0);
	append_only_steps(twin, tw, theirs);
	append_only_steps(mf, w, ours);
	/* Whatever failed: no append-only file may outlive the test. */
	undo_append_only(src);
	undo_append_only(tw);
	for (int i = 0; i < AO_STEPS; i++) {
		printf("# %s: %s on SRC's filesystem, %s through MNT\n",
		       ao_step_names[i], ao_result(i, theirs[i]),
		       ao_result(i, ours[i]));
		if (ours[i] != theirs[i])
			fail_msg("%s: differs through MNT", ao_step_names[i]);
	}
	assert_int_equal(theirs[AO_SET], 0);	/* it was tested at all */
	assert_attrs_as_src(snap, "snapshot reader", src);
	assert_attrs_as_src(w, "writer", src);

	/* The snapshot still reads its open-time bytes, a new reader the
	 * file as the twin now is. */
	assert_int_equal(fstat(snap, &st), 0);
	assert_int_equal(st.st_size, KO_SIZE);
	assert_int_equal(pread_all(snap, got, KO_SIZE, 0), 0);
	assert_memory_equal(got, old, KO_SIZE);
	n = slurp(twin, want, sizeof(want));
	assert_int_equal(slurp(mf, got, sizeof(got)), n);
	assert_memory_equal(got, want, (size_t)n);
	assert_int_equal(slurp(sf, got, sizeof(got)), n);
	assert_memory_equal(got, want, (size_t)n);
	assert_int_equal(close(tw), 0);
	assert_int_equal(close(src), 0);
	assert_int_equal(close(rd), 0);
	assert_int_equal(close(w), 0);
	assert_int_equal(close(snap), 0);
	assert_int_equal(mount_counter(f->m.mnt, "eio_reads"), 0);
}

/* ---- a lost eviction between two writers ------------------------------ */

/*
 * A 2 MiB file: the page writer rewrites page 0; the range writer writes
 * the second MiB (one WRITE: max_write is 1 MiB), which the reader reads
 * through a shared mapping of its read-only fd. Every word of a page says
 * who wrote it, and in which round.
 */
#define LR_SIZE (2 * MiB)
#define LR_PAGE 4096
#define LR_WORDS (LR_PAGE / 8)
#define LR_RANGE_OFF MiB
#define LR_RANGE_LEN MiB
#define LR_HOT 4		/* range pages the reader keeps reading */

enum { LR_FIRST, LR_PAGE_WRITER, LR_RANGE_WRITER };

static int setup_live(void **state)
{
	/* Read-only opens are plain live handles, reading through the
	 * page cache. */
	return mount_with(state, "allow_other,snapshot=off");
}

static uint64_t lr_word(unsigned writer, uint64_t version, long page)
{
	return version << 32 | (uint64_t)writer << 24 | (uint64_t)page;
}

static void lr_fill(uint64_t *buf, long off, long len, unsigned writer,
		    uint64_t version)
{
	for (long i = 0; i < len / 8; i++)
		buf[i] = lr_word(writer, version, (off + i * 8) / LR_PAGE);
}

struct lr_round {
	const volatile uint64_t *map;	/* the reader's fd, MAP_SHARED */
	int page_fd, range_fd;		/* the writers' own fds */
	aio_context_t aio;
	uint64_t *page_buf, *range_buf;
	uint64_t version;		/* the range writer's, this round's */
	uint64_t page_version;
	atomic_bool submitted, range_done, stop;
	long raced;		/* rounds the reader cached replaced bytes */
	int page_err, range_err;
};

/*
 * Rewrites page 0 while the range write is on its way. Before the fix
 * each of its WRITEs cleared the inode's one live_reads flag, which the
 * reader's READ of the range had set for the range's WRITE.
 */
static void *lr_page_writer(void *arg)
{
	struct lr_round *r = arg;

	while (!atomic_load(&r->range_done)) {
		lr_fill(r->page_buf, 0, LR_PAGE, LR_PAGE_WRITER,
			++r->page_version);
		if (pwrite_all(r->page_fd, r->page_buf, LR_PAGE, 0)) {
			r->page_err = errno;
			break;
		}
	}
	return NULL;
}

/*
 * One asynchronous direct write of the range (Linux AIO). The kernel drops
 * the range from the cache before and again right after sending the WRITE,
 * then io_submit returns; a READ from then until the daemon has written
 * caches the old bytes, and only the daemon's eviction removes them. A
 * synchronous write(2) the kernel drops once more after its WRITEs are
 * answered (6.18; measured: with no eviction of ours at all, no page stayed
 * stale), so only asynchronous writes can show a missed eviction.
 */
static void *lr_range_writer(void *arg)
{
	struct lr_round *r = arg;
	struct iocb cb = {
		.aio_lio_opcode = IOCB_CMD_PWRITE,
		.aio_fildes = (uint32_t)r->range_fd,
		.aio_buf = (uintptr_t)r->range_buf,
		.aio_nbytes = LR_RANGE_LEN,
		.aio_offset = LR_RANGE_OFF,
	};
	struct iocb *cbs[1] = { &cb };
	struct timespec bound = { .tv_sec = 30 };
	struct io_event ev;

	lr_fill(r->range_buf, LR_RANGE_OFF, LR_RANGE_LEN, LR_RANGE_WRITER,
		r->version);
	if (syscall(SYS_io_submit, r->aio, 1, cbs) != 1) {
		r->range_err = errno;
	} else {
		atomic_store(&r->submitted, true);
		if (syscall(SYS_io_getevents, r->aio, 1, 1, &ev, &bound) != 1)
			r->range_err = errno ? errno : ETIMEDOUT;
		else if (ev.res != LR_RANGE_LEN)
			r->range_err = ev.res < 0 ? (int)-ev.res : EIO;
	}
	atomic_store(&r->range_done, true);
	return NULL;
}

/*
 * Reads LR_HOT pages of the range. Old bytes seen after io_submit returned
 * were cached after the kernel's last drop: the round needs our eviction.
 */
static void *lr_reader(void *arg)
{
	struct lr_round *r = arg;
	long step = LR_RANGE_LEN / LR_PAGE / LR_HOT;
	long first = LR_RANGE_OFF / LR_PAGE + step / 2;
	bool raced = false;

	for (long i = 0; !atomic_load(&r->stop); i++) {
		long page = first + (i % LR_HOT) * step;
		bool submitted = atomic_load(&r->submitted);
		uint64_t word = r->map[page * LR_WORDS];

		raced |= submitted && word >> 32 < r->version;
	}
	r->raced += raced;
	return NULL;
}

static void lr_round(struct lr_round *r)
{
	void *(*const fn[3])(void *) = { lr_reader, lr_page_writer,
					 lr_range_writer };
	pthread_t th[3];

	r->version++;
	atomic_store(&r->submitted, false);
	atomic_store(&r->range_done, false);
	atomic_store(&r->stop, false);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, fn[i], r), 0);
	/* The range writer ends, then the page writer, then the reader. */
	for (int i = 2; i > 0; i--)
		pthread_join(th[i], NULL);
	atomic_store(&r->stop, true);
	pthread_join(th[0], NULL);
}

/* Pages whose cached bytes differ from SRC's; the first in *first. */
static long lr_stale_pages(const volatile uint64_t *map, const uint64_t *src,
			   long *first)
{
	long n = 0;

	*first = -1;
	for (long p = 0; p < LR_SIZE / LR_PAGE; p++) {
		const void *cached = (const void *)&map[p * LR_WORDS];

		if (!memcmp(cached, &src[p * LR_WORDS], LR_PAGE))
			continue;
		if (n++ == 0)
			*first = p;
	}
	return n;
}

static void lr_describe(const char *what, uint64_t word)
{
	printf("#   %s: writer %u, round %llu, page %llu\n", what,
	       (unsigned)(word >> 24 & 0xff), (unsigned long long)(word >> 32),
	       (unsigned long long)(word & 0xffffff));
}

/*
 * Rounds of: the page writer rewriting page 0, the range writer writing
 * the range once, the reader reading it; then, the writers' fds still
 * open, every page as cached for the reader must be SRC's. The cache is
 * read through the mapping: read(2) would first ask GETATTR (the write
 * invalidated the attributes) and, the mtime having moved, drop the whole
 * cache (auto_inval_data), hiding what mmap and splice still get.
 */
static void test_lost_eviction_two_writers(void **state)
{
	struct fixture *f = *state;
	struct lr_round r = { 0 };
	char mp[PATH_MAX], sp[PATH_MAX];
	double seconds = stress_seconds(3);
	long rounds = 0, stale = 0, first = -1, end;
	uint64_t *src, *map;
	int rfd, sfd;

	path_in(mp, f->m.mnt, "f");
	path_in(sp, f->m.src, "f");
	src = aligned_alloc(LR_PAGE, LR_SIZE);
	r.page_buf = aligned_alloc(LR_PAGE, LR_PAGE);
	r.range_buf = aligned_alloc(LR_PAGE, LR_RANGE_LEN);
	assert_true(src && r.page_buf && r.range_buf);
	lr_fill(src, 0, LR_SIZE, LR_FIRST, 0);
	write_file(mp, src, LR_SIZE);
	if (syscall(SYS_io_setup, 1, &r.aio)) {
		printf("# no Linux AIO: %s\n", strerror(errno));
		free(r.range_buf);
		free(r.page_buf);
		free(src);
		skip();
	}
	r.page_fd = open(mp, O_RDWR);
	/* O_DIRECT: older kernels take the asynchronous path only then. */
	r.range_fd = open(mp, O_RDWR | O_DIRECT);
	rfd = open(mp, O_RDONLY);
	sfd = open(sp, O_RDONLY);
	assert_true(r.page_fd >= 0 && r.range_fd >= 0 && rfd >= 0 && sfd >= 0);
	map = mmap(NULL, LR_SIZE, PROT_READ, MAP_SHARED, rfd, 0);
	assert_true(map != MAP_FAILED);
	r.map = map;
	for (end = now_ms() + (long)(seconds * 1000); !stale && now_ms() < end;
	     rounds++) {
		lr_round(&r);
		assert_int_equal(r.page_err, 0);
		assert_int_equal(r.range_err, 0);
		assert_int_equal(pread_all(sfd, src, LR_SIZE, 0), 0);
		stale = lr_stale_pages(map, src, &first);
	}
	printf("# %ld rounds, %llu page writes; in %ld the reader cached bytes "
	       "the range write replaced; %ld pages stale after the last\n",
	       rounds, (unsigned long long)r.page_version, r.raced, stale);
	if (stale) {
		lr_describe("cached", map[first * LR_WORDS]);
		lr_describe("SRC", src[first * LR_WORDS]);
	}
	munmap(map, LR_SIZE);
	syscall(SYS_io_destroy, r.aio);
	close(sfd);
	close(rfd);
	close(r.range_fd);
	close(r.page_fd);
	free(r.range_buf);
	free(r.page_buf);
	free(src);
	if (stale)
		fail_msg("%ld pages kept bytes the last range write replaced",
			 stale);
	/* No round needed an eviction (a kernel that drops an AIO write's
	 * range again on completion, or a reader never scheduled in time):
	 * nothing was tested. */
	if (!r.raced) {
		printf("# the reader never cached bytes a write replaced\n");
		skip();
	}
}

/* ---- a default cap on preserved bytes -------------------------------- */

static long long cap_of_mount(const char *opts)
{
	struct test_mount m = { 0 };
	long long cap;

	assert_int_equal(test_mount_prepare(&m, "cap"), 0);
	if (test_mount_start(&m, opts)) {
		test_mount_destroy(&m);
		fail_msg("cannot mount with %s", opts ? opts : "defaults");
	}
	cap = mount_counter(m.mnt, "max_preserve");
	assert_int_equal(test_mount_finish(&m), 0);
	return cap;
}

static void test_store_has_a_default_cap(void **state)
{
	struct statvfs sv;
	long long cap, free_bytes;

	(void)state;
	assert_int_equal(statvfs(tmp_base(), &sv), 0);
	free_bytes = (long long)sv.f_bavail * (long long)sv.f_frsize;
	cap = cap_of_mount(NULL);
	printf("# default max_preserve %lld of %lld bytes free\n", cap, free_bytes);
	assert_true(cap > free_bytes * 4 / 10 && cap < free_bytes * 6 / 10);
	assert_int_equal(cap_of_mount("max_preserve=0"), 0);	/* no cap */
	assert_int_equal(cap_of_mount("max_preserve=1M"), 1048576);
}

/* ---- SIGTERM while a worker is stuck -------------------------------- */

static bool is_mount_of_type(const char *path, const char *type)
{
	char dev[PATH_MAX], dir[PATH_MAX], fstype[64];
	bool found = false;
	FILE *f = fopen("/proc/self/mounts", "r");

	while (f && fscanf(f, "%4095s %4095s %63s %*[^\n]", dev, dir, fstype) == 3)
		if (!strcmp(dir, path) && !strcmp(fstype, type))
			found = true;
	if (f)
		fclose(f);
	return found;
}

/* kfuse_daemon serving backing's bytes as mnt/f; its pid, or -1. */
static pid_t start_kfuse(const char *backing, const char *mnt)
{
	const char *bin = getenv("KFUSE_BIN");
	pid_t parent = getpid(), pid;

	if (!bin || !*bin)
		bin = "./test/kfuse_daemon";
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		execl(bin, bin, backing, mnt, (char *)NULL);
		_exit(127);
	}
	for (int ms = 0; pid > 0 && ms < 10000; ms += 10) {
		if (is_mount_of_type(mnt, "fuse.kfuse"))
			return pid;
		sleep_ms(10);
	}
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return -1;
}

/* Reap pid within seconds; else kill it, then abort conn (its FUSE
 * connection, if a wait there holds it in the kernel). */
static bool reap(pid_t pid, int *status, unsigned conn)
{
	if (wait_pid_ms(pid, status, 10000))
		return true;
	kill(pid, SIGKILL);
	if (wait_pid_ms(pid, status, 5000))
		return false;
	if (conn)
		abort_connection(conn);
	if (!wait_pid_ms(pid, status, 10000))
		printf("# pid %d cannot be reaped\n", pid);
	return false;
}

static void test_sigterm_with_stuck_worker(void **state)
{
	struct test_mount m = { 0 };
	char backing[PATH_MAX], path[PATH_MAX];
	unsigned kfuse_conn, sfs_conn;
	pid_t kfuse, reader;
	struct stat st;
	int status;
	bool exited;
	long t0;

	(void)state;
	assert_int_equal(test_mount_prepare(&m, "sigterm"), 0);
	path_in(backing, m.base, "backing");
	write_file(backing, "stuck", 5);
	kfuse = start_kfuse(backing, m.src);
	assert_true(kfuse > 0);
	assert_int_equal(stat(m.src, &st), 0);
	kfuse_conn = minor(st.st_dev);
	if (test_mount_start(&m, "snapshot=off")) {
		kill(kfuse, SIGKILL);
		test_fusermount("-uz", m.src);
		fail_msg("cannot mount stablefs over a kfuse SRC");
	}
	sfs_conn = fuse_minor(&m);
	path_in(path, m.mnt, "f");
	assert_int_equal(access(path, F_OK), 0);
	/* Stop SRC's daemon: the next open through MNT blocks a worker. */
	assert_true(test_stop_threads(kfuse));
	reader = fork();
	if (reader == 0) {
		int fd = open(path, O_RDONLY);

		_exit(fd >= 0 ? 0 : 1);
	}
	sleep_ms(500);
	t0 = now_ms();
	assert_int_equal(kill(m.pid, SIGTERM), 0);
	exited = wait_pid_ms(m.pid, &status, 30000);
	printf("# stablefs after SIGTERM with a stuck worker: %s in %ld ms\n",
	       exited ? "exited" : "still running", now_ms() - t0);
	fflush(stdout);
	/* Clean up, never waiting without a bound: before the fix the daemon
	 * only dies once its connection is aborted. */
	if (!exited) {
		/* Whatever holds it, kfuse's connection is at the bottom. */
		abort_connection(kfuse_conn);
		reap(m.pid, &status, sfs_conn);
	}
	m.pid = 0;
	kill(kfuse, SIGCONT);
	test_fusermount("-uz", m.mnt);
	test_fusermount("-uz", m.src);
	kill(kfuse, SIGTERM);
	reap(kfuse, NULL, kfuse_conn);
	reap(reader, NULL, 0);
	m.mounted = false;
	test_mount_destroy(&m);
	assert_true(exited);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_proc_reopen_as_nobody, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cross_copy_file_range, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rdonly_trunc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rdonly_trunc_oob_ignore,
						setup_oob_ignore, teardown),
		cmocka_unit_test_setup_teardown(test_trusted_names_hidden, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_eviction_single_worker,
						setup_single, teardown),
		cmocka_unit_test_setup_teardown(test_open_without_largefile,
						setup_long_timeout, teardown),
		cmocka_unit_test_setup_teardown(test_kernel_open_ioctls, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lost_eviction_two_writers,
						setup_live, teardown),
		cmocka_unit_test(test_store_has_a_default_cap),
		cmocka_unit_test(test_sigterm_with_stuck_worker),
	};

	if (getenv("SFS_TEST_FILTER"))	/* e.g. 'test_kernel_open*' */
		cmocka_set_test_filter(getenv("SFS_TEST_FILTER"));
	if (geteuid() != 0)
		test_skip_all("needs root (allow_other, nobody, trusted.*)");
	test_require_fuse();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
