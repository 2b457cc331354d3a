/*
 * Extended attributes, through /proc/self/fd/N of the inode's O_PATH fd:
 * f*xattr() refuse O_PATH fds, and resolving the magic link lands on the
 * inode itself without opening it (a FIFO would block, a device would run
 * its open method). For a symlink the link itself is used, not its target
 * (measured: getxattr("/proc/self/fd/N") on an O_PATH|O_NOFOLLOW symlink fd
 * reads the symlink's own trusted.* xattrs).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "fs.h"
#include "sfs/view_ioctl.h"

/*
 * Our own attributes, computed, never stored in SRC:
 *   user.stablefs.xxh3   XXH3-128 (hex) of what a reader of the file gets:
 *                        on a snapshot's node, that version (G5);
 *   user.stablefs.stats  on the mount's root, the counters (stats.c).
 *   user.stablefs.views  on the mount's root, the tree views (views.c).
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

	if (!strcmp(name, XATTR_STATS) && ino == FUSE_ROOT_ID) {
		size_t need = sfs_stats_json(fs, NULL, 0) + 1;

		*buf = malloc(need);
		if (!*buf)
			return ENOMEM;
		*len = sfs_stats_json(fs, *buf, need);
		return 0;
	}
	if (!strcmp(name, SFS_XATTR_VIEWS) && ino == FUSE_ROOT_ID) {
		char *json = sfs_views_json(fs, len);

		*buf = malloc(*len);
		if (*buf)
			memcpy(*buf, json, *len);
		g_free(json);
		return *buf ? 0 : ENOMEM;
	}
	return ENODATA;
}

static void reply_ours(fuse_req_t req, fuse_ino_t ino, const char *name,
		       size_t size)
{
	char *buf = NULL;
	size_t len = 0;
	int err;

	/* The digest answers for itself, maybe later (digest.c). */
	if (!strcmp(name, XATTR_DIGEST) &&
	    sfs_node_of(req, ino)->inode->type == S_IFREG)
		return sfs_digest_reply(req, sfs_node_of(req, ino), size);
	err = our_value(req, ino, name, &buf, &len);
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

/* One *xattr(2) call on an inode, by its /proc path. */
struct xattr_call {
	enum { XATTR_GET, XATTR_LIST, XATTR_SET, XATTR_REMOVE } op;
	const char *name;
	void *buf;		/* GET, LIST: the value's room */
	const void *value;	/* SET */
	size_t size;
	int flags;		/* SET */
};

/* The call's result, or -1 with errno. */
static ssize_t xattr_call(fuse_req_t req, fuse_ino_t ino,
			  const struct xattr_call *c)
{
	struct sfs_inode *inode = sfs_inode_of(req, ino);
	char path[SFS_PROC_PATH_MAX];
	int fd = sfs_fd_get(req, inode), err;
	ssize_t res = -1;

	if (fd < 0)
		return -1;
	sfs_proc_path(path, fd);
	switch (c->op) {
	case XATTR_GET:
		res = getxattr(path, c->name, c->buf, c->size);
		break;
	case XATTR_LIST:
		res = listxattr(path, c->buf, c->size);
		break;
	case XATTR_SET:
		res = setxattr(path, c->name, c->value, c->size, c->flags);
		break;
	case XATTR_REMOVE:
		res = removexattr(path, c->name);
		break;
	}
	err = errno;
	sfs_fd_put(req, inode);
	errno = err;
	return res;
}

void sfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct xattr_call c = { .op = XATTR_GET, .name = name, .size = size };

	if (is_ours(name))
		return reply_ours(req, ino, name, size);
	if (size && !(c.buf = malloc(size)))
		return (void)fuse_reply_err(req, ENOMEM);
	reply_sized(req, size, c.buf, xattr_call(req, ino, &c));
	free(c.buf);
}

/*
 * Remove trusted.* names from a list of len bytes; returns the new length.
 * SRC's filesystem lists them only to CAP_SYS_ADMIN (ext4_xattr_trusted_list
 * and its kin), and the daemon has it; the kernel does not filter what a
 * FUSE daemon lists. The caller's capabilities are not in the request:
 * uid 0 stands for CAP_SYS_ADMIN, as it does for CAP_FSETID elsewhere.
 */
static size_t drop_trusted(char *list, size_t len)
{
	size_t in = 0, out = 0;

	while (in < len) {
		size_t n = strnlen(list + in, len - in) + 1;

		if (strncmp(list + in, "trusted.", 8) != 0) {
			memmove(list + out, list + in, n);
			out += n;
		}
		in += n;
	}
	return out;
}

/* The list as the caller may see it, into *list (malloc'd); its length or
 * -1 with errno. A list that grows between the probe and the call is read
 * again. */
static ssize_t list_for_caller(fuse_req_t req, fuse_ino_t ino, char **list)
{
	struct xattr_call c = { .op = XATTR_LIST };
	ssize_t len;

	for (;;) {
		c.size = 0;
		len = xattr_call(req, ino, &c);
		if (len <= 0)
			break;
		c.size = (size_t)len;
		if (!(c.buf = malloc(c.size))) {
			errno = ENOMEM;
			return -1;
		}
		len = xattr_call(req, ino, &c);
		if (len >= 0 || errno != ERANGE)
			break;
		free(c.buf);
		c.buf = NULL;
	}
	*list = c.buf;
	if (len > 0 && fuse_req_ctx(req)->uid != 0)
		len = (ssize_t)drop_trusted(c.buf, (size_t)len);
	return len;
}

void sfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *list = NULL;
	ssize_t len = list_for_caller(req, ino, &list);

	if (len >= 0 && size && (size_t)len > size) {
		errno = ERANGE;
		len = -1;
	}
	reply_sized(req, size, list, len);
	free(list);
}

#define ACL_ACCESS "system.posix_acl_access"

/*
 * Setting an access ACL as root keeps S_ISGID, which the caller's own
 * setting drops when not in the file's group (setid.c). The kernel would
 * tell us with FUSE_SETXATTR_ACL_KILL_SGID, which libfuse 3.14 cannot
 * negotiate: the rule is applied here, from the state before the change.
 */
static void set_acl_access(fuse_req_t req, fuse_ino_t ino,
			   const struct xattr_call *c)
{
	struct sfs_inode *inode = sfs_inode_of(req, ino);
	struct stat st;
	mode_t kill = 0;
	int fd, err;

	if ((fd = sfs_fd_get(req, inode)) < 0)
		return (void)fuse_reply_err(req, errno);
	if (c->size && fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0)
		kill = sfs_acl_sgid_to_kill(req, &st);
	err = xattr_call(req, ino, c) ? errno : 0;
	if (!err)
		err = sfs_setid_drop(fd, kill);
	sfs_fd_put(req, inode);
	fuse_reply_err(req, err);
}

/* Reply to a change of xattrs: one that succeeded moved ctime. */
static void reply_meta_change(fuse_req_t req, fuse_ino_t ino, int err)
{
	if (!err)
		sfs_note_meta_change(req, sfs_node_of(req, ino)->inode, -1);
	fuse_reply_err(req, err);
}

void sfs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		     const char *value, size_t size, int flags)
{
	struct xattr_call c = { .op = XATTR_SET, .name = name, .value = value,
				.size = size, .flags = flags };

	if (is_ours(name))
		return (void)fuse_reply_err(req, EPERM);
	if (!strcmp(name, ACL_ACCESS))
		return set_acl_access(req, ino, &c);
	reply_meta_change(req, ino, xattr_call(req, ino, &c) ? errno : 0);
}

void sfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct xattr_call c = { .op = XATTR_REMOVE, .name = name };

	if (is_ours(name))
		return (void)fuse_reply_err(req, EPERM);
	reply_meta_change(req, ino, xattr_call(req, ino, &c) ? errno : 0);
}
