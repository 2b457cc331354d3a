/*
 * The control interface of point-in-time tree views (G7), shared by the
 * daemon and `stablefs snapshot`. Views are taken and deleted with an
 * ioctl on an fd of the mount's root directory (open(MNT, O_RDONLY |
 * O_DIRECTORY)): unlike a setxattr it needs no write permission on the
 * root, only to be the mount's owner (or root), which the daemon checks.
 * They are listed by getxattr(MNT, SFS_XATTR_VIEWS), as JSON:
 *   {"snapdir":".snapshots","views":[{"name":"n","epoch":1,
 *    "created_ns":1764662400000000000,"captures":0,"bytes_preserved":0,
 *    "invalid":false}, ...]}
 *
 * FUSE passes only "restricted" ioctls, whose argument size is encoded in
 * the command: hence a fixed-size name buffer.
 */
#ifndef SFS_VIEW_IOCTL_H
#define SFS_VIEW_IOCTL_H

#include <linux/ioctl.h>

/* A view's name: 1 to 255 bytes, no '/', not "." or "..", NUL-terminated. */
#define SFS_VIEW_NAME_MAX 255

struct sfs_ioc_view {
	char name[SFS_VIEW_NAME_MAX + 1];
};

/* Take a view of the whole tree now: 0, or EEXIST (the name is taken),
 * EINVAL (a bad name), EPERM (not the mount's owner or root), ENOSPC (too
 * many views: SFS_VIEWS_MAX), EMEDIUMTYPE (the mount has no snapshots:
 * -o snapshot=off). */
#define SFS_IOC_VIEW_CREATE _IOW('s', 0x71, struct sfs_ioc_view)
/* Delete a view (its preserved bytes are freed once no open file of it
 * remains): 0, or ENOENT, EINVAL, EPERM. */
#define SFS_IOC_VIEW_DELETE _IOW('s', 0x72, struct sfs_ioc_view)

#define SFS_XATTR_VIEWS "user.stablefs.views"
#define SFS_VIEWS_MAX 1024

#endif
