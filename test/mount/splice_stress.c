/*
 * Stable splice under concurrency (G1, scenario S3 multi-threaded: see
 * doc/guarantees.md).
 *
 * 8 splicer threads fill pipes from random ranges of one file and drain them
 * late; 4 modifier threads meanwhile change random ranges of that file with
 * every modification G1 names (pwrite, PUNCH_HOLE, ZERO_RANGE, truncate
 * shrink/grow, O_APPEND write, copy_file_range into it, COLLAPSE/INSERT_RANGE
 * where the filesystem takes them). Every drained pipe must equal what the
 * file held when its pipe was filled.
 *
 * The model: an in-memory copy of the file, guarded by one process-local
 * mutex together with a version counter. Modifiers apply each op to the file
 * and to the model under the mutex. A splicer takes the mutex, fills its pipe
 * from the file, copies the expected bytes from the model, releases the
 * mutex - so the expectation is exact: G1 is about what happens AFTER the
 * splice returned - then sleeps 0-20 ms and only then drains and compares,
 * while modifiers change the very pages its pipe references (K1).
 *
 * Two runs of the same harness:
 *   - raw ext4, short (3 s): must find at least one mismatch, which proves
 *     the checker is sensitive; none means "kernel changed: re-check K1";
 *   - a stablefs mount, SFS_STRESS_SECONDS (default 30): zero mismatches,
 *     no deadlock (a watchdog kills our daemon when progress stops, so the
 *     test fails instead of hanging), and the mount detaches cleanly.
 * A third, control run drains every pipe before releasing the mutex: it
 * must find no mismatch, or the model itself is wrong. (Pointed at libfuse's
 * unprotected passthrough_ll, the stablefs run found 109 mismatches in 8 s.)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mount_util.h"
#include "test_util.h"

#define KiB 1024L
#define MiB (1024L * KiB)
#define PAGE 4096L

#define INITIAL_SIZE (8 * MiB)
#define MAX_SIZE (12 * MiB)	/* appends, grows and inserts stay below */
#define MIN_TRUNC (1 * MiB)	/* truncates stay above */
#define DONOR_SIZE (1 * MiB)	/* copy_file_range source */
#define MAX_SPLICE (256 * KiB)
#define MAX_MOD (256 * KiB)
#define PIPE_SIZE (1 * MiB)	/* >= MAX_SPLICE in pages + 2: never blocks */

#define N_SPLICERS 8
#define N_MODIFIERS 4
#define RAW_SECONDS 3
#define DEFAULT_SECONDS 30
/* No splice or modification finished for this long: call it a deadlock. */
#define STALL_SECONDS 30
#define MAX_REPORTS 10	/* mismatch details printed */

/* ------------------------------------------------------------------ */
/* Randomness (rnd(), rnd_below(), rnd_off() are in test_util)       */
/* ------------------------------------------------------------------ */

static void rnd_bytes(uint64_t *s, unsigned char *buf, long len)
{
	for (long i = 0; i < len; i++)
		buf[i] = (unsigned char)(rnd(s) >> 56);
}

/* A random length in [1, max]: half the time whole pages. */
static long rnd_len(uint64_t *s, long max)
{
	long len = 1 + rnd_below(s, max);

	if (rnd(s) & 1)
		len = (len + PAGE - 1) & ~(PAGE - 1);
	return len > max ? max : len;
}

/* ------------------------------------------------------------------ */
/* Shared state                                                       */
/* ------------------------------------------------------------------ */

struct run {
	const char *label;	/* "ext4" or "stablefs" */
	bool drain_early;	/* control: drain before releasing the mutex */
	char path[PATH_MAX];	/* the file everybody works on */
	char donor[PATH_MAX];	/* copy_file_range source */
	unsigned char *donor_data;

	/* The model, only touched with mu held. */
	pthread_mutex_t mu;
	unsigned char *model;	/* MAX_SIZE bytes */
	long size;
	uint64_t version;

	atomic_bool stop;
	atomic_long splices, bytes_checked, mods, refused, mismatches, errors;
	atomic_long reports;
	long op_count[16];	/* per op, with mu held */
};

/* A failed system call: counted (fails the test), and everybody stops. */
static void run_error(struct run *r, const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", r->label, what, strerror(err));
	atomic_fetch_add(&r->errors, 1);
	atomic_store(&r->stop, true);
}

/* ------------------------------------------------------------------ */
/* I/O helpers                                                        */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Splicers                                                           */
/* ------------------------------------------------------------------ */

struct splice_job {
	long off, len, got;
	enum filler how;
	bool fresh_rdonly;
	uint64_t version;
	unsigned char *want;	/* MAX_SPLICE */
	unsigned char *have;	/* MAX_SPLICE */
};

/* What the model says the fill should have returned, copied into j->want. */
static long model_expect(struct run *r, struct splice_job *j)
{
	long n = r->size - j->off;

	n = n < 0 ? 0 : n > j->len ? j->len : n;
	memcpy(j->want, r->model + j->off, (size_t)n);
	j->version = r->version;
	return n;
}

static void report_mismatch(struct run *r, const struct splice_job *j,
			    long want_len, long drained)
{
	long first = -1, differ = 0, n = drained < want_len ? drained : want_len;

	for (long i = 0; i < n; i++) {
		if (j->have[i] != j->want[i]) {
			differ++;
			if (first < 0)
				first = i;
		}
	}
	if (atomic_fetch_add(&r->reports, 1) >= MAX_REPORTS)
		return;
	printf("# %s MISMATCH: %s from %s fd, off %ld len %ld: filled %ld, "
	       "model %ld, drained %ld; %ld bytes differ", r->label,
	       filler_name[j->how], j->fresh_rdonly ? "fresh O_RDONLY" : "O_RDWR",
	       j->off, j->len, j->got, want_len, drained, differ);
	if (first >= 0)
		printf(", first at +%ld (got 0x%02x want 0x%02x)", first,
		       j->have[first], j->want[first]);
	printf("; version at splice %" PRIu64 "\n", j->version);
	fflush(stdout);
}

/*
 * One check. Under the mutex: (open,) fill the pipe, snapshot the model.
 * Outside it: sleep, drain, compare.
 */
static void splice_once(struct run *r, struct splice_job *j, int rdwr_fd,
			uint64_t *seed)
{
	int fd = rdwr_fd, pr = -1;
	long want_len, drained;

	j->off = rnd_off(seed, MAX_SIZE);
	j->len = rnd_len(seed, MAX_SPLICE);
	j->how = (enum filler)rnd_below(seed, N_FILLERS);
	pthread_mutex_lock(&r->mu);
	/* A fresh O_RDONLY open is a snapshot of now (G2): same as the model. */
	if (j->fresh_rdonly)
		fd = open(r->path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		pr = fill_pipe(j->how, fd, j->off, j->len, PIPE_SIZE, &j->got);
	want_len = model_expect(r, j);
	/* The control run drains before anything can change the file. */
	drained = r->drain_early && pr >= 0 ? drain_pipe(pr, j->have, MAX_SPLICE) : 0;
	pthread_mutex_unlock(&r->mu);
	if (fd < 0 || pr < 0) {
		run_error(r, fd < 0 ? "open O_RDONLY" : filler_name[j->how], errno);
		goto out;
	}
	if (!r->drain_early) {
		/* Let the modifiers at the pages the pipe references. */
		sleep_us(rnd_below(seed, 20001));
		drained = drain_pipe(pr, j->have, MAX_SPLICE);
	} else {
		sleep_us(rnd_below(seed, 1001));	/* modifiers get a turn */
	}
	atomic_fetch_add(&r->splices, 1);
	atomic_fetch_add(&r->bytes_checked, drained > 0 ? drained : 0);
	if (drained != want_len || j->got != want_len ||
	    memcmp(j->have, j->want, (size_t)want_len)) {
		atomic_fetch_add(&r->mismatches, 1);
		report_mismatch(r, j, want_len, drained);
	}
out:
	if (pr >= 0)
		close(pr);
	if (j->fresh_rdonly && fd >= 0)
		close(fd);
}

struct thread_arg {
	struct run *r;
	int id;
};

/*
 * Even splicers use one long-lived O_RDWR fd (live data, G2 writers);
 * odd ones open O_RDONLY per splice under the mutex: a long-lived O_RDONLY
 * fd would be a snapshot of its open time on stablefs (G2), not the model.
 */
static void *splicer(void *arg)
{
	struct thread_arg *a = arg;
	struct run *r = a->r;
	struct splice_job j = { .fresh_rdonly = a->id & 1 };
	uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(a->id + 1);
	int fd = -1;

	j.want = malloc(MAX_SPLICE);
	j.have = malloc(MAX_SPLICE);
	if (!j.want || !j.have) {
		run_error(r, "malloc", ENOMEM);
		goto out;
	}
	if (!j.fresh_rdonly) {
		fd = open(r->path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			run_error(r, "open O_RDWR", errno);
			goto out;
		}
	}
	while (!atomic_load(&r->stop))
		splice_once(r, &j, fd, &seed);
out:
	if (fd >= 0)
		close(fd);
	free(j.want);
	free(j.have);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Modifiers: each op changes the file and the model, mu held         */
/* ------------------------------------------------------------------ */

enum op {
	OP_PWRITE, OP_PUNCH, OP_ZERO, OP_TRUNCATE, OP_APPEND, OP_COPY,
	OP_COLLAPSE, OP_INSERT, N_OPS
};

static const char *const op_name[] = {
	"pwrite", "punch", "zero range", "truncate", "O_APPEND write",
	"copy_file_range", "collapse", "insert",
};

struct mod_ctx {
	struct run *r;
	int fd;		/* O_RDWR */
	int append_fd;	/* O_WRONLY|O_APPEND */
	int donor_fd;	/* O_RDONLY */
	uint64_t seed;
	unsigned char *buf;	/* MAX_MOD */
};

/* The model after a write of len bytes at off (a gap before it reads 0). */
static void model_write(struct run *r, long off, const unsigned char *p,
			long len)
{
	if (off > r->size)
		memset(r->model + r->size, 0, (size_t)(off - r->size));
	memcpy(r->model + off, p, (size_t)len);
	if (off + len > r->size)
		r->size = off + len;
}

static void model_zero(struct run *r, long off, long len)
{
	long end = off + len < r->size ? off + len : r->size;

	if (off < end)
		memset(r->model + off, 0, (size_t)(end - off));
}

static int op_pwrite(struct mod_ctx *c)
{
	struct run *r = c->r;
	long len = rnd_len(&c->seed, MAX_MOD);
	long off = rnd_off(&c->seed, r->size + 64 * KiB);

	if (off + len > MAX_SIZE)
		off = MAX_SIZE - len;
	rnd_bytes(&c->seed, c->buf, len);
	if (pwrite_all(c->fd, c->buf, (size_t)len, off))
		return -1;
	model_write(r, off, c->buf, len);
	return 0;
}

/* PUNCH_HOLE and ZERO_RANGE, both KEEP_SIZE: the range reads zeros. */
static int op_falloc_zero(struct mod_ctx *c, int mode)
{
	struct run *r = c->r;
	long off = rnd_off(&c->seed, r->size);
	long len = rnd_len(&c->seed, MAX_MOD);

	if (fallocate(c->fd, mode | FALLOC_FL_KEEP_SIZE, off, len))
		return -1;
	model_zero(r, off, len);
	return 0;
}

static int op_truncate(struct mod_ctx *c)
{
	struct run *r = c->r;
	long size = MIN_TRUNC + rnd_off(&c->seed, MAX_SIZE - MIN_TRUNC);

	if (ftruncate(c->fd, size))
		return -1;
	if (size > r->size)
		memset(r->model + r->size, 0, (size_t)(size - r->size));
	r->size = size;
	return 0;
}

static int op_append(struct mod_ctx *c)
{
	struct run *r = c->r;
	long len = rnd_len(&c->seed, 64 * KiB);

	if (r->size + len > MAX_SIZE)
		return op_truncate(c);	/* make room instead */
	rnd_bytes(&c->seed, c->buf, len);
	if (write_all(c->append_fd, c->buf, (size_t)len))
		return -1;
	model_write(r, r->size, c->buf, len);
	return 0;
}

/* copy_file_range from the donor; may extend the file (with a hole). */
static int op_copy(struct mod_ctx *c)
{
	struct run *r = c->r;
	long len = rnd_len(&c->seed, MAX_MOD);
	loff_t in = rnd_off(&c->seed, DONOR_SIZE - len);
	loff_t out = rnd_off(&c->seed, r->size + 64 * KiB);
	long done = 0;

	if (out + len > MAX_SIZE)
		out = MAX_SIZE - len;
	while (done < len) {
		loff_t in0 = in, out0 = out;
		ssize_t n = copy_file_range(c->donor_fd, &in, c->fd, &out,
					    (size_t)(len - done), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		model_write(r, out0, r->donor_data + in0, n);
		done += n;
	}
	return 0;
}

/* COLLAPSE/INSERT_RANGE want block-aligned ranges inside the file. */
static int op_shift(struct mod_ctx *c, bool collapse)
{
	struct run *r = c->r;
	long len = PAGE * (1 + rnd_below(&c->seed, 16));
	long off = rnd_below(&c->seed, r->size - len) & ~(PAGE - 1);

	if (off < 0 || off + len >= r->size || (!collapse && r->size + len > MAX_SIZE))
		return 0;	/* no valid range now: skip */
	if (fallocate(c->fd, collapse ? FALLOC_FL_COLLAPSE_RANGE
				     : FALLOC_FL_INSERT_RANGE, off, len)) {
		if (errno != EOPNOTSUPP)
			return -1;
		atomic_fetch_add(&r->refused, 1);	/* FUSE refuses them */
		return 0;
	}
	if (collapse) {
		memmove(r->model + off, r->model + off + len,
			(size_t)(r->size - off - len));
		r->size -= len;
	} else {
		memmove(r->model + off + len, r->model + off,
			(size_t)(r->size - off));
		memset(r->model + off, 0, (size_t)len);
		r->size += len;
	}
	return 0;
}

static int do_op(struct mod_ctx *c, enum op op)
{
	switch (op) {
	case OP_PWRITE:
		return op_pwrite(c);
	case OP_PUNCH:
		return op_falloc_zero(c, FALLOC_FL_PUNCH_HOLE);
	case OP_ZERO:
		return op_falloc_zero(c, FALLOC_FL_ZERO_RANGE);
	case OP_TRUNCATE:
		return op_truncate(c);
	case OP_APPEND:
		return op_append(c);
	case OP_COPY:
		return op_copy(c);
	case OP_COLLAPSE:
		return op_shift(c, true);
	case OP_INSERT:
		return op_shift(c, false);
	default:
		return 0;
	}
}

static int open_mod_fds(struct mod_ctx *c)
{
	c->fd = open(c->r->path, O_RDWR | O_CLOEXEC);
	c->append_fd = open(c->r->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	c->donor_fd = open(c->r->donor, O_RDONLY | O_CLOEXEC);
	return c->fd < 0 || c->append_fd < 0 || c->donor_fd < 0 ? -1 : 0;
}

static void *modifier(void *arg)
{
	struct thread_arg *a = arg;
	struct mod_ctx c = { .r = a->r, .fd = -1, .append_fd = -1, .donor_fd = -1,
			     .seed = 0xd1b54a32d192ed03ULL * (uint64_t)(a->id + 1) };
	struct run *r = a->r;

	c.buf = malloc(MAX_MOD);
	if (!c.buf || open_mod_fds(&c)) {
		run_error(r, "modifier setup", c.buf ? errno : ENOMEM);
		goto out;
	}
	while (!atomic_load(&r->stop)) {
		enum op op = (enum op)rnd_below(&c.seed, N_OPS);
		int rc, err;

		pthread_mutex_lock(&r->mu);
		rc = do_op(&c, op);
		err = errno;
		if (rc == 0) {
			r->version++;
			r->op_count[op]++;
		}
		pthread_mutex_unlock(&r->mu);
		if (rc) {
			run_error(r, op_name[op], err);
			break;
		}
		atomic_fetch_add(&r->mods, 1);
		/* Let splicers at the mutex between ops. */
		sleep_us(rnd_below(&c.seed, 2001));
	}
out:
	if (c.fd >= 0)
		close(c.fd);
	if (c.append_fd >= 0)
		close(c.append_fd);
	if (c.donor_fd >= 0)
		close(c.donor_fd);
	free(c.buf);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* A run                                                              */
/* ------------------------------------------------------------------ */

/* The file (one big write: large folios, K1), the donor, and the model. */
static int prepare_files(struct run *r, const char *dir)
{
	uint64_t seed = 42;
	int fd;

	if (snprintf(r->path, PATH_MAX, "%s/stress-file", dir) >= PATH_MAX ||
	    snprintf(r->donor, PATH_MAX, "%s/stress-donor", dir) >= PATH_MAX)
		return -1;
	r->model = malloc(MAX_SIZE);
	r->donor_data = malloc(DONOR_SIZE);
	if (!r->model || !r->donor_data)
		return -1;
	rnd_bytes(&seed, r->model, INITIAL_SIZE);
	rnd_bytes(&seed, r->donor_data, DONOR_SIZE);
	r->size = INITIAL_SIZE;
	fd = open(r->donor, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || pwrite_all(fd, r->donor_data, DONOR_SIZE, 0) || fsync(fd))
		goto fail;
	close(fd);
	fd = open(r->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || pwrite_all(fd, r->model, INITIAL_SIZE, 0) || fsync(fd))
		goto fail;
	close(fd);
	return 0;
fail:
	fprintf(stderr, "%s: preparing files: %s\n", r->label, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static void free_run(struct run *r)
{
	free(r->model);
	free(r->donor_data);
	r->model = NULL;
	r->donor_data = NULL;
	pthread_mutex_destroy(&r->mu);
}

/*
 * Wait out the duration, then for the threads. Returns false if progress
 * stopped for STALL_SECONDS (a deadlock). daemon_pid > 0: killing it then
 * aborts the FUSE connection, so blocked threads return and can be joined.
 */
static long progress_of(void *arg)
{
	struct run *r = arg;

	return atomic_load(&r->splices) + atomic_load(&r->mods);
}

static bool run_harness(struct run *r, const char *dir, double seconds,
			pid_t daemon_pid)
{
	pthread_t th[N_SPLICERS + N_MODIFIERS];
	struct thread_arg args[N_SPLICERS + N_MODIFIERS];
	int n = 0;
	bool alive;

	pthread_mutex_init(&r->mu, NULL);
	assert_int_equal(prepare_files(r, dir), 0);
	for (int i = 0; i < N_SPLICERS + N_MODIFIERS; i++) {
		args[i] = (struct thread_arg){ .r = r, .id = i };
		if (pthread_create(&th[i], NULL,
				   i < N_SPLICERS ? splicer : modifier, &args[i])) {
			run_error(r, "pthread_create", errno);
			break;
		}
		n++;
	}
	alive = supervise_run(&r->stop, progress_of, r, seconds, STALL_SECONDS,
			     daemon_pid, r->label);
	/* After a deadlock the daemon is dead: joins return (ENOTCONN). */
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	return alive;
}

static void print_stats(struct run *r, double seconds)
{
	printf("# %s, %.0f s: splices checked %ld (%ld MiB), modifications %ld "
	       "(refused %ld), mismatches %ld, errors %ld\n#   ops attempted:", r->label,
	       seconds, atomic_load(&r->splices),
	       atomic_load(&r->bytes_checked) / MiB, atomic_load(&r->mods),
	       atomic_load(&r->refused), atomic_load(&r->mismatches),
	       atomic_load(&r->errors));
	for (int op = 0; op < N_OPS; op++)
		printf(" %s %ld%s", op_name[op], r->op_count[op],
		       op + 1 < N_OPS ? "," : "\n");
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Fixtures and tests                                                 */
/* ------------------------------------------------------------------ */

struct fixture {
	char dir[PATH_MAX];	/* raw: our directory; stablefs: the mount */
	struct test_mount m;
	const char *skip_why;
	struct run run;
};

static int setup_raw(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/sfs-stress-XXXXXX", tmp_base());
	if (!mkdtemp(f->dir)) {
		f->dir[0] = '\0';
		return -1;
	}
	if (!is_ext4(f->dir))
		f->skip_why = "$TMPDIR is not on ext4";
	return 0;
}

static int setup_stablefs(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int err;

	*state = f;
	if (!f)
		return -1;
	err = test_mount_setup(&f->m, "stress", NULL, &f->skip_why);
	if (err || f->skip_why)
		return err;
	snprintf(f->dir, sizeof(f->dir), "%s", f->m.mnt);
	return 0;
}

/* Always: unmount (no leaked mount), remove what we created. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	if (f->m.base[0]) {	/* a mount was prepared */
		if (test_mount_finish(&f->m))
			rc = -1;
	} else if (f->dir[0]) {
		test_rm_rf(f->dir);
	}
	free_run(&f->run);
	free(f);
	*state = NULL;
	return rc;
}

/*
 * The same harness on raw ext4 must catch the kernel corrupting pipes
 * (K1); otherwise a zero on stablefs would prove nothing.
 */
static void test_raw_ext4_detects(void **state)
{
	struct fixture *f = *state;
	struct run *r = &f->run;
	double secs = stress_seconds(DEFAULT_SECONDS) < RAW_SECONDS ? stress_seconds(DEFAULT_SECONDS) : RAW_SECONDS;

	if (f->skip_why) {
		printf("# raw run skipped: %s\n", f->skip_why);
		skip();
	}
	r->label = "ext4";
	run_harness(r, f->dir, secs, 0);
	print_stats(r, secs);
	assert_int_equal(atomic_load(&r->errors), 0);
	assert_true(atomic_load(&r->splices) > 0);
	if (atomic_load(&r->mismatches) == 0)
		fail_msg("raw ext4: no mismatch in %ld splices: kernel changed: "
			 "re-check K1 (or the checker lost its teeth)",
			 atomic_load(&r->splices));
}

/*
 * Control for the model itself: the same raw run, but every pipe drained
 * before the mutex is released, so nothing can change the pages in between.
 * Any mismatch here is a bug in the model, not in the kernel.
 */
static void test_raw_ext4_model_exact(void **state)
{
	struct fixture *f = *state;
	struct run *r = &f->run;
	double secs = stress_seconds(DEFAULT_SECONDS) < RAW_SECONDS ? stress_seconds(DEFAULT_SECONDS) : RAW_SECONDS;

	if (f->skip_why) {
		printf("# raw control skipped: %s\n", f->skip_why);
		skip();
	}
	r->label = "ext4 (control: drained under the mutex)";
	r->drain_early = true;
	run_harness(r, f->dir, secs, 0);
	print_stats(r, secs);
	assert_int_equal(atomic_load(&r->errors), 0);
	assert_true(atomic_load(&r->splices) > 0);
	if (atomic_load(&r->mismatches))
		fail_msg("the model disagrees with the file even without any "
			 "modification between splice and drain: harness bug");
}

static void test_stablefs_stress(void **state)
{
	struct fixture *f = *state;
	struct run *r = &f->run;
	double secs = stress_seconds(DEFAULT_SECONDS);
	bool alive;

	if (f->skip_why) {
		printf("# stablefs run skipped: %s\n", f->skip_why);
		skip();
	}
	r->label = "stablefs";
	alive = run_harness(r, f->dir, secs, f->m.pid);
	print_stats(r, secs);
	if (!alive)
		fail_msg("stablefs: deadlock (no progress for %d s), daemon killed",
			 STALL_SECONDS);
	assert_int_equal(atomic_load(&r->errors), 0);
	assert_true(atomic_load(&r->splices) > 0 && atomic_load(&r->mods) > 0);
	if (atomic_load(&r->mismatches))
		fail_msg("stablefs: %ld of %ld drained pipes differ from the file "
			 "at splice time (G1 violated)", atomic_load(&r->mismatches),
			 atomic_load(&r->splices));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_raw_ext4_model_exact,
						setup_raw, teardown),
		cmocka_unit_test_setup_teardown(test_raw_ext4_detects, setup_raw,
						teardown),
		cmocka_unit_test_setup_teardown(test_stablefs_stress,
						setup_stablefs, teardown),
	};

	return cmocka_run_group_tests_name("splice_stress", tests, NULL, NULL);
}
