/*
 * Per-thread credential switching, so that files created through MNT belong
 * to the caller and the backing filesystem applies the caller's group rules
 * (setgid directories, supplementary groups).
 *
 * Why raw syscalls: glibc's setgroups()/setresuid() wrappers broadcast the
 * change to every thread of the process (POSIX semantics), which would switch
 * all worker threads at once. The kernel's setfsuid/setfsgid/setgroups are
 * per-thread; we call them directly, as qemu's virtiofsd does.
 */
#ifndef SFS_CRED_H
#define SFS_CRED_H

#include <sys/types.h>

#define SFS_MAX_GROUPS 64

struct sfs_cred {
	uid_t uid;
	gid_t gid;
	int ngroups;		/* -1: leave supplementary groups unchanged */
	gid_t groups[SFS_MAX_GROUPS];
};

/*
 * Make the calling thread act as `to` for filesystem access (fsuid, fsgid,
 * supplementary groups). Returns 0 or a positive errno; on error the
 * thread's credentials are restored.
 */
int sfs_cred_enter(const struct sfs_cred *to);

/*
 * (sfs_cred_enter also takes CAP_SYS_RESOURCE out of the effective set when
 * to->uid is not 0, and sfs_cred_leave puts it back: the caller's creations
 * count against the caller's quota and stay out of ext4's reserved blocks.)
 */

/*
 * For changing file data on behalf of uid/gid: fsuid and fsgid become
 * theirs and CAP_SYS_RESOURCE leaves the effective set, so quotas and
 * ext4's root reserve (granted to fsuid 0 or CAP_SYS_RESOURCE) apply as
 * to them; every other capability the thread had stays (permission and
 * set-ID decisions remain the daemon's). The supplementary groups stay
 * the daemon's. sfs_cred_leave_data undoes it. 0 or a positive errno (on
 * error enter leaves the thread as it was).
 */
int sfs_cred_enter_data(uid_t uid, gid_t gid);
int sfs_cred_leave_data(void);

/*
 * Back to the daemon's own credentials (captured by sfs_cred_init). Returns 0
 * or a positive errno: then the thread is left with the caller's (lesser)
 * rights, never more.
 */
int sfs_cred_leave(void);

/* Capture the daemon's credentials; call once before starting threads. */
int sfs_cred_init(void);

/* The calling thread's current fsuid (for tests). */
uid_t sfs_cred_current_fsuid(void);

#endif
