/*
 * The inode-fd helpers every layer above uses: naming an O_PATH fd through
 * /proc, stat'ing it, opening its data, and turning a fresh O_PATH fd into a
 * kernel entry (one lookup accounted). They take no request-level locks and
 * call nothing above them, so ops, modify.c and setid.c can all share them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "sfs/paths.h"

void sfs_proc_path(char buf[SFS_PROC_PATH_MAX], int fd)
{
	snprintf(buf, SFS_PROC_PATH_MAX, "/proc/self/fd/%d", fd);
}

int sfs_stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) ? errno : 0;
}

int sfs_entry_from_fd(fuse_req_t req, int path_fd, struct fuse_entry_param *e)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct sfs_node *node;
	int err;

	memset(e, 0, sizeof(*e));
	err = sfs_stat_fd(path_fd, &e->attr);
	if (err) {
		close(path_fd);
		return err;
	}
	/* The thread matters: an ESTALE may have routed its next lookup. */
	node = sfs_itable_lookup(fs->inodes, path_fd, &e->attr,
				 fuse_req_ctx(req)->pid);
	if (!node)
		return errno;
	sfs_node_attr(fs->inodes, node, &e->attr);
	e->ino = sfs_nodeid(fs, node);
	e->attr_timeout = fs->opts.timeout;
	e->entry_timeout = fs->opts.timeout;
	return 0;
}

int sfs_open_data_fd(struct sfs_inode_table *t, struct sfs_inode *inode)
{
	char path[SFS_PROC_PATH_MAX];
	int fd = sfs_inode_fd_get(t, inode), err;

	if (fd < 0)
		return -1;
	sfs_proc_path(path, fd);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (fd == -1 && errno == EPERM)	/* O_NOATIME needs ownership */
		fd = open(path, O_RDONLY | O_CLOEXEC);
	err = fd == -1 ? errno : 0;
	sfs_inode_fd_put(t, inode);	/* may close an idle fd: keep errno */
	errno = err;
	return fd;
}

int sfs_do_lookup(fuse_req_t req, struct sfs_inode *parent, const char *name,
		  struct fuse_entry_param *e)
{
	int dir_fd, fd, err;

	if (!sfs_name_is_safe(name))
		return EINVAL;
	dir_fd = sfs_fd_get(req, parent);
	if (dir_fd < 0)
		return errno;
	/* O_NOFOLLOW: a symlink is an entry of its own, never followed here. */
	fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	err = fd == -1 ? errno : 0;
	sfs_fd_put(req, parent);
	if (err == ENOENT)	/* a retried open ends here: its route too */
		sfs_itable_route_cancel(sfs_fs_of(req)->inodes,
					fuse_req_ctx(req)->pid);
	return err ? err : sfs_entry_from_fd(req, fd, e);
}
