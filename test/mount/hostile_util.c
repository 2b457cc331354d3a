/* What the hostile-input tests share (hostile_util.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hostile_util.h"
#include "test_util.h"

/* ---- small helpers ---------------------------------------------------- */

void *xmalloc(size_t n)
{
	void *p = malloc(n);

	assert_non_null(p);
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

/* printf into a fresh heap string */
char *aprintf(const char *fmt, ...)
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
const char *show(const char *s, size_t max)
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

static uint64_t rng_state = 1;

void rng_seed(uint64_t seed)
{
	rng_state = seed ? seed : 1;
}

uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

unsigned rng_below(unsigned n)
{
	return (unsigned)(rng() % n);
}

/* ---- removing trees with *at() calls only ----------------------------- */

/*
 * Remove parent/name and everything below it without ever building a path:
 * descend with openat(), climb back with openat(fd, ".."), one fd held at a
 * time, so trees deeper than PATH_MAX and directories of any size go.
 * Returns 0 or the errno of the first failure (and keeps going where it can).
 */
int rm_tree_at(int parent, const char *name)
{
	char **stack = NULL;
	size_t depth = 0, cap = 0;
	int first_err = 0;
	int cur;
	struct stat st;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? 0 : errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parent, name, 0) ? errno : 0;
	cur = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cur < 0)
		return errno;
	for (;;) {
		int dfd = dup(cur);
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		char *sub = NULL;
		struct dirent *e;

		if (!d) {
			first_err = first_err ? first_err : errno;
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
				first_err = errno;
		}
		closedir(d);
		if (sub) {
			int next = openat(cur, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (next < 0) {
				first_err = first_err ? first_err : errno;
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
				first_err = errno;
			break;
		} else {
			int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			close(cur);
			cur = up;
			if (up < 0) {
				first_err = first_err ? first_err : errno;
				break;
			}
			depth--;
			if (unlinkat(up, stack[depth], AT_REMOVEDIR) && !first_err)
				first_err = errno;
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
bool mounted_at(const char *path)
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

int setup_plain(void **state)
{
	return setup_common(state, false, NULL);
}

int setup_mounted(void **state)
{
	return setup_common(state, true, NULL);
}


int setup_mounted_small_fd_cache(void **state)
{
	return setup_common(state, true, SMALL_FD_CACHE_OPT);
}

int teardown(void **state)
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
			fprintf(stderr, "# teardown: removing %s: %s\n", f->m.base, strerror(err));
	}
	free(f);
	return 0;
}

