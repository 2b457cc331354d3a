/*
 * Set-user-ID and set-group-ID bits the kernel clears for the caller, which
 * the daemon's own (root, CAP_FSETID) changes of SRC would keep.
 *
 * The kernel's rules (6.2 and later, fs/attr.c setattr_should_drop_sgid()
 * and fs/inode.c should_remove_suid()): when a caller without CAP_FSETID
 * writes, truncates, fallocates or copies into a regular file, S_ISUID goes,
 * and S_ISGID goes if group execute is set or the caller is not in the
 * file's group; chown (any non-directory, also chown(f, -1, -1)) drops the
 * same bits. Setting an access ACL drops S_ISGID if the caller is not in
 * the file's group and lacks CAP_FSETID (posix_acl_update_mode()).
 *
 * What the FUSE kernel does for us without HANDLE_KILLPRIV: for truncate
 * and chown it sends a SETATTR of the mode with S_ISUID cleared, and
 * S_ISGID only where group execute is set (the rule before 6.2); for
 * FOPEN_DIRECT_IO writes, fallocate, an O_TRUNC open (measured on 6.18:
 * even S_ISUID stays) and setting an ACL nothing. libfuse 3.14 can ask
 * for neither HANDLE_KILLPRIV_V2 nor SETXATTR_EXT (no FUSE_CAP_ for them,
 * and its setxattr op would not pass FUSE_SETXATTR_ACL_KILL_SGID on), so
 * the daemon applies the rules itself. A caller with uid 0 stands in for
 * one with CAP_FSETID.
 */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "sfs/cred.h"

bool sfs_caller_in_group(fuse_req_t req, gid_t gid)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[SFS_MAX_GROUPS];
	int n;

	if (ctx->gid == gid)
		return true;
	n = fuse_req_getgroups(req, SFS_MAX_GROUPS, groups);
	if (n > SFS_MAX_GROUPS)
		n = SFS_MAX_GROUPS;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

static bool caller_privileged(fuse_req_t req)
{
	return fuse_req_ctx(req)->uid == 0;
}

mode_t sfs_setid_to_kill(fuse_req_t req, const struct stat *st, bool chown)
{
	mode_t kill = 0;

	if (chown ? S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode))
		return 0;
	if (!(st->st_mode & (S_ISUID | S_ISGID)))
		return 0;
	/* chown clears S_ISUID even for root (notify_change), and the
	 * kernel asks for that itself; the rest is for the unprivileged. */
	if (caller_privileged(req))
		return 0;
	kill = st->st_mode & S_ISUID;
	if ((st->st_mode & S_ISGID) &&
	    ((st->st_mode & S_IXGRP) || !sfs_caller_in_group(req, st->st_gid)))
		kill |= S_ISGID;
	return kill;
}

mode_t sfs_acl_sgid_to_kill(fuse_req_t req, const struct stat *st)
{
	if (!(st->st_mode & S_ISGID) || caller_privileged(req))
		return 0;
	return sfs_caller_in_group(req, st->st_gid) ? 0 : S_ISGID;
}

/* fd: an open fd of the file, or its O_PATH fd. */
static int stat_any(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) ? errno : 0;
}

int sfs_setid_drop(int fd, mode_t kill)
{
	char path[SFS_PROC_PATH_MAX];
	struct stat st;
	int err;

	if (!kill)
		return 0;
	err = stat_any(fd, &st);
	if (err || !(st.st_mode & kill))
		return err;
	/* chmod through /proc works on O_PATH fds too (fchmod does not). */
	sfs_proc_path(path, fd);
	return chmod(path, st.st_mode & 07777 & ~kill) ? errno : 0;
}

int sfs_setid_drop_for(fuse_req_t req, int fd)
{
	struct stat st;

	if (caller_privileged(req) || stat_any(fd, &st))
		return 0;
	return sfs_setid_drop(fd, sfs_setid_to_kill(req, &st, false));
}
