/*
 * The fuse_lowlevel_ops table and the session's init: which kernel features
 * we ask for, and why.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>

#include "fs.h"

static void sfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct sfs_fs *fs = userdata;

	/*
	 * Zero-copy both ways: requests are spliced out of /dev/fuse (write
	 * data stays in pipe pages until spliced into the backing file) and
	 * read replies are spliced from the backing file into /dev/fuse —
	 * where libfuse's pipes are large enough (readahead.c). Not
	 * SPLICE_MOVE: with it the kernel tries to steal each spliced page
	 * out of SRC's page cache into the mount's (remove_mapping), which
	 * cost ~15% of the daemon's time reading and, where it succeeded,
	 * dropped 6% of a cached 1 GiB SRC file per read, to be read from
	 * disk again (doc/performance.md, "Read-ahead window").
	 */
	conn->want |= conn->capable &
		(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
		 FUSE_CAP_READDIRPLUS |
		 FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_PARALLEL_DIROPS |
		 FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_ASYNC_DIO |
		 FUSE_CAP_IOCTL_DIR);
	/*
	 * POSIX ACLs: the kernel enforces them with default_permissions only
	 * when we ask (else a u:nobody:r entry on a 0600 file is ignored).
	 * It then leaves the caller's umask unapplied (a default ACL may
	 * replace it) and sends it along; with DONT_MASK we apply it per
	 * request, so SRC's filesystem sees exactly what the caller asked.
	 */
	conn->want |= conn->capable & (FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK);
	fs->apply_umask = conn->want & FUSE_CAP_DONT_MASK;
	/*
	 * Locks: the kernel would keep them per FUSE inode, and a file is
	 * several of those (its incarnations); ops_lock.c takes them on the
	 * backing file instead, where all opens and SRC's lockers meet.
	 */
	conn->want |= conn->capable & (FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_POSIX_LOCKS);
	fs->posix_locks = conn->want & FUSE_CAP_POSIX_LOCKS;
	/*
	 * The daemon writes as root, and root keeps set-id bits on write
	 * (CAP_FSETID). Without HANDLE_KILLPRIV the kernel clears some itself
	 * with a SETATTR when an unprivileged caller truncates or chowns; the
	 * rest (direct writes, fallocate, O_TRUNC, ACLs, S_ISGID of a group
	 * the caller is not in) the daemon clears for the caller: setid.c.
	 */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/* Write-back caching would let the kernel reorder and merge writes
	 * we must see one by one. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Largest requests the kernel allows (1 MiB with FUSE_MAX_PAGES). */
	conn->max_write = 1024 * 1024;
	/* READs no larger than we can splice (readahead.c); libfuse refuses
	 * INIT unless this equals the max_read mount option (main.c). */
	conn->max_read = fs->max_read;
}

/*
 * Routing. A view's nodes (view_ops.c) are read-only: every change of one
 * is EROFS (EXDEV where a change would link the live tree and a view),
 * and its reads go to view_ops.c. Every change of the live tree holds the
 * views' change gate and first captures what it alters for the views that
 * still need it (views.c): the objects named below, before the op runs.
 */
/* Every wrapper takes fs before the op: the op's reply frees req. */
#define VIEW_READ_ONLY(ino) \
	do { \
		if (sfs_is_view_ino(ino)) \
			return (void)fuse_reply_err(req, EROFS); \
	} while (0)

/* A change of ino (a directory: a new name in it) begins: hold the gate,
 * and keep ino as it is for the views that still need it. */
static void begin_change_of(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	sfs_change_begin(fs);
	sfs_view_capture_inode(fs, sfs_inode_of(req, ino));
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	if (sfs_is_view_ino(parent))
		return sfs_vop_lookup(req, parent, name);
	if (parent == FUSE_ROOT_ID && fs->views && !strcmp(name, sfs_snapdir(fs)))
		return sfs_view_lookup_snapdir(req);
	sfs_op_lookup(req, parent, name);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n)
{
	if (!sfs_is_view_ino(ino))
		return sfs_op_forget(req, ino, n);
	sfs_vop_forget(req, ino, n);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	for (size_t i = 0; i < count; i++) {
		if (sfs_is_view_ino(forgets[i].ino))
			sfs_vop_forget(req, forgets[i].ino, forgets[i].nlookup);
		else
			sfs_itable_forget(fs->inodes, sfs_node_of(req, forgets[i].ino),
					  forgets[i].nlookup);
	}
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (sfs_is_view_ino(ino))
		return sfs_vop_getattr(req, ino);
	sfs_op_getattr(req, ino, fi);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int valid, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(ino);
	begin_change_of(req, ino);
	sfs_op_setattr(req, ino, attr, valid, fi);
	sfs_change_end(fs);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	if (sfs_is_view_ino(ino))
		return sfs_vop_readlink(req, ino);
	sfs_op_readlink(req, ino);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(parent);
	begin_change_of(req, parent);
	sfs_op_mknod(req, parent, name, mode, rdev);
	sfs_change_end(fs);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(parent);
	begin_change_of(req, parent);
	sfs_op_mkdir(req, parent, name, mode);
	sfs_change_end(fs);
}

static void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
		       const char *name)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(parent);
	begin_change_of(req, parent);
	sfs_op_symlink(req, target, parent, name);
	sfs_change_end(fs);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(parent);
	begin_change_of(req, parent);
	sfs_op_create(req, parent, name, mode, fi);
	sfs_change_end(fs);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(newparent);
	if (sfs_is_view_ino(ino))
		return (void)fuse_reply_err(req, EXDEV);
	begin_change_of(req, newparent);
	/* Its link count and ctime change. */
	sfs_view_capture_inode(fs, sfs_inode_of(req, ino));
	sfs_op_link(req, ino, newparent, newname);
	sfs_change_end(fs);
}

/* A name goes from parent: the directory and what the name held change. */
static void begin_name_gone(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	begin_change_of(req, parent);
	sfs_view_capture_name(fs, sfs_inode_of(req, parent), name);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(parent);
	begin_name_gone(req, parent, name);
	sfs_op_unlink(req, parent, name);
	sfs_change_end(fs);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(parent);
	begin_name_gone(req, parent, name);
	sfs_op_rmdir(req, parent, name);
	sfs_change_end(fs);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	if (sfs_is_view_ino(parent) != sfs_is_view_ino(newparent))
		return (void)fuse_reply_err(req, EXDEV);
	VIEW_READ_ONLY(parent);
	/* Both directories, the file moved, and the one replaced. */
	begin_name_gone(req, parent, name);
	sfs_view_capture_inode(fs, sfs_inode_of(req, newparent));
	sfs_view_capture_name(fs, sfs_inode_of(req, newparent), newname);
	sfs_op_rename(req, parent, name, newparent, newname, flags);
	sfs_change_end(fs);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	if (sfs_is_view_ino(ino))
		return sfs_vop_statfs(req);
	sfs_op_statfs(req, ino);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (sfs_is_view_ino(ino))
		return sfs_vop_opendir(req, ino, fi);
	sfs_op_opendir(req, ino, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	if (sfs_is_view_ino(ino))
		return sfs_vop_readdir(req, size, off, fi, false);
	sfs_op_readdir(req, ino, size, off, fi);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	if (sfs_is_view_ino(ino))
		return sfs_vop_readdir(req, size, off, fi, true);
	sfs_op_readdirplus(req, ino, size, off, fi);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	if (sfs_is_view_ino(ino))
		return sfs_vop_releasedir(req, ino, fi);
	sfs_op_releasedir(req, ino, fi);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	if (sfs_is_view_ino(ino))
		return (void)fuse_reply_err(req, 0);	/* nothing to write */
	sfs_op_fsyncdir(req, ino, datasync, fi);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	if (sfs_is_view_ino(ino))
		return sfs_vop_open(req, ino, fi);
	if (!(fi->flags & O_TRUNC))
		return sfs_op_open(req, ino, fi);
	begin_change_of(req, ino);
	sfs_op_open(req, ino, fi);
	sfs_change_end(fs);
}

/* View files are struct sfs_file too (read-only snapshots): read, lseek,
 * flush, fsync and release need no routing; write and fallocate never
 * reach one (the kernel checks the open mode). */
static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
			 off_t off, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(ino);
	begin_change_of(req, ino);
	sfs_op_write_buf(req, ino, in, off, fi);
	sfs_change_end(fs);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(ino);
	begin_change_of(req, ino);
	sfs_op_fallocate(req, ino, mode, off, len, fi);
	sfs_change_end(fs);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			       off_t off_out, struct fuse_file_info *fi_out,
			       size_t len, int flags)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	/* EOPNOTSUPP, not ENOSYS (which would turn copy_file_range off
	 * for the whole mount): the kernel copies through READs instead. */
	if (sfs_is_view_ino(ino_in) || sfs_is_view_ino(ino_out))
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	begin_change_of(req, ino_out);
	sfs_op_copy_file_range(req, ino_in, off_in, fi_in, ino_out, off_out,
			       fi_out, len, flags);
	sfs_change_end(fs);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(ino);
	begin_change_of(req, ino);
	sfs_op_setxattr(req, ino, name, value, size, flags);
	sfs_change_end(fs);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	if (sfs_is_view_ino(ino))
		return sfs_vop_xattr(req, ino, name, size);
	sfs_op_getxattr(req, ino, name, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (sfs_is_view_ino(ino))
		return sfs_vop_xattr(req, ino, NULL, size);
	sfs_op_listxattr(req, ino, size);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	VIEW_READ_ONLY(ino);
	begin_change_of(req, ino);
	sfs_op_removexattr(req, ino, name);
	sfs_change_end(fs);
}

static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
		     struct fuse_file_info *fi, unsigned flags, const void *in,
		     size_t in_size, size_t out_size)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	if (sfs_is_view_ino(ino))
		return (void)fuse_reply_err(req, ENOTTY);
	/* Taking a view waits for the gate itself: not under it. */
	if (ino == FUSE_ROOT_ID && sfs_views_ioctl(req, cmd, in, in_size))
		return;
	if (cmd != FS_IOC_SETFLAGS && cmd != FS_IOC_FSSETXATTR)
		return sfs_op_ioctl(req, ino, cmd, arg, fi, flags, in, in_size,
				    out_size);
	begin_change_of(req, ino);
	sfs_op_ioctl(req, ino, cmd, arg, fi, flags, in, in_size, out_size);
	sfs_change_end(fs);
}

/*
 * File locks on a view's files: nothing in a view changes, so no lock of
 * one can protect anything from anyone; every lock is granted and none
 * conflicts (as on a read-only filesystem that keeps no lock state).
 */
static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     int op)
{
	if (sfs_is_view_ino(ino))
		return (void)fuse_reply_err(req, 0);
	sfs_op_flock(req, ino, fi, op);
}

static void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock)
{
	if (sfs_is_view_ino(ino)) {
		lock->l_type = F_UNLCK;
		return (void)fuse_reply_lock(req, lock);
	}
	sfs_op_getlk(req, ino, fi, lock);
}

static void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock, int sleep)
{
	if (sfs_is_view_ino(ino))
		return (void)fuse_reply_err(req, 0);
	sfs_op_setlk(req, ino, fi, lock, sleep);
}

const struct fuse_lowlevel_ops sfs_ops = {
	.init = sfs_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.statfs = op_statfs,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.open = op_open,
	.create = op_create,
	.read = sfs_op_read,
	.write_buf = op_write_buf,
	.flush = sfs_op_flush,
	.release = sfs_op_release,
	.fsync = sfs_op_fsync,
	.fallocate = op_fallocate,
	.lseek = sfs_op_lseek,
	.copy_file_range = op_copy_file_range,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.ioctl = op_ioctl,
	.flock = op_flock,
	.getlk = op_getlk,
	.setlk = op_setlk,
};
