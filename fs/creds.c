/*
 * Acting as the caller: the fsuid/fsgid/groups switch and the caller's
 * umask, for the ops that create files or must be checked as the caller.
 * Per thread (credentials and, once unshared, fs_struct), so a worker
 * switches only for the request it is serving.
 */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "fs.h"
#include "sfs/cred.h"

/*
 * umask is per fs_struct, which threads share: each worker takes its own
 * (unshare(CLONE_FS), as qemu's virtiofsd does) before setting the
 * caller's, so one request's umask never leaks into another's.
 */
static int use_callers_umask(mode_t umask_value)
{
	static __thread bool own_fs_struct;
	/* Nothing else in the daemon sets a worker's umask once it has its
	 * own: a caller's usual umask costs a create no syscall (strace of
	 * bench/meta: one umask(2) per create before). */
	static __thread mode_t current;

	if (!own_fs_struct) {
		if (unshare(CLONE_FS) == -1)
			return errno;
		own_fs_struct = true;
	} else if (umask_value == current) {
		return 0;
	}
	umask(umask_value);
	current = umask_value;
	return 0;
}

/* Did this thread switch for the request it is serving? */
static __thread bool switched;

int sfs_become_caller(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct sfs_cred c = { .uid = ctx->uid, .gid = ctx->gid };
	struct sfs_fs *fs = sfs_fs_of(req);
	int err;

	if (fs->apply_umask && (err = use_callers_umask(ctx->umask)))
		return err;
	/*
	 * A root caller acts as the root daemon already does: new files get
	 * uid and gid 0 either way, and root's rights do not come from its
	 * groups. Skipping the switch saves reading /proc/PID/status (the
	 * groups) and six syscalls per create.
	 */
	if (!fs->switch_creds || (ctx->uid == 0 && ctx->gid == 0))
		return 0;
	c.ngroups = fuse_req_getgroups(req, SFS_MAX_GROUPS, c.groups);
	if (c.ngroups < 0)
		c.ngroups = 0;	/* the caller exited: no supplementary rights */
	if (c.ngroups > SFS_MAX_GROUPS)
		c.ngroups = SFS_MAX_GROUPS;
	err = sfs_cred_enter(&c);
	switched = !err;
	return err;
}

void sfs_become_daemon(fuse_req_t req)
{
	(void)req;
	if (!switched)
		return;
	switched = false;
	if (sfs_cred_leave())
		fuse_log(FUSE_LOG_ERR, "stablefs: cannot restore credentials: "
			 "thread keeps the caller's (lesser) rights\n");
}
