/*
 * Extended attributes, through /proc/self/fd/N of the inode's O_PATH fd:
 * f*xattr() refuse O_PATH fds, and resolving the magic link lands on the
 * inode itself without opening it (a FIFO would block, a device would run
 * its open method). For a symlink the link itself is used, not its target
 * (measured: getxattr("/proc/self/fd/N") on an O_PATH|O_NOFOLLOW symlink fd
 * reads the symlink's own trusted.* xattrs).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/xattr.h>

#include "fs.h"

/*
 * The size-probe protocol: size 0 asks how big the value is (reply_xattr),
 * otherwise the value itself (reply_buf), ERANGE if it does not fit.
 */
static void reply_sized(fuse_req_t req, size_t size, char *buf, ssize_t res)
{
	if (res < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)res);
	else
		fuse_reply_buf(req, buf, (size_t)res);
}

void sfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char path[SFS_PROC_PATH_MAX];
	char *buf = NULL;
	ssize_t res;

	if (size && !(buf = malloc(size)))
		return (void)fuse_reply_err(req, ENOMEM);
	sfs_proc_path(path, sfs_inode_of(req, ino)->fd);
	res = getxattr(path, name, buf, size);
	reply_sized(req, size, buf, res);
	free(buf);
}

void sfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char path[SFS_PROC_PATH_MAX];
	char *buf = NULL;
	ssize_t res;

	if (size && !(buf = malloc(size)))
		return (void)fuse_reply_err(req, ENOMEM);
	sfs_proc_path(path, sfs_inode_of(req, ino)->fd);
	res = listxattr(path, buf, size);
	reply_sized(req, size, buf, res);
	free(buf);
}

void sfs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		     const char *value, size_t size, int flags)
{
	char path[SFS_PROC_PATH_MAX];

	sfs_proc_path(path, sfs_inode_of(req, ino)->fd);
	fuse_reply_err(req, setxattr(path, name, value, size, flags) ? errno : 0);
}

void sfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char path[SFS_PROC_PATH_MAX];

	sfs_proc_path(path, sfs_inode_of(req, ino)->fd);
	fuse_reply_err(req, removexattr(path, name) ? errno : 0);
}
