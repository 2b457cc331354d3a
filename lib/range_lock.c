#include "sfs/range_lock.h"
#include "sfs/lock_order.h"
#include "sfs/clock.h"

#include <time.h>

static uint64_t stat_waits, stat_wait_ns;

void sfs_range_lock_init(struct sfs_range_lock *l)
{
	pthread_mutex_init(&l->mutex, NULL);
	pthread_cond_init(&l->changed, NULL);
	l->head = l->tail = NULL;
}

void sfs_range_lock_destroy(struct sfs_range_lock *l)
{
	pthread_cond_destroy(&l->changed);
	pthread_mutex_destroy(&l->mutex);
}

static bool conflicts(const struct sfs_range_request *a, const struct sfs_range_request *b)
{
	return (a->exclusive || b->exclusive) &&
	       a->start < b->end && b->start < a->end;
}

/* May r go now? Only requests that arrived before it can hold it up. */
static bool can_grant(const struct sfs_range_request *r)
{
	for (const struct sfs_range_request *e = r->prev; e; e = e->prev)
		if (conflicts(e, r))
			return false;
	return true;
}


static void request_init(struct sfs_range_request *r, uint64_t off,
			 uint64_t len, bool exclusive)
{
	r->start = off;
	r->end = len > SFS_RANGE_EOF - off ? SFS_RANGE_EOF : off + len;
	r->exclusive = exclusive;
	r->granted = false;
	r->next = NULL;
}

/* Queue r last. With l->mutex held. */
static void enqueue(struct sfs_range_lock *l, struct sfs_range_request *r)
{
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

bool sfs_range_try_acquire(struct sfs_range_lock *l,
			   struct sfs_range_request *r, uint64_t off,
			   uint64_t len, bool exclusive)
{
	request_init(r, off, len, exclusive);
	pthread_mutex_lock(&l->mutex);
	enqueue(l, r);
	/* Nobody is behind r yet: taking it out again wakes no one. */
	if (!can_grant(r)) {
		l->tail = r->prev;
		if (r->prev)
			r->prev->next = NULL;
		else
			l->head = NULL;
		pthread_mutex_unlock(&l->mutex);
		r->prev = NULL;
		return false;
	}
	r->granted = true;
	pthread_mutex_unlock(&l->mutex);
	sfs_lock_order_held(SFS_RANK_RANGE, l);
	return true;
}

void sfs_range_acquire(struct sfs_range_lock *l, struct sfs_range_request *r,
		    uint64_t off, uint64_t len, bool exclusive)
{
	uint64_t t0;

	request_init(r, off, len, exclusive);
	sfs_lock_order_acquire(SFS_RANK_RANGE, l);
	pthread_mutex_lock(&l->mutex);
	enqueue(l, r);
	if (!can_grant(r)) {
		t0 = sfs_now_ns();
		do
			pthread_cond_wait(&l->changed, &l->mutex);
		while (!can_grant(r));
		__atomic_add_fetch(&stat_waits, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&stat_wait_ns, sfs_now_ns() - t0, __ATOMIC_RELAXED);
	}
	r->granted = true;
	pthread_mutex_unlock(&l->mutex);
}

void sfs_range_release(struct sfs_range_lock *l, struct sfs_range_request *r)
{
	sfs_lock_order_release(l);
	pthread_mutex_lock(&l->mutex);
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	/* Someone may have been queued behind r; waking only those that
	 * overlap would need per-waiter condvars: waiters are rare and few. */
	if (l->head)
		pthread_cond_broadcast(&l->changed);
	pthread_mutex_unlock(&l->mutex);
	r->prev = r->next = NULL;
	r->granted = false;
}

bool sfs_range_lock_idle(struct sfs_range_lock *l)
{
	bool idle;

	pthread_mutex_lock(&l->mutex);
	idle = l->head == NULL;
	pthread_mutex_unlock(&l->mutex);
	return idle;
}

void sfs_range_stats_get(struct sfs_range_stats *out)
{
	out->waits = __atomic_load_n(&stat_waits, __ATOMIC_RELAXED);
	out->wait_ns = __atomic_load_n(&stat_wait_ns, __ATOMIC_RELAXED);
}
