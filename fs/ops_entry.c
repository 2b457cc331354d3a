/*
 * Name and attribute operations: lookup/forget, getattr/setattr, and the ops
 * that create, link, remove or rename names. Creations run with the caller's
 * credentials so new files are the caller's and SRC's filesystem applies its
 * own rules (setgid dirs, permissions) exactly as it would for the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>	/* renameat2 */
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs.h"
#include "sfs/paths.h"

int sfs_node_stat(fuse_req_t req, struct sfs_node *node, int fd, struct stat *st)
{
	int err;

	if (fd >= 0) {
		err = sfs_stat_fd(fd, st);
	} else if ((fd = sfs_fd_get(req, node->inode)) < 0) {
		err = errno;
	} else {
		err = sfs_stat_fd(fd, st);
		sfs_fd_put(req, node->inode);
	}
	if (!err)
		sfs_node_attr(sfs_fs_of(req)->inodes, node, st);
	return err;
}

void sfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	sfs_tune_readahead(sfs_fs_of(req));
	struct fuse_entry_param e;
	int err = sfs_do_lookup(req, sfs_inode_of(req, parent), name, &e);

	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

void sfs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	sfs_itable_forget(sfs_fs_of(req)->inodes, sfs_node_of(req, ino), nlookup);
	fuse_reply_none(req);
}

void sfs_op_forget_multi(fuse_req_t req, size_t count,
			 struct fuse_forget_data *forgets)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	for (size_t i = 0; i < count; i++)
		sfs_itable_forget(fs->inodes, sfs_node_of(req, forgets[i].ino),
				  forgets[i].nlookup);
	fuse_reply_none(req);
}

static void reply_attr_of(fuse_req_t req, struct sfs_node *node, int fd)
{
	struct stat st;
	int err = sfs_node_stat(req, node, fd, &st);

	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, sfs_fs_of(req)->opts.timeout);
}

/*
 * Never ESTALE here (K7 in doc/kernel-facts.md: fstat sends GETATTR without
 * a handle, and an ESTALE would break it on old fds): a snapshot node
 * answers its version.
 */
void sfs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* Usually the first request after INIT (see readahead.c). */
	sfs_tune_readahead(sfs_fs_of(req));
	reply_attr_of(req, sfs_node_of(req, ino), fi ? sfs_file_of(fi)->fd : -1);
}

static int set_times(int fd, const struct stat *attr, int valid)
{
	struct timespec ts[2] = {
		{ .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT },
	};

	if (valid & FUSE_SET_ATTR_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_ATIME)
		ts[0] = attr->st_atim;
	if (valid & FUSE_SET_ATTR_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_MTIME)
		ts[1] = attr->st_mtim;
	/* AT_EMPTY_PATH works on O_PATH fds, symlinks included. */
	return utimensat(fd, "", ts, AT_EMPTY_PATH) ? errno : 0;
}

/*
 * Our own mtime change must not look like one from outside to a file's
 * snapshots (only regular files have any; others need no bookkeeping).
 */
static int set_times_as_ours(fuse_req_t req, struct sfs_inode *inode, int fd,
			     int path_fd, const struct stat *attr, int valid)
{
	struct sfs_history *h;
	int err;

	if (!sfs_has_snapshots(sfs_fs_of(req), inode))
		return set_times(fd, attr, valid);
	h = sfs_inode_history(inode);
	sfs_history_before_meta_change(h);
	err = set_times(fd, attr, valid);
	sfs_history_after_change(h, path_fd, false);
	return err;
}

/* fd: an open file of the inode, or else path_fd, its O_PATH fd. */
static int set_mode(int fd, int path_fd, mode_t mode)
{
	char path[SFS_PROC_PATH_MAX];

	if (fd >= 0)
		return fchmod(fd, mode) ? errno : 0;
	sfs_proc_path(path, path_fd);
	return chmod(path, mode) ? errno : 0;
}

/*
 * Set-ID bits a setattr by the caller drops that the kernel did not ask us
 * to (setid.c), from the file's state before the change: a truncation
 * drops them as a write does, a chown by the rule of chown. A SETATTR of
 * nothing (ctime at most, which the kernel sends only with writeback
 * caching) is chown(f, -1, -1), or the kernel's file_remove_privs() for
 * a caller it found needed it (then it asked for nothing it knows how to
 * clear); either way the same bits go.
 */
static mode_t setattr_setid_kill(fuse_req_t req, int path_fd, int valid)
{
	bool chown = valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID) ||
		     !(valid & ~FUSE_SET_ATTR_CTIME);
	struct stat st;

	if (!chown && !(valid & FUSE_SET_ATTR_SIZE))
		return 0;
	if (fuse_req_ctx(req)->uid == 0 || sfs_stat_fd(path_fd, &st))
		return 0;
	return sfs_setid_to_kill(req, &st, chown);
}

/*
 * Order matters: chown clears set-id bits on the backing file, so the mode
 * the kernel asks for (it already computed the bits to keep) comes after it.
 */
static int apply_setattr(fuse_req_t req, struct sfs_inode *inode, int fd,
			 int path_fd, struct stat *attr, int valid,
			 struct sfs_eviction *ev)
{
	mode_t kill = setattr_setid_kill(req, path_fd, valid);
	int err = 0;

	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = valid & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t gid = valid & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;

		if (fchownat(path_fd, "", uid, gid,
			     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
			return errno;
	}
	if (valid & FUSE_SET_ATTR_MODE)
		err = set_mode(fd, path_fd, attr->st_mode);
	if (!err && (valid & FUSE_SET_ATTR_SIZE))
		err = sfs_set_size(req, inode, fd, path_fd, attr->st_size, ev);
	if (!err && (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
			      FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW))) {
		err = set_times_as_ours(req, inode, fd >= 0 ? fd : path_fd,
					path_fd, attr, valid);
	}
	if (!err)
		err = sfs_setid_drop(path_fd, kill);
	return err;
}

/*
 * A size change is a modification: on a snapshot node it would contradict
 * the version the node shows, so (decided before anything is applied, K7)
 * it is steered to the file's write node like a write open.
 */
static int steer_size_change(fuse_req_t req, struct sfs_node *node)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	bool keep;
	int err;

	if (!sfs_has_snapshots(fs, node->inode) || node->mode == SFS_NODE_WRITE)
		return 0;
	err = sfs_node_open(fs->inodes, node, SFS_OPEN_WRITE,
			    sfs_inode_version(node->inode), NULL,
			    fuse_req_ctx(req)->pid, &keep, NULL);
	if (!err)
		sfs_node_release(fs->inodes, node);	/* bound, not opened */
	return err;
}

/* Snapshots of the file keep showing live times (lib/history.c). */
void sfs_note_meta_change(fuse_req_t req, struct sfs_inode *inode, int fd)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	int path_fd;

	if (inode->type != S_IFREG || !fs->store ||
	    !__atomic_load_n(&inode->data, __ATOMIC_ACQUIRE))
		return;	/* no snapshot was ever taken */
	if (fd >= 0) {
		sfs_history_meta_changed(sfs_inode_history(inode), fd);
	} else if ((path_fd = sfs_fd_get(req, inode)) >= 0) {
		sfs_history_meta_changed(sfs_inode_history(inode), path_fd);
		sfs_fd_put(req, inode);
	}
}

/* A SETATTR's reply after its truncation's eviction. The node and the
 * file's fd outlive it: the kernel holds both until we reply. */
struct attr_reply {
	struct sfs_node *node;
	int fd;
};

static void send_attr_reply(fuse_req_t req, void *ctx)
{
	struct attr_reply *a = ctx;

	reply_attr_of(req, a->node, a->fd);
	free(a);
}

void sfs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		    int valid, struct fuse_file_info *fi)
{
	struct sfs_node *node = sfs_node_of(req, ino);
	struct sfs_eviction ev = { 0 };
	int fd = fi ? sfs_file_of(fi)->fd : -1;
	struct attr_reply *a;
	int path_fd, err = 0;

	if ((valid & FUSE_SET_ATTR_SIZE) && !fi)
		err = steer_size_change(req, node);
	if (!err && (path_fd = sfs_fd_get(req, node->inode)) < 0)
		err = errno;
	else if (!err) {
		err = apply_setattr(req, node->inode, fd, path_fd, attr, valid, &ev);
		sfs_fd_put(req, node->inode);
	}
	if (!err && !(a = malloc(sizeof(*a))))
		err = ENOMEM;
	if (err)
		return sfs_reply_err_after(req, &ev, err);
	if (!(valid & FUSE_SET_ATTR_SIZE))
		sfs_note_meta_change(req, node->inode, fd);
	a->node = node;
	a->fd = fd;
	sfs_reply_after(req, &ev, send_attr_reply, a);
}

void sfs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_inode *inode = sfs_inode_of(req, ino);
	char buf[PATH_MAX + 1];
	int fd = sfs_fd_get(req, inode), err;
	ssize_t n;

	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	n = readlinkat(fd, "", buf, sizeof(buf));
	err = n == -1 ? errno : 0;
	sfs_fd_put(req, inode);
	if (err)
		return (void)fuse_reply_err(req, err);
	if (n == sizeof(buf))
		return (void)fuse_reply_err(req, ENAMETOOLONG);
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* What mknod, mkdir and symlink share: create as the caller, then look up. */
enum make_kind { MAKE_NODE, MAKE_DIR, MAKE_SYMLINK };

static int make_as_caller(fuse_req_t req, struct sfs_inode *dir, const char *name,
			  enum make_kind kind, mode_t mode, dev_t rdev,
			  const char *target)
{
	int dir_fd, res, err;

	if (!sfs_name_is_safe(name))
		return EINVAL;
	dir_fd = sfs_fd_get(req, dir);
	if (dir_fd < 0)
		return errno;
	err = sfs_become_caller(req);
	if (!err) {
		if (kind == MAKE_DIR)
			res = mkdirat(dir_fd, name, mode);
		else if (kind == MAKE_SYMLINK)
			res = symlinkat(target, dir_fd, name);
		else
			res = mknodat(dir_fd, name, mode, rdev);
		err = res == -1 ? errno : 0;
		sfs_become_daemon(req);
	}
	sfs_fd_put(req, dir);
	return err;
}

static void make_and_reply(fuse_req_t req, fuse_ino_t parent, const char *name,
			   enum make_kind kind, mode_t mode, dev_t rdev,
			   const char *target)
{
	struct sfs_inode *dir = sfs_inode_of(req, parent);
	struct fuse_entry_param e;
	int err = make_as_caller(req, dir, name, kind, mode, rdev, target);

	if (!err)
		err = sfs_do_lookup(req, dir, name, &e);
	if (err)
		return (void)fuse_reply_err(req, err);
	sfs_view_note_created(sfs_fs_of(req), &e.attr);
	fuse_reply_entry(req, &e);
}

void sfs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, dev_t rdev)
{
	make_and_reply(req, parent, name, MAKE_NODE, mode, rdev, NULL);
}

void sfs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_and_reply(req, parent, name, MAKE_DIR, mode, 0, NULL);
}

void sfs_op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
		    const char *name)
{
	make_and_reply(req, parent, name, MAKE_SYMLINK, 0, 0, target);
}

void sfs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		 const char *newname)
{
	struct sfs_inode *inode = sfs_inode_of(req, ino);
	struct sfs_inode *dir = sfs_inode_of(req, newparent);
	struct fuse_entry_param e;
	int fd, dir_fd, err = 0;

	if (!sfs_name_is_safe(newname))
		return (void)fuse_reply_err(req, EINVAL);
	if ((fd = sfs_fd_get(req, inode)) < 0)
		return (void)fuse_reply_err(req, errno);
	if ((dir_fd = sfs_fd_get(req, dir)) < 0) {
		err = errno;
	} else {
		/* AT_EMPTY_PATH links the very inode we hold (needs
		 * CAP_DAC_READ_SEARCH, which the root daemon has; the kernel
		 * already checked the caller). */
		if (linkat(fd, "", dir_fd, newname, AT_EMPTY_PATH) == -1)
			err = errno;
		sfs_fd_put(req, dir);
	}
	sfs_fd_put(req, inode);
	if (err)
		return (void)fuse_reply_err(req, err);
	err = sfs_do_lookup(req, dir, newname, &e);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void remove_and_reply(fuse_req_t req, fuse_ino_t parent, const char *name,
			     int flags)
{
	struct sfs_inode *dir = sfs_inode_of(req, parent);
	int dir_fd, err;

	if (!sfs_name_is_safe(name))
		return (void)fuse_reply_err(req, EINVAL);
	if ((dir_fd = sfs_fd_get(req, dir)) < 0)
		return (void)fuse_reply_err(req, errno);
	err = unlinkat(dir_fd, name, flags) == -1 ? errno : 0;
	sfs_fd_put(req, dir);
	fuse_reply_err(req, err);
}

void sfs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_and_reply(req, parent, name, 0);
}

void sfs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_and_reply(req, parent, name, AT_REMOVEDIR);
}

void sfs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		   fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct sfs_inode *from = sfs_inode_of(req, parent);
	struct sfs_inode *to = sfs_inode_of(req, newparent);
	int from_fd, to_fd, err = 0;

	if (!sfs_name_is_safe(name) || !sfs_name_is_safe(newname))
		return (void)fuse_reply_err(req, EINVAL);
	if ((from_fd = sfs_fd_get(req, from)) < 0)
		return (void)fuse_reply_err(req, errno);
	if ((to_fd = sfs_fd_get(req, to)) < 0) {
		err = errno;
	} else {
		if (renameat2(from_fd, name, to_fd, newname, flags) == -1)
			err = errno;
		sfs_fd_put(req, to);
	}
	sfs_fd_put(req, from);
	fuse_reply_err(req, err);
}

void sfs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_inode *inode = sfs_inode_of(req, ino);
	struct statvfs sv;
	int fd = sfs_fd_get(req, inode), err;

	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	err = fstatvfs(fd, &sv) == -1 ? errno : 0;
	sfs_fd_put(req, inode);
	if (err)
		return (void)fuse_reply_err(req, err);
	fuse_reply_statfs(req, &sv);
}
