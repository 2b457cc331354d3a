/*
 * The command line of the stablefs binary (doc/stablefs.1): every refused
 * invocation exits non-zero with exactly one line "stablefs: ..." on stderr
 * naming the problem and mounts nothing; -h/-V; daemonizing only once
 * mounted; SIGTERM/SIGINT/fusermount3 -u detach cleanly; an fstab line
 * mounts through mount(8) and mount.fuse3. `stablefs snapshot`: usage
 * errors exit 2 before MNT is touched, a directory that is no stablefs
 * mount exits 1 saying so (what needs the daemon's views is tested with
 * them, not here).
 *
 * Processes: the test makes itself a child subreaper, so a daemon that
 * forked away from the process we started is re-parented to us and its exit
 * status can be collected. A daemon is only ever found by its command line,
 * which holds our fresh mkdtemp() paths, and by /proc/PID/exe being the
 * binary under test — we never signal anything we did not start.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "mount_util.h"
#include "sfs/view_ioctl.h"
#include "test_util.h"

#define OUT_MAX 16384
#define RUN_TIMEOUT_MS 15000
#define EXIT_TIMEOUT_MS 10000

/* Exit status of a run: the code, 128+signal, or one of these. */
#define ST_TIMEOUT (-1)
#define ST_UNKNOWN (-2)		/* gone, but not our child to wait for */
#define ST_ALIVE (-3)

struct run {
	int status;
	char out[OUT_MAX];
	char err[OUT_MAX];
};

/* One invocation of the binary and what it must answer. */
struct cli_case {
	const char *name;
	const char *args[8];	/* after argv[0]; %S=SRC %M=MNT %B=base dir */
	unsigned exit_ok;	/* bit n set: exit status n is right */
	const char *err_any;	/* stderr is one "stablefs: " line holding one
				 * of these '|' alternatives; NULL: empty */
	const char *err_mention;/* template stderr must hold verbatim */
	const char *out_all[8];	/* stdout holds all of these; none: empty */
};

struct fixture {
	struct test_mount m;
	const void *arg;	/* the test's initial state: a case, a signal */
	char file[PATH_MAX];	/* base/afile: a regular file */
	char full[PATH_MAX];	/* base/full: a non-empty directory */
	int logfd;		/* output of a -f daemon, or -1 */
	int saved_ns;		/* our mount namespace while in a private one */
	char bound[PATH_MAX];	/* bind mount inside the private namespace */
};

#define EXIT_1 (1u << 1)
#define EXIT_1_OR_2 ((1u << 1) | (1u << 2))
#define EXIT_0 (1u << 0)
#define EXIT_2 (1u << 2)

/* 256 bytes: one more than a view name may have. */
#define N16 "nnnnnnnnnnnnnnnn"
#define N255 N16 N16 N16 N16 N16 N16 N16 N16 N16 N16 N16 N16 N16 N16 N16 \
	"nnnnnnnnnnnnnnn"
#define N256 N255 "n"

/*
 * The refused invocations. Problems with SRC or MNT exit 1; usage errors
 * (argument count, options and their values) may also exit 2.
 */
static const struct cli_case error_cases[] = {
	{ "no arguments", { NULL }, EXIT_1_OR_2, "usage|SRC|argument", NULL, { NULL } },
	{ "only one argument", { "%S", NULL }, EXIT_1_OR_2, "usage|MNT|argument|mount point|mountpoint", NULL, { NULL } },
	{ "SRC missing", { "%B/nosuch", "%M", NULL }, EXIT_1, "SRC|source|no such", "%B/nosuch", { NULL } },
	{ "SRC is a file", { "%B/afile", "%M", NULL }, EXIT_1, "not a directory", "%B/afile", { NULL } },
	{ "MNT missing", { "%S", "%B/nosuch", NULL }, EXIT_1, "MNT|mount point|mountpoint|no such", "%B/nosuch", { NULL } },
	{ "MNT is a file", { "%S", "%B/afile", NULL }, EXIT_1, "not a directory", "%B/afile", { NULL } },
	{ "MNT not empty", { "%S", "%B/full", NULL }, EXIT_1, "not empty", "%B/full", { NULL } },
	{ "MNT inside SRC", { "%S", "%S/inner", NULL }, EXIT_1, "inside|within|below", NULL, { NULL } },
	/* -o nonempty, so that the only problem left is the nesting. */
	{ "SRC inside MNT", { "-o", "nonempty", "%B/outer/inner", "%B/outer", NULL }, EXIT_1, "inside|within|below", NULL, { NULL } },
	{ "SRC == MNT", { "%B/outer/inner", "%B/outer/inner", NULL }, EXIT_1, "same|inside|itself|within", NULL, { NULL } },
	{ "three arguments", { "%S", "%M", "extra", NULL }, EXIT_1_OR_2, "usage|argument|extra", "extra", { NULL } },
	{ "-x", { "-x", "%S", "%M", NULL }, EXIT_1_OR_2, "unknown option", "-x", { NULL } },
	{ "-o frobnicate", { "-o", "frobnicate", "%S", "%M", NULL }, EXIT_1_OR_2, "unknown option", "frobnicate", { NULL } },
	{ "-o max_preserve=abc", { "-o", "max_preserve=abc", "%S", "%M", NULL }, EXIT_1_OR_2, "size", "abc", { NULL } },
	{ "-o max_preserve=12Q", { "-o", "max_preserve=12Q", "%S", "%M", NULL }, EXIT_1_OR_2, "size", "12Q", { NULL } },
	{ "-o max_preserve=-5", { "-o", "max_preserve=-5", "%S", "%M", NULL }, EXIT_1_OR_2, "size", "-5", { NULL } },
	{ "-o max_preserve=overflow", { "-o", "max_preserve=99999999999999999999999T", "%S", "%M", NULL }, EXIT_1_OR_2, "size", "99999999999999999999999T", { NULL } },
	{ "-o store=", { "-o", "store=", "%S", "%M", NULL }, EXIT_1_OR_2, "store", NULL, { NULL } },
	{ "-o snapshot=maybe", { "-o", "snapshot=maybe", "%S", "%M", NULL }, EXIT_1_OR_2, "snapshot", "maybe", { NULL } },
	{ "-o oob=foo", { "-o", "oob=foo", "%S", "%M", NULL }, EXIT_1_OR_2, "oob", "foo", { NULL } },
	{ "-o max_threads=0", { "-o", "max_threads=0", "%S", "%M", NULL }, EXIT_1_OR_2, "max_threads", NULL, { NULL } },
	{ "-o max_threads=abc", { "-o", "max_threads=abc", "%S", "%M", NULL }, EXIT_1_OR_2, "max_threads", NULL, { NULL } },
	{ "-o fd_cache=15", { "-o", "fd_cache=15", "%S", "%M", NULL }, EXIT_1_OR_2, "fd_cache", "15", { NULL } },
	{ "-o fd_cache=1e9", { "-o", "fd_cache=1e9", "%S", "%M", NULL }, EXIT_1_OR_2, "fd_cache", "1e9", { NULL } },
	{ "-o snapdir=a/b", { "-o", "snapdir=a/b", "%S", "%M", NULL }, EXIT_1_OR_2, "one directory name", "snapdir=a/b", { NULL } },
	{ "-o snapdir=..", { "-o", "snapdir=..", "%S", "%M", NULL }, EXIT_1_OR_2, "not . or ..", "snapdir=..", { NULL } },
	{ "-o snapdir=", { "-o", "snapdir=", "%S", "%M", NULL }, EXIT_1_OR_2, "one directory name", "snapdir=", { NULL } },
	{ "-o snapdir=<256 bytes>", { "-o", "snapdir=" N256, "%S", "%M", NULL }, EXIT_1_OR_2, "1 to 255 bytes", "snapdir=nnnn", { NULL } },
};

/*
 * stablefs snapshot, with nothing mounted: usage errors exit 2, whatever
 * MNT is (%B/nosuch: had MNT been opened, the answer would be exit 1 "No
 * such file"); a plain directory is not a stablefs mount (exit 1). Bad
 * NAMEs are below (test_snapshot_bad_names), also on a real mount.
 */
#define SNAP_USAGE "usage: stablefs snapshot"
static const struct cli_case snapshot_cases[] = {
	{ "snapshot: no arguments", { "snapshot", NULL }, EXIT_2, "missing MNT", SNAP_USAGE, { NULL } },
	{ "snapshot: no NAME", { "snapshot", "%B/nosuch", NULL }, EXIT_2, "missing NAME", SNAP_USAGE, { NULL } },
	{ "snapshot --delete: no NAME", { "snapshot", "--delete", "%B/nosuch", NULL }, EXIT_2, "missing NAME", SNAP_USAGE, { NULL } },
	{ "snapshot --list: no MNT", { "snapshot", "--list", NULL }, EXIT_2, "missing MNT", SNAP_USAGE, { NULL } },
	{ "snapshot --list: a NAME", { "snapshot", "--list", "%B/nosuch", "n", NULL }, EXIT_2, "takes no NAME", "'n'", { NULL } },
	{ "snapshot: three arguments", { "snapshot", "%B/nosuch", "n", "extra", NULL }, EXIT_2, "unexpected argument", "'extra'", { NULL } },
	{ "snapshot: unknown option", { "snapshot", "-x", "%B/nosuch", "n", NULL }, EXIT_2, "unknown option", "'-x'", { NULL } },
	{ "snapshot: --json without --list", { "snapshot", "--json", "%B/nosuch", "n", NULL }, EXIT_2, "--json goes with --list", NULL, { NULL } },
	{ "snapshot: --list --delete", { "snapshot", "--list", "--delete", "%B/nosuch", "n", NULL }, EXIT_2, "exclude each other", NULL, { NULL } },
	{ "snapshot: MNT missing", { "snapshot", "%B/nosuch", "n", NULL }, EXIT_1, "no such file", "%B/nosuch", { NULL } },
	{ "snapshot: MNT is a file", { "snapshot", "%B/afile", "n", NULL }, EXIT_1, "not a directory", "%B/afile", { NULL } },
	{ "snapshot: MNT not a stablefs mount", { "snapshot", "%M", "n", NULL }, EXIT_1,
	  "is not a stablefs mount (or its stablefs predates tree views)", "%M", { NULL } },
	{ "snapshot: a 255-byte NAME, MNT not a stablefs mount", { "snapshot", "%M", N255, NULL }, EXIT_1,
	  "is not a stablefs mount", "%M", { NULL } },
	{ "snapshot: NAME after --", { "snapshot", "%M", "--", "-n", NULL }, EXIT_1,
	  "is not a stablefs mount", "%M", { NULL } },
	{ "snapshot --delete: MNT not a stablefs mount", { "snapshot", "--delete", "%M", "n", NULL }, EXIT_1,
	  "is not a stablefs mount (or its stablefs predates tree views)", "%M", { NULL } },
	{ "snapshot --list: MNT not a stablefs mount", { "snapshot", "--list", "%M", NULL }, EXIT_1,
	  "is not a stablefs mount (or its stablefs predates tree views)", "%M", { NULL } },
	{ "snapshot --list --json: MNT not a stablefs mount", { "snapshot", "--list", "%M", "--json", NULL }, EXIT_1,
	  "is not a stablefs mount (or its stablefs predates tree views)", "%M", { NULL } },
};

static const struct cli_case info_cases[] = {
	{ "-h", { "-h", NULL }, EXIT_0, NULL, NULL,
	  { "usage", "SRC", "MNT", "store=", "max_preserve=", "snapshot=", "snapdir=", NULL } },
	{ "--help", { "--help", NULL }, EXIT_0, NULL, NULL,
	  { "usage", "SRC", "MNT", "store=", "max_preserve=", "snapshot=", "oob=", NULL } },
	{ "-V", { "-V", NULL }, EXIT_0, NULL, NULL,
	  { "stablefs", "version", STABLEFS_VERSION, "libfuse", NULL } },
	{ "--version", { "--version", NULL }, EXIT_0, NULL, NULL,
	  { "stablefs", "version", STABLEFS_VERSION, "libfuse", NULL } },
	{ "snapshot --help", { "snapshot", "--help", NULL }, EXIT_0, NULL, NULL,
	  { "usage: stablefs snapshot MNT NAME", "--list MNT [--json]", "--delete MNT NAME",
	    "snapdir", NULL } },
	{ "snapshot -h, other arguments", { "snapshot", "%B/nosuch", "-h", NULL }, EXIT_0, NULL, NULL,
	  { "usage: stablefs snapshot", NULL } },
};

/* ---- small helpers ---------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

static void read_fd_all(int fd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;

	lseek(fd, 0, SEEK_SET);
	while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
}

static int decode_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	return 128 + WTERMSIG(wstatus);
}

/* Expand a leading %S, %M or %B of a template into out. */
static void expand(const struct fixture *f, const char *tmpl, char *out, size_t size)
{
	const char *prefix = "";

	if (strncmp(tmpl, "%S", 2) == 0)
		prefix = f->m.src;
	else if (strncmp(tmpl, "%M", 2) == 0)
		prefix = f->m.mnt;
	else if (strncmp(tmpl, "%B", 2) == 0)
		prefix = f->m.base;
	if (*prefix)
		tmpl += 2;
	snprintf(out, size, "%s%s", prefix, tmpl);
}

/*
 * Run argv (argv[0] looked up in PATH if it has no '/') with stdin from
 * /dev/null and stdout/stderr captured. Waits for that process only: a
 * daemon it leaves behind keeps running. A hang is killed after a timeout.
 * in_child (if not NULL) runs in the child just before the exec.
 */
static void run_cmd_in(char *const argv[], struct run *r, void (*in_child)(void))
{
	int out = memfd_create("cli-out", 0);
	int err = memfd_create("cli-err", 0);
	int wstatus;
	pid_t pid;

	assert_true(out >= 0 && err >= 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		dup2(null, 0);
		dup2(out, 1);
		dup2(err, 2);
		if (in_child)
			in_child();
		execvp(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	r->status = ST_TIMEOUT;
	for (int waited = 0; waited < RUN_TIMEOUT_MS; waited += 10) {
		if (waitpid(pid, &wstatus, WNOHANG) == pid) {
			r->status = decode_status(wstatus);
			break;
		}
		sleep_ms(10);
	}
	if (r->status == ST_TIMEOUT) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	read_fd_all(out, r->out, sizeof(r->out));
	read_fd_all(err, r->err, sizeof(r->err));
	close(out);
	close(err);
}

static void run_cmd(char *const argv[], struct run *r)
{
	run_cmd_in(argv, r, NULL);
}

/* Run the binary under test with a case's (expanded) arguments. */
static void run_case_in(const struct fixture *f, const struct cli_case *c,
			struct run *r, void (*in_child)(void))
{
	char buf[8][PATH_MAX];
	char *argv[10];
	int n = 0;

	argv[n++] = (char *)test_stablefs_bin();
	for (int i = 0; i < 8 && c->args[i]; i++) {
		expand(f, c->args[i], buf[i], sizeof(buf[i]));
		argv[n++] = buf[i];
	}
	argv[n] = NULL;
	run_cmd_in(argv, r, in_child);
}

static void run_case(const struct fixture *f, const struct cli_case *c, struct run *r)
{
	run_case_in(f, c, r, NULL);
}

static void run_fusermount(const char *flags, const char *mnt, struct run *r)
{
	char *argv[] = { "fusermount3", (char *)flags, (char *)mnt, NULL };

	run_cmd(argv, r);
}

/* Does the text hold one of the '|'-separated alternatives (any case)? */
static bool has_any(const char *text, const char *alternatives)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", alternatives);
	for (char *w = strtok_r(buf, "|", &save); w; w = strtok_r(NULL, "|", &save)) {
		if (strcasestr(text, w))
			return true;
	}
	return false;
}

static bool is_one_line(const char *s)
{
	const char *nl = strchr(s, '\n');

	return nl && nl != s && nl[1] == '\0';
}

/* ---- finding and stopping daemons we started -------------------------- */

static bool real_bin(char *out, size_t size)
{
	char tmp[PATH_MAX];

	if (!realpath(test_stablefs_bin(), tmp))
		return false;
	snprintf(out, size, "%s", tmp);
	return true;
}

/* Is pid the binary under test with an argument starting with prefix
 * (exact == false) or equal to each of a and b (exact == true)? */
static bool proc_matches(pid_t pid, const char *a, const char *b, bool exact)
{
	char path[64], exe[PATH_MAX], bin[PATH_MAX], cmd[8192];
	bool has_a = false, has_b = !b;
	size_t len = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n < 0 || !real_bin(bin, sizeof(bin)))
		return false;
	exe[n] = '\0';
	if (strcmp(exe, bin) != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	while (len < sizeof(cmd) - 1 && (n = read(fd, cmd + len, sizeof(cmd) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	cmd[len] = '\0';
	for (size_t i = 0; i < len; i += strlen(cmd + i) + 1) {
		const char *arg = cmd + i;

		if (exact) {
			has_a |= strcmp(arg, a) == 0;
			has_b |= b && strcmp(arg, b) == 0;
		} else {
			has_a |= strncmp(arg, a, strlen(a)) == 0;
		}
	}
	return has_a && has_b;
}

/* The pids of our binary whose command line matches (see proc_matches). */
static int find_procs(const char *a, const char *b, bool exact, pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		pid_t pid = (pid_t)atoi(e->d_name);

		if (pid > 0 && pid != getpid() && proc_matches(pid, a, b, exact))
			pids[n++] = pid;
	}
	closedir(d);
	return n;
}

/* The one daemon serving exactly src on mnt, or 0. */
static pid_t find_daemon(const char *src, const char *mnt)
{
	pid_t pids[4];

	return find_procs(src, mnt, true, pids, 4) == 1 ? pids[0] : 0;
}

/*
 * Wait for pid to exit: its status if it is our child (directly or through
 * the subreaper), ST_UNKNOWN if it vanished otherwise, ST_ALIVE on timeout.
 */
static int wait_exit(pid_t pid, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		int wstatus;
		pid_t r = waitpid(pid, &wstatus, WNOHANG);

		if (r == pid)
			return decode_status(wstatus);
		if (r < 0 && kill(pid, 0) < 0 && errno == ESRCH)
			return ST_UNKNOWN;
		sleep_ms(10);
	}
	return ST_ALIVE;
}

static void stop_process(pid_t pid)
{
	kill(pid, SIGTERM);
	if (wait_exit(pid, 3000) == ST_ALIVE) {
		kill(pid, SIGKILL);
		wait_exit(pid, 3000);
	}
}

/* The mount points below base, in mount order. */
static int mounts_under(const char *base, char (*dirs)[PATH_MAX], int max)
{
	char dev[PATH_MAX], dir[PATH_MAX];
	size_t blen = strlen(base);
	FILE *mf = fopen("/proc/self/mounts", "r");
	int n = 0;

	if (!mf)
		return 0;
	while (n < max && fscanf(mf, "%4095s %4095s %*[^\n]", dev, dir) == 2) {
		if (strncmp(dir, base, blen) == 0 && dir[blen] == '/')
			snprintf(dirs[n++], PATH_MAX, "%s", dir);
	}
	fclose(mf);
	return n;
}

/* Detach every mount below base (ours only: base is a fresh mkdtemp). */
static void detach_under(const char *base)
{
	char dirs[16][PATH_MAX];
	int n = mounts_under(base, dirs, 16);
	struct run r;

	for (int i = n - 1; i >= 0; i--) {
		run_fusermount("-u", dirs[i], &r);
		if (r.status != 0)
			run_fusermount("-uz", dirs[i], &r);
	}
}

/* ---- fixtures --------------------------------------------------------- */

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[PATH_MAX];
	int fd;

	if (!f)
		return -1;
	f->arg = *state;
	f->saved_ns = -1;
	f->logfd = -1;
	if (test_mount_prepare(&f->m, "cli"))
		return -1;
	path_in(f->file, f->m.base, "afile");
	path_in(f->full, f->m.base, "full");
	fd = open(f->file, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	path_in(path, f->m.base, "full/x");
	if (mkdir(f->full, 0755) || (fd = open(path, O_WRONLY | O_CREAT, 0644)) < 0)
		return -1;
	close(fd);
	path_in(path, f->m.src, "inner");
	if (mkdir(path, 0755))
		return -1;
	path_in(path, f->m.base, "outer");
	if (mkdir(path, 0755))
		return -1;
	path_in(path, f->m.base, "outer/inner");
	if (mkdir(path, 0755))
		return -1;
	*state = f;
	return 0;
}

/*
 * Reap every child that has exited. All our children are processes we
 * started (subreaper: daemons that forked away come back to us); give them
 * a moment, since a daemon just told to go may still be exiting.
 */
static void reap_children(void)
{
	for (int waited = 0; waited < 3000; waited += 10) {
		pid_t r = waitpid(-1, NULL, WNOHANG);

		if (r < 0)
			return;		/* ECHILD: none left */
		if (r == 0)
			sleep_ms(10);
	}
	fprintf(stderr, "# children still running after the teardown\n");
}

/* Whatever happened: no mount left, no daemon left, no files left. */
static int fixture_teardown(void **state)
{
	struct fixture *f = *state;
	pid_t pids[8];
	int n;

	detach_under(f->m.base);
	test_mount_stop(&f->m);
	n = find_procs(f->m.base, NULL, false, pids, 8);
	for (int i = 0; i < n; i++) {
		fprintf(stderr, "# stopping leftover daemon %d\n", (int)pids[i]);
		stop_process(pids[i]);
	}
	reap_children();
	if (f->bound[0])
		umount2(f->bound, MNT_DETACH);
	if (f->saved_ns >= 0) {
		if (setns(f->saved_ns, CLONE_NEWNS))
			perror("setns back");
		close(f->saved_ns);
	}
	if (f->logfd >= 0)
		close(f->logfd);
	test_mount_destroy(&f->m);
	free(f);
	return 0;
}

/* ---- the table -------------------------------------------------------- */

static void check_case(const struct fixture *f, const struct cli_case *c, const struct run *r)
{
	char mention[PATH_MAX];

	if (r->status < 0 || !(c->exit_ok & (1u << r->status)))
		fail_msg("%s: exit status %d (wanted mask 0x%x), stderr: %s",
			 c->name, r->status, c->exit_ok, r->err);
	if (c->err_any) {
		if (!is_one_line(r->err) || strncmp(r->err, "stablefs: ", 10) != 0 ||
		    strstr(r->err + 10, "stablefs: "))
			fail_msg("%s: stderr is not one \"stablefs: \" line: [%s]", c->name, r->err);
		if (!has_any(r->err, c->err_any))
			fail_msg("%s: stderr [%s] lacks any of \"%s\"", c->name, r->err, c->err_any);
	} else if (r->err[0]) {
		fail_msg("%s: stderr should be empty: [%s]", c->name, r->err);
	}
	if (c->err_mention) {
		expand(f, c->err_mention, mention, sizeof(mention));
		if (!strstr(r->err, mention))
			fail_msg("%s: stderr [%s] does not name \"%s\"", c->name, r->err, mention);
	}
	if (!c->out_all[0] && r->out[0])
		fail_msg("%s: stdout should be empty: [%s]", c->name, r->out);
	for (int i = 0; i < 8 && c->out_all[i]; i++) {
		if (!strcasestr(r->out, c->out_all[i]))
			fail_msg("%s: stdout lacks \"%s\": [%s]", c->name, c->out_all[i], r->out);
	}
}

static void test_case(void **state)
{
	struct fixture *f = *state;
	const struct cli_case *c = f->arg;
	char dirs[4][PATH_MAX];
	struct run r;

	run_case(f, c, &r);
	/* A refused invocation must not have mounted anything anywhere. */
	if (mounts_under(f->m.base, dirs, 4) > 0)
		fail_msg("%s: exit %d, stderr [%s], but %s got mounted",
			 c->name, r.status, r.err, dirs[0]);
	check_case(f, c, &r);
}

/* ---- stablefs snapshot: bad NAMEs ------------------------------------ */

/*
 * In the child, before the exec: the view ioctls kill the process
 * (SIGSYS), any other system call runs. A command that exits 2 under it
 * made no view ioctl. The filter checks no architecture: it only ever
 * runs our own native binary. args[1] is a u64; its low half (where a
 * 32-bit ioctl command lies) comes first on little-endian machines.
 */
static void forbid_view_ioctls(void)
{
	const unsigned cmd_lo = offsetof(struct seccomp_data, args[1]) +
		(__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? 4 : 0);
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, cmd_lo),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SFS_IOC_VIEW_CREATE, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SFS_IOC_VIEW_DELETE, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog prog = { sizeof(code) / sizeof(code[0]), code };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		dprintf(2, "seccomp: %s\n", strerror(errno));
		_exit(126);
	}
}

/* A NAME the header refuses, and the problem the message must name. */
static const struct { const char *name, *problem, *mention; } bad_names[] = {
	{ "", "the view name is empty", NULL },
	{ "a/b", "contains '/'", "'a/b'" },
	{ "/", "contains '/'", "'/'" },
	{ ".", "is '.' or '..'", "'.'" },
	{ "..", "is '.' or '..'", "'..'" },
	{ N256, "is longer than 255 bytes", "'nnnnnnnnnnnnnnnn" },
};

/* Each bad NAME, to take and to delete, on mnt: exit 2, the problem named. */
static void check_bad_names(const struct fixture *f, const char *mnt)
{
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		for (int del = 0; del < 2; del++) {
			struct cli_case c = {
				"bad NAME", { "snapshot", mnt, bad_names[i].name, NULL },
				EXIT_2, bad_names[i].problem, bad_names[i].mention, { NULL },
			};
			char name[64];
			struct run r;

			if (del) {
				c.args[1] = "--delete";
				c.args[2] = mnt;
				c.args[3] = bad_names[i].name;
			}
			snprintf(name, sizeof(name), "snapshot %s%s '%.16s' on %s",
				 del ? "--delete " : "", mnt, bad_names[i].name,
				 test_is_stablefs_mount(f->m.mnt) ? "a mount" : "no mount");
			c.name = name;
			run_case_in(f, &c, &r, forbid_view_ioctls);
			check_case(f, &c, &r);
		}
	}
}

/*
 * A bad NAME exits 2 before MNT is touched: with MNT missing (opening it
 * would have said so), and on a real mount under a filter that kills the
 * process at a view ioctl. That the filter works is checked with a good
 * NAME, whose ioctl it kills whether or not the daemon has views.
 */
static void test_snapshot_bad_names(void **state)
{
	struct fixture *f = *state;
	const struct cli_case good = { "snapshot under the filter",
				       { "snapshot", "%M", "n", NULL }, 0, NULL, NULL, { NULL } };
	struct run r;

	check_bad_names(f, "%B/nosuch");
	assert_int_equal(test_mount_start(&f->m, NULL), 0);
	check_bad_names(f, "%M");
	run_case_in(f, &good, &r, forbid_view_ioctls);
	if (r.status != 128 + SIGSYS)
		fail_msg("the filter let a view ioctl through: exit %d, stderr [%s]",
			 r.status, r.err);
	assert_int_equal(test_mount_stop(&f->m), 0);
}

/*
 * The listing as the command reads it: getxattr(MNT, SFS_XATTR_VIEWS). On
 * a plain directory that is an ordinary user xattr, so the parsing and
 * the table are checked here without the daemon: JSON escapes (a quote,
 * a backslash, a newline, a surrogate pair), a field this command does
 * not know, local time (TZ=UTC here), sizes; --json as it came; a
 * malformed listing refused.
 */
static void test_snapshot_list_parses(void **state)
{
	static const char json[] =
		"{\"snapdir\":\".snapshots\",\"views\":["
		"{\"name\":\"nightly\",\"epoch\":1,\"created_ns\":1764662400000000000,"
		"\"captures\":3,\"bytes_preserved\":1572864,\"invalid\":false},"
		"{\"name\":\"a \\u0022b\\\" \\\\ \\u000a\\u00e9\\ud83d\\ude00\",\"epoch\":2,"
		"\"created_ns\":1764662401999999999,\"captures\":0,\"bytes_preserved\":1023,"
		"\"invalid\":true,\"newer\":{\"x\":[1,-2.5e3,null,\"s\"]}}]}";
	static const char *const want[] = {
		"NAME", "CREATED", "CAPTURES", "PRESERVED",
		"nightly  ", "2025-12-02T08:00:00+00:00         3     1.5 MiB  ok\n",
		"a \"b\" \\\\ \\n\xc3\xa9\xf0\x9f\x98\x80",
		"2025-12-02T08:00:01+00:00         0      1023 B  invalid\n",
	};
	/* A view without its name, a NUL in a name, a lone surrogate, a bare
	 * '-', a fraction where a count goes, a snapdir that is a path,
	 * something cut short, something after the end. */
	static const char *const malformed[] = {
		"{\"views\":[{\"epoch\":1}]}",
		"{\"views\":[{\"name\":\"a\\u0000b\"}]}",
		"{\"views\":[{\"name\":\"\\ud83d\"}]}",
		"{\"views\":[],\"later\":-}",
		"{\"views\":[{\"name\":\"n\",\"captures\":1.5}]}",
		"{\"snapdir\":\"a/b\",\"views\":[]}",
		"{\"views\":[{\"name\":\"n\"}",
		"{\"views\":[]} {}",
		"",
	};
	const struct cli_case table = { "snapshot --list", { "snapshot", "--list", "%M", NULL },
					EXIT_0, NULL, NULL, { "NAME", NULL } };
	const struct cli_case raw = { "snapshot --list --json", { "snapshot", "--list", "%M", "--json", NULL },
				      EXIT_0, NULL, NULL, { "\"views\"", NULL } };
	const struct cli_case bad = { "snapshot --list, malformed", { "snapshot", "--list", "%M", NULL },
				      EXIT_1, "cannot parse its list of views", "%M", { NULL } };
	struct fixture *f = *state;
	char expected[sizeof(json) + 1];
	struct run r;

	assert_int_equal(setxattr(f->m.mnt, SFS_XATTR_VIEWS, json, strlen(json), 0), 0);
	assert_int_equal(setenv("TZ", "UTC", 1), 0);
	run_case(f, &table, &r);
	unsetenv("TZ");
	check_case(f, &table, &r);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!strstr(r.out, want[i]))
			fail_msg("--list lacks [%s]:\n%s", want[i], r.out);
	}
	run_case(f, &raw, &r);
	check_case(f, &raw, &r);
	snprintf(expected, sizeof(expected), "%s\n", json);
	assert_string_equal(r.out, expected);
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		assert_int_equal(setxattr(f->m.mnt, SFS_XATTR_VIEWS, malformed[i],
					  strlen(malformed[i]), 0), 0);
		run_case(f, &bad, &r);
		if (r.status != 1)
			fail_msg("listing [%s] taken: exit %d, stdout [%s]", malformed[i],
				 r.status, r.out);
		check_case(f, &bad, &r);
	}
}

/* ---- mounting and detaching ------------------------------------------- */

static void test_nonempty_option_mounts(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	struct stat st;

	path_in(path, f->m.mnt, "hidden");
	write_file(path, "under the mount");
	path_in(path, f->m.src, "insrc");
	write_file(path, "x");
	assert_int_equal(test_mount_start(&f->m, "nonempty"), 0);
	assert_true(test_is_stablefs_mount(f->m.mnt));
	/* MNT now shows SRC, not what was in the directory before. */
	path_in(path, f->m.mnt, "insrc");
	assert_int_equal(stat(path, &st), 0);
	path_in(path, f->m.mnt, "hidden");
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(test_mount_stop(&f->m), 0);
}

/* Through MNT, a new file lands in SRC. */
static void check_serves(const struct fixture *f)
{
	char path[PATH_MAX];
	struct stat st;

	path_in(path, f->m.mnt, "through-mnt");
	write_file(path, "hello");
	path_in(path, f->m.src, "through-mnt");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 5);
	path_in(path, f->m.mnt, "through-mnt");
	assert_int_equal(unlink(path), 0);
}

static void expect_clean_exit(const struct fixture *f, pid_t pid, const char *how)
{
	int status = wait_exit(pid, EXIT_TIMEOUT_MS);
	bool mounted = test_is_stablefs_mount(f->m.mnt);

	if (status == ST_ALIVE)
		fail_msg("%s: daemon %d still running after %d ms (MNT %s)", how,
			 (int)pid, EXIT_TIMEOUT_MS, mounted ? "mounted" : "detached");
	if (status != 0 || mounted)
		fail_msg("%s: daemon exit status %d (wanted 0), MNT %s", how, status,
			 mounted ? "still mounted" : "detached");
}

/*
 * -o store= with an MNT whose real path is longer than 511 bytes mounts:
 * the check that the store is not inside MNT resolves MNT with realpath(),
 * which may write PATH_MAX bytes (it once wrote them into a 512-byte
 * message buffer: a stack overflow ASan reports).
 */
static void test_store_with_long_mnt(void **state)
{
	struct fixture *f = *state;
	char name[201], opts[PATH_MAX + 16];
	size_t len;

	memset(name, 'm', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	for (int i = 0; i < 3; i++) {
		len = strlen(f->m.mnt);
		snprintf(f->m.mnt + len, sizeof(f->m.mnt) - len, "/%s", name);
		assert_int_equal(mkdir(f->m.mnt, 0755), 0);
	}
	assert_true(strlen(f->m.mnt) > 600);
	snprintf(opts, sizeof(opts), "store=%s", f->m.src);
	assert_int_equal(test_mount_start(&f->m, opts), 0);
	assert_true(test_is_stablefs_mount(f->m.mnt));
	check_serves(f);
	assert_int_equal(test_mount_stop(&f->m), 0);
}

/* Without -f: the parent returns 0 only once MNT is mounted; SIGTERM. */
static void test_daemonize_then_sigterm(void **state)
{
	struct fixture *f = *state;
	const struct cli_case c = { "daemonize", { "%S", "%M", NULL }, EXIT_0, NULL, NULL, { NULL } };
	struct run r;
	pid_t dpid;

	run_case(f, &c, &r);
	/* Check the mount before anything else can give it time to appear. */
	if (!test_is_stablefs_mount(f->m.mnt))
		fail_msg("the parent exited (%d) before MNT was mounted; stderr: %s",
			 r.status, r.err);
	check_case(f, &c, &r);
	dpid = find_daemon(f->m.src, f->m.mnt);
	assert_true(dpid > 0);
	check_serves(f);
	assert_int_equal(kill(dpid, SIGTERM), 0);
	expect_clean_exit(f, dpid, "SIGTERM (daemonized)");
}

/*
 * Start "stablefs -f SRC MNT" with stdout and stderr in f->logfd and wait
 * until MNT is mounted. Returns the daemon's pid.
 */
static pid_t start_foreground(struct fixture *f)
{
	const char *bin = test_stablefs_bin();
	char log[OUT_MAX];
	pid_t pid;

	f->logfd = memfd_create("cli-log", 0);
	assert_true(f->logfd >= 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(null, 0);
		dup2(f->logfd, 1);
		dup2(f->logfd, 2);
		execl(bin, bin, "-f", f->m.src, f->m.mnt, (char *)NULL);
		_exit(127);
	}
	for (int waited = 0; waited < RUN_TIMEOUT_MS; waited += 10) {
		if (test_is_stablefs_mount(f->m.mnt))
			return pid;
		if (wait_exit(pid, 0) != ST_ALIVE)
			break;
		sleep_ms(10);
	}
	read_fd_all(f->logfd, log, sizeof(log));
	fail_msg("stablefs -f did not mount; output: %s", log);
	return 0;
}

/*
 * -f, then the initial state's way to stop it: SIGINT, SIGTERM or (0)
 * fusermount3 -u. It must unmount, exit 0, and have printed nothing.
 */
static void test_foreground_stop(void **state)
{
	struct fixture *f = *state;
	int sig = *(const int *)f->arg;
	char how[64], log[OUT_MAX];
	struct run r;
	pid_t pid = start_foreground(f);

	check_serves(f);
	if (sig) {
		snprintf(how, sizeof(how), "-f, %s", strsignal(sig));
		assert_int_equal(kill(pid, sig), 0);
	} else {
		snprintf(how, sizeof(how), "-f, fusermount3 -u");
		run_fusermount("-u", f->m.mnt, &r);
		if (r.status != 0)
			fail_msg("fusermount3 -u: status %d: %s", r.status, r.err);
	}
	expect_clean_exit(f, pid, how);
	read_fd_all(f->logfd, log, sizeof(log));
	if (log[0])
		fail_msg("%s: a clean mount and unmount printed: %s", how, log);
}

/* ---- fstab ------------------------------------------------------------ */

static bool have_mount_fuse(void)
{
	static const char *const helpers[] = {
		"/sbin/mount.fuse3", "/usr/sbin/mount.fuse3",
		"/sbin/mount.fuse", "/usr/sbin/mount.fuse",
	};

	for (size_t i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++) {
		if (access(helpers[i], X_OK) == 0)
			return true;
	}
	return false;
}

/*
 * mount(8) drops PATH from the environment before it runs the helper
 * (util-linux sanitize_env()), and mount.fuse3 then runs "stablefs" through
 * /bin/sh, i.e. from the shell's default PATH, whose first entry is
 * /usr/local/sbin. A temporary directory at the front of our own PATH is
 * therefore never seen. Instead, in a private mount namespace of this
 * process, bind a directory holding `stablefs -> binary under test` over
 * /usr/local/sbin. Nothing outside this process sees the bind or the FUSE
 * mount; the teardown returns to the original namespace.
 */
static void enter_private_path(struct fixture *f)
{
	char dir[PATH_MAX], lnk[PATH_MAX], bin[PATH_MAX];
	const char *target = "/usr/local/sbin";
	struct stat st;

	if (stat(target, &st) || !S_ISDIR(st.st_mode))
		skip();
	assert_true(real_bin(bin, sizeof(bin)));
	path_in(dir, f->m.base, "path");
	path_in(lnk, dir, "stablefs");
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(symlink(bin, lnk), 0);
	f->saved_ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	assert_true(f->saved_ns >= 0);
	if (unshare(CLONE_NEWNS)) {
		close(f->saved_ns);
		f->saved_ns = -1;
	f->logfd = -1;
		skip();
	}
	/* Private first, or the bind would propagate to the host. */
	assert_int_equal(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	assert_int_equal(mount(dir, target, NULL, MS_BIND, NULL), 0);
	snprintf(f->bound, sizeof(f->bound), "%s", target);
}

static void test_fstab(void **state)
{
	struct fixture *f = *state;
	char fstab[PATH_MAX], line[3 * PATH_MAX], path[PATH_MAX], buf[16] = "";
	char *argv[] = { "mount", "-T", fstab, f->m.mnt, NULL };
	struct run r;
	pid_t dpid;
	int fd;

	if (!have_mount_fuse())
		skip();
	enter_private_path(f);
	path_in(fstab, f->m.base, "fstab");
	snprintf(line, sizeof(line), "%s %s fuse.stablefs defaults,allow_other 0 0\n", f->m.src, f->m.mnt);
	write_file(fstab, line);
	run_cmd(argv, &r);
	if (r.status != 0)
		fail_msg("mount -T fstab: status %d, stderr: %s", r.status, r.err);
	assert_true(test_is_stablefs_mount(f->m.mnt));
	path_in(path, f->m.src, "from-src");
	write_file(path, "direct");
	path_in(path, f->m.mnt, "from-src");
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 6);
	close(fd);
	assert_string_equal(buf, "direct");
	dpid = find_daemon(f->m.src, f->m.mnt);
	assert_true(dpid > 0);
	run_fusermount("-u", f->m.mnt, &r);
	if (r.status != 0)
		fail_msg("fusermount3 -u: status %d: %s", r.status, r.err);
	expect_clean_exit(f, dpid, "fusermount3 -u (fstab mount)");
}

/* ---- main ------------------------------------------------------------- */

#define N_ERR (sizeof(error_cases) / sizeof(error_cases[0]))
#define N_INFO (sizeof(info_cases) / sizeof(info_cases[0]))
#define N_SNAP (sizeof(snapshot_cases) / sizeof(snapshot_cases[0]))

static void add_test(struct CMUnitTest *t, size_t *n, const char *name,
		     CMUnitTestFunction fn, const void *initial)
{
	t[*n] = (struct CMUnitTest){
		.name = name,
		.test_func = fn,
		.setup_func = fixture_setup,
		.teardown_func = fixture_teardown,
		.initial_state = (void *)initial,
	};
	(*n)++;
}

int main(void)
{
	static const int sigint = SIGINT, sigterm = SIGTERM, nosig = 0;
	struct CMUnitTest tests[N_ERR + N_INFO + N_SNAP + 11];
	size_t n = 0;

	test_require_fuse();
	/* Daemons that fork away from their parent are re-parented to us. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	for (size_t i = 0; i < N_ERR; i++)
		add_test(tests, &n, error_cases[i].name, test_case, &error_cases[i]);
	for (size_t i = 0; i < N_INFO; i++)
		add_test(tests, &n, info_cases[i].name, test_case, &info_cases[i]);
	for (size_t i = 0; i < N_SNAP; i++)
		add_test(tests, &n, snapshot_cases[i].name, test_case, &snapshot_cases[i]);
	add_test(tests, &n, "snapshot: a bad NAME exits 2, no view ioctl",
		 test_snapshot_bad_names, NULL);
	add_test(tests, &n, "snapshot --list: the listing's JSON, parsed",
		 test_snapshot_list_parses, NULL);
	add_test(tests, &n, "-o nonempty mounts on a non-empty MNT",
		 test_nonempty_option_mounts, NULL);
	add_test(tests, &n, "-o store= with an MNT over 511 bytes mounts",
		 test_store_with_long_mnt, NULL);
	add_test(tests, &n, "daemonizes once mounted, SIGTERM detaches",
		 test_daemonize_then_sigterm, NULL);
	add_test(tests, &n, "-f, SIGINT detaches", test_foreground_stop, &sigint);
	add_test(tests, &n, "-f, SIGTERM detaches", test_foreground_stop, &sigterm);
	add_test(tests, &n, "-f, fusermount3 -u detaches", test_foreground_stop, &nosig);
	/* Last: it runs in a private mount namespace. */
	add_test(tests, &n, "fstab line via mount -T", test_fstab, NULL);
	return _cmocka_run_group_tests("cli", tests, n, NULL, NULL);
}
