/*
 * Mounting stablefs from a test: fresh temporary directories every time,
 * always unmounted (also when the test dies), only our own daemon killed.
 */
#ifndef SFS_TEST_MOUNT_UTIL_H
#define SFS_TEST_MOUNT_UTIL_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>


struct test_mount {
	char base[PATH_MAX - 64];	/* fresh mkdtemp() directory holding both */
	char src[PATH_MAX];	/* base/src: the backing directory */
	char mnt[PATH_MAX];	/* base/mnt: the mount point */
	pid_t pid;		/* the daemon we started, or 0 */
	bool mounted;
	bool loop_src;		/* src is a loop filesystem (test_loop_src) */
};

/* Print the TAP "skip everything" plan and exit 77 (meson: skipped). */
void test_skip_all(const char *why) __attribute__((noreturn));

/* Skip unless /dev/fuse can be opened and fusermount3 exists. */
void test_require_fuse(void);

/*
 * Can this process mount stablefs: /dev/fuse opens, the stablefs binary is
 * executable and fusermount3 is installed? (For tests that skip per case.)
 */
bool test_can_mount(void);

/* Fresh base dir under $TMPDIR (or /tmp) with empty src/ and mnt/. */
int test_mount_prepare(struct test_mount *m, const char *tag);

/*
 * Start "$STABLEFS_BIN -f [-o opts] src mnt" and wait until mnt is a FUSE
 * mount. Returns 0, or -1 with a message on stderr (daemon reaped).
 */
int test_mount_start(struct test_mount *m, const char *opts);

/*
 * A fixture's mount: prepare and start with opts. 0 once mounted, or 0
 * with *skip_why set where this machine cannot mount (the fixture's tests
 * then skip); -1 if it failed. Either way m->base[0] says whether there
 * is something for test_mount_finish() to clean up.
 */
int test_mount_setup(struct test_mount *m, const char *tag, const char *opts,
		     const char **skip_why);

/*
 * Only start "$STABLEFS_BIN -f [-o opts] src mnt" (tracked: stopped if the
 * test dies), without waiting for the mount. A caller that reaps the daemon
 * itself sets m->pid to 0; one that saw it mounted sets m->mounted.
 */
int test_mount_spawn(struct test_mount *m, const char *opts);

/* Unmount (fusermount3 -u, then -u -z), reap the daemon, keep the dirs. */
int test_mount_stop(struct test_mount *m);

/* test_mount_stop(), test_loop_unmount(), and remove the base directory
 * tree (never with a loop filesystem still mounted inside it). */
void test_mount_destroy(struct test_mount *m);

/*
 * A test's mount is done with: test_mount_stop(), then test_mount_destroy().
 * Says on stderr what was amiss; -1 if the unmount or the daemon's exit was
 * not clean, or the mount is somehow still there.
 */
int test_mount_finish(struct test_mount *m);

/*
 * A fresh filesystem on a loop device as m's SRC: an image of size_mib in
 * m->base made by mkfs (e.g. "mkfs.xfs -q -m reflink=1"), mounted on
 * m->src. 0 or -1. test_loop_unmount() detaches it (after the stablefs
 * mount is gone); harmless if it was never mounted.
 */
int test_loop_src(struct test_mount *m, const char *mkfs, int size_mib);
void test_loop_unmount(struct test_mount *m);

/*
 * A fixture over a fresh loop filesystem: prepare, test_loop_src() and, if
 * start, test_mount_start(m, opts) (opts NULL: the defaults). 0 or -1; on
 * -1 everything it made is gone again (cmocka runs no teardown after a
 * failed setup, so a half-made fixture would leave a loop mount behind).
 */
int test_loop_setup(struct test_mount *m, const char *tag, const char *mkfs,
		    int size_mib, bool start, const char *opts);

/* system() of a printf-formatted command; its status. */
int test_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Path of the stablefs binary under test ($STABLEFS_BIN or ./fs/stablefs). */
const char *test_stablefs_bin(void);

/*
 * Abort the FUSE connection with this device minor (minor(st_dev) of the
 * mount): /sys/fs/fuse/connections/<minor>/abort. For a hung daemon: every
 * request in flight fails with ECONNABORTED. Says on stdout if it cannot,
 * and returns -1 then.
 */
int test_abort_connection(unsigned minor);
/*
 * SIGSTOP pid and wait (up to 10 s) until every thread of it is stopped.
 * kill() returns before that: a FUSE daemon's thread woken in
 * read(/dev/fuse) by the signal still takes a request that arrives before
 * it stops, and a request it has read leaves the sender waiting
 * uninterruptibly until it is answered; once stopped, its read restarts
 * only after SIGCONT. False if it could not be stopped.
 */
bool test_stop_threads(pid_t pid);

/* fusermount3 flags mnt (e.g. "-u", "-uz"), its output discarded. */
void test_fusermount(const char *flags, const char *mnt);

/* Remove a directory tree (no symlink following). */
int test_rm_rf(const char *path);

/* Is path the root of a FUSE mount of type fuse.stablefs? */
bool test_is_stablefs_mount(const char *path);

#endif
