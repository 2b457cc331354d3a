/*
 * Stable splice (G1, acceptance scenarios S1-S3: doc/guarantees.md).
 *
 * G1: bytes delivered by splice(2) / sendfile(2) / tee(2) of a spliced pipe
 * from a file in MNT never change after the call returns, whatever is later
 * done to that file through MNT.
 *
 * Every scenario is one generic run: fill a file, fill a pipe from it,
 * modify the file, only then drain the pipe, count the drained bytes that
 * differ from what the file held when the pipe was filled. The same code
 * runs on three targets:
 *   - a raw ext4 directory and a fresh raw tmpfs: there the kernel hands
 *     the pipe *references* to page-cache folios (K1 in
 *     doc/kernel-facts.md), so every modification that rewrites or zeroes
 *     those folios in place must show up as changed bytes. If it no longer
 *     does, the scenario has lost its teeth: "kernel changed: re-check K1".
 *   - a stablefs mount over an ext4 directory: zero bytes may change, ever.
 *
 * The matrix: rows = modification, columns = how the pipe is filled
 * (splice, sendfile into a pipe, tee from a spliced pipe), and the fd the
 * pipe is filled from is opened O_RDONLY or O_RDWR (the modification always
 * uses a separate O_RDWR fd through the same path). Every cell prints
 *   "# target op filler [mode]: N bytes changed".
 * A test runs its whole table, then fails once, listing every bad cell.
 *
 * The stablefs cells are not vacuous: pointed (STABLEFS_BIN wrapper, subtype
 * stablefs) at libfuse's unprotected example passthrough_ll, the same cells
 * measured 65536 changed bytes for pwrite and copy_file_range, 3996 for
 * truncate to range+100 (K4: partial folio zeroed after the reply) and 3 for
 * S1 Wilcox (passthrough_ll has no PUNCH/ZERO_RANGE, so those were refused).
 * COLLAPSE/INSERT_RANGE never reach a FUSE daemon (fuse_file_fallocate only
 * passes KEEP_SIZE|PUNCH_HOLE|ZERO_RANGE; checked with -d: no FALLOCATE
 * request), so through stablefs those rows assert EOPNOTSUPP and a whole pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "mount_util.h"
#include "test_util.h"

#define KiB 1024L
#define MiB (1024L * KiB)
#define PAGE 4096L

/* >= 2 MiB so the page cache may use large (PMD-sized) folios. */
#define FILE_SIZE (4 * MiB)
/* Well inside the file, inside one 2 MiB-aligned region. */
#define SPLICE_OFF (1 * MiB)
#define SPLICE_LEN (64 * KiB)
/* O_APPEND row: EOF 100 bytes before the end of the spliced range, so the
 * last spliced page is partial and the append writes into that page. */
#define APPEND_SIZE (SPLICE_OFF + SPLICE_LEN - 100)

/* A pipe big enough that one splice/tee of SPLICE_LEN never blocks. */
#define PIPE_SIZE ((int)(2 * SPLICE_LEN))

/* ------------------------------------------------------------------ */
/* Pipe fillers: the three ways G1 names to get file pages into a pipe */
/* ------------------------------------------------------------------ */

/* Exactly len bytes of fd at off in a new pipe (test_util's fill_pipe). */
static int fill_pipe_exactly(enum filler how, int fd, off_t off, size_t len)
{
	long got;
	int pr = fill_pipe(how, fd, off, (long)len, PIPE_SIZE, &got);

	if (pr >= 0 && got == (long)len)
		return pr;
	fprintf(stderr, "%s: %ld of %zu bytes: %s\n", filler_name[how],
		pr < 0 ? -1L : got, len, pr < 0 ? strerror(errno) : "EOF");
	if (pr >= 0)
		close(pr);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Targets                                                            */
/* ------------------------------------------------------------------ */

enum target_kind { T_EXT4, T_TMPFS, T_STABLEFS };

static const char *const target_name[] = {
	[T_EXT4] = "ext4",
	[T_TMPFS] = "tmpfs",
	[T_STABLEFS] = "stablefs",
};

struct fixture {
	enum target_kind kind;
	char dir[PATH_MAX];	/* where the scenario's files live */
	bool tmpfs_mounted;
	struct test_mount m;	/* T_STABLEFS only */
	const char *skip_why;	/* set: the tests on this fixture skip */
};

/* ------------------------------------------------------------------ */
/* Filling the file                                                   */
/* ------------------------------------------------------------------ */

/*
 * How the data got into the page cache decides the folio size, and the
 * folio size decides what an aligned punch/truncate does to a raw pipe
 * (kernel_facts.c): one big buffered write leaves 2 MiB folios on ext4 (and
 * tmpfs huge=always), eviction + readahead gives order-0 folios here.
 */
enum fill { FILL_WRITTEN, FILL_READ_IN };

/* Create path holding size pattern bytes, cached. Closes its own fd. */
static int create_pattern_file(const char *path, long size, enum fill fill)
{
	unsigned char *buf = malloc((size_t)size);
	int fd, rc = -1;

	if (!buf)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		free(buf);
		return -1;
	}
	fill_pattern(buf, 0, size, false);
	/* One write, fsync so the folios are clean, read back so cached. */
	if (pwrite_all(fd, buf, (size_t)size, 0) == 0 && fsync(fd) == 0 &&
	    (fill != FILL_READ_IN ||
	     posix_fadvise(fd, 0, size, POSIX_FADV_DONTNEED) == 0) &&
	    pread_all(fd, buf, (size_t)size, 0) == 0)
		rc = 0;
	free(buf);
	close(fd);
	return rc;
}

/* A second file of new bytes at the same offsets (rename-over, cfr source). */
static int create_fresh_file(const char *path, long size)
{
	unsigned char *buf = malloc((size_t)size);
	int fd, rc = -1;

	if (!buf)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		fill_pattern(buf, 0, size, true);
		rc = pwrite_all(fd, buf, (size_t)size, 0);
		close(fd);
	} else {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
	}
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Modifications (rows). Each returns 0 or -1 with errno set.         */
/* ------------------------------------------------------------------ */

struct cell {
	const char *dir;
	char path[PATH_MAX];	/* the spliced file */
	char other[PATH_MAX];	/* scratch second file */
	int fd;			/* separate O_RDWR fd for the modification */
};

static int mod_pwrite(const struct cell *c)
{
	unsigned char buf[SPLICE_LEN];

	fill_pattern(buf, SPLICE_OFF, SPLICE_LEN, true);
	return pwrite_all(c->fd, buf, SPLICE_LEN, SPLICE_OFF);
}

/*
 * The spliced range ends in the file's last, partial page (APPEND_SIZE):
 * the append lands in that very page, just past the spliced bytes.
 */
static int mod_append(const struct cell *c)
{
	unsigned char buf[2 * PAGE];
	int fd = open(c->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	fill_pattern(buf, APPEND_SIZE, sizeof(buf), true);
	rc = write_all(fd, buf, sizeof(buf));
	close(fd);
	return rc;
}

static int falloc(const struct cell *c, int mode, off_t off, off_t len)
{
	return fallocate(c->fd, mode, off, len) ? -1 : 0;
}

/* Neither end page-aligned: partial pages are zeroed in place (K1). */
static int mod_punch_unaligned(const struct cell *c)
{
	return falloc(c, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      SPLICE_OFF + 100, SPLICE_LEN - 200);
}

/*
 * Whole pages [+4K, +60K). Order-0 folios (FILL_READ_IN) are just dropped,
 * the pipe keeps them (K2); inside a 2 MiB folio (FILL_WRITTEN) that the
 * pipe pins the kernel cannot split it and zeroes in place (K1).
 */
static int mod_punch_aligned(const struct cell *c)
{
	return falloc(c, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      SPLICE_OFF + PAGE, SPLICE_LEN - 2 * PAGE);
}

static int mod_zero_range(const struct cell *c)
{
	return falloc(c, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		      SPLICE_OFF + 100, SPLICE_LEN - 200);
}

static int mod_truncate_0(const struct cell *c)
{
	return ftruncate(c->fd, 0);
}

/* S3 "truncate to 100", literally: the 2 MiB folio holding byte 100 also
 * holds the spliced range, and a pinned folio is zeroed, not split (K1). */
static int mod_truncate_100(const struct cell *c)
{
	return ftruncate(c->fd, 100);
}

/* 100 bytes into the spliced range: the tail of that page is zeroed (K1). */
static int mod_truncate_in_range(const struct cell *c)
{
	return ftruncate(c->fd, SPLICE_OFF + 100);
}

/* Page-aligned, 16 KiB into the range. */
static int mod_truncate_aligned(const struct cell *c)
{
	return ftruncate(c->fd, SPLICE_OFF + 4 * PAGE);
}

/* Block-aligned shifts; ext4 truncates the page cache from the offset on. */
static int mod_collapse(const struct cell *c)
{
	return falloc(c, FALLOC_FL_COLLAPSE_RANGE, SPLICE_OFF + 4 * PAGE,
		      4 * PAGE);
}

static int mod_insert(const struct cell *c)
{
	return falloc(c, FALLOC_FL_INSERT_RANGE, SPLICE_OFF + 4 * PAGE,
		      4 * PAGE);
}

/* copy_file_range of new bytes over the spliced range. */
static int mod_copy_range(const struct cell *c)
{
	loff_t in_off = SPLICE_OFF, out_off = SPLICE_OFF;
	size_t left = SPLICE_LEN;
	int in, rc = 0;

	if (create_fresh_file(c->other, FILE_SIZE))
		return -1;
	in = open(c->other, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	while (left > 0 && rc == 0) {
		ssize_t n = copy_file_range(in, &in_off, c->fd, &out_off, left, 0);

		if (n <= 0)
			rc = -1;
		else
			left -= (size_t)n;
	}
	close(in);
	return rc;
}

static int mod_rename_over(const struct cell *c)
{
	if (create_fresh_file(c->other, FILE_SIZE))
		return -1;
	return rename(c->other, c->path);
}

static int mod_unlink(const struct cell *c)
{
	return unlink(c->path);
}

/* ------------------------------------------------------------------ */
/* The table                                                          */
/* ------------------------------------------------------------------ */

/* What a raw target must show; stablefs is always INTACT (G1). */
enum expect {
	CORRUPT,	/* > 0 bytes changed, else "kernel changed" */
	INTACT,		/* 0 bytes changed */
	REFUSED,	/* the op fails EOPNOTSUPP: cell skipped on raw */
};

struct row {
	const char *name;
	int (*modify)(const struct cell *);
	enum fill fill;
	long size;		/* file size when the pipe is filled */
	enum expect ext4, tmpfs;
	bool fuse_refuses;	/* the kernel answers EOPNOTSUPP through FUSE */
};

/*
 * Raw expectations as measured on 6.18 (see the header of kernel_facts.c
 * for why folio sizes matter); tmpfs is mounted huge=always, so it gets 2
 * MiB folios like a freshly written ext4 file.
 */
static const struct row rows[] = {
	/* The pipe references the very pages pwrite rewrites (K1). */
	{ "pwrite over range", mod_pwrite, FILL_WRITTEN, FILE_SIZE,
	  CORRUPT, CORRUPT, false },
	/* Bytes past the spliced EOF are not part of the pipe buffer. */
	{ "O_APPEND write", mod_append, FILL_WRITTEN, APPEND_SIZE,
	  INTACT, INTACT, false },
	{ "punch unaligned", mod_punch_unaligned, FILL_WRITTEN, FILE_SIZE,
	  CORRUPT, CORRUPT, false },
	/* Order-0 folios on ext4 are dropped, not zeroed (K2). */
	{ "punch aligned (small folios)", mod_punch_aligned, FILL_READ_IN,
	  FILE_SIZE, INTACT, CORRUPT, false },
	/* "Page alignment is not enough" (K1). */
	{ "punch aligned in 2M folio", mod_punch_aligned, FILL_WRITTEN,
	  FILE_SIZE, CORRUPT, CORRUPT, false },
	/* shmem_fallocate knows no ZERO_RANGE (EOPNOTSUPP). */
	{ "zero range", mod_zero_range, FILL_WRITTEN, FILE_SIZE,
	  CORRUPT, REFUSED, false },
	/* Whole folios beyond the new EOF are removed from the cache. */
	{ "truncate to 0", mod_truncate_0, FILL_WRITTEN, FILE_SIZE,
	  INTACT, INTACT, false },
	{ "truncate to 100", mod_truncate_100, FILL_WRITTEN, FILE_SIZE,
	  CORRUPT, CORRUPT, false },
	{ "truncate to range+100", mod_truncate_in_range, FILL_WRITTEN,
	  FILE_SIZE, CORRUPT, CORRUPT, false },
	{ "truncate page-aligned", mod_truncate_aligned, FILL_WRITTEN,
	  FILE_SIZE, CORRUPT, CORRUPT, false },
	/* tmpfs has no COLLAPSE/INSERT_RANGE; FUSE refuses them (see below). */
	{ "collapse range", mod_collapse, FILL_WRITTEN, FILE_SIZE,
	  CORRUPT, REFUSED, true },
	{ "insert range", mod_insert, FILL_WRITTEN, FILE_SIZE,
	  CORRUPT, REFUSED, true },
	{ "copy_file_range into", mod_copy_range, FILL_WRITTEN, FILE_SIZE,
	  CORRUPT, CORRUPT, false },
	/* A new inode takes the name: the old pages are never touched. */
	{ "rename over", mod_rename_over, FILL_WRITTEN, FILE_SIZE,
	  INTACT, INTACT, false },
	{ "unlink", mod_unlink, FILL_WRITTEN, FILE_SIZE, INTACT, INTACT, false },
};

#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

/* ------------------------------------------------------------------ */
/* One cell: fill -> fill pipe -> modify -> drain -> compare          */
/* ------------------------------------------------------------------ */

struct outcome {
	long changed;	/* drained bytes differing from fill time, or -1 */
	int mod_errno;	/* 0, or errno of the refused modification */
};

static long count_changed(const unsigned char *got, long off, long len)
{
	long changed = 0;

	for (long i = 0; i < len; i++)
		changed += got[i] != pattern_byte(off + i);
	return changed;
}

/* Returns 0 with *o filled, or -1 if a step other than the op failed. */
static int run_cell(const char *dir, const struct row *r, enum filler how,
		    int splice_mode, struct outcome *o)
{
	static unsigned char got[SPLICE_LEN];
	struct cell c = { .dir = dir, .fd = -1 };
	long len = r->size - SPLICE_OFF < SPLICE_LEN ? r->size - SPLICE_OFF
						      : SPLICE_LEN;
	int sfd = -1, pr = -1, rc = -1;
	long n;

	o->changed = -1;
	o->mod_errno = 0;
	if (join_path(c.path, dir, "ss-file") || join_path(c.other, dir, "ss-other"))
		return -1;
	if (create_pattern_file(c.path, r->size, r->fill))
		goto out;
	/* Pipe source and modifier are separate opens of the same path. */
	sfd = open(c.path, splice_mode | O_CLOEXEC);
	c.fd = open(c.path, O_RDWR | O_CLOEXEC);
	if (sfd < 0 || c.fd < 0) {
		fprintf(stderr, "open %s: %s\n", c.path, strerror(errno));
		goto out;
	}
	pr = fill_pipe_exactly(how, sfd, SPLICE_OFF, (size_t)len);
	if (pr < 0)
		goto out;
	if (r->modify(&c))
		o->mod_errno = errno ? errno : EIO;
	n = drain_pipe(pr, got, sizeof(got));
	if (n != len) {
		fprintf(stderr, "drained %ld of %ld bytes\n", n, len);
		goto out;
	}
	o->changed = count_changed(got, SPLICE_OFF, len);
	rc = 0;
out:
	close_fd(&pr);
	close_fd(&sfd);
	close_fd(&c.fd);
	unlink(c.path);
	unlink(c.other);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Judging a cell                                                     */
/* ------------------------------------------------------------------ */

struct tally {
	int bad;
	char report[8192];	/* one line per bad cell, for fail_msg */
};

static void bad_cell(struct tally *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void bad_cell(struct tally *t, const char *fmt, ...)
{
	size_t used = strlen(t->report);
	va_list ap;

	t->bad++;
	va_start(ap, fmt);
	if (used + 2 < sizeof(t->report)) {
		vsnprintf(t->report + used, sizeof(t->report) - used - 1, fmt, ap);
		strcat(t->report, "\n");
	}
	va_end(ap);
}

static enum expect expectation(enum target_kind k, const struct row *r)
{
	if (k == T_EXT4)
		return r->ext4;
	if (k == T_TMPFS)
		return r->tmpfs;
	return INTACT;	/* G1 */
}

static const char *mode_name(int mode)
{
	return mode == O_RDONLY ? "O_RDONLY" : "O_RDWR";
}

/*
 * Did the modification fail, and may it on this target? Returns true when
 * the cell is finished (bad, or a raw cell whose op the fs lacks); *note
 * gets a remark for the cell's line.
 */
static bool judge_refusal(enum target_kind k, const struct row *r,
			  const char *cellname, const struct outcome *o,
			  struct tally *t, const char **note)
{
	bool fuse_refuses = k == T_STABLEFS && r->fuse_refuses;

	*note = "";
	if (o->mod_errno == 0) {
		if (fuse_refuses)
			bad_cell(t, "%s: succeeded through FUSE: kernel changed, "
				 "fuse_file_fallocate now passes this mode on; "
				 "re-check the design", cellname);
		return false;
	}
	if (o->mod_errno != EOPNOTSUPP ||
	    !(fuse_refuses || expectation(k, r) == REFUSED)) {
		bad_cell(t, "%s: modification failed: %s", cellname,
			 strerror(o->mod_errno));
		return true;
	}
	if (fuse_refuses) {
		*note = " (op refused EOPNOTSUPP, as the kernel must)";
		return false;	/* the pipe must still be intact */
	}
	printf("# %s: op refused (EOPNOTSUPP): cell skipped\n", cellname);
	return true;
}

static void judge_cell(enum target_kind k, const struct row *r, enum filler how,
		       int mode, const struct outcome *o, struct tally *t)
{
	char name[160];
	enum expect e = expectation(k, r);
	const char *note;

	snprintf(name, sizeof(name), "%s %s %s [%s]", target_name[k], r->name,
		 filler_name[how], mode_name(mode));
	if (o->changed < 0) {
		bad_cell(t, "%s: scenario failed (see stderr)", name);
		return;
	}
	if (judge_refusal(k, r, name, o, t, &note))
		return;
	printf("# %s: %ld bytes changed%s\n", name, o->changed, note);
	fflush(stdout);
	if (k == T_STABLEFS && o->changed)
		bad_cell(t, "%s: %ld piped bytes changed (G1 violated)", name,
			 o->changed);
	else if (e == CORRUPT && o->changed == 0)
		bad_cell(t, "%s: raw pipe intact: kernel changed: re-check K1",
			 name);
	else if (e == INTACT && o->changed)
		bad_cell(t, "%s: %ld bytes changed where the raw kernel left the "
			 "pipe intact before: re-check K1/K2", name,
			 o->changed);
}

static void require_target(const struct fixture *f)
{
	if (f->skip_why) {
		printf("# %s skipped: %s\n", target_name[f->kind], f->skip_why);
		skip();
	}
}

/* A dead daemon (ENOTCONN) would make every later cell fail as noise. */
static void require_daemon_alive(const struct fixture *f, const struct row *r,
				 enum filler how, const struct tally *t)
{
	struct stat st;

	if (f->kind != T_STABLEFS || stat(f->dir, &st) == 0 || errno != ENOTCONN)
		return;
	fail_msg("stablefs daemon died during or after \"%s\" %s; bad cells "
		 "so far:\n%s", r->name, filler_name[how], t->report);
}

/* The whole table on one target with one splice-fd mode. */
static void run_matrix(const struct fixture *f, int mode)
{
	static struct tally t;
	struct outcome o;

	require_target(f);
	memset(&t, 0, sizeof(t));
	for (size_t i = 0; i < N_ROWS; i++) {
		for (int how = 0; how < N_FILLERS; how++) {
			run_cell(f->dir, &rows[i], how, mode, &o);
			require_daemon_alive(f, &rows[i], how, &t);
			judge_cell(f->kind, &rows[i], how, mode, &o, &t);
		}
	}
	if (t.bad)
		fail_msg("%d bad cell(s):\n%s", t.bad, t.report);
}

/* ------------------------------------------------------------------ */
/* S1 Wilcox, exactly as stated                                       */
/* ------------------------------------------------------------------ */

/*
 * open O_RDWR, ftruncate 4096, pwrite "old", splice 4096 to a pipe, pwrite
 * "new", drain -> "old" (and zeros). The same fd splices and writes.
 */
static long wilcox(const char *dir, enum filler how)
{
	unsigned char got[PAGE], want[PAGE] = "old";
	char path[PATH_MAX];
	long n, changed = -1;
	int fd, pr;

	if (join_path(path, dir, "wilcox"))
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, PAGE) || pwrite_all(fd, "old", 3, 0))
		goto out;
	pr = fill_pipe_exactly(how, fd, 0, PAGE);
	if (pr < 0)
		goto out;
	if (pwrite_all(fd, "new", 3, 0) == 0) {
		n = drain_pipe(pr, got, sizeof(got));
		if (n == PAGE) {
			changed = 0;
			for (long i = 0; i < PAGE; i++)
				changed += got[i] != want[i];
		}
	}
	close(pr);
out:
	close(fd);
	unlink(path);
	return changed;
}

static void run_wilcox(const struct fixture *f)
{
	int bad = 0;

	require_target(f);
	for (int how = 0; how < N_FILLERS; how++) {
		long changed = wilcox(f->dir, how);

		printf("# %s S1 Wilcox %s [O_RDWR, same fd]: %ld bytes changed\n",
		       target_name[f->kind], filler_name[how], changed);
		if (changed < 0)
			bad++;
		else if (f->kind == T_STABLEFS ? changed != 0 : changed == 0)
			bad++;
	}
	fflush(stdout);
	if (bad)
		fail_msg("S1 Wilcox: %d bad filler(s) on %s%s", bad,
			 target_name[f->kind], f->kind == T_STABLEFS ? "" :
			 " (raw intact: kernel changed: re-check K1)");
}

/* ------------------------------------------------------------------ */
/* Fixtures                                                           */
/* ------------------------------------------------------------------ */

static struct fixture *new_fixture(void **state, enum target_kind k)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f)
		f->kind = k;
	*state = f;
	return f;
}

static int setup_ext4(void **state)
{
	struct fixture *f = new_fixture(state, T_EXT4);

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/sfs-ss-ext4-XXXXXX", tmp_base());
	if (!mkdtemp(f->dir)) {
		f->dir[0] = '\0';
		return -1;
	}
	if (!is_ext4(f->dir))
		f->skip_why = "$TMPDIR is not on ext4";
	return 0;
}

/*
 * A fresh tmpfs, huge=always: 2 MiB folios like a freshly written ext4
 * file, so the large-folio rows mean the same on both (K1).
 */
static int setup_tmpfs(void **state)
{
	struct fixture *f = new_fixture(state, T_TMPFS);

	if (!f)
		return -1;
	if (geteuid() != 0) {
		f->skip_why = "mounting tmpfs needs root";
		return 0;
	}
	snprintf(f->dir, sizeof(f->dir), "%s/sfs-ss-tmpfs-XXXXXX", tmp_base());
	if (!mkdtemp(f->dir)) {
		f->dir[0] = '\0';
		return -1;
	}
	if (mount("sfs-ss", f->dir, "tmpfs", MS_NOSUID | MS_NODEV,
		  "size=64m,mode=0700,huge=always")) {
		fprintf(stderr, "mount tmpfs: %s\n", strerror(errno));
		return -1;
	}
	f->tmpfs_mounted = true;
	return 0;
}

static int setup_stablefs(void **state)
{
	struct fixture *f = new_fixture(state, T_STABLEFS);

	int err;

	if (!f)
		return -1;
	err = test_mount_setup(&f->m, "ss", NULL, &f->skip_why);
	if (err || f->skip_why)
		return err;
	if (!is_ext4(f->m.src))
		printf("# note: stablefs SRC %s is not ext4\n", f->m.src);
	snprintf(f->dir, sizeof(f->dir), "%s", f->m.mnt);
	return 0;
}

/* Runs after failures too (cmocka longjmps out of the test body). */
static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	if (f->kind == T_STABLEFS) {
		if (f->m.base[0] && test_mount_finish(&f->m))
			rc = -1;
	} else {
		if (f->tmpfs_mounted &&
		    umount2(f->dir, 0) && umount2(f->dir, MNT_DETACH)) {
			fprintf(stderr, "umount %s: %s\n", f->dir, strerror(errno));
			rc = -1;
		}
		if (f->dir[0])
			test_rm_rf(f->dir);
	}
	free(f);
	*state = NULL;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

static void test_s1_wilcox(void **state)
{
	run_wilcox(*state);
}

static void test_matrix_rdonly(void **state)
{
	run_matrix(*state, O_RDONLY);
}

static void test_matrix_rdwr(void **state)
{
	run_matrix(*state, O_RDWR);
}

/* Distinct TAP names: "<test> <target>". */
#define ON(test, target) \
	{ #test " " #target, test, setup_##target, teardown, NULL }

int main(void)
{
	const struct CMUnitTest tests[] = {
		ON(test_s1_wilcox, ext4),
		ON(test_s1_wilcox, tmpfs),
		ON(test_s1_wilcox, stablefs),
		ON(test_matrix_rdonly, ext4),
		ON(test_matrix_rdwr, ext4),
		ON(test_matrix_rdonly, tmpfs),
		ON(test_matrix_rdwr, tmpfs),
		ON(test_matrix_rdonly, stablefs),
		ON(test_matrix_rdwr, stablefs),
	};

	io_messages(true);	/* these tests report failed I/O on stderr */
	return cmocka_run_group_tests_name("stable_splice", tests, NULL, NULL);
}
