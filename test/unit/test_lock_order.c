/*
 * Unit tests of the lock-order check (lib/lock_order.c, built here with
 * SFS_LOCK_DEBUG whatever the build's option): taking locks in rank order
 * passes, anything else aborts, naming both locks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sfs/lock_order.h"

/* Run fn in a child; true if it died of SIGABRT. */
static bool aborts(void (*fn)(void))
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGABRT, SIG_DFL);
		/* The message is expected: keep the test's output clean. */
		if (!freopen("/dev/null", "w", stderr))
			_exit(2);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static char locks[4];	/* stand-ins for locks' addresses */
static char *const a = &locks[0], *const b = &locks[2];

static void in_order(void)
{
	sfs_lock_order_acquire(SFS_RANK_RANGE, a);
	sfs_lock_order_acquire(SFS_RANK_TABLE, b);
	sfs_lock_order_acquire(SFS_RANK_HISTORY, a + 1);
	sfs_lock_order_acquire(SFS_RANK_FD_CACHE, b + 1);
	sfs_lock_order_release(b + 1);
	sfs_lock_order_release(a + 1);
	/* After a release, a lower rank than those still held is wrong,
	 * a higher one is fine again. */
	sfs_lock_order_acquire(SFS_RANK_HISTORIES, a + 1);
	sfs_lock_order_release(a + 1);
	sfs_lock_order_release(b);
	sfs_lock_order_release(a);
	sfs_lock_order_assert_none("done");
}

static void table_then_range(void)
{
	sfs_lock_order_acquire(SFS_RANK_TABLE, a);
	sfs_lock_order_acquire(SFS_RANK_RANGE, b);	/* aborts */
}

static void history_twice(void)
{
	sfs_lock_order_acquire(SFS_RANK_HISTORY, a);
	sfs_lock_order_acquire(SFS_RANK_HISTORY, b);	/* aborts */
}

/* copy_file_range: two range locks, lower address first. */
static void ranges_in_address_order(void)
{
	sfs_lock_order_acquire(SFS_RANK_RANGE, a);
	sfs_lock_order_acquire(SFS_RANK_RANGE, b);
}

static void ranges_against_address_order(void)
{
	sfs_lock_order_acquire(SFS_RANK_RANGE, b);
	sfs_lock_order_acquire(SFS_RANK_RANGE, a);	/* aborts */
}

/* A trylock cannot deadlock: allowed in any order, then held. */
static void trylock_any_order(void)
{
	sfs_lock_order_acquire(SFS_RANK_HISTORIES, a);
	sfs_lock_order_held(SFS_RANK_HISTORY, b);
	sfs_lock_order_release(b);
	sfs_lock_order_release(a);
}

static void trylocked_then_lower(void)
{
	sfs_lock_order_held(SFS_RANK_FD_CACHE, a);
	sfs_lock_order_acquire(SFS_RANK_TABLE, b);	/* aborts */
}

static void release_unheld(void)
{
	sfs_lock_order_release(a);			/* aborts */
}

static void evict_under_range_lock(void)
{
	sfs_lock_order_acquire(SFS_RANK_RANGE, a);
	sfs_lock_order_assert_none("evicting");		/* aborts */
}

/* The wrappers check too. */
static void mutex_wrappers(void)
{
	pthread_mutex_t t = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_t h = PTHREAD_MUTEX_INITIALIZER;

	sfs_mutex_lock(&h, SFS_RANK_HISTORY);
	sfs_mutex_lock(&t, SFS_RANK_TABLE);		/* aborts */
}

static void test_order_kept(void **state)
{
	(void)state;
	assert_false(aborts(in_order));
	assert_false(aborts(ranges_in_address_order));
	assert_false(aborts(trylock_any_order));
}

static void test_order_broken(void **state)
{
	(void)state;
	assert_true(aborts(table_then_range));
	assert_true(aborts(history_twice));
	assert_true(aborts(ranges_against_address_order));
	assert_true(aborts(trylocked_then_lower));
	assert_true(aborts(release_unheld));
	assert_true(aborts(evict_under_range_lock));
	assert_true(aborts(mutex_wrappers));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_kept),
		cmocka_unit_test(test_order_broken),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
