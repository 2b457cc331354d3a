/*
 * stablefs-fsx runs (test/tools/fsx.c): random operations checked against a model
 * of every file, with pipes filled by splice/sendfile/tee drained late (G1).
 *
 * A zero on stablefs only means something if the same checker finds the
 * kernel's own splice problem on a raw filesystem, so:
 *   1. raw ext4, pipes read at fill time (-I, control): must pass - the
 *      model is exact. Once with the op sequence of run 2, once with every
 *      op (ext4 does collapse/insert, which FUSE refuses);
 *   2. raw ext4, seed 1, pipes drained late: must report a MISMATCH in a
 *      delayed pipe (K1, doc/kernel-facts.md) - the checker has teeth;
 *   3. stablefs, exactly run 2's arguments: must pass. Run 2 leaves out
 *      collapse/insert so that both filesystems answer every op alike and
 *      the op sequences are identical: stablefs passes the very ops on
 *      which raw ext4 failed, and goes on;
 *   4. stablefs, seed 1, 2 processes x 100,000 ops, every op: zero
 *      mismatches;
 *   5. stablefs, another seed, 1 process, files up to 4 MiB, 1 MiB pipes.
 *   6. instead of 1-5 when FSX_SOAK_OPS is set: the soak, FSX_SOAK_OPS
 *      ops in each of FSX_SOAK_PROCS (default 2) processes, seed
 *      FSX_SOAK_SEED (default: from the time, printed), with snapshot
 *      re-reads (-Z), e.g. the
 *      1,000,000-op soak:
 *        FSX_SOAK_OPS=1000000 FSX_BIN=build/test/fsx \
 *        STABLEFS_BIN=build/fs/stablefs build/test/fsx_run
 *      (about 4 minutes for 2 x 1,000,000 ops on 2 cores).
 *
 * fsx is $FSX_BIN (default ./test/fsx); every run has a time limit after
 * which its whole process group (fsx and its children, nothing else) is
 * killed. Output goes to a file and is echoed as TAP comments.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mount_util.h"
#include "test_util.h"

/* Per fsx run (the soak sets more); meson's timeout is the backstop. */
static long run_timeout_s = 240;

/* Runs 1-4 share seed and sizes; 1-3 also the op mix and count. */
#define SEED1_ARGS "-S", "1", "-l", "256k", "-f", "4"
#define SAME_OPS_ARGS SEED1_ARGS, "-N", "20000", "-x", "collapse,insert"

struct fixture {
	char dir[PATH_MAX];	/* where fsx works: raw dir or the mount */
	char out[PATH_MAX];	/* fsx's stdout+stderr */
	char tmpbase[PATH_MAX - 64];	/* raw: our mkdtemp dir */
	struct test_mount m;
	const char *skip_why;
};

static const char *fsx_bin(void)
{
	const char *bin = getenv("FSX_BIN");

	return bin && *bin ? bin : "./test/fsx";
}

/* ------------------------------------------------------------------ */
/* Running fsx                                                        */
/* ------------------------------------------------------------------ */

/* Echo fsx's output as TAP comments (at most the last 60 lines). */
static char *slurp_and_echo(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL, *line, *save = NULL;
	size_t cap = 0;
	long n, lines = 0, skip;

	if (!f)
		return strdup("");
	n = (long)getdelim(&text, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(text);
		return strdup("");
	}
	for (long i = 0; i < n; i++)
		lines += text[i] == '\n';
	skip = lines > 60 ? lines - 60 : 0;
	line = strdup(text);
	for (char *l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		if (skip-- <= 0)
			printf("# %s\n", l);
	free(line);
	fflush(stdout);
	return text;
}

/*
 * Run fsx with the given arguments (NULL-terminated, DIR appended) in its
 * own process group; returns its exit status (-1: killed by a signal or
 * timed out) and its output in *output (malloc'ed).
 */
static int run_fsx(struct fixture *f, char **output, ...)
{
	const char *argv[32];
	int argc = 0, status = 0;
	double start = now_s();
	va_list ap;
	pid_t pid;

	argv[argc++] = fsx_bin();
	va_start(ap, output);
	for (const char *a; (a = va_arg(ap, const char *)) && argc < 30;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc++] = f->dir;
	argv[argc] = NULL;
	printf("#");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(f->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		setpgid(0, 0);
		/* If we die (meson's timeout), fsx goes too. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);	/* also here: no race with the kill below */
	if (!wait_pid_ms(pid, &status,
			 (long)((run_timeout_s - (now_s() - start)) * 1000))) {
		printf("# fsx ran over %ld s: killing its process group\n",
		       run_timeout_s);
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
		status = -1;
	}
	*output = slurp_and_echo(f->out);
	printf("# fsx took %.1f s\n", now_s() - start);
	if (status == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Every process must have printed its "0 mismatches" line. */
static int count_clean_lines(const char *output)
{
	int n = 0;

	for (const char *p = output; (p = strstr(p, " 0 mismatches\n")); p++)
		n++;
	return n;
}

static void expect_pass(int rc, char *output, int nprocs)
{
	if (rc != 0)
		fail_msg("fsx exited with %d (1: mismatch, 3: error, -1: killed)", rc);
	assert_int_equal(count_clean_lines(output), nprocs);
	assert_null(strstr(output, "MISMATCH"));
	free(output);
}

/* ------------------------------------------------------------------ */
/* Fixtures                                                           */
/* ------------------------------------------------------------------ */

static int require_fsx(void)
{
	if (access(fsx_bin(), X_OK)) {
		fprintf(stderr, "fsx binary %s: %s (set FSX_BIN)\n", fsx_bin(),
			strerror(errno));
		return -1;
	}
	return 0;
}

static int setup_raw(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f || require_fsx())
		return -1;
	snprintf(f->tmpbase, sizeof(f->tmpbase), "%s/sfs-fsx-XXXXXX", tmp_base());
	if (!mkdtemp(f->tmpbase)) {
		f->tmpbase[0] = '\0';
		return -1;
	}
	snprintf(f->dir, sizeof(f->dir), "%s/dir", f->tmpbase);
	snprintf(f->out, sizeof(f->out), "%s/fsx.out", f->tmpbase);
	if (mkdir(f->dir, 0755))
		return -1;
	if (!is_ext4(f->dir))
		f->skip_why = "$TMPDIR is not on ext4";
	return 0;
}

static int setup_stablefs(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int err;

	*state = f;
	if (!f || require_fsx())
		return -1;
	err = test_mount_setup(&f->m, "fsx", NULL, &f->skip_why);
	if (err || f->skip_why)
		return err;
	/* The output file lives beside src/ and mnt/, not in the mount. */
	snprintf(f->out, sizeof(f->out), "%s/fsx.out", f->m.base);
	snprintf(f->dir, sizeof(f->dir), "%s", f->m.mnt);
	return 0;
}

/* Always: unmount (no leaked mount, daemon exits cleanly), remove files. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (!f)
		return 0;
	if (f->m.base[0]) {	/* a mount was prepared */
		if (test_mount_finish(&f->m))
			rc = -1;
	} else if (f->tmpbase[0]) {
		test_rm_rf(f->tmpbase);
	}
	free(f);
	*state = NULL;
	return rc;
}

static void skip_if_needed(const struct fixture *f)
{
	if (f->skip_why) {
		printf("# skipped: %s\n", f->skip_why);
		skip();
	}
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

/*
 * The final line of run 1's first (same-ops) pass: run 3 must print the
 * very same one, i.e. the same ops and pipe checks happened on both.
 */
static char same_ops_line[128];

static void remember_final_line(const char *out)
{
	const char *l = strstr(out, "fsx: ");

	while (l && strncmp(l, "fsx: 20000 ops", 14))
		l = strstr(l + 1, "fsx: ");
	if (l)
		snprintf(same_ops_line, sizeof(same_ops_line), "%.*s",
			 (int)strcspn(l, "\n"), l);
}

/* Control: with nothing between fill and drain, raw ext4 agrees. */
static void test_raw_model_exact(void **state)
{
	struct fixture *f = *state;
	char *out;
	int rc;

	skip_if_needed(f);
	rc = run_fsx(f, &out, SAME_OPS_ARGS, "-I", "-q", NULL);
	if (rc != 0)
		fail_msg("raw ext4 with pipes read at once failed (%d): the model "
			 "or fsx is wrong, not the kernel", rc);
	remember_final_line(out);
	expect_pass(rc, out, 1);
	rc = run_fsx(f, &out, SEED1_ARGS, "-N", "20000", "-I", NULL);
	if (rc != 0)
		fail_msg("raw ext4, every op, pipes read at once failed (%d)", rc);
	/* ext4 really did collapse/insert, so their model was exercised. */
	assert_null(strstr(out, "EOPNOTSUPP"));
	assert_non_null(strstr(out, " collapse "));
	assert_non_null(strstr(out, " insert "));
	expect_pass(rc, out, 1);
}

/* The same run with late drains must catch raw ext4 changing pipes (K1). */
static void test_raw_detects(void **state)
{
	struct fixture *f = *state;
	char *out;
	int rc;

	skip_if_needed(f);
	rc = run_fsx(f, &out, SAME_OPS_ARGS, "-q", NULL);
	if (rc == 0)
		fail_msg("raw ext4: no mismatch: kernel changed (re-check K1) "
			 "or fsx lost its teeth");
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "fsx: MISMATCH"));
	assert_non_null(strstr(out, "delayed pipe (G1)"));
	assert_non_null(strstr(out, "fsx: replay: fsx -S 1 "));
	free(out);
}

/* The op sequence raw ext4 failed, through stablefs. */
static void test_stablefs_same_ops(void **state)
{
	struct fixture *f = *state;
	char *out;
	int rc;

	skip_if_needed(f);
	rc = run_fsx(f, &out, SAME_OPS_ARGS, "-q", NULL);
	if (rc == 0 && same_ops_line[0] && !strstr(out, same_ops_line))
		fail_msg("stablefs ran other ops than raw ext4 (expected \"%s\")",
			 same_ops_line);
	expect_pass(rc, out, 1);
}

static void test_stablefs_seed1_2procs(void **state)
{
	struct fixture *f = *state;
	char *out;
	int rc;

	skip_if_needed(f);
	rc = run_fsx(f, &out, SEED1_ARGS, "-N", "100000", "-P", "2", "-q", NULL);
	expect_pass(rc, out, 2);
}

/* Files up to 4 MiB: large folios in the backing page cache, 1 MiB pipes. */
static void test_stablefs_long_files(void **state)
{
	struct fixture *f = *state;
	char *out;
	int rc;

	skip_if_needed(f);
	rc = run_fsx(f, &out, "-S", "7", "-N", "20000", "-l", "4m", "-o", "1m",
		     "-f", "3", NULL);
	expect_pass(rc, out, 1);
}

/* Snapshot opens re-read later (G2), the reproducer of a race fsx found:
 * seed 22 failed with a false out-of-band EIO before it was fixed. */
static void test_stablefs_snapshots(void **state)
{
	struct fixture *f = *state;
	char *out;
	int rc;

	skip_if_needed(f);
	rc = run_fsx(f, &out, "-S", "22", "-N", "20000", "-l", "2m", "-o", "512k",
		     "-f", "2", "-Z", NULL);
	expect_pass(rc, out, 1);
}

static long env_long(const char *name, long dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtol(v, NULL, 0) : dflt;
}

/* The long soak (FSX_SOAK_OPS): a fresh seed each time unless given. */
static void test_stablefs_soak(void **state)
{
	struct fixture *f = *state;
	long ops = env_long("FSX_SOAK_OPS", 1000000);
	long procs = env_long("FSX_SOAK_PROCS", 2);
	long seed = env_long("FSX_SOAK_SEED", (long)time(NULL) % 1000000);
	char s_ops[32], s_procs[32], s_seed[32];
	char *out;
	int rc;

	skip_if_needed(f);
	snprintf(s_ops, sizeof(s_ops), "%ld", ops);
	snprintf(s_procs, sizeof(s_procs), "%ld", procs);
	snprintf(s_seed, sizeof(s_seed), "%ld", seed);
	printf("# soak: seed %ld (FSX_SOAK_SEED=%ld replays it)\n", seed, seed);
	/* Roughly 10,000 ops/s per process here: allow 4x that, plus slack. */
	run_timeout_s = 240 + ops / 2500;
	/* -Z: snapshot opens re-read later (G2) as well as every G1 check. */
	rc = run_fsx(f, &out, "-S", s_seed, "-N", s_ops, "-P", s_procs, "-Z", NULL);
	expect_pass(rc, out, (int)procs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_raw_model_exact, setup_raw,
						teardown),
		cmocka_unit_test_setup_teardown(test_raw_detects, setup_raw,
						teardown),
		cmocka_unit_test_setup_teardown(test_stablefs_same_ops,
						setup_stablefs, teardown),
		cmocka_unit_test_setup_teardown(test_stablefs_seed1_2procs,
						setup_stablefs, teardown),
		cmocka_unit_test_setup_teardown(test_stablefs_long_files,
						setup_stablefs, teardown),
		cmocka_unit_test_setup_teardown(test_stablefs_snapshots,
						setup_stablefs, teardown),
	};
	const struct CMUnitTest soak[] = {
		cmocka_unit_test_setup_teardown(test_stablefs_soak,
						setup_stablefs, teardown),
	};

	/* fsx's children and ours must not die of a closed TAP reader. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getenv("FSX_SOAK_OPS"))
		return cmocka_run_group_tests_name("fsx_soak", soak, NULL, NULL);
	return cmocka_run_group_tests_name("fsx_run", tests, NULL, NULL);
}
