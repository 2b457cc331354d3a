/*
 * Byte-range locks on one backing inode: shared for reads (held from before
 * the backing fd is spliced into the reply pipe until the reply has been
 * copied into the kernel), exclusive for modifications, which therefore wait
 * for every outstanding daemon pipe reference in their range (K6,
 * doc/kernel-facts.md).
 *
 * Grants are first-come first-served among overlapping requests: a request
 * waits for every earlier request it conflicts with, granted or not, so a
 * stream of readers cannot starve a writer (nor writers a reader), while
 * requests on disjoint ranges never wait for each other.
 */
#ifndef SFS_RANGE_LOCK_H
#define SFS_RANGE_LOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* End of an open-ended range: truncate/extend/insert lock [off, EOF...). */
#define SFS_RANGE_EOF UINT64_MAX

struct sfs_range_request {
	uint64_t start, end;		/* [start, end) */
	bool exclusive;
	bool granted;
	struct sfs_range_request *prev, *next;	/* arrival order, in the lock's list */
};

struct sfs_range_lock {
	pthread_mutex_t mutex;
	pthread_cond_t changed;		/* a range was released */
	struct sfs_range_request *head, *tail;	/* protected by mutex */
};

struct sfs_range_stats {
	uint64_t waits;			/* acquisitions that had to wait */
	uint64_t wait_ns;		/* total time spent waiting */
};

void sfs_range_lock_init(struct sfs_range_lock *l);
void sfs_range_lock_destroy(struct sfs_range_lock *l);

/*
 * Lock [off, off + len) (len SFS_RANGE_EOF - off, or any length reaching
 * past it, means "to the end of all files"). r is caller-owned storage
 * (usually on the stack) until sfs_range_release(). len 0 locks nothing but
 * still orders the request.
 */
void sfs_range_acquire(struct sfs_range_lock *l, struct sfs_range_request *r,
		    uint64_t off, uint64_t len, bool exclusive);
void sfs_range_release(struct sfs_range_lock *l, struct sfs_range_request *r);
/* The same, if it can be granted now without waiting; else false, and r
 * is not queued (nothing to release). */
bool sfs_range_try_acquire(struct sfs_range_lock *l,
			   struct sfs_range_request *r, uint64_t off,
			   uint64_t len, bool exclusive);

/* Is any range held or waiting? (for tests and leak checks) */
bool sfs_range_lock_idle(struct sfs_range_lock *l);

/* Process-wide counters, read atomically. */
void sfs_range_stats_get(struct sfs_range_stats *out);

#endif
