/*
 * Kernel facts K4 and K5 of doc/kernel-facts.md, as self-checking tests (S8).
 *
 * They are facts about FUSE itself: what the kernel does to the page cache
 * of a FUSE inode - and so to pipes that hold its pages after splice(2) -
 * when the file is written, mapped, truncated or punched, and whether an
 * eviction sent by the daemon first (fuse_lowlevel_notify_inval_inode)
 * protects the pipe. stablefs hides these effects by design (fs/modify.c),
 * so they are measured on test/kfuse_daemon, a naive one-file daemon whose
 * defences are switched on by command-line flags.
 *
 * Every case is the same steps, parameterised by the daemon's flags and a
 * modification (one row of the table below):
 *   fresh backing file with a known pattern, fresh mount of kfuse_daemon,
 *   open MNT/f O_RDONLY and O_RDWR (both before reading: an open without
 *   keep_cache drops the inode's page cache),
 *   read the whole file through the O_RDONLY fd, so the page cache is warm,
 *   splice SPLICE_LEN bytes at SPLICE_OFF of it into a pipe,
 *   modify the file through the O_RDWR fd,
 *   only then drain the pipe and count the bytes that differ from the
 *   pattern, and check that the modification reached the backing file
 *   (so "pipe intact" never just means "nothing happened").
 * Each case runs REPEAT times on fresh mounts, prints what it observed
 * ("# ...") and asserts what doc/kernel-facts.md states - it held in every
 * run here.
 *
 * Needs root (mount(2) through libfuse) and /dev/fuse; else skipped (77).
 * The daemon is $KFUSE_BIN (default ./test/kfuse_daemon).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mount_util.h"
#include "test_util.h"

#define KiB 1024L
#define MiB (1024L * KiB)

#define FILE_SIZE (4 * MiB)
#define SPLICE_OFF (1 * MiB)
#define SPLICE_LEN (64 * KiB)
#define PAGE 4096L
/* A pipe big enough that one splice of SPLICE_LEN never blocks. */
#define PIPE_SIZE ((int)(2 * SPLICE_LEN))
#define REPEAT 5
/* Seconds one run may take before the daemon is killed (a deadlock). */
#ifndef RUN_TIMEOUT
#define RUN_TIMEOUT 30
#endif

/* ------------------------------------------------------------------ */
/* Modifications (through the O_RDWR fd on MNT/f) and their effects   */
/* ------------------------------------------------------------------ */

/* Each returns 0 or -errno; checks return 0 if the backing file shows it. */
struct modification {
	const char *name;
	int (*apply)(int fd);
	int (*reached)(int backing_fd);
};

/* The backing file holds `fresh` (new bytes) or zeros in [off, off+len). */
static int backing_holds(int bfd, long off, long len, bool zeros)
{
	unsigned char *buf = malloc((size_t)len);
	long bad = -1;

	if (!buf || pread_all(bfd, buf, (size_t)len, off)) {
		free(buf);
		return -1;
	}
	for (long i = 0; i < len && bad < 0; i++)
		if (buf[i] != (zeros ? 0 : new_byte(off + i)))
			bad = i;
	free(buf);
	if (bad >= 0)
		fprintf(stderr, "backing file: byte %ld is not %s\n", off + bad,
			zeros ? "zero" : "the written one");
	return bad >= 0 ? -1 : 0;
}

static int mod_pwrite(int fd)
{
	unsigned char buf[SPLICE_LEN];

	fill_pattern(buf, SPLICE_OFF, SPLICE_LEN, true);
	return pwrite_all(fd, buf, SPLICE_LEN, SPLICE_OFF) ? -errno : 0;
}

static int written(int bfd)
{
	return backing_holds(bfd, SPLICE_OFF, SPLICE_LEN, false);
}

/* Stores through a shared writable mapping, then msync: written back. */
static int mod_mmap_store(int fd)
{
	unsigned char *map = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE,
				  MAP_SHARED, fd, 0);
	int err = 0;

	if (map == MAP_FAILED)
		return -errno;
	fill_pattern(map + SPLICE_OFF, SPLICE_OFF, SPLICE_LEN, true);
	if (msync(map, FILE_SIZE, MS_SYNC))
		err = -errno;
	munmap(map, FILE_SIZE);
	return err;
}

#define TRUNC_SIZE (SPLICE_OFF + 100)

/* 100 bytes into the spliced range: the page holding EOF is partial. */
static int mod_truncate(int fd)
{
	return ftruncate(fd, TRUNC_SIZE) ? -errno : 0;
}

static int truncated(int bfd)
{
	struct stat st;

	if (fstat(bfd, &st) || st.st_size != TRUNC_SIZE) {
		fprintf(stderr, "backing file not truncated to %ld\n", TRUNC_SIZE);
		return -1;
	}
	return 0;
}

/* Neither end page-aligned: two partial pages inside the spliced range. */
#define PUNCH_OFF (SPLICE_OFF + 100)
#define PUNCH_LEN (SPLICE_LEN - 200)

static int mod_punch(int fd)
{
	return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 PUNCH_OFF, PUNCH_LEN) ? -errno : 0;
}

static int punched(int bfd)
{
	return backing_holds(bfd, PUNCH_OFF, PUNCH_LEN, true);
}

static const struct modification pwrite_range = {
	"pwrite over range", mod_pwrite, written };
static const struct modification mmap_store = {
	"MAP_SHARED store + msync", mod_mmap_store, written };
static const struct modification truncate_in_range = {
	"ftruncate to range+100", mod_truncate, truncated };
static const struct modification punch_unaligned = {
	"punch [+100, +64K-100)", mod_punch, punched };

/* ------------------------------------------------------------------ */
/* The table                                                          */
/* ------------------------------------------------------------------ */

#define MAX_FLAGS 3

struct row {
	const char *fact;
	const char *flags[MAX_FLAGS + 1];	/* kfuse_daemon options, NULL-ended */
	const struct modification *mod;
	int expect_errno;	/* the modification must fail so; 0: succeed */
	long min, max;		/* expected number of changed piped bytes */
};

#define DIO "--direct-io-writes"
#define EVICT_TRUNC "--evict-before-truncate"
#define EVICT_PUNCH "--evict-before-punch"

static const struct row rows[] = {
	/* K4: a cached write copies user data into the referenced pages. */
	{ "K4a", { NULL }, &pwrite_range, 0, SPLICE_LEN, SPLICE_LEN },
	/* K4: a direct_io write leaves the cached pages alone. */
	{ "K4b", { DIO, NULL }, &pwrite_range, 0, 0, 0 },
	/* K4: stores through a shared mapping land in the referenced pages. */
	{ "K4c", { NULL }, &mmap_store, 0, SPLICE_LEN, SPLICE_LEN },
	/* ... and a direct_io handle cannot be mapped shared at all. */
	{ "K4c", { DIO, NULL }, &mmap_store, ENODEV, 0, 0 },
	/*
	 * K4: after the SETATTR reply the kernel zeroes the tail of the page
	 * holding the new EOF in place (K4: 3996 = 4096 - 100 bytes), also
	 * when the truncating handle is direct_io.
	 */
	{ "K4d", { NULL }, &truncate_in_range, 0, PAGE - 100, SPLICE_LEN - 100 },
	{ "K4d", { DIO, NULL }, &truncate_in_range, 0, PAGE - 100, SPLICE_LEN - 100 },
	/* K5: evicting [newsize, EOF) before truncating drops those folios. */
	{ "K5", { EVICT_TRUNC, NULL }, &truncate_in_range, 0, 0, 0 },
	{ "K5", { DIO, EVICT_TRUNC, NULL }, &truncate_in_range, 0, 0, 0 },
	/* K4: after a punch reply the partial pages at both ends are zeroed. */
	{ "K4 punch", { NULL }, &punch_unaligned, 0, 2 * (PAGE - 100),
	  SPLICE_LEN - 200 },
	{ "K4 punch", { DIO, NULL }, &punch_unaligned, 0, 2 * (PAGE - 100),
	  SPLICE_LEN - 200 },
	/* K5 for punch: evicting the range first protects the pipe. */
	{ "K5 punch", { EVICT_PUNCH, NULL }, &punch_unaligned, 0, 0, 0 },
	{ "K5 punch", { DIO, EVICT_PUNCH, NULL }, &punch_unaligned, 0, 0, 0 },
};

/* ------------------------------------------------------------------ */
/* Mounting kfuse_daemon                                              */
/* ------------------------------------------------------------------ */

struct fixture {
	const struct row *row;
	char dir[PATH_MAX - 64];	/* fresh mkdtemp() directory */
	char backing[PATH_MAX - 32];	/* dir/backing */
	char mnt[PATH_MAX - 32];	/* dir/mnt */
	char file[PATH_MAX];		/* dir/mnt/f */
	pid_t pid;			/* our daemon, or 0 */
	pid_t watchdog;			/* its watchdog, or 0 */
};

/*
 * A daemon that deadlocks leaves the test in an uninterruptible wait for the
 * reply (a FUSE request already read by the daemon ignores signals), so a
 * SIGALRM in the test would never be handled. A watchdog process kills the
 * daemon instead: that aborts the connection, the blocked system call
 * fails, and the test fails and cleans up.
 */
static pid_t start_watchdog(pid_t victim)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		sleep(RUN_TIMEOUT);
		fprintf(stderr, "kfuse_daemon %d: no progress in %d s, killing "
			"it\n", victim, RUN_TIMEOUT);
		kill(victim, SIGKILL);
		_exit(0);
	}
	return pid > 0 ? pid : 0;
}

static void stop_watchdog(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = 0;
}

static const char *kfuse_bin(void)
{
	const char *bin = getenv("KFUSE_BIN");

	return bin && *bin ? bin : "./test/kfuse_daemon";
}

static bool is_kfuse_mount(const char *path)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char dev[PATH_MAX], dir[PATH_MAX], type[256];
	bool found = false;

	if (!f)
		return false;
	while (fscanf(f, "%4095s %4095s %255s %*[^\n]", dev, dir, type) == 3)
		if (strcmp(dir, path) == 0 && strcmp(type, "fuse.kfuse") == 0)
			found = true;
	fclose(f);
	return found;
}

/* Unmount (if mounted) and reap our daemon; -1 if anything was amiss. */
static int stop_daemon(struct fixture *f)
{
	int rc = 0, status;

	stop_watchdog(&f->watchdog);	/* before the daemon's pid is reaped */
	if (f->mnt[0] && is_kfuse_mount(f->mnt)) {
		test_fusermount("-uz", f->mnt);
		if (is_kfuse_mount(f->mnt)) {
			fprintf(stderr, "could not unmount %s\n", f->mnt);
			rc = -1;
		}
	}
	if (f->pid <= 0)
		return rc;
	if (!wait_pid_ms(f->pid, &status, 5000)) {
		fprintf(stderr, "kfuse_daemon %d did not exit, killing\n", f->pid);
		kill(f->pid, SIGKILL);
		waitpid(f->pid, &status, 0);
		rc = -1;
	}
	f->pid = 0;
	return rc;
}

/* Fresh backing file with the pattern, fresh daemon with the row's flags. */
static int start_daemon(struct fixture *f)
{
	const char *bin = kfuse_bin();
	const char *argv[4 + MAX_FLAGS] = { bin, f->backing, f->mnt };
	unsigned char *buf = malloc(FILE_SIZE);
	pid_t parent = getpid();
	int fd, rc = -1;

	for (int i = 0; f->row->flags[i]; i++)
		argv[3 + i] = f->row->flags[i];
	fd = open(f->backing, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (buf && fd >= 0) {
		fill_pattern(buf, 0, FILE_SIZE, false);
		rc = pwrite_all(fd, buf, FILE_SIZE, 0);
	}
	free(buf);
	if (fd >= 0)
		close(fd);
	if (rc)
		return -1;

	f->pid = fork();
	if (f->pid < 0) {
		f->pid = 0;
		return -1;
	}
	if (f->pid == 0) {
		/* If the test dies, the daemon unmounts and exits. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		execv(bin, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	f->watchdog = start_watchdog(f->pid);
	for (int waited = 0; waited < 10000; waited += 10) {
		int status;

		if (is_kfuse_mount(f->mnt))
			return 0;
		if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
			fprintf(stderr, "kfuse_daemon exited before mounting "
				"(status 0x%x)\n", status);
			stop_watchdog(&f->watchdog);
			f->pid = 0;
			return -1;
		}
		sleep_ms(10);
	}
	fprintf(stderr, "kfuse_daemon did not mount %s within 10 s\n", f->mnt);
	stop_daemon(f);
	return -1;
}

static void skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	exit(77);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	f->row = *state;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "%s/kfuse-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir)) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		f->dir[0] = '\0';
		return -1;
	}
	snprintf(f->backing, sizeof(f->backing), "%s/backing", f->dir);
	snprintf(f->mnt, sizeof(f->mnt), "%s/mnt", f->dir);
	snprintf(f->file, sizeof(f->file), "%s/f", f->mnt);
	if (mkdir(f->mnt, 0755)) {
		fprintf(stderr, "mkdir %s: %s\n", f->mnt, strerror(errno));
		return -1;
	}
	return 0;
}

/* Also runs after a failed test: never leaves a mount or a daemon behind. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	if (!f)
		return 0;
	rc = stop_daemon(f);
	if (f->dir[0] && !is_kfuse_mount(f->mnt))
		test_rm_rf(f->dir);
	free(f);
	*state = NULL;
	return rc;
}

/* ------------------------------------------------------------------ */
/* The scenario                                                       */
/* ------------------------------------------------------------------ */

struct observation {
	int mod_err;		/* the modification's -errno, or 0 */
	struct pipe_change c;	/* how the drained bytes differ */
};


static void print_observation(const struct row *r, const struct observation *o)
{
	printf("# %s, daemon", r->fact);
	for (int i = 0; r->flags[i]; i++)
		printf(" %s", r->flags[i]);
	printf("%s: %s", r->flags[0] ? "" : " (no flags)", r->mod->name);
	if (o->mod_err)
		printf(" failed: %s;", strerror(-o->mod_err));
	printf(" %ld of %ld piped bytes changed", o->c.changed, SPLICE_LEN);
	if (o->c.changed)
		printf(" (zeroed %ld, new bytes %ld, at +%ld..+%ld)",
		       o->c.zeroed, o->c.rewritten, o->c.first, o->c.last);
	printf("\n");
	fflush(stdout);
}

/*
 * One run on a fresh mount. Returns 0 and fills *o, or -1 if something
 * other than the modification failed (reported on stderr).
 */
static int run_scenario(struct fixture *f, struct observation *o)
{
	int ro = -1, rw = -1, bfd = -1, p[2] = { -1, -1 }, rc = -1;
	unsigned char *buf = malloc(FILE_SIZE);
	unsigned char expect[SPLICE_LEN];

	memset(o, 0, sizeof(*o));
	if (!buf || start_daemon(f))
		goto out;
	/* Both opens first: each open without keep_cache empties the cache. */
	ro = open(f->file, O_RDONLY | O_CLOEXEC);
	rw = open(f->file, O_RDWR | O_CLOEXEC);
	if (ro < 0 || rw < 0) {
		fprintf(stderr, "open %s: %s\n", f->file, strerror(errno));
		goto out;
	}
	/* Warm the FUSE page cache, and check what the daemon serves. */
	if (pread_all(ro, buf, FILE_SIZE, 0))
		goto out;
	fill_pattern(expect, SPLICE_OFF, SPLICE_LEN, false);
	if (memcmp(buf + SPLICE_OFF, expect, SPLICE_LEN)) {
		fprintf(stderr, "MNT/f does not hold the pattern\n");
		goto out;
	}
	if (make_pipe(p, PIPE_SIZE))	/* says why on stderr */
		goto out;
	if (splice_all(ro, SPLICE_OFF, p[1], SPLICE_LEN))
		goto out;
	close_fd(&p[1]);

	o->mod_err = f->row->mod->apply(rw);

	if (drain_pipe(p[0], buf, SPLICE_LEN) != SPLICE_LEN) {
		fprintf(stderr, "pipe: short drain\n");
		goto out;
	}
	compare_with_pattern(buf, SPLICE_OFF, SPLICE_LEN, &o->c);
	/* A modification that succeeded must have reached the backing file. */
	bfd = open(f->backing, O_RDONLY | O_CLOEXEC);
	if (bfd < 0 || (!o->mod_err && f->row->mod->reached(bfd)))
		goto out;
	rc = 0;
out:
	close_fd(&bfd);
	close_fd(&p[0]);
	close_fd(&p[1]);
	close_fd(&ro);
	close_fd(&rw);
	free(buf);
	if (stop_daemon(f))
		rc = -1;
	return rc;
}

/* Run the row REPEAT times; every run must match the row's expectation. */
static void test_row(void **state)
{
	struct fixture *f = *state;
	const struct row *r = f->row;
	struct observation first, o;
	int same = 1;

	for (int i = 0; i < REPEAT; i++) {
		assert_int_equal(run_scenario(f, &o), 0);
		if (i == 0) {
			first = o;
			print_observation(r, &o);
		} else if (o.c.changed != first.c.changed || o.c.first != first.c.first ||
			   o.mod_err != first.mod_err) {
			print_observation(r, &o);
		} else {
			same++;
		}
		if (o.mod_err != -r->expect_errno)
			fail_msg("%s: %s: %s, expected %s", r->fact, r->mod->name,
				 o.mod_err ? strerror(-o.mod_err) : "succeeded",
				 r->expect_errno ? strerror(r->expect_errno) :
						   "success");
		if (o.c.changed < r->min || o.c.changed > r->max)
			fail_msg("%s: %s: %ld piped bytes changed, expected "
				 "%ld..%ld", r->fact, r->mod->name, o.c.changed,
				 r->min, r->max);
	}
	if (same != REPEAT)
		printf("# %s: %s: only %d of %d runs identical\n", r->fact,
		       r->mod->name, same, REPEAT);
}

#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

int main(void)
{
	struct CMUnitTest tests[N_ROWS];
	char names[N_ROWS][160];
	int fd;

	if (geteuid() != 0)
		skip_all("mounting kfuse_daemon needs root");
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		skip_all("/dev/fuse cannot be opened");
	close(fd);
	if (access(kfuse_bin(), X_OK)) {
		fprintf(stderr, "KFUSE_BIN %s: %s\n", kfuse_bin(), strerror(errno));
		return 1;
	}

	for (size_t i = 0; i < N_ROWS; i++) {
		int n = snprintf(names[i], sizeof(names[i]), "%s: %s",
				 rows[i].fact, rows[i].mod->name);

		for (int j = 0; rows[i].flags[j] && n > 0 &&
		     (size_t)n < sizeof(names[i]); j++)
			n += snprintf(names[i] + n, sizeof(names[i]) - (size_t)n,
				      " %s", rows[i].flags[j]);
		tests[i] = (struct CMUnitTest){
			.name = names[i], .test_func = test_row,
			.setup_func = setup, .teardown_func = teardown,
			.initial_state = (void *)&rows[i],
		};
	}
	io_messages(true);	/* these tests report failed I/O on stderr */
	return cmocka_run_group_tests_name("kernel_facts_fuse", tests, NULL, NULL);
}
