/*
 * The daemon's lock hierarchy, written once. A thread takes these locks in
 * increasing rank only:
 *
 *   0 VIEW_GATE  the change gate of tree views (fs/views.c): shared by a
 *                change through MNT from before it captures what views
 *                need until it has applied; exclusive while a view is
 *                taken. Taken first, before anything else.
 *   1 RANGE      a granted range lock of a file's data (range_lock.h).
 *                Two at once only for copy_file_range between two files:
 *                the lower sfs_range_lock address first (fs/modify.c).
 *   2 OOB_MARKS  the out-of-band watch's ignore marks (fs/oob_watch.c):
 *                deciding to ignore a file and arming it for a snapshot.
 *   3 TABLE      the inode table's lock (nodes, routes, lookups).
 *   4 HISTORY    a file's history mutex (versions, snapshots, extents).
 *   5 HISTORIES  the list of all histories (lib/history.c's all_lock);
 *                under it another history's mutex only with trylock.
 *   6 VIEWS      the tree views' bookkeeping (lib/views.c): max_preserve
 *                invalidates views from inside a preservation, under the
 *                two above; under it a history's mutex only with trylock.
 *   7 FD_CACHE   the fd cache's lock (lib/fd_cache.c).
 *
 * Every other lock is a leaf: held for a few instructions, never while
 * taking another (the range lock's own mutex, the stats, the handle list,
 * the fanotify watch's queue, the log, the digest queue, the file-lock owners).
 *
 * Held across a reply to the kernel: only a shared RANGE (a READ holds it
 * until fuse_reply_data() has copied the spliced pages, K6 in
 * doc/kernel-facts.md). Nothing evicts from the kernel's page cache while
 * holding any of them: eviction waits for READs in flight, which may wait
 * for a RANGE (the evictor thread holds none, fs/evictor.c).
 *
 * Built with -Dlock_debug=true (CI's sanitizer build), every acquisition is
 * checked against the locks the thread holds, and a violation aborts with
 * both locks named: the next ordering bug fails a test instead of hanging
 * a user. Otherwise the checks compile to nothing.
 */
#ifndef SFS_LOCK_ORDER_H
#define SFS_LOCK_ORDER_H

#include <pthread.h>

enum sfs_lock_rank {
	SFS_RANK_VIEW_GATE = 0,
	SFS_RANK_RANGE,
	SFS_RANK_OOB_MARKS,
	SFS_RANK_TABLE,
	SFS_RANK_HISTORY,
	SFS_RANK_HISTORIES,
	SFS_RANK_VIEWS,
	SFS_RANK_FD_CACHE,
};

#ifdef SFS_LOCK_DEBUG
/* About to block for lock (of rank): abort if the order is broken. */
void sfs_lock_order_acquire(enum sfs_lock_rank rank, const void *lock);
/* lock was taken without blocking (trylock): held, order not checked. */
void sfs_lock_order_held(enum sfs_lock_rank rank, const void *lock);
void sfs_lock_order_release(const void *lock);
/* Abort if the thread holds any ranked lock (where none may be held). */
void sfs_lock_order_assert_none(const char *where);
#else
static inline void sfs_lock_order_acquire(enum sfs_lock_rank rank,
					  const void *lock)
{
	(void)rank;
	(void)lock;
}
static inline void sfs_lock_order_held(enum sfs_lock_rank rank,
				       const void *lock)
{
	(void)rank;
	(void)lock;
}
static inline void sfs_lock_order_release(const void *lock)
{
	(void)lock;
}
static inline void sfs_lock_order_assert_none(const char *where)
{
	(void)where;
}
#endif

static inline void sfs_mutex_lock(pthread_mutex_t *m, enum sfs_lock_rank rank)
{
	sfs_lock_order_acquire(rank, m);
	pthread_mutex_lock(m);
}

static inline int sfs_mutex_trylock(pthread_mutex_t *m, enum sfs_lock_rank rank)
{
	int err = pthread_mutex_trylock(m);

	if (!err)
		sfs_lock_order_held(rank, m);
	return err;
}

static inline void sfs_mutex_unlock(pthread_mutex_t *m)
{
	sfs_lock_order_release(m);
	pthread_mutex_unlock(m);
}

#endif
