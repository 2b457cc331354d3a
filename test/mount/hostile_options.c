/*
 * Hostile command lines (doc/stablefs.1's errors; G4 at the edges,
 * doc/guarantees.md).
 *
 * Option fuzzing: ~300 generated bad invocations (garbage bytes with
 *     non-UTF-8 and newlines, 64 KiB values, overflow, negative, hex, float,
 *     unit junk for store=, max_preserve=, snapshot=, oob=, timeout=,
 *     readahead_kb=, max_threads=, fd_cache=; unknown names; repeated
 *     options; huge, newline, non-UTF-8 and missing SRC/MNT). Each must exit non-zero
 *     within 20 s without a signal, mount nothing, and say why on stderr in
 *     lines starting "stablefs: " (at most 3 lines; more than one is
 *     printed). Fixed-seed PRNG (SFS_HOSTILE_SEED overrides). Cases cli.c
 *     already covers one by one are not repeated. Every case runs with -f,
 *     so that one wrongly accepted stays our child and is stopped at once.
 *     SFS_HOSTILE_VERBOSE=1 prints every case's message.
 *     Valid but odd values must mount: max_preserve=0, timeout=0,
 *     snapshot=off, store= a directory with a space and a comma written as
 *     libfuse's "\," escape, and SRC/MNT names with space, newline, comma
 *     and non-UTF-8 bytes.
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

#define CASE_TIMEOUT_MS 20000  /* a hang detector: ASan builds on a loaded 2-core machine took 5.2 s */
#define ERR_MAX (128 * 1024)
#define HUGE_LEN (64 * 1024)

/* ==== 1. option fuzzing ================================================= */

struct fcase {
	char *desc;
	char *argv[12];		/* argv[0] is the binary; NULL-terminated */
	char *mnt;		/* the MNT this case names (checked unmounted) */
	bool harmless;		/* refusing or mounting both fine (",,," ...) */
};

struct fcases {
	struct fcase *v;
	size_t n, cap;
};

static struct fcase *add_case(struct fcases *cs, const struct fixture *f, char *desc)
{
	struct fcase *c;

	if (cs->n == cs->cap) {
		cs->cap = cs->cap ? cs->cap * 2 : 256;
		cs->v = realloc(cs->v, cs->cap * sizeof(*cs->v));
		assert_non_null(cs->v);
	}
	c = &cs->v[cs->n++];
	memset(c, 0, sizeof(*c));
	c->desc = desc;
	/* Absolute: the case runs in an empty directory. */
	c->argv[0] = realpath(test_stablefs_bin(), NULL);
	assert_non_null(c->argv[0]);
	c->argv[1] = xstrdup("-f");
	c->mnt = xstrdup(f->m.mnt);
	return c;
}

/* stablefs -f -o OPTS SRC MNT */
static struct fcase *add_opt_case(struct fcases *cs, const struct fixture *f, char *desc,
				  char *opts)
{
	struct fcase *c = add_case(cs, f, desc);

	c->argv[2] = xstrdup("-o");
	c->argv[3] = opts;
	c->argv[4] = xstrdup(f->m.src);
	c->argv[5] = xstrdup(f->m.mnt);
	return c;
}

/* stablefs -f ARGS... (NULL-terminated, taken over) */
static struct fcase *add_args_case(struct fcases *cs, const struct fixture *f, char *desc, ...)
{
	struct fcase *c = add_case(cs, f, desc);
	va_list ap;
	char *a;
	int i = 2;

	va_start(ap, desc);
	while ((a = va_arg(ap, char *)) && i < 11)
		c->argv[i++] = a;
	va_end(ap);
	return c;
}

static void free_cases(struct fcases *cs)
{
	for (size_t i = 0; i < cs->n; i++) {
		free(cs->v[i].desc);
		free(cs->v[i].mnt);
		for (int j = 0; cs->v[i].argv[j]; j++)
			free(cs->v[i].argv[j]);
	}
	free(cs->v);
}

/*
 * Random bytes 1..255 (no NUL: argv cannot hold it) of length len, starting
 * with a byte that cannot begin a valid value of any of our options (not a
 * digit, sign, dot, blank, letter, '/' or '\\').
 */
static char *garbage(size_t len)
{
	static const char lead[] = "!#$%&*:;<>?@^_|~\"'`()[]{}";
	char *s = xmalloc(len + 1);

	for (size_t i = 0; i < len; i++) {
		unsigned r = rng_below(16);

		if (r < 2)
			s[i] = '\n';
		else if (r < 3)
			s[i] = ',';
		else if (r < 8)
			s[i] = (char)(0x80 + rng_below(0x80));	/* never UTF-8 valid alone */
		else
			s[i] = (char)(1 + rng_below(255));
	}
	if (rng_below(2))
		s[0] = lead[rng_below(sizeof(lead) - 1)];
	else
		s[0] = (char)(0x80 + rng_below(0x80));
	s[len] = '\0';
	return s;
}

/* Values each option must refuse (by its meaning, not by today's code). */
static const char *const number_junk[] = {
	"-1", "-5", "-0x10", "0x10", "0X1F", "1.5", "0.5", ".5", "1e3", "1E3x",
	"12abc", "1Q", "1KQ", "1 K", "K", "KiB", "1,5", "99999999999999999999",
	"18446744073709551616", "18446744073709551615T", "340282366920938463463374607431768211456",
	"-18446744073709551616", "nan", "inf", "-inf", "0b101", "1_000", "١٢", "\xef\xbc\x91",
	"1\n", "\n1", "1\t", "5 ", "1KK", "1iB", "1B2", "0777x", "--1", "+-1",
};

/* Would option name=value be a fine value? Only the lenient cases we
 * decided not to judge are listed here. */
static bool is_judged(const char *name, const char *v)
{
	if (!strcmp(name, "timeout")) {
		/* Fractions are real seconds. */
		if (!strcmp(v, "1.5") || !strcmp(v, "0.5") || !strcmp(v, ".5") ||
		    !strcmp(v, "5 ") || !strcmp(v, "1e3"))
			return false;
		/* strtod() hex and leading blanks: lenient, noted, not judged. */
		if (!strncmp(v, "0x", 2) || !strncmp(v, "0X", 2) || v[0] == '\n' ||
		    v[0] == ' ' || v[0] == '\t')
			return false;
	}
	return true;
}

static void build_option_cases(struct fcases *cs, const struct fixture *f)
{
	static const char *const opts[] = {
		"store", "max_preserve", "snapshot", "oob", "timeout", "readahead_kb", "max_threads",
		"fd_cache",
	};
	static const char *const word_junk[] = {
		"ON", "Off", "on ", " on", "onn", "of", "tru", "true", "false", "2", "-1", "yes!",
		"detect,", "Detect", "ignor", "ignore\n", "detect ignore", "on\xff", "\xff",
	};
	static const char *const store_junk[] = {
		"/nonexistent/dir", "/dev/null", "/proc/self/status", "\n", "\xff\xfe", " ",
		"relative-nowhere", "/\n/", "a\\,b",
	};
	char *v;

	for (size_t o = 0; o < sizeof(opts) / sizeof(opts[0]); o++) {
		const char *name = opts[o];
		bool numeric = strcmp(name, "store") && strcmp(name, "snapshot") && strcmp(name, "oob");

		/* Structured junk. */
		if (numeric) {
			for (size_t i = 0; i < sizeof(number_junk) / sizeof(number_junk[0]); i++) {
				if (!is_judged(name, number_junk[i]))
					continue;
				add_opt_case(cs, f, aprintf("%s=%s", name, show(number_junk[i], 60)),
					     aprintf("%s=%s", name, number_junk[i]));
			}
		} else if (!strcmp(name, "store")) {
			for (size_t i = 0; i < sizeof(store_junk) / sizeof(store_junk[0]); i++)
				add_opt_case(cs, f, aprintf("store=%s", show(store_junk[i], 60)),
					     aprintf("store=%s", store_junk[i]));
			/* A path longer than PATH_MAX, and one of a too-long name. */
			v = xmalloc(HUGE_LEN + 16);
			strcpy(v, "store=");
			for (size_t i = 6; i < HUGE_LEN; i += 2)
				memcpy(v + i, "/a", 2);
			v[HUGE_LEN] = '\0';
			add_opt_case(cs, f, xstrdup("store=/a/a/... (64 KiB path)"), v);
			v = xmalloc(400);
			strcpy(v, "store=/tmp/");
			memset(v + 11, 'n', 300);
			v[311] = '\0';
			add_opt_case(cs, f, xstrdup("store=/tmp/<300-byte name>"), v);
			/* store= naming a file, and MNT itself (would recurse). */
			add_opt_case(cs, f, xstrdup("store=MNT"), aprintf("store=%s", f->m.mnt));
		} else {
			for (size_t i = 0; i < sizeof(word_junk) / sizeof(word_junk[0]); i++) {
				if (!strcmp(name, "oob") && (!strcmp(word_junk[i], "detect,")))
					continue;	/* "detect," is detect plus an empty option */
				add_opt_case(cs, f, aprintf("%s=%s", name, show(word_junk[i], 60)),
					     aprintf("%s=%s", name, word_junk[i]));
			}
		}
		/* Random garbage, short and long. */
		for (int i = 0; i < 12; i++) {
			char *g = garbage(1 + rng_below(i < 9 ? 12 : 200));

			add_opt_case(cs, f, aprintf("%s=<garbage %s>", name, show(g, 48)),
				     aprintf("%s=%s", name, g));
			free(g);
		}
		/* Huge: 64 KiB of garbage, of digits (overflow), of a letter. */
		v = garbage(HUGE_LEN);
		add_opt_case(cs, f, aprintf("%s=<64 KiB garbage>", name), aprintf("%s=%s", name, v));
		free(v);
		if (strcmp(name, "store")) {
			v = xmalloc(HUGE_LEN + 1);
			memset(v, '9', HUGE_LEN);
			v[HUGE_LEN] = '\0';
			add_opt_case(cs, f, aprintf("%s=<65536 nines>", name), aprintf("%s=%s", name, v));
			memset(v, 'x', HUGE_LEN);
			add_opt_case(cs, f, aprintf("%s=<65536 x>", name), aprintf("%s=%s", name, v));
			free(v);
		}
		/* The name alone, and with an empty value. */
		add_opt_case(cs, f, aprintf("%s (no '=')", name), xstrdup(name));
		if (strcmp(name, "store"))
			add_opt_case(cs, f, aprintf("%s= (empty)", name), aprintf("%s=", name));
	}
}

static void build_other_cases(struct fcases *cs, const struct fixture *f)
{
	static const char *const unknown[] = {
		"frob=1", "STORE=/tmp", "Snapshot=on", "store =/tmp", " store=/tmp", "=", "=5",
		"max-preserve=1M", "maxpreserve=1M", "max_preserve_=1M", "snap=on", "oob",
		"\xff\xfe=1", "a\nb", "\n", "x=\n", "-o", "-x", "store", "max_preserve",
		"readahead", "timeout_s=1", "o", "--", "\\", "\\,", "\\0",
	};
	static const char *const repeated[] = {
		"snapshot=on,snapshot=bogus", "max_preserve=1M,max_preserve=-1",
		"oob=detect,oob=x", "timeout=1,timeout=-1", "readahead_kb=4,readahead_kb=0",
		"max_threads=4,max_threads=abc", "store=/,store=", "snapshot=off,snapshot=off,snapshot=2",
		"nonempty,nonempty,frob", "max_preserve=1M,,,max_preserve=1Z",
	};
	char huge[PATH_MAX * 2];
	char *p;

	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		add_opt_case(cs, f, aprintf("unknown option %s", show(unknown[i], 40)),
			     xstrdup(unknown[i]));
	for (int i = 0; i < 10; i++) {
		char name[32];
		int len = 3 + (int)rng_below(20);

		for (int j = 0; j < len; j++)
			name[j] = (char)('a' + rng_below(26));
		name[len] = '\0';
		if (i & 1)
			add_opt_case(cs, f, aprintf("unknown option %s=1", name), aprintf("%s=1", name));
		else
			add_opt_case(cs, f, aprintf("unknown option %s", name), xstrdup(name));
	}
	for (size_t i = 0; i < sizeof(repeated) / sizeof(repeated[0]); i++)
		add_opt_case(cs, f, aprintf("repeated %s", repeated[i]), xstrdup(repeated[i]));
	add_args_case(cs, f, xstrdup("-o snapshot=on -o snapshot=bogus"), xstrdup("-o"),
		      xstrdup("snapshot=on"), xstrdup("-o"), xstrdup("snapshot=bogus"),
		      xstrdup(f->m.src), xstrdup(f->m.mnt), NULL);
	add_args_case(cs, f, xstrdup("-o max_threads=2 -o max_threads=x"), xstrdup("-o"),
		      xstrdup("max_threads=2"), xstrdup("-o"), xstrdup("max_threads=x"),
		      xstrdup(f->m.src), xstrdup(f->m.mnt), NULL);
	/* -o with nothing after it, and -o swallowing SRC. */
	add_args_case(cs, f, xstrdup("SRC MNT -o (missing argument)"), xstrdup(f->m.src),
		      xstrdup(f->m.mnt), xstrdup("-o"), NULL);
	add_args_case(cs, f, xstrdup("-o SRC MNT (SRC taken as options)"), xstrdup("-o"),
		      xstrdup(f->m.src), xstrdup(f->m.mnt), NULL);
	/* Harmless: nothing in them. Refusing or mounting are both fine. */
	add_opt_case(cs, f, xstrdup("-o '' (empty)"), xstrdup(""))->harmless = true;
	add_opt_case(cs, f, xstrdup("-o ,,,"), xstrdup(",,,"))->harmless = true;

	/* SRC and MNT: too long, newlines, non-UTF-8, missing, empty. */
	snprintf(huge, sizeof(huge), "%s/", f->m.base);
	for (p = huge + strlen(huge); p < huge + PATH_MAX + 100; p += 2)
		memcpy(p, "a/", 2);
	*p = '\0';
	add_args_case(cs, f, xstrdup("SRC > PATH_MAX"), xstrdup(huge), xstrdup(f->m.mnt), NULL);
	{
		struct fcase *c = add_args_case(cs, f, xstrdup("MNT > PATH_MAX"), xstrdup(f->m.src),
						xstrdup(huge), NULL);

		free(c->mnt);
		c->mnt = xstrdup(huge);
	}
	memset(huge, 'z', 300);
	huge[300] = '\0';
	add_args_case(cs, f, xstrdup("SRC a 300-byte name"), aprintf("%s/%s", f->m.base, huge),
		      xstrdup(f->m.mnt), NULL);
	add_args_case(cs, f, xstrdup("SRC = ''"), xstrdup(""), xstrdup(f->m.mnt), NULL);
	add_args_case(cs, f, xstrdup("MNT = ''"), xstrdup(f->m.src), xstrdup(""), NULL);
	add_args_case(cs, f, xstrdup("SRC = '' MNT = ''"), xstrdup(""), xstrdup(""), NULL);
	add_args_case(cs, f, xstrdup("SRC with a newline (missing)"),
		      aprintf("%s/no\nsuch", f->m.base), xstrdup(f->m.mnt), NULL);
	add_args_case(cs, f, xstrdup("SRC with a trailing newline (missing)"),
		      aprintf("%s\n", f->m.src), xstrdup(f->m.mnt), NULL);
	add_args_case(cs, f, xstrdup("SRC non-UTF-8 (missing)"),
		      aprintf("%s/\xff\xfe\x80", f->m.base), xstrdup(f->m.mnt), NULL);
	{
		struct fcase *c;

		c = add_args_case(cs, f, xstrdup("MNT with a newline (missing)"), xstrdup(f->m.src),
				  aprintf("%s/m\nnt", f->m.base), NULL);
		free(c->mnt);
		c->mnt = xstrdup(c->argv[3]);
		c = add_args_case(cs, f, xstrdup("MNT non-UTF-8 (missing)"), xstrdup(f->m.src),
				  aprintf("%s/\xc3\x28\xff", f->m.base), NULL);
		free(c->mnt);
		c->mnt = xstrdup(c->argv[3]);
		c = add_args_case(cs, f, xstrdup("MNT is SRC with a trailing slash and dot"),
				  xstrdup(f->m.src), aprintf("%s/./", f->m.src), NULL);
	}
	add_args_case(cs, f, xstrdup("SRC garbage, 64 KiB"), garbage(HUGE_LEN), xstrdup(f->m.mnt), NULL);
	add_args_case(cs, f, xstrdup("MNT garbage"), xstrdup(f->m.src), garbage(40), NULL);
	add_args_case(cs, f, xstrdup("SRC starting with '-'"), xstrdup("-\xff"), xstrdup(f->m.mnt), NULL);
	add_args_case(cs, f, xstrdup("SRC /proc/self/fd/0"), xstrdup("/proc/self/fd/0"),
		      xstrdup(f->m.mnt), NULL);
	add_args_case(cs, f, xstrdup("SRC /dev/null"), xstrdup("/dev/null"), xstrdup(f->m.mnt), NULL);
	add_args_case(cs, f, xstrdup("MNT /dev/null"), xstrdup(f->m.src), xstrdup("/dev/null"), NULL);
}

struct outcome {
	int wstatus;
	bool timed_out;
	bool mounted;		/* the case's MNT got mounted at some point */
	double secs;
	size_t errlen;
	char *err;
};

/* Run one case: stdin /dev/null, cwd an empty directory, stderr kept. */
static void run_fcase(const struct fixture *f, const struct fcase *c, struct outcome *o)
{
	int errfd = memfd_create("hostile-err", MFD_CLOEXEC);
	double t0 = now_s();
	pid_t pid;
	ssize_t n;

	memset(o, 0, sizeof(*o));
	assert_true(errfd >= 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (chdir(f->cwd))
			_exit(126);
		dup2(null, 0);
		dup2(null, 1);
		dup2(errfd, 2);
		execv(c->argv[0], c->argv);
		_exit(127);
	}
	for (;;) {
		pid_t r = waitpid(pid, &o->wstatus, WNOHANG);

		if (r == pid)
			break;
		if (mounted_at(c->mnt) || mounted_at(f->m.mnt)) {
			/* Wrongly accepted: stop it now (our child, -f). */
			o->mounted = true;
			kill(pid, SIGTERM);
			waitpid(pid, &o->wstatus, 0);
			break;
		}
		if (now_s() - t0 > CASE_TIMEOUT_MS / 1000.0) {
			o->timed_out = true;
			kill(pid, SIGKILL);
			waitpid(pid, &o->wstatus, 0);
			break;
		}
		sleep_ms(2);
	}
	o->secs = now_s() - t0;
	if (mounted_at(c->mnt) || mounted_at(f->m.mnt)) {
		o->mounted = true;
		test_fusermount("-uz", c->mnt);
		test_fusermount("-uz", f->m.mnt);
	}
	o->err = xmalloc(ERR_MAX + 1);
	n = pread(errfd, o->err, ERR_MAX, 0);
	o->errlen = n > 0 ? (size_t)n : 0;
	o->err[o->errlen] = '\0';
	close(errfd);
}

static int count_lines(const char *s, size_t len)
{
	int lines = 0;

	for (size_t i = 0; i < len; i++)
		lines += s[i] == '\n';
	if (len && s[len - 1] != '\n')
		lines++;
	return lines;
}

/* Every line of libfuse/our output starts "stablefs: "? (first line only
 * checked when a value with newlines was echoed) */
static const char *judge(const struct fcase *c, const struct outcome *o, int lines)
{
	static char why[512];

	if (o->timed_out)
		return "did not finish within 20 s (killed)";
	if (WIFSIGNALED(o->wstatus)) {
		snprintf(why, sizeof(why), "killed by signal %d (%s)", WTERMSIG(o->wstatus),
			 strsignal(WTERMSIG(o->wstatus)));
		return why;
	}
	if (o->mounted && !c->harmless)
		return "accepted: it MOUNTED";
	if (o->mounted)
		return NULL;	/* harmless case that mounted: fine */
	if (!WIFEXITED(o->wstatus) || WEXITSTATUS(o->wstatus) == 0)
		return "exit status 0 without mounting";
	if (o->errlen == 0)
		return "stderr empty";
	if (strncmp(o->err, "stablefs: ", 10) != 0)
		return "stderr does not start with \"stablefs: \"";
	if (lines > 3) {
		snprintf(why, sizeof(why), "stderr has %d lines (at most 3 allowed)", lines);
		return why;
	}
	/* More lines from echoed newlines are tolerated; more messages not. */
	for (const char *nl = strchr(o->err, '\n'); nl && nl[1]; nl = strchr(nl + 1, '\n')) {
		if (!strncmp(nl + 1, "stablefs: ", 10))
			return "more than one \"stablefs: \" message";
	}
	return NULL;
}

static void test_option_fuzz(void **state)
{
	struct fixture *f = *state;
	struct fcases cs = { 0 };
	const char *seed_env = getenv("SFS_HOSTILE_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x5eedf00dULL;
	size_t failed = 0, multiline = 0, harmless_mounted = 0;
	double t0 = now_s(), slowest = 0;
	bool verbose = getenv("SFS_HOSTILE_VERBOSE") != NULL;

	rng_seed(seed);
	build_option_cases(&cs, f);
	build_other_cases(&cs, f);
	printf("# option fuzz: %zu cases, seed 0x%" PRIx64 "\n", cs.n, seed);
	for (size_t i = 0; i < cs.n; i++) {
		const struct fcase *c = &cs.v[i];
		struct outcome o;
		const char *why;
		int lines;

		run_fcase(f, c, &o);
		lines = count_lines(o.err, o.errlen);
		why = judge(c, &o, lines);
		if (o.secs > slowest)
			slowest = o.secs;
		if (c->harmless)
			printf("# harmless case %s: %s\n", c->desc,
			       o.mounted ? "mounts" : show(o.err, 200));
		harmless_mounted += c->harmless && o.mounted;
		if (why) {
			failed++;
			printf("# FAIL case %zu [%s]: %s; exit %d; stderr: %s\n", i, c->desc, why,
			       WIFEXITED(o.wstatus) ? WEXITSTATUS(o.wstatus) : -1,
			       show(o.err, 300));
		} else if (lines > 1) {
			multiline++;
			printf("# case %zu [%s]: %d lines: %s\n", i, c->desc, lines, show(o.err, 200));
		} else if (verbose) {
			printf("# case %zu [%s]: %s\n", i, c->desc, show(o.err, 200));
		}
		free(o.err);
	}
	printf("# option fuzz: %zu cases in %.1f s (slowest %.2f s), %zu failed, "
	       "%zu multi-line but <= 3, %zu harmless mounted\n",
	       cs.n, now_s() - t0, slowest, failed, multiline, harmless_mounted);
	free_cases(&cs);
	if (failed)
		fail_msg("%zu of the fuzzed invocations were not refused cleanly (see # FAIL)", failed);
}

/* Lenient-but-accepted values, printed so they are seen (not judged). */
static void test_option_lenient(void **state)
{
	struct fixture *f = *state;
	static const char *const lenient[] = {
		"timeout=0x10", "timeout= 5", "timeout=-0",
		"max_preserve=1M,max_preserve=abc", "max_preserve=abc,max_preserve=1M",
		/* libfuse matches its command-line flags inside -o too */
		"-d", "-f", "-s", "--help", "-h",
	};
	struct fcases cs = { 0 };

	for (size_t i = 0; i < sizeof(lenient) / sizeof(lenient[0]); i++)
		add_opt_case(&cs, f, xstrdup(lenient[i]), xstrdup(lenient[i]))->harmless = true;
	for (size_t i = 0; i < cs.n; i++) {
		struct outcome o;

		run_fcase(f, &cs.v[i], &o);
		printf("# lenient: -o %s: %s\n", cs.v[i].desc,
		       o.mounted ? "accepted (mounts)" : show(o.err, 200));
		assert_false(WIFSIGNALED(o.wstatus) && !o.mounted);
		assert_false(o.timed_out);
		free(o.err);
	}
	free_cases(&cs);
}

/* ---- valid but odd values mount ------------------------------------- */

static void write_at(int dirfd, const char *name, const char *text)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

static void check_through(const char *src, const char *mnt)
{
	int m = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int s = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;

	assert_true(m >= 0 && s >= 0);
	write_at(m, "probe", "hello");
	assert_int_equal(fstatat(s, "probe", &st, 0), 0);
	assert_int_equal(st.st_size, 5);
	assert_int_equal(unlinkat(m, "probe", 0), 0);
	close(m);
	close(s);
}

static void test_odd_values_mount(void **state)
{
	struct fixture *f = *state;
	char store[PATH_MAX], opt[PATH_MAX * 2];
	const char *odd[] = { "max_preserve=0", "timeout=0", "snapshot=off", "timeout=0.25",
			      "max_preserve=1KiB", "readahead_kb=1M", NULL };

	for (int i = 0; odd[i]; i++) {
		if (test_mount_start(&f->m, odd[i]))
			fail_msg("-o %s did not mount", odd[i]);
		check_through(f->m.src, f->m.mnt);
		assert_int_equal(test_mount_stop(&f->m), 0);
		printf("# -o %s mounts\n", odd[i]);
	}
	/* fuse_opt: "\," is a comma inside a value, "\\" a backslash. */
	snprintf(store, sizeof(store), "%s/st ore,x\\y", f->m.base);
	assert_int_equal(mkdir(store, 0755), 0);
	snprintf(opt, sizeof(opt), "store=%s/st ore\\,x\\\\y", f->m.base);
	if (test_mount_start(&f->m, opt))
		fail_msg("-o %s did not mount", show(opt, 200));
	check_through(f->m.src, f->m.mnt);
	{
		/* A snapshot whose preservation uses the store. */
		int w = openat(f->srcfd, "snap", O_RDWR | O_CREAT | O_CLOEXEC, 0644), r, mw;
		char path[PATH_MAX + 16], buf[8] = "";

		assert_true(w >= 0);
		assert_int_equal(write(w, "before", 6), 6);
		close(w);
		snprintf(path, sizeof(path), "%s/snap", f->m.mnt);
		r = open(path, O_RDONLY | O_CLOEXEC);
		mw = open(path, O_WRONLY | O_CLOEXEC);
		assert_true(r >= 0 && mw >= 0);
		assert_int_equal(pwrite(mw, "AFTER!", 6, 0), 6);
		assert_int_equal(pread(r, buf, 6, 0), 6);
		assert_memory_equal(buf, "before", 6);
		close(mw);
		close(r);
	}
	assert_int_equal(test_mount_stop(&f->m), 0);
	printf("# -o store=<dir with space, comma, backslash> mounts (\\, and \\\\ escapes)\n");
}

/* SRC and MNT names with space, newline, comma, backslash, non-UTF-8. */
static void test_odd_paths_mount(void **state)
{
	struct fixture *f = *state;
	char src[PATH_MAX], mnt[PATH_MAX];
	const char *bin = test_stablefs_bin();
	int status = 0;
	pid_t pid;
	bool up = false;

	snprintf(src, sizeof(src), "%s/s rc\n,\\\xff", f->m.base);
	snprintf(mnt, sizeof(mnt), "%s/-m nt\t\n,\xfe", f->m.base);
	assert_int_equal(mkdir(src, 0755), 0);
	assert_int_equal(mkdir(mnt, 0755), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl(bin, bin, "-f", src, mnt, (char *)NULL);
		_exit(127);
	}
	for (int waited = 0; waited < 10000; waited += 10) {
		if ((up = mounted_at(mnt)))
			break;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			pid = 0;
			break;
		}
		sleep_ms(10);
	}
	if (up)
		check_through(src, mnt);
	if (mounted_at(mnt))
		test_fusermount("-u", mnt);
	if (mounted_at(mnt))
		test_fusermount("-uz", mnt);
	if (pid > 0) {
		for (int waited = 0; waited < 5000; waited += 10) {
			if (waitpid(pid, &status, WNOHANG) == pid) {
				pid = 0;
				break;
			}
			sleep_ms(10);
		}
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("the daemon did not exit after fusermount3 -u");
		}
	}
	if (!up)
		fail_msg("SRC/MNT with odd bytes did not mount (status 0x%x)", status);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	printf("# SRC and MNT with space, tab, newline, comma, backslash, 0xff mount and unmount\n");
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_option_fuzz, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_option_lenient, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_odd_values_mount, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_odd_paths_mount, setup_plain, teardown),
	};

	test_require_fuse();
	return cmocka_run_group_tests_name("hostile_options", tests, NULL, NULL);
}
