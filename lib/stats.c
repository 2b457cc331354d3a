#include "sfs/stats.h"

static uint64_t counters[SFS_STAT_COUNT];

static const char *const names[SFS_STAT_COUNT] = {
	[SFS_STAT_SNAPSHOTS_LIVE] = "snapshots_live",
	[SFS_STAT_SNAPSHOT_OPENS] = "snapshot_opens",
	[SFS_STAT_INVALIDATED_ENOSPC] = "snapshots_invalidated_enospc",
	[SFS_STAT_INVALIDATED_CAP] = "snapshots_invalidated_max_preserve",
	[SFS_STAT_INVALIDATED_OTHER] = "snapshots_invalidated_other",
	[SFS_STAT_OOB_CHANGES] = "oob_changes",
	[SFS_STAT_EIO_READS] = "eio_reads",
	[SFS_STAT_EVICTIONS] = "evictions",
	[SFS_STAT_DIGESTS] = "digests_computed",
	[SFS_STAT_DIGEST_BYTES_READ] = "digest_bytes_read",
	[SFS_STAT_DIGEST_BYTES_ZERO] = "digest_bytes_zero",
	[SFS_STAT_DIGESTS_INTERRUPTED] = "digests_interrupted",
	[SFS_STAT_DIGESTS_QUEUED] = "digests_queued",
	[SFS_STAT_OOB_PRESERVED] = "oob_preserved",
	[SFS_STAT_OOB_UNPRESERVED] = "oob_unpreserved",
	[SFS_STAT_OOB_HELD] = "oob_held",
	[SFS_STAT_OOB_IGNORE_MARKS] = "oob_ignore_marks",
	[SFS_STAT_OOB_GRANT_TIMEOUTS] = "oob_grant_timeouts",
	[SFS_STAT_OOB_AHEAD_BYTES] = "oob_preserved_ahead_bytes",
	[SFS_STAT_OOB_AHEAD_HITS] = "oob_preserved_ahead_hits",
	[SFS_STAT_VIEW_EIO] = "view_eio",
	[SFS_STAT_VIEW_CAPTURE_FAILURES] = "view_capture_failures",
	[SFS_STAT_VIEW_OOB_CAPTURES] = "view_oob_captures",
	[SFS_STAT_VIEWS_INVALIDATED_CAP] = "views_invalidated_max_preserve",
};

void sfs_stat_add(enum sfs_stat which, int64_t delta)
{
	__atomic_add_fetch(&counters[which], (uint64_t)delta, __ATOMIC_RELAXED);
}

uint64_t sfs_stat_get(enum sfs_stat which)
{
	return __atomic_load_n(&counters[which], __ATOMIC_RELAXED);
}

const char *sfs_stat_name(enum sfs_stat which)
{
	return names[which];
}
