/*
 * Unit tests of lib/oob_access.c: which held accesses change which bytes.
 * The lines are the ones measured on 6.18 (doc/kernel-facts.md, K9).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "sfs/oob_access.h"

static bool changes(const char *line, enum sfs_oob_event ev, uint64_t ev_off,
		    uint64_t ev_count, uint64_t *off, uint64_t *end)
{
	struct sfs_syscall sc;

	sfs_syscall_parse(line, &sc);
	return sfs_oob_access_changes(&sc, ev, ev_off, ev_count, off, end);
}

static void test_parse(void **state)
{
	struct sfs_syscall sc;

	(void)state;
	sfs_syscall_parse("18 0x3 0x7ffd1000 0x1 0x1388 0x0 0x0 0x7ffd0ff8 0x7f12", &sc);
	assert_true(sc.known);
	assert_int_equal(sc.nr, 18);
	assert_int_equal(sc.args[0], 3);
	assert_int_equal(sc.args[2], 1);
	assert_int_equal(sc.args[3], 0x1388);
	sfs_syscall_parse("running\n", &sc);
	assert_false(sc.known);
	sfs_syscall_parse("-1 0x7ffd0ff8 0x7f12\n", &sc);
	assert_false(sc.known);
	sfs_syscall_parse("", &sc);
	assert_false(sc.known);
	sfs_syscall_parse("17 0x3", &sc);	/* cut short */
	assert_false(sc.known);
}

static void test_reads_change_nothing(void **state)
{
	char line[128];
	uint64_t off, end;

	(void)state;
	snprintf(line, sizeof(line), "%d 0x3 0x1000 0x64 0xbb8 0x0 0x0 0x1 0x2", SYS_pread64);
	assert_false(changes(line, SFS_OOB_PRE_ACCESS, 0, 4096, &off, &end));
	snprintf(line, sizeof(line), "%d 0x3 0x1000 0x64 0x0 0x0 0x0 0x1 0x2", SYS_read);
	assert_false(changes(line, SFS_OOB_PRE_ACCESS, 0, 4096, &off, &end));
	/* A private or read-only mapping changes nothing in the file. */
	snprintf(line, sizeof(line), "%d 0x0 0x10000 0x3 0x2 0x3 0x0 0x1 0x2", SYS_mmap);
	assert_false(changes(line, SFS_OOB_PRE_ACCESS, 0, 65536, &off, &end));
	snprintf(line, sizeof(line), "%d 0x0 0x10000 0x1 0x1 0x3 0x0 0x1 0x2", SYS_mmap);
	assert_false(changes(line, SFS_OOB_PRE_ACCESS, 0, 65536, &off, &end));
	/* Allocation keeps every byte. */
	snprintf(line, sizeof(line), "%d 0x3 0x1 0x0 0x100000 0x0 0x0 0x1 0x2", SYS_fallocate);
	assert_false(changes(line, SFS_OOB_PRE_ACCESS, 0, 1 << 20, &off, &end));
	/* An open without O_TRUNC. */
	snprintf(line, sizeof(line), "%d 0xffffff9c 0x1000 0x%x 0x0 0x0 0x0 0x1 0x2",
		 SYS_openat, O_WRONLY | O_APPEND);
	assert_false(changes(line, SFS_OOB_OPEN, 0, 0, &off, &end));
}

static void test_writes(void **state)
{
	char line[128];
	uint64_t off, end;

	(void)state;
	/* pwrite of 1 byte at 5000: the event's page. */
	snprintf(line, sizeof(line), "%d 0x3 0x1000 0x1 0x1388 0x0 0x0 0x1 0x2", SYS_pwrite64);
	assert_true(changes(line, SFS_OOB_PRE_ACCESS, 4096, 4096, &off, &end));
	assert_int_equal(off, 4096);
	assert_int_equal(end, 8192);
	/* Shared writable mapping: all it maps. */
	snprintf(line, sizeof(line), "%d 0x0 0x10000 0x3 0x1 0x3 0x0 0x1 0x2", SYS_mmap);
	assert_true(changes(line, SFS_OOB_PRE_ACCESS, 0, 65536, &off, &end));
	assert_int_equal(end, 65536);
	snprintf(line, sizeof(line), "%d 0x0 0x10000 0x3 0x3 0x3 0x0 0x1 0x2", SYS_mmap);
	assert_true(changes(line, SFS_OOB_PRE_ACCESS, 0, 65536, &off, &end));
	/* copy_file_range: its event range (source events over-preserve). */
	snprintf(line, sizeof(line), "%d 0x3 0x0 0x4 0x0 0x2000 0x0 0x1 0x2", SYS_copy_file_range);
	assert_true(changes(line, SFS_OOB_PRE_ACCESS, 4096, 8192, &off, &end));
	assert_int_equal(off, 4096);
	assert_int_equal(end, 12288);
}

/* Only write(2) and its kin are writes "in order" (for preserving ahead). */
static void test_is_write(void **state)
{
	static const long writes[] = { SYS_write, SYS_pwrite64, SYS_writev,
				       SYS_pwritev, SYS_pwritev2 };
	static const long others[] = { SYS_read, SYS_pread64, SYS_ftruncate,
				       SYS_fallocate, SYS_mmap, SYS_openat,
				       SYS_copy_file_range };
	struct sfs_syscall sc;
	char line[128];

	(void)state;
	for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
		snprintf(line, sizeof(line), "%ld 0x3 0x1000 0x1 0x0 0x0 0x0 0x1 0x2", writes[i]);
		sfs_syscall_parse(line, &sc);
		assert_true(sfs_syscall_is_write(&sc));
	}
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		snprintf(line, sizeof(line), "%ld 0x3 0x1000 0x1 0x0 0x0 0x0 0x1 0x2", others[i]);
		sfs_syscall_parse(line, &sc);
		assert_false(sfs_syscall_is_write(&sc));
	}
	sfs_syscall_parse("running", &sc);
	assert_false(sfs_syscall_is_write(&sc));
}

static void test_truncation_reaches_the_end(void **state)
{
	char line[128];
	uint64_t off, end;

	(void)state;
	/* ftruncate 65536 -> 60000 is announced as 57344+4096. */
	snprintf(line, sizeof(line), "%d 0x3 0xea60 0x0 0x0 0x0 0x0 0x1 0x2", SYS_ftruncate);
	assert_true(changes(line, SFS_OOB_PRE_ACCESS, 57344, 4096, &off, &end));
	assert_int_equal(off, 60000);
	assert_int_equal(end, UINT64_MAX);
	/* truncate(path) to 0: range 0+0. */
	snprintf(line, sizeof(line), "%d 0x7ffd 0x0 0x0 0x0 0x0 0x0 0x1 0x2", SYS_truncate);
	assert_true(changes(line, SFS_OOB_PRE_ACCESS, 0, 0, &off, &end));
	assert_int_equal(off, 0);
	assert_int_equal(end, UINT64_MAX);
	/* Punch 5000+10000: exactly that; collapse: to the end. */
	snprintf(line, sizeof(line), "%d 0x3 0x%x 0x1388 0x2710 0x0 0x0 0x1 0x2",
		 SYS_fallocate, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
	assert_true(changes(line, SFS_OOB_PRE_ACCESS, 4096, 12288, &off, &end));
	assert_int_equal(off, 5000);
	assert_int_equal(end, 15000);
	snprintf(line, sizeof(line), "%d 0x3 0x%x 0x1000 0x1000 0x0 0x0 0x1 0x2",
		 SYS_fallocate, FALLOC_FL_COLLAPSE_RANGE);
	assert_true(changes(line, SFS_OOB_PRE_ACCESS, 4096, 4096, &off, &end));
	assert_int_equal(end, UINT64_MAX);
	/* open(O_TRUNC), openat2 (flags unread) and creat: all of it. */
	snprintf(line, sizeof(line), "%d 0xffffff9c 0x1000 0x%x 0x0 0x0 0x0 0x1 0x2",
		 SYS_openat, O_WRONLY | O_TRUNC);
	assert_true(changes(line, SFS_OOB_OPEN, 0, 0, &off, &end));
	assert_int_equal(off, 0);
	assert_int_equal(end, UINT64_MAX);
	snprintf(line, sizeof(line), "%d 0xffffff9c 0x1000 0x2000 0x18 0x0 0x0 0x1 0x2",
		 SYS_openat2);
	assert_true(changes(line, SFS_OOB_OPEN, 0, 0, &off, &end));
}

static void test_unknown_is_a_change_to_the_end(void **state)
{
	uint64_t off, end;

	(void)state;
	/* An io_uring worker, a kernel thread: no syscall to read. */
	assert_true(changes("running", SFS_OOB_PRE_ACCESS, 8192, 4096, &off, &end));
	assert_int_equal(off, 8192);
	assert_int_equal(end, UINT64_MAX);
	assert_true(changes("-1 0x1 0x2", SFS_OOB_OPEN, 0, 0, &off, &end));
	assert_true(changes("999 0x0 0x0 0x0 0x0 0x0 0x0 0x1 0x2",
			    SFS_OOB_PRE_ACCESS, 8192, 4096, &off, &end));
	assert_int_equal(end, 12288);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_reads_change_nothing),
		cmocka_unit_test(test_writes),
		cmocka_unit_test(test_is_write),
		cmocka_unit_test(test_truncation_reaches_the_end),
		cmocka_unit_test(test_unknown_is_a_change_to_the_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
