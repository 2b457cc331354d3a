/*
 * Helper of bench/oob_cost.sh: the cost of the out-of-band watch
 * (-o oob=detect, -o oob=preserve) for processes that use SRC's filesystem
 * directly, and the cost of snapshot clones at open. A benchmark, not a
 * test: it never judges a number. Every timing subcommand prints lines
 * "<id> <value>" (microseconds unless the id says otherwise).
 *
 *   oob_cost prep DIR NOPEN        DIR/data (16 MiB) and DIR/o/f0..: NOPEN
 *                                  files of 100 bytes (DIR must not exist)
 *   oob_cost mkfiles DIR N         DIR/f0..f(N-1), 4 KiB each (first touch)
 *   oob_cost ops DIR [SCALE]       direct I/O on files prepared above, each
 *                                  op in 10 batches (after a warm-up),
 *                                  printing the best batch's us/op by the
 *                                  clock ("<op>") and by this thread's CPU
 *                                  time ("<op>.cpu"):
 *     first      open(O_RDWR) + pwrite 4 KiB + close of each DIR/t/f*
 *                (made by mkfiles before the watch existed): first touch
 *     again      the same files once more (their ignore marks are set)
 *     pwrite4k   pwrite 4 KiB, offsets cycling over 1 MiB of DIR/data
 *     pread4k    pread 4 KiB, the same offsets
 *     pwrite1m   pwrite 1 MiB, offsets cycling over 16 MiB
 *     openclose  open(O_RDONLY) + close of DIR/o/f* in turn
 *     create     open(O_CREAT|O_EXCL|O_WRONLY) + write 100 B + close of new
 *                files in a new directory (unlinked afterwards, untimed)
 *   oob_cost fill FILE MIB GEN     create FILE with pattern GEN, fsync
 *   oob_cost frag FILE N           N separate 4 KiB extents: every other
 *                                  block of 2N blocks, fsync
 *   oob_cost rewrite FILE MIB GEN  pwrite 1 MiB blocks over FILE in place
 *                                  (pattern GEN), then fsync; prints
 *                                  "write_ms X" and "fsync_ms Y"
 *   oob_cost hold FILE MIB GEN SLOW_MS READY
 *                                  open FILE O_RDONLY (a snapshot when FILE
 *                                  is on stablefs), create READY, then until
 *                                  SIGUSR1: nothing (SLOW_MS 0) or read
 *                                  1 MiB every SLOW_MS ms, checking that it
 *                                  has pattern GEN; at SIGUSR1 read and
 *                                  check the whole file, print "hold_mib N",
 *                                  "hold_bad_blocks N", "hold_errors N"
 *   oob_cost openclose PATH SECONDS MAXN [NFILES]
 *                                  open(O_RDONLY) + close of PATH (or of
 *                                  PATH/f0..f(NFILES-1) in turn) after 3
 *                                  untimed ones, for SECONDS or MAXN opens;
 *                                  prints "open_us" (mean), "open_med_us",
 *                                  "open_n"
 *
 * The pattern: each 4 KiB block starts with (GEN << 32 | block number),
 * the rest of it is the byte GEN.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KIB 4096
#define MIB (1 << 20)
#define DATA_MIB 16
#define BATCHES 10

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* This thread's CPU time, user and system: what the loop itself costs,
 * without the time other processes of a shared machine took the CPU. */
static double cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "oob_cost: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p;

	if (posix_memalign(&p, KIB, n))
		die("malloc", "");
	return p;
}

static void pattern(char *buf, size_t len, uint64_t gen, uint64_t off)
{
	memset(buf, (int)(gen & 0xff) | 1, len);
	for (size_t b = 0; b < len; b += KIB) {
		uint64_t tag = gen << 32 | ((off + b) / KIB);

		memcpy(buf + b, &tag, sizeof(tag));
	}
}

static void write_all(int fd, const char *buf, size_t len, off_t off, const char *path)
{
	ssize_t n = pwrite(fd, buf, len, off);

	if (n != (ssize_t)len)
		die("pwrite", path);
}

static void mkfiles(const char *dir, long n, size_t size)
{
	char path[4096], *buf = xmalloc(size);

	memset(buf, 'x', size);
	if (mkdir(dir, 0755))
		die("mkdir", dir);
	for (long i = 0; i < n; i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/f%ld", dir, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			die("create", path);
		write_all(fd, buf, size, 0, path);
		close(fd);
	}
	free(buf);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------------------------------------------------------------- ops -- */

struct ctx {
	const char *dir;
	int fd;		/* DIR/data, O_RDWR */
	char *buf;	/* 1 MiB */
	long nopen, ntouch;
	long i;		/* running op counter (offsets) */
};

typedef void op_fn(struct ctx *c, long n);

static void op_pwrite4k(struct ctx *c, long n)
{
	for (long k = 0; k < n; k++, c->i++)
		write_all(c->fd, c->buf, KIB, (off_t)(c->i % 256) * KIB, "data");
}

static void op_pread4k(struct ctx *c, long n)
{
	for (long k = 0; k < n; k++, c->i++)
		if (pread(c->fd, c->buf, KIB, (off_t)(c->i % 256) * KIB) != KIB)
			die("pread", "data");
}

static void op_pwrite1m(struct ctx *c, long n)
{
	for (long k = 0; k < n; k++, c->i++)
		write_all(c->fd, c->buf, MIB, (off_t)(c->i % DATA_MIB) * MIB, "data");
}

static void op_openclose(struct ctx *c, long n)
{
	char path[4096];

	for (long k = 0; k < n; k++, c->i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/o/f%ld", c->dir, c->i % c->nopen);
		if ((fd = open(path, O_RDONLY)) < 0)
			die("open", path);
		close(fd);
	}
}

static void op_create(struct ctx *c, long n)
{
	char path[4096];

	for (long k = 0; k < n; k++, c->i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/c/f%ld", c->dir, c->i);
		if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644)) < 0)
			die("create", path);
		write_all(fd, c->buf, 100, 0, path);
		close(fd);
	}
}

/* open(O_RDWR) + pwrite 4 KiB + close of DIR/t/f* from c->i on */
static void op_touch(struct ctx *c, long n)
{
	char path[4096];

	for (long k = 0; k < n; k++, c->i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/t/f%ld", c->dir, c->i);
		if ((fd = open(path, O_RDWR)) < 0)
			die("open", path);
		write_all(fd, c->buf, KIB, 0, path);
		close(fd);
	}
}

/*
 * `warm` untimed ops, then BATCHES timed batches of n ops; prints
 * "<id> <us/op>" of the best batch by the clock and "<id>.cpu <us/op>" of
 * the best batch by this thread's CPU time (the best of several, as in
 * K9: other processes on a shared machine only ever add time).
 */
static void batches(const char *id, struct ctx *c, op_fn *fn, long warm, long n)
{
	double wall = 1e300, cpu = 1e300;

	c->i = 0;
	fn(c, warm);
	for (int b = 0; b < BATCHES; b++) {
		double t0 = now_us(), c0 = cpu_us(), t, u;

		fn(c, n);
		u = (cpu_us() - c0) / n;
		t = (now_us() - t0) / n;
		wall = t < wall ? t : wall;
		cpu = u < cpu ? u : cpu;
	}
	printf("%s %.3f\n%s.cpu %.3f\n", id, wall, id, cpu);
}

static void cleanup_created(struct ctx *c, long n)
{
	char path[4096];

	for (long k = 0; k < n; k++) {
		snprintf(path, sizeof(path), "%s/c/f%ld", c->dir, k);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/c", c->dir);
	rmdir(path);
}

static long count_files(const char *dir, const char *sub)
{
	char path[4096];
	struct stat st;
	long n = 0;

	for (;; n++) {
		snprintf(path, sizeof(path), "%s/%s/f%ld", dir, sub, n);
		if (stat(path, &st))
			return n;
	}
}

static int ops(const char *dir, double scale)
{
	struct ctx c = { .dir = dir };
	char path[4096];
	long ncreate = (long)(200 * scale);

	c.buf = xmalloc(MIB);
	memset(c.buf, 'w', MIB);
	c.nopen = count_files(dir, "o");
	c.ntouch = count_files(dir, "t");
	if (!c.nopen)
		die("no files in", dir);
	/* First touch before anything else of this process: its files were
	 * made before the watch existed and are seen now for the first time,
	 * BATCHES batches of different files; then the same ones again. */
	if (c.ntouch >= BATCHES) {
		batches("first", &c, op_touch, 0, c.ntouch / BATCHES);
		batches("again", &c, op_touch, 0, c.ntouch / BATCHES);
	}
	snprintf(path, sizeof(path), "%s/data", dir);
	if ((c.fd = open(path, O_RDWR)) < 0)
		die("open", path);
	batches("pwrite4k", &c, op_pwrite4k, 1000, (long)(10000 * scale));
	batches("pread4k", &c, op_pread4k, 1000, (long)(10000 * scale));
	batches("pwrite1m", &c, op_pwrite1m, 16, (long)(64 * scale));
	close(c.fd);
	/* the warm-up is a pass over all the files: each is seen once */
	batches("openclose", &c, op_openclose, c.nopen, c.nopen / 2);
	snprintf(path, sizeof(path), "%s/c", dir);
	if (mkdir(path, 0755))
		die("mkdir", path);
	batches("create", &c, op_create, 0, ncreate);
	cleanup_created(&c, ncreate * BATCHES);
	fflush(stdout);
	return 0;
}

/* ------------------------------------------------- files for 2 and 3 -- */

static int fill(const char *file, long mib, uint64_t gen)
{
	char *buf = xmalloc(MIB);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		die("create", file);
	for (long m = 0; m < mib; m++) {
		pattern(buf, MIB, gen, (uint64_t)m * MIB);
		write_all(fd, buf, MIB, (off_t)m * MIB, file);
	}
	if (fsync(fd))
		die("fsync", file);
	close(fd);
	return 0;
}

static int frag(const char *file, long n)
{
	char *buf = xmalloc(KIB);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		die("create", file);
	for (long i = 0; i < n; i++) {
		pattern(buf, KIB, 1, (uint64_t)i * 2 * KIB);
		write_all(fd, buf, KIB, (off_t)i * 2 * KIB, file);
	}
	if (fsync(fd))
		die("fsync", file);
	close(fd);
	return 0;
}

static int rewrite(const char *file, long mib, uint64_t gen)
{
	char *buf = xmalloc(MIB);
	int fd = open(file, O_WRONLY);
	double t0, t1;

	if (fd < 0)
		die("open", file);
	t0 = now_us();
	for (long m = 0; m < mib; m++) {
		pattern(buf, MIB, gen, (uint64_t)m * MIB);
		write_all(fd, buf, MIB, (off_t)m * MIB, file);
	}
	t1 = now_us();
	if (fsync(fd))
		die("fsync", file);
	printf("write_ms %.3f\nfsync_ms %.3f\n", (t1 - t0) / 1e3, (now_us() - t1) / 1e3);
	close(fd);
	return 0;
}

static volatile sig_atomic_t stop;

static void on_usr1(int sig)
{
	(void)sig;
	stop = 1;
}

/* Read 1 MiB at m, count blocks without pattern gen; false on error. */
static bool check_mib(int fd, char *buf, long m, uint64_t gen, long *bad)
{
	ssize_t n = pread(fd, buf, MIB, (off_t)m * MIB);

	if (n != MIB)
		return false;
	for (size_t b = 0; b < MIB; b += KIB) {
		uint64_t tag, want = gen << 32 | (((uint64_t)m * MIB + b) / KIB);

		memcpy(&tag, buf + b, sizeof(tag));
		*bad += tag != want;
	}
	return true;
}

static int hold(const char *file, long mib, uint64_t gen, long slow_ms,
		const char *ready)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	char *buf = xmalloc(MIB);
	long bad = 0, errors = 0, read_mib = 0, pos = 0;
	int fd, rfd;

	sigaction(SIGUSR1, &sa, NULL);
	if ((fd = open(file, O_RDONLY)) < 0)
		die("open", file);
	if ((rfd = open(ready, O_WRONLY | O_CREAT, 0644)) < 0)
		die("create", ready);
	close(rfd);
	while (!stop) {
		if (!slow_ms) {
			pause();
			continue;
		}
		errors += !check_mib(fd, buf, pos, gen, &bad);
		read_mib++;
		pos = (pos + 1) % mib;
		usleep((useconds_t)slow_ms * 1000);
	}
	for (long m = 0; m < mib; m++, read_mib++)
		errors += !check_mib(fd, buf, m, gen, &bad);
	close(fd);
	printf("hold_mib %ld\nhold_bad_blocks %ld\nhold_errors %ld\n", read_mib, bad, errors);
	return 0;
}

static int openclose(const char *path, double secs, long maxn, long nfiles)
{
	double *v = malloc(sizeof(double) * (size_t)maxn), start, total = 0;
	char name[4096];
	long n = 0;

	if (!v)
		die("malloc", "");
	for (long k = -3; k < maxn; k++) {
		double t0;
		int fd;

		if (nfiles > 0)
			snprintf(name, sizeof(name), "%s/f%ld", path, (k + 3) % nfiles);
		else
			snprintf(name, sizeof(name), "%s", path);
		t0 = now_us();
		if ((fd = open(name, O_RDONLY)) < 0)
			die("open", name);
		close(fd);
		if (k < 0)
			continue;
		if (k == 0)
			start = t0;
		v[n++] = now_us() - t0;
		total = now_us() - start;
		if (total >= secs * 1e6)
			break;
	}
	printf("open_us %.3f\n", total / n);
	printf("open_med_us %.3f\nopen_n %ld\n", median(v, (int)n), n);
	free(v);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "prep") && argc == 4) {
		char path[4096];

		if (mkdir(argv[2], 0755))
			die("mkdir", argv[2]);
		snprintf(path, sizeof(path), "%s/data", argv[2]);
		fill(path, DATA_MIB, 1);
		snprintf(path, sizeof(path), "%s/o", argv[2]);
		mkfiles(path, atol(argv[3]), 100);
		return 0;
	}
	if (!strcmp(cmd, "mkfiles") && argc == 4) {
		mkfiles(argv[2], atol(argv[3]), KIB);
		return 0;
	}
	if (!strcmp(cmd, "ops") && (argc == 3 || argc == 4))
		return ops(argv[2], argc == 4 ? atof(argv[3]) : 1.0);
	if (!strcmp(cmd, "fill") && argc == 5)
		return fill(argv[2], atol(argv[3]), strtoull(argv[4], NULL, 10));
	if (!strcmp(cmd, "frag") && argc == 4)
		return frag(argv[2], atol(argv[3]));
	if (!strcmp(cmd, "rewrite") && argc == 5)
		return rewrite(argv[2], atol(argv[3]), strtoull(argv[4], NULL, 10));
	if (!strcmp(cmd, "hold") && argc == 7)
		return hold(argv[2], atol(argv[3]), strtoull(argv[4], NULL, 10),
			    atol(argv[5]), argv[6]);
	if (!strcmp(cmd, "openclose") && (argc == 5 || argc == 6))
		return openclose(argv[2], atof(argv[3]), atol(argv[4]),
				 argc == 6 ? atol(argv[5]) : 0);
	fprintf(stderr, "usage: see the comment at the top of bench/oob_cost.c\n");
	return 2;
}
