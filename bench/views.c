/*
 * Helper of bench/views.sh: what tree views (SFS_IOC_VIEW_CREATE) cost the
 * changes made through MNT, what taking one costs, and what the first
 * change of a big directory after a view costs. A benchmark, not a test:
 * it never judges a number. Timing subcommands print lines "<id> <value>"
 * (microseconds unless the id says otherwise).
 *
 *   views mkfiles DIR N SIZE       mkdir DIR, then DIR/f0..f(N-1) of SIZE
 *                                  bytes each
 *   views tree DIR N PER           mkdir DIR, then N empty files spread over
 *                                  subdirectories of PER files: DIR/d0/f0..
 *   views fill FILE MIB            FILE of MIB MiB of data
 *   views take MNT COUNT           take COUNT views of MNT (bench-0..)
 *   views changes DIR PID          the timed changes below on files that
 *                                  mkfiles/fill made in DIR: DIR/w4k and
 *                                  DIR/w1m (64 MiB each), DIR/t/f* (first
 *                                  touch), DIR/r/f* (rename); PID: the
 *                                  daemon's (its CPU time per op is printed
 *                                  as "<id>.dcpu"), 0 for none. Ops a-d run
 *                                  in BATCHES batches; the value printed is
 *                                  the best batch's us/op by the clock
 *                                  (".mean": all batches' mean):
 *     pwrite4k   pwrite 4 KiB in place to DIR/w4k, offsets cycling over
 *                the whole file, after one untimed pass (the first write
 *                captures the file, the pass preserves every range once)
 *     touch      open(O_RDWR) + pwrite 4 KiB + close of each DIR/t/f*:
 *                each file's first change since the views
 *     create     open(O_CREAT|O_EXCL|O_WRONLY) + write 100 B + close of new
 *                files in the new directory DIR/c (made untimed first)
 *     rename     rename(DIR/r/fI, DIR/r/gI), after one untimed rename (the
 *                directory's capture); each file is captured at its rename
 *     pwrite1m   pwrite 1 MiB over DIR/w1m in place, one pass (64 ops): every
 *                range is preserved once for the views; mean us/op
 *     pwrite1m2  the same pass again: nothing left to preserve
 *   views viewtime MNT REPS        REPS times: take a view, then delete it;
 *                                  prints the median, min and max of the
 *                                  take ioctl ("take_us", "take_min_us",
 *                                  "take_max_us"), its 90th percentile,
 *                                  how many took over 1 ms, and the
 *                                  delete's median
 *   views firstchange MNT SUB REPS REPS times: take a view, create+close a
 *                                  new file in MNT/SUB (the directory's
 *                                  first change since the view: it captures
 *                                  the entry list), another one (second
 *                                  change), delete the view; medians
 *                                  "first_us", "second_us", "delete_us".
 *                                  The files are unlinked at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sfs/view_ioctl.h"

#define KIB 4096
#define MIB (1 << 20)
#define BATCHES 10

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "views: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p;

	if (posix_memalign(&p, KIB, n))
		die("malloc", "");
	return p;
}

static void write_all(int fd, const char *buf, size_t len, off_t off,
		      const char *path)
{
	if (pwrite(fd, buf, len, off) != (ssize_t)len)
		die("pwrite", path);
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

/* ------------------------------------------------------------ setup -- */

static int mkfiles(const char *dir, long n, size_t size)
{
	char path[4096], *buf = xmalloc(size ? size : 1);

	memset(buf, 'x', size ? size : 1);
	if (mkdir(dir, 0755))
		die("mkdir", dir);
	for (long i = 0; i < n; i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/f%ld", dir, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			die("create", path);
		if (size)
			write_all(fd, buf, size, 0, path);
		close(fd);
	}
	free(buf);
	return 0;
}

static int tree(const char *dir, long n, long per)
{
	char path[4096];

	if (mkdir(dir, 0755))
		die("mkdir", dir);
	for (long i = 0; i < n; i++) {
		int fd;

		if (i % per == 0) {
			snprintf(path, sizeof(path), "%s/d%ld", dir, i / per);
			if (mkdir(path, 0755))
				die("mkdir", path);
		}
		snprintf(path, sizeof(path), "%s/d%ld/f%ld", dir, i / per, i % per);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			die("create", path);
		close(fd);
	}
	return 0;
}

static int fill(const char *file, long mib)
{
	char *buf = xmalloc(MIB);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		die("create", file);
	memset(buf, 'f', MIB);
	for (long m = 0; m < mib; m++)
		write_all(fd, buf, MIB, (off_t)m * MIB, file);
	close(fd);
	free(buf);
	return 0;
}

/* ------------------------------------------------------------ views -- */

static int root_fd(const char *mnt)
{
	int fd = open(mnt, O_RDONLY | O_DIRECTORY);

	if (fd < 0)
		die("open", mnt);
	return fd;
}

/* The ioctl's time in us, or -1 (said on stderr). */
static double view_ioctl(int fd, unsigned long cmd, const char *name)
{
	struct sfs_ioc_view v;
	double t0;

	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "%s", name);
	t0 = now_us();
	if (ioctl(fd, cmd, &v)) {
		fprintf(stderr, "views: %s view %s: %s\n",
			cmd == SFS_IOC_VIEW_CREATE ? "create" : "delete", name,
			strerror(errno));
		return -1;
	}
	return now_us() - t0;
}

static int take(const char *mnt, long count)
{
	int fd = root_fd(mnt);
	char name[64];

	for (long i = 0; i < count; i++) {
		snprintf(name, sizeof(name), "bench-%ld", i);
		if (view_ioctl(fd, SFS_IOC_VIEW_CREATE, name) < 0)
			return 1;
	}
	close(fd);
	return 0;
}

static int viewtime(const char *mnt, int reps)
{
	double *t = calloc((size_t)reps, sizeof(double));
	double *d = calloc((size_t)reps, sizeof(double));
	int fd = root_fd(mnt), n = 0, slow = 0;
	char name[64];

	if (!t || !d)
		die("malloc", "");
	for (int i = 0; i < reps; i++) {
		snprintf(name, sizeof(name), "time-%d", i);
		t[n] = view_ioctl(fd, SFS_IOC_VIEW_CREATE, name);
		if (t[n] < 0)
			break;
		d[n] = view_ioctl(fd, SFS_IOC_VIEW_DELETE, name);
		if (d[n++] < 0)
			break;
	}
	close(fd);
	if (!n)
		return 1;
	printf("take_us %.3f\n", median(t, n));
	/* median() sorted t */
	printf("take_min_us %.3f\ntake_max_us %.3f\n", t[0], t[n - 1]);
	printf("take_p90_us %.3f\n", t[n * 9 / 10]);
	for (int i = 0; i < n; i++)
		slow += t[i] > 1000;
	printf("take_over_1ms %d\n", slow);
	printf("delete_us %.3f\n", median(d, n));
	return 0;
}

/* create + write nothing + close of PATH: us */
static double create_one(const char *path)
{
	double t0 = now_us();
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);

	if (fd < 0)
		die("create", path);
	close(fd);
	return now_us() - t0;
}

static int firstchange(const char *mnt, const char *sub, int reps)
{
	double *f = calloc((size_t)reps, sizeof(double));
	double *s = calloc((size_t)reps, sizeof(double));
	double *d = calloc((size_t)reps, sizeof(double));
	int fd = root_fd(mnt), n = 0;
	char path[4096], name[64];

	if (!f || !s || !d)
		die("malloc", "");
	for (int i = 0; i < reps; i++) {
		snprintf(name, sizeof(name), "first-%d", i);
		if (view_ioctl(fd, SFS_IOC_VIEW_CREATE, name) < 0)
			break;
		snprintf(path, sizeof(path), "%s/%s/new-a%d", mnt, sub, i);
		f[n] = create_one(path);
		snprintf(path, sizeof(path), "%s/%s/new-b%d", mnt, sub, i);
		s[n] = create_one(path);
		d[n] = view_ioctl(fd, SFS_IOC_VIEW_DELETE, name);
		if (d[n++] < 0)
			break;
	}
	close(fd);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s/new-a%d", mnt, sub, i);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s/new-b%d", mnt, sub, i);
		unlink(path);
	}
	if (!n)
		return 1;
	printf("first_us %.3f\nsecond_us %.3f\ndelete_us %.3f\n", median(f, n),
	       median(s, n), median(d, n));
	return 0;
}

/* ---------------------------------------------------------- changes -- */

/* The daemon's CPU time (user + system, all its threads, also those gone)
 * in us, from /proc/PID/stat; 0 without a daemon. Clock-tick resolution. */
static double daemon_cpu_us(int pid)
{
	char path[64], buf[4096], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	if (!pid)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (!(f = fopen(path, "r")))
		die("open", path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after "(comm)": state is field 3, utime 14, stime 15 */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &st) != 2)
		die("parse", path);
	return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

struct ctx {
	const char *dir;
	int fd;			/* the file of pwrite4k / pwrite1m */
	long blocks;		/* its size in 4 KiB blocks */
	char *buf;		/* 1 MiB */
	long i;			/* running op counter */
};

typedef void op_fn(struct ctx *c, long n);

static void op_pwrite4k(struct ctx *c, long n)
{
	for (long k = 0; k < n; k++, c->i++)
		write_all(c->fd, c->buf, KIB, (off_t)(c->i % c->blocks) * KIB, "w4k");
}

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

static void op_rename(struct ctx *c, long n)
{
	char from[4096], to[4096];

	for (long k = 0; k < n; k++, c->i++) {
		snprintf(from, sizeof(from), "%s/r/f%ld", c->dir, c->i);
		snprintf(to, sizeof(to), "%s/r/g%ld", c->dir, c->i);
		if (rename(from, to))
			die("rename", from);
	}
}

static void op_pwrite1m(struct ctx *c, long n)
{
	for (long k = 0; k < n; k++, c->i++)
		write_all(c->fd, c->buf, MIB, (off_t)(c->i % (c->blocks / 256)) * MIB, "w1m");
}

/* `warm` untimed ops from c->i, then BATCHES batches of n: prints the best
 * batch's us/op and the daemon's CPU us/op over all batches. */
static void batches(const char *id, struct ctx *c, op_fn *fn, long warm,
		    long n, int pid)
{
	double best = 1e300, d0, t00;

	fn(c, warm);
	d0 = daemon_cpu_us(pid);
	t00 = now_us();
	for (int b = 0; b < BATCHES; b++) {
		double t0 = now_us(), t;

		fn(c, n);
		t = (now_us() - t0) / n;
		best = t < best ? t : best;
	}
	printf("%s %.3f\n%s.mean %.3f\n", id, best, id,
	       (now_us() - t00) / (BATCHES * n));
	if (pid)
		printf("%s.dcpu %.3f\n", id, (daemon_cpu_us(pid) - d0) / (BATCHES * n));
}

/* One pass of n ops, timed whole: mean us/op. */
static void pass(const char *id, struct ctx *c, op_fn *fn, long n, int pid)
{
	double t0 = now_us(), d0 = daemon_cpu_us(pid);

	c->i = 0;
	fn(c, n);
	printf("%s %.3f\n", id, (now_us() - t0) / n);
	if (pid)
		printf("%s.dcpu %.3f\n", id, (daemon_cpu_us(pid) - d0) / n);
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

static int open_data(struct ctx *c, const char *name)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	if ((c->fd = open(path, O_RDWR)) < 0 || fstat(c->fd, &st))
		die("open", path);
	c->blocks = st.st_size / KIB;
	if (c->blocks < 256)
		die("too small:", path);
	return 0;
}

static int changes(const char *dir, int pid)
{
	struct ctx c = { .dir = dir };
	char path[4096];
	long ntouch = count_files(dir, "t"), nren = count_files(dir, "r") - 1;

	c.buf = xmalloc(MIB);
	memset(c.buf, 'w', MIB);
	if (ntouch < BATCHES || nren < BATCHES)
		die("too few files in", dir);
	/* a: steady state; the warm-up pass captures and preserves. */
	open_data(&c, "w4k");
	c.i = 0;
	batches("pwrite4k", &c, op_pwrite4k, c.blocks,
		c.blocks < 10000 ? c.blocks / BATCHES : 1000, pid);
	close(c.fd);
	/* b: every file's first change */
	c.i = 0;
	batches("touch", &c, op_touch, 0, ntouch / BATCHES, pid);
	/* c: new files in a new directory (its capture: at the first) */
	snprintf(path, sizeof(path), "%s/c", dir);
	if (mkdir(path, 0755))
		die("mkdir", path);
	c.i = 0;
	batches("create", &c, op_create, 0, ntouch / BATCHES, pid);
	/* d: f0 first, untimed: the directory's capture */
	c.i = 0;
	batches("rename", &c, op_rename, 1, nren / BATCHES, pid);
	/* e: 1 MiB rewrite, twice */
	open_data(&c, "w1m");
	pass("pwrite1m", &c, op_pwrite1m, c.blocks / 256, pid);
	pass("pwrite1m2", &c, op_pwrite1m, c.blocks / 256, pid);
	close(c.fd);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "mkfiles") && argc == 5)
		return mkfiles(argv[2], atol(argv[3]), (size_t)atol(argv[4]));
	if (!strcmp(cmd, "tree") && argc == 5)
		return tree(argv[2], atol(argv[3]), atol(argv[4]));
	if (!strcmp(cmd, "fill") && argc == 4)
		return fill(argv[2], atol(argv[3]));
	if (!strcmp(cmd, "take") && argc == 4)
		return take(argv[2], atol(argv[3]));
	if (!strcmp(cmd, "changes") && argc == 4)
		return changes(argv[2], atoi(argv[3]));
	if (!strcmp(cmd, "viewtime") && argc == 4)
		return viewtime(argv[2], atoi(argv[3]));
	if (!strcmp(cmd, "firstchange") && argc == 5)
		return firstchange(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: see the comment at the top of bench/views.c\n");
	return 2;
}
