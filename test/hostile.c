/*
 * Hostile input (command-line errors of doc/stablefs.1, G4 fidelity at the
 * edges: doc/guarantees.md).
 *
 *  1. Option fuzzing: ~300 generated bad invocations (garbage bytes with
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
 *  2. Names through a mount: 255 bytes work everywhere, 256 and more are
 *     ENAMETOOLONG like on SRC; newline, tab, non-UTF-8, leading '-',
 *     spaces round-trip byte for byte (readdir of MNT and SRC).
 *  3. Deep trees: nested directories until the path is PATH_MAX - 1 bytes
 *     (255-byte and 1-byte components), built and removed only with *at()
 *     calls; the bottom works; one more byte of path is ENAMETOOLONG.
 *  4. Many entries in one directory (SFS_HOSTILE_ENTRIES, default a
 *     million), created through MNT: getdents64 with a small buffer returns
 *     each name exactly once, and a saved position (telldir cookie, i.e.
 *     d_off) resumes identically on the same handle and on a new one,
 *     compared with the same operations on SRC directly; the daemon keeps
 *     an entry for every one with no more fds open than its budget. The
 *     same checks also run on min(N, 10000) entries.
 *  5. Sparse files at 8 TiB: writes at 8 TiB - 4 KiB and 8 TiB + 1 MiB,
 *     size, SEEK_DATA/SEEK_HOLE as on SRC, zeros at 4 TiB, the EFBIG limit
 *     as on SRC, ftruncate to 0, and a snapshot opened before all of it.
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

#include "mount_util.h"
#include "test_util.h"

#define KiB 1024LL
#define MiB (1024 * KiB)
#define TiB (1024LL * 1024 * MiB)

#define CASE_TIMEOUT_MS 20000  /* a hang detector: ASan builds on a loaded 2-core machine took 5.2 s */
#define ERR_MAX (128 * 1024)
#define HUGE_LEN (64 * 1024)

struct fixture {
	struct test_mount m;
	int mntfd;		/* O_DIRECTORY fd of MNT while mounted, or -1 */
	int srcfd;		/* O_DIRECTORY fd of SRC */
	char cwd[PATH_MAX];	/* base/cwd: an empty directory for children */
};

/* ---- small helpers ---------------------------------------------------- */

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	assert_non_null(p);
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

/* printf into a fresh heap string */
static char *aprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *aprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	return s;
}

/* A printable rendering of arbitrary bytes, at most ~max chars. */
static const char *show(const char *s, size_t max)
{
	static char out[4][1024];
	static int slot;
	char *o = out[slot++ & 3];
	size_t len = strlen(s), j = 0;

	if (max > 900)
		max = 900;
	for (size_t i = 0; i < len && j < max; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			j += (size_t)sprintf(o + j, "\\n");
		else if (c == '\\')
			j += (size_t)sprintf(o + j, "\\\\");
		else if (c < 0x20 || c >= 0x7f)
			j += (size_t)sprintf(o + j, "\\x%02x", c);
		else
			o[j++] = (char)c;
	}
	o[j] = '\0';
	if (j >= max)
		sprintf(o + j, "...(%zu bytes)", len);
	return o;
}

/* ---- a reproducible PRNG (xorshift64*) -------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static unsigned rng_below(unsigned n)
{
	return (unsigned)(rng() % n);
}

/* ---- removing trees with *at() calls only ----------------------------- */

/*
 * Remove parent/name and everything below it without ever building a path:
 * descend with openat(), climb back with openat(fd, ".."), one fd held at a
 * time, so trees deeper than PATH_MAX and directories of any size go.
 * Returns 0 or -errno of the first failure (and keeps going where it can).
 */
static int rm_tree_at(int parent, const char *name)
{
	char **stack = NULL;
	size_t depth = 0, cap = 0;
	int first_err = 0;
	int cur;
	struct stat st;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parent, name, 0) ? -errno : 0;
	cur = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cur < 0)
		return -errno;
	for (;;) {
		int dfd = dup(cur);
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		char *sub = NULL;
		struct dirent *e;

		if (!d) {
			first_err = first_err ? first_err : -errno;
			break;
		}
		rewinddir(d);
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (e->d_type == DT_DIR ||
			    (e->d_type == DT_UNKNOWN &&
			     !fstatat(cur, e->d_name, &st, AT_SYMLINK_NOFOLLOW) &&
			     S_ISDIR(st.st_mode))) {
				if (!sub)
					sub = strdup(e->d_name);
				continue;
			}
			if (unlinkat(cur, e->d_name, 0) && !first_err)
				first_err = -errno;
		}
		closedir(d);
		if (sub) {
			int next = openat(cur, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (next < 0) {
				first_err = first_err ? first_err : -errno;
				free(sub);
				break;
			}
			if (depth == cap) {
				cap = cap ? cap * 2 : 64;
				stack = realloc(stack, cap * sizeof(*stack));
				if (!stack)
					abort();
			}
			stack[depth++] = sub;
			close(cur);
			cur = next;
			continue;
		}
		if (depth == 0) {
			close(cur);
			cur = -1;
			if (unlinkat(parent, name, AT_REMOVEDIR) && !first_err)
				first_err = -errno;
			break;
		} else {
			int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			close(cur);
			cur = up;
			if (up < 0) {
				first_err = first_err ? first_err : -errno;
				break;
			}
			depth--;
			if (unlinkat(up, stack[depth], AT_REMOVEDIR) && !first_err)
				first_err = -errno;
			free(stack[depth]);
		}
	}
	if (cur >= 0)
		close(cur);
	while (depth > 0)
		free(stack[--depth]);
	free(stack);
	return first_err;
}

/* ---- mounts, by exact path (unescaping /proc/self/mounts) ------------- */

static void unescape_mount_field(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* Is anything mounted exactly at path (any type)? */
static bool mounted_at(const char *path)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		char *sp1 = strchr(line, ' ');
		char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;

		if (!sp2)
			continue;
		*sp2 = '\0';
		unescape_mount_field(sp1 + 1);
		found = strcmp(sp1 + 1, path) == 0;
	}
	free(line);
	fclose(f);
	return found;
}

/* ---- fixtures --------------------------------------------------------- */

static int setup_common(void **state, bool mount, const char *opts)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->mntfd = -1;
	f->srcfd = -1;
	*state = f;
	if (test_mount_prepare(&f->m, "hostile"))
		return -1;
	snprintf(f->cwd, sizeof(f->cwd), "%s/cwd", f->m.base);
	if (mkdir(f->cwd, 0755))
		return -1;
	f->srcfd = open(f->m.src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->srcfd < 0)
		return -1;
	if (mount) {
		if (test_mount_start(&f->m, opts))
			return -1;
		f->mntfd = open(f->m.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (f->mntfd < 0)
			return -1;
	}
	return 0;
}

static int setup_plain(void **state)
{
	return setup_common(state, false, NULL);
}

static int setup_mounted(void **state)
{
	return setup_common(state, true, NULL);
}

/* Fewer inode fds than test_many_entries caches inodes (inode_table.h). */
#define SMALL_FD_CACHE 4096
#define SMALL_FD_CACHE_OPT "fd_cache=4096"

static int setup_mounted_small_fd_cache(void **state)
{
	return setup_common(state, true, SMALL_FD_CACHE_OPT);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int parent, err = 0;
	char *slash;

	if (!f)
		return 0;
	/* A failed assertion leaves the test's fds open, some in MNT, which
	 * would keep the mount busy: close them all (none of them outlives a
	 * test; stdio keeps to 0-2). */
	syscall(SYS_close_range, 3U, ~0U, 0U);
	f->mntfd = f->srcfd = -1;
	if (f->m.base[0]) {
		if (test_mount_stop(&f->m))
			fprintf(stderr, "# teardown: the unmount was not clean\n");
		if (mounted_at(f->m.mnt)) {
			test_fusermount("-uz", f->m.mnt);
			fprintf(stderr, "# teardown: %s was still mounted\n", f->m.mnt);
		}
		/* Deeper than PATH_MAX is possible here: remove with *at(). */
		slash = strrchr(f->m.base, '/');
		*slash = '\0';
		parent = open(f->m.base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		*slash = '/';
		if (parent >= 0) {
			err = rm_tree_at(parent, slash + 1);
			close(parent);
		}
		if (err)
			fprintf(stderr, "# teardown: removing %s: %s\n", f->m.base, strerror(-err));
	}
	free(f);
	return 0;
}

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

	rng_state = seed ? seed : 1;
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

/* ==== 2. names ========================================================= */

/* Does directory fd list name exactly once (getdents64, exact bytes)? */
static int count_in_dir(int dirfd, const char *name)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char buf[8192] __attribute__((aligned(8)));
	int found = 0;
	long n;

	assert_true(fd >= 0);
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);

			found += strcmp(d->d_name, name) == 0;
			off += d->d_reclen;
		}
	}
	assert_true(n == 0);
	close(fd);
	return found;
}

static void name_roundtrip(const struct fixture *f, const char *name)
{
	char buf[512];
	struct stat st, sst;
	int fd;
	size_t len = strlen(name);
	char *dname = aprintf("%.250s.d", name);

	/* Create through MNT with the name as content. */
	fd = openat(f->mntfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_msg("create [%s] (%zu bytes) through MNT: %s", show(name, 80), len, strerror(errno));
	assert_int_equal(write(fd, name, len), (ssize_t)len);
	close(fd);
	if (fstatat(f->mntfd, name, &st, AT_SYMLINK_NOFOLLOW))
		fail_msg("stat [%s]: %s", show(name, 80), strerror(errno));
	assert_int_equal(st.st_size, (off_t)len);
	if (fstatat(f->srcfd, name, &sst, AT_SYMLINK_NOFOLLOW))
		fail_msg("[%s] is not in SRC under the same bytes: %s", show(name, 80), strerror(errno));
	assert_int_equal(sst.st_size, (off_t)len);
	if (count_in_dir(f->mntfd, name) != 1 || count_in_dir(f->srcfd, name) != 1)
		fail_msg("readdir of MNT/SRC lists [%s] %d/%d times", show(name, 80),
			 count_in_dir(f->mntfd, name), count_in_dir(f->srcfd, name));
	fd = openat(f->mntfd, name, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)len);
	assert_memory_equal(buf, name, len);
	close(fd);
	/* Rename to a directory name derived from it, then as a directory. */
	if (renameat(f->mntfd, name, f->mntfd, dname))
		fail_msg("rename [%s] -> [%s]: %s", show(name, 80), show(dname, 80), strerror(errno));
	assert_int_equal(fstatat(f->srcfd, dname, &sst, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(count_in_dir(f->mntfd, name), 0);
	assert_int_equal(unlinkat(f->mntfd, dname, 0), 0);
	if (mkdirat(f->mntfd, name, 0755))
		fail_msg("mkdir [%s]: %s", show(name, 80), strerror(errno));
	assert_int_equal(fstatat(f->srcfd, name, &sst, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISDIR(sst.st_mode));
	assert_int_equal(symlinkat(name, f->mntfd, dname), 0);
	{
		char target[512];
		ssize_t n = readlinkat(f->mntfd, dname, target, sizeof(target));

		assert_int_equal(n, (ssize_t)len);
		assert_memory_equal(target, name, len);
	}
	assert_int_equal(unlinkat(f->mntfd, dname, 0), 0);
	assert_int_equal(unlinkat(f->mntfd, name, AT_REMOVEDIR), 0);
	assert_int_equal(fstatat(f->srcfd, name, &sst, AT_SYMLINK_NOFOLLOW), -1);
	free(dname);
}

static void test_odd_names(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = {
		"new\nline", "\n", "\n\n", "tab\there", "\t", "\x80", "\xff\xfe\xfd",
		"\xc3\x28", "\xed\xa0\x80", "\xf8\x88\x80\x80\x80", "-", "--", "-rf", "--help",
		" ", "  lead", "trail ", "a b c", "\r", "cr\rlf\n", "\x01\x02\x1f\x7f",
		"back\\slash", "*?[]{}", "$(echo x)", "\xc3\xa9t\xc3\xa9", "...", ". ", ".. ", " .",
		"\x1b[31mred", "quote\"'", "pct%s%n", ",comma,", "=eq=",
	};
	char name[300];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		name_roundtrip(f, names[i]);
	/* 255 bytes: plain, all 0xff, and mixed control bytes. */
	memset(name, 'n', 255);
	name[255] = '\0';
	name_roundtrip(f, name);
	memset(name, 0xff, 255);
	name_roundtrip(f, name);
	for (int i = 0; i < 255; i++) {
		name[i] = (char)(1 + (i * 37) % 255);
		if (name[i] == '/')
			name[i] = '_';
	}
	name_roundtrip(f, name);
	printf("# %zu odd names and three 255-byte names round-trip exactly\n",
	       sizeof(names) / sizeof(names[0]));
}

/* errno of an operation, 0 on success */
#define ERRNO_OF(expr) ((expr) < 0 ? errno : 0)

static void test_name_lengths(void **state)
{
	struct fixture *f = *state;
	char n255[256], n255b[256], *longn;
	size_t lens[] = { 256, 300, 1023, 1024, 1025, 4095, 4096, 5000 };
	struct stat st;
	int fd;

	memset(n255, 'a', 255);
	n255[255] = '\0';
	memset(n255b, 'b', 255);
	n255b[255] = '\0';
	/* 255: create, stat, readdir, rename, link, unlink. */
	fd = openat(f->mntfd, n255, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(fstatat(f->mntfd, n255, &st, 0), 0);
	assert_int_equal(count_in_dir(f->mntfd, n255), 1);
	assert_int_equal(renameat(f->mntfd, n255, f->mntfd, n255b), 0);
	assert_int_equal(fstatat(f->srcfd, n255b, &st, 0), 0);
	assert_int_equal(linkat(f->mntfd, n255b, f->mntfd, n255, 0), 0);
	assert_int_equal(fstatat(f->mntfd, n255, &st, 0), 0);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(unlinkat(f->mntfd, n255, 0), 0);

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		int dirs[2] = { f->srcfd, f->mntfd };
		int e[2][8];

		longn = xmalloc(lens[i] + 1);
		memset(longn, 'L', lens[i]);
		longn[lens[i]] = '\0';
		for (int t = 0; t < 2; t++) {
			int d = dirs[t];

			e[t][0] = ERRNO_OF(fd = openat(d, longn, O_RDWR | O_CREAT | O_CLOEXEC, 0644));
			if (fd >= 0)
				close(fd);
			e[t][1] = ERRNO_OF(mkdirat(d, longn, 0755));
			e[t][2] = ERRNO_OF(fstatat(d, longn, &st, 0));
			e[t][3] = ERRNO_OF(renameat(d, n255b, d, longn));
			e[t][4] = ERRNO_OF(linkat(d, n255b, d, longn, 0));
			e[t][5] = ERRNO_OF(symlinkat("t", d, longn));
			e[t][6] = ERRNO_OF(mknodat(d, longn, S_IFIFO | 0644, 0));
			e[t][7] = ERRNO_OF(unlinkat(d, longn, 0));
		}
		for (int k = 0; k < 8; k++) {
			if (e[1][k] != ENAMETOOLONG)
				fail_msg("%zu-byte name, op %d through MNT: %s (SRC: %s), wanted ENAMETOOLONG",
					 lens[i], k, strerror(e[1][k]), strerror(e[0][k]));
			assert_int_equal(e[0][k], e[1][k]);
		}
		free(longn);
	}
	/* Nothing appeared, n255b still there alone (plus nothing else). */
	assert_int_equal(fstatat(f->srcfd, n255b, &st, 0), 0);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(unlinkat(f->mntfd, n255b, 0), 0);
	printf("# 255-byte names work; 256..5000 bytes: ENAMETOOLONG for open/mkdir/stat/"
	       "rename/link/symlink/mknod/unlink, as on SRC\n");
}

/* ==== 3. deep trees ==================================================== */

/* Components (lengths) making strlen(root) + sum(1 + len) == target. */
static size_t plan_components(size_t rootlen, size_t target, size_t maxcomp, size_t *lens, size_t max)
{
	size_t remaining = target - rootlen, n = 0;

	while (remaining > 0) {
		size_t c = remaining - 1 < maxcomp ? remaining - 1 : maxcomp;

		if (remaining - 1 - c == 1) {
			if (c > 1)
				c--;
			else
				c++;	/* 1-byte components: one of 2 bytes */
		}
		assert_true(c >= 1 && n < max);
		lens[n++] = c;
		remaining -= c + 1;
	}
	return n;
}

static void comp_name(char *out, size_t len, size_t level)
{
	/* Distinct per level (so a wrong level is noticed), exact length. */
	for (size_t i = 0; i < len; i++)
		out[i] = (char)('a' + (level + i) % 26);
	out[len] = '\0';
}

static void deep_tree(struct fixture *f, size_t maxcomp)
{
	size_t lens[PATH_MAX], n, total;
	char comp[256], *path;
	int cur, fd, sfd;
	char buf[64];
	struct stat st, sst;
	double t0 = now_s();
	const char *msg = "bottom of the tree";

	n = plan_components(strlen(f->m.mnt), PATH_MAX - 1, maxcomp, lens, PATH_MAX);
	total = strlen(f->m.mnt);
	path = xmalloc(PATH_MAX + 16);
	strcpy(path, f->m.mnt);
	cur = dup(f->mntfd);
	for (size_t i = 0; i < n; i++) {
		int next;

		comp_name(comp, lens[i], i);
		if (mkdirat(cur, comp, 0755))
			fail_msg("mkdirat level %zu (path length %zu): %s", i, total + 1 + lens[i],
				 strerror(errno));
		next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (next < 0)
			fail_msg("openat level %zu: %s", i, strerror(errno));
		close(cur);
		cur = next;
		total += 1 + lens[i];
		strcat(path, "/");
		strcat(path, comp);
	}
	assert_int_equal(total, PATH_MAX - 1);
	assert_int_equal(strlen(path), PATH_MAX - 1);
	/* At the bottom, relative to the fd. */
	fd = openat(cur, "f", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, msg, strlen(msg), 0), (ssize_t)strlen(msg));
	memset(buf, 0, sizeof(buf));
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), (ssize_t)strlen(msg));
	assert_string_equal(buf, msg);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, (off_t)strlen(msg));
	close(fd);
	assert_int_equal(fstatat(cur, "f", &st, 0), 0);
	assert_int_equal(mkdirat(cur, "sub", 0755), 0);
	assert_int_equal(renameat(cur, "sub", cur, "sub2"), 0);
	assert_int_equal(unlinkat(cur, "sub2", AT_REMOVEDIR), 0);
	/* The 4095-byte path itself still resolves; one more component not. */
	if (stat(path, &st))
		fail_msg("stat of the %zu-byte path: %s", strlen(path), strerror(errno));
	assert_true(S_ISDIR(st.st_mode));
	strcat(path, "/f");
	errno = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_int_equal(ERRNO_OF(stat(path, &st)), ENAMETOOLONG);
	/* The same tree in SRC (same length prefix: base/src vs base/mnt). */
	sfd = dup(f->srcfd);
	for (size_t i = 0; i < n; i++) {
		int next;

		comp_name(comp, lens[i], i);
		next = openat(sfd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (next < 0)
			fail_msg("SRC lacks level %zu: %s", i, strerror(errno));
		close(sfd);
		sfd = next;
	}
	assert_int_equal(fstatat(sfd, "f", &sst, 0), 0);
	fd = openat(sfd, "f", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)strlen(msg));
	assert_string_equal(buf, msg);
	close(fd);
	close(sfd);
	close(cur);
	printf("# deep tree: %zu levels of <= %zu bytes to a %d-byte path built in %.2f s\n",
	       n, maxcomp, PATH_MAX - 1, now_s() - t0);
	/* Remove through MNT with *at() calls only. */
	t0 = now_s();
	comp_name(comp, lens[0], 0);
	{
		int err = rm_tree_at(f->mntfd, comp);

		if (err)
			fail_msg("removing the deep tree through MNT: %s", strerror(-err));
	}
	assert_int_equal(ERRNO_OF(fstatat(f->srcfd, comp, &sst, AT_SYMLINK_NOFOLLOW)), ENOENT);
	printf("# deep tree removed through MNT with *at() calls in %.2f s\n", now_s() - t0);
	free(path);
}

static void test_deep_tree_wide(void **state)
{
	deep_tree(*state, 255);
}

static void test_deep_tree_narrow(void **state)
{
	deep_tree(*state, 1);
}

/* ==== 4. many entries ================================================== */

#define DREAD_BUF 512	/* small: many getdents64 calls, many READDIRs */

struct dreader {
	int fd;
	/* getdents64 records are 8-byte aligned within an aligned buffer */
	char buf[DREAD_BUF] __attribute__((aligned(8)));
	long len, pos;
	long calls;
};

struct dent {
	char name[256];
	int64_t off;		/* d_off: the cookie of the position after it */
};

static void dr_open(struct dreader *r, int dirfd)
{
	memset(r, 0, sizeof(*r));
	r->fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->fd < 0)
		fail_msg("opening the big directory again: %s", strerror(errno));
}

/* Next entry other than . and ..; false at the end. */
static bool dr_next(struct dreader *r, struct dent *e)
{
	for (;;) {
		struct dirent64 *d;

		if (r->pos >= r->len) {
			r->len = syscall(SYS_getdents64, r->fd, r->buf, sizeof(r->buf));
			r->calls++;
			if (r->len < 0)
				fail_msg("getdents64: %s", strerror(errno));
			r->pos = 0;
			if (r->len == 0)
				return false;
		}
		d = (struct dirent64 *)(r->buf + r->pos);
		r->pos += d->d_reclen;
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		snprintf(e->name, sizeof(e->name), "%s", d->d_name);
		e->off = d->d_off;
		return true;
	}
}

/* seekdir(): the position after the entry whose d_off this is. */
static void dr_seek(struct dreader *r, int64_t cookie)
{
	assert_int_equal(lseek(r->fd, (off_t)cookie, SEEK_SET), (off_t)cookie);
	r->pos = r->len = 0;
}

static void dr_close(struct dreader *r)
{
	close(r->fd);
}

static unsigned entries_wanted(void)
{
	const char *s = getenv("SFS_HOSTILE_ENTRIES");
	unsigned long n = s && *s ? strtoul(s, NULL, 10) : 1000000;

	return n >= 10 ? (unsigned)n : 10;
}

/* Entry i: varied lengths (so records vary), unique, parseable. */
static void entry_name(char *out, size_t size, unsigned i)
{
	static const char pad[] = "----------------------------------------------------------------";
	int padlen = (int)((i * 2654435761u) % 48);

	snprintf(out, size, "e%08u%.*s", i, padlen, pad);
}

static bool parse_entry(const char *name, unsigned n, unsigned *idx)
{
	char want[128];
	char *end;
	unsigned long i;

	if (name[0] != 'e')
		return false;
	i = strtoul(name + 1, &end, 10);
	if (end != name + 9 || i >= n)
		return false;
	entry_name(want, sizeof(want), (unsigned)i);
	if (strcmp(want, name))
		return false;
	*idx = (unsigned)i;
	return true;
}

/* One entry of a listing: which name, and its d_off. */
struct lent {
	uint32_t idx;
	int64_t off;
};

/* The list of one full pass; checks each of the n names exactly once. */
static struct lent *full_listing(int dirfd, unsigned n, const char *who, long *calls)
{
	struct lent *all = xmalloc(sizeof(*all) * (n + 1));
	unsigned char *seen = calloc(n, 1);
	struct dreader r;
	unsigned count = 0, idx, dups = 0, bad = 0, missing = 0;
	struct dent e;

	assert_non_null(seen);
	dr_open(&r, dirfd);
	while (dr_next(&r, &e)) {
		if (!parse_entry(e.name, n, &idx)) {
			if (bad++ < 5)
				printf("# %s: unexpected entry [%s]\n", who, show(e.name, 80));
			continue;
		}
		if (seen[idx]++) {
			if (dups++ < 5)
				printf("# %s: duplicate entry [%s] at position %u\n", who, e.name, count);
			continue;
		}
		if (count < n)
			all[count] = (struct lent){ idx, e.off };
		count++;
	}
	*calls = r.calls;
	dr_close(&r);
	for (unsigned i = 0; i < n; i++) {
		if (!seen[i] && missing++ < 5) {
			char nm[128];

			entry_name(nm, sizeof(nm), i);
			printf("# %s: missing entry [%s]\n", who, nm);
		}
	}
	free(seen);
	if (dups || bad || missing || count != n)
		fail_msg("%s: readdir gave %u distinct of %u names, %u duplicates, %u unexpected, %u missing",
			 who, count, n, dups, bad, missing);
	return all;
}

/* Read from r until the end; compare with want[from..n). */
static bool expect_rest(struct dreader *r, const struct lent *want, unsigned from, unsigned n,
			const char *who, bool must)
{
	struct dent e;
	unsigned i = from, idx;

	while (dr_next(r, &e)) {
		if (i >= n) {
			if (!must)
				return false;
			fail_msg("%s: extra entry [%s] after the end", who, show(e.name, 80));
		}
		if (!parse_entry(e.name, n, &idx) || idx != want[i].idx || e.off != want[i].off) {
			char nm[128];

			if (!must)
				return false;
			entry_name(nm, sizeof(nm), want[i].idx);
			fail_msg("%s: position %u is [%s] off %" PRId64 ", the first pass had [%s] off %" PRId64,
				 who, i, show(e.name, 80), e.off, nm, want[i].off);
		}
		i++;
	}
	if (i != n) {
		if (!must)
			return false;
		fail_msg("%s: ended after %u entries, the first pass had %u", who, i, n);
	}
	return true;
}

/*
 * On one directory fd: full pass (each name once), then the same handle
 * read to the middle, saved, read on, sought back (the same entries again),
 * then a new handle sought to the saved cookie. Returns whether the new
 * handle resumed identically (asserted only if required).
 */
static bool resume_checks(int dirfd, unsigned n, const char *who, bool require_cross,
			  struct lent **listing)
{
	struct dreader r, r2;
	struct dent e;
	struct lent *all;
	unsigned half = n / 2, idx;
	int64_t cookie;
	long calls;
	double t0 = now_s();
	bool cross_ok;

	all = full_listing(dirfd, n, who, &calls);
	printf("# %s: full pass of %u entries in %.2f s, %ld getdents64 calls of %d bytes\n",
	       who, n, now_s() - t0, calls, DREAD_BUF);
	t0 = now_s();
	/* Same handle: read half, tell, read on, seek back. */
	dr_open(&r, dirfd);
	for (unsigned i = 0; i < half; i++) {
		assert_true(dr_next(&r, &e));
		if (!parse_entry(e.name, n, &idx) || idx != all[i].idx)
			fail_msg("%s: second pass differs at %u: [%s]", who, i, show(e.name, 80));
	}
	cookie = all[half - 1].off;	/* telldir() after entry half-1 */
	for (unsigned i = half; i < half + 1000 && i < n; i++) {
		assert_true(dr_next(&r, &e));
		assert_true(parse_entry(e.name, n, &idx) && idx == all[i].idx);
	}
	dr_seek(&r, cookie);
	expect_rest(&r, all, half, n, who, true);
	/* Seek back to near the start, then to near the end. */
	dr_seek(&r, all[0].off);
	expect_rest(&r, all, 1, n, who, true);
	dr_seek(&r, all[n - 2].off);
	expect_rest(&r, all, n - 1, n, who, true);
	dr_close(&r);
	/* A new handle, seeking to the saved cookie. */
	dr_open(&r2, dirfd);
	dr_seek(&r2, cookie);
	cross_ok = expect_rest(&r2, all, half, n, who, require_cross);
	dr_close(&r2);
	printf("# %s: telldir/seekdir resume checks (same handle 3x, new handle 1x) in %.2f s\n",
	       who, now_s() - t0);
	*listing = all;
	return cross_ok;
}

static void many_entries(struct fixture *f, unsigned n)
{
	struct lent *raw, *via;
	char name[128];
	double t0 = now_s();
	int mdir, sdir;
	bool raw_cross, same_cookies = true;
	char create_err[256] = "";
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	printf("# many entries: N=%u; fd limit %llu/%llu\n", n,
	       (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
	assert_int_equal(mkdirat(f->mntfd, "many", 0755), 0);
	mdir = openat(f->mntfd, "many", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sdir = openat(f->srcfd, "many", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(mdir >= 0 && sdir >= 0);
	for (unsigned i = 0; i < n; i++) {
		entry_name(name, sizeof(name), i);
		if (mknodat(mdir, name, S_IFREG | 0644, 0)) {
			/* Go on with the rest created in SRC directly, so that
			 * readdir is still tried; the test fails at the end. */
			snprintf(create_err, sizeof(create_err),
				 "mknodat entry %u of %u through MNT: %s", i, n, strerror(errno));
			printf("# FAIL %s; the remaining %u are created in SRC directly\n",
			       create_err, n - i);
			for (; i < n; i++) {
				entry_name(name, sizeof(name), i);
				assert_int_equal(mknodat(sdir, name, S_IFREG | 0644, 0), 0);
			}
			break;
		}
		if (i && i % 100000 == 0)
			printf("# ... %u created (%.1f s)\n", i, now_s() - t0);
	}
	printf("# created %u entries in %.2f s\n", n, now_s() - t0);
	/* SRC directly: the twin, and what cookies can promise. */
	raw_cross = resume_checks(sdir, n, "SRC", false, &raw);
	printf("# SRC: a new handle %s at a saved cookie\n",
	       raw_cross ? "resumes identically" : "does NOT resume");
	resume_checks(mdir, n, "MNT", raw_cross, &via);
	for (unsigned i = 0; i < n; i++) {
		if (raw[i].idx != via[i].idx) {
			printf("# MNT order differs from SRC at %u\n", i);
			same_cookies = false;
			break;
		}
		if (raw[i].off != via[i].off) {
			printf("# MNT cookies differ from SRC at %u\n", i);
			same_cookies = false;
			break;
		}
	}
	if (same_cookies)
		printf("# MNT lists SRC's order with SRC's cookies (d_off passed through)\n");
	/* Entries still resolve by name after all this (daemon fd pressure). */
	for (unsigned i = 0; i < n; i += n / 97 + 1) {
		struct stat st;

		entry_name(name, sizeof(name), i);
		if (fstatat(mdir, name, &st, AT_SYMLINK_NOFOLLOW))
			fail_msg("stat entry %u after readdir: %s", i, strerror(errno));
	}
	free(raw);
	free(via);
	close(mdir);
	close(sdir);
	printf("# many entries: %.1f s in all\n", now_s() - t0);
	if (create_err[0])
		fail_msg("%s", create_err);
}

/* Readdir resume on its own, with few entries. */
static void test_readdir_resume(void **state)
{
	unsigned n = entries_wanted();

	many_entries(*state, n < 10000 ? n : 10000);
}

/*
 * N entries (SFS_HOSTILE_ENTRIES, default 1,000,000), all created through
 * MNT, so the kernel caches (and the daemon keeps an entry for) each one:
 * far more inodes than the daemon may hold fds (-o fd_cache=4096 here; the
 * default, half the fd limit, was 10,000 where this was written). Entries
 * keep file handles: the fds open stay within the budget. A file looked up
 * before them all has long lost its fd when fstat() of an O_PATH fd (a
 * GETATTR, no lookup to bring a fresh fd) asks for it: reopened by handle.
 */
static void test_many_entries(void **state)
{
	struct fixture *f = *state;
	long long inodes, fds, closed, reopened;
	struct stat via, raw;
	int probe;

	assert_int_equal(mknodat(f->mntfd, "probe", S_IFREG | 0644, 0), 0);
	probe = openat(f->mntfd, "probe", O_PATH | O_CLOEXEC);
	assert_true(probe >= 0);
	many_entries(f, entries_wanted());
	assert_int_equal(fstat(probe, &via), 0);
	assert_int_equal(fstatat(f->srcfd, "probe", &raw, 0), 0);
	assert_int_equal(via.st_ino, raw.st_ino);
	close(probe);
	inodes = mount_counter(f->m.mnt, "inodes");
	fds = mount_counter(f->m.mnt, "inode_fds_open");
	closed = mount_counter(f->m.mnt, "inode_fds_closed_total");
	reopened = mount_counter(f->m.mnt, "inode_fds_reopened_total");
	printf("# daemon: %lld inodes cached, %lld of their fds open (%lld closed "
	       "over budget, %lld reopened from file handles)\n",
	       inodes, fds, closed, reopened);
	assert_true(inodes > SMALL_FD_CACHE);
	assert_in_range(fds, 1, SMALL_FD_CACHE);
	assert_true(closed >= inodes - SMALL_FD_CACHE);
	assert_true(reopened > 0);
}

/* ==== 5. sparse files at 8 TiB ========================================= */

static void fill(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('A' + (seed + i) % 26);
}

static void test_sparse_8tib(void **state)
{
	struct fixture *f = *state;
	const off_t a = 8 * TiB - 4096, b = 8 * TiB + MiB, size = b + 4096;
	char wbuf[4096], rbuf[4096], zero[4096];
	int probe, w, r, s;
	struct stat st;
	off_t lim;
	int e_raw, e_mnt;

	memset(zero, 0, sizeof(zero));
	/* Can SRC's filesystem hold it at all? */
	probe = openat(f->srcfd, "probe", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(probe >= 0);
	if (pwrite(probe, "x", 1, b) != 1) {
		printf("# SRC cannot hold a file past 8 TiB (%s): skipped\n", strerror(errno));
		close(probe);
		unlinkat(f->srcfd, "probe", 0);
		skip();
	}
	assert_int_equal(ftruncate(probe, 0), 0);

	w = openat(f->mntfd, "sparse", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(w >= 0);
	assert_int_equal(pwrite(w, "0123456789", 10, 0), 10);
	/* The snapshot, opened before the big writes. */
	r = openat(f->mntfd, "sparse", O_RDONLY | O_CLOEXEC);
	assert_true(r >= 0);

	fill(wbuf, sizeof(wbuf), 1);
	assert_int_equal(pwrite(w, wbuf, 4096, a), 4096);
	fill(wbuf, sizeof(wbuf), 2);
	assert_int_equal(pwrite(w, wbuf, 4096, b), 4096);
	assert_int_equal(fstat(w, &st), 0);
	assert_int_equal(st.st_size, size);
	printf("# sparse: size %lld, %lld blocks allocated\n", (long long)st.st_size,
	       (long long)st.st_blocks);
	assert_true(st.st_blocks < 1024);
	/* SEEK_DATA/SEEK_HOLE as on SRC directly. */
	s = openat(f->srcfd, "sparse", O_RDONLY | O_CLOEXEC);
	assert_true(s >= 0);
	{
		static const struct { off_t from; int whence; } q[] = {
			{ 0, SEEK_DATA }, { 4096, SEEK_DATA }, { 0, SEEK_HOLE },
			{ 8 * TiB - 4096, SEEK_HOLE }, { 8 * TiB, SEEK_DATA },
			{ 8 * TiB + MiB, SEEK_HOLE }, { 4 * TiB, SEEK_DATA }, { 4 * TiB, SEEK_HOLE },
			{ 8 * TiB + MiB + 4096, SEEK_DATA }, { 9 * TiB, SEEK_HOLE },
		};

		for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
			off_t raw = lseek(s, q[i].from, q[i].whence);
			int raw_e = raw < 0 ? errno : 0;
			off_t mnt = lseek(w, q[i].from, q[i].whence);
			int mnt_e = mnt < 0 ? errno : 0;

			if (raw != mnt || raw_e != mnt_e)
				fail_msg("lseek(%lld, %s): MNT %lld (%s), SRC %lld (%s)",
					 (long long)q[i].from, q[i].whence == SEEK_DATA ? "DATA" : "HOLE",
					 (long long)mnt, strerror(mnt_e), (long long)raw, strerror(raw_e));
		}
		assert_int_equal(lseek(w, 4096, SEEK_DATA), a);
	}
	/* Reads: zeros at 4 TiB, the data, a short read at the end. */
	memset(rbuf, 1, sizeof(rbuf));
	assert_int_equal(pread(w, rbuf, 4096, 4 * TiB), 4096);
	assert_memory_equal(rbuf, zero, 4096);
	fill(wbuf, sizeof(wbuf), 1);
	assert_int_equal(pread(w, rbuf, 4096, a), 4096);
	assert_memory_equal(rbuf, wbuf, 4096);
	assert_int_equal(pread(w, rbuf, 4096, b + 2048), 2048);
	assert_int_equal(pread(w, rbuf, 4096, size), 0);
	/* Through a fresh read-only open (a snapshot of now), too. */
	{
		int r2 = openat(f->mntfd, "sparse", O_RDONLY | O_CLOEXEC);

		assert_true(r2 >= 0);
		assert_int_equal(fstat(r2, &st), 0);
		assert_int_equal(st.st_size, size);
		fill(wbuf, sizeof(wbuf), 2);
		assert_int_equal(pread(r2, rbuf, 4096, b), 4096);
		assert_memory_equal(rbuf, wbuf, 4096);
		assert_int_equal(pread(r2, rbuf, 4096, 4 * TiB), 4096);
		assert_memory_equal(rbuf, zero, 4096);
		close(r2);
	}
	/* The early snapshot: its size and bytes, nothing past them. */
	assert_int_equal(fstat(r, &st), 0);
	assert_int_equal(st.st_size, 10);
	assert_int_equal(pread(r, rbuf, 4096, a), 0);
	assert_int_equal(pread(r, rbuf, 4096, 10), 0);
	assert_int_equal(pread(r, rbuf, 4096, 0), 10);
	assert_memory_equal(rbuf, "0123456789", 10);
	{
		off_t d = lseek(r, 4096, SEEK_DATA);

		printf("# early snapshot: lseek(4096, SEEK_DATA) = %lld (%s)\n", (long long)d,
		       d < 0 ? strerror(errno) : "ok");
		if (!(d < 0 && errno == ENXIO))
			fail_msg("the 10-byte snapshot finds data at %lld past its size", (long long)d);
	}
	/* Back to nothing; the snapshot keeps its 10 bytes. */
	assert_int_equal(ftruncate(w, 0), 0);
	assert_int_equal(fstat(w, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(fstat(s, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(pread(r, rbuf, 4096, 0), 10);
	assert_memory_equal(rbuf, "0123456789", 10);
	assert_int_equal(fstat(r, &st), 0);
	assert_int_equal(st.st_size, 10);
	close(r);

	/* The size limit: the same answer as SRC's filesystem. */
	for (int k = 0; k < 6; k++) {
		static const off_t offs[] = { 16 * TiB - 8192, 16 * TiB - 4097, 16 * TiB - 4096,
					      16 * TiB, 1LL << 62, INT64_MAX - 1 };

		lim = offs[k];
		e_raw = pwrite(probe, "x", 1, lim) == 1 ? 0 : errno;
		e_mnt = pwrite(w, "x", 1, lim) == 1 ? 0 : errno;
		if (e_raw != e_mnt)
			fail_msg("pwrite at %lld: MNT %s, SRC %s", (long long)lim, strerror(e_mnt),
				 strerror(e_raw));
		printf("# pwrite 1 byte at %lld: %s (same as SRC)\n", (long long)lim,
		       e_mnt ? strerror(e_mnt) : "ok");
		assert_int_equal(ftruncate(w, 0), 0);
		assert_int_equal(ftruncate(probe, 0), 0);
	}
	close(s);
	close(w);
	close(probe);
	assert_int_equal(unlinkat(f->mntfd, "sparse", 0), 0);
	assert_int_equal(unlinkat(f->srcfd, "probe", 0), 0);
}

/* ---- main ------------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_option_fuzz, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_option_lenient, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_odd_values_mount, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_odd_paths_mount, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_odd_names, setup_mounted, teardown),
		cmocka_unit_test_setup_teardown(test_name_lengths, setup_mounted, teardown),
		cmocka_unit_test_setup_teardown(test_deep_tree_wide, setup_mounted, teardown),
		cmocka_unit_test_setup_teardown(test_deep_tree_narrow, setup_mounted, teardown),
		cmocka_unit_test_setup_teardown(test_readdir_resume, setup_mounted, teardown),
		cmocka_unit_test_setup_teardown(test_many_entries,
						setup_mounted_small_fd_cache, teardown),
		cmocka_unit_test_setup_teardown(test_sparse_8tib, setup_mounted, teardown),
	};

	test_require_fuse();
	return cmocka_run_group_tests_name("hostile", tests, NULL, NULL);
}
