/*
 * The runtime check of the lock hierarchy (include/sfs/lock_order.h): each
 * thread keeps the ranked locks it holds; taking one whose rank is not
 * above all of them aborts. Only built with SFS_LOCK_DEBUG.
 */
#include "sfs/lock_order.h"

#ifdef SFS_LOCK_DEBUG
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_HELD 16

struct held {
	enum sfs_lock_rank rank;
	const void *lock;
};

static __thread struct held held[MAX_HELD];
static __thread int nheld;

static const char *rank_name(enum sfs_lock_rank r)
{
	static const char *const names[] = {
		[SFS_RANK_VIEW_GATE] = "views' change gate",
		[SFS_RANK_RANGE] = "range lock",
		[SFS_RANK_OOB_MARKS] = "oob watch's mark lock",
		[SFS_RANK_TABLE] = "inode table lock",
		[SFS_RANK_HISTORY] = "history mutex",
		[SFS_RANK_HISTORIES] = "all-histories lock",
		[SFS_RANK_VIEWS] = "views' lock",
		[SFS_RANK_FD_CACHE] = "fd cache lock",
	};

	return r >= SFS_RANK_VIEW_GATE && r <= SFS_RANK_FD_CACHE ? names[r] : "?";
}

static void push(enum sfs_lock_rank rank, const void *lock)
{
	if (nheld == MAX_HELD) {
		fprintf(stderr, "stablefs: lock order: more than %d locks held\n",
			MAX_HELD);
		abort();
	}
	held[nheld++] = (struct held){ rank, lock };
}

/* May a thread holding h block for (rank, lock)? */
static int in_order(const struct held *h, enum sfs_lock_rank rank,
		    const void *lock)
{
	if (h->rank != rank)
		return h->rank < rank;
	/* Two range locks: address order (copy_file_range). */
	return rank == SFS_RANK_RANGE && (uintptr_t)h->lock < (uintptr_t)lock;
}

void sfs_lock_order_acquire(enum sfs_lock_rank rank, const void *lock)
{
	for (int i = 0; i < nheld; i++) {
		if (!in_order(&held[i], rank, lock)) {
			fprintf(stderr, "stablefs: lock order violated: %s %p "
				"taken while holding %s %p\n", rank_name(rank),
				lock, rank_name(held[i].rank), held[i].lock);
			abort();
		}
	}
	push(rank, lock);
}

void sfs_lock_order_held(enum sfs_lock_rank rank, const void *lock)
{
	push(rank, lock);
}

void sfs_lock_order_release(const void *lock)
{
	for (int i = nheld - 1; i >= 0; i--) {
		if (held[i].lock == lock) {
			held[i] = held[--nheld];
			return;
		}
	}
	fprintf(stderr, "stablefs: lock order: %p released but not held\n", lock);
	abort();
}

void sfs_lock_order_assert_none(const char *where)
{
	if (nheld) {
		fprintf(stderr, "stablefs: lock order: %s with %s %p held\n",
			where, rank_name(held[0].rank), held[0].lock);
		abort();
	}
}
#endif
