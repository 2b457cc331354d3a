/*
 * ioctl: inode attributes as lsattr/chattr and xfs_io see them, on files and
 * directories: FS_IOC_GETFLAGS/SETFLAGS and FS_IOC_FSGETXATTR/FSSETXATTR.
 * The kernel needs both pairs: it turns a SETFLAGS into a FSGETXATTR of the
 * old attributes first (vfs_fileattr_set). Everything else is ENOTTY, as
 * for a file system that has no such ioctl.
 *
 * The kernel sizes restricted FUSE ioctls from the command: the FLAGS pair
 * is declared with a long argument (8 bytes here), but the flags are an
 * int, as every file system (and lsattr) treats them; we read and return 4
 * bytes. Setting runs with the caller's credentials: the backing FS then
 * decides who may set append-only or immutable (CAP_LINUX_IMMUTABLE), not
 * the daemon's root.
 */
#include <errno.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>

#include "fs.h"

static int backing_fd(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (sfs_inode_of(req, ino)->type == S_IFDIR)
		return sfs_dir_fd(fi);
	return sfs_file_of(fi)->fd;
}

static void get_attr(fuse_req_t req, int fd, unsigned int cmd, size_t size,
		     size_t out_bufsz)
{
	char value[sizeof(struct fsxattr)] = { 0 };

	if (out_bufsz < size)
		return (void)fuse_reply_err(req, EINVAL);
	if (ioctl(fd, cmd, value) == -1)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_ioctl(req, 0, value, size);
}

static void set_attr(fuse_req_t req, int fd, unsigned int cmd, size_t size,
		     const void *in_buf, size_t in_bufsz)
{
	char value[sizeof(struct fsxattr)] = { 0 };
	int err;

	if (in_bufsz < size)
		return (void)fuse_reply_err(req, EINVAL);
	memcpy(value, in_buf, size);
	err = sfs_become_caller(req);
	if (!err) {
		err = ioctl(fd, cmd, value) == -1 ? errno : 0;
		sfs_become_daemon(req);
	}
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_ioctl(req, 0, NULL, 0);
}

void sfs_op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
		  struct fuse_file_info *fi, unsigned flags, const void *in_buf,
		  size_t in_bufsz, size_t out_bufsz)
{
	int fd = backing_fd(req, ino, fi);

	if (flags & FUSE_IOCTL_COMPAT)
		return (void)fuse_reply_err(req, ENOSYS);
	switch (cmd) {
	case FS_IOC_GETFLAGS:
		return get_attr(req, fd, cmd, sizeof(int), out_bufsz);
	case FS_IOC_FSGETXATTR:
		return get_attr(req, fd, cmd, sizeof(struct fsxattr), out_bufsz);
	case FS_IOC_SETFLAGS:
		return set_attr(req, fd, cmd, sizeof(int), in_buf, in_bufsz);
	case FS_IOC_FSSETXATTR:
		return set_attr(req, fd, cmd, sizeof(struct fsxattr), in_buf,
				in_bufsz);
	default:
		fuse_log(FUSE_LOG_DEBUG, "ioctl 0x%x: not supported\n", cmd);
		fuse_reply_err(req, ENOTTY);
	}
}
