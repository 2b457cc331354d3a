/*
 * Point-in-time tree views (G7; the scenarios behind S10), on real mounts.
 *
 * A view is taken with SFS_IOC_VIEW_CREATE on an fd of MNT's root
 * (include/sfs/view_ioctl.h) and read at MNT/.snapshots/NAME. Most tests
 * build the same small tree through MNT (files with xattrs, a symlink, two
 * hard links, nested and empty directories, a 0600 file), record it (stat,
 * bytes, symlink targets, xattrs, which names share an inode), take a view,
 * change the tree through MNT, and compare the view with the record:
 *
 *   "change ..." one test per change through MNT after the instant (data:
 *      pwrite, append, truncate, extend, punch, zero range, O_TRUNC,
 *      copy_file_range into; names: create, unlink, rename, rename over,
 *      exchange, mkdir, rmdir, a whole subtree removed or renamed, link,
 *      unlink of one of two links, symlink, symlink replaced, mkfifo;
 *      attributes: chmod, chown, utimensat, setxattr, removexattr). The
 *      view must equal the record; the live tree must differ from it (or
 *      the test proves nothing).
 *   EROFS: every modification of anything in a view fails with EROFS and
 *      changes neither the view nor the live tree.
 *   read paths: read, splice, sendfile, mmap (shared and private),
 *      copy_file_range of a view file rewritten through MNT give the
 *      instant's bytes.
 *   readdir across changes: a view's directory listed in small steps while
 *      the live one is emptied, refilled and renamed lists the instant's
 *      names, each once.
 *   Nothing captured before a change: an unchanged file reads the live
 *      bytes and the view's "captures" stay 0; they grow once per object
 *      changed, not per change; "bytes_preserved" follow the change's size.
 *   .snapshots: never in readdir(MNT); stat and readdir of it list the views;
 *      -o snapdir=NAME moves it; SRC gains no entry; an entry of that name
 *      in SRC's root is hidden (MNT shows the views there).
 *   list and delete: the JSON of user.stablefs.views, epochs, EEXIST,
 *      ENOENT; a deleted view is gone for new lookups at once.
 *   two views: independent instants, deleting one leaves the other.
 *   a file open in a view keeps its bytes after the view is deleted; the
 *      mount's bytes_preserved fall to 0 once it is closed.
 *   names: EINVAL for "", "/", "a/b", ".", "..", an unterminated name; 255
 *      bytes is fine; odd characters are escaped in the JSON.
 *   permissions (allow_other, user nobody): creating or deleting a view is
 *      EPERM; modes in the view are the instant's (a 0600 file is EACCES to
 *      nobody even if made 0644 since, and the other way round).
 *   out of band: SRC changed directly after the instant. Lenient, as G7
 *      says for step 1: the view reads the instant's bytes or fails with
 *      EIO, never the new bytes or a mix; the same for a directory's entries
 *      and a file's mode. Once on a plain directory (oob=detect), once on an
 *      ext4 loop SRC with -o oob=preserve.
 *
 * Needs root (allow_other, nobody, loop devices) and /dev/fuse.
 * SFS_TEST_FILTER selects tests by name (cmocka's glob).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "sfs/view_ioctl.h"
#include "mount_util.h"
#include "test_util.h"

#define KiB 1024L
#define MiB (1024L * KiB)
#define PAGE 4096L
#define SNAPDIR ".snapshots"
#define NOBODY 65534
#define DATA_SIZE (256 * KiB + 123)
#define MAX_ENTRIES 64
#define MAX_NAMES 64

/* ------------------------------------------------------------------ */
/* Fixtures                                                           */
/* ------------------------------------------------------------------ */

/* What a test runs on, and for the "change" tests, the change. */
struct vcase {
	const char *name;
	const char *opts;		/* mount options, or NULL */
	void (*change)(const char *mnt);/* through MNT, after the instant */
	bool loop_ext4;			/* SRC on a fresh ext4 loop device */
};

struct fixture {
	const struct vcase *tc;
	struct test_mount m;
	const char *snapdir;		/* the views' directory in MNT */
	int fd;				/* a test's open file, or -1 */
	void *map;
	size_t map_len;
};

static int setup(void **state)
{
	const struct vcase *tc = *state;
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f)
		return -1;
	f->tc = tc;
	f->fd = -1;
	f->snapdir = SNAPDIR;
	if (tc->opts && !strncmp(tc->opts, "snapdir=", 8))
		f->snapdir = tc->opts + 8;
	if (tc->loop_ext4)
		return test_loop_setup(&f->m, "views", "mkfs.ext4 -q", 512, true,
				       tc->opts);
	/* cmocka runs no teardown after a failed setup: clean up here. */
	if (test_mount_prepare(&f->m, "views") ||
	    test_mount_start(&f->m, tc->opts)) {
		test_mount_destroy(&f->m);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	if (f->map)
		munmap(f->map, f->map_len);
	close_fd(&f->fd);
	if (test_mount_finish(&f->m))
		rc = -1;
	free(f);
	*state = NULL;
	return rc;
}

/* ------------------------------------------------------------------ */
/* The control interface                                              */
/* ------------------------------------------------------------------ */

/* SFS_IOC_VIEW_CREATE/DELETE with v on MNT's root: 0 or the errno. */
static int view_ioctl_raw(const char *mnt, unsigned long cmd,
			  const struct sfs_ioc_view *v)
{
	int fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return errno;
	if (ioctl(fd, cmd, v))
		err = errno;
	close(fd);
	return err;
}

static int view_ioctl(const char *mnt, unsigned long cmd, const char *name)
{
	struct sfs_ioc_view v;

	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "%s", name);
	return view_ioctl_raw(mnt, cmd, &v);
}

static const char *cmd_name(unsigned long cmd)
{
	return cmd == SFS_IOC_VIEW_CREATE ? "SFS_IOC_VIEW_CREATE" :
					    "SFS_IOC_VIEW_DELETE";
}

/* The ioctl must succeed; says which errno it gave otherwise. */
static void view_ctl_ok(const char *mnt, unsigned long cmd, const char *name)
{
	int err = view_ioctl(mnt, cmd, name);

	if (err)
		fail_msg("%s \"%s\" on %s: %s%s", cmd_name(cmd), name, mnt,
			 strerror(err), err == ENOTTY ?
			 " (this daemon has no tree views)" : "");
}

static void take_view(struct fixture *f, const char *name)
{
	view_ctl_ok(f->m.mnt, SFS_IOC_VIEW_CREATE, name);
}

static void drop_view(struct fixture *f, const char *name)
{
	view_ctl_ok(f->m.mnt, SFS_IOC_VIEW_DELETE, name);
}

/* The ioctl must fail with want. */
static void view_ctl_fails(const char *mnt, unsigned long cmd,
			   const char *name, int want, const char *why)
{
	int err = view_ioctl(mnt, cmd, name);

	if (err != want)
		fail_msg("%s \"%s\" (%s): %s, expected %s", cmd_name(cmd), name,
			 why, err ? strerror(err) : "success", strerror(want));
}

/* MNT/<snapdir>/name[/rel] into out[PATH_MAX]. */
static void view_path(const struct fixture *f, const char *name,
		      const char *rel, char *out)
{
	int n = snprintf(out, PATH_MAX, "%s/%s/%s%s%s", f->m.mnt, f->snapdir,
			 name, rel ? "/" : "", rel ? rel : "");

	if (n >= PATH_MAX)
		fail_msg("path too long");
}

/* The JSON of SFS_XATTR_VIEWS on MNT (malloc'd, NUL-terminated). */
static char *views_json(const char *mnt)
{
	ssize_t n = getxattr(mnt, SFS_XATTR_VIEWS, NULL, 0);
	char *buf;

	if (n < 0)
		fail_msg("getxattr(%s, %s): %s", mnt, SFS_XATTR_VIEWS,
			 strerror(errno));
	buf = malloc((size_t)n + 64);
	assert_non_null(buf);
	n = getxattr(mnt, SFS_XATTR_VIEWS, buf, (size_t)n + 63);
	if (n < 0)
		fail_msg("getxattr(%s, %s): %s", mnt, SFS_XATTR_VIEWS,
			 strerror(errno));
	buf[n] = '\0';
	return buf;
}

/* How many views the JSON lists. */
static int views_listed(const char *json)
{
	int n = 0;

	for (const char *p = json; (p = strstr(p, "\"name\":\"")); p++)
		n++;
	return n;
}

/*
 * The JSON object of the view whose name appears in the JSON as jname
 * (escaped as JSON escapes it), copied into out; false if not listed.
 */
static bool view_object(const char *json, const char *jname, char *out,
			size_t cap)
{
	char key[2 * SFS_VIEW_NAME_MAX + 16];
	const char *p, *start, *end;

	snprintf(key, sizeof(key), "\"name\":\"%s\"", jname);
	p = strstr(json, key);
	if (!p)
		return false;
	for (start = p; start > json && *start != '{'; start--)
		;
	end = strchr(p, '}');
	if (!end || (size_t)(end - start + 2) > cap)
		fail_msg("malformed %s: %s", SFS_XATTR_VIEWS, json);
	memcpy(out, start, (size_t)(end - start + 1));
	out[end - start + 1] = '\0';
	return true;
}

/* A number field of view name in the mount's JSON (fails if missing). */
static long long view_value(const char *mnt, const char *name,
			    const char *field)
{
	char *json = views_json(mnt), obj[1024];
	long long v;

	if (!view_object(json, name, obj, sizeof(obj)))
		fail_msg("view \"%s\" is not listed in %s: %s", name,
			 SFS_XATTR_VIEWS, json);
	v = stats_value(obj, field);
	if (v < 0)
		fail_msg("view \"%s\" has no \"%s\": %s", name, field, obj);
	free(json);
	return v;
}

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

static void write_file(const char *dir, const char *rel, const void *buf,
		       size_t len, mode_t mode)
{
	char path[PATH_MAX];
	int fd;

	path_in(path, dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		fail_msg("create %s: %s", path, strerror(errno));
	assert_int_equal(write_all(fd, buf, len), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

/* The pattern (fresh: new_byte()s) of len bytes, malloc'd. */
static unsigned char *pattern(long len, bool fresh)
{
	unsigned char *buf = malloc((size_t)len + 1);

	assert_non_null(buf);
	fill_pattern(buf, 0, len, fresh);
	return buf;
}

/* read() from fd's offset to EOF, at most cap bytes; -1 with errno. */
static long read_to_eof(int fd, unsigned char *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (long)got;
}

/* The whole file at path; -1 with errno (open or read). */
static long read_path(const char *path, unsigned char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long n;
	int err;

	if (fd < 0)
		return -1;
	n = read_to_eof(fd, buf, cap);
	err = errno;
	close(fd);
	errno = err;
	return n;
}

static long first_diff(const unsigned char *a, const unsigned char *b, long len)
{
	for (long i = 0; i < len; i++)
		if (a[i] != b[i])
			return i;
	return -1;
}

static void assert_bytes(const unsigned char *got, long got_len,
			 const unsigned char *want, long want_len,
			 const char *what)
{
	long d;

	if (got_len < 0)
		fail_msg("%s: %s", what, strerror(errno));
	if (got_len != want_len)
		fail_msg("%s: %ld bytes, expected %ld", what, got_len, want_len);
	d = first_diff(got, want, want_len);
	if (d >= 0)
		fail_msg("%s: byte %ld is 0x%02x, expected 0x%02x", what, d,
			 got[d], want[d]);
}

/* The file at path must hold exactly want. */
static void assert_file(const char *path, const unsigned char *want,
			long want_len)
{
	unsigned char *got = malloc((size_t)want_len + PAGE);
	long n;

	assert_non_null(got);
	n = read_path(path, got, (size_t)want_len + PAGE);
	assert_bytes(got, n, want, want_len, path);
	free(got);
}

/* ------------------------------------------------------------------ */
/* A tree's state: what a view must reproduce                         */
/* ------------------------------------------------------------------ */

struct entry {
	char rel[96];		/* "." for the root, "dir/sub/b" */
	int err;		/* errno of lstat, read, readlink, xattrs, listing */
	const char *failed;	/* ...which of them */
	struct stat st;
	XXH128_hash_t data;	/* regular files: their bytes */
	char target[96];	/* symlinks */
	char xattrs[512];	/* "name=xxh64 " of each, sorted by name */
};

struct tree {
	int n;
	struct entry e[MAX_ENTRIES];
};

static void note_err(struct entry *e, const char *what)
{
	if (!e->err) {
		e->err = errno;
		e->failed = what;
	}
}

static void hash_file(const char *path, struct entry *e)
{
	XXH3_state_t *s = XXH3_createState();
	unsigned char buf[64 * KiB];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_non_null(s);
	XXH3_128bits_reset(s);
	if (fd < 0) {
		note_err(e, "open");
		XXH3_freeState(s);
		return;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		XXH3_128bits_update(s, buf, (size_t)n);
	if (n < 0)
		note_err(e, "read");
	e->data = XXH3_128bits_digest(s);
	XXH3_freeState(s);
	close(fd);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void read_xattrs(const char *path, struct entry *e)
{
	char names[1024], value[1024];
	char sorted[MAX_NAMES][64];
	ssize_t len = llistxattr(path, names, sizeof(names));
	int n = 0;

	if (len < 0) {
		note_err(e, "llistxattr");
		return;
	}
	for (char *p = names; p < names + len; p += strlen(p) + 1)
		if (n < MAX_NAMES &&
		    snprintf(sorted[n], sizeof(sorted[0]), "%s", p) < (int)sizeof(sorted[0]))
			n++;
	qsort(sorted, (size_t)n, sizeof(sorted[0]), cmp_names);
	for (int i = 0; i < n; i++) {
		ssize_t v = lgetxattr(path, sorted[i], value, sizeof(value));
		size_t used = strlen(e->xattrs);

		if (v < 0) {
			note_err(e, "lgetxattr");
			return;
		}
		snprintf(e->xattrs + used, sizeof(e->xattrs) - used, "%s=%016llx ",
			 sorted[i], (unsigned long long)XXH3_64bits(value, (size_t)v));
	}
}

/* The names in dir (without "." and ".."), sorted; their count or -1. */
static int list_dir(const char *dir, char names[][64], int cap)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap)
			fail_msg("more than %d entries in %s", cap, dir);
		if (snprintf(names[n++], 64, "%s", de->d_name) >= 64)
			fail_msg("a name longer than 63 bytes in %s", dir);
		errno = 0;
	}
	if (errno) {
		int err = errno;

		closedir(d);
		errno = err;
		return -1;
	}
	closedir(d);
	qsort(names, (size_t)n, 64, cmp_names);
	return n;
}

/* Record root/rel and, for a directory, everything under it. */
static void walk(struct tree *t, const char *root, const char *rel,
		 bool skip_snapdir)
{
	char path[PATH_MAX], names[MAX_NAMES][64];
	struct entry *e;
	int n;

	if (t->n == MAX_ENTRIES)
		fail_msg("more than %d entries under %s", MAX_ENTRIES, root);
	e = &t->e[t->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->rel, sizeof(e->rel), "%s", rel);
	if (strcmp(rel, "."))
		path_in(path, root, rel);
	else
		snprintf(path, sizeof(path), "%s", root);
	if (lstat(path, &e->st)) {
		note_err(e, "lstat");
		return;
	}
	if (S_ISREG(e->st.st_mode))
		hash_file(path, e);
	if (S_ISLNK(e->st.st_mode) &&
	    readlink(path, e->target, sizeof(e->target) - 1) < 0)
		note_err(e, "readlink");
	read_xattrs(path, e);
	if (!S_ISDIR(e->st.st_mode))
		return;
	n = list_dir(path, names, MAX_NAMES);
	if (n < 0) {
		note_err(e, "readdir");
		return;
	}
	for (int i = 0; i < n; i++) {
		char child[sizeof(e->rel) + 64];

		if (skip_snapdir && !strcmp(rel, ".") && !strcmp(names[i], SNAPDIR))
			continue;
		if (snprintf(child, sizeof(child), "%s%s%s",
			     strcmp(rel, ".") ? rel : "", strcmp(rel, ".") ? "/" : "",
			     names[i]) >= (int)sizeof(e->rel))
			fail_msg("path too long: %s/%s", rel, names[i]);
		walk(t, root, child, skip_snapdir);
	}
}

static struct tree *record(const char *root, bool skip_snapdir)
{
	struct tree *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	walk(t, root, ".", skip_snapdir);
	return t;
}

static const struct entry *find(const struct tree *t, const char *rel)
{
	for (int i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].rel, rel))
			return &t->e[i];
	return NULL;
}

struct report {
	char text[4096];
	int n;
};

static void addf(struct report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void addf(struct report *r, const char *fmt, ...)
{
	size_t used = strlen(r->text);
	va_list ap;

	r->n++;
	if (used + 2 >= sizeof(r->text))
		return;
	va_start(ap, fmt);
	vsnprintf(r->text + used, sizeof(r->text) - used, fmt, ap);
	va_end(ap);
	used = strlen(r->text);
	snprintf(r->text + used, sizeof(r->text) - used, "; ");
}

static bool same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* How entry g differs from w (same rel). */
static void diff_entry(const struct entry *w, const struct entry *g,
		       struct report *r)
{
	const char *p = w->rel;

	if (w->err != g->err) {
		addf(r, "%s: %s %s, expected %s %s", p, g->err ? g->failed : "all ok",
		     g->err ? strerror(g->err) : "", w->err ? w->failed : "all ok",
		     w->err ? strerror(w->err) : "");
		return;
	}
	if (w->st.st_mode != g->st.st_mode)
		addf(r, "%s: mode 0%o, expected 0%o", p, g->st.st_mode, w->st.st_mode);
	if (w->st.st_uid != g->st.st_uid || w->st.st_gid != g->st.st_gid)
		addf(r, "%s: owner %u:%u, expected %u:%u", p, g->st.st_uid,
		     g->st.st_gid, w->st.st_uid, w->st.st_gid);
	if (!S_ISDIR(w->st.st_mode) && w->st.st_size != g->st.st_size)
		addf(r, "%s: size %lld, expected %lld", p, (long long)g->st.st_size,
		     (long long)w->st.st_size);
	if (w->st.st_nlink != g->st.st_nlink)
		addf(r, "%s: nlink %lu, expected %lu", p,
		     (unsigned long)g->st.st_nlink, (unsigned long)w->st.st_nlink);
	if (!same_time(w->st.st_mtim, g->st.st_mtim))
		addf(r, "%s: mtime %lld.%09ld, expected %lld.%09ld", p,
		     (long long)g->st.st_mtim.tv_sec, g->st.st_mtim.tv_nsec,
		     (long long)w->st.st_mtim.tv_sec, w->st.st_mtim.tv_nsec);
	if (!same_time(w->st.st_ctim, g->st.st_ctim))
		addf(r, "%s: ctime %lld.%09ld, expected %lld.%09ld", p,
		     (long long)g->st.st_ctim.tv_sec, g->st.st_ctim.tv_nsec,
		     (long long)w->st.st_ctim.tv_sec, w->st.st_ctim.tv_nsec);
	if (S_ISREG(w->st.st_mode) && !XXH128_isEqual(w->data, g->data))
		addf(r, "%s: different bytes", p);
	if (strcmp(w->target, g->target))
		addf(r, "%s: symlink to \"%s\", expected \"%s\"", p, g->target,
		     w->target);
	if (strcmp(w->xattrs, g->xattrs))
		addf(r, "%s: xattrs {%s}, expected {%s}", p, g->xattrs, w->xattrs);
}

/* Which non-directories share an inode must be the same in both. */
static void diff_links(const struct tree *want, const struct tree *got,
		       struct report *r)
{
	for (int i = 0; i < want->n; i++) {
		const struct entry *wi = &want->e[i], *gi = find(got, wi->rel);

		if (!gi || S_ISDIR(wi->st.st_mode) || wi->err || gi->err)
			continue;
		for (int j = i + 1; j < want->n; j++) {
			const struct entry *wj = &want->e[j], *gj = find(got, wj->rel);
			bool w_same, g_same;

			if (!gj || S_ISDIR(wj->st.st_mode) || wj->err || gj->err)
				continue;
			w_same = wi->st.st_ino == wj->st.st_ino;
			g_same = gi->st.st_ino == gj->st.st_ino;
			if (w_same != g_same)
				addf(r, "%s and %s: %s inode, expected %s", wi->rel,
				     wj->rel, g_same ? "one" : "different",
				     w_same ? "one" : "different");
		}
	}
}

static void diff_trees(const struct tree *want, const struct tree *got,
		       struct report *r)
{
	for (int i = 0; i < want->n; i++) {
		const struct entry *g = find(got, want->e[i].rel);

		if (!g)
			addf(r, "%s: missing", want->e[i].rel);
		else
			diff_entry(&want->e[i], g, r);
	}
	for (int i = 0; i < got->n; i++)
		if (!find(want, got->e[i].rel))
			addf(r, "%s: should not exist", got->e[i].rel);
	diff_links(want, got, r);
}

/* The tree at root must be exactly want (what is "what" in messages). */
static void assert_tree(const struct tree *want, const char *root,
			bool skip_snapdir, const char *what)
{
	struct tree *got = record(root, skip_snapdir);
	struct report r = { .n = 0 };

	diff_trees(want, got, &r);
	free(got);
	if (r.n)
		fail_msg("%s (%s) differs from the instant in %d ways: %s", what,
			 root, r.n, r.text);
}

/* ------------------------------------------------------------------ */
/* The test tree, built through MNT                                   */
/* ------------------------------------------------------------------ */

static void set_xattr(const char *dir, const char *rel, const char *name,
		      const char *value)
{
	char path[PATH_MAX];

	path_in(path, dir, rel);
	if (lsetxattr(path, name, value, strlen(value), 0))
		fail_msg("setxattr %s %s: %s", path, name, strerror(errno));
}

static void make_dir(const char *dir, const char *rel, mode_t mode)
{
	char path[PATH_MAX];

	path_in(path, dir, rel);
	if (mkdir(path, mode))
		fail_msg("mkdir %s: %s", path, strerror(errno));
}

/*
 *   data        DATA_SIZE bytes of the pattern, user.k1, user.k2
 *   small       "small file\n"
 *   secret      0600
 *   link     -> data
 *   hard1       one inode with dir/hard2
 *   dir/        user.d; dir/a, dir/hard2, dir/sub/b (8 KiB)
 *   empty/
 */
static void build_tree(const char *mnt)
{
	unsigned char *data = pattern(DATA_SIZE, false);
	char from[PATH_MAX], to[PATH_MAX];

	write_file(mnt, "data", data, DATA_SIZE, 0644);
	set_xattr(mnt, "data", "user.k1", "one");
	set_xattr(mnt, "data", "user.k2", "two");
	write_file(mnt, "small", "small file\n", 11, 0644);
	write_file(mnt, "secret", "secret\n", 7, 0600);
	path_in(to, mnt, "link");
	assert_int_equal(symlink("data", to), 0);
	make_dir(mnt, "dir", 0755);
	set_xattr(mnt, "dir", "user.d", "a directory");
	write_file(mnt, "dir/a", "a\n", 2, 0644);
	write_file(mnt, "hard1", "hard\n", 5, 0640);
	path_in(from, mnt, "hard1");
	path_in(to, mnt, "dir/hard2");
	assert_int_equal(link(from, to), 0);
	make_dir(mnt, "dir/sub", 0750);
	write_file(mnt, "dir/sub/b", data + 1000, 8 * KiB, 0644);
	make_dir(mnt, "empty", 0700);
	free(data);
}

/* ------------------------------------------------------------------ */
/* Changes through MNT after the instant                              */
/* ------------------------------------------------------------------ */

/* open() under mnt, or a test failure. */
static int open_in(const char *mnt, const char *rel, int flags)
{
	char path[PATH_MAX];
	int fd;

	path_in(path, mnt, rel);
	fd = open(path, flags | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	return fd;
}

/* Run a path call under mnt that must succeed. */
#define MUST(call, what) \
	do { \
		if ((call) != 0) \
			fail_msg("%s: %s", what, strerror(errno)); \
	} while (0)

static void ch_pwrite(const char *mnt)
{
	int fd = open_in(mnt, "data", O_WRONLY);

	assert_int_equal(pwrite_all(fd, "changed", 7, 100 * KiB + 5), 0);
	close(fd);
}

static void ch_append(const char *mnt)
{
	int fd = open_in(mnt, "data", O_WRONLY | O_APPEND);

	assert_int_equal(write_all(fd, "appended", 8), 0);
	close(fd);
}

static void ch_truncate(const char *mnt)
{
	char p[PATH_MAX];

	path_in(p, mnt, "data");
	MUST(truncate(p, 1000), "truncate data 1000");
}

static void ch_extend(const char *mnt)
{
	int fd = open_in(mnt, "data", O_WRONLY);

	MUST(ftruncate(fd, MiB), "ftruncate data 1 MiB");
	close(fd);
}

static void ch_punch(const char *mnt)
{
	int fd = open_in(mnt, "data", O_WRONLY);

	MUST(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		       3 * PAGE + 10, 5 * PAGE), "punch data");
	close(fd);
}

static void ch_zero(const char *mnt)
{
	int fd = open_in(mnt, "data", O_WRONLY);

	MUST(fallocate(fd, FALLOC_FL_ZERO_RANGE, 2 * PAGE, 7 * PAGE), "zero range");
	close(fd);
}

static void ch_otrunc(const char *mnt)
{
	int fd = open_in(mnt, "data", O_WRONLY | O_TRUNC);

	assert_int_equal(write_all(fd, "new", 3), 0);
	close(fd);
}

static void ch_copy_range(const char *mnt)
{
	int in = open_in(mnt, "dir/sub/b", O_RDONLY);
	int out = open_in(mnt, "data", O_WRONLY);
	loff_t off_in = 0, off_out = 40 * KiB;

	assert_int_equal(copy_file_range(in, &off_in, out, &off_out, 8 * KiB, 0),
			 8 * KiB);
	close(in);
	close(out);
}

static void ch_create(const char *mnt)
{
	write_file(mnt, "new", "new\n", 4, 0644);
	write_file(mnt, "dir/sub/new", "new\n", 4, 0644);
}

static void ch_unlink(const char *mnt)
{
	char p[PATH_MAX];

	path_in(p, mnt, "data");
	MUST(unlink(p), "unlink data");
}

static void ch_rename(const char *mnt)
{
	char a[PATH_MAX], b[PATH_MAX];

	path_in(a, mnt, "data");
	path_in(b, mnt, "dir/data.moved");
	MUST(rename(a, b), "rename data dir/data.moved");
}

static void ch_rename_over(const char *mnt)
{
	char a[PATH_MAX], b[PATH_MAX];

	path_in(a, mnt, "small");
	path_in(b, mnt, "data");
	MUST(rename(a, b), "rename small over data");
}

static void ch_exchange(const char *mnt)
{
	char a[PATH_MAX], b[PATH_MAX];

	path_in(a, mnt, "small");
	path_in(b, mnt, "dir/a");
	MUST(renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE),
	     "rename small <-> dir/a (RENAME_EXCHANGE)");
}

static void ch_rename_dir(const char *mnt)
{
	char a[PATH_MAX], b[PATH_MAX];

	path_in(a, mnt, "dir");
	path_in(b, mnt, "empty/moved");
	MUST(rename(a, b), "rename dir empty/moved");
	write_file(mnt, "empty/moved/a", "rewritten\n", 10, 0644);
}

static void ch_mkdir(const char *mnt)
{
	make_dir(mnt, "dir/newdir", 0755);
	make_dir(mnt, "newdir", 0755);
}

static void ch_rmdir(const char *mnt)
{
	char p[PATH_MAX];

	path_in(p, mnt, "empty");
	MUST(rmdir(p), "rmdir empty");
}

static void ch_rm_tree(const char *mnt)
{
	static const char *const files[] = { "dir/sub/b", "dir/a", "dir/hard2" };
	char p[PATH_MAX];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		path_in(p, mnt, files[i]);
		MUST(unlink(p), files[i]);
	}
	path_in(p, mnt, "dir/sub");
	MUST(rmdir(p), "rmdir dir/sub");
	path_in(p, mnt, "dir");
	MUST(rmdir(p), "rmdir dir");
	/* A new directory of the same name, different content. */
	make_dir(mnt, "dir", 0700);
	write_file(mnt, "dir/a", "another a\n", 10, 0600);
}

static void ch_link(const char *mnt)
{
	char a[PATH_MAX], b[PATH_MAX];

	path_in(a, mnt, "small");
	path_in(b, mnt, "dir/small.link");
	MUST(link(a, b), "link small dir/small.link");
}

static void ch_unlink_hardlink(const char *mnt)
{
	char p[PATH_MAX];

	path_in(p, mnt, "dir/hard2");
	MUST(unlink(p), "unlink dir/hard2");
}

static void ch_symlink(const char *mnt)
{
	char p[PATH_MAX];

	path_in(p, mnt, "dir/newlink");
	MUST(symlink("../small", p), "symlink dir/newlink");
}

static void ch_replace_symlink(const char *mnt)
{
	char p[PATH_MAX];

	path_in(p, mnt, "link");
	MUST(unlink(p), "unlink link");
	MUST(symlink("dir/a", p), "symlink link -> dir/a");
}

static void ch_mkfifo(const char *mnt)
{
	char p[PATH_MAX];

	path_in(p, mnt, "dir/fifo");
	MUST(mkfifo(p, 0644), "mkfifo dir/fifo");
}

static void ch_chmod(const char *mnt)
{
	char p[PATH_MAX];

	path_in(p, mnt, "data");
	MUST(chmod(p, 0600), "chmod data 0600");
	path_in(p, mnt, "dir");
	MUST(chmod(p, 0711), "chmod dir 0711");
}

static void ch_chown(const char *mnt)
{
	char p[PATH_MAX];

	path_in(p, mnt, "data");
	MUST(chown(p, 1234, 5678), "chown data 1234:5678");
	path_in(p, mnt, "link");
	MUST(lchown(p, 4321, 8765), "lchown link 4321:8765");
}

static void ch_utimens(const char *mnt)
{
	struct timespec ts[2] = { { 1000000000, 123456789 },
				  { 1000000001, 987654321 } };
	char p[PATH_MAX];

	path_in(p, mnt, "data");
	MUST(utimensat(AT_FDCWD, p, ts, 0), "utimensat data");
	path_in(p, mnt, "dir");
	MUST(utimensat(AT_FDCWD, p, NULL, 0), "utimensat dir now");
}

static void ch_setxattr(const char *mnt)
{
	set_xattr(mnt, "data", "user.k1", "changed value");
	set_xattr(mnt, "data", "user.k3", "new name");
	set_xattr(mnt, "dir/sub", "user.new", "on a directory");
}

static void ch_removexattr(const char *mnt)
{
	char p[PATH_MAX];

	path_in(p, mnt, "data");
	MUST(removexattr(p, "user.k2"), "removexattr data user.k2");
	path_in(p, mnt, "dir");
	MUST(removexattr(p, "user.d"), "removexattr dir user.d");
}

/*
 * Record the tree, take a view, change the tree: the view is the record,
 * the live tree is not.
 */
static void test_change(void **state)
{
	struct fixture *f = *state;
	struct tree *before, *after;
	struct report r = { .n = 0 };
	char view[PATH_MAX];

	build_tree(f->m.mnt);
	before = record(f->m.mnt, true);
	take_view(f, "v");
	f->tc->change(f->m.mnt);

	after = record(f->m.mnt, true);
	diff_trees(before, after, &r);
	free(after);
	if (!r.n)
		fail_msg("the change (%s) left the live tree as it was: this "
			 "test proves nothing", f->tc->name);
	printf("# live tree after %s: %s\n", f->tc->name, r.text);

	view_path(f, "v", NULL, view);
	assert_tree(before, view, false, "the view");
	free(before);
}

/* ------------------------------------------------------------------ */
/* EROFS                                                              */
/* ------------------------------------------------------------------ */

/* rc -1 with errno one of want1/want2 (0: none), else a line in r. */
static void expect_err(struct report *r, const char *what, int rc, int want1,
		       int want2)
{
	int err = errno;

	if (rc >= 0) {
		addf(r, "%s: succeeded", what);
		return;
	}
	if (err != want1 && (!want2 || err != want2))
		addf(r, "%s: %s", what, strerror(err));
}

/* open() that must fail; closes the fd if it did not. */
static int try_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0644);

	if (fd >= 0)
		close(fd);
	return fd;
}

static void test_erofs(void **state)
{
	struct fixture *f = *state;
	struct timespec ts[2] = { { 1, 0 }, { 2, 0 } };
	struct report r = { .n = 0 };
	char v[PATH_MAX], p[PATH_MAX], q[PATH_MAX], live[PATH_MAX];
	struct tree *before;

	build_tree(f->m.mnt);
	before = record(f->m.mnt, true);
	take_view(f, "v");

#define VP(buf, rel) view_path(f, "v", rel, buf)
	VP(v, NULL);
	VP(p, "data");
	expect_err(&r, "open O_WRONLY", try_open(p, O_WRONLY), EROFS, 0);
	expect_err(&r, "open O_RDWR", try_open(p, O_RDWR), EROFS, 0);
	expect_err(&r, "open O_RDONLY|O_TRUNC", try_open(p, O_RDONLY | O_TRUNC),
		   EROFS, 0);
	expect_err(&r, "open O_WRONLY|O_CREAT|O_TRUNC existing",
		   try_open(p, O_WRONLY | O_CREAT | O_TRUNC), EROFS, 0);
	expect_err(&r, "truncate", truncate(p, 0), EROFS, 0);
	expect_err(&r, "chmod", chmod(p, 0600), EROFS, 0);
	expect_err(&r, "chown", chown(p, 1, 1), EROFS, 0);
	expect_err(&r, "utimensat now", utimensat(AT_FDCWD, p, NULL, 0), EROFS, 0);
	expect_err(&r, "utimensat times", utimensat(AT_FDCWD, p, ts, 0), EROFS, 0);
	expect_err(&r, "setxattr existing", setxattr(p, "user.k1", "x", 1, 0),
		   EROFS, 0);
	expect_err(&r, "setxattr new", setxattr(p, "user.new", "x", 1, 0), EROFS, 0);
	expect_err(&r, "removexattr", removexattr(p, "user.k1"), EROFS, 0);
	expect_err(&r, "unlink", unlink(p), EROFS, 0);
	VP(q, "data2");
	expect_err(&r, "link", link(p, q), EROFS, 0);
	expect_err(&r, "rename", rename(p, q), EROFS, 0);
	VP(q, "small");
	expect_err(&r, "rename over", rename(q, p), EROFS, 0);
	expect_err(&r, "rename exchange",
		   renameat2(AT_FDCWD, p, AT_FDCWD, q, RENAME_EXCHANGE), EROFS, 0);
	VP(q, "new");
	expect_err(&r, "creat", try_open(q, O_WRONLY | O_CREAT | O_EXCL), EROFS, 0);
	expect_err(&r, "mknod fifo", mknod(q, S_IFIFO | 0644, 0), EROFS, 0);
	expect_err(&r, "mkdir", mkdir(q, 0755), EROFS, 0);
	expect_err(&r, "symlink", symlink("data", q), EROFS, 0);
	VP(q, "link");
	expect_err(&r, "lchown symlink", lchown(q, 1, 1), EROFS, 0);
	expect_err(&r, "unlink symlink", unlink(q), EROFS, 0);
	VP(q, "empty");
	expect_err(&r, "rmdir empty", rmdir(q), EROFS, 0);
	VP(q, "dir");
	expect_err(&r, "rmdir non-empty", rmdir(q), EROFS, 0);
	expect_err(&r, "chmod dir", chmod(q, 0700), EROFS, 0);
	expect_err(&r, "setxattr dir", setxattr(q, "user.d", "x", 1, 0), EROFS, 0);
	VP(q, "dir/sub/new");
	expect_err(&r, "creat in a subdirectory",
		   try_open(q, O_WRONLY | O_CREAT | O_EXCL), EROFS, 0);
	expect_err(&r, "chmod view root", chmod(v, 0700), EROFS, 0);
	expect_err(&r, "setxattr view root", setxattr(v, "user.x", "x", 1, 0),
		   EROFS, 0);
	/* Between the view and the live tree: refused either way. */
	path_in(live, f->m.mnt, "escaped");
	expect_err(&r, "rename view -> live", rename(p, live), EROFS, EXDEV);
	expect_err(&r, "link view -> live", link(p, live), EROFS, EXDEV);
	path_in(live, f->m.mnt, "small");
	VP(q, "small2");
	expect_err(&r, "rename live -> view", rename(live, q), EROFS, EXDEV);
#undef VP
	if (r.n)
		fail_msg("%d modifications of the view did not fail with EROFS: %s",
			 r.n, r.text);
	assert_tree(before, v, false, "the view after refused modifications");
	assert_tree(before, f->m.mnt, true, "the live tree after refused "
		    "modifications of the view");
	free(before);
}

/* ------------------------------------------------------------------ */
/* Read paths                                                         */
/* ------------------------------------------------------------------ */

/* Exactly len bytes from fd (a pipe); 0, or -1 with errno. */
static int read_exact(int fd, unsigned char *buf, size_t len)
{
	while (len) {
		ssize_t n = read(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Whole file from fd at 0 by splice (how: 0) or sendfile (1), via a pipe. */
static long pipe_whole(int fd, int how, unsigned char *buf, size_t cap)
{
	int p[2];
	loff_t off = 0;
	off_t soff = 0;
	size_t got = 0;
	long rc = -1;

	assert_int_equal(make_pipe(p, 64 * KiB), 0);
	for (;;) {
		ssize_t n = how ? sendfile(p[1], fd, &soff, 64 * KiB) :
				  splice(fd, &off, p[1], NULL, 64 * KiB, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		if (got + (size_t)n > cap) {
			errno = EFBIG;
			goto out;
		}
		if (read_exact(p[0], buf + got, (size_t)n))
			goto out;
		got += (size_t)n;
	}
	rc = (long)got;
out:
	close(p[0]);
	close(p[1]);
	return rc;
}

/*
 * copy_file_range from the view's file f->fd into a new live file (as cp
 * does): the copy holds the instant's bytes.
 */
static void assert_copy_range(struct fixture *f, const unsigned char *orig,
			      long len)
{
	char path[PATH_MAX];
	loff_t off_in = 0, off_out = 0;
	long copied = 0;
	int out = open_in(f->m.mnt, "copy", O_WRONLY | O_CREAT | O_EXCL);

	while (copied < len) {
		ssize_t n = copy_file_range(f->fd, &off_in, out, &off_out,
					    (size_t)(len - copied), 0);

		if (n <= 0)
			fail_msg("copy_file_range from the view's file at %ld: %s",
				 copied, n ? strerror(errno) : "0 bytes");
		copied += n;
	}
	close(out);
	path_in(path, f->m.mnt, "copy");
	assert_file(path, orig, len);
}

/*
 * A view's file whose live twin was rewritten through MNT: read, splice,
 * sendfile, mmap (shared and private, PROT_READ), pread and
 * copy_file_range all give the instant's bytes; fstat its size.
 */
static void test_read_paths(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = pattern(DATA_SIZE, false);
	unsigned char *now = pattern(700 * KiB, true);
	unsigned char *got = malloc(2 * MiB);
	char path[PATH_MAX];
	struct stat st;
	int live;

	assert_non_null(got);
	write_file(f->m.mnt, "data", orig, DATA_SIZE, 0644);
	take_view(f, "v");
	live = open_in(f->m.mnt, "data", O_WRONLY | O_TRUNC);
	assert_int_equal(write_all(live, now, 700 * KiB), 0);
	close(live);

	view_path(f, "v", "data", path);
	assert_bytes(got, read_path(path, got, 2 * MiB), orig, DATA_SIZE,
		     "read() of the view's file");
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	assert_int_equal(fstat(f->fd, &st), 0);
	assert_int_equal(st.st_size, DATA_SIZE);
	assert_bytes(got, pipe_whole(f->fd, 0, got, 2 * MiB), orig, DATA_SIZE,
		     "splice from the view's file");
	assert_bytes(got, pipe_whole(f->fd, 1, got, 2 * MiB), orig, DATA_SIZE,
		     "sendfile from the view's file");
	assert_int_equal(pread_all(f->fd, got, 64 * KiB, 100 * KiB), 0);
	assert_bytes(got, 64 * KiB, orig + 100 * KiB, 64 * KiB,
		     "pread at 100 KiB of the view's file");
	for (int shared = 1; shared >= 0; shared--) {
		f->map_len = DATA_SIZE;
		f->map = mmap(NULL, f->map_len, PROT_READ,
			      shared ? MAP_SHARED : MAP_PRIVATE, f->fd, 0);
		if (f->map == MAP_FAILED) {
			f->map = NULL;
			fail_msg("mmap PROT_READ %s of the view's file: %s",
				 shared ? "MAP_SHARED" : "MAP_PRIVATE", strerror(errno));
		}
		assert_bytes(f->map, DATA_SIZE, orig, DATA_SIZE, shared ?
			     "mmap MAP_SHARED of the view's file" :
			     "mmap MAP_PRIVATE of the view's file");
		munmap(f->map, f->map_len);
		f->map = NULL;
	}
	assert_copy_range(f, orig, DATA_SIZE);
	close_fd(&f->fd);
	path_in(path, f->m.mnt, "data");
	assert_file(path, now, 700 * KiB);
	free(orig);
	free(now);
	free(got);
}

/*
 * A view's directory of BIG_DIR names, listed a few entries per getdents
 * while the live directory is emptied and refilled halfway: the instant's
 * names, each once. (A listing from the live directory, batch by batch,
 * would skip or repeat names.)
 */
#define BIG_DIR 300

static void live_churn(const char *mnt)
{
	char rel[64], a[PATH_MAX], b[PATH_MAX];

	for (int i = 0; i < BIG_DIR; i++) {
		snprintf(rel, sizeof(rel), "big/f%03d", i);
		path_in(a, mnt, rel);
		if (i % 3 == 0) {
			MUST(unlink(a), rel);
		} else if (i % 3 == 1) {
			snprintf(rel, sizeof(rel), "big/renamed%03d", i);
			path_in(b, mnt, rel);
			MUST(rename(a, b), rel);
		}
		snprintf(rel, sizeof(rel), "big/new%03d", i);
		write_file(mnt, rel, "n", 1, 0644);
	}
}

static void test_readdir_across_changes(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], buf[1024];
	bool seen[BIG_DIR] = { false };
	int fd, listed = 0, batches = 0;
	long n;

	make_dir(f->m.mnt, "big", 0755);
	for (int i = 0; i < BIG_DIR; i++) {
		char rel[32];

		snprintf(rel, sizeof(rel), "big/f%03d", i);
		write_file(f->m.mnt, rel, "x", 1, 0644);
	}
	take_view(f, "v");
	view_path(f, "v", "big", path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	f->fd = fd;
	/* getdents64 with a small buffer: many batches. */
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			int i;

			off += d->d_reclen;
			if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
				continue;
			if (sscanf(d->d_name, "f%03d", &i) != 1 || i < 0 ||
			    i >= BIG_DIR || strlen(d->d_name) != 4)
				fail_msg("view's listing of big/ has \"%s\", not a "
					 "name of the instant (batch %d)", d->d_name,
					 batches);
			if (seen[i])
				fail_msg("view's listing of big/ has %s twice", d->d_name);
			seen[i] = true;
			listed++;
		}
		if (batches++ == 1)
			live_churn(f->m.mnt);
	}
	if (n < 0)
		fail_msg("getdents64 %s: %s", path, strerror(errno));
	close_fd(&f->fd);
	if (batches < 3)
		fail_msg("big/ listed in %d batches: the change never fell inside "
			 "the listing", batches);
	if (listed != BIG_DIR)
		fail_msg("view's listing of big/: %d names, expected %d", listed,
			 BIG_DIR);
}

/* ------------------------------------------------------------------ */
/* Costs: nothing captured until something changes                   */
/* ------------------------------------------------------------------ */

static void test_capture_on_change(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = pattern(DATA_SIZE, false);
	char path[PATH_MAX], names[MAX_NAMES][64];
	long long c1, c2, c3, b1;
	int fd;

	build_tree(f->m.mnt);
	make_dir(f->m.mnt, "many", 0755);
	for (int i = 0; i < 50; i++) {
		char rel[32];

		snprintf(rel, sizeof(rel), "many/f%02d", i);
		write_file(f->m.mnt, rel, rel, strlen(rel), 0644);
	}
	take_view(f, "v");
	assert_int_equal(view_value(f->m.mnt, "v", "captures"), 0);
	assert_int_equal(view_value(f->m.mnt, "v", "bytes_preserved"), 0);

	/* Reading an unchanged tree gives the live bytes, captures nothing. */
	view_path(f, "v", "data", path);
	assert_file(path, orig, DATA_SIZE);
	view_path(f, "v", "many", path);
	assert_int_equal(list_dir(path, names, MAX_NAMES), 50);
	view_path(f, "v", "many/f07", path);
	assert_file(path, (const unsigned char *)"many/f07", 8);
	c1 = view_value(f->m.mnt, "v", "captures");
	b1 = view_value(f->m.mnt, "v", "bytes_preserved");
	if (c1 || b1)
		fail_msg("reading an unchanged view captured %lld objects, "
			 "preserved %lld bytes (expected none)", c1, b1);

	/* 100 bytes of one file: one capture, a page or a few preserved. */
	fd = open_in(f->m.mnt, "data", O_WRONLY);
	assert_int_equal(pwrite_all(fd, orig + 9, 100, 64 * KiB + 10), 0);
	c1 = view_value(f->m.mnt, "v", "captures");
	b1 = view_value(f->m.mnt, "v", "bytes_preserved");
	printf("# after 100 bytes of data: captures %lld, bytes_preserved %lld\n",
	       c1, b1);
	if (c1 < 1 || b1 <= 0 || b1 > 64 * KiB)
		fail_msg("after a 100-byte pwrite: captures %lld (expected >= 1), "
			 "bytes_preserved %lld (expected 1..65536)", c1, b1);
	/* Another file: one more. */
	write_file(f->m.mnt, "small", "SMALL", 5, 0644);
	c2 = view_value(f->m.mnt, "v", "captures");
	if (c2 <= c1)
		fail_msg("rewriting a second file: captures %lld -> %lld", c1, c2);
	/* The first file again: captured once per view, not per change. */
	assert_int_equal(pwrite_all(fd, orig + 3, 100, 200 * KiB), 0);
	close(fd);
	c3 = view_value(f->m.mnt, "v", "captures");
	if (c3 != c2)
		fail_msg("a second change of an object already captured: "
			 "captures %lld -> %lld (expected no change)", c2, c3);
	view_path(f, "v", "data", path);
	assert_file(path, orig, DATA_SIZE);
	view_path(f, "v", "small", path);
	assert_file(path, (const unsigned char *)"small file\n", 11);
	free(orig);
}

/* ------------------------------------------------------------------ */
/* The views' directory                                               */
/* ------------------------------------------------------------------ */

/* path must not exist (what: why, for the message). */
static void assert_enoent(const char *path, const char *what)
{
	struct stat st;

	if (!lstat(path, &st))
		fail_msg("%s: %s exists, expected ENOENT", what, path);
	if (errno != ENOENT)
		fail_msg("%s: lstat %s: %s, expected ENOENT", what, path,
			 strerror(errno));
}

/* The names in dir as "a b c" (sorted), or a test failure. */
static void names_of(const char *dir, char *out, size_t cap)
{
	char names[MAX_NAMES][64];
	int n = list_dir(dir, names, MAX_NAMES);

	if (n < 0)
		fail_msg("readdir %s: %s", dir, strerror(errno));
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		size_t used = strlen(out);

		snprintf(out + used, cap - used, "%s%s", i ? " " : "", names[i]);
	}
}

/* The names in dir must be want ("a b", sorted); what names dir. */
static void assert_names(const char *dir, const char *want, const char *what)
{
	char now[1024];

	names_of(dir, now, sizeof(now));
	if (strcmp(now, want))
		fail_msg("%s (%s) lists \"%s\", expected \"%s\"", what, dir, now,
			 want);
}

static void test_snapdir(void **state)
{
	struct fixture *f = *state;
	char before[1024], now[1024], path[PATH_MAX], want[128];
	struct stat st;
	char *json;

	build_tree(f->m.mnt);
	names_of(f->m.mnt, before, sizeof(before));
	take_view(f, "a");
	take_view(f, "b");

	names_of(f->m.mnt, now, sizeof(now));
	if (strcmp(before, now))
		fail_msg("readdir(MNT) after taking views: \"%s\", expected \"%s\" "
			 "(%s must never be listed)", now, before, f->snapdir);
	names_of(f->m.src, now, sizeof(now));
	if (strcmp(before, now))
		fail_msg("SRC after taking views: \"%s\", expected \"%s\"", now,
			 before);
	path_in(path, f->m.mnt, f->snapdir);
	if (stat(path, &st))
		fail_msg("stat %s: %s", path, strerror(errno));
	assert_true(S_ISDIR(st.st_mode));
	names_of(path, now, sizeof(now));
	assert_string_equal(now, "a b");
	view_path(f, "a", NULL, path);
	names_of(path, now, sizeof(now));
	if (strcmp(before, now))
		fail_msg("readdir of view a: \"%s\", expected \"%s\"", now, before);

	json = views_json(f->m.mnt);
	snprintf(want, sizeof(want), "\"snapdir\":\"%s\"", f->snapdir);
	if (!strstr(json, want))
		fail_msg("%s lacks %s: %s", SFS_XATTR_VIEWS, want, json);
	free(json);
	if (strcmp(f->snapdir, SNAPDIR)) {
		path_in(path, f->m.mnt, SNAPDIR);
		assert_enoent(path, f->tc->opts);
	}
}

/*
 * SRC's root has an entry named like the views' directory (made in SRC,
 * before any view): MNT shows the views there, never SRC's entry, in the
 * live tree or in a view; SRC keeps it.
 */
static void test_snapdir_shadows_src(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	make_dir(f->m.src, SNAPDIR, 0755);
	write_file(f->m.src, SNAPDIR "/old", "old\n", 4, 0644);
	write_file(f->m.mnt, "data", "data\n", 5, 0644);
	take_view(f, "v");
	assert_names(f->m.mnt, "data", "MNT's root");
	path_in(path, f->m.mnt, SNAPDIR);
	assert_names(path, "v", "MNT/" SNAPDIR " (the views, not SRC's entry)");
	path_in(path, f->m.mnt, SNAPDIR "/old");
	assert_enoent(path, "SRC's own " SNAPDIR "/old through MNT");
	view_path(f, "v", NULL, path);
	assert_names(path, "data", "the view's root (MNT's root at the instant "
		     "did not list SRC's " SNAPDIR ")");
	assert_names(f->m.src, SNAPDIR " data", "SRC's root");
}

/* ------------------------------------------------------------------ */
/* Listing and deleting                                               */
/* ------------------------------------------------------------------ */

static long long realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void assert_gone(const struct fixture *f, const char *name)
{
	char path[PATH_MAX];

	view_path(f, name, NULL, path);
	assert_enoent(path, "after deleting the view");
}

static void test_list_delete(void **state)
{
	struct fixture *f = *state;
	long long t0, t1, e1, e2, e3, c1, c2;
	char path[PATH_MAX], names[1024], obj[1024];
	char *json;

	write_file(f->m.mnt, "data", "data\n", 5, 0644);
	t0 = realtime_ns();
	take_view(f, "v1");
	take_view(f, "v2");
	t1 = realtime_ns();

	json = views_json(f->m.mnt);
	printf("# %s: %s\n", SFS_XATTR_VIEWS, json);
	assert_int_equal(views_listed(json), 2);
	for (int i = 0; i < 2; i++) {
		assert_true(view_object(json, i ? "v2" : "v1", obj, sizeof(obj)));
		if (!strstr(obj, "\"invalid\":false"))
			fail_msg("a new view is not \"invalid\":false: %s", obj);
	}
	free(json);
	e1 = view_value(f->m.mnt, "v1", "epoch");
	e2 = view_value(f->m.mnt, "v2", "epoch");
	if (e1 < 1 || e2 <= e1)
		fail_msg("epochs v1 %lld, v2 %lld: expected 1 <= v1 < v2", e1, e2);
	/* Wall clock; 10 ms of slack for a coarse clock in the daemon. */
	c1 = view_value(f->m.mnt, "v1", "created_ns");
	c2 = view_value(f->m.mnt, "v2", "created_ns");
	if (c1 < t0 - 10000000 || c2 < c1 || c2 > t1)
		fail_msg("created_ns v1 %lld, v2 %lld: not within [%lld, %lld]",
			 c1, c2, t0, t1);

	view_ctl_fails(f->m.mnt, SFS_IOC_VIEW_CREATE, "v1", EEXIST, "taken");
	drop_view(f, "v1");
	assert_gone(f, "v1");
	path_in(path, f->m.mnt, f->snapdir);
	names_of(path, names, sizeof(names));
	assert_string_equal(names, "v2");
	json = views_json(f->m.mnt);
	assert_int_equal(views_listed(json), 1);
	assert_false(view_object(json, "v1", obj, sizeof(obj)));
	free(json);
	view_ctl_fails(f->m.mnt, SFS_IOC_VIEW_DELETE, "v1", ENOENT, "deleted");
	view_ctl_fails(f->m.mnt, SFS_IOC_VIEW_DELETE, "never", ENOENT, "unknown");

	/* A name can be reused; it is a new instant. */
	take_view(f, "v1");
	e3 = view_value(f->m.mnt, "v1", "epoch");
	if (e3 <= e2)
		fail_msg("view v1 taken again has epoch %lld, v2 has %lld", e3, e2);

	/* A name JSON must escape; readdir shows it as it is. */
	take_view(f, "q\"b\\s");
	json = views_json(f->m.mnt);
	if (!view_object(json, "q\\\"b\\\\s", obj, sizeof(obj)))
		fail_msg("view q\"b\\s is not listed, JSON-escaped, in: %s", json);
	free(json);
	names_of(path, names, sizeof(names));
	assert_string_equal(names, "q\"b\\s v1 v2");

	drop_view(f, "q\"b\\s");
	drop_view(f, "v1");
	drop_view(f, "v2");
	assert_gone(f, "v2");
	names_of(path, names, sizeof(names));
	assert_string_equal(names, "");
	json = views_json(f->m.mnt);
	if (views_listed(json) || !strstr(json, "\"views\":[]"))
		fail_msg("%s with every view deleted: %s", SFS_XATTR_VIEWS, json);
	free(json);
}

/* Two instants, two trees; deleting one leaves the other. */
static void test_two_views(void **state)
{
	struct fixture *f = *state;
	unsigned char *v0 = pattern(DATA_SIZE, false);
	unsigned char *v1 = pattern(DATA_SIZE, true);
	unsigned char v2[100];
	char path[PATH_MAX];
	int fd;

	memset(v2, 0x5a, sizeof(v2));
	write_file(f->m.mnt, "data", v0, DATA_SIZE, 0644);
	take_view(f, "A");
	fd = open_in(f->m.mnt, "data", O_WRONLY);
	assert_int_equal(pwrite_all(fd, v1, DATA_SIZE, 0), 0);
	close(fd);
	write_file(f->m.mnt, "x", "x\n", 2, 0644);
	take_view(f, "B");
	write_file(f->m.mnt, "data", v2, sizeof(v2), 0644);
	path_in(path, f->m.mnt, "x");
	assert_int_equal(unlink(path), 0);

	for (int round = 0; round < 2; round++) {
		if (!round) {
			view_path(f, "A", "data", path);
			assert_file(path, v0, DATA_SIZE);
			view_path(f, "A", "x", path);
			assert_enoent(path, "created after view A");
		}
		view_path(f, "B", "data", path);
		assert_file(path, v1, DATA_SIZE);
		view_path(f, "B", "x", path);
		assert_file(path, (const unsigned char *)"x\n", 2);
		if (!round)
			drop_view(f, "A");
	}
	assert_gone(f, "A");
	path_in(path, f->m.mnt, "data");
	assert_file(path, v2, sizeof(v2));
	free(v0);
	free(v1);
}

/* Poll the mount's counters until nothing is preserved (3 s). */
static void assert_released(const char *mnt)
{
	long long bytes = -1, files = -1;
	int waited;

	for (waited = 0; waited <= 3000; waited += 20) {
		bytes = mount_counter(mnt, "bytes_preserved");
		files = mount_counter(mnt, "store_files");
		if (!bytes && !files)
			return;
		sleep_ms(20);
	}
	print_mount_stats(mnt);
	fail_msg("3 s after the last file of a deleted view was closed: "
		 "bytes_preserved %lld, store_files %lld (expected 0)", bytes, files);
}

/* A file open in a view reads on after the view is deleted. */
static void test_open_across_delete(void **state)
{
	struct fixture *f = *state;
	unsigned char *orig = pattern(MiB, false), *now = pattern(MiB, true);
	unsigned char *got = malloc(MiB);
	char path[PATH_MAX];
	long long vb, mb;
	int fd;

	assert_non_null(got);
	write_file(f->m.mnt, "data", orig, MiB, 0644);
	take_view(f, "v");
	view_path(f, "v", "data", path);
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	fd = open_in(f->m.mnt, "data", O_WRONLY);
	assert_int_equal(pwrite_all(fd, now, MiB, 0), 0);
	close(fd);
	vb = view_value(f->m.mnt, "v", "bytes_preserved");
	mb = mount_counter(f->m.mnt, "bytes_preserved");
	printf("# 1 MiB rewritten: view bytes_preserved %lld, mount %lld\n", vb, mb);
	if (vb < MiB || mb < MiB)
		fail_msg("after rewriting 1 MiB under a view: bytes_preserved "
			 "%lld (view), %lld (mount), expected >= %ld", vb, mb, MiB);

	drop_view(f, "v");
	assert_gone(f, "v");
	assert_enoent(path, "a file of a deleted view");
	assert_int_equal(pread_all(f->fd, got, MiB, 0), 0);
	assert_bytes(got, MiB, orig, MiB, "a view's file open across its deletion");
	mb = mount_counter(f->m.mnt, "bytes_preserved");
	if (mb < MiB)
		fail_msg("bytes_preserved %lld while a file of the deleted view is "
			 "open (it still reads 1 MiB that is no longer live)", mb);
	close_fd(&f->fd);
	assert_released(f->m.mnt);
	free(orig);
	free(now);
	free(got);
}

/* ------------------------------------------------------------------ */
/* Names                                                              */
/* ------------------------------------------------------------------ */

static void test_names(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = { "", "/", "a/b", "/a", "a/", ".", ".." };
	static const char *const good[] = { "...", ".x", "a b", "v-1_2" };
	char longest[SFS_VIEW_NAME_MAX + 1], path[PATH_MAX];
	struct sfs_ioc_view raw;
	struct stat st;
	char *json;
	int err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		view_ctl_fails(f->m.mnt, SFS_IOC_VIEW_CREATE, bad[i], EINVAL,
			       "a bad name");
		view_ctl_fails(f->m.mnt, SFS_IOC_VIEW_DELETE, bad[i], EINVAL,
			       "a bad name");
	}
	memset(&raw, 'u', sizeof(raw));	/* no NUL in the buffer */
	err = view_ioctl_raw(f->m.mnt, SFS_IOC_VIEW_CREATE, &raw);
	if (err != EINVAL)
		fail_msg("SFS_IOC_VIEW_CREATE of a name without NUL: %s, expected "
			 "EINVAL", err ? strerror(err) : "success");
	json = views_json(f->m.mnt);
	if (views_listed(json))
		fail_msg("bad names made views: %s", json);
	free(json);

	memset(longest, 'n', SFS_VIEW_NAME_MAX);
	longest[SFS_VIEW_NAME_MAX] = '\0';
	take_view(f, longest);
	view_path(f, longest, NULL, path);
	if (stat(path, &st))
		fail_msg("stat of a view named by %d bytes: %s", SFS_VIEW_NAME_MAX,
			 strerror(errno));
	drop_view(f, longest);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		take_view(f, good[i]);
		view_path(f, good[i], NULL, path);
		if (stat(path, &st))
			fail_msg("stat %s: %s", path, strerror(errno));
		drop_view(f, good[i]);
	}
	view_ctl_fails(f->m.mnt, SFS_IOC_VIEW_DELETE, "unknown", ENOENT,
		       "never taken");
}

/* ------------------------------------------------------------------ */
/* Permissions (-o allow_other, user nobody)                          */
/* ------------------------------------------------------------------ */

/* One check of the child's; false with why in msg if it failed. */
static bool nobody_open(const char *path, int want, char *msg, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int err = fd < 0 ? errno : 0;

	if (fd >= 0)
		close(fd);
	if (err == want)
		return true;
	snprintf(msg, cap, "nobody opening %s: %s, expected %s", path,
		 err ? strerror(err) : "success", want ? strerror(want) : "success");
	return false;
}

/* As nobody (no cmocka here: a child). 0, or 1 with msg set. */
static int nobody_checks(const struct fixture *f, char *msg, size_t cap)
{
	static const struct {
		const char *rel;
		bool in_view;
		int want;
	} opens[] = {
		{ "open", true, 0 },		/* 0644 */
		{ "secret", true, EACCES },	/* 0600 */
		{ "was_open", true, 0 },	/* 0644 then, 0600 now */
		{ "was_open", false, EACCES },
		{ "was_secret", true, EACCES },	/* 0600 then, 0644 now */
		{ "was_secret", false, 0 },
	};
	char path[PATH_MAX];
	int err;

	err = view_ioctl(f->m.mnt, SFS_IOC_VIEW_CREATE, "n");
	if (err != EPERM) {
		snprintf(msg, cap, "SFS_IOC_VIEW_CREATE as nobody: %s, expected "
			 "EPERM", err ? strerror(err) : "success");
		return 1;
	}
	err = view_ioctl(f->m.mnt, SFS_IOC_VIEW_DELETE, "v");
	if (err != EPERM) {
		snprintf(msg, cap, "SFS_IOC_VIEW_DELETE as nobody: %s, expected "
			 "EPERM", err ? strerror(err) : "success");
		return 1;
	}
	for (size_t i = 0; i < sizeof(opens) / sizeof(opens[0]); i++) {
		if (opens[i].in_view)
			view_path(f, "v", opens[i].rel, path);
		else if (join_path(path, f->m.mnt, opens[i].rel))
			return 1;
		if (!nobody_open(path, opens[i].want, msg, cap))
			return 1;
	}
	return 0;
}

/* fn in a child as nobody:nogroup; its message fails the test. */
static void as_nobody(const struct fixture *f,
		      int (*fn)(const struct fixture *, char *, size_t))
{
	char msg[2048] = "";
	int p[2], status;
	long n;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc = 1;

		close(p[0]);
		if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY))
			snprintf(msg, sizeof(msg), "becoming nobody: %s",
				 strerror(errno));
		else
			rc = fn(f, msg, sizeof(msg));
		if (write_all(p[1], msg, strlen(msg)))
			rc = 2;
		_exit(rc);
	}
	close(p[1]);
	n = drain_pipe(p[0], (unsigned char *)msg, sizeof(msg) - 1);
	close(p[0]);
	msg[n > 0 ? n : 0] = '\0';
	if (!wait_pid_ms(pid, &status, 30000)) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("the child as nobody hung");
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("as nobody: %s (status 0x%x)", msg, status);
}

static void test_permissions(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], *json;

	write_file(f->m.mnt, "open", "open\n", 5, 0644);
	write_file(f->m.mnt, "secret", "secret\n", 7, 0600);
	write_file(f->m.mnt, "was_open", "was open\n", 9, 0644);
	write_file(f->m.mnt, "was_secret", "was secret\n", 11, 0600);
	take_view(f, "v");
	path_in(path, f->m.mnt, "was_open");
	assert_int_equal(chmod(path, 0600), 0);
	path_in(path, f->m.mnt, "was_secret");
	assert_int_equal(chmod(path, 0644), 0);

	as_nobody(f, nobody_checks);
	json = views_json(f->m.mnt);
	if (views_listed(json) != 1)
		fail_msg("after nobody's attempts: %s", json);
	free(json);
	/* Root reads the 0600 file of the view. */
	view_path(f, "v", "secret", path);
	assert_file(path, (const unsigned char *)"secret\n", 7);
}

/* ------------------------------------------------------------------ */
/* Out of band: SRC changed directly after the instant                */
/* ------------------------------------------------------------------ */

/*
 * The view's copy of a file whose SRC bytes were replaced by now: the old
 * bytes, or EIO; never the new ones or a mix. What it was, for the log.
 */
static const char *check_oob_file(const char *path, const unsigned char *old,
				  const unsigned char *now, long len)
{
	unsigned char *got = malloc((size_t)len + PAGE);
	long n, same_old = 0, same_new = 0;
	struct stat st;

	assert_non_null(got);
	if (stat(path, &st)) {
		if (errno != EIO)
			fail_msg("stat %s after a change in SRC: %s, expected the "
				 "old size or EIO", path, strerror(errno));
		free(got);
		return "EIO at stat";
	}
	if (st.st_size != len)
		fail_msg("%s after a change in SRC: size %lld, expected %ld (or EIO)",
			 path, (long long)st.st_size, len);
	n = read_path(path, got, (size_t)len + PAGE);
	if (n < 0) {
		if (errno != EIO)
			fail_msg("%s after a change in SRC: %s, expected the old "
				 "bytes or EIO", path, strerror(errno));
		free(got);
		return "EIO";
	}
	for (long i = 0; i < n && i < len; i++) {
		same_old += got[i] == old[i];
		same_new += got[i] == now[i];
	}
	if (n != len || same_old != len)
		fail_msg("%s after a change in SRC: %ld bytes, %ld of them old, %ld "
			 "new (first differing byte %ld): expected the %ld old bytes "
			 "or EIO", path, n, same_old, same_new,
			 first_diff(got, old, n < len ? n : len), len);
	free(got);
	return "old bytes";
}

static void test_oob(void **state)
{
	struct fixture *f = *state;
	unsigned char *old = pattern(DATA_SIZE, false), *now = pattern(DATA_SIZE, true);
	char path[PATH_MAX], names[256];
	const char *data_was, *dir_was, *attr_was;
	struct stat st;
	int fd;

	write_file(f->m.mnt, "data", old, DATA_SIZE, 0644);
	make_dir(f->m.mnt, "dir", 0755);
	write_file(f->m.mnt, "dir/x", "x\n", 2, 0644);
	write_file(f->m.mnt, "attr", "attr\n", 5, 0644);
	take_view(f, "v");
	sleep_ms(20);	/* SRC's timestamps then differ from the instant's */

	path_in(path, f->m.src, "data");
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite_all(fd, now, DATA_SIZE, 0), 0);
	close(fd);
	write_file(f->m.src, "dir/new", "new\n", 4, 0644);
	path_in(path, f->m.src, "attr");
	assert_int_equal(chmod(path, 0600), 0);

	view_path(f, "v", "data", path);
	data_was = check_oob_file(path, old, now, DATA_SIZE);

	view_path(f, "v", "dir", path);
	{
		char list[MAX_NAMES][64];
		int n = list_dir(path, list, MAX_NAMES);

		if (n < 0 && errno != EIO)
			fail_msg("readdir %s after a create in SRC: %s, expected "
				 "\"x\" or EIO", path, strerror(errno));
		if (n >= 0) {
			names_of(path, names, sizeof(names));
			if (strcmp(names, "x"))
				fail_msg("readdir %s after a create in SRC: \"%s\", "
					 "expected \"x\" or EIO", path, names);
		}
		dir_was = n < 0 ? "EIO" : "old entries";
	}

	view_path(f, "v", "attr", path);
	if (stat(path, &st) == 0) {
		if ((st.st_mode & 07777) != 0644)
			fail_msg("%s after chmod 0600 in SRC: mode 0%o, expected "
				 "0644 or EIO", path, st.st_mode & 07777);
		attr_was = "old mode";
	} else {
		if (errno != EIO)
			fail_msg("stat %s after chmod in SRC: %s, expected the old "
				 "mode or EIO", path, strerror(errno));
		attr_was = "EIO";
	}
	printf("# %s: after changes in SRC the view gave: data %s, dir %s, "
	       "attr %s\n", f->tc->name, data_was, dir_was, attr_was);
	print_mount_stats(f->m.mnt);

	/* The live tree shows SRC as it is. */
	path_in(path, f->m.mnt, "data");
	assert_file(path, now, DATA_SIZE);
	path_in(path, f->m.mnt, "dir");
	names_of(path, names, sizeof(names));
	assert_string_equal(names, "new x");
	free(old);
	free(now);
}

/* ------------------------------------------------------------------ */

#define CH(n, fn) { "change " n, NULL, fn, false }

static const struct vcase changes[] = {
	CH("pwrite", ch_pwrite),
	CH("O_APPEND write", ch_append),
	CH("truncate shorter", ch_truncate),
	CH("ftruncate longer", ch_extend),
	CH("punch hole", ch_punch),
	CH("zero range", ch_zero),
	CH("O_TRUNC rewrite", ch_otrunc),
	CH("copy_file_range into", ch_copy_range),
	CH("create", ch_create),
	CH("unlink", ch_unlink),
	CH("rename", ch_rename),
	CH("rename over", ch_rename_over),
	CH("RENAME_EXCHANGE", ch_exchange),
	CH("rename a directory", ch_rename_dir),
	CH("mkdir", ch_mkdir),
	CH("rmdir", ch_rmdir),
	CH("remove a subtree", ch_rm_tree),
	CH("link", ch_link),
	CH("unlink one of two links", ch_unlink_hardlink),
	CH("symlink", ch_symlink),
	CH("symlink replaced", ch_replace_symlink),
	CH("mkfifo", ch_mkfifo),
	CH("chmod", ch_chmod),
	CH("chown", ch_chown),
	CH("utimensat", ch_utimens),
	CH("setxattr", ch_setxattr),
	CH("removexattr", ch_removexattr),
};

static const struct vcase tc_default = { "default", NULL, NULL, false };
static const struct vcase tc_snapdir = { "snapdir=snaps", "snapdir=snaps", NULL,
					 false };
static const struct vcase tc_others = { "allow_other", "allow_other", NULL,
					false };
static const struct vcase tc_oob_preserve = { "ext4, oob=preserve",
					      "oob=preserve", NULL, true };

#define CASE(name, fn, tc) { name, fn, setup, teardown, (void *)(tc) }
#define N_CHANGES (sizeof(changes) / sizeof(changes[0]))

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		CASE("EROFS for every modification", test_erofs, &tc_default),
		CASE("read, splice, sendfile, mmap, copy_file_range", test_read_paths,
		     &tc_default),
		CASE("readdir across changes", test_readdir_across_changes,
		     &tc_default),
		CASE("captures only on change", test_capture_on_change, &tc_default),
		CASE(".snapshots hidden and listing", test_snapdir, &tc_default),
		CASE("-o snapdir=snaps", test_snapdir, &tc_snapdir),
		CASE(".snapshots in SRC hidden", test_snapdir_shadows_src, &tc_default),
		CASE("list and delete", test_list_delete, &tc_default),
		CASE("two views", test_two_views, &tc_default),
		CASE("open across delete", test_open_across_delete, &tc_default),
		CASE("names", test_names, &tc_default),
		CASE("permissions as nobody", test_permissions, &tc_others),
		CASE("oob detect (lenient)", test_oob, &tc_default),
		CASE("oob preserve on ext4 (lenient)", test_oob, &tc_oob_preserve),
	};
	struct CMUnitTest tests[N_CHANGES + sizeof(fixed) / sizeof(fixed[0])];
	const char *filter = getenv("SFS_TEST_FILTER");
	size_t n = 0;

	for (size_t i = 0; i < N_CHANGES; i++)
		tests[n++] = (struct CMUnitTest)CASE(changes[i].name, test_change,
						      &changes[i]);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		tests[n++] = fixed[i];
	if (geteuid() != 0)
		test_skip_all("needs root (allow_other, nobody, loop devices)");
	test_require_fuse();
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return _cmocka_run_group_tests("views", tests, n, NULL, NULL);
}
