/*
 * Tree views (G7): taking them, and capturing what a change through MNT
 * is about to alter while a view still needs it. (Serving them:
 * view_ops.c; the bookkeeping of views and captures: lib/views.c.)
 *
 * The instant. Every change through MNT holds the change gate shared from
 * before it captures until it has applied (ops.c); taking a view holds it
 * exclusively, so a view never falls inside a change. A capture is made
 * by the change itself, before it applies, which is why the gate must
 * cover both.
 *
 * Changes from outside the mount cannot be gated. For them a view keeps a
 * horizon: a time stamp of SRC's filesystem taken inside the gate, such
 * that every change made before it has a ctime no later and every change
 * after a later one (we wait for the filesystem's clock to move on before
 * opening the gate). An object a view would read live but whose ctime is
 * past the horizon changed outside the mount after the instant: the view
 * answers EIO for it, never a mix of two instants. Under -o oob=preserve
 * the watch captures files before it lets changes from outside through
 * (oob_events.c), from the moment the view exists; what it let through
 * before lands before the horizon is stamped (view_create).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "view.h"
#include "sfs/paths.h"
#include "sfs/lock_order.h"
#include "sfs/stats.h"
#include "sfs/view_ioctl.h"

/*
 * A time stamp of SRC's filesystem now: the ctime of a new anonymous file
 * in SRC's root (O_TMPFILE: no name, so the root's own times do not
 * move). Where SRC has no O_TMPFILE, the clock the local filesystems use.
 */
static void fs_now(struct sfs_fs *fs, struct timespec *now)
{
	struct sfs_inode *root = sfs_itable_root(fs->inodes)->inode;
	int rfd = sfs_inode_fd_get(fs->inodes, root), fd = -1;
	struct stat st;

	if (rfd >= 0) {
		char path[SFS_PROC_PATH_MAX];

		sfs_proc_path(path, rfd);
		fd = open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		sfs_inode_fd_put(fs->inodes, root);
	}
	if (fd >= 0 && fstat(fd, &st) == 0)
		*now = st.st_ctim;
	else
		clock_gettime(CLOCK_REALTIME, now);
	if (fd >= 0)
		close(fd);
}

/*
 * The horizon of a view taken now (under the exclusive gate): a stamp
 * later than every change before, earlier than every one after. Waits
 * (a clock tick at most) until the filesystem's clock has moved past it.
 */
static struct timespec take_horizon(struct sfs_fs *fs)
{
	struct timespec horizon, now;

	fs_now(fs, &horizon);
	for (int i = 0; i < 1000; i++) {
		fs_now(fs, &now);
		if (view_ts_after(now, horizon))
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 }, NULL);
	}
	return horizon;
}

/* ---- captures ---------------------------------------------------------- */

static void capture_free(void *payload, void *ctx)
{
	struct view_capture *c = payload;
	struct sfs_fs *fs = ctx;

	if (c->snap)
		sfs_history_close(sfs_inode_history(c->held->inode), fs->store,
				  c->snap);
	if (c->held)
		sfs_itable_forget(fs->inodes, c->held, 1);
	if (c->keep_fd >= 0)
		close(c->keep_fd);
	g_free(c->target);
	if (c->xattrs)
		g_byte_array_free(c->xattrs, TRUE);
	view_dir_put(c->dir);
	g_free(c);
}

/*
 * The object's entry in the inode table, held: its fd comes from the fd
 * cache (reopened from its handle when closed), so a capture costs no fd
 * of its own while the object still has a name.
 */
static int capture_hold(struct sfs_fs *fs, struct view_capture *c, int path_fd)
{
	int fd = fcntl(path_fd, F_DUPFD_CLOEXEC, 0);

	if (fd < 0)
		return errno;
	c->held = sfs_itable_lookup(fs->inodes, fd, &c->st, 0);
	return c->held ? 0 : errno;
}

/*
 * Keep the object itself alive: its name is about to go (unlink, rmdir,
 * rename over it), and an unlinked inode lives only while an fd holds it
 * (its handle no longer opens). Atomic: views read it without a lock.
 */
static void capture_keep(struct view_capture *c, int path_fd)
{
	int fd, none = -1;

	if (__atomic_load_n(&c->keep_fd, __ATOMIC_ACQUIRE) >= 0)
		return;
	fd = fcntl(path_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		sfs_stat_add(SFS_STAT_VIEW_CAPTURE_FAILURES, 1);
		fuse_log(FUSE_LOG_ERR, "stablefs: cannot keep a removed inode "
			 "for views: %s\n", strerror(errno));
		return;
	}
	if (!__atomic_compare_exchange_n(&c->keep_fd, &none, fd, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		close(fd);
}

/* Everything a view may ask of the object path_fd refers to, as it is. */
static struct view_capture *capture_build(struct sfs_fs *fs, int path_fd,
					  const struct stat *st, bool held,
					  int *err)
{
	struct view_capture *c = g_new0(struct view_capture, 1);
	char buf[PATH_MAX + 1];
	ssize_t n;

	c->st = *st;
	c->keep_fd = -1;
	*err = capture_hold(fs, c, path_fd);
	if (!*err)
		*err = view_xattrs_read(path_fd, &c->xattrs, &c->xattrs_known);
	if (*err)
		goto fail;
	switch (st->st_mode & S_IFMT) {
	case S_IFDIR:
		c->dir = view_dir_read(path_fd);
		*err = c->dir ? 0 : errno;
		break;
	case S_IFLNK:
		n = readlinkat(path_fd, "", buf, sizeof(buf) - 1);
		*err = n < 0 ? errno : 0;
		if (n >= 0)
			c->target = g_strndup(buf, (gsize)n);
		break;
	case S_IFREG:
		/* Its bytes now: later changes preserve what it needs. From
		 * the watch's handler (held), the file is watched already (its
		 * event came), and neither arming nor a change under way may
		 * be waited for: the handler ends some itself (a grant). Then
		 * no capture: the change lands, and the view answers EIO. */
		c->snap = held ? sfs_snapshot_try_open(fs, c->held->inode, path_fd) :
			  sfs_snapshot_take(fs, c->held->inode, path_fd);
		*err = c->snap ? 0 : (errno ? errno : ENOMEM);
		break;
	}
	if (!*err)
		return c;
fail:
	capture_free(c, fs);
	return NULL;
}

/*
 * Capture the object path_fd refers to for the views that need it, before
 * a change through MNT alters it. Never fails the change: a view that
 * cannot be given the object's old state is told so in the log, and its
 * reads of it fail later (EIO), never show the new state as the old.
 */
/*
 * A capture that failed: the change still goes ahead (writers never wait
 * or fail for a view), so the views that needed the object must answer
 * EIO for it from now on. Recorded as a capture, so a later change cannot
 * capture the changed state as the old one.
 */
static struct view_capture *capture_lost(const struct stat *st)
{
	struct view_capture *c = g_new0(struct view_capture, 1);

	sfs_stat_add(SFS_STAT_VIEW_CAPTURE_FAILURES, 1);
	c->st = *st;
	c->keep_fd = -1;
	c->lost = true;
	return c;
}

static void keep_one(void *payload, void *fd)
{
	capture_keep(payload, *(int *)fd);
}

static void capture_fd(struct sfs_fs *fs, int path_fd, bool keep)
{
	struct view_capture *c;
	struct stat st;
	int err;

	if (fstat(path_fd, &st) == -1)
		return;
	if (!sfs_views_need_capture(fs->views, st.st_dev, st.st_ino)) {
		/* Captured before: those captures must keep it now. */
		if (keep)
			sfs_views_foreach_capture_of(fs->views, st.st_dev,
						     st.st_ino, keep_one, &path_fd);
		return;
	}
	c = capture_build(fs, path_fd, &st, false, &err);
	if (c && keep)
		capture_keep(c, path_fd);
	if (!c) {
		fuse_log(FUSE_LOG_ERR, "stablefs: cannot keep inode %llu as "
			 "views see it: %s\n", (unsigned long long)st.st_ino,
			 strerror(err));
		c = capture_lost(&st);
	}
	if (!sfs_views_add_capture(fs->views, st.st_dev, st.st_ino, c)) {
		capture_free(c, fs);
		if (keep)	/* another change captured it first */
			sfs_views_foreach_capture_of(fs->views, st.st_dev,
						     st.st_ino, keep_one, &path_fd);
	}
}

void sfs_view_capture_inode(struct sfs_fs *fs, struct sfs_inode *inode)
{
	int fd;

	if (!fs->views || !sfs_views_any(fs->views))
		return;
	fd = sfs_inode_fd_get(fs->inodes, inode);
	if (fd < 0)
		return;
	capture_fd(fs, fd, false);
	sfs_inode_fd_put(fs->inodes, inode);
}

void sfs_view_capture_name(struct sfs_fs *fs, struct sfs_inode *dir,
			   const char *name)
{
	int dir_fd, fd;

	if (!fs->views || !sfs_views_any(fs->views) || !sfs_name_is_safe(name))
		return;
	dir_fd = sfs_inode_fd_get(fs->inodes, dir);
	if (dir_fd < 0)
		return;
	fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	sfs_inode_fd_put(fs->inodes, dir);
	if (fd >= 0) {
		capture_fd(fs, fd, true);
		close(fd);
	}
}

bool sfs_view_capture_held(struct sfs_fs *fs, int fd, const struct stat *st)
{
	char path[SFS_PROC_PATH_MAX];
	struct view_capture *c;
	int err, path_fd;

	if (!fs->views || !sfs_views_any(fs->views) ||
	    !sfs_views_need_capture(fs->views, st->st_dev, st->st_ino))
		return false;
	/* An O_PATH fd of our own: the event's is a plain open file. */
	sfs_proc_path(path, fd);
	path_fd = open(path, O_PATH | O_CLOEXEC);
	c = path_fd < 0 ? NULL : capture_build(fs, path_fd, st, true, &err);
	if (path_fd >= 0)
		close(path_fd);
	if (!c)
		c = capture_lost(st);
	if (!sfs_views_add_capture(fs->views, st->st_dev, st->st_ino, c)) {
		capture_free(c, fs);
		return false;
	}
	if (c->lost)
		return false;
	sfs_stat_add(SFS_STAT_VIEW_OOB_CAPTURES, 1);
	return true;
}

void sfs_view_note_created(struct sfs_fs *fs, const struct stat *st)
{
	if (fs->views && sfs_views_any(fs->views))
		sfs_views_add_capture(fs->views, st->st_dev, st->st_ino, NULL);
}

/* ---- max_preserve: invalidating whole views ----------------------------- */

/*
 * lib/history.c's reclaim calls these (struct sfs_view_reclaim) inside a
 * preservation that would pass the cap, holding that file's history
 * mutex (held) and the list of all snapshots: they take the views' lock,
 * and the histories of captured files only with trylock.
 */
#define VIEW_INVALID_WHY "max_preserve reached: its view was invalidated"

struct reclaim_arg {
	struct sfs_history *held;
	struct sfs_store *store;
};

static bool capture_holds_bytes(void *payload, void *arg)
{
	struct view_capture *c = payload;
	struct reclaim_arg *r = arg;

	return c->snap && sfs_snap_holds_bytes(r->held, c->snap);
}

static void capture_reclaim(void *payload, void *arg)
{
	struct view_capture *c = payload;
	struct reclaim_arg *r = arg;

	if (c->snap)
		sfs_snap_reclaim(r->held, r->store, c->snap, VIEW_INVALID_WHY);
}

static uint64_t oldest_view_holding(void *ctx, struct sfs_history *held)
{
	struct sfs_fs *fs = ctx;
	struct reclaim_arg r = { held, fs->store };

	return sfs_views_oldest_holding(fs->views, capture_holds_bytes, &r);
}

/* view was just invalidated (we have a hold on it): said once per view,
 * since a view is invalidated only once. */
static void view_invalidated(struct sfs_fs *fs, struct sfs_view *view,
			     const char *because)
{
	sfs_stat_add(SFS_STAT_VIEWS_INVALIDATED_CAP, 1);
	fuse_log(FUSE_LOG_ERR, "stablefs: view %s invalidated: max_preserve "
		 "reached and %s; everything in it answers EIO until it is "
		 "deleted\n", sfs_view_name(view), because);
	/* The kernel's cached nodes and pages of it go on the evictor
	 * thread: not here, under the history's locks. */
	sfs_view_forget_cached_later(fs, view);
}

static bool invalidate_oldest_view(void *ctx, struct sfs_history *held,
				   struct sfs_store *s)
{
	struct sfs_fs *fs = ctx;
	struct reclaim_arg r = { held, s };
	struct sfs_view *view;

	view = sfs_views_invalidate_oldest(fs->views, capture_holds_bytes,
					   capture_reclaim, &r, VIEW_INVALID_WHY);
	if (view)
		view_invalidated(fs, view, "it was the oldest view keeping bytes");
	return view != NULL;
}

struct users_arg {
	struct reclaim_arg r;
	struct sfs_snap *snap;
};

static bool capture_uses(void *payload, void *arg)
{
	return ((struct view_capture *)payload)->snap ==
	       ((struct users_arg *)arg)->snap;
}

static void capture_reclaim_user(void *payload, void *arg)
{
	capture_reclaim(payload, &((struct users_arg *)arg)->r);
}

static void invalidate_snap_users(void *ctx, struct sfs_history *held,
				  struct sfs_store *s, struct sfs_snap *snap)
{
	struct sfs_fs *fs = ctx;
	struct users_arg u = { { held, s }, snap };
	GPtrArray *gone;

	gone = sfs_views_invalidate_using(fs->views, capture_uses,
					  capture_reclaim_user, &u,
					  VIEW_INVALID_WHY);
	for (guint i = 0; i < gone->len; i++)
		view_invalidated(fs, g_ptr_array_index(gone, i),
				 "a change needed more for it than the cap leaves");
	g_ptr_array_free(gone, TRUE);
}

/* ---- the gate ---------------------------------------------------------- */

void sfs_change_begin(struct sfs_fs *fs)
{
	if (!fs->views)
		return;
	sfs_lock_order_acquire(SFS_RANK_VIEW_GATE, &fs->view_gate);
	pthread_rwlock_rdlock(&fs->view_gate);
}

void sfs_change_end(struct sfs_fs *fs)
{
	if (!fs->views)
		return;
	sfs_lock_order_release(&fs->view_gate);
	pthread_rwlock_unlock(&fs->view_gate);
}

/* ---- taking, deleting and listing views -------------------------------- */

static int view_create(struct sfs_fs *fs, const char *name)
{
	struct timespec created, horizon;
	int err;

	if (!sfs_view_name_ok(name))
		return EINVAL;
	sfs_lock_order_acquire(SFS_RANK_VIEW_GATE, &fs->view_gate);
	pthread_rwlock_wrlock(&fs->view_gate);
	clock_gettime(CLOCK_REALTIME, &created);
	/*
	 * Changes from outside: from the moment the view exists, the watch
	 * captures a file before it lets a change of it through; changes let
	 * through before must land before the horizon (unignore_all waits
	 * for them). Until then the view's horizon is "now": conservative.
	 */
	fs_now(fs, &horizon);
	err = sfs_views_create(fs->views, name, &created, &horizon);
	if (!err) {
		sfs_oob_watch_drain(fs->watch);
		sfs_oob_watch_unignore_all(fs->watch);
		horizon = take_horizon(fs);
		sfs_views_set_horizon(fs->views, name, &horizon);
	}
	sfs_lock_order_release(&fs->view_gate);
	pthread_rwlock_unlock(&fs->view_gate);
	if (!err)
		fuse_log(FUSE_LOG_INFO, "stablefs: view %s taken\n", name);
	return err;
}

/* Only the mount's owner (or root) takes and deletes views: each one
 * makes later changes keep bytes in the store. */
static bool may_manage_views(fuse_req_t req)
{
	uid_t uid = fuse_req_ctx(req)->uid;

	return uid == 0 || uid == getuid();
}

bool sfs_views_ioctl(fuse_req_t req, unsigned int cmd, const void *in,
		     size_t in_size)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct sfs_ioc_view v;
	int err;

	if (cmd != SFS_IOC_VIEW_CREATE && cmd != SFS_IOC_VIEW_DELETE)
		return false;
	if (!fs->views)
		err = EMEDIUMTYPE;	/* -o snapshot=off: nothing keeps bytes */
	else if (in_size < sizeof(v))
		err = EINVAL;
	else if (!may_manage_views(req))
		err = EPERM;
	else {
		memcpy(&v, in, sizeof(v));
		/* Unterminated: a caller's bug, not a name cut short. */
		if (!memchr(v.name, '\0', sizeof(v.name)) ||
		    !sfs_view_name_ok(v.name))
			err = EINVAL;
		else if (cmd == SFS_IOC_VIEW_CREATE)
			err = view_create(fs, v.name);
		else
			err = sfs_views_delete(fs->views, v.name);
	}
	if (err) {
		fuse_reply_err(req, err);
		return true;
	}
	/* Before the reply, so that once the delete returns the name is
	 * gone for everyone: the kernel drops its cached entry (the
	 * deleting process holds no lock of the snapdir's, so this cannot
	 * wait for us). */
	if (cmd == SFS_IOC_VIEW_DELETE)
		sfs_view_forget_name(fs, v.name);
	fuse_reply_ioctl(req, 0, NULL, 0);
	return true;
}

/* JSON string of s: quotes, backslashes and control bytes escaped. */
static void put_json_string(GString *out, const char *s)
{
	g_string_append_c(out, '"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			g_string_append_printf(out, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			g_string_append_printf(out, "\\u%04x", ch);
		else
			g_string_append_c(out, (gchar)ch);
	}
	g_string_append_c(out, '"');
}

struct view_sum {
	uint64_t captures, bytes;
	bool invalid;
};

static void collect_capture(void *payload, void *arg)
{
	g_ptr_array_add(arg, payload);
}

/*
 * What view keeps and whether it is whole. The captures are gathered
 * under the views' lock and summed after it: a history's mutex is never
 * waited for under it (max_preserve takes it under one). The reference on
 * view keeps them.
 */
static void view_summary(struct sfs_fs *fs, struct sfs_view *view,
			 struct view_sum *sum)
{
	GPtrArray *caps = g_ptr_array_new();

	sfs_view_foreach_capture(fs->views, view, collect_capture, caps);
	sum->invalid = sfs_view_invalid(fs->views, view) != NULL;
	for (guint i = 0; i < caps->len; i++) {
		struct view_capture *c = g_ptr_array_index(caps, i);

		sum->captures++;
		sum->invalid |= c->lost;
		if (c->snap) {
			struct sfs_history *h = sfs_inode_history(c->held->inode);

			sum->bytes += sfs_snap_preserved_bytes(h, c->snap);
			sum->invalid |= sfs_snap_unreadable(h, c->snap);
		}
	}
	g_ptr_array_free(caps, TRUE);
}

char *sfs_views_json(struct sfs_fs *fs, size_t *len)
{
	GString *out = g_string_new("{\"snapdir\":");
	struct sfs_view **list = NULL;
	size_t n = fs->views ? sfs_views_list(fs->views, &list) : 0;

	put_json_string(out, sfs_snapdir(fs));
	g_string_append(out, ",\"views\":[");
	for (size_t i = 0; i < n; i++) {
		struct view_sum sum = { 0 };
		struct timespec t = sfs_view_created(list[i]);

		view_summary(fs, list[i], &sum);
		g_string_append(out, i ? ",{\"name\":" : "{\"name\":");
		put_json_string(out, sfs_view_name(list[i]));
		g_string_append_printf(out, ",\"epoch\":%llu,\"created_ns\":%llu,"
				       "\"captures\":%llu,\"bytes_preserved\":%llu,"
				       "\"invalid\":%s}",
				       (unsigned long long)sfs_view_epoch(list[i]),
				       (unsigned long long)t.tv_sec * 1000000000ull +
				       (unsigned long long)t.tv_nsec,
				       (unsigned long long)sum.captures,
				       (unsigned long long)sum.bytes,
				       sum.invalid ? "true" : "false");
		sfs_view_put(fs->views, list[i]);
	}
	g_free(list);
	g_string_append(out, "]}");
	*len = out->len;
	return g_string_free(out, FALSE);
}

/* ---- life ---------------------------------------------------------------- */

int sfs_views_start(struct sfs_fs *fs)
{
	pthread_rwlockattr_t a;

	if (!fs->store)
		return 0;	/* views keep file bytes as snapshots do */
	/* Writer-preferring: a stream of changes must not starve a view. */
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fs->view_gate, &a);
	pthread_rwlockattr_destroy(&a);
	fs->views = sfs_views_new(capture_free, fs);
	fs->capture_held = sfs_view_capture_held;
	sfs_history_set_view_reclaim(&(struct sfs_view_reclaim){
		.oldest = oldest_view_holding,
		.invalidate_oldest = invalidate_oldest_view,
		.invalidate_users = invalidate_snap_users,
		.ctx = fs,
	});
	return 0;
}

void sfs_views_stop(struct sfs_fs *fs)
{
	if (!fs->views)
		return;
	sfs_history_set_view_reclaim(NULL);
	sfs_view_nodes_free(fs);
	sfs_views_free(fs->views);
	fs->views = NULL;
	pthread_rwlock_destroy(&fs->view_gate);
}
