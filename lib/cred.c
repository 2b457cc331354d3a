#include "sfs/cred.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct sfs_cred daemon_cred;

int sfs_cred_init(void)
{
	int n = getgroups(SFS_MAX_GROUPS, daemon_cred.groups);

	if (n < 0)
		return errno;
	daemon_cred.ngroups = n;
	daemon_cred.uid = geteuid();
	daemon_cred.gid = getegid();
	return 0;
}

/*
 * setfsuid/setfsgid return the previous value and signal failure only by
 * leaving it unchanged; asking with -1 reads the current one.
 */
static int set_fsid(long nr, unsigned id)
{
	syscall(nr, id);
	return (unsigned)syscall(nr, -1) == id ? 0 : EPERM;
}

uid_t sfs_cred_current_fsuid(void)
{
	return (uid_t)syscall(SYS_setfsuid, -1);
}

static int apply(const struct sfs_cred *c)
{
	/* setgroups needs CAP_SETGID, which a non-zero fsuid does not drop
	 * (only the filesystem capabilities follow fsuid), so order is free. */
	if (c->ngroups >= 0 &&
	    syscall(SYS_setgroups, (size_t)c->ngroups, c->groups) == -1)
		return errno;
	if (set_fsid(SYS_setfsgid, c->gid))
		return EPERM;
	if (set_fsid(SYS_setfsuid, c->uid))
		return EPERM;
	return 0;
}

int sfs_cred_enter(const struct sfs_cred *to)
{
	int err = apply(to);

	if (err)
		sfs_cred_leave();
	return err;
}

int sfs_cred_leave(void)
{
	/* Regain fsuid 0 first: it restores the fs capabilities we need. */
	if (set_fsid(SYS_setfsuid, daemon_cred.uid))
		return EPERM;
	if (set_fsid(SYS_setfsgid, daemon_cred.gid))
		return EPERM;
	if (syscall(SYS_setgroups, (size_t)daemon_cred.ngroups,
		    daemon_cred.groups) == -1)
		return errno;
	return 0;
}
