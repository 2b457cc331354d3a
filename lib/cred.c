#include "sfs/cred.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct sfs_cred daemon_cred;

/*
 * The calling thread's capability sets (capget/capset act on one thread;
 * glibc has no wrapper). Version 3: two 32-bit words per set.
 */
static int caps_get(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0,
	};

	return syscall(SYS_capget, &h, d) ? errno : 0;
}

static int caps_set(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0,
	};

	return syscall(SYS_capset, &h, d) ? errno : 0;
}

/*
 * CAP_SYS_RESOURCE in the thread's effective set, on or off (the permitted
 * set keeps it). A setfsuid to the caller drops only the filesystem
 * capabilities (CAP_FSETID, CAP_DAC_OVERRIDE...), not this one, which lets
 * writes exceed quotas and use ext4's reserved blocks.
 */
static bool has_sys_resource;	/* permitted to the daemon (sfs_cred_init) */

static int sys_resource(bool on)
{
	struct __user_cap_data_struct d[2];
	uint32_t bit = 1u << (CAP_SYS_RESOURCE % 32);
	int err;

	if (!has_sys_resource)
		return 0;
	if ((err = caps_get(d)))
		return err;
	if (on)
		d[CAP_SYS_RESOURCE / 32].effective |= bit;
	else
		d[CAP_SYS_RESOURCE / 32].effective &= ~bit;
	return caps_set(d);
}

int sfs_cred_init(void)
{
	struct __user_cap_data_struct d[2];
	int n = getgroups(SFS_MAX_GROUPS, daemon_cred.groups);

	if (n < 0)
		return errno;
	daemon_cred.ngroups = n;
	daemon_cred.uid = geteuid();
	daemon_cred.gid = getegid();
	if (caps_get(d) == 0)
		has_sys_resource = d[CAP_SYS_RESOURCE / 32].permitted &
				   (1u << (CAP_SYS_RESOURCE % 32));
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

	if (!err && to->uid != 0)
		err = sys_resource(false);
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
	return sys_resource(true);
}

/*
 * The thread's capability sets outside sfs_cred_enter_data (the daemon's
 * never change otherwise): read once per thread.
 */
static __thread struct __user_cap_data_struct data_saved[2];
static __thread bool data_saved_valid;

int sfs_cred_enter_data(uid_t uid, gid_t gid)
{
	struct __user_cap_data_struct d[2];
	int err = 0;

	if (!data_saved_valid && (err = caps_get(data_saved)))
		return err;
	data_saved_valid = true;
	memcpy(d, data_saved, sizeof(d));
	d[CAP_SYS_RESOURCE / 32].effective &= ~(1u << (CAP_SYS_RESOURCE % 32));
	if (set_fsid(SYS_setfsgid, gid) || set_fsid(SYS_setfsuid, uid))
		err = EPERM;
	/* The fsuid switch dropped the filesystem capabilities: back they
	 * come, all but CAP_SYS_RESOURCE. */
	if (!err)
		err = caps_set(d);
	if (err)
		sfs_cred_leave_data();
	return err;
}

int sfs_cred_leave_data(void)
{
	if (set_fsid(SYS_setfsuid, daemon_cred.uid) ||
	    set_fsid(SYS_setfsgid, daemon_cred.gid))
		return EPERM;
	return caps_set(data_saved);
}
