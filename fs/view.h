/*
 * Tree views (G7), private to fs/views.c (taking views, capturing objects),
 * fs/view_ops.c (serving MNT/<snapdir>/NAME/...) and fs/view_state.c
 * (what both keep and check of an object).
 */
#ifndef SFS_VIEW_H
#define SFS_VIEW_H

#include <glib.h>
#include <sys/stat.h>

#include "fs.h"
#include "sfs/views.h"

/* One entry of a directory as a view lists it. */
struct view_dirent {
	char *name;
	ino_t ino;
	unsigned char type;	/* DT_* */
};

/* A directory's entries at one instant (a GArray of struct view_dirent),
 * shared by reference: a capture's, or one a handle read. */
struct view_dir {
	GArray *entries;
	GHashTable *by_name;	/* name -> index + 1 */
	unsigned refs;		/* atomic */
};

/*
 * What an object was before its first change through MNT after a view:
 * the payload of a capture (lib/views.c). Immutable once recorded.
 */
struct view_capture {
	struct stat st;
	/* O_PATH, or -1: keeps the object (and its ino) alive once its name
	 * went through MNT; atomic (set once, after the capture is shared). */
	int keep_fd;
	struct sfs_node *held;	/* one lookup of its inode-table entry */
	char *target;		/* a symlink's */
	GByteArray *xattrs;	/* name NUL, u32 size, value; ... */
	bool xattrs_known;	/* false: SRC has none (ENOTSUP) */
	struct view_dir *dir;	/* a directory's entries */
	struct sfs_snap *snap;	/* a regular file's bytes then */
	bool lost;		/* capturing failed: the views answer EIO */
};

/* An empty listing (its names are freed with it). */
struct view_dir *view_dir_new(void);
/* Read the entries of the directory path_fd refers to; NULL with errno. */
struct view_dir *view_dir_read(int path_fd);
void view_dir_put(struct view_dir *d);
/* The entry named name, or NULL. */
const struct view_dirent *view_dir_find(const struct view_dir *d,
					const char *name);

/* Read the xattrs of the object path_fd refers to into c. 0 or errno. */
int view_xattrs_read(int path_fd, GByteArray **out, bool *known);

/* Is a later than b? */
bool view_ts_after(struct timespec a, struct timespec b);
/* Has the object (live stat st) changed outside the mount since view? */
bool view_changed_outside(const struct sfs_view *view, const struct stat *st);
/* Say once per mount that a view met such an object; counts each. */
void view_note_outside(const struct sfs_view *view, const struct stat *st);

#endif
