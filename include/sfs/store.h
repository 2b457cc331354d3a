/*
 * The preservation store: where bytes that a snapshot still needs are put
 * before the live file changes them. Files are anonymous (O_TMPFILE) in a
 * directory on SRC's own filesystem by default, so nothing ever appears in
 * SRC, a crash leaves nothing behind, and copy_file_range() can reflink on
 * XFS and btrfs.
 */
#ifndef SFS_STORE_H
#define SFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sfs_store;

struct sfs_store_stats {
	uint64_t bytes_live;		/* preserved bytes currently held */
	uint64_t bytes_copied;		/* ever preserved, total */
	uint64_t bytes_reflinked;	/* of which shared extents, not copies */
	uint64_t files;			/* open store files */
	uint64_t clones;		/* snapshots taken as clones, total */
	uint64_t bytes_cloned;		/* their sizes, total */
	uint64_t clones_declined;	/* files of too many extents to clone */
};

/* Files of more extents than this are not cloned at open: a clone costs
 * per extent (about 15 us each on XFS here: 150 ms at 10,000). */
#define SFS_CLONE_MAX_EXTENTS 1024

/*
 * A store creating its files in dirfd's directory (an O_PATH or O_RDONLY
 * directory fd, not consumed). Checks that O_TMPFILE works there. NULL with
 * a one-line reason in err.
 */
struct sfs_store *sfs_store_new(int dirfd, char *err, size_t errlen);
void sfs_store_free(struct sfs_store *s);

/*
 * Cap on bytes held (0: none). A copy that would pass it fails with EDQUOT,
 * and the snapshots that needed it are invalidated; writers never wait.
 */
void sfs_store_set_max(struct sfs_store *s, uint64_t max_bytes);

/* Would need more bytes fit under the cap (always, without one)? */
bool sfs_store_fits(struct sfs_store *s, uint64_t need);

/* A new anonymous store file (read/write fd), or -1 with errno. */
int sfs_store_file(struct sfs_store *s);
void sfs_store_file_close(struct sfs_store *s, int fd);

/*
 * Copy len bytes from src at src_off to dst (a store file) at dst_off, in
 * the kernel (copy_file_range: a reflink where the filesystem can share
 * extents). Returns 0 or a positive errno (ENOSPC...). Accounts the bytes.
 */
int sfs_store_copy(struct sfs_store *s, int src, uint64_t src_off, int dst,
		   uint64_t dst_off, uint64_t len);

/*
 * Clone all of src into dst (a store file) at dst_off (block-aligned):
 * FICLONERANGE, sharing every extent (XFS with reflink, btrfs), in one
 * atomic step against writers of src. len (src's size) counts against the
 * cap. 0 or a positive errno (EOPNOTSUPP, EXDEV, EINVAL: no clones here;
 * E2BIG: src has more than SFS_CLONE_MAX_EXTENTS extents).
 */
int sfs_store_clone(struct sfs_store *s, int src, int dst, uint64_t dst_off,
		    uint64_t len);

/* Can the store's filesystem clone its files (probed)? */
bool sfs_store_can_clone(struct sfs_store *s);
/* Take snapshots as clones at open (s may be NULL: no). */
void sfs_store_use_clones(struct sfs_store *s, bool on);
bool sfs_store_clones(struct sfs_store *s);

/* Give back len preserved bytes at off of a store file (punches a hole). */
void sfs_store_release(struct sfs_store *s, int fd, uint64_t off, uint64_t len);

void sfs_store_stats_get(struct sfs_store *s, struct sfs_store_stats *out);

#endif
