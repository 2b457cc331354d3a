/*
 * No path escapes SRC (G4 in doc/guarantees.md): symlinks inside SRC are
 * passed through as they are, never followed by the daemon itself; ".." at
 * the mount root stays in the caller's view; a directory swapped for a
 * symlink to an outside directory, while requests race with the swap, never
 * makes the daemon create, truncate or remove anything outside SRC.
 *
 * Who follows a symlink: for open(MNT/link), MNT/link/name and the like the
 * *kernel* reads the link through FUSE (READLINK) and resolves the target in
 * the caller's own view — an absolute target outside MNT is reached
 * directly, not through the daemon, exactly as on SRC itself. That is
 * expected. What must never happen is the daemon turning an operation on a
 * name inside SRC into an operation on something outside: these tests
 * watch that through ops that do not follow (lchown, utimensat
 * AT_SYMLINK_NOFOLLOW, l*xattr, link) and through fds/openat2 that forbid
 * the kernel to follow, so whatever lands outside SRC was the daemon's doing.
 *
 * Layout (base is a fresh mkdtemp; SRC and MNT have different parents so
 * "MNT/.." can tell them apart):
 *   base/mnt             MNT
 *   base/deep/src        SRC: out -> /etc, up -> ../.., abs -> base/outside/target,
 *                        outdir -> base/outdir, sub/, plain
 *   base/outside/target  a file outside SRC
 *   base/outdir/         an empty directory outside SRC
 *   base/raceout/keep    the race's outside directory and its sentinel
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <sys/wait.h>
#include <grp.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "mount_util.h"
#include "test_util.h"

#define RACE_SECONDS 3
#define MAX_NAMES 64

struct fixture {
	struct test_mount m;
	char deep[PATH_MAX];	/* base/deep: SRC's parent */
	char outside[PATH_MAX];	/* base/outside */
	char target[PATH_MAX];	/* base/outside/target */
	char outdir[PATH_MAX];	/* base/outdir */
	char raceout[PATH_MAX];	/* base/raceout */
};

/* The symlinks made in SRC: name and target (%B = base dir). */
static const struct {
	const char *name;
	const char *target;
} links[] = {
	{ "out", "/etc" },
	{ "up", "../.." },
	{ "abs", "%B/outside/target" },
	{ "outdir", "%B/outdir" },
};

/* ---- helpers ---------------------------------------------------------- */

static void link_target(const struct fixture *f, const char *tmpl, char *out)
{
	if (strncmp(tmpl, "%B", 2) == 0)
		path_in(out, f->m.base, tmpl + 3);
	else
		snprintf(out, PATH_MAX, "%s", tmpl);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, size - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
}

static void assert_same_inode(const struct stat *a, const struct stat *b)
{
	assert_int_equal(a->st_dev, b->st_dev);
	assert_int_equal(a->st_ino, b->st_ino);
}

/* Sorted names in a directory (including . and ..), returns the count. */
static int cmp_names(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int list_dir(const char *path, char names[][256], int max)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		assert_true(n < max);
		snprintf(names[n++], 256, "%s", e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, 256, cmp_names);
	return n;
}

/* Is there an entry in dir other than ., .. and allowed? Its name to out. */
static bool first_stranger(const char *dir, const char *allowed, char *out)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;

	assert_non_null(d);
	while (!found && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    strcmp(e->d_name, allowed)) {
			snprintf(out, PATH_MAX, "%s", e->d_name);
			found = true;
		}
	}
	closedir(d);
	return found;
}

static int openat2_nofollow(int dirfd, const char *path, int flags, mode_t mode,
			    unsigned long long resolve)
{
	struct open_how how = {
		.flags = (unsigned long long)flags,
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = resolve,
	};

	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* ---- fixture ---------------------------------------------------------- */

static int make_tree(struct fixture *f)
{
	char path[PATH_MAX], target[PATH_MAX];

	path_in(f->deep, f->m.base, "deep");
	path_in(f->outside, f->m.base, "outside");
	path_in(f->target, f->outside, "target");
	path_in(f->outdir, f->m.base, "outdir");
	path_in(f->raceout, f->m.base, "raceout");
	/* SRC moves below base/deep; base/src stays as an unused empty dir. */
	path_in(f->m.src, f->deep, "src");
	if (mkdir(f->deep, 0755) || mkdir(f->m.src, 0755) || mkdir(f->outside, 0755) ||
	    mkdir(f->outdir, 0755) || mkdir(f->raceout, 0755))
		return -1;
	if (write_file(f->target, "outside\n"))
		return -1;
	path_in(path, f->raceout, "keep");
	if (write_file(path, "keep\n"))
		return -1;
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		link_target(f, links[i].target, target);
		path_in(path, f->m.src, links[i].name);
		if (symlink(target, path))
			return -1;
	}
	path_in(path, f->m.src, "sub");
	if (mkdir(path, 0755))
		return -1;
	path_in(path, f->m.src, "plain");
	return write_file(path, "plain\n");
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	if (test_mount_prepare(&f->m, "escape") || make_tree(f) ||
	    test_mount_start(&f->m, NULL)) {
		test_mount_destroy(&f->m);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = test_mount_stop(&f->m);

	test_mount_destroy(&f->m);
	free(f);
	return rc;
}

/* ---- symlinks are passed through, not followed ------------------------ */

static void test_readlink_and_lstat(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		char mpath[PATH_MAX], spath[PATH_MAX], want[PATH_MAX];
		char got[PATH_MAX], raw[PATH_MAX];
		struct stat st;
		ssize_t n;

		link_target(f, links[i].target, want);
		path_in(mpath, f->m.mnt, links[i].name);
		path_in(spath, f->m.src, links[i].name);
		n = readlink(mpath, got, sizeof(got) - 1);
		assert_true(n >= 0);
		got[n] = '\0';
		n = readlink(spath, raw, sizeof(raw) - 1);
		assert_true(n >= 0);
		raw[n] = '\0';
		assert_string_equal(got, want);
		assert_string_equal(got, raw);
		assert_int_equal(lstat(mpath, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		assert_int_equal(st.st_size, (off_t)strlen(want));
	}
}

/* A symlink made through MNT stores its target string as given. */
static void test_symlink_made_through_mnt(void **state)
{
	struct fixture *f = *state;
	static const char *const targets[] = { "/etc/passwd", "../../..", "a/../../b" };
	char mpath[PATH_MAX], spath[PATH_MAX], got[PATH_MAX];
	struct stat st;
	ssize_t n;

	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		char name[16];

		snprintf(name, sizeof(name), "made%zu", i);
		path_in(mpath, f->m.mnt, name);
		path_in(spath, f->m.src, name);
		assert_int_equal(symlink(targets[i], mpath), 0);
		assert_int_equal(lstat(spath, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		n = readlink(spath, got, sizeof(got) - 1);
		assert_true(n >= 0);
		got[n] = '\0';
		assert_string_equal(got, targets[i]);
	}
}

static void test_open_follows_only_in_kernel(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], buf[64];
	struct stat st;
	int fd;

	path_in(path, f->m.mnt, "abs");
	/* O_NOFOLLOW: the link itself, ELOOP as on any filesystem. */
	errno = 0;
	assert_int_equal(open(path, O_RDONLY | O_NOFOLLOW), -1);
	assert_int_equal(errno, ELOOP);
	fd = open(path, O_PATH | O_NOFOLLOW);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	close(fd);
	/* Following is the kernel's, in our view: the outside file, as raw. */
	read_file(path, buf, sizeof(buf));
	assert_string_equal(buf, "outside\n");
}

static void test_xattr_on_link_not_target(void **state)
{
	struct fixture *f = *state;
	char mlink[PATH_MAX], slink[PATH_MAX], buf[64];
	char mlist[1024], slist[1024];
	ssize_t n, sn;
	int merr;

	path_in(mlink, f->m.mnt, "abs");
	path_in(slink, f->m.src, "abs");
	/* trusted.* is allowed on symlinks (for root); user.* is not. */
	if (lsetxattr(slink, "trusted.sfs", "link", 4, 0) != 0)
		skip();
	assert_int_equal(setxattr(f->target, "trusted.sfs", "target", 6, 0), 0);
	assert_int_equal(setxattr(f->target, "user.sfs", "target", 6, 0), 0);

	n = lgetxattr(mlink, "trusted.sfs", buf, sizeof(buf));
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "link", 4);
	/* getxattr follows: the kernel resolves the absolute target itself. */
	n = getxattr(mlink, "trusted.sfs", buf, sizeof(buf));
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "target", 6);
	/* user.* of the link: whatever the raw link says (no such xattr). */
	errno = 0;
	n = lgetxattr(mlink, "user.sfs", buf, sizeof(buf));
	merr = errno;
	sn = lgetxattr(slink, "user.sfs", buf, sizeof(buf));
	assert_int_equal(n, sn);
	assert_int_equal(merr, errno);

	assert_int_equal(lsetxattr(mlink, "trusted.new", "via-mnt", 7, 0), 0);
	n = lgetxattr(slink, "trusted.new", buf, sizeof(buf));
	assert_int_equal(n, 7);
	assert_memory_equal(buf, "via-mnt", 7);
	assert_int_equal(getxattr(f->target, "trusted.new", buf, sizeof(buf)), -1);
	assert_int_equal(errno, ENODATA);

	assert_int_equal(lremovexattr(mlink, "trusted.sfs"), 0);
	assert_int_equal(lgetxattr(slink, "trusted.sfs", buf, sizeof(buf)), -1);
	assert_int_equal(getxattr(f->target, "trusted.sfs", buf, sizeof(buf)), 6);

	n = llistxattr(mlink, mlist, sizeof(mlist));
	sn = llistxattr(slink, slist, sizeof(slist));
	assert_true(n >= 0);
	assert_int_equal(n, sn);
	assert_memory_equal(mlist, slist, (size_t)n);
}

static void test_lchown_utimens_on_link_not_target(void **state)
{
	struct fixture *f = *state;
	const struct timespec ts[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	char mlink[PATH_MAX], slink[PATH_MAX];
	struct stat before, st;

	path_in(mlink, f->m.mnt, "abs");
	path_in(slink, f->m.src, "abs");
	assert_int_equal(stat(f->target, &before), 0);

	assert_int_equal(lchown(mlink, 4321, 4321), 0);
	assert_int_equal(lstat(slink, &st), 0);
	assert_int_equal(st.st_uid, 4321);
	assert_int_equal(st.st_gid, 4321);
	assert_int_equal(stat(f->target, &st), 0);
	assert_int_equal(st.st_uid, before.st_uid);
	assert_int_equal(st.st_gid, before.st_gid);

	assert_int_equal(utimensat(AT_FDCWD, mlink, ts, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(lstat(slink, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	assert_int_equal(stat(f->target, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, before.st_mtim.tv_sec);
	assert_int_equal(st.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
}

/* link(2) without AT_SYMLINK_FOLLOW links the symlink, not its target. */
static void test_hardlink_links_the_link(void **state)
{
	struct fixture *f = *state;
	char mlink[PATH_MAX], mhard[PATH_MAX], slink[PATH_MAX], shard[PATH_MAX];
	struct stat a, b;

	path_in(mlink, f->m.mnt, "abs");
	path_in(mhard, f->m.mnt, "abs-hard");
	path_in(slink, f->m.src, "abs");
	path_in(shard, f->m.src, "abs-hard");
	assert_int_equal(link(mlink, mhard), 0);
	assert_int_equal(lstat(shard, &b), 0);
	assert_true(S_ISLNK(b.st_mode));
	assert_int_equal(lstat(slink, &a), 0);
	assert_same_inode(&a, &b);
	assert_int_equal(stat(f->target, &a), 0);
	assert_int_equal(a.st_nlink, 1);
}

/*
 * MNT/outdir/newfile with outdir -> base/outdir: the kernel reads the link
 * and resolves base/outdir itself, in our view, so the file lands in the
 * outside directory — exactly as creating SRC/outdir/newfile would. The
 * daemon only answered READLINK. openat2 shows the following is the
 * kernel's: forbidden to follow, it refuses (ELOOP, EXDEV).
 */
static void test_create_through_dir_link(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], spath[PATH_MAX];
	struct stat st;
	int mntfd, fd;

	path_in(path, f->m.mnt, "outdir/newfile");
	assert_int_equal(write_file(path, "new\n"), 0);
	path_in(path, f->outdir, "newfile");
	assert_int_equal(stat(path, &st), 0);
	path_in(spath, f->m.src, "newfile");
	assert_int_equal(lstat(spath, &st), -1);
	path_in(spath, f->m.src, "outdir");
	assert_int_equal(lstat(spath, &st), 0);
	assert_true(S_ISLNK(st.st_mode));

	mntfd = open(f->m.mnt, O_DIRECTORY | O_RDONLY);
	assert_true(mntfd >= 0);
	fd = openat2_nofollow(mntfd, "outdir/other", O_CREAT | O_WRONLY, 0644,
			      RESOLVE_NO_SYMLINKS);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ELOOP);
	fd = openat2_nofollow(mntfd, "outdir/other", O_CREAT | O_WRONLY, 0644,
			      RESOLVE_BENEATH);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EXDEV);
	close(mntfd);
	path_in(path, f->outdir, "other");
	assert_int_equal(stat(path, &st), -1);
}

/* ---- ".." at the mount root ------------------------------------------- */

static void test_dotdot_at_root(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], mnames[MAX_NAMES][256], snames[MAX_NAMES][256];
	struct stat base, deep, mnt, st;
	int mntfd, fd, nm, ns;

	assert_int_equal(stat(f->m.base, &base), 0);
	assert_int_equal(stat(f->deep, &deep), 0);
	assert_int_equal(stat(f->m.mnt, &mnt), 0);

	/* MNT/.. is MNT's parent (base), not SRC's (base/deep). */
	path_in(path, f->m.mnt, "..");
	assert_int_equal(stat(path, &st), 0);
	assert_same_inode(&st, &base);
	assert_false(st.st_ino == deep.st_ino && st.st_dev == deep.st_dev);
	path_in(path, f->m.mnt, "sub/../..");
	assert_int_equal(stat(path, &st), 0);
	assert_same_inode(&st, &base);
	path_in(path, f->m.mnt, ".");
	assert_int_equal(stat(path, &st), 0);
	assert_same_inode(&st, &mnt);

	/* MNT/../mnt is the mount again. */
	path_in(path, f->m.mnt, "../mnt");
	fd = open(path, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_same_inode(&st, &mnt);
	close(fd);

	mntfd = open(f->m.mnt, O_RDONLY | O_DIRECTORY);
	assert_true(mntfd >= 0);
	fd = openat(mntfd, "..", O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_same_inode(&st, &base);
	close(fd);
	close(mntfd);

	/* The root lists . and .. and exactly SRC's entries. */
	nm = list_dir(f->m.mnt, mnames, MAX_NAMES);
	ns = list_dir(f->m.src, snames, MAX_NAMES);
	assert_int_equal(nm, ns);
	for (int i = 0; i < nm; i++)
		assert_string_equal(mnames[i], snames[i]);
	assert_string_equal(mnames[0], ".");
	assert_string_equal(mnames[1], "..");
}

/* ---- racing a directory against a symlink to outside ------------------ */

struct race {
	const struct fixture *f;
	int srcfd, mntfd;
	int dirfd;		/* MNT/d, opened while it was the directory */
	atomic_bool stop;
	atomic_long swaps, ops_ok, ops_failed;
};

/* In SRC directly: "d" (a directory) and "d_alt" (-> raceout) swap. */
static void *swapper(void *arg)
{
	struct race *r = arg;

	while (!atomic_load(&r->stop)) {
		if (renameat2(r->srcfd, "d", r->srcfd, "d_alt", RENAME_EXCHANGE) == 0)
			atomic_fetch_add(&r->swaps, 1);
	}
	return NULL;
}

static void count(struct race *r, int rc)
{
	if (rc >= 0)
		atomic_fetch_add(&r->ops_ok, 1);
	else
		atomic_fetch_add(&r->ops_failed, 1);
}

/*
 * Through a directory fd of MNT/d: create, mkdir, mknod, symlink, link,
 * rename, look up, truncate and unlink "keep". The kernel never follows
 * here (the fd names the directory's FUSE inode; the names are single
 * components), so only the daemon could reach raceout — e.g. by resolving
 * the directory's path "d" in SRC again, where it may now be the symlink.
 */
static void dirfd_round(struct race *r, int dfd, long i)
{
	char a[64], b[64];
	int fd;

	snprintf(a, sizeof(a), "w%ld", i);
	snprintf(b, sizeof(b), "r%ld", i);
	fd = openat(dfd, a, O_CREAT | O_EXCL | O_WRONLY, 0644);
	count(r, fd);
	if (fd >= 0)
		close(fd);
	count(r, renameat(dfd, a, dfd, b));
	snprintf(a, sizeof(a), "m%ld", i);
	count(r, mkdirat(dfd, a, 0755));
	snprintf(a, sizeof(a), "n%ld", i);
	count(r, mknodat(dfd, a, S_IFIFO | 0644, 0));
	snprintf(a, sizeof(a), "s%ld", i);
	count(r, symlinkat("x", dfd, a));
	snprintf(a, sizeof(a), "h%ld", i);
	count(r, linkat(r->mntfd, "plain", dfd, a, 0));
	fd = openat(dfd, "keep", O_WRONLY | O_TRUNC | O_NOFOLLOW);
	count(r, fd);
	if (fd >= 0)
		close(fd);
	count(r, unlinkat(dfd, "keep", 0));
}

/*
 * Fresh lookups of "d" from MNT, with openat2 forbidding the kernel to
 * follow; when "d" is a directory at that moment, a round through it.
 */
static void path_round(struct race *r, long i)
{
	char a[64];
	int fd;

	fd = openat2_nofollow(r->mntfd, "d", O_RDONLY | O_DIRECTORY, 0, RESOLVE_NO_SYMLINKS);
	count(r, fd);
	if (fd >= 0) {
		dirfd_round(r, fd, -1 - i);	/* names apart from worker_dirfd */
		close(fd);
	}

	snprintf(a, sizeof(a), "d/p%ld", i);
	fd = openat2_nofollow(r->mntfd, a, O_CREAT | O_EXCL | O_WRONLY, 0644,
			      RESOLVE_NO_SYMLINKS);
	count(r, fd);
	if (fd >= 0)
		close(fd);
	fd = openat2_nofollow(r->mntfd, "d/keep", O_WRONLY | O_TRUNC, 0, RESOLVE_NO_SYMLINKS);
	count(r, fd);
	if (fd >= 0)
		close(fd);
	fd = openat2_nofollow(r->mntfd, "d/keep", O_PATH, 0, RESOLVE_NO_SYMLINKS);
	count(r, fd);
	if (fd >= 0)
		close(fd);
}

/* On a directory fd opened before the race: the daemon's own inode. */
static void *worker_dirfd(void *arg)
{
	struct race *r = arg;

	for (long i = 0; !atomic_load(&r->stop); i++)
		dirfd_round(r, r->dirfd, i);
	return NULL;
}

static void *worker_path(void *arg)
{
	struct race *r = arg;

	for (long i = 0; !atomic_load(&r->stop); i++)
		path_round(r, i);
	return NULL;
}

static void test_swap_race_stays_inside(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], buf[64];
	struct race r = { .f = f };
	pthread_t t[3];

	path_in(path, f->m.src, "d");
	assert_int_equal(mkdir(path, 0755), 0);
	path_in(path, f->m.src, "d_alt");
	assert_int_equal(symlink(f->raceout, path), 0);
	r.srcfd = open(f->m.src, O_RDONLY | O_DIRECTORY);
	r.mntfd = open(f->m.mnt, O_RDONLY | O_DIRECTORY);
	assert_true(r.srcfd >= 0 && r.mntfd >= 0);
	r.dirfd = openat(r.mntfd, "d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	assert_true(r.dirfd >= 0);

	assert_int_equal(pthread_create(&t[0], NULL, swapper, &r), 0);
	assert_int_equal(pthread_create(&t[1], NULL, worker_dirfd, &r), 0);
	assert_int_equal(pthread_create(&t[2], NULL, worker_path, &r), 0);
	sleep(RACE_SECONDS);
	atomic_store(&r.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	close(r.dirfd);
	close(r.srcfd);
	close(r.mntfd);
	print_message("# swaps %ld, ops ok %ld, failed %ld\n", atomic_load(&r.swaps),
		      atomic_load(&r.ops_ok), atomic_load(&r.ops_failed));

	/* raceout holds exactly its sentinel, untouched. */
	if (first_stranger(f->raceout, "keep", path))
		fail_msg("the daemon created %s/%s outside SRC", f->raceout, path);
	path_in(path, f->raceout, "keep");
	if (access(path, F_OK) != 0)
		fail_msg("the daemon removed %s outside SRC", path);
	read_file(path, buf, sizeof(buf));
	if (strcmp(buf, "keep\n") != 0)
		fail_msg("the daemon truncated %s outside SRC", path);
	assert_true(atomic_load(&r.swaps) > 0);
	assert_true(atomic_load(&r.ops_ok) > 0);
}

/*
 * Without -o allow_other (this fixture's mount) the kernel refuses every
 * other user at the mount itself, before any request reaches the daemon:
 * EACCES on stat, open and readdir of the root and of a file below it.
 */
static void test_other_users_refused_without_allow_other(void **state)
{
	struct fixture *f = *state;
	char file[PATH_MAX + 16];
	pid_t pid;
	int status;

	snprintf(file, sizeof(file), "%s/inside", f->m.mnt);
	close(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stat st;
		int bad = 0;

		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(2);
		if (stat(f->m.mnt, &st) == 0 || errno != EACCES)
			bad |= 1;
		if (open(file, O_RDONLY) >= 0 || errno != EACCES)
			bad |= 2;
		if (opendir(f->m.mnt) != NULL || errno != EACCES)
			bad |= 4;
		_exit(bad ? 10 + bad : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("user nobody was not refused with EACCES (code %d: 1 stat, "
			 "2 open, 4 opendir)", WEXITSTATUS(status) - 10);
	unlink(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_readlink_and_lstat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_made_through_mnt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_follows_only_in_kernel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xattr_on_link_not_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lchown_utimens_on_link_not_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hardlink_links_the_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_through_dir_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dotdot_at_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap_race_stays_inside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_users_refused_without_allow_other,
						setup, teardown),
	};

	test_require_fuse();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
