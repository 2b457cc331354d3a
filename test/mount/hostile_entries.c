/*
 * Directories of many entries through a mount (G4 fidelity,
 * doc/guarantees.md). In the `slow` suite.
 *
 * Many entries in one directory (SFS_HOSTILE_ENTRIES, default a
 * million), created through MNT: getdents64 with a small buffer returns
 * each name exactly once, and a saved position (telldir cookie, i.e.
 * d_off) resumes identically on the same handle and on a new one,
 * compared with the same operations on SRC directly; the daemon keeps
 * an entry for every one with no more fds open than its budget. The
 * same checks also run on min(N, 10000) entries.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hostile_util.h"
#include "test_util.h"

/* ==== 4. many entries ================================================== */

#define DREAD_BUF 512	/* small: many getdents64 calls, many READDIRs */

struct dreader {
	int fd;
	/* getdents64 records are 8-byte aligned within an aligned buffer */
	char buf[DREAD_BUF] __attribute__((aligned(8)));
	long len, pos;
	long calls;
};

struct dent {
	char name[256];
	int64_t off;		/* d_off: the cookie of the position after it */
};

static void dr_open(struct dreader *r, int dirfd)
{
	memset(r, 0, sizeof(*r));
	r->fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->fd < 0)
		fail_msg("opening the big directory again: %s", strerror(errno));
}

/* Next entry other than . and ..; false at the end. */
static bool dr_next(struct dreader *r, struct dent *e)
{
	for (;;) {
		struct dirent64 *d;

		if (r->pos >= r->len) {
			r->len = syscall(SYS_getdents64, r->fd, r->buf, sizeof(r->buf));
			r->calls++;
			if (r->len < 0)
				fail_msg("getdents64: %s", strerror(errno));
			r->pos = 0;
			if (r->len == 0)
				return false;
		}
		d = (struct dirent64 *)(r->buf + r->pos);
		r->pos += d->d_reclen;
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		snprintf(e->name, sizeof(e->name), "%s", d->d_name);
		e->off = d->d_off;
		return true;
	}
}

/* seekdir(): the position after the entry whose d_off this is. */
static void dr_seek(struct dreader *r, int64_t cookie)
{
	assert_int_equal(lseek(r->fd, (off_t)cookie, SEEK_SET), (off_t)cookie);
	r->pos = r->len = 0;
}

static void dr_close(struct dreader *r)
{
	close(r->fd);
}

static unsigned entries_wanted(void)
{
	const char *s = getenv("SFS_HOSTILE_ENTRIES");
	unsigned long n = s && *s ? strtoul(s, NULL, 10) : 1000000;

	return n >= 10 ? (unsigned)n : 10;
}

/* Entry i: varied lengths (so records vary), unique, parseable. */
static void entry_name(char *out, size_t size, unsigned i)
{
	static const char pad[] = "----------------------------------------------------------------";
	int padlen = (int)((i * 2654435761u) % 48);

	snprintf(out, size, "e%08u%.*s", i, padlen, pad);
}

static bool parse_entry(const char *name, unsigned n, unsigned *idx)
{
	char want[128];
	char *end;
	unsigned long i;

	if (name[0] != 'e')
		return false;
	i = strtoul(name + 1, &end, 10);
	if (end != name + 9 || i >= n)
		return false;
	entry_name(want, sizeof(want), (unsigned)i);
	if (strcmp(want, name))
		return false;
	*idx = (unsigned)i;
	return true;
}

/* One entry of a listing: which name, and its d_off. */
struct lent {
	uint32_t idx;
	int64_t off;
};

/* The list of one full pass; checks each of the n names exactly once. */
static struct lent *full_listing(int dirfd, unsigned n, const char *who, long *calls)
{
	struct lent *all = xmalloc(sizeof(*all) * (n + 1));
	unsigned char *seen = calloc(n, 1);
	struct dreader r;
	unsigned count = 0, idx, dups = 0, bad = 0, missing = 0;
	struct dent e;

	assert_non_null(seen);
	dr_open(&r, dirfd);
	while (dr_next(&r, &e)) {
		if (!parse_entry(e.name, n, &idx)) {
			if (bad++ < 5)
				printf("# %s: unexpected entry [%s]\n", who, show(e.name, 80));
			continue;
		}
		if (seen[idx]++) {
			if (dups++ < 5)
				printf("# %s: duplicate entry [%s] at position %u\n", who, e.name, count);
			continue;
		}
		if (count < n)
			all[count] = (struct lent){ idx, e.off };
		count++;
	}
	*calls = r.calls;
	dr_close(&r);
	for (unsigned i = 0; i < n; i++) {
		if (!seen[i] && missing++ < 5) {
			char nm[128];

			entry_name(nm, sizeof(nm), i);
			printf("# %s: missing entry [%s]\n", who, nm);
		}
	}
	free(seen);
	if (dups || bad || missing || count != n)
		fail_msg("%s: readdir gave %u distinct of %u names, %u duplicates, %u unexpected, %u missing",
			 who, count, n, dups, bad, missing);
	return all;
}

/* Read from r until the end; compare with want[from..n). */
static bool expect_rest(struct dreader *r, const struct lent *want, unsigned from, unsigned n,
			const char *who, bool must)
{
	struct dent e;
	unsigned i = from, idx;

	while (dr_next(r, &e)) {
		if (i >= n) {
			if (!must)
				return false;
			fail_msg("%s: extra entry [%s] after the end", who, show(e.name, 80));
		}
		if (!parse_entry(e.name, n, &idx) || idx != want[i].idx || e.off != want[i].off) {
			char nm[128];

			if (!must)
				return false;
			entry_name(nm, sizeof(nm), want[i].idx);
			fail_msg("%s: position %u is [%s] off %" PRId64 ", the first pass had [%s] off %" PRId64,
				 who, i, show(e.name, 80), e.off, nm, want[i].off);
		}
		i++;
	}
	if (i != n) {
		if (!must)
			return false;
		fail_msg("%s: ended after %u entries, the first pass had %u", who, i, n);
	}
	return true;
}

/*
 * On one directory fd: full pass (each name once), then the same handle
 * read to the middle, saved, read on, sought back (the same entries again),
 * then a new handle sought to the saved cookie. Returns whether the new
 * handle resumed identically (asserted only if required).
 */
static bool resume_checks(int dirfd, unsigned n, const char *who, bool require_cross,
			  struct lent **listing)
{
	struct dreader r, r2;
	struct dent e;
	struct lent *all;
	unsigned half = n / 2, idx;
	int64_t cookie;
	long calls;
	double t0 = now_s();
	bool cross_ok;

	all = full_listing(dirfd, n, who, &calls);
	printf("# %s: full pass of %u entries in %.2f s, %ld getdents64 calls of %d bytes\n",
	       who, n, now_s() - t0, calls, DREAD_BUF);
	t0 = now_s();
	/* Same handle: read half, tell, read on, seek back. */
	dr_open(&r, dirfd);
	for (unsigned i = 0; i < half; i++) {
		assert_true(dr_next(&r, &e));
		if (!parse_entry(e.name, n, &idx) || idx != all[i].idx)
			fail_msg("%s: second pass differs at %u: [%s]", who, i, show(e.name, 80));
	}
	cookie = all[half - 1].off;	/* telldir() after entry half-1 */
	for (unsigned i = half; i < half + 1000 && i < n; i++) {
		assert_true(dr_next(&r, &e));
		assert_true(parse_entry(e.name, n, &idx) && idx == all[i].idx);
	}
	dr_seek(&r, cookie);
	expect_rest(&r, all, half, n, who, true);
	/* Seek back to near the start, then to near the end. */
	dr_seek(&r, all[0].off);
	expect_rest(&r, all, 1, n, who, true);
	dr_seek(&r, all[n - 2].off);
	expect_rest(&r, all, n - 1, n, who, true);
	dr_close(&r);
	/* A new handle, seeking to the saved cookie. */
	dr_open(&r2, dirfd);
	dr_seek(&r2, cookie);
	cross_ok = expect_rest(&r2, all, half, n, who, require_cross);
	dr_close(&r2);
	printf("# %s: telldir/seekdir resume checks (same handle 3x, new handle 1x) in %.2f s\n",
	       who, now_s() - t0);
	*listing = all;
	return cross_ok;
}

static void many_entries(struct fixture *f, unsigned n)
{
	struct lent *raw, *via;
	char name[128];
	double t0 = now_s();
	int mdir, sdir;
	bool raw_cross, same_cookies = true;
	char create_err[256] = "";
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	printf("# many entries: N=%u; fd limit %llu/%llu\n", n,
	       (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
	assert_int_equal(mkdirat(f->mntfd, "many", 0755), 0);
	mdir = openat(f->mntfd, "many", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sdir = openat(f->srcfd, "many", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(mdir >= 0 && sdir >= 0);
	for (unsigned i = 0; i < n; i++) {
		entry_name(name, sizeof(name), i);
		if (mknodat(mdir, name, S_IFREG | 0644, 0)) {
			/* Go on with the rest created in SRC directly, so that
			 * readdir is still tried; the test fails at the end. */
			snprintf(create_err, sizeof(create_err),
				 "mknodat entry %u of %u through MNT: %s", i, n, strerror(errno));
			printf("# FAIL %s; the remaining %u are created in SRC directly\n",
			       create_err, n - i);
			for (; i < n; i++) {
				entry_name(name, sizeof(name), i);
				assert_int_equal(mknodat(sdir, name, S_IFREG | 0644, 0), 0);
			}
			break;
		}
		if (i && i % 100000 == 0)
			printf("# ... %u created (%.1f s)\n", i, now_s() - t0);
	}
	printf("# created %u entries in %.2f s\n", n, now_s() - t0);
	/* SRC directly: the twin, and what cookies can promise. */
	raw_cross = resume_checks(sdir, n, "SRC", false, &raw);
	printf("# SRC: a new handle %s at a saved cookie\n",
	       raw_cross ? "resumes identically" : "does NOT resume");
	resume_checks(mdir, n, "MNT", raw_cross, &via);
	for (unsigned i = 0; i < n; i++) {
		if (raw[i].idx != via[i].idx) {
			printf("# MNT order differs from SRC at %u\n", i);
			same_cookies = false;
			break;
		}
		if (raw[i].off != via[i].off) {
			printf("# MNT cookies differ from SRC at %u\n", i);
			same_cookies = false;
			break;
		}
	}
	if (same_cookies)
		printf("# MNT lists SRC's order with SRC's cookies (d_off passed through)\n");
	/* Entries still resolve by name after all this (daemon fd pressure). */
	for (unsigned i = 0; i < n; i += n / 97 + 1) {
		struct stat st;

		entry_name(name, sizeof(name), i);
		if (fstatat(mdir, name, &st, AT_SYMLINK_NOFOLLOW))
			fail_msg("stat entry %u after readdir: %s", i, strerror(errno));
	}
	free(raw);
	free(via);
	close(mdir);
	close(sdir);
	printf("# many entries: %.1f s in all\n", now_s() - t0);
	if (create_err[0])
		fail_msg("%s", create_err);
}

/* Readdir resume on its own, with few entries. */
static void test_readdir_resume(void **state)
{
	unsigned n = entries_wanted();

	many_entries(*state, n < 10000 ? n : 10000);
}

/*
 * N entries (SFS_HOSTILE_ENTRIES, default 1,000,000), all created through
 * MNT, so the kernel caches (and the daemon keeps an entry for) each one:
 * far more inodes than the daemon may hold fds (-o fd_cache=4096 here; the
 * default, half the fd limit, was 10,000 where this was written). Entries
 * keep file handles: the fds open stay within the budget. A file looked up
 * before them all has long lost its fd when fstat() of an O_PATH fd (a
 * GETATTR, no lookup to bring a fresh fd) asks for it: reopened by handle.
 */
static void test_many_entries(void **state)
{
	struct fixture *f = *state;
	long long inodes, fds, closed, reopened;
	struct stat via, raw;
	int probe;

	assert_int_equal(mknodat(f->mntfd, "probe", S_IFREG | 0644, 0), 0);
	probe = openat(f->mntfd, "probe", O_PATH | O_CLOEXEC);
	assert_true(probe >= 0);
	many_entries(f, entries_wanted());
	assert_int_equal(fstat(probe, &via), 0);
	assert_int_equal(fstatat(f->srcfd, "probe", &raw, 0), 0);
	assert_int_equal(via.st_ino, raw.st_ino);
	close(probe);
	inodes = mount_counter(f->m.mnt, "inodes");
	fds = mount_counter(f->m.mnt, "inode_fds_open");
	closed = mount_counter(f->m.mnt, "inode_fds_closed_total");
	reopened = mount_counter(f->m.mnt, "inode_fds_reopened_total");
	printf("# daemon: %lld inodes cached, %lld of their fds open (%lld closed "
	       "over budget, %lld reopened from file handles)\n",
	       inodes, fds, closed, reopened);
	assert_true(inodes > SMALL_FD_CACHE);
	assert_in_range(fds, 1, SMALL_FD_CACHE);
	assert_true(closed >= inodes - SMALL_FD_CACHE);
	assert_true(reopened > 0);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_readdir_resume, setup_mounted, teardown),
		cmocka_unit_test_setup_teardown(test_many_entries,
						setup_mounted_small_fd_cache, teardown),
	};

	test_require_fuse();
	return cmocka_run_group_tests_name("hostile_entries", tests, NULL, NULL);
}
