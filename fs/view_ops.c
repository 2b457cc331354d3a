/*
 * Serving views: MNT/<snapdir>/ lists them, MNT/<snapdir>/NAME/ is the
 * tree as it was when view NAME was taken.
 *
 * A view's objects are nodes of their own (struct vnode), one per (view,
 * object), so the kernel caches each view's pages and attributes apart
 * from the live tree's and from other views'. Their nodeids are the
 * vnode's address with the low bit set: live nodes are malloc'd (aligned),
 * so the bit tells them apart, and FUSE_ROOT_ID (1) is never a vnode.
 *
 * What a view shows of an object: its capture if a change through MNT
 * made one for the view (fs/views.c), else the live object, which has not
 * changed through MNT since the view, provided nothing changed it from
 * outside either (ctime not past the view's horizon: else EIO). Reading
 * the live object and then finding no capture proves the live state was
 * the view's: a change captures before it applies, so the check runs
 * after the read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "view.h"
#include "sfs/paths.h"
#include "sfs/stats.h"

struct vnode {
	struct sfs_view *view;	/* NULL: the snapdir itself */
	dev_t dev;
	ino_t ino;
	/* One lookup of the object's inode-table entry: its fd comes from
	 * the fd cache, so the kernel may cache more of a view's nodes than
	 * the daemon may hold fds (vnode_fd_get). */
	struct sfs_node *live;
	uint64_t nlookup;	/* vnodes_lock */
};

/* (view, dev, ino) -> vnode, for every vnode the kernel knows. */
static pthread_mutex_t vnodes_lock = PTHREAD_MUTEX_INITIALIZER;
static GHashTable *vnodes;
static struct vnode snapdir;

/* The snapdir's inode number: not one SRC's root could have (find and
 * du would call two directories with one number a loop). */
#define SNAPDIR_INO ((ino_t)0xfffffffffffff001ull)

static guint vnode_hash(gconstpointer p)
{
	const struct vnode *v = p;

	return g_direct_hash(v->view) ^ (guint)v->ino ^ (guint)(v->ino >> 32) ^
	       (guint)v->dev;
}

static gboolean vnode_equal(gconstpointer a, gconstpointer b)
{
	const struct vnode *x = a, *y = b;

	return x->view == y->view && x->dev == y->dev && x->ino == y->ino;
}

bool sfs_is_view_ino(fuse_ino_t ino)
{
	return ino != FUSE_ROOT_ID && (ino & 1);
}

static struct vnode *vnode_of(fuse_ino_t ino)
{
	return (struct vnode *)(uintptr_t)(ino & ~(fuse_ino_t)1);
}

static fuse_ino_t vnode_id(struct vnode *v)
{
	return (fuse_ino_t)(uintptr_t)v | 1;
}

/* With vnodes_lock: the vnode of key, with one more lookup, or NULL. */
static struct vnode *vnode_find(const struct vnode *key)
{
	struct vnode *v;

	if (!vnodes)
		vnodes = g_hash_table_new(vnode_hash, vnode_equal);
	v = g_hash_table_lookup(vnodes, key);
	if (v)
		v->nlookup++;
	return v;
}

/*
 * One kernel lookup of (view, st) whose O_PATH fd is fd (consumed): the
 * object's vnode, or NULL with errno. A new one holds the view (a hold,
 * not a reference: the kernel may cache it long after the view is deleted,
 * which must not keep the view's bytes).
 */
static struct vnode *vnode_lookup(struct sfs_fs *fs, struct sfs_view *view,
				  const struct stat *st, int fd)
{
	struct vnode key = { .view = view, .dev = st->st_dev, .ino = st->st_ino };
	struct sfs_node *live;
	struct vnode *v;

	pthread_mutex_lock(&vnodes_lock);
	v = vnode_find(&key);
	pthread_mutex_unlock(&vnodes_lock);
	if (v) {
		close(fd);
		return v;
	}
	/* The table's lock is not taken under ours. */
	live = sfs_itable_lookup(fs->inodes, fd, st, 0);
	if (!live)
		return NULL;
	pthread_mutex_lock(&vnodes_lock);
	v = vnode_find(&key);
	if (!v) {
		v = g_new0(struct vnode, 1);
		*v = key;
		v->live = live;
		v->nlookup = 1;
		g_hash_table_add(vnodes, v);
		sfs_view_hold(fs->views, view);
		live = NULL;
	}
	pthread_mutex_unlock(&vnodes_lock);
	if (live)	/* another lookup made it meanwhile */
		sfs_itable_forget(fs->inodes, live, 1);
	return v;
}

static void vnode_free(struct sfs_fs *fs, struct vnode *v)
{
	sfs_itable_forget(fs->inodes, v->live, 1);
	sfs_view_release(fs->views, v->view);
	g_free(v);
}

static void vnode_forget(struct sfs_fs *fs, struct vnode *v, uint64_t n)
{
	bool dead = false;

	pthread_mutex_lock(&vnodes_lock);
	v->nlookup -= MIN(n, v->nlookup);
	if (!v->nlookup && v != &snapdir) {
		g_hash_table_remove(vnodes, v);
		dead = true;
	}
	pthread_mutex_unlock(&vnodes_lock);
	if (dead)
		vnode_free(fs, v);
}

void sfs_view_nodes_free(struct sfs_fs *fs)
{
	GHashTableIter it;
	gpointer key;

	if (!vnodes)
		return;
	g_hash_table_iter_init(&it, vnodes);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		vnode_free(fs, key);
	}
	g_hash_table_destroy(vnodes);
	vnodes = NULL;
}

/* ---- what a view shows of an object ------------------------------------ */

/*
 * A reference on view for one operation: 0, ESTALE (deleted), or EIO:
 * invalidated under max_preserve, every object of it answers EIO (its
 * name stays listed in the snapdir until it is deleted).
 */
static int view_enter(struct sfs_fs *fs, struct sfs_view *view)
{
	if (!sfs_view_try_ref(fs->views, view))
		return ESTALE;
	if (sfs_view_invalid(fs->views, view)) {
		sfs_view_put(fs->views, view);
		return EIO;
	}
	return 0;
}

/*
 * What every capture past a view's horizon is to that view: lost. Such a
 * capture was made after the object had changed outside the mount (a
 * chmod or a write in SRC that nothing announced, then a change through
 * MNT or a held write in SRC that captured it): it holds a state after
 * the instant, which the view must not serve as the instant's.
 */
static struct view_capture capture_past_horizon = { .keep_fd = -1, .lost = true };

static struct view_capture *capture_of(struct sfs_fs *fs, struct sfs_view *view,
				       dev_t dev, ino_t ino, bool *found)
{
	struct view_capture *c = NULL;
	void *p = NULL;

	*found = sfs_views_capture_for(fs->views, view, dev, ino, &p);
	c = p;
	if (c && !c->lost && view_changed_outside(view, &c->st)) {
		view_note_outside(view, &c->st);
		return &capture_past_horizon;
	}
	return c;
}

/*
 * An O_PATH fd of v's object for one operation, or -1 with errno: its
 * inode-table entry's, or, once the object has no name (its handle no
 * longer opens), the one its capture keeps. vnode_fd_put() after.
 */
static int vnode_fd_get(struct sfs_fs *fs, struct vnode *v, bool *table)
{
	struct view_capture *c;
	bool found;
	int fd = sfs_inode_fd_get(fs->inodes, v->live->inode);

	*table = fd >= 0;
	if (fd >= 0)
		return fd;
	c = capture_of(fs, v->view, v->dev, v->ino, &found);
	fd = c ? __atomic_load_n(&c->keep_fd, __ATOMIC_ACQUIRE) : -1;
	if (fd < 0)
		errno = EIO;	/* gone, and not through MNT */
	return fd;
}

static void vnode_fd_put(struct sfs_fs *fs, struct vnode *v, bool table)
{
	if (table)
		sfs_inode_fd_put(fs->inodes, v->live->inode);
}

/*
 * The attributes view shows for the object fd refers to: 0, ENOENT (it
 * did not exist then), or EIO (changed outside the mount since).
 */
static int object_stat(struct sfs_fs *fs, struct sfs_view *view, int fd,
		       struct stat *st, struct view_capture **cap)
{
	struct view_capture *c;
	bool found;

	*cap = NULL;
	if (fstat(fd, st) == -1)
		return errno;
	c = capture_of(fs, view, st->st_dev, st->st_ino, &found);
	if (found) {
		/* Made after the view, yet reached through it: its inode
		 * number was reused outside the mount. Or it could not be
		 * kept when it changed. */
		if (!c || c->lost) {
			sfs_stat_add(SFS_STAT_VIEW_EIO, 1);
			return EIO;
		}
		*st = c->st;
		*cap = c;
		return 0;
	}
	if (view_changed_outside(view, st)) {
		view_note_outside(view, st);
		return EIO;
	}
	return 0;
}

/*
 * The object a captured directory names name (inode ino then): the
 * object's own capture if it has one (it moved or went away through MNT),
 * else the live entry of that name, if it is still that inode. An O_PATH
 * fd of it into *fd.
 */
/* An fd of its own of the object capture c is of. */
static int captured_fd(struct sfs_fs *fs, struct view_capture *c, int *fd)
{
	int keep = __atomic_load_n(&c->keep_fd, __ATOMIC_ACQUIRE), tfd;

	if (keep >= 0) {
		*fd = fcntl(keep, F_DUPFD_CLOEXEC, 0);
		return *fd < 0 ? errno : 0;
	}
	tfd = sfs_inode_fd_get(fs->inodes, c->held->inode);
	if (tfd < 0)
		return EIO;	/* gone, and not through MNT */
	*fd = fcntl(tfd, F_DUPFD_CLOEXEC, 0);
	sfs_inode_fd_put(fs->inodes, c->held->inode);
	return *fd < 0 ? errno : 0;
}

static int captured_child(struct sfs_fs *fs, struct vnode *dir, int dir_fd,
			  const char *name, ino_t ino, int *fd)
{
	struct view_capture *c;
	struct stat st;
	bool found;

	c = capture_of(fs, dir->view, dir->dev, ino, &found);
	if (found && c && !c->lost)
		return captured_fd(fs, c, fd);
	if (found) {	/* made after the view (its number was reused), or lost */
		sfs_stat_add(SFS_STAT_VIEW_EIO, 1);
		return EIO;
	}
	*fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (*fd >= 0 && fstat(*fd, &st) == 0 && st.st_ino == ino)
		return 0;
	/* Gone, or the name is another file's now, and not through MNT. */
	if (*fd >= 0)
		close(*fd);
	sfs_stat_add(SFS_STAT_VIEW_EIO, 1);
	return EIO;
}

/*
 * An O_PATH fd of the object view dir names name (as the view sees it).
 * 0, ENOENT, or EIO.
 */
static int child_fd(struct sfs_fs *fs, struct vnode *dir, int dir_fd,
		    const char *name, int *fd)
{
	for (;;) {
		struct view_capture *c;
		struct stat st;
		bool found;
		int err;

		c = capture_of(fs, dir->view, dir->dev, dir->ino, &found);
		if (found) {
			const struct view_dirent *e = c && c->dir ?
				view_dir_find(c->dir, name) : NULL;

			if (c && c->lost)
				return EIO;

			return e ? captured_child(fs, dir, dir_fd, name, e->ino, fd) :
				   ENOENT;
		}
		*fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		err = *fd < 0 ? errno : 0;
		capture_of(fs, dir->view, dir->dev, dir->ino, &found);
		if (found) {		/* changed meanwhile: ask the capture */
			if (*fd >= 0)
				close(*fd);
			continue;
		}
		if (fstat(dir_fd, &st) == 0 && view_changed_outside(dir->view, &st)) {
			if (*fd >= 0)
				close(*fd);
			view_note_outside(dir->view, &st);
			return EIO;
		}
		return err;
	}
}

/*
 * Is v a view's root? Its entry named like the snapdir was hidden behind
 * the snapdir in MNT's root at the instant, so it is in the view too.
 */
static bool is_view_root(struct sfs_fs *fs, const struct vnode *v)
{
	const struct sfs_inode *root = sfs_itable_root(fs->inodes)->inode;

	return v->view && v->dev == root->dev && v->ino == root->ino;
}

/* child_fd with dir's own fd. */
static int child_of(struct sfs_fs *fs, struct vnode *dir, const char *name,
		    int *fd)
{
	bool table;
	int dir_fd, err;

	if (is_view_root(fs, dir) && !strcmp(name, sfs_snapdir(fs)))
		return ENOENT;
	dir_fd = vnode_fd_get(fs, dir, &table);
	if (dir_fd < 0)
		return errno;
	err = child_fd(fs, dir, dir_fd, name, fd);
	vnode_fd_put(fs, dir, table);
	return err;
}

/* object_stat() of vnode v's object. */
static int vnode_stat(struct sfs_fs *fs, struct vnode *v, struct stat *st,
		      struct view_capture **cap)
{
	bool table;
	int fd = vnode_fd_get(fs, v, &table), err;

	if (fd < 0)
		return errno;
	err = object_stat(fs, v->view, fd, st, cap);
	vnode_fd_put(fs, v, table);
	return err;
}

static void fill_entry(struct sfs_fs *fs, struct fuse_entry_param *e,
		       struct vnode *v, const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->ino = vnode_id(v);
	e->attr = *st;
	e->attr_timeout = fs->opts.timeout;
	e->entry_timeout = fs->opts.timeout;
}

/* The snapdir's attributes: SRC's root's owner, read and search only. */
static int snapdir_stat(struct sfs_fs *fs, struct stat *st)
{
	struct sfs_inode *root = sfs_itable_root(fs->inodes)->inode;
	int fd = sfs_inode_fd_get(fs->inodes, root), err;

	if (fd < 0)
		return errno;
	err = fstat(fd, st) == -1 ? errno : 0;
	sfs_inode_fd_put(fs->inodes, root);
	st->st_ino = SNAPDIR_INO;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	return err;
}

void sfs_view_lookup_snapdir(fuse_req_t req)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct fuse_entry_param e;
	struct stat st;
	int err = snapdir_stat(fs, &st);

	if (err)
		return (void)fuse_reply_err(req, err);
	pthread_mutex_lock(&vnodes_lock);
	snapdir.nlookup++;
	pthread_mutex_unlock(&vnodes_lock);
	fill_entry(fs, &e, &snapdir, &st);
	if (fuse_reply_entry(req, &e) == -ENOENT)
		vnode_forget(fs, &snapdir, 1);
}

/* The root of view name: SRC's root as the view sees it. */
static int view_root_fd(struct sfs_fs *fs, int *fd)
{
	struct sfs_inode *root = sfs_itable_root(fs->inodes)->inode;
	int rfd = sfs_inode_fd_get(fs->inodes, root);

	if (rfd < 0)
		return errno;
	*fd = fcntl(rfd, F_DUPFD_CLOEXEC, 0);
	sfs_inode_fd_put(fs->inodes, root);
	return *fd < 0 ? errno : 0;
}

static void reply_vnode_entry(fuse_req_t req, struct sfs_view *view, int fd)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct view_capture *cap;
	struct fuse_entry_param e;
	struct vnode *v;
	struct stat st;
	int err = object_stat(fs, view, fd, &st, &cap);

	if (err) {
		close(fd);
		sfs_view_put(fs->views, view);
		return (void)fuse_reply_err(req, err);
	}
	v = vnode_lookup(fs, view, &st, fd);
	sfs_view_put(fs->views, view);
	if (!v)
		return (void)fuse_reply_err(req, errno);
	fill_entry(fs, &e, v, &st);
	if (fuse_reply_entry(req, &e) == -ENOENT)
		vnode_forget(fs, v, 1);
}

void sfs_vop_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct vnode *dir = vnode_of(parent);
	struct sfs_view *view;
	int fd, err;

	if (dir == &snapdir) {
		view = sfs_views_get(fs->views, name);
		if (!view)
			return (void)fuse_reply_err(req, ENOENT);
		err = sfs_view_invalid(fs->views, view) ? EIO :
		      view_root_fd(fs, &fd);
	} else {
		view = dir->view;
		err = view_enter(fs, view);
		/* A deleted view's cached directories find nothing more. */
		if (err)
			return (void)fuse_reply_err(req, err == ESTALE ? ENOENT : err);
		err = sfs_name_is_safe(name) ? child_of(fs, dir, name, &fd) : ENOENT;
	}
	if (err) {
		sfs_view_put(fs->views, view);
		return (void)fuse_reply_err(req, err);
	}
	reply_vnode_entry(req, view, fd);
}

void sfs_vop_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n)
{
	vnode_forget(sfs_fs_of(req), vnode_of(ino), n);
}

void sfs_vop_getattr(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct vnode *v = vnode_of(ino);
	struct view_capture *cap;
	struct stat st;
	int err;

	if (v == &snapdir)
		err = snapdir_stat(fs, &st);
	else if ((err = view_enter(fs, v->view)))
		;	/* deleted (ESTALE) or invalidated (EIO) */
	else {
		err = vnode_stat(fs, v, &st, &cap);
		sfs_view_put(fs->views, v->view);
	}
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, fs->opts.timeout);
}

void sfs_vop_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct vnode *v = vnode_of(ino);
	char buf[PATH_MAX + 1];
	struct view_capture *cap;
	struct stat st;
	ssize_t n = -1;
	bool table;
	int err, fd;

	if (v == &snapdir)
		return (void)fuse_reply_err(req, EINVAL);
	if ((err = view_enter(fs, v->view)))
		return (void)fuse_reply_err(req, err);
	fd = vnode_fd_get(fs, v, &table);
	if (fd >= 0) {
		n = readlinkat(fd, "", buf, sizeof(buf) - 1);
		err = n < 0 ? errno : object_stat(fs, v->view, fd, &st, &cap);
		vnode_fd_put(fs, v, table);
	} else {
		err = errno;
	}
	if (!err && cap && cap->target)
		fuse_reply_readlink(req, cap->target);
	else if (!err) {
		buf[n] = '\0';
		fuse_reply_readlink(req, buf);
	} else {
		fuse_reply_err(req, err);
	}
	sfs_view_put(fs->views, v->view);
}

void sfs_vop_statfs(fuse_req_t req)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct sfs_inode *root = sfs_itable_root(fs->inodes)->inode;
	int fd = sfs_inode_fd_get(fs->inodes, root), err;
	struct statvfs sv;

	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	err = fstatvfs(fd, &sv) == -1 ? errno : 0;
	sfs_inode_fd_put(fs->inodes, root);
	if (err)
		return (void)fuse_reply_err(req, err);
	sv.f_flag |= ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ---- directories ------------------------------------------------------- */

struct view_dir_handle {
	struct view_dir *dir;
	struct sfs_view *view;		/* NULL: the snapdir's listing */
	const char *hide;		/* a name not to list (a view's root) */
};

/* The listing of the snapdir: the views by name. */
static struct view_dir *snapdir_list(struct sfs_fs *fs)
{
	struct view_dir *d = view_dir_new();
	struct sfs_view **list;
	size_t n = sfs_views_list(fs->views, &list);
	struct view_dirent dot = { g_strdup("."), SNAPDIR_INO, DT_DIR };
	struct view_dirent dotdot = { g_strdup(".."), FUSE_ROOT_ID, DT_DIR };

	g_array_append_val(d->entries, dot);
	g_array_append_val(d->entries, dotdot);
	for (size_t i = 0; i < n; i++) {
		struct view_dirent e = {
			g_strdup(sfs_view_name(list[i])),
			/* Each view's root is SRC's root. */
			sfs_itable_root(fs->inodes)->inode->ino, DT_DIR,
		};

		g_array_append_val(d->entries, e);
		sfs_view_put(fs->views, list[i]);
	}
	g_free(list);
	return d;
}

/*
 * The entries of view directory v: its capture's, or the live ones read
 * now, if the directory did not change since the view (through MNT:
 * checked after reading; from outside: its ctime). NULL with errno.
 */
static struct view_dir *dir_entries(struct sfs_fs *fs, struct vnode *v,
				     int fd)
{
	for (;;) {
		struct view_capture *c;
		struct view_dir *d;
		struct stat st;
		bool found;

		c = capture_of(fs, v->view, v->dev, v->ino, &found);
		if (found) {
			if (!c || !c->dir) {
				errno = c && c->lost ? EIO : ENOENT;
				return NULL;
			}
			__atomic_add_fetch(&c->dir->refs, 1, __ATOMIC_ACQ_REL);
			return c->dir;
		}
		d = view_dir_read(fd);
		if (!d)
			return NULL;
		capture_of(fs, v->view, v->dev, v->ino, &found);
		if (found) {
			view_dir_put(d);
			continue;
		}
		if (fstat(fd, &st) == 0 && view_changed_outside(v->view, &st)) {
			view_dir_put(d);
			view_note_outside(v->view, &st);
			errno = EIO;
			return NULL;
		}
		return d;
	}
}

static void dir_handle_free(struct sfs_fs *fs, struct view_dir_handle *h)
{
	view_dir_put(h->dir);
	if (h->view)
		sfs_view_put(fs->views, h->view);
	g_free(h);
}

void sfs_vop_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct vnode *v = vnode_of(ino);
	struct view_dir_handle *h;
	int err = v == &snapdir ? 0 : view_enter(fs, v->view);

	if (err)
		return (void)fuse_reply_err(req, err);
	h = g_new0(struct view_dir_handle, 1);
	h->view = v->view;	/* its reference, NULL for the snapdir */
	if (v == &snapdir) {
		h->dir = snapdir_list(fs);
	} else {
		bool table;
		int fd = vnode_fd_get(fs, v, &table);

		h->dir = fd >= 0 ? dir_entries(fs, v, fd) : NULL;
		if (fd >= 0)
			vnode_fd_put(fs, v, table);
		if (is_view_root(fs, v))
			h->hide = sfs_snapdir(fs);
	}
	if (!h->dir) {
		err = errno;
		dir_handle_free(fs, h);
		return (void)fuse_reply_err(req, err);
	}
	fi->fh = (uintptr_t)h;
	/* A view's directory never changes: the kernel may cache it (not
	 * the snapdir: views come and go). */
	fi->cache_readdir = v != &snapdir;
	fi->keep_cache = v != &snapdir;
	if (fuse_reply_open(req, fi) == -ENOENT)
		dir_handle_free(fs, h);
}

void sfs_vop_readdir(fuse_req_t req, size_t size, off_t off,
		     struct fuse_file_info *fi, bool plus)
{
	struct view_dir_handle *h = (struct view_dir_handle *)(uintptr_t)fi->fh;
	GArray *entries = h->dir->entries;
	char *buf = g_malloc(size);
	size_t used = 0;

	for (guint i = (guint)MAX(off, 0); i < entries->len; i++) {
		struct view_dirent *e = &g_array_index(entries, struct view_dirent, i);
		struct stat st = { .st_ino = e->ino, .st_mode = DTTOIF(e->type) };
		size_t n;

		if (h->hide && !strcmp(e->name, h->hide))
			continue;
		if (plus) {
			/* No lookup with it (nodeid 0): the kernel looks each
			 * name up when used, through the view's rules. */
			struct fuse_entry_param ep = { .attr = st };

			n = fuse_add_direntry_plus(req, buf + used, size - used,
						   e->name, &ep, (off_t)i + 1);
		} else {
			n = fuse_add_direntry(req, buf + used, size - used,
					      e->name, &st, (off_t)i + 1);
		}
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	g_free(buf);
}

void sfs_vop_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct view_dir_handle *h = (struct view_dir_handle *)(uintptr_t)fi->fh;
	struct sfs_fs *fs = sfs_fs_of(req);

	(void)ino;
	dir_handle_free(fs, h);
	fuse_reply_err(req, 0);
}

/* ---- files ------------------------------------------------------------- */

/*
 * The snapshot view v reads: its capture's (with a ref), or one taken
 * now of the live file, unchanged since the view. *held: the table node
 * the file owns a lookup of (NULL: the capture's). 0, ENOENT or EIO.
 */
static int file_snapshot(struct sfs_fs *fs, struct vnode *v, int fd,
			 struct sfs_snap **snap, struct sfs_node **node)
{
	for (;;) {
		struct view_capture *c;
		struct stat st;
		bool found;
		int err;

		c = capture_of(fs, v->view, v->dev, v->ino, &found);
		if (found) {
			if (!c || !c->snap)
				return c ? EIO : ENOENT;	/* EIO: lost */
			sfs_snap_ref(sfs_inode_history(c->held->inode), c->snap);
			*snap = c->snap;
			*node = c->held;
			return 0;
		}
		err = object_stat(fs, v->view, fd, &st, &c);
		if (err)
			return err;
		if (c)		/* captured just now: take the capture's */
			continue;
		/* The vnode's own entry: its lookup lasts while the kernel
		 * has the file open. */
		*node = v->live;
		*snap = sfs_snapshot_take(fs, v->live->inode, fd);
		if (!*snap)
			return errno ? errno : ENOMEM;
		/* Still nothing captured, nothing changed from outside: the
		 * snapshot is of the view's bytes. */
		capture_of(fs, v->view, v->dev, v->ino, &found);
		err = found ? EAGAIN : object_stat(fs, v->view, fd, &st, &c);
		if (!err)
			return 0;
		sfs_history_close(sfs_inode_history(v->live->inode), fs->store,
				  *snap);
		if (err != EAGAIN)
			return err;
	}
}

void sfs_vop_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct vnode *v = vnode_of(ino);
	char path[SFS_PROC_PATH_MAX];
	struct sfs_node *node = NULL;
	struct sfs_snap *snap = NULL;
	struct sfs_file *f;
	bool table;
	int fd, path_fd, err;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return (void)fuse_reply_err(req, EROFS);
	if (v == &snapdir)
		return (void)fuse_reply_err(req, EISDIR);
	/* The file keeps this reference: a deleted view's open files still
	 * read it. */
	if ((err = view_enter(fs, v->view)))
		return (void)fuse_reply_err(req, err);
	path_fd = vnode_fd_get(fs, v, &table);
	if (path_fd < 0) {
		err = errno;
		sfs_view_put(fs->views, v->view);
		return (void)fuse_reply_err(req, err);
	}
	err = file_snapshot(fs, v, path_fd, &snap, &node);
	fd = -1;
	if (!err) {
		sfs_proc_path(path, path_fd);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		err = fd < 0 ? errno : 0;
	}
	vnode_fd_put(fs, v, table);
	f = err ? NULL : calloc(1, sizeof(*f));
	if (!f) {
		err = err ? err : ENOMEM;
		if (fd >= 0)
			close(fd);
		if (snap)
			sfs_history_close(sfs_inode_history(node->inode),
					  fs->store, snap);
		sfs_view_put(fs->views, v->view);
		return (void)fuse_reply_err(req, err);
	}
	f->fd = fd;
	f->inode = node->inode;
	f->node = node;
	f->snap = snap;
	f->view = v->view;
	f->view_ino = ino;
	sfs_handle_track_file(f, true);
	fi->fh = (uintptr_t)f;
	/* A view's bytes never change: what the kernel cached stays right. */
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		sfs_handle_track_file(f, false);
		sfs_file_close(fs, f);
	}
}

/* ---- extended attributes ---------------------------------------------- */

/* The captured value of name (size-probe protocol as getxattr(2)). */
static void reply_captured_xattr(fuse_req_t req, const GByteArray *a,
				 const char *name, size_t size)
{
	for (guint off = 0; a && off < a->len;) {
		const char *n = (const char *)a->data + off;
		uint32_t len;

		off += (guint)strlen(n) + 1;
		memcpy(&len, a->data + off, sizeof(len));
		off += sizeof(len);
		if (!strcmp(n, name)) {
			if (!size)
				return (void)fuse_reply_xattr(req, len);
			if (size < len)
				return (void)fuse_reply_err(req, ERANGE);
			return (void)fuse_reply_buf(req, (const char *)a->data + off, len);
		}
		off += len;
	}
	fuse_reply_err(req, ENODATA);
}

static void reply_captured_list(fuse_req_t req, const GByteArray *a, size_t size)
{
	GString *names = g_string_new(NULL);

	for (guint off = 0; a && off < a->len;) {
		const char *n = (const char *)a->data + off;
		uint32_t len;

		g_string_append_len(names, n, (gssize)strlen(n) + 1);
		off += (guint)strlen(n) + 1;
		memcpy(&len, a->data + off, sizeof(len));
		off += sizeof(len) + len;
	}
	if (!size)
		fuse_reply_xattr(req, names->len);
	else if (size < names->len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names->str, names->len);
	g_string_free(names, TRUE);
}

/*
 * getxattr (name) or listxattr (NULL) of a view object: from its capture,
 * or from the live object read now and checked unchanged afterwards (the
 * attributes' ctime covers xattrs too).
 */
void sfs_vop_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct vnode *v = vnode_of(ino);
	struct view_capture *cap = NULL;
	GByteArray *live = NULL;
	struct stat st;
	bool known;
	int err = 0;

	/* SRC without xattrs, or the snapdir: none (a NULL list is empty). */
	if (v != &snapdir && (err = view_enter(fs, v->view)))
		return (void)fuse_reply_err(req, err);
	if (v != &snapdir) {
		bool table;
		int fd = vnode_fd_get(fs, v, &table);

		err = fd < 0 ? errno : view_xattrs_read(fd, &live, &known);
		if (!err)
			err = object_stat(fs, v->view, fd, &st, &cap);
		if (fd >= 0)
			vnode_fd_put(fs, v, table);
	}
	if (err)
		fuse_reply_err(req, err);
	else if (name)
		reply_captured_xattr(req, cap ? cap->xattrs : live, name, size);
	else
		reply_captured_list(req, cap ? cap->xattrs : live, size);
	if (live)
		g_byte_array_free(live, TRUE);
	if (v != &snapdir)
		sfs_view_put(fs->views, v->view);
}

/* ---- deleting a view --------------------------------------------------- */

void sfs_view_forget_name(struct sfs_fs *fs, const char *name)
{
	/* The kernel drops its entry and prunes the view's cached tree
	 * below it (d_invalidate). Nodes still cached elsewhere only hold
	 * the view (sfs_view_hold): its captures go with its last open file
	 * or directory, and they answer ESTALE from then on. */
	fuse_lowlevel_notify_inval_entry(fs->se, vnode_id(&snapdir), name,
					 strlen(name));
}

/* ---- a view invalidated under max_preserve ----------------------------- */

/* The nodeids of one view's vnodes. */
struct view_ids {
	const struct sfs_view *view;
	GArray *ids;			/* fuse_ino_t */
};

static void add_view_id(gpointer key, gpointer value, gpointer arg)
{
	struct view_ids *w = arg;
	struct vnode *v = key;
	fuse_ino_t id = vnode_id(v);

	(void)value;
	if (v->view == w->view)
		g_array_append_val(w->ids, id);
}

/* On the evictor thread (no lock held): what the kernel caches of view. */
static void forget_cached(struct sfs_fs *fs, void *arg)
{
	struct sfs_view *view = arg;
	struct view_ids w = { view, g_array_new(FALSE, FALSE, sizeof(fuse_ino_t)) };
	const char *name = sfs_view_name(view);

	pthread_mutex_lock(&vnodes_lock);
	if (vnodes)
		g_hash_table_foreach(vnodes, add_view_id, &w);
	pthread_mutex_unlock(&vnodes_lock);
	/* A vnode forgotten meanwhile: the kernel no longer knows its id
	 * (ENOENT), or it is another node's now, which only rereads. */
	for (guint i = 0; i < w.ids->len; i++)
		fuse_lowlevel_notify_inval_inode(fs->se,
						 g_array_index(w.ids, fuse_ino_t, i),
						 0, 0);
	fuse_lowlevel_notify_inval_entry(fs->se, vnode_id(&snapdir), name,
					 strlen(name));
	g_array_free(w.ids, TRUE);
	sfs_view_release(fs->views, view);
}

void sfs_view_forget_cached_later(struct sfs_fs *fs, struct sfs_view *view)
{
	if (!sfs_evictor_call(fs, forget_cached, view))
		sfs_view_release(fs->views, view);
}
