/*
 * Small helpers shared by the mount tests (linked with mount_util.c).
 *
 * Nothing here knows about stablefs except the stats xattr; the helpers
 * are the loops every test would otherwise write again: whole-buffer I/O,
 * pipes for splice, the byte pattern, clocks and sleeps.
 *
 * Error convention of the I/O helpers: 0 (or a byte count) on success, -1
 * with errno set on failure; a call that makes no progress (0 bytes where
 * more were expected) counts as a failure with errno EIO. They are silent
 * unless io_messages(true) was called, then they also say on stderr what
 * failed ("pwrite: <error>"), as the tests that want that always did.
 */
#ifndef SFS_TEST_TEST_UTIL_H
#define SFS_TEST_TEST_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EXT4_MAGIC 0xEF53
#define STATS_XATTR "user.stablefs.stats"

/* Whether the I/O helpers below report failures on stderr (default off). */
void io_messages(bool on);

/* ---- whole-buffer I/O (retry on EINTR and short transfers) ---------- */

int pwrite_all(int fd, const void *buf, size_t len, off_t off);
int write_all(int fd, const void *buf, size_t len);

/* Exactly len bytes at off; hitting EOF first is a failure. */
int pread_all(int fd, void *buf, size_t len, off_t off);

/* splice exactly len bytes of fd at off into the pipe's write end. */
int splice_all(int fd, loff_t off, int pipe_w, size_t len);

/*
 * Read the pipe until EOF (the write end must be closed) or until buf is
 * full, whichever comes first; returns the bytes read, or -1.
 */
long drain_pipe(int pipe_r, unsigned char *buf, size_t cap);

/* pipe2(O_CLOEXEC) resized with F_SETPIPE_SZ to at least size bytes. */
int make_pipe(int p[2], int size);

/*
 * How bytes of a file get into a pipe: splice(2), sendfile(2) (the kernel
 * splices file pages into a pipe, 5.12+), or splice into pipe A then
 * tee(2) into B and close A: tee copies page *references*, so B then
 * holds the only ones and must be exactly as stable as a spliced pipe.
 */
enum filler { BY_SPLICE, BY_SENDFILE, BY_TEE, N_FILLERS };
extern const char *const filler_name[N_FILLERS];

/*
 * Fill a new pipe of pipe_size bytes with up to len bytes of fd at off,
 * stopping at end of file: its read end (write end closed, so draining
 * ends at EOF) with *got bytes in it, or -1 with errno.
 */
int fill_pipe(enum filler how, int fd, long off, long len, int pipe_size,
	      long *got);

/*
 * Watch a stress run for `seconds`, then set *stop (workers set it too,
 * on an error). progress(arg) counts work done: standing still for
 * stall_s seconds means a deadlock — the daemon (daemon_pid > 0) is
 * SIGKILLed so the workers' calls return, and false is returned (label
 * names the run in the message). True once *stop is set.
 */
bool supervise_run(atomic_bool *stop, long (*progress)(void *arg), void *arg,
		   double seconds, int stall_s, pid_t daemon_pid,
		   const char *label);

/* close(*fd) if open, and mark it closed (-1). */
void close_fd(int *fd);

/* ---- the test pattern ------------------------------------------------ */

/*
 * Never zero (so a zeroed byte always counts as changed) and not periodic
 * with the page size (so a byte moved to another page is noticed too).
 */
unsigned char pattern_byte(long pos);

/* The bytes a modification writes: differ from the pattern everywhere. */
unsigned char new_byte(long pos);

/* buf = the bytes at file offset pos.. of the pattern (or new_byte()s). */
void fill_pattern(unsigned char *buf, long pos, long len, bool fresh);

/* How drained bytes differ from the pattern they had when spliced. */
struct pipe_change {
	long changed;		/* bytes that differ from splice time */
	long zeroed;		/* ... of which are now 0 */
	long rewritten;		/* ... of which are new_byte()s */
	long first, last;	/* range of changed offsets in got, or -1 */
};

/* Compare got (len bytes spliced from file offset pos) with the pattern. */
void compare_with_pattern(const unsigned char *got, long pos, long len,
			  struct pipe_change *c);

/* ---- paths and file systems ------------------------------------------ */

/* dir/name into out[PATH_MAX]; -1 if it does not fit. */
int join_path(char *out, const char *dir, const char *name);

/* dir/name into out[PATH_MAX]; a cmocka failure if it does not fit. */
void path_in(char *out, const char *dir, const char *name);

/* $TMPDIR, or /tmp when unset or empty. */
const char *tmp_base(void);

/* Does path live on ext4? */
bool is_ext4(const char *path);

/* ---- time and processes ---------------------------------------------- */

/* Sleep the whole time, also when a signal interrupts nanosleep(). */
void sleep_ms(long ms);
void sleep_us(long us);

/* CLOCK_MONOTONIC in seconds / milliseconds. */
double now_s(void);
long now_ms(void);

/* waitpid() with a deadline: true if pid was reaped (status filled). */
bool wait_pid_ms(pid_t pid, int *status, long ms);

/* ---- randomness for the stress tests (xorshift64*, state per thread) - */

uint64_t rnd(uint64_t *s);

/* Uniform-ish in [0, n); 0 if n <= 0. */
long rnd_below(uint64_t *s, long n);

/* A random offset below limit: half the time page-aligned (K1 vs K2). */
long rnd_off(uint64_t *s, long limit);

/* $SFS_STRESS_SECONDS if set and > 0, else dflt. */
double stress_seconds(double dflt);

/* ---- the mount's counters (STATS_XATTR: flat JSON {"name":value,...}) */

/* The raw JSON, NUL-terminated, into buf; its length, or -1 (errno). */
ssize_t read_mount_stats(const char *mnt, char *buf, size_t cap);

/* The value of "name" in such JSON, or -1 if it is not there. */
long long stats_value(const char *json, const char *name);

/* One counter of the mount at mnt, or -1 if unreadable or absent. */
long long mount_counter(const char *mnt, const char *name);

/* "# stats: <json>" on stdout, if the stats can be read. */
void print_mount_stats(const char *mnt);

#endif
