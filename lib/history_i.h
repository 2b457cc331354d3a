/*
 * The bodies of the history's structures: the engine's own, as libfuse
 * keeps fuse_i.h. lib/ and the engine's unit tests include this; fs/ goes
 * through include/sfs/history.h.
 */
#ifndef SFS_HISTORY_I_H
#define SFS_HISTORY_I_H

#include <pthread.h>

#include "sfs/history.h"

/* Store bytes shared by the extents of one or more snapshots. */
struct sfs_chunk {
	uint64_t store_off, len;
	unsigned refs;			/* extents pointing into it */
};

struct sfs_extent {
	uint64_t start, end;		/* file offsets, [start, end) */
	struct sfs_chunk *chunk;	/* NULL: a hole */
	uint64_t chunk_off;		/* where start lies in the chunk */
};

struct sfs_snap {
	uint64_t version;
	uint64_t size;			/* file size at open */
	bool cloned;			/* all of it is a clone in the store */
	struct timespec mtime, ctime;	/* at open, what fstat reports */
	unsigned refs;			/* open snapshot handles */
	bool oob;			/* SRC changed behind our back: live
					 * ranges can no longer be trusted */
	const char *invalid;		/* non-NULL: every read fails (why) */
	GArray *extents;		/* struct sfs_extent, sorted, disjoint */
	bool have_digest;
	unsigned char digest[16];	/* XXH3-128, cached once computed */
	struct timespec digest_ctime;	/* the live file's then (see fs/digest.c) */
	struct sfs_snap *next;
	/* Reads between their plan and sfs_snap_plan_done(): while any run,
	 * the snapshot's store bytes must stay (their pages may be in a pipe). */
	unsigned readers;
	/* Process-wide, oldest first, for max_preserve (history.c). */
	struct sfs_history *owner;
	struct sfs_snap *older, *newer;
	uint64_t instant;		/* sfs_history_instant() when taken */
	/* Kept for tree views (a capture, or a view's open file): max_preserve
	 * reclaims it with its view, never alone, and plain opens do not
	 * share it (nor it theirs): a view is invalidated whole or not. */
	bool for_views;
};

struct sfs_history {
	pthread_mutex_t mutex;
	pthread_cond_t idle;		/* changing dropped to zero */
	uint64_t version;		/* V(B) */
	struct sfs_snap *snaps;		/* live ones, newest first */
	/* -1 until something is preserved. Set under the mutex, atomically:
	 * a reader holding a snapshot with store segments may load it
	 * without the mutex (it cannot change while that snapshot lives). */
	int store_fd;
	uint64_t store_end;
	/*
	 * Out-of-band detection: the (mtime, size) the file had after our
	 * own last change, trusted only while no change of ours is running.
	 */
	unsigned changing;
	bool base_known;
	/*
	 * Not known because our own change ended with no snapshot to guard
	 * (its fstat saved, sfs_history_after_change): the version that
	 * change made is still new, so the next look takes the file as it
	 * then is for the base without calling that a new version.
	 */
	bool base_pending;
	struct timespec base_mtime;
	struct timespec base_ctime;	/* nobody can set it back: see mark_oob */
	uint64_t base_size;
	uint64_t oob_seen;		/* out-of-band changes detected */
	/* ctime after our last change of metadata only (chmod, touch,
	 * xattrs through MNT): snapshots still show the live times then. */
	struct timespec meta_ctime;
	/*
	 * Changes of the data through MNT, in every mode: the version moves
	 * only with snapshots (-o snapshot=off has none to tell apart), this
	 * always. Atomic; bumped by sfs_modify() under its exclusive lock.
	 */
	uint64_t changes;
	/*
	 * The digest of the file's content at one version, valid while the
	 * version, the change count and the live file's ctime (which nobody
	 * can set back, unlike mtime) are all as they were (fs/digest.c).
	 */
	bool have_digest;
	uint64_t digest_version;
	uint64_t digest_changes;
	struct timespec digest_ctime;
	unsigned char digest[16];
};

#endif
