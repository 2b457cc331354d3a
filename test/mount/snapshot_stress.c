/*
 * Snapshots under concurrency (G2, G5; acceptance scenario S6: see
 * doc/guarantees.md).
 *
 * One stablefs mount, FILES files (at most MAX_SIZE each). N_WRITERS writer
 * threads change them at random through MNT - pwrite, truncate shrink and
 * grow, PUNCH_HOLE, ZERO_RANGE, O_APPEND write - each under the file's
 * process-local mutex, which also guards an in-memory model of the file and
 * the XXH3-128 of the model's current content (the version's digest).
 * N_READERS reader threads repeatedly take a file's mutex, open it O_RDONLY
 * through MNT (that open is the snapshot: its expected content is the
 * model's version right then), release the mutex, sleep 0-10 ms while the
 * writers go on, then read the whole file via splice(2) (half the time) or
 * read(2), and compute its XXH3-128; user.stablefs.xxh3 on the fd and
 * fstat's size are checked too. All must equal the version at open (G2);
 * the daemon must not deadlock: a watchdog kills our own daemon after
 * STALL_SECONDS without progress, so the test fails rather than hangs.
 * At the end every fd is closed and the stats must show no live snapshot
 * and no preserved byte left; the files must equal the model.
 *
 * The checker has teeth: the same harness on a -o snapshot=off mount (plain
 * passthrough, readers see writes) reported 2644 mismatches in 4 s.
 *
 * SFS_STRESS_SECONDS sets the duration of the run on a default mount
 * (default 60, as S6 asks); the -o oob=ignore run takes a third of it
 * (see main()).
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "mount_util.h"
#include "test_util.h"

#define KiB 1024L
#define MiB (1024L * KiB)
#define PAGE 4096L

#define FILES 3
#define INITIAL_SIZE (1 * MiB)
#define MAX_SIZE (4 * MiB)
#define MAX_WRITE (256 * KiB)
#define MAX_APPEND (64 * KiB)
#define N_WRITERS 3
#define N_READERS 4
#define DEFAULT_SECONDS 60	/* S6 on the default mount */
#define STALL_SECONDS 60
#define MAX_REPORTS 10
#define XATTR_DIGEST "user.stablefs.xxh3"

enum op { OP_PWRITE, OP_SHRINK, OP_GROW, OP_PUNCH, OP_ZERO, OP_APPEND, N_OPS };

static const char *const op_name[] = {
	[OP_PWRITE] = "pwrite", [OP_SHRINK] = "truncate-shrink",
	[OP_GROW] = "truncate-grow", [OP_PUNCH] = "punch",
	[OP_ZERO] = "zero-range", [OP_APPEND] = "append",
};

/* ------------------------------------------------------------------ */
/* Randomness (rnd() etc. in test_util), digests                      */
/* ------------------------------------------------------------------ */

/* Random file content, never 0 (unlike splice_stress's). */
static void rnd_bytes(uint64_t *s, unsigned char *buf, long len)
{
	for (long i = 0; i < len; i++)
		buf[i] = (unsigned char)(rnd(s) >> 56) | 1;	/* never 0 */
}

static void digest_of(const void *buf, size_t len, unsigned char out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(buf, len));
	memcpy(out, c.digest, 16);
}

static void hex_of(const unsigned char d[16], char hex[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* ------------------------------------------------------------------ */
/* Shared state                                                       */
/* ------------------------------------------------------------------ */

struct file {
	char path[PATH_MAX];	/* through MNT */
	char src[PATH_MAX];	/* directly in SRC (final check only) */
	pthread_mutex_t mu;
	/* Below: only with mu held. */
	unsigned char *model;	/* MAX_SIZE bytes, zero past size */
	long size;
	uint64_t version;
	unsigned char digest[16];	/* XXH3-128 of model[0, size) */
};

struct run {
	struct file files[FILES];
	atomic_bool stop;
	atomic_long ops, checks, splice_checks, mismatches, errors, reports;
	atomic_long failed_reads;	/* of mismatches: read/getxattr failed */
	atomic_long op_count[N_OPS];
	atomic_long xattr_checks;
};

struct thread_arg {
	struct run *r;
	int id;
};

static void run_error(struct run *r, const char *what, int err)
{
	fprintf(stderr, "%s: %s\n", what, strerror(err));
	atomic_fetch_add(&r->errors, 1);
	atomic_store(&r->stop, true);
}

/* The whole file by read(2) (as_splice false) or splice(2); -1: errno. */
static long read_whole(int fd, unsigned char *buf, size_t cap, bool as_splice,
		       int pipe_fds[2])
{
	size_t got = 0;
	loff_t off = 0;

	for (;;) {
		ssize_t n;

		if (!as_splice) {
			n = read(fd, buf + got, cap - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -1;
			if (n == 0)
				return (long)got;
			got += (size_t)n;
			if (got == cap)
				return (long)got;
			continue;
		}
		n = splice(fd, &off, pipe_fds[1], NULL, 64 * KiB, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return (long)got;
		while (n > 0) {
			ssize_t m;

			if (got >= cap) {
				errno = EFBIG;
				return -1;
			}
			m = read(pipe_fds[0], buf + got,
				 cap - got < (size_t)n ? cap - got : (size_t)n);
			if (m < 0 && errno == EINTR)
				continue;
			if (m <= 0)
				return -1;
			got += (size_t)m;
			n -= m;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Writers                                                            */
/* ------------------------------------------------------------------ */

struct writer_fds {
	int rw[FILES];
	int app[FILES];
};

/* Apply one random op to file i (mu held): file first, then the model. */
static int apply_op(struct file *fl, int rw, int app, uint64_t *seed,
		    unsigned char *buf, enum op *which)
{
	enum op op = (enum op)rnd_below(seed, N_OPS);
	long size = fl->size, off, len;

	/* Keep sizes within (0, MAX_SIZE]. */
	if (op == OP_SHRINK && size < 2 * PAGE)
		op = OP_GROW;
	if ((op == OP_GROW || op == OP_APPEND) && size > MAX_SIZE - MAX_APPEND)
		op = OP_SHRINK;
	if ((op == OP_PUNCH || op == OP_ZERO) && size < 2)
		op = OP_PWRITE;
	*which = op;
	switch (op) {
	case OP_PWRITE:		/* may extend the file, within MAX_SIZE */
		off = rnd_off(seed, size + PAGE < MAX_SIZE ? size + PAGE : size);
		len = 1 + rnd_below(seed, MAX_WRITE);
		if (off + len > MAX_SIZE)
			len = MAX_SIZE - off;
		if (len <= 0)
			return 0;
		rnd_bytes(seed, buf, len);
		if (pwrite_all(rw, buf, (size_t)len, off))
			return -1;
		memcpy(fl->model + off, buf, (size_t)len);
		if (off + len > size)
			fl->size = off + len;
		return 0;
	case OP_SHRINK:
		len = rnd_off(seed, size);
		if (ftruncate(rw, len))
			return -1;
		memset(fl->model + len, 0, (size_t)(size - len));
		fl->size = len;
		return 0;
	case OP_GROW:
		len = size + 1 + rnd_below(seed, MAX_SIZE - size);
		if (ftruncate(rw, len))
			return -1;
		fl->size = len;		/* model is zero past size already */
		return 0;
	case OP_PUNCH:
	case OP_ZERO:
		off = rnd_off(seed, size - 1);
		len = 1 + rnd_below(seed, size - off < MAX_WRITE ? size - off : MAX_WRITE);
		if (fallocate(rw, op == OP_PUNCH ?
			      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE :
			      FALLOC_FL_ZERO_RANGE, off, len))
			return -1;
		memset(fl->model + off, 0, (size_t)len);
		return 0;
	case OP_APPEND:
		len = 1 + rnd_below(seed, MAX_APPEND);
		rnd_bytes(seed, buf, len);
		if (write_all(app, buf, (size_t)len))
			return -1;
		memcpy(fl->model + size, buf, (size_t)len);
		fl->size = size + len;
		return 0;
	case N_OPS:
		break;
	}
	return 0;
}

static void *writer(void *arg)
{
	struct thread_arg *a = arg;
	struct run *r = a->r;
	uint64_t seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(a->id + 1);
	unsigned char *buf = malloc(MAX_WRITE);
	struct writer_fds w;

	for (int i = 0; i < FILES; i++) {
		w.rw[i] = open(r->files[i].path, O_RDWR | O_CLOEXEC);
		w.app[i] = open(r->files[i].path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (w.rw[i] < 0 || w.app[i] < 0)
			run_error(r, "writer open", errno);
	}
	if (!buf)
		run_error(r, "malloc", ENOMEM);
	while (!atomic_load(&r->stop)) {
		int i = (int)rnd_below(&seed, FILES);
		struct file *fl = &r->files[i];
		enum op op = OP_PWRITE;
		int err = 0;

		pthread_mutex_lock(&fl->mu);
		if (apply_op(fl, w.rw[i], w.app[i], &seed, buf, &op))
			err = errno;
		fl->version++;
		digest_of(fl->model, (size_t)fl->size, fl->digest);
		pthread_mutex_unlock(&fl->mu);
		if (err) {
			char what[64];

			snprintf(what, sizeof(what), "writer %s", op_name[op]);
			run_error(r, what, err);
			break;
		}
		atomic_fetch_add(&r->op_count[op], 1);
		atomic_fetch_add(&r->ops, 1);
		sleep_us(rnd_below(&seed, 2001));
	}
	for (int i = 0; i < FILES; i++) {
		if (w.rw[i] >= 0)
			close(w.rw[i]);
		if (w.app[i] >= 0)
			close(w.app[i]);
	}
	free(buf);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Readers                                                            */
/* ------------------------------------------------------------------ */

/* failed: the call failed (EIO); else the bytes, size or digest differ. */
static void report(struct run *r, bool failed, int file, uint64_t version,
		   const char *how, const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(&r->mismatches, 1);
	if (failed)
		atomic_fetch_add(&r->failed_reads, 1);
	if (atomic_fetch_add(&r->reports, 1) >= MAX_REPORTS)
		return;
	printf("# MISMATCH file %d version %llu (%s): ", file,
	       (unsigned long long)version, how);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void *reader(void *arg)
{
	struct thread_arg *a = arg;
	struct run *r = a->r;
	uint64_t seed = 0xD1B54A32D192ED03ULL * (uint64_t)(a->id + 7);
	unsigned char *buf = malloc(MAX_SIZE + MiB);
	int p[2];

	if (!buf || pipe2(p, O_CLOEXEC)) {
		run_error(r, "reader setup", errno ? errno : ENOMEM);
		free(buf);
		return NULL;
	}
	while (!atomic_load(&r->stop)) {
		int i = (int)rnd_below(&seed, FILES);
		struct file *fl = &r->files[i];
		bool as_splice = rnd(&seed) & 1;
		const char *how = as_splice ? "splice" : "read";
		unsigned char want[16], got[16];
		char want_hex[33], got_hex[33], x_hex[40];
		uint64_t version;
		long want_size, n;
		struct stat st;
		char proc[64];
		ssize_t xn;
		int fd;

		pthread_mutex_lock(&fl->mu);
		fd = open(fl->path, O_RDONLY | O_CLOEXEC);
		memcpy(want, fl->digest, 16);
		want_size = fl->size;
		version = fl->version;
		pthread_mutex_unlock(&fl->mu);
		if (fd < 0) {
			run_error(r, "reader open", errno);
			break;
		}
		sleep_us(rnd_below(&seed, 10001));
		hex_of(want, want_hex);

		if (fstat(fd, &st)) {
			run_error(r, "fstat", errno);
			close(fd);
			break;
		}
		if (st.st_size != want_size)
			report(r, false, i, version, "fstat", "size %lld, expected %ld",
			       (long long)st.st_size, want_size);

		n = read_whole(fd, buf, MAX_SIZE + MiB, as_splice, p);
		if (n < 0) {
			report(r, true, i, version, how, "failed: %s", strerror(errno));
			close(fd);
			if (as_splice) {	/* the pipe may hold leftovers */
				close(p[0]);
				close(p[1]);
				if (pipe2(p, O_CLOEXEC)) {
					run_error(r, "pipe2", errno);
					break;
				}
			}
			continue;
		}
		digest_of(buf, (size_t)n, got);
		hex_of(got, got_hex);
		if (n != want_size || memcmp(got, want, 16))
			report(r, false, i, version, how, "%ld bytes, xxh3 %s; expected "
			       "%ld bytes, xxh3 %s", n, got_hex, want_size, want_hex);

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		xn = getxattr(proc, XATTR_DIGEST, x_hex, sizeof(x_hex) - 1);
		if (xn != 32) {
			report(r, true, i, version, "xattr", "getxattr: %zd %s", xn,
			       xn < 0 ? strerror(errno) : "(wrong length)");
		} else {
			x_hex[32] = '\0';
			if (strcmp(x_hex, want_hex))
				report(r, false, i, version, "xattr", "%s, expected %s",
				       x_hex, want_hex);
			atomic_fetch_add(&r->xattr_checks, 1);
		}
		close(fd);
		atomic_fetch_add(&r->checks, 1);
		if (as_splice)
			atomic_fetch_add(&r->splice_checks, 1);
	}
	close(p[0]);
	close(p[1]);
	free(buf);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Harness                                                            */
/* ------------------------------------------------------------------ */

/* Fresh files in SRC (random content), their models and digests. */
static int prepare_files(struct run *r, const struct test_mount *m)
{
	uint64_t seed = 12345;

	for (int i = 0; i < FILES; i++) {
		struct file *fl = &r->files[i];
		int fd, n1, n2;

		n1 = snprintf(fl->path, sizeof(fl->path), "%s/file%d", m->mnt, i);
		n2 = snprintf(fl->src, sizeof(fl->src), "%s/file%d", m->src, i);
		if (n1 >= PATH_MAX || n2 >= PATH_MAX)
			return -1;
		pthread_mutex_init(&fl->mu, NULL);
		fl->model = calloc(1, MAX_SIZE);
		if (!fl->model)
			return -1;
		fl->size = INITIAL_SIZE;
		rnd_bytes(&seed, fl->model, fl->size);
		digest_of(fl->model, (size_t)fl->size, fl->digest);
		fd = open(fl->src, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || pwrite_all(fd, fl->model, (size_t)fl->size, 0)) {
			perror(fl->src);
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

/*
 * Wait out the duration; false if nothing finished for STALL_SECONDS (a
 * deadlock): then our daemon is killed, which aborts the connection so
 * blocked threads return and can be joined.
 */
static long progress_of(void *arg)
{
	struct run *r = arg;

	return atomic_load(&r->ops) + atomic_load(&r->checks);
}

/* The file through a fresh reader and directly in SRC equals the model. */
static long check_final(struct run *r)
{
	unsigned char *buf = malloc(MAX_SIZE + MiB);
	long bad = 0;

	if (!buf)
		return 1;
	for (int i = 0; i < FILES; i++) {
		struct file *fl = &r->files[i];

		for (int where = 0; where < 2; where++) {
			int fd = open(where ? fl->src : fl->path, O_RDONLY | O_CLOEXEC);
			long n = fd < 0 ? -1 : read_whole(fd, buf, MAX_SIZE + MiB, false, NULL);

			if (fd >= 0)
				close(fd);
			if (n != fl->size || memcmp(buf, fl->model, (size_t)n)) {
				printf("# final file%d %s: %ld bytes, model %ld bytes%s\n",
				       i, where ? "in SRC" : "through MNT", n, fl->size,
				       n == fl->size ? ", content differs" : "");
				bad++;
			}
		}
	}
	free(buf);
	return bad;
}

/* ------------------------------------------------------------------ */
/* Fixture and test                                                   */
/* ------------------------------------------------------------------ */

struct fixture {
	struct test_mount m;
	bool is_mount;
	bool short_run;		/* a variant (mount options given): a third */
	struct run run;
};

/* *state: the mount options (NULL: defaults). */
static int setup(void **state)
{
	const char *opts = *state;
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f)
		return -1;
	f->short_run = opts != NULL;
	if (test_mount_prepare(&f->m, "snapstress"))
		return -1;
	f->is_mount = true;
	return test_mount_start(&f->m, opts);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	if (f->is_mount) {
		if (test_mount_finish(&f->m))
			rc = -1;
	}
	for (int i = 0; i < FILES; i++) {
		free(f->run.files[i].model);
		if (f->run.files[i].model)
			pthread_mutex_destroy(&f->run.files[i].mu);
	}
	free(f);
	*state = NULL;
	return rc;
}

static void test_snapshot_stress(void **state)
{
	struct fixture *f = *state;
	struct run *r = &f->run;
	pthread_t th[N_WRITERS + N_READERS];
	struct thread_arg args[N_WRITERS + N_READERS];
	double secs = stress_seconds(DEFAULT_SECONDS) / (f->short_run ? 3 : 1);
	long long live = -1, bytes = -1, files = -1;
	long bad_final;
	bool alive;
	int n = 0, waited;

	assert_int_equal(prepare_files(r, &f->m), 0);
	for (int i = 0; i < N_WRITERS + N_READERS; i++) {
		args[i] = (struct thread_arg){ .r = r, .id = i };
		if (pthread_create(&th[i], NULL, i < N_WRITERS ? writer : reader,
				   &args[i])) {
			run_error(r, "pthread_create", errno);
			break;
		}
		n++;
	}
	alive = supervise_run(&r->stop, progress_of, r, secs, STALL_SECONDS,
			     f->m.pid, "snapshot stress");
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);

	printf("# %.0f s: snapshots checked %ld (%ld by splice, %ld digests "
	       "by xattr), ops %ld, mismatches %ld (of which failed reads %ld), "
	       "errors %ld\n#   ops:", secs,
	       atomic_load(&r->checks), atomic_load(&r->splice_checks),
	       atomic_load(&r->xattr_checks), atomic_load(&r->ops),
	       atomic_load(&r->mismatches), atomic_load(&r->failed_reads),
	       atomic_load(&r->errors));
	for (int op = 0; op < N_OPS; op++)
		printf(" %s %ld%s", op_name[op], atomic_load(&r->op_count[op]),
		       op + 1 < N_OPS ? "," : "\n");
	fflush(stdout);
	if (!alive)
		fail_msg("stablefs: deadlock (no progress for %d s), daemon killed",
			 STALL_SECONDS);
	print_mount_stats(f->m.mnt);
	assert_int_equal(atomic_load(&r->errors), 0);
	assert_true(atomic_load(&r->checks) > 0 && atomic_load(&r->ops) > 0);
	if (atomic_load(&r->mismatches))
		fail_msg("%ld of %ld snapshot checks differ from the version at "
			 "their open (G2/G5 violated; %ld were failed calls, and "
			 "nothing changed SRC directly)", atomic_load(&r->mismatches),
			 atomic_load(&r->checks), atomic_load(&r->failed_reads));

	bad_final = check_final(r);
	if (bad_final)
		fail_msg("%ld final files differ from the model", bad_final);

	/* Every fd is closed; releases are asynchronous: poll. */
	for (waited = 0; waited <= 5000; waited += 50) {
		live = mount_counter(f->m.mnt, "snapshots_live");
		bytes = mount_counter(f->m.mnt, "bytes_preserved");
		files = mount_counter(f->m.mnt, "store_files");
		if (live == 0 && bytes == 0 && files == 0)
			break;
		sleep_us(50000);
	}
	if (live || bytes || files) {
		print_mount_stats(f->m.mnt);
		fail_msg("after closing everything: snapshots_live %lld, "
			 "bytes_preserved %lld, store_files %lld (expected 0)",
			 live, bytes, files);
	}
}

int main(void)
{
	/*
	 * The default mount (oob=detect) is the contract. The oob=ignore run
	 * takes out-of-band detection out of the picture, so a failure of the
	 * first alone points at detection (false positives), one of both at
	 * the snapshots themselves.
	 */
	const struct CMUnitTest tests[] = {
		{ "snapshot_stress", test_snapshot_stress, setup, teardown, NULL },
		{ "snapshot_stress oob=ignore", test_snapshot_stress, setup,
		  teardown, (void *)"oob=ignore" },
	};

	test_require_fuse();
	return cmocka_run_group_tests_name("snapshot_stress", tests, NULL, NULL);
}
