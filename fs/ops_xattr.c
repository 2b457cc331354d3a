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
#include <string.h>
#include <sys/xattr.h>

#include "fs.h"

/*
 * Our own attributes, computed, never stored in SRC:
 *   user.stablefs.xxh3   XXH3-128 (hex) of what a reader of the file gets:
 *                        on a snapshot's node, that version (G5);
 *   user.stablefs.stats  on the mount's root, the counters (stats.c).
 * listxattr does not show them, so copying tools do not copy them.
 */
#define XATTR_DIGEST "user.stablefs.xxh3"
#define XATTR_STATS "user.stablefs.stats"

static bool is_ours(const char *name)
{
	return strncmp(name, "user.stablefs.", 14) == 0;
}

/* 0 with the value in buf (malloc'd), or a positive errno. */
static int our_value(fuse_req_t req, fuse_ino_t ino, const char *name,
		     char **buf, size_t *len)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct sfs_node *node = sfs_node_of(req, ino);
	int err;

	if (!strcmp(name, XATTR_DIGEST) && node->inode->type == S_IFREG) {
		*buf = malloc(33);
		if (!*buf)
			return ENOMEM;
		err = sfs_digest(req, node, *buf);
		*len = 32;
		return err;
	}
	if (!strcmp(name, XATTR_STATS) && ino == FUSE_ROOT_ID) {
		size_t need = sfs_stats_json(fs, NULL, 0) + 1;

		*buf = malloc(need);
		if (!*buf)
			return ENOMEM;
		*len = sfs_stats_json(fs, *buf, need);
		return 0;
	}
	return ENODATA;
}

static void reply_ours(fuse_req_t req, fuse_ino_t ino, const char *name,
		       size_t size)
{
	char *buf = NULL;
	size_t len = 0;
	int err = our_value(req, ino, name, &buf, &len);

	if (err)
		fuse_reply_err(req, err);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

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

	if (is_ours(name))
		return reply_ours(req, ino, name, size);
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

	if (is_ours(name))
		return (void)fuse_reply_err(req, EPERM);
	sfs_proc_path(path, sfs_inode_of(req, ino)->fd);
	fuse_reply_err(req, setxattr(path, name, value, size, flags) ? errno : 0);
}

void sfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char path[SFS_PROC_PATH_MAX];

	if (is_ours(name))
		return (void)fuse_reply_err(req, EPERM);
	sfs_proc_path(path, sfs_inode_of(req, ino)->fd);
	fuse_reply_err(req, removexattr(path, name) ? errno : 0);
}
