/*
 * The fuse_lowlevel_ops table and the session's init: which kernel features
 * we ask for, and why.
 */
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

const struct fuse_lowlevel_ops sfs_ops = {
	.init = sfs_init,
	.lookup = sfs_op_lookup,
	.forget = sfs_op_forget,
	.forget_multi = sfs_op_forget_multi,
	.getattr = sfs_op_getattr,
	.setattr = sfs_op_setattr,
	.readlink = sfs_op_readlink,
	.mknod = sfs_op_mknod,
	.mkdir = sfs_op_mkdir,
	.symlink = sfs_op_symlink,
	.link = sfs_op_link,
	.unlink = sfs_op_unlink,
	.rmdir = sfs_op_rmdir,
	.rename = sfs_op_rename,
	.statfs = sfs_op_statfs,
	.opendir = sfs_op_opendir,
	.readdir = sfs_op_readdir,
	.readdirplus = sfs_op_readdirplus,
	.releasedir = sfs_op_releasedir,
	.fsyncdir = sfs_op_fsyncdir,
	.open = sfs_op_open,
	.create = sfs_op_create,
	.read = sfs_op_read,
	.write_buf = sfs_op_write_buf,
	.flush = sfs_op_flush,
	.release = sfs_op_release,
	.fsync = sfs_op_fsync,
	.fallocate = sfs_op_fallocate,
	.lseek = sfs_op_lseek,
	.copy_file_range = sfs_op_copy_file_range,
	.setxattr = sfs_op_setxattr,
	.getxattr = sfs_op_getxattr,
	.listxattr = sfs_op_listxattr,
	.removexattr = sfs_op_removexattr,
	.ioctl = sfs_op_ioctl,
	.flock = sfs_op_flock,
	.getlk = sfs_op_getlk,
	.setlk = sfs_op_setlk,
};
