/*
 * stablefs-fsx: random file operations, every result checked against an
 * in-memory model of each file's bytes.
 *
 *   fsx [-S seed] [-N ops] [-l maxlen] [-o maxoplen] [-f files]
 *       [-P processes] [-Z] [-I] [-p N] [-D N] [-x op,...] [-q] [-v] DIR
 *
 * Every operation is applied to a real file in DIR (a stablefs mount or a
 * raw directory: fsx mounts nothing) and to a model of that file; every byte
 * the filesystem hands back, and every size, is compared with the model.
 * What makes this fsx specific to stablefs are two *delayed* checks:
 *
 *  - G1 (always on): splice(2), sendfile(2) and tee(2) fill pipes with
 *    references to page-cache pages. The expected bytes are copied from the
 *    model at splice time and the pipe is drained only some operations
 *    later, after the file may have been overwritten, punched, truncated,
 *    collapsed, copied into, renamed over... On raw ext4 that changes the
 *    bytes in the pipe (K1, doc/kernel-facts.md); through stablefs it must not.
 *  - G2 (-Z): an O_RDONLY open is a snapshot; it is re-read (pread, splice,
 *    mmap, fstat) some operations later and must equal the model at open.
 *
 * Replay: the operation sequence depends only on the seed, the options and
 * what the filesystem answers, so the same command line repeats a failure;
 * -N stops right at the failing op and -v prints every op. On the first
 * mismatch fsx prints the seed, op number, op, expected vs got at the first
 * differing offset, a replay command and the last ops of its log, and leaves
 * its files in DIR. With -P, process i works on its own files with seed+i.
 *
 * Exit status: 0 every check passed, 1 a mismatch (bytes, length or size),
 * 2 usage, 3 a system call failed unexpectedly.
 *
 * Through FUSE on this kernel COLLAPSE_RANGE and INSERT_RANGE fail with
 * EOPNOTSUPP before reaching the daemon: fsx notes it once and stops issuing
 * them (on ext4 it issues valid, block-aligned ones). Shared writable
 * mappings are refused through stablefs by design, so mapped reads use
 * MAP_PRIVATE, or MAP_SHARED of a read-only handle.
 *
 * CI: test/mount/fsx_run.c (raw ext4 must show a mismatch, stablefs none).
 * The 1,000,000-op soak: FSX_SOAK_OPS=1000000 build/test/fsx_run, or by hand
 *   stablefs SRC MNT && fsx -S $RANDOM -N 1000000 -P 2 -q MNT;
 *   fusermount3 -u MNT
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB 1024L
#define MiB (1024L * KiB)
#define PAGE 4096L

#define MAX_PIPES 16		/* outstanding delayed pipes per process */
#define MAX_SNAPS 8		/* outstanding snapshot opens per process (-Z) */
#define PIPE_CAP MiB		/* F_SETPIPE_SZ asked for every pipe */
#define LOG_SIZE 64		/* op log ring */
#define LOG_TAIL 20		/* printed on failure */
#define LOG_TEXT 200

#define EXIT_MISMATCH 1
#define EXIT_USAGE 2
#define EXIT_ERROR 3

/* ------------------------------------------------------------------ */
/* State                                                              */
/* ------------------------------------------------------------------ */

struct options {
	uint64_t seed;
	long nops;
	long maxlen;		/* largest file size */
	long maxoplen;		/* largest single read/write/splice */
	int nfiles;
	int nprocs;
	int pipe_boost;		/* -p: weight multiplier of pipe-filling ops */
	int drain_one_in;	/* -D: drain a random pipe with chance 1/N per op */
	bool snapshots;		/* -Z */
	bool immediate;		/* -I: read pipes at fill time (model control) */
	bool quiet, verbose;
	const char *disabled;	/* -x list, as given */
	const char *dir;
};

struct file {
	char path[PATH_MAX];
	char name[64];
	int fd;			/* O_RDWR, the "writer" */
	int afd;		/* O_WRONLY|O_APPEND, opened on first use */
	unsigned char *data;	/* the model: maxlen bytes, zero past size */
	long size;
};

/* A pipe filled at op `op`, drained later: must still hold `expect`. */
struct delayed_pipe {
	int rfd;		/* read end; the write end is already closed */
	unsigned char *expect;	/* the model's bytes at fill time */
	unsigned char *early;	/* -I: what the pipe held right at fill time */
	long early_len;
	long len, off, op;
	const char *how;
	int file;
	char log[LOG_TEXT];	/* the filling op's log line */
};

/* An O_RDONLY open at op `op` (-Z): must read as `expect` forever. */
struct snapshot {
	int fd;
	unsigned char *expect;
	long size, op;
	int file;
};

struct logent {
	long op;
	char text[LOG_TEXT];
};

struct fsx {
	struct options o;
	int proc;
	uint64_t seed;		/* this process's seed */
	uint64_t rng;
	long op;		/* current op number, from 1 */
	long blk;		/* collapse/insert granularity */
	long splice_max;	/* what a pipe surely holds without blocking */
	struct file *files;
	struct delayed_pipe pipes[MAX_PIPES];
	int npipes;
	struct snapshot snaps[MAX_SNAPS];
	int nsnaps;
	long pipe_checks, snap_checks, ops_done;
	bool no_collapse_insert;	/* EOPNOTSUPP seen (FUSE) */
	unsigned char *rbuf, *wbuf;	/* scratch, maxlen + 2 pages */
	struct logent log[LOG_SIZE];
	long nlog;
	long *counts;		/* per op table entry */
};

static const struct options default_options = {
	.seed = 1,
	.nops = 10000,
	.maxlen = 256 * KiB,
	.maxoplen = 0,		/* 0: maxlen / 4 */
	.nfiles = 4,
	.nprocs = 1,
	.pipe_boost = 1,
	.drain_one_in = 4,
};

/* ------------------------------------------------------------------ */
/* Randomness                                                         */
/* ------------------------------------------------------------------ */

/* splitmix64: tiny, any seed is fine, and it is the whole replay state. */
static uint64_t rnd(struct fsx *s)
{
	uint64_t z = (s->rng += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Uniform-ish in [0, n). */
static long below(struct fsx *s, long n)
{
	return n > 0 ? (long)(rnd(s) % (uint64_t)n) : 0;
}

static bool one_in(struct fsx *s, long n)
{
	return below(s, n) == 0;
}

static long min_l(long a, long b)
{
	return a < b ? a : b;
}

static long max_l(long a, long b)
{
	return a > b ? a : b;
}

/*
 * An offset in [0, limit]: page-aligned 3/8 of the time and a page boundary
 * +-1 another 1/8, because alignment decides whether the kernel can drop a
 * whole folio or must zero part of it in place (K1/K4, doc/kernel-facts.md).
 */
static long rnd_off(struct fsx *s, long limit)
{
	long off = below(s, limit + 1);

	switch (below(s, 8)) {
	case 0:
	case 1:
	case 2:
		off &= ~(PAGE - 1);
		break;
	case 3:
		off = (off & ~(PAGE - 1)) + (one_in(s, 2) ? 1 : -1);
		break;
	}
	return off < 0 ? 0 : off > limit ? limit : off;
}

/* A length in [1, max] (max >= 1): whole pages, a few bytes, or anything. */
static long rnd_len(struct fsx *s, long max)
{
	long len;

	switch (below(s, 8)) {
	case 0:
	case 1:
		len = (1 + below(s, max / PAGE + 1)) * PAGE;
		break;
	case 2:
		len = 1 + below(s, 16);
		break;
	default:
		len = 1 + below(s, max);
	}
	return len > max ? max : len;
}

/*
 * The byte op number `op` writes at file position pos: differs from op to
 * op and along the file, so a stale, lost or misplaced byte shows.
 */
static unsigned char pattern(long op, long pos)
{
	uint32_t h = (uint32_t)op * 2654435761u;

	return (unsigned char)((h >> 24) + (pos % 251) + (pos >> 9));
}

static void fill_pattern(unsigned char *buf, long op, long pos, long len)
{
	for (long i = 0; i < len; i++)
		buf[i] = pattern(op, pos + i);
}

/* ------------------------------------------------------------------ */
/* Log and failure reports                                            */
/* ------------------------------------------------------------------ */

static void logop(struct fsx *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One line per op (and per drain) into the ring; -v prints it too. */
static void logop(struct fsx *s, const char *fmt, ...)
{
	struct logent *e = &s->log[s->nlog++ % LOG_SIZE];
	va_list ap;

	e->op = s->op;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	if (s->o.verbose)
		printf("[p%d] #%ld %s\n", s->proc, e->op, e->text);
}

static const char *last_log(const struct fsx *s)
{
	return s->nlog ? s->log[(s->nlog - 1) % LOG_SIZE].text : "";
}

static void print_replay(const struct fsx *s, FILE *m)
{
	fprintf(m, "fsx: replay: fsx -S %" PRIu64 " -N %ld -l %ld -o %ld -f %d "
		"-p %d -D %d%s%s%s%s %s\n", s->seed, s->op, s->o.maxlen,
		s->o.maxoplen, s->o.nfiles, s->o.pipe_boost, s->o.drain_one_in,
		s->o.snapshots ? " -Z" : "", s->o.immediate ? " -I" : "",
		s->o.disabled ? " -x " : "", s->o.disabled ? s->o.disabled : "",
		s->o.dir);
}

static void print_log_tail(const struct fsx *s, FILE *m)
{
	long first = s->nlog > LOG_TAIL ? s->nlog - LOG_TAIL : 0;

	fprintf(m, "fsx: last %ld log entries:\n", s->nlog - first);
	for (long i = first; i < s->nlog; i++)
		fprintf(m, "  #%-8ld %s\n", s->log[i % LOG_SIZE].op,
			s->log[i % LOG_SIZE].text);
}

static void fail(struct fsx *s, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

/*
 * The whole report goes out in one write(2), so reports of concurrent
 * processes do not interleave line by line.
 */
static void fail(struct fsx *s, int status, const char *fmt, ...)
{
	char *text = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&text, &n);
	va_list ap;

	if (!m)
		exit(status);
	fprintf(m, "fsx: %s (seed %" PRIu64 ", process %d, op #%ld of %ld)\n",
		status == EXIT_MISMATCH ? "MISMATCH" : "ERROR", s->seed, s->proc,
		s->op, s->o.nops);
	va_start(ap, fmt);
	vfprintf(m, fmt, ap);
	va_end(ap);
	fputc('\n', m);
	print_replay(s, m);
	print_log_tail(s, m);
	fprintf(m, "fsx: files left in %s for inspection\n", s->o.dir);
	fclose(m);
	fflush(stdout);
	if (write(2, text, n) < 0)
		exit(status);
	free(text);
	exit(status);
}

/* A system call failed: report it with errno, as saved right away. */
#define die_errno(s, ...)						\
	do {								\
		int saved_errno_ = errno;				\
		fail(s, EXIT_ERROR, "%s: %s", fmt_msg(__VA_ARGS__),	\
		     strerror(saved_errno_));				\
	} while (0)

static const char *fmt_msg(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static const char *fmt_msg(const char *fmt, ...)
{
	static char msg[LOG_TEXT + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return msg;
}

static void hexdump(FILE *m, const char *label, const unsigned char *p,
		    long from, long to)
{
	fprintf(m, "  %s:", label);
	for (long i = from; i < to; i++)
		fprintf(m, " %02x", p[i]);
	fputc('\n', m);
}

/*
 * Compare what the filesystem returned with the model; on a difference,
 * name the first differing file offset and how much differs, then fail.
 */
static void check_bytes(struct fsx *s, const char *what, const struct file *f,
			long fileoff, const unsigned char *expect,
			const unsigned char *got, long len)
{
	long first = -1, last = -1, differ = 0;
	char *detail = NULL;
	size_t n = 0;
	FILE *m;

	if (len <= 0 || memcmp(expect, got, (size_t)len) == 0)
		return;
	for (long i = 0; i < len; i++) {
		if (expect[i] != got[i]) {
			differ++;
			last = i;
			if (first < 0)
				first = i;
		}
	}
	m = open_memstream(&detail, &n);
	if (!m)
		fail(s, EXIT_MISMATCH, "%s: data differs", what);
	fprintf(m, "%s: %s: %ld of %ld bytes differ; first at file offset "
		"%ld (0x%lx): expected 0x%02x got 0x%02x; last at %ld\n",
		what, f->name, differ, len, fileoff + first,
		(unsigned long)(fileoff + first), expect[first], got[first],
		fileoff + last);
	fprintf(m, "  bytes from file offset %ld:\n", fileoff + first);
	hexdump(m, "expected", expect, first, min_l(len, first + 16));
	hexdump(m, "got     ", got, first, min_l(len, first + 16));
	fclose(m);
	fail(s, EXIT_MISMATCH, "%s", detail);
}

static void check_len(struct fsx *s, const char *what, const struct file *f,
		      long off, long expect, long got)
{
	if (expect != got)
		fail(s, EXIT_MISMATCH, "%s: %s at offset %ld: expected %ld bytes, "
		     "got %ld", what, f->name, off, expect, got);
}

/* ------------------------------------------------------------------ */
/* I/O helpers: loop over short transfers, die on errors              */
/* ------------------------------------------------------------------ */

static int xopen(struct fsx *s, const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0644);

	if (fd < 0)
		die_errno(s, "open %s", path);
	return fd;
}

static void xclose(struct fsx *s, int fd)
{
	/* close() reports FUSE's FLUSH errors: they are failures too. */
	if (fd >= 0 && close(fd))
		die_errno(s, "close");
}

/* pwrite (off >= 0) or write (off < 0) all of buf. */
static void write_full(struct fsx *s, int fd, const unsigned char *buf,
		       long len, long off)
{
	long done = 0;

	while (done < len) {
		ssize_t n = off >= 0
			? pwrite(fd, buf + done, (size_t)(len - done), off + done)
			: write(fd, buf + done, (size_t)(len - done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die_errno(s, "write %ld bytes at %ld", len - done, off + done);
		done += n;
	}
}

/* pread (off >= 0) or read (off < 0) up to len bytes, stopping at EOF. */
static long read_upto(struct fsx *s, int fd, unsigned char *buf, long len,
		      long off)
{
	long done = 0;

	while (done < len) {
		ssize_t n = off >= 0
			? pread(fd, buf + done, (size_t)(len - done), off + done)
			: read(fd, buf + done, (size_t)(len - done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die_errno(s, "read %ld bytes at %ld", len - done, off + done);
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

static void xlseek(struct fsx *s, int fd, long off, int whence, long expect)
{
	off_t r = lseek(fd, off, whence);

	if (r < 0)
		die_errno(s, "lseek");
	if (r != expect)
		fail(s, EXIT_MISMATCH, "lseek(%ld, %s) returned %ld, expected %ld",
		     off, whence == SEEK_END ? "SEEK_END" : whence == SEEK_CUR
		     ? "SEEK_CUR" : "SEEK_SET", (long)r, expect);
}

/* What a read of len bytes at off must return, given the model's size. */
static long expect_len(const struct file *f, long off, long len)
{
	return max_l(0, min_l(len, f->size - off));
}

/* ------------------------------------------------------------------ */
/* The model                                                          */
/* ------------------------------------------------------------------ */

static void model_write(struct file *f, const unsigned char *buf, long off,
			long len)
{
	memcpy(f->data + off, buf, (size_t)len);
	f->size = max_l(f->size, off + len);
}

/* Bytes past size are kept zero, so growing never needs a memset. */
static void model_resize(struct file *f, long size)
{
	if (size < f->size)
		memset(f->data + size, 0, (size_t)(f->size - size));
	f->size = size;
}

static void model_zero(struct file *f, long off, long end)
{
	end = min_l(end, f->size);
	if (off < end)
		memset(f->data + off, 0, (size_t)(end - off));
}

/* The fd's idea of the size must be the model's after every op. */
static void check_size(struct fsx *s, const struct file *f, int fd)
{
	struct stat st;

	if (fstat(fd, &st))
		die_errno(s, "fstat %s", f->name);
	if (st.st_size != f->size)
		fail(s, EXIT_MISMATCH, "size: %s: fstat says %ld, model %ld",
		     f->name, (long)st.st_size, f->size);
}

/* Read the whole file through fd, compare, and expect EOF right after. */
static void verify_file(struct fsx *s, struct file *f, int fd, bool use_read,
			const char *what)
{
	long got;

	if (use_read)
		xlseek(s, fd, 0, SEEK_SET, 0);
	got = read_upto(s, fd, s->rbuf, f->size + 1, use_read ? -1 : 0);
	check_len(s, what, f, 0, f->size, got);
	check_bytes(s, what, f, 0, f->data, s->rbuf, f->size);
}

/* Where a fault while copying out of a mapping returns to, if anywhere. */
static sigjmp_buf *fault_jump;

static void on_fault(int sig)
{
	if (fault_jump)
		siglongjmp(*fault_jump, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * memcpy out of a mapping; a SIGBUS (the file is shorter than the size
 * fsx was told) becomes a reported mismatch instead of a silent death.
 */
static void copy_from_mapping(struct fsx *s, const char *what, void *dst,
			      const void *src, long len)
{
	sigjmp_buf jump;
	int sig = sigsetjmp(jump, 1);

	if (sig) {
		fault_jump = NULL;
		fail(s, EXIT_MISMATCH, "%s: %s reading %ld mapped bytes", what,
		     strsignal(sig), len);
	}
	fault_jump = &jump;
	memcpy(dst, src, (size_t)len);
	fault_jump = NULL;
}

static void install_fault_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/* ------------------------------------------------------------------ */
/* Delayed pipes (G1)                                                 */
/* ------------------------------------------------------------------ */

static void new_pipe(struct fsx *s, int p[2])
{
	if (pipe2(p, O_CLOEXEC))
		die_errno(s, "pipe2");
	/*
	 * Big enough that no splice below ever blocks on a full pipe: every
	 * fill is capped at splice_max, derived from this same size.
	 */
	if (fcntl(p[1], F_SETPIPE_SZ, (int)PIPE_CAP) < 0 &&
	    fcntl(p[1], F_GETPIPE_SZ) < s->splice_max + 2 * PAGE)
		die_errno(s, "F_SETPIPE_SZ");
}

/* Read everything left in the pipe (its write end is closed) and check. */
static void drain_pipe(struct fsx *s, int i)
{
	struct delayed_pipe *p = &s->pipes[i];
	struct file *f = &s->files[p->file];
	char what[LOG_TEXT + 64];
	long got;

	logop(s, "drain %s pipe of op #%ld (%s off %ld len %ld)", p->how, p->op,
	      f->name, p->off, p->len);
	if (p->early) {
		got = p->early_len;
		memcpy(s->rbuf, p->early, (size_t)got);
	} else {
		got = read_upto(s, p->rfd, s->rbuf, p->len + 1, -1);
		xclose(s, p->rfd);
	}
	snprintf(what, sizeof(what), "%s pipe (G1) filled at op #%ld [%s], "
		 "drained at op #%ld", p->early ? "at-once" : "delayed", p->op,
		 p->log, s->op);
	check_len(s, what, f, p->off, p->len, got);
	check_bytes(s, what, f, p->off, p->expect, s->rbuf, p->len);
	free(p->expect);
	free(p->early);
	s->pipes[i] = s->pipes[--s->npipes];
	s->pipe_checks++;
}

static void drain_random_pipe(struct fsx *s)
{
	if (s->npipes)
		drain_pipe(s, (int)below(s, s->npipes));
}

/* Keep a pipe (read end) whose bytes must stay the model's bytes of now. */
static void keep_pipe(struct fsx *s, int rfd, int file, long off, long len,
		      const char *how)
{
	struct delayed_pipe *p = &s->pipes[s->npipes++];
	struct file *f = &s->files[file];

	p->rfd = rfd;
	p->expect = malloc((size_t)max_l(len, 1));
	if (!p->expect)
		die_errno(s, "malloc");
	memcpy(p->expect, f->data + off, (size_t)len);
	p->len = len;
	p->off = off;
	p->op = s->op;
	p->how = how;
	p->file = file;
	snprintf(p->log, sizeof(p->log), "%s", last_log(s));
	p->early = NULL;
	/*
	 * -I, the control run: read the pipe right now, before anything can
	 * change the file, but check it at the same later point, so the op
	 * sequence (and every random draw) is the same as without -I.
	 */
	if (s->o.immediate) {
		p->early = malloc((size_t)len + 1);
		if (!p->early)
			die_errno(s, "malloc");
		p->early_len = read_upto(s, rfd, p->early, len + 1, -1);
		xclose(s, rfd);
		p->rfd = -1;
	}
}

/* Move up to len bytes of fd at off into the pipe, stopping at EOF. */
static long fill_from_file(struct fsx *s, int fd, long off, int wfd, long len,
			   bool use_sendfile)
{
	long done = 0;

	while (done < len) {
		loff_t lo = off + done;
		off_t so = off + done;
		ssize_t n = use_sendfile
			? sendfile(wfd, fd, &so, (size_t)(len - done))
			: splice(fd, &lo, wfd, NULL, (size_t)(len - done), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die_errno(s, "%s %ld bytes at %ld",
				  use_sendfile ? "sendfile" : "splice",
				  len - done, off + done);
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

enum fill_kind { FILL_SPLICE, FILL_SENDFILE, FILL_TEE };

/*
 * tee(2) the pipe's references into a second pipe, then splice those into
 * a third: both the original and the twice-moved copy are kept (S3).
 */
static void tee_and_keep(struct fsx *s, int p1, int file, long off, long len)
{
	int p2[2], p3[2];
	long moved = 0;
	ssize_t n;

	new_pipe(s, p2);
	new_pipe(s, p3);
	n = len ? tee(p1, p2[1], (size_t)len, 0) : 0;
	if (n != len)
		die_errno(s, "tee %ld bytes returned %ld", len, (long)n);
	xclose(s, p2[1]);
	while (moved < len) {
		n = splice(p2[0], NULL, p3[1], NULL, (size_t)(len - moved), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die_errno(s, "splice pipe to pipe");
		moved += n;
	}
	xclose(s, p2[0]);
	xclose(s, p3[1]);
	keep_pipe(s, p1, file, off, len, "tee-source");
	keep_pipe(s, p3[0], file, off, len, "tee+splice");
}

static int fill_pipe(struct fsx *s, int file, enum fill_kind kind)
{
	static const char *const names[] = { "splice", "sendfile", "tee" };
	struct file *f = &s->files[file];
	long off = rnd_off(s, f->size + PAGE);	/* sometimes past EOF */
	long len = rnd_len(s, s->splice_max);
	/* A reader's own handle, closed before the drain, or the writer's. */
	bool fresh = one_in(s, 3);
	int need = kind == FILL_TEE ? 2 : 1;
	int fd, p[2];
	long got;

	while (s->npipes + need > MAX_PIPES)
		drain_random_pipe(s);
	logop(s, "%s %s off %ld len %ld%s", names[kind], f->name, off, len,
	      fresh ? " (fresh O_RDONLY fd)" : "");
	fd = fresh ? xopen(s, f->path, O_RDONLY) : f->fd;
	new_pipe(s, p);
	got = fill_from_file(s, fd, off, p[1], len, kind == FILL_SENDFILE);
	if (fresh)
		xclose(s, fd);
	xclose(s, p[1]);
	check_len(s, names[kind], f, off, expect_len(f, off, len), got);
	if (kind == FILL_TEE)
		tee_and_keep(s, p[0], file, off, got);
	else
		keep_pipe(s, p[0], file, off, got, names[kind]);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Snapshots (G2, -Z)                                                 */
/* ------------------------------------------------------------------ */

static void drop_snapshot(struct fsx *s, int i)
{
	xclose(s, s->snaps[i].fd);
	free(s->snaps[i].expect);
	s->snaps[i] = s->snaps[--s->nsnaps];
}

/* Splice a whole snapshot through an immediate pipe, chunk by chunk. */
static void splice_whole(struct fsx *s, int fd, long size, unsigned char *out)
{
	long done = 0;

	while (done < size) {
		int p[2];
		long chunk = min_l(size - done, s->splice_max), got;

		new_pipe(s, p);
		got = fill_from_file(s, fd, done, p[1], chunk, false);
		xclose(s, p[1]);
		if (got != chunk || read_upto(s, p[0], out + done, chunk, -1) != got) {
			xclose(s, p[0]);
			break;
		}
		xclose(s, p[0]);
		done += got;
	}
	if (done != size)
		fail(s, EXIT_MISMATCH, "snapshot splice: %ld of %ld bytes", done, size);
}

/* Every read path of the snapshot must show the file as it was at open. */
static void check_snapshot(struct fsx *s, int i)
{
	struct snapshot *sn = &s->snaps[i];
	struct file *f = &s->files[sn->file];
	char what[96];
	struct stat st;
	long got;
	int how = (int)below(s, 3);

	logop(s, "snapshot check (opened at op #%ld, %s, size %ld) via %s",
	      sn->op, f->name, sn->size, how == 0 ? "pread" : how == 1 ?
	      "splice" : "mmap");
	snprintf(what, sizeof(what), "snapshot opened at op #%ld", sn->op);
	if (fstat(sn->fd, &st))
		die_errno(s, "fstat snapshot");
	if (st.st_size != sn->size)
		fail(s, EXIT_MISMATCH, "%s: %s: fstat size %ld, expected %ld",
		     what, f->name, (long)st.st_size, sn->size);
	if (how == 0) {
		got = read_upto(s, sn->fd, s->rbuf, sn->size + 1, 0);
		check_len(s, what, f, 0, sn->size, got);
	} else if (how == 1) {
		splice_whole(s, sn->fd, sn->size, s->rbuf);
	} else if (sn->size) {
		void *m = mmap(NULL, (size_t)sn->size, PROT_READ, MAP_PRIVATE,
			       sn->fd, 0);

		if (m == MAP_FAILED)
			die_errno(s, "mmap snapshot");
		copy_from_mapping(s, "snapshot mmap", s->rbuf, m, sn->size);
		munmap(m, (size_t)sn->size);
	}
	check_bytes(s, what, f, 0, sn->expect, s->rbuf, sn->size);
	s->snap_checks++;
	drop_snapshot(s, i);
}

static int op_snapshot(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	struct snapshot *sn;

	if (s->nsnaps == MAX_SNAPS)
		check_snapshot(s, (int)below(s, s->nsnaps));
	logop(s, "snapshot open %s (size %ld)", f->name, f->size);
	sn = &s->snaps[s->nsnaps++];
	sn->fd = xopen(s, f->path, O_RDONLY);
	sn->expect = malloc((size_t)max_l(f->size, 1));
	if (!sn->expect)
		die_errno(s, "malloc");
	memcpy(sn->expect, f->data, (size_t)f->size);
	sn->size = f->size;
	sn->op = s->op;
	sn->file = file;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Operations: each returns 0 when done, 1 when not applicable now    */
/* ------------------------------------------------------------------ */

static int op_read(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	long off = rnd_off(s, f->size + PAGE), len = rnd_len(s, s->o.maxoplen);
	long got;

	logop(s, "read %s off %ld len %ld", f->name, off, len);
	xlseek(s, f->fd, off, SEEK_SET, off);
	got = read_upto(s, f->fd, s->rbuf, len, -1);
	check_len(s, "read", f, off, expect_len(f, off, len), got);
	check_bytes(s, "read", f, off, f->data + off, s->rbuf, got);
	xlseek(s, f->fd, 0, SEEK_CUR, off + got);
	return 0;
}

static int op_pread(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	long off = rnd_off(s, f->size + PAGE), len = rnd_len(s, s->o.maxoplen);
	long got;

	logop(s, "pread %s off %ld len %ld", f->name, off, len);
	got = read_upto(s, f->fd, s->rbuf, len, off);
	check_len(s, "pread", f, off, expect_len(f, off, len), got);
	check_bytes(s, "pread", f, off, f->data + off, s->rbuf, got);
	return 0;
}

/*
 * Where a write starts: anywhere below maxlen half the time (holes), else
 * within the current data; its length keeps the file below maxlen.
 */
static void pick_write(struct fsx *s, const struct file *f, long *off,
		       long *len)
{
	long limit = one_in(s, 2) ? s->o.maxlen - 1 : min_l(f->size, s->o.maxlen - 1);

	*off = rnd_off(s, limit);
	*len = rnd_len(s, min_l(s->o.maxoplen, s->o.maxlen - *off));
}

static int op_write(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	bool at_end = one_in(s, 8) && f->size < s->o.maxlen;
	long off, len;

	pick_write(s, f, &off, &len);
	if (at_end) {	/* SEEK_END must find the true end (S5) */
		off = f->size;
		len = min_l(len, s->o.maxlen - off);
	}
	logop(s, "write %s off %ld len %ld%s", f->name, off, len,
	      at_end ? " (SEEK_END)" : "");
	fill_pattern(s->wbuf, s->op, off, len);
	if (at_end)
		xlseek(s, f->fd, 0, SEEK_END, off);
	else
		xlseek(s, f->fd, off, SEEK_SET, off);
	write_full(s, f->fd, s->wbuf, len, -1);
	model_write(f, s->wbuf, off, len);
	xlseek(s, f->fd, 0, SEEK_CUR, off + len);
	return 0;
}

static int op_pwrite(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	long off, len;

	pick_write(s, f, &off, &len);
	logop(s, "pwrite %s off %ld len %ld", f->name, off, len);
	fill_pattern(s->wbuf, s->op, off, len);
	write_full(s, f->fd, s->wbuf, len, off);
	model_write(f, s->wbuf, off, len);
	return 0;
}

static int op_writev(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	struct iovec iov[4];
	long off, len, at = 0;
	int n = 1 + (int)below(s, 4);
	ssize_t got;

	pick_write(s, f, &off, &len);
	fill_pattern(s->wbuf, s->op, off, len);
	/* Split at random points: segments may be empty or unaligned. */
	for (int i = 0; i < n; i++) {
		long seg = i == n - 1 ? len - at : below(s, len - at + 1);

		iov[i].iov_base = s->wbuf + at;
		iov[i].iov_len = (size_t)seg;
		at += seg;
	}
	logop(s, "pwritev %s off %ld len %ld in %d segments", f->name, off,
	      len, n);
	do
		got = pwritev(f->fd, iov, n, off);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		die_errno(s, "pwritev");
	if (got < len)		/* short vector write: finish it plainly */
		write_full(s, f->fd, s->wbuf + got, len - got, off + got);
	model_write(f, s->wbuf, off, len);
	return 0;
}

static int op_append(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	long len;

	if (f->size >= s->o.maxlen)
		return 1;
	len = rnd_len(s, min_l(s->o.maxoplen, s->o.maxlen - f->size));
	logop(s, "append %s len %ld (at %ld)", f->name, len, f->size);
	if (f->afd < 0)
		f->afd = xopen(s, f->path, O_WRONLY | O_APPEND);
	fill_pattern(s->wbuf, s->op, f->size, len);
	write_full(s, f->afd, s->wbuf, len, -1);
	model_write(f, s->wbuf, f->size, len);
	/* O_APPEND leaves the offset at the true end of the file. */
	xlseek(s, f->afd, 0, SEEK_CUR, f->size);
	return 0;
}

/*
 * Mapped reads: MAP_PRIVATE of the writer (shared writable mappings are
 * refused through stablefs by design), or a shared/private read-only
 * mapping of a fresh O_RDONLY handle. When the range reaches EOF the rest
 * of the last page must read as zeros.
 */
static int op_mapread(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	long off, len, pgoff, maplen, tail;
	int how, fd;
	unsigned char *m;

	if (f->size == 0)
		return 1;
	off = rnd_off(s, f->size - 1);
	len = rnd_len(s, min_l(s->o.maxoplen, f->size - off));
	how = (int)below(s, 3);
	pgoff = off & ~(PAGE - 1);
	maplen = ((off + len + PAGE - 1) & ~(PAGE - 1)) - pgoff;
	tail = off + len == f->size ? pgoff + maplen - f->size : 0;
	logop(s, "mapread %s off %ld len %ld via %s", f->name, off, len,
	      how == 0 ? "MAP_PRIVATE of the writer" : how == 1 ?
	      "MAP_SHARED of O_RDONLY" : "MAP_PRIVATE of O_RDONLY");
	fd = how == 0 ? f->fd : xopen(s, f->path, O_RDONLY);
	m = mmap(NULL, (size_t)maplen, PROT_READ,
		 how == 1 ? MAP_SHARED : MAP_PRIVATE, fd, pgoff);
	if (m == MAP_FAILED)
		die_errno(s, "mmap %s", f->name);
	if (how)
		xclose(s, fd);	/* the mapping keeps the file open */
	copy_from_mapping(s, "mapread", s->rbuf, m + (off - pgoff), len + tail);
	munmap(m, (size_t)maplen);
	check_bytes(s, "mapread", f, off, f->data + off, s->rbuf, len);
	memset(s->wbuf, 0, (size_t)tail);
	check_bytes(s, "mapread past EOF", f, f->size, s->wbuf, s->rbuf + len,
		    tail);
	return 0;
}

static int op_truncate(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	long size;
	bool by_path = one_in(s, 4);

	switch (below(s, 4)) {
	case 0:	/* shrink */
		size = below(s, f->size + 1);
		break;
	case 1:	/* grow */
		size = f->size + below(s, s->o.maxlen - f->size + 1);
		break;
	case 2:	/* page-aligned */
		size = below(s, s->o.maxlen + 1) & ~(PAGE - 1);
		break;
	default:
		size = below(s, s->o.maxlen + 1);
	}
	logop(s, "%struncate %s from %ld to %ld", by_path ? "" : "f", f->name,
	      f->size, size);
	if (by_path ? truncate(f->path, size) : ftruncate(f->fd, size))
		die_errno(s, "truncate %s to %ld", f->name, size);
	model_resize(f, size);
	return 0;
}

static void xfallocate(struct fsx *s, struct file *f, int mode, long off,
		       long len, const char *what)
{
	if (fallocate(f->fd, mode, off, len))
		die_errno(s, "fallocate %s %s off %ld len %ld", what, f->name,
			  off, len);
}

static int op_punch(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	long off = rnd_off(s, f->size), len = rnd_len(s, s->o.maxoplen);

	logop(s, "punch %s off %ld len %ld", f->name, off, len);
	xfallocate(s, f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len,
		   "punch");
	model_zero(f, off, off + len);
	return 0;
}

static int op_zero(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	bool keep = one_in(s, 2);
	long off = rnd_off(s, min_l(f->size, s->o.maxlen - 1));
	long len = rnd_len(s, min_l(s->o.maxoplen, s->o.maxlen - off));

	logop(s, "zero %s off %ld len %ld%s", f->name, off, len,
	      keep ? " KEEP_SIZE" : "");
	xfallocate(s, f, FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0),
		   off, len, "zero");
	model_zero(f, off, off + len);
	if (!keep)
		f->size = max_l(f->size, off + len);
	return 0;
}

/* Plain allocation: never changes data, grows the size unless KEEP_SIZE. */
static int op_falloc(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	bool keep = one_in(s, 2);
	long off = rnd_off(s, s->o.maxlen - 1);
	long len = rnd_len(s, min_l(s->o.maxoplen, s->o.maxlen - off));

	logop(s, "falloc %s off %ld len %ld%s", f->name, off, len,
	      keep ? " KEEP_SIZE" : "");
	xfallocate(s, f, keep ? FALLOC_FL_KEEP_SIZE : 0, off, len, "allocate");
	if (!keep)
		f->size = max_l(f->size, off + len);
	return 0;
}

/*
 * FUSE on this kernel refuses COLLAPSE/INSERT_RANGE itself (EOPNOTSUPP,
 * the daemon never sees them): say so once and stop issuing them.
 */
static bool range_op_refused(struct fsx *s, const char *what)
{
	if (errno != EOPNOTSUPP)
		return false;
	if (!s->o.quiet)
		printf("fsx: note: %s returns EOPNOTSUPP here (FUSE does not pass "
		       "it on): no more collapse/insert ops\n", what);
	s->no_collapse_insert = true;
	return true;
}

/*
 * Only valid ranges (ext4's rules): block-aligned offset and length, and
 * the collapsed range must end before EOF.
 */
static int op_collapse(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	long m = (f->size - 1) / s->blk;	/* whole blocks before the last byte */
	long nb, ob, off, len;

	if (s->no_collapse_insert || f->size < 1 || m < 1)
		return 1;
	nb = 1 + below(s, min_l(m, max_l(1, s->o.maxoplen / s->blk)));
	ob = below(s, m - nb + 1);
	off = ob * s->blk;
	len = nb * s->blk;
	logop(s, "collapse %s off %ld len %ld (size %ld)", f->name, off, len,
	      f->size);
	if (fallocate(f->fd, FALLOC_FL_COLLAPSE_RANGE, off, len)) {
		if (range_op_refused(s, "COLLAPSE_RANGE"))
			return 0;
		die_errno(s, "collapse %s off %ld len %ld", f->name, off, len);
	}
	memmove(f->data + off, f->data + off + len,
		(size_t)(f->size - off - len));
	model_resize(f, f->size - len);
	return 0;
}

/* Valid ranges only: block-aligned, starting before EOF, below maxlen. */
static int op_insert(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	long room = (s->o.maxlen - f->size) / s->blk;
	long nb, ob, off, len;

	if (s->no_collapse_insert || f->size < 1 || room < 1)
		return 1;
	nb = 1 + below(s, min_l(room, max_l(1, s->o.maxoplen / s->blk)));
	ob = below(s, (f->size - 1) / s->blk + 1);
	off = ob * s->blk;
	len = nb * s->blk;
	logop(s, "insert %s off %ld len %ld (size %ld)", f->name, off, len,
	      f->size);
	if (fallocate(f->fd, FALLOC_FL_INSERT_RANGE, off, len)) {
		if (range_op_refused(s, "INSERT_RANGE"))
			return 0;
		die_errno(s, "insert %s off %ld len %ld", f->name, off, len);
	}
	memmove(f->data + off + len, f->data + off, (size_t)(f->size - off));
	memset(f->data + off, 0, (size_t)len);
	f->size += len;
	return 0;
}

/*
 * copy_file_range asking for len bytes, then for the rest of the `want`
 * bytes the model expects. Not "until len": a copy that extends its own
 * file turns the source's past-EOF tail into a readable hole, so asking
 * again after the kernel clamped at EOF would copy zeros legitimately.
 */
static long copy_range(struct fsx *s, int in, long soff, int out, long doff,
		       long len, long want)
{
	loff_t si = soff, di = doff;
	long done = 0;

	while (done == 0 || done < want) {
		ssize_t n = copy_file_range(in, &si, out, &di, (size_t)(done ?
					    want - done : len), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die_errno(s, "copy_file_range %ld bytes %ld -> %ld",
				  len - done, soff + done, doff + done);
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

/* Copy from src (maybe through a fresh O_RDONLY handle) into dst. */
static void do_copy(struct fsx *s, struct file *src, long soff,
		    struct file *dst, long doff, long len)
{
	bool fresh = one_in(s, 3);
	int in;
	long want = expect_len(src, soff, len), got;

	logop(s, "copy_file_range %s off %ld -> %s off %ld len %ld%s",
	      src->name, soff, dst->name, doff, len,
	      fresh ? " (source: fresh O_RDONLY fd)" : "");
	in = fresh ? xopen(s, src->path, O_RDONLY) : src->fd;
	got = copy_range(s, in, soff, dst->fd, doff, len, want);
	if (fresh)
		xclose(s, in);
	check_len(s, "copy_file_range", src, soff, want, got);
	/* Source and destination never overlap, so copying after is exact. */
	memmove(dst->data + doff, src->data + soff, (size_t)got);
	if (got)	/* copying nothing does not extend the destination */
		dst->size = max_l(dst->size, doff + got);
}

/*
 * Within one file the kernel refuses overlapping ranges (EINVAL), so the
 * destination is picked below or above the source range.
 */
static int op_copy_within(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	long soff, len, lo_max, hi_min, hi_max, doff;

	if (f->size == 0)
		return 1;
	soff = rnd_off(s, f->size - 1);
	len = rnd_len(s, s->o.maxoplen);
	lo_max = soff - len;
	hi_min = soff + len;
	hi_max = min_l(s->o.maxlen - len, f->size + PAGE);
	if (lo_max < 0 && hi_max < hi_min)
		return 1;
	if (lo_max >= 0 && (hi_max < hi_min || one_in(s, 2)))
		doff = rnd_off(s, lo_max);
	else
		doff = hi_min + rnd_off(s, hi_max - hi_min);
	do_copy(s, f, soff, f, doff, len);
	return 0;
}

static int op_copy_between(struct fsx *s, int file)
{
	struct file *dst = &s->files[file], *src;
	long soff, len, doff;
	int other;

	if (s->o.nfiles < 2)
		return 1;
	other = (file + 1 + (int)below(s, s->o.nfiles - 1)) % s->o.nfiles;
	src = &s->files[other];
	soff = rnd_off(s, src->size);
	len = rnd_len(s, s->o.maxoplen);
	doff = rnd_off(s, min_l(dst->size + PAGE, s->o.maxlen - len));
	if (doff < 0 || doff + len > s->o.maxlen)
		return 1;
	do_copy(s, src, soff, dst, doff, len);
	return 0;
}

static int op_splice(struct fsx *s, int file)
{
	return fill_pipe(s, file, FILL_SPLICE);
}

static int op_sendfile(struct fsx *s, int file)
{
	return fill_pipe(s, file, FILL_SENDFILE);
}

static int op_tee(struct fsx *s, int file)
{
	return fill_pipe(s, file, FILL_TEE);
}

static void open_writer(struct fsx *s, struct file *f, int extra)
{
	f->fd = xopen(s, f->path, O_RDWR | extra);
	f->afd = -1;
}

static void close_writer(struct fsx *s, struct file *f)
{
	xclose(s, f->fd);
	xclose(s, f->afd);
	f->fd = f->afd = -1;
}

/* Check the whole file, close every handle, reopen (sometimes O_TRUNC). */
static int op_reopen(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	bool trunc = one_in(s, 8);

	logop(s, "close/reopen %s%s", f->name, trunc ? " O_TRUNC" : "");
	verify_file(s, f, f->fd, false, "verify before close");
	close_writer(s, f);
	open_writer(s, f, trunc ? O_TRUNC : 0);
	if (trunc)
		model_resize(f, 0);
	return 0;
}

static int op_fsync(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	bool data = one_in(s, 2);

	logop(s, "%s %s", data ? "fdatasync" : "fsync", f->name);
	if (data ? fdatasync(f->fd) : fsync(f->fd))
		die_errno(s, "fsync %s", f->name);
	return 0;
}

/* Whole-file check via pread on the writer or read() on a fresh reader. */
static int op_verify(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	bool fresh = one_in(s, 2);
	int fd;

	logop(s, "verify %s (size %ld)%s", f->name, f->size,
	      fresh ? " via fresh O_RDONLY fd" : "");
	fd = fresh ? xopen(s, f->path, O_RDONLY) : f->fd;
	verify_file(s, f, fd, fresh, "verify");
	if (fresh)
		xclose(s, fd);
	return 0;
}

/*
 * Replace the file under its name: rename a new file over it, or unlink
 * and recreate it. Pipes filled from the old file must keep its bytes (G1).
 */
static int op_replace(struct fsx *s, int file)
{
	struct file *f = &s->files[file];
	long size = below(s, s->o.maxlen / 2 + 1);
	bool by_rename = one_in(s, 2);
	char tmp[PATH_MAX + 8];
	int fd;

	logop(s, "%s %s with %ld new bytes", by_rename ? "rename over" :
	      "unlink and recreate", f->name, size);
	snprintf(tmp, sizeof(tmp), "%s.new", f->path);
	if (!by_rename && unlink(f->path))
		die_errno(s, "unlink %s", f->name);
	fd = xopen(s, by_rename ? tmp : f->path, O_WRONLY | O_CREAT | O_EXCL);
	fill_pattern(s->wbuf, s->op, 0, size);
	write_full(s, fd, s->wbuf, size, 0);
	xclose(s, fd);
	if (by_rename && rename(tmp, f->path))
		die_errno(s, "rename over %s", f->name);
	close_writer(s, f);
	open_writer(s, f, 0);
	model_resize(f, 0);
	model_write(f, s->wbuf, 0, size);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The op table                                                       */
/* ------------------------------------------------------------------ */

enum op_class { PLAIN, PIPE_FILL, SNAPSHOT };

struct op {
	const char *name;
	int weight;
	enum op_class cls;
	int (*fn)(struct fsx *s, int file);
};

static const struct op ops[] = {
	{ "read", 5, PLAIN, op_read },
	{ "pread", 8, PLAIN, op_pread },
	{ "write", 5, PLAIN, op_write },
	{ "pwrite", 10, PLAIN, op_pwrite },
	{ "writev", 5, PLAIN, op_writev },
	{ "append", 5, PLAIN, op_append },
	{ "mapread", 6, PLAIN, op_mapread },
	{ "truncate", 5, PLAIN, op_truncate },
	{ "punch", 5, PLAIN, op_punch },
	{ "zero", 4, PLAIN, op_zero },
	{ "falloc", 2, PLAIN, op_falloc },
	{ "collapse", 3, PLAIN, op_collapse },
	{ "insert", 3, PLAIN, op_insert },
	{ "copy", 3, PLAIN, op_copy_within },
	{ "copyx", 3, PLAIN, op_copy_between },
	{ "splice", 10, PIPE_FILL, op_splice },
	{ "sendfile", 5, PIPE_FILL, op_sendfile },
	{ "tee", 3, PIPE_FILL, op_tee },
	{ "snapshot", 5, SNAPSHOT, op_snapshot },
	{ "reopen", 2, PLAIN, op_reopen },
	{ "fsync", 2, PLAIN, op_fsync },
	{ "replace", 1, PLAIN, op_replace },
	{ "verify", 2, PLAIN, op_verify },
};

#define N_OPS ((int)(sizeof(ops) / sizeof(ops[0])))

static int weights[N_OPS];
static int total_weight;

/* Is name one of the comma-separated words of list? */
static bool listed(const char *list, const char *name)
{
	while (list && *list) {
		size_t n = strcspn(list, ",");

		if (strlen(name) == n && strncmp(list, name, n) == 0)
			return true;
		list += n + (list[n] ? 1 : 0);
	}
	return false;
}

/* Effective weights from the options; false if -x names an unknown op. */
static bool set_weights(const struct options *o)
{
	for (const char *p = o->disabled; p && *p;) {
		size_t n = strcspn(p, ",");
		char word[32];
		bool known = false;

		snprintf(word, sizeof(word), "%.*s", (int)n, p);
		for (int i = 0; i < N_OPS; i++)
			known |= strcmp(ops[i].name, word) == 0;
		if (!known) {
			fprintf(stderr, "fsx: -x: unknown op '%s'\n", word);
			return false;
		}
		p += n + (p[n] ? 1 : 0);
	}
	total_weight = 0;
	for (int i = 0; i < N_OPS; i++) {
		int w = ops[i].weight;

		if (ops[i].cls == PIPE_FILL)
			w *= o->pipe_boost;
		if (ops[i].cls == SNAPSHOT && !o->snapshots)
			w = 0;
		if (listed(o->disabled, ops[i].name))
			w = 0;
		weights[i] = w;
		total_weight += w;
	}
	return total_weight > 0;
}

static int pick_op(struct fsx *s)
{
	long r = below(s, total_weight);
	int i = 0;

	while (r >= weights[i])
		r -= weights[i++];
	return i;
}

/* One op on a random file; ops that do not apply now are re-drawn. */
static void one_op(struct fsx *s)
{
	int file = (int)below(s, s->o.nfiles);

	for (int tries = 0; tries < 1000; tries++) {
		int i = pick_op(s);

		if (ops[i].fn(s, file) == 0) {
			s->counts[i]++;
			check_size(s, &s->files[file], s->files[file].fd);
			return;
		}
	}
	fail(s, EXIT_ERROR, "no enabled op applies to %s (size %ld): check -x",
	     s->files[file].name, s->files[file].size);
}

/* Between ops: drain a pipe, re-read a snapshot, now and then. */
static void maybe_check_delayed(struct fsx *s)
{
	if (s->npipes && one_in(s, s->o.drain_one_in))
		drain_random_pipe(s);
	if (s->nsnaps && one_in(s, 6))
		check_snapshot(s, (int)below(s, s->nsnaps));
}

/* ------------------------------------------------------------------ */
/* One process                                                        */
/* ------------------------------------------------------------------ */

static long block_size(const char *dir)
{
	struct statvfs v;

	/* Collapse/insert need fs-block alignment; pages are always enough
	 * granularity for 1-4 KiB blocks. */
	if (statvfs(dir, &v) == 0 && (long)v.f_bsize > PAGE)
		return (long)v.f_bsize;
	return PAGE;
}

static void *xcalloc(struct fsx *s, size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		die_errno(s, "calloc");
	return p;
}

/* Create every file with some initial content (op 0's pattern). */
static void setup_files(struct fsx *s)
{
	s->files = xcalloc(s, (size_t)s->o.nfiles, sizeof(*s->files));
	for (int i = 0; i < s->o.nfiles; i++) {
		struct file *f = &s->files[i];
		long size = below(s, s->o.maxlen + 1);

		snprintf(f->name, sizeof(f->name), "fsx.p%d.f%d", s->proc, i);
		snprintf(f->path, sizeof(f->path), "%s/%s", s->o.dir, f->name);
		f->data = xcalloc(s, (size_t)s->o.maxlen, 1);
		f->fd = xopen(s, f->path, O_RDWR | O_CREAT | O_TRUNC);
		f->afd = -1;
		fill_pattern(s->wbuf, 0, 0, size);
		write_full(s, f->fd, s->wbuf, size, 0);
		model_write(f, s->wbuf, 0, size);
	}
}

/* At the end: every pipe drained, every snapshot re-read, files checked. */
static void finish(struct fsx *s)
{
	while (s->npipes)
		drain_pipe(s, s->npipes - 1);
	while (s->nsnaps)
		check_snapshot(s, s->nsnaps - 1);
	for (int i = 0; i < s->o.nfiles; i++) {
		struct file *f = &s->files[i];

		logop(s, "final verify %s (size %ld)", f->name, f->size);
		check_size(s, f, f->fd);
		verify_file(s, f, f->fd, false, "final verify");
		close_writer(s, f);
		if (unlink(f->path))
			die_errno(s, "unlink %s", f->name);
		free(f->data);
	}
}

static void print_counts(const struct fsx *s)
{
	printf("fsx[p%d]: seed %" PRIu64 ", per op:", s->proc, s->seed);
	for (int i = 0; i < N_OPS; i++)
		if (s->counts[i])
			printf(" %s %ld", ops[i].name, s->counts[i]);
	if (s->o.snapshots)
		printf("; %ld snapshot checks", s->snap_checks);
	if (s->no_collapse_insert)
		printf("; collapse/insert refused (EOPNOTSUPP)");
	printf("\n");
}

/* A global root, so leak checkers see the state as reachable on fail(). */
static struct fsx *current;

static int run_process(const struct options *o, int proc)
{
	struct fsx *s = calloc(1, sizeof(*s));

	if (!s) {
		perror("calloc");
		return EXIT_ERROR;
	}
	current = s;
	s->o = *o;
	s->proc = proc;
	s->seed = o->seed + (uint64_t)proc;
	s->rng = s->seed;
	s->blk = block_size(o->dir);
	s->splice_max = min_l(o->maxoplen, PIPE_CAP - 2 * PAGE);
	s->rbuf = xcalloc(s, (size_t)(o->maxlen + 2 * PAGE), 1);
	s->wbuf = xcalloc(s, (size_t)(o->maxlen + 2 * PAGE), 1);
	s->counts = xcalloc(s, N_OPS, sizeof(long));
	setup_files(s);
	for (s->op = 1; s->op <= o->nops; s->op++) {
		one_op(s);
		maybe_check_delayed(s);
	}
	s->op = o->nops;
	finish(s);
	if (!o->quiet)
		print_counts(s);
	printf("fsx: %ld ops, %ld pipe checks, 0 mismatches\n", o->nops,
	       s->pipe_checks);
	fflush(stdout);
	free(s->files);
	free(s->rbuf);
	free(s->wbuf);
	free(s->counts);
	free(s);
	current = NULL;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Processes and options                                              */
/* ------------------------------------------------------------------ */

/* Wait for every child; on the first failure stop the others (ours). */
static int wait_children(pid_t *pids, int n)
{
	int worst = 0, left = n;

	while (left > 0) {
		int status, code;
		pid_t pid = wait(&status);

		if (pid < 0) {
			if (errno == EINTR)
				continue;
			perror("fsx: wait");
			return EXIT_ERROR;
		}
		left--;
		code = WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_ERROR;
		if (WIFSIGNALED(status))
			fprintf(stderr, "fsx: process %d killed by signal %d\n",
				(int)pid, WTERMSIG(status));
		if (code && !worst) {
			worst = code;
			for (int i = 0; i < n; i++)
				if (pids[i] > 0 && pids[i] != pid)
					kill(pids[i], SIGTERM);
		}
		for (int i = 0; i < n; i++)
			if (pids[i] == pid)
				pids[i] = -1;
	}
	return worst;
}

static int run_all(const struct options *o)
{
	pid_t *pids;
	int rc;

	if (o->nprocs == 1)
		return run_process(o, 0);
	pids = calloc((size_t)o->nprocs, sizeof(*pids));
	if (!pids)
		return EXIT_ERROR;
	fflush(stdout);
	for (int i = 0; i < o->nprocs; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("fsx: fork");
			pids[i] = 0;
			wait_children(pids, i);
			return EXIT_ERROR;
		}
		if (pids[i] == 0)
			exit(run_process(o, i));
	}
	rc = wait_children(pids, o->nprocs);
	free(pids);
	return rc;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: fsx [-S seed] [-N ops] [-l maxlen] [-o maxoplen] [-f files]\n"
		"           [-P processes] [-Z] [-I] [-p N] [-D N] [-x op,...] [-q] [-v] DIR\n"
		"  -S seed     random seed (default 1); process i uses seed+i\n"
		"  -N ops      operations per process (default 10000)\n"
		"  -l maxlen   largest file size (default 256k; k/m suffixes)\n"
		"  -o len      largest single transfer (default maxlen/4, <= 1m-8k)\n"
		"  -f files    files per process (default 4)\n"
		"  -P procs    processes, each on its own files (default 1)\n"
		"  -Z          check snapshot opens (G2): O_RDONLY opens re-read later\n"
		"  -I          read each pipe as soon as it is filled, check it at the\n"
		"              usual later time (control: same ops, the model is exact)\n"
		"  -p N        weight multiplier of splice/sendfile/tee (default 1)\n"
		"  -D N        drain a pipe with chance 1/N after each op (default 4)\n"
		"  -x ops      disable ops (comma list of op names)\n"
		"  -q / -v     quiet / print every op\n"
		"exit: 0 ok, 1 mismatch, 2 usage, 3 unexpected error\n");
	exit(EXIT_USAGE);
}

static long parse_num(const char *arg)
{
	char *end;
	long v = strtol(arg, &end, 0);

	if (end == arg || v < 0)
		usage();
	if (*end == 'k' || *end == 'K')
		v *= KiB, end++;
	else if (*end == 'm' || *end == 'M')
		v *= MiB, end++;
	if (*end)
		usage();
	return v;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	int c;

	*o = default_options;
	while ((c = getopt(argc, argv, "S:N:l:o:f:P:ZIp:D:x:qvh")) != -1) {
		switch (c) {
		case 'S': o->seed = strtoull(optarg, NULL, 0); break;
		case 'N': o->nops = parse_num(optarg); break;
		case 'l': o->maxlen = parse_num(optarg); break;
		case 'o': o->maxoplen = parse_num(optarg); break;
		case 'f': o->nfiles = (int)parse_num(optarg); break;
		case 'P': o->nprocs = (int)parse_num(optarg); break;
		case 'Z': o->snapshots = true; break;
		case 'I': o->immediate = true; break;
		case 'p': o->pipe_boost = (int)parse_num(optarg); break;
		case 'D': o->drain_one_in = (int)parse_num(optarg); break;
		case 'x': o->disabled = optarg; break;
		case 'q': o->quiet = true; break;
		case 'v': o->verbose = true; break;
		default: usage();
		}
	}
	if (optind != argc - 1)
		usage();
	o->dir = argv[optind];
	if (o->maxoplen == 0)
		o->maxoplen = max_l(1, o->maxlen / 4);
	o->maxoplen = min_l(min_l(o->maxoplen, o->maxlen), PIPE_CAP - 2 * PAGE);
	if (o->maxlen < 1 || o->maxlen > 1024 * MiB || o->nfiles < 1 ||
	    o->nfiles > 1000 || o->nprocs < 1 || o->nprocs > 64 ||
	    o->drain_one_in < 1 || o->pipe_boost < 0)
		usage();
}

int main(int argc, char **argv)
{
	struct options o;
	struct stat st;

	parse_options(argc, argv, &o);
	if (!set_weights(&o))
		usage();
	if (stat(o.dir, &st) || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "fsx: %s is not a directory\n", o.dir);
		return EXIT_USAGE;
	}
	/* A reader gone away must be an error we report, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	install_fault_handler();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!o.quiet)
		printf("fsx: seed %" PRIu64 ", %ld ops x %d processes, %d files of "
		       "<= %ld bytes, transfers <= %ld, snapshots %s, pipes %s, in %s\n",
		       o.seed, o.nops, o.nprocs, o.nfiles, o.maxlen, o.maxoplen,
		       o.snapshots ? "on" : "off",
		       o.immediate ? "read at once" : "drained late", o.dir);
	return run_all(&o);
}
