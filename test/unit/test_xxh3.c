/*
 * Unit tests of lib/xxh3.c: the digest of data with runs of zeros fed by
 * sfs_xxh3_zeros() is XXH3-128 of the same bytes as libxxhash computes it
 * in one shot, for runs starting and ending at every kind of position in
 * XXH3's stripes and blocks; and how fast zeros are hashed either way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "sfs/xxh3.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* buf: prefix bytes of data, run zeros, suffix bytes of data. */
static void check_one(unsigned char *buf, size_t prefix, size_t run,
		      size_t suffix, size_t split)
{
	size_t len = prefix + run + suffix;
	XXH128_canonical_t want;
	unsigned char got[16];
	struct sfs_xxh3 *h = sfs_xxh3_new();

	assert_non_null(h);
	for (size_t i = 0; i < len; i++)
		buf[i] = i >= prefix && i < prefix + run ? 0 :
			 (unsigned char)(i * 131 + 7);
	XXH128_canonicalFromHash(&want, XXH3_128bits(buf, len));
	/* The prefix in two updates (split), the run in two zero calls. */
	sfs_xxh3_update(h, buf, split < prefix ? split : prefix);
	sfs_xxh3_update(h, buf + (split < prefix ? split : prefix),
			prefix - (split < prefix ? split : prefix));
	sfs_xxh3_zeros(h, run / 3);
	sfs_xxh3_zeros(h, run - run / 3);
	sfs_xxh3_update(h, buf + prefix + run, suffix);
	sfs_xxh3_digest(h, got);
	sfs_xxh3_free(h);
	if (memcmp(got, want.digest, 16))
		fail_msg("prefix %zu, %zu zeros, suffix %zu (split %zu): digest "
			 "differs from XXH3-128 of the bytes", prefix, run, suffix,
			 split);
}

static void test_matches_library(void **state)
{
	static const size_t ends[] = { 0, 1, 17, 63, 64, 65, 191, 240, 241,
				       255, 256, 257, 1023, 1024, 1025, 5000 };
	static const size_t runs[] = { 0, 1, 64, 1000, 2047, 2048, 4096,
				       4097, 5000, 65536, 70001, 1 << 20,
				       (1 << 20) + 4095, 3 << 20 };
	const size_t n_ends = sizeof(ends) / sizeof(ends[0]);
	unsigned char *buf = malloc(5000 * 2 + (3 << 20));
	long cases = 0;

	(void)state;
	assert_non_null(buf);
	assert_true(sfs_xxh3_jump_ok());
	for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++)
		for (size_t p = 0; p < n_ends; p++) {
			check_one(buf, ends[p], runs[r], ends[(p * 7 + r) % n_ends],
				  ends[(p + r) % n_ends] / 2);
			cases++;
		}
	printf("# %ld prefix/zeros/suffix cases agree with libxxhash\n", cases);
	free(buf);
}

/* One long run: the jump over 256 MiB lands where 256 MiB of zeros do. */
static void test_long_run(void **state)
{
	size_t run = (256u << 20) + 12345;
	unsigned char *buf = malloc(run + 600);

	(void)state;
	assert_non_null(buf);
	check_one(buf, 300, run, 299, 100);
	free(buf);
}

/* MB/s of zeros with and without the jump (printed, not asserted). */
static void test_speed(void **state)
{
	uint64_t len = 4ull << 30;
	unsigned char d1[16], d2[16];
	struct sfs_xxh3 *h;
	double t0, t1, t2;

	(void)state;
	sfs_xxh3_use_jump(false);
	h = sfs_xxh3_new();
	t0 = now();
	sfs_xxh3_zeros(h, len);
	t1 = now();
	sfs_xxh3_digest(h, d1);
	sfs_xxh3_free(h);
	sfs_xxh3_use_jump(true);
	h = sfs_xxh3_new();
	t2 = now();
	sfs_xxh3_zeros(h, len << 4);
	sfs_xxh3_digest(h, d2);
	printf("# zeros: plain XXH3 %.0f MB/s, with the jump %.0f MB/s\n",
	       (double)len / (t1 - t0) / 1e6, (double)(len << 4) / (now() - t2) / 1e6);
	sfs_xxh3_free(h);
	assert_memory_not_equal(d1, d2, 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches_library),
		cmocka_unit_test(test_long_run),
		cmocka_unit_test(test_speed),
	};

	return cmocka_run_group_tests_name("xxh3", tests, NULL, NULL);
}
