/*
 * Process-wide counters, for `stablefs stats MNT`. Relaxed atomics: each is
 * exact, a set of them read together is not a snapshot.
 */
#ifndef SFS_STATS_H
#define SFS_STATS_H

#include <stdint.h>

enum sfs_stat {
	SFS_STAT_SNAPSHOTS_LIVE,	/* snapshot versions with open files */
	SFS_STAT_SNAPSHOT_OPENS,	/* read-only opens served as snapshots */
	SFS_STAT_INVALIDATED_ENOSPC,	/* snapshots lost: store full */
	SFS_STAT_INVALIDATED_CAP,	/* snapshots lost: max_preserve */
	SFS_STAT_INVALIDATED_OTHER,	/* snapshots lost: other errors */
	SFS_STAT_OOB_CHANGES,		/* changes to SRC seen from outside */
	SFS_STAT_EIO_READS,		/* snapshot reads failed with EIO */
	SFS_STAT_EVICTIONS,		/* page-cache ranges evicted */
	SFS_STAT_DIGESTS,		/* xxh3 digests computed */
	SFS_STAT_DIGEST_BYTES_READ,	/* bytes digests read (data) */
	SFS_STAT_DIGEST_BYTES_ZERO,	/* bytes digests hashed unread (holes) */
	SFS_STAT_DIGESTS_INTERRUPTED,	/* digests given up: caller gone */
	SFS_STAT_DIGESTS_QUEUED,	/* large digests run by digest threads */
	SFS_STAT_OOB_PRESERVED,		/* outside changes preserved before they landed */
	SFS_STAT_OOB_UNPRESERVED,	/* outside changes seen only after (EIO) */
	SFS_STAT_OOB_HELD,		/* outside accesses held for a snapshot's file */
	SFS_STAT_OOB_IGNORE_MARKS,	/* files the kernel filters out for us */
	SFS_STAT_OOB_GRANT_TIMEOUTS,	/* held changes not seen to end in time */
	SFS_STAT_OOB_AHEAD_BYTES,	/* preserved ahead of sequential writers */
	SFS_STAT_OOB_AHEAD_HITS,	/* held writes that found theirs done */
	SFS_STAT_VIEW_EIO,		/* view lookups/reads failed: changed outside */
	SFS_STAT_VIEW_CAPTURE_FAILURES,	/* objects views could not keep */
	SFS_STAT_VIEW_OOB_CAPTURES,	/* files captured for views before a
					 * change from outside landed */
	SFS_STAT_VIEWS_INVALIDATED_CAP,	/* whole views lost: max_preserve */
	SFS_STAT_COUNT
};

void sfs_stat_add(enum sfs_stat which, int64_t delta);
uint64_t sfs_stat_get(enum sfs_stat which);
const char *sfs_stat_name(enum sfs_stat which);

#endif
