/*
 * What the hostile-input tests share (hostile_options.c, hostile_edges.c,
 * hostile_entries.c): allocation that fails the test, printable renderings
 * of hostile bytes, a reproducible PRNG, removing trees deeper than
 * PATH_MAX, and the fixtures: a fresh SRC, and MNT mounted or not.
 */
#ifndef SFS_TEST_HOSTILE_UTIL_H
#define SFS_TEST_HOSTILE_UTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mount_util.h"

#define KiB 1024LL
#define MiB (1024 * KiB)
#define TiB (1024LL * 1024 * MiB)

/* Fewer inode fds than test_many_entries caches inodes (inode_table.h). */
#define SMALL_FD_CACHE 4096
#define SMALL_FD_CACHE_OPT "fd_cache=4096"

struct fixture {
	struct test_mount m;
	int mntfd;		/* O_DIRECTORY fd of MNT while mounted, or -1 */
	int srcfd;		/* O_DIRECTORY fd of SRC */
	char cwd[PATH_MAX];	/* base/cwd: an empty directory for children */
};

/* malloc, strdup and asprintf that fail the test instead of returning NULL. */
void *xmalloc(size_t n);
char *xstrdup(const char *s);
char *aprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A printable rendering of arbitrary bytes, at most ~max chars (one of
 * four static buffers: four may be used in one printf). */
const char *show(const char *s, size_t max);

/* A reproducible PRNG (xorshift64*): seed 0 means 1. */
void rng_seed(uint64_t seed);
uint64_t rng(void);
unsigned rng_below(unsigned n);

/*
 * Remove parent/name and everything below it without ever building a
 * path (trees deeper than PATH_MAX go too): 0 or the first errno.
 */
int rm_tree_at(int parent, const char *name);

/* Is anything mounted exactly at path (any type)? */
bool mounted_at(const char *path);

/* Fixtures: SRC and an empty cwd for children; MNT mounted or not. */
int setup_plain(void **state);
int setup_mounted(void **state);
int setup_mounted_small_fd_cache(void **state);	/* -o SMALL_FD_CACHE_OPT */
int teardown(void **state);

#endif
