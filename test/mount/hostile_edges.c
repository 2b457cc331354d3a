/*
 * Names, paths and sizes at the edges, through a mount (G4 fidelity,
 * doc/guarantees.md).
 *
 *  1. Names through a mount: 255 bytes work everywhere, 256 and more are
 *     ENAMETOOLONG like on SRC; newline, tab, non-UTF-8, leading '-',
 *     spaces round-trip byte for byte (readdir of MNT and SRC).
 *  2. Deep trees: nested directories until the path is PATH_MAX - 1 bytes
 *     (255-byte and 1-byte components), built and removed only with *at()
 *     calls; the bottom works; one more byte of path is ENAMETOOLONG.
 *  3. Sparse files at 8 TiB: writes at 8 TiB - 4 KiB and 8 TiB + 1 MiB,
 *     size, SEEK_DATA/SEEK_HOLE as on SRC, zeros at 4 TiB, the EFBIG limit
 *     as on SRC, ftruncate to 0, and a snapshot opened before all of it.
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

/* ==== 2. names ========================================================= */

/* Does directory fd list name exactly once (getdents64, exact bytes)? */
static int count_in_dir(int dirfd, const char *name)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char buf[8192] __attribute__((aligned(8)));
	int found = 0;
	long n;

	assert_true(fd >= 0);
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);

			found += strcmp(d->d_name, name) == 0;
			off += d->d_reclen;
		}
	}
	assert_true(n == 0);
	close(fd);
	return found;
}

static void name_roundtrip(const struct fixture *f, const char *name)
{
	char buf[512];
	struct stat st, sst;
	int fd;
	size_t len = strlen(name);
	char *dname = aprintf("%.250s.d", name);

	/* Create through MNT with the name as content. */
	fd = openat(f->mntfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_msg("create [%s] (%zu bytes) through MNT: %s", show(name, 80), len, strerror(errno));
	assert_int_equal(write(fd, name, len), (ssize_t)len);
	close(fd);
	if (fstatat(f->mntfd, name, &st, AT_SYMLINK_NOFOLLOW))
		fail_msg("stat [%s]: %s", show(name, 80), strerror(errno));
	assert_int_equal(st.st_size, (off_t)len);
	if (fstatat(f->srcfd, name, &sst, AT_SYMLINK_NOFOLLOW))
		fail_msg("[%s] is not in SRC under the same bytes: %s", show(name, 80), strerror(errno));
	assert_int_equal(sst.st_size, (off_t)len);
	if (count_in_dir(f->mntfd, name) != 1 || count_in_dir(f->srcfd, name) != 1)
		fail_msg("readdir of MNT/SRC lists [%s] %d/%d times", show(name, 80),
			 count_in_dir(f->mntfd, name), count_in_dir(f->srcfd, name));
	fd = openat(f->mntfd, name, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)len);
	assert_memory_equal(buf, name, len);
	close(fd);
	/* Rename to a directory name derived from it, then as a directory. */
	if (renameat(f->mntfd, name, f->mntfd, dname))
		fail_msg("rename [%s] -> [%s]: %s", show(name, 80), show(dname, 80), strerror(errno));
	assert_int_equal(fstatat(f->srcfd, dname, &sst, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(count_in_dir(f->mntfd, name), 0);
	assert_int_equal(unlinkat(f->mntfd, dname, 0), 0);
	if (mkdirat(f->mntfd, name, 0755))
		fail_msg("mkdir [%s]: %s", show(name, 80), strerror(errno));
	assert_int_equal(fstatat(f->srcfd, name, &sst, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISDIR(sst.st_mode));
	assert_int_equal(symlinkat(name, f->mntfd, dname), 0);
	{
		char target[512];
		ssize_t n = readlinkat(f->mntfd, dname, target, sizeof(target));

		assert_int_equal(n, (ssize_t)len);
		assert_memory_equal(target, name, len);
	}
	assert_int_equal(unlinkat(f->mntfd, dname, 0), 0);
	assert_int_equal(unlinkat(f->mntfd, name, AT_REMOVEDIR), 0);
	assert_int_equal(fstatat(f->srcfd, name, &sst, AT_SYMLINK_NOFOLLOW), -1);
	free(dname);
}

static void test_odd_names(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = {
		"new\nline", "\n", "\n\n", "tab\there", "\t", "\x80", "\xff\xfe\xfd",
		"\xc3\x28", "\xed\xa0\x80", "\xf8\x88\x80\x80\x80", "-", "--", "-rf", "--help",
		" ", "  lead", "trail ", "a b c", "\r", "cr\rlf\n", "\x01\x02\x1f\x7f",
		"back\\slash", "*?[]{}", "$(echo x)", "\xc3\xa9t\xc3\xa9", "...", ". ", ".. ", " .",
		"\x1b[31mred", "quote\"'", "pct%s%n", ",comma,", "=eq=",
	};
	char name[300];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		name_roundtrip(f, names[i]);
	/* 255 bytes: plain, all 0xff, and mixed control bytes. */
	memset(name, 'n', 255);
	name[255] = '\0';
	name_roundtrip(f, name);
	memset(name, 0xff, 255);
	name_roundtrip(f, name);
	for (int i = 0; i < 255; i++) {
		name[i] = (char)(1 + (i * 37) % 255);
		if (name[i] == '/')
			name[i] = '_';
	}
	name_roundtrip(f, name);
	printf("# %zu odd names and three 255-byte names round-trip exactly\n",
	       sizeof(names) / sizeof(names[0]));
}

/* errno of an operation, 0 on success */
#define ERRNO_OF(expr) ((expr) < 0 ? errno : 0)

static void test_name_lengths(void **state)
{
	struct fixture *f = *state;
	char n255[256], n255b[256], *longn;
	size_t lens[] = { 256, 300, 1023, 1024, 1025, 4095, 4096, 5000 };
	struct stat st;
	int fd;

	memset(n255, 'a', 255);
	n255[255] = '\0';
	memset(n255b, 'b', 255);
	n255b[255] = '\0';
	/* 255: create, stat, readdir, rename, link, unlink. */
	fd = openat(f->mntfd, n255, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(fstatat(f->mntfd, n255, &st, 0), 0);
	assert_int_equal(count_in_dir(f->mntfd, n255), 1);
	assert_int_equal(renameat(f->mntfd, n255, f->mntfd, n255b), 0);
	assert_int_equal(fstatat(f->srcfd, n255b, &st, 0), 0);
	assert_int_equal(linkat(f->mntfd, n255b, f->mntfd, n255, 0), 0);
	assert_int_equal(fstatat(f->mntfd, n255, &st, 0), 0);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(unlinkat(f->mntfd, n255, 0), 0);

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		int dirs[2] = { f->srcfd, f->mntfd };
		int e[2][8];

		longn = xmalloc(lens[i] + 1);
		memset(longn, 'L', lens[i]);
		longn[lens[i]] = '\0';
		for (int t = 0; t < 2; t++) {
			int d = dirs[t];

			e[t][0] = ERRNO_OF(fd = openat(d, longn, O_RDWR | O_CREAT | O_CLOEXEC, 0644));
			if (fd >= 0)
				close(fd);
			e[t][1] = ERRNO_OF(mkdirat(d, longn, 0755));
			e[t][2] = ERRNO_OF(fstatat(d, longn, &st, 0));
			e[t][3] = ERRNO_OF(renameat(d, n255b, d, longn));
			e[t][4] = ERRNO_OF(linkat(d, n255b, d, longn, 0));
			e[t][5] = ERRNO_OF(symlinkat("t", d, longn));
			e[t][6] = ERRNO_OF(mknodat(d, longn, S_IFIFO | 0644, 0));
			e[t][7] = ERRNO_OF(unlinkat(d, longn, 0));
		}
		for (int k = 0; k < 8; k++) {
			if (e[1][k] != ENAMETOOLONG)
				fail_msg("%zu-byte name, op %d through MNT: %s (SRC: %s), wanted ENAMETOOLONG",
					 lens[i], k, strerror(e[1][k]), strerror(e[0][k]));
			assert_int_equal(e[0][k], e[1][k]);
		}
		free(longn);
	}
	/* Nothing appeared, n255b still there alone (plus nothing else). */
	assert_int_equal(fstatat(f->srcfd, n255b, &st, 0), 0);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(unlinkat(f->mntfd, n255b, 0), 0);
	printf("# 255-byte names work; 256..5000 bytes: ENAMETOOLONG for open/mkdir/stat/"
	       "rename/link/symlink/mknod/unlink, as on SRC\n");
}

/* ==== 3. deep trees ==================================================== */

/* Components (lengths) making strlen(root) + sum(1 + len) == target. */
static size_t plan_components(size_t rootlen, size_t target, size_t maxcomp, size_t *lens, size_t max)
{
	size_t remaining = target - rootlen, n = 0;

	while (remaining > 0) {
		size_t c = remaining - 1 < maxcomp ? remaining - 1 : maxcomp;

		if (remaining - 1 - c == 1) {
			if (c > 1)
				c--;
			else
				c++;	/* 1-byte components: one of 2 bytes */
		}
		assert_true(c >= 1 && n < max);
		lens[n++] = c;
		remaining -= c + 1;
	}
	return n;
}

static void comp_name(char *out, size_t len, size_t level)
{
	/* Distinct per level (so a wrong level is noticed), exact length. */
	for (size_t i = 0; i < len; i++)
		out[i] = (char)('a' + (level + i) % 26);
	out[len] = '\0';
}

static void deep_tree(struct fixture *f, size_t maxcomp)
{
	size_t lens[PATH_MAX], n, total;
	char comp[256], *path;
	int cur, fd, sfd;
	char buf[64];
	struct stat st, sst;
	double t0 = now_s();
	const char *msg = "bottom of the tree";

	n = plan_components(strlen(f->m.mnt), PATH_MAX - 1, maxcomp, lens, PATH_MAX);
	total = strlen(f->m.mnt);
	path = xmalloc(PATH_MAX + 16);
	strcpy(path, f->m.mnt);
	cur = dup(f->mntfd);
	for (size_t i = 0; i < n; i++) {
		int next;

		comp_name(comp, lens[i], i);
		if (mkdirat(cur, comp, 0755))
			fail_msg("mkdirat level %zu (path length %zu): %s", i, total + 1 + lens[i],
				 strerror(errno));
		next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (next < 0)
			fail_msg("openat level %zu: %s", i, strerror(errno));
		close(cur);
		cur = next;
		total += 1 + lens[i];
		strcat(path, "/");
		strcat(path, comp);
	}
	assert_int_equal(total, PATH_MAX - 1);
	assert_int_equal(strlen(path), PATH_MAX - 1);
	/* At the bottom, relative to the fd. */
	fd = openat(cur, "f", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, msg, strlen(msg), 0), (ssize_t)strlen(msg));
	memset(buf, 0, sizeof(buf));
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), (ssize_t)strlen(msg));
	assert_string_equal(buf, msg);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, (off_t)strlen(msg));
	close(fd);
	assert_int_equal(fstatat(cur, "f", &st, 0), 0);
	assert_int_equal(mkdirat(cur, "sub", 0755), 0);
	assert_int_equal(renameat(cur, "sub", cur, "sub2"), 0);
	assert_int_equal(unlinkat(cur, "sub2", AT_REMOVEDIR), 0);
	/* The 4095-byte path itself still resolves; one more component not. */
	if (stat(path, &st))
		fail_msg("stat of the %zu-byte path: %s", strlen(path), strerror(errno));
	assert_true(S_ISDIR(st.st_mode));
	strcat(path, "/f");
	errno = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_int_equal(ERRNO_OF(stat(path, &st)), ENAMETOOLONG);
	/* The same tree in SRC (same length prefix: base/src vs base/mnt). */
	sfd = dup(f->srcfd);
	for (size_t i = 0; i < n; i++) {
		int next;

		comp_name(comp, lens[i], i);
		next = openat(sfd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (next < 0)
			fail_msg("SRC lacks level %zu: %s", i, strerror(errno));
		close(sfd);
		sfd = next;
	}
	assert_int_equal(fstatat(sfd, "f", &sst, 0), 0);
	fd = openat(sfd, "f", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)strlen(msg));
	assert_string_equal(buf, msg);
	close(fd);
	close(sfd);
	close(cur);
	printf("# deep tree: %zu levels of <= %zu bytes to a %d-byte path built in %.2f s\n",
	       n, maxcomp, PATH_MAX - 1, now_s() - t0);
	/* Remove through MNT with *at() calls only. */
	t0 = now_s();
	comp_name(comp, lens[0], 0);
	{
		int err = rm_tree_at(f->mntfd, comp);

		if (err)
			fail_msg("removing the deep tree through MNT: %s", strerror(-err));
	}
	assert_int_equal(ERRNO_OF(fstatat(f->srcfd, comp, &sst, AT_SYMLINK_NOFOLLOW)), ENOENT);
	printf("# deep tree removed through MNT with *at() calls in %.2f s\n", now_s() - t0);
	free(path);
}

static void test_deep_tree_wide(void **state)
{
	deep_tree(*state, 255);
}

static void test_deep_tree_narrow(void **state)
{
	deep_tree(*state, 1);
}

/* ==== 5. sparse files at 8 TiB ========================================= */

static void fill(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('A' + (seed + i) % 26);
}

static void test_sparse_8tib(void **state)
{
	struct fixture *f = *state;
	const off_t a = 8 * TiB - 4096, b = 8 * TiB + MiB, size = b + 4096;
	char wbuf[4096], rbuf[4096], zero[4096];
	int probe, w, r, s;
	struct stat st;
	off_t lim;
	int e_raw, e_mnt;

	memset(zero, 0, sizeof(zero));
	/* Can SRC's filesystem hold it at all? */
	probe = openat(f->srcfd, "probe", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(probe >= 0);
	if (pwrite(probe, "x", 1, b) != 1) {
		printf("# SRC cannot hold a file past 8 TiB (%s): skipped\n", strerror(errno));
		close(probe);
		unlinkat(f->srcfd, "probe", 0);
		skip();
	}
	assert_int_equal(ftruncate(probe, 0), 0);

	w = openat(f->mntfd, "sparse", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(w >= 0);
	assert_int_equal(pwrite(w, "0123456789", 10, 0), 10);
	/* The snapshot, opened before the big writes. */
	r = openat(f->mntfd, "sparse", O_RDONLY | O_CLOEXEC);
	assert_true(r >= 0);

	fill(wbuf, sizeof(wbuf), 1);
	assert_int_equal(pwrite(w, wbuf, 4096, a), 4096);
	fill(wbuf, sizeof(wbuf), 2);
	assert_int_equal(pwrite(w, wbuf, 4096, b), 4096);
	assert_int_equal(fstat(w, &st), 0);
	assert_int_equal(st.st_size, size);
	printf("# sparse: size %lld, %lld blocks allocated\n", (long long)st.st_size,
	       (long long)st.st_blocks);
	assert_true(st.st_blocks < 1024);
	/* SEEK_DATA/SEEK_HOLE as on SRC directly. */
	s = openat(f->srcfd, "sparse", O_RDONLY | O_CLOEXEC);
	assert_true(s >= 0);
	{
		static const struct { off_t from; int whence; } q[] = {
			{ 0, SEEK_DATA }, { 4096, SEEK_DATA }, { 0, SEEK_HOLE },
			{ 8 * TiB - 4096, SEEK_HOLE }, { 8 * TiB, SEEK_DATA },
			{ 8 * TiB + MiB, SEEK_HOLE }, { 4 * TiB, SEEK_DATA }, { 4 * TiB, SEEK_HOLE },
			{ 8 * TiB + MiB + 4096, SEEK_DATA }, { 9 * TiB, SEEK_HOLE },
		};

		for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
			off_t raw = lseek(s, q[i].from, q[i].whence);
			int raw_e = raw < 0 ? errno : 0;
			off_t mnt = lseek(w, q[i].from, q[i].whence);
			int mnt_e = mnt < 0 ? errno : 0;

			if (raw != mnt || raw_e != mnt_e)
				fail_msg("lseek(%lld, %s): MNT %lld (%s), SRC %lld (%s)",
					 (long long)q[i].from, q[i].whence == SEEK_DATA ? "DATA" : "HOLE",
					 (long long)mnt, strerror(mnt_e), (long long)raw, strerror(raw_e));
		}
		assert_int_equal(lseek(w, 4096, SEEK_DATA), a);
	}
	/* Reads: zeros at 4 TiB, the data, a short read at the end. */
	memset(rbuf, 1, sizeof(rbuf));
	assert_int_equal(pread(w, rbuf, 4096, 4 * TiB), 4096);
	assert_memory_equal(rbuf, zero, 4096);
	fill(wbuf, sizeof(wbuf), 1);
	assert_int_equal(pread(w, rbuf, 4096, a), 4096);
	assert_memory_equal(rbuf, wbuf, 4096);
	assert_int_equal(pread(w, rbuf, 4096, b + 2048), 2048);
	assert_int_equal(pread(w, rbuf, 4096, size), 0);
	/* Through a fresh read-only open (a snapshot of now), too. */
	{
		int r2 = openat(f->mntfd, "sparse", O_RDONLY | O_CLOEXEC);

		assert_true(r2 >= 0);
		assert_int_equal(fstat(r2, &st), 0);
		assert_int_equal(st.st_size, size);
		fill(wbuf, sizeof(wbuf), 2);
		assert_int_equal(pread(r2, rbuf, 4096, b), 4096);
		assert_memory_equal(rbuf, wbuf, 4096);
		assert_int_equal(pread(r2, rbuf, 4096, 4 * TiB), 4096);
		assert_memory_equal(rbuf, zero, 4096);
		close(r2);
	}
	/* The early snapshot: its size and bytes, nothing past them. */
	assert_int_equal(fstat(r, &st), 0);
	assert_int_equal(st.st_size, 10);
	assert_int_equal(pread(r, rbuf, 4096, a), 0);
	assert_int_equal(pread(r, rbuf, 4096, 10), 0);
	assert_int_equal(pread(r, rbuf, 4096, 0), 10);
	assert_memory_equal(rbuf, "0123456789", 10);
	{
		off_t d = lseek(r, 4096, SEEK_DATA);

		printf("# early snapshot: lseek(4096, SEEK_DATA) = %lld (%s)\n", (long long)d,
		       d < 0 ? strerror(errno) : "ok");
		if (!(d < 0 && errno == ENXIO))
			fail_msg("the 10-byte snapshot finds data at %lld past its size", (long long)d);
	}
	/* Back to nothing; the snapshot keeps its 10 bytes. */
	assert_int_equal(ftruncate(w, 0), 0);
	assert_int_equal(fstat(w, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(fstat(s, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(pread(r, rbuf, 4096, 0), 10);
	assert_memory_equal(rbuf, "0123456789", 10);
	assert_int_equal(fstat(r, &st), 0);
	assert_int_equal(st.st_size, 10);
	close(r);

	/* The size limit: the same answer as SRC's filesystem. */
	for (int k = 0; k < 6; k++) {
		static const off_t offs[] = { 16 * TiB - 8192, 16 * TiB - 4097, 16 * TiB - 4096,
					      16 * TiB, 1LL << 62, INT64_MAX - 1 };

		lim = offs[k];
		e_raw = pwrite(probe, "x", 1, lim) == 1 ? 0 : errno;
		e_mnt = pwrite(w, "x", 1, lim) == 1 ? 0 : errno;
		if (e_raw != e_mnt)
			fail_msg("pwrite at %lld: MNT %s, SRC %s", (long long)lim, strerror(e_mnt),
				 strerror(e_raw));
		printf("# pwrite 1 byte at %lld: %s (same as SRC)\n", (long long)lim,
		       e_mnt ? strerror(e_mnt) : "ok");
		assert_int_equal(ftruncate(w, 0), 0);
		assert_int_equal(ftruncate(probe, 0), 0);
	}
	close(s);
	close(w);
	close(probe);
	assert_int_equal(unlinkat(f->mntfd, "sparse", 0), 0);
	assert_int_equal(unlinkat(f->srcfd, "probe", 0), 0);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_odd_names, setup_mounted, teardown),
		cmocka_unit_test_setup_teardown(test_name_lengths, setup_mounted, teardown),
		cmocka_unit_test_setup_teardown(test_deep_tree_wide, setup_mounted, teardown),
		cmocka_unit_test_setup_teardown(test_deep_tree_narrow, setup_mounted, teardown),
		cmocka_unit_test_setup_teardown(test_sparse_8tib, setup_mounted, teardown),
	};

	test_require_fuse();
	return cmocka_run_group_tests_name("hostile_edges", tests, NULL, NULL);
}
