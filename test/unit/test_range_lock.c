/*
 * Unit tests of lib/range_lock.c: who waits for whom, fairness, open-ended
 * ranges, counters, and that nothing is left behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sfs/range_lock.h"
#include "test_util.h"

static struct sfs_range_lock L;

static int setup(void **state)
{
	(void)state;
	sfs_range_lock_init(&L);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	/* Every test must leave the lock with nothing held or queued. */
	if (!sfs_range_lock_idle(&L))
		return -1;
	sfs_range_lock_destroy(&L);
	return 0;
}

/* A locker thread: takes a range, flags that it got it, waits to be told. */
struct locker {
	pthread_t thread;
	uint64_t off, len;
	bool exclusive;
	int got;		/* set once granted (atomic) */
	int release;		/* set by the test (atomic) */
	struct sfs_range_request r;
};

static void *locker_main(void *arg)
{
	struct locker *k = arg;

	sfs_range_acquire(&L, &k->r, k->off, k->len, k->exclusive);
	__atomic_store_n(&k->got, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&k->release, __ATOMIC_SEQ_CST))
		sleep_ms(1);
	sfs_range_release(&L, &k->r);
	return NULL;
}

static void start(struct locker *k, uint64_t off, uint64_t len, bool excl)
{
	k->off = off;
	k->len = len;
	k->exclusive = excl;
	k->got = k->release = 0;
	assert_int_equal(pthread_create(&k->thread, NULL, locker_main, k), 0);
}

/* Has k been granted within ms milliseconds? */
static bool granted_within(struct locker *k, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (__atomic_load_n(&k->got, __ATOMIC_SEQ_CST))
			return true;
		sleep_ms(1);
	}
	return __atomic_load_n(&k->got, __ATOMIC_SEQ_CST);
}

static void finish(struct locker *k)
{
	__atomic_store_n(&k->release, 1, __ATOMIC_SEQ_CST);
	pthread_join(k->thread, NULL);
}

static void test_readers_share(void **state)
{
	struct locker r[8];

	(void)state;
	for (int i = 0; i < 8; i++)
		start(&r[i], 0, 4096, false);
	for (int i = 0; i < 8; i++)
		assert_true(granted_within(&r[i], 1000));
	for (int i = 0; i < 8; i++)
		finish(&r[i]);
}

static void test_writer_waits_for_overlapping_reader(void **state)
{
	struct locker rd, wr;

	(void)state;
	start(&rd, 0, 8192, false);
	assert_true(granted_within(&rd, 1000));
	start(&wr, 4096, 1, true);		/* one byte inside the read */
	assert_false(granted_within(&wr, 100));
	finish(&rd);
	assert_true(granted_within(&wr, 1000));
	finish(&wr);
}

static void test_disjoint_ranges_do_not_wait(void **state)
{
	struct locker a, b, c;

	(void)state;
	start(&a, 0, 4096, true);
	assert_true(granted_within(&a, 1000));
	start(&b, 4096, 4096, true);		/* [4096, 8192): adjacent */
	start(&c, 8192, 100, false);
	assert_true(granted_within(&b, 1000));
	assert_true(granted_within(&c, 1000));
	finish(&a);
	finish(&b);
	finish(&c);
}

static void test_open_ended_range(void **state)
{
	struct locker trunc, far_read, near_read;

	(void)state;
	/* A truncate to 1 MiB locks [1 MiB, end of all files). */
	start(&trunc, 1 << 20, SFS_RANGE_EOF, true);
	assert_true(granted_within(&trunc, 1000));
	start(&far_read, (uint64_t)1 << 50, 4096, false);
	start(&near_read, 0, 1 << 20, false);
	assert_true(granted_within(&near_read, 1000));
	assert_false(granted_within(&far_read, 100));
	finish(&trunc);
	assert_true(granted_within(&far_read, 1000));
	finish(&far_read);
	finish(&near_read);
}

/* A try never waits and, refused, leaves nothing queued: a writer queued
 * behind the refused request would otherwise wait for it forever. */
static void test_try_acquire_never_waits(void **state)
{
	struct sfs_range_request r, r2;
	struct locker rd, wr;

	(void)state;
	start(&rd, 0, 8192, false);
	assert_true(granted_within(&rd, 1000));
	assert_false(sfs_range_try_acquire(&L, &r, 4096, 4096, true));
	assert_true(sfs_range_try_acquire(&L, &r, 4096, 4096, false));
	assert_true(sfs_range_try_acquire(&L, &r2, 8192, 4096, true));
	sfs_range_release(&L, &r);
	/* Behind the refused try, a writer of the read range goes when the
	 * reader does. */
	start(&wr, 0, 4096, true);
	assert_false(granted_within(&wr, 50));
	finish(&rd);
	assert_true(granted_within(&wr, 1000));
	finish(&wr);
	sfs_range_release(&L, &r2);
}

static void test_overflowing_length_is_clamped(void **state)
{
	struct sfs_range_request r;

	(void)state;
	sfs_range_acquire(&L, &r, UINT64_MAX - 10, 100, true);
	assert_true(r.end == SFS_RANGE_EOF);
	assert_true(r.start < r.end);
	sfs_range_release(&L, &r);
}

static void test_writer_not_starved(void **state)
{
	struct locker r1, w, r2;

	(void)state;
	start(&r1, 0, 4096, false);
	assert_true(granted_within(&r1, 1000));
	start(&w, 0, 4096, true);
	assert_false(granted_within(&w, 50));
	/* A reader arriving after the writer queues behind it, although it
	 * would be compatible with r1: otherwise readers could starve w. */
	start(&r2, 0, 4096, false);
	assert_false(granted_within(&r2, 100));
	finish(&r1);
	assert_true(granted_within(&w, 1000));
	assert_false(granted_within(&r2, 50));
	finish(&w);
	assert_true(granted_within(&r2, 1000));
	finish(&r2);
}

/* Is a request queued after r in the lock (under its mutex)? */
static bool queued_behind(struct sfs_range_request *r)
{
	bool queued;

	pthread_mutex_lock(&L.mutex);
	queued = r->next != NULL;
	pthread_mutex_unlock(&L.mutex);
	return queued;
}

static void test_wait_counters(void **state)
{
	struct sfs_range_stats before, after;
	struct locker a, b;

	(void)state;
	sfs_range_stats_get(&before);
	start(&a, 0, 10, true);
	assert_true(granted_within(&a, 1000));
	start(&b, 5, 10, true);
	/* Under load b's thread may take long to start: wait until its
	 * request is queued behind a's (it then waits until a is done). */
	for (int i = 0; i < 10000 && !queued_behind(&a.r); i++)
		sleep_ms(1);
	assert_true(queued_behind(&a.r));
	assert_false(granted_within(&b, 30));
	finish(&a);
	assert_true(granted_within(&b, 1000));
	finish(&b);
	sfs_range_stats_get(&after);
	assert_int_equal(after.waits - before.waits, 1);
	/* b waited at least the 30 ms we watched it wait. */
	assert_true(after.wait_ns - before.wait_ns >= 30 * 1000000ull);
}

/* Many threads hammer random ranges; exclusive holders must be alone. */
static int inside[64];		/* per 64-byte cell: 0 free, -1 writer, n readers */
static pthread_mutex_t inside_mutex = PTHREAD_MUTEX_INITIALIZER;
static int violations;

static void enter(uint64_t off, uint64_t len, bool excl, int dir)
{
	pthread_mutex_lock(&inside_mutex);
	for (uint64_t c = off / 64; c < (off + len + 63) / 64; c++) {
		if (dir > 0) {
			if (excl ? inside[c] != 0 : inside[c] < 0)
				violations++;
			inside[c] = excl ? -1 : inside[c] + 1;
		} else {
			inside[c] = excl ? 0 : inside[c] - 1;
		}
	}
	pthread_mutex_unlock(&inside_mutex);
}

static void *hammer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (int i = 0; i < 3000; i++) {
		uint64_t off = (uint64_t)(rand_r(&seed) % 60) * 64;
		uint64_t len = (uint64_t)(rand_r(&seed) % 4 + 1) * 64;
		bool excl = rand_r(&seed) % 3 == 0;
		struct sfs_range_request r;

		sfs_range_acquire(&L, &r, off, len, excl);
		enter(off, len, excl, 1);
		if (i % 100 == 0)
			sched_yield();
		enter(off, len, excl, -1);
		sfs_range_release(&L, &r);
	}
	return NULL;
}

static void test_mutual_exclusion_under_load(void **state)
{
	pthread_t t[8];

	(void)state;
	violations = 0;
	for (uintptr_t i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, hammer, (void *)(i + 1));
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(violations, 0);
	for (int c = 0; c < 64; c++)
		assert_int_equal(inside[c], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readers_share),
		cmocka_unit_test(test_writer_waits_for_overlapping_reader),
		cmocka_unit_test(test_disjoint_ranges_do_not_wait),
		cmocka_unit_test(test_open_ended_range),
		cmocka_unit_test(test_try_acquire_never_waits),
		cmocka_unit_test(test_overflowing_length_is_clamped),
		cmocka_unit_test(test_writer_not_starved),
		cmocka_unit_test(test_wait_counters),
		cmocka_unit_test(test_mutual_exclusion_under_load),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
