/*
 * Checks on the SRC and MNT arguments, and on names the kernel hands us.
 */
#ifndef SFS_PATHS_H
#define SFS_PATHS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Is the canonical absolute path `inner` equal to or below `outer`?
 * Pure string logic: both must already be realpath()s.
 */
bool sfs_path_within(const char *inner, const char *outer);

/*
 * Validate SRC and MNT for mounting: both exist and are directories, MNT is
 * empty unless allow_nonempty, neither contains the other. On success the
 * canonical SRC is stored in *src_real (malloc'd). Returns 0, or -1 with one
 * line in err.
 */
int sfs_check_mount_paths(const char *src, const char *mnt, bool allow_nonempty,
			  char **src_real, char *err, size_t errlen);

/* A single path component we may pass to *at() calls: no '/', not . or .. */
bool sfs_name_is_safe(const char *name);

#endif
