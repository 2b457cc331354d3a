#include "test_util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static bool report;

void io_messages(bool on)
{
	report = on;
}

/* Report (if asked) the failed call; n == 0 means it made no progress. */
static int io_failed(const char *what, ssize_t n, const char *on_zero)
{
	int err = n == 0 ? EIO : errno;

	if (report)
		fprintf(stderr, "%s: %s\n", what,
			n == 0 && on_zero ? on_zero : strerror(err));
	errno = err;	/* callers look at it: keep it past fprintf() */
	return -1;
}

int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return io_failed("pwrite", n, NULL);
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return io_failed("write", n, NULL);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int pread_all(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return io_failed("pread", n, "EOF");
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int splice_all(int fd, loff_t off, int pipe_w, size_t len)
{
	while (len > 0) {
		ssize_t n = splice(fd, &off, pipe_w, NULL, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return io_failed("splice", n, "EOF");
		len -= (size_t)n;
	}
	return 0;
}

long drain_pipe(int pipe_r, unsigned char *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		ssize_t n = read(pipe_r, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return io_failed("read(pipe)", n, NULL);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (long)got;
}

int make_pipe(int p[2], int size)
{
	if (pipe2(p, O_CLOEXEC))
		return io_failed("pipe2", -1, NULL);
	if (fcntl(p[1], F_SETPIPE_SZ, size) < 0) {
		io_failed("F_SETPIPE_SZ", -1, NULL);
		close_fd(&p[0]);
		close_fd(&p[1]);
		return -1;
	}
	return 0;
}

const char *const filler_name[N_FILLERS] = {
	[BY_SPLICE] = "splice",
	[BY_SENDFILE] = "sendfile",
	[BY_TEE] = "tee",
};

/* Move up to len bytes of fd at off into the pipe, stopping at EOF. */
static long pipe_in(enum filler how, int fd, long off, int pipe_w, long len)
{
	long done = 0;

	while (done < len) {
		loff_t lo = off + done;
		off_t so = off + done;
		ssize_t n = how == BY_SENDFILE
			? sendfile(pipe_w, fd, &so, (size_t)(len - done))
			: splice(fd, &lo, pipe_w, NULL, (size_t)(len - done), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;	/* EOF */
		done += n;
	}
	return done;
}

int fill_pipe(enum filler how, int fd, long off, long len, int pipe_size,
	      long *got)
{
	int a[2], b[2];
	ssize_t n;

	if (make_pipe(a, pipe_size))
		return -1;
	*got = pipe_in(how, fd, off, a[1], len);
	close(a[1]);
	if (*got < 0) {
		close(a[0]);
		return -1;
	}
	if (how != BY_TEE || *got == 0)
		return a[0];
	if (make_pipe(b, pipe_size)) {
		close(a[0]);
		return -1;
	}
	n = tee(a[0], b[1], (size_t)*got, 0);
	close(a[0]);
	close(b[1]);
	if (n != *got) {
		close(b[0]);
		errno = n < 0 ? errno : EIO;
		return -1;
	}
	return b[0];
}

bool supervise_run(atomic_bool *stop, long (*progress)(void *arg), void *arg,
		   double seconds, int stall_s, pid_t daemon_pid,
		   const char *label)
{
	double start = now_s(), last_move = start;
	long last = -1;

	for (;;) {
		long done = progress(arg);
		double t = now_s();

		if (done != last) {
			last = done;
			last_move = t;
		}
		if (t - start >= seconds)
			atomic_store(stop, true);
		if (t - last_move >= stall_s) {
			printf("# %s: no progress for %d s: deadlock, killing "
			       "daemon %d\n", label, stall_s, (int)daemon_pid);
			fflush(stdout);
			if (daemon_pid > 0)
				kill(daemon_pid, SIGKILL);
			atomic_store(stop, true);
			return false;
		}
		if (atomic_load(stop))
			return true;
		sleep_us(100000);
	}
}

void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

unsigned char pattern_byte(long pos)
{
	return (unsigned char)((pos % 251) + 1);
}

unsigned char new_byte(long pos)
{
	return (unsigned char)~pattern_byte(pos);
}

void fill_pattern(unsigned char *buf, long pos, long len, bool fresh)
{
	for (long i = 0; i < len; i++)
		buf[i] = fresh ? new_byte(pos + i) : pattern_byte(pos + i);
}

void compare_with_pattern(const unsigned char *got, long pos, long len,
			  struct pipe_change *c)
{
	memset(c, 0, sizeof(*c));
	c->first = c->last = -1;
	for (long i = 0; i < len; i++) {
		if (got[i] == pattern_byte(pos + i))
			continue;
		c->changed++;
		if (got[i] == 0)
			c->zeroed++;
		else if (got[i] == new_byte(pos + i))
			c->rewritten++;
		if (c->first < 0)
			c->first = i;
		c->last = i;
	}
}

int join_path(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	return n > 0 && n < PATH_MAX ? 0 : -1;
}

void path_in(char *out, const char *dir, const char *name)
{
	if (join_path(out, dir, name))
		fail_msg("path too long: %s/%s", dir, name);
}

const char *tmp_base(void)
{
	const char *tmp = getenv("TMPDIR");

	return tmp && *tmp ? tmp : "/tmp";
}

bool is_ext4(const char *path)
{
	struct statfs s;

	return statfs(path, &s) == 0 && s.f_type == EXT4_MAGIC;
}

static void sleep_ts(struct timespec ts)
{
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

void sleep_ms(long ms)
{
	sleep_ts((struct timespec){ ms / 1000, (ms % 1000) * 1000000L });
}

void sleep_us(long us)
{
	sleep_ts((struct timespec){ us / 1000000, (us % 1000000) * 1000 });
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

bool wait_pid_ms(pid_t pid, int *status, long ms)
{
	long end = now_ms() + ms;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return true;
		if (r == -1 && errno != EINTR)
			return false;
		if (now_ms() >= end)
			return false;
		sleep_ms(5);
	}
}

uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

long rnd_below(uint64_t *s, long n)
{
	return n > 0 ? (long)(rnd(s) % (uint64_t)n) : 0;
}

long rnd_off(uint64_t *s, long limit)
{
	long off = rnd_below(s, limit);

	return rnd(s) & 1 ? off & ~(4096L - 1) : off;
}

double stress_seconds(double dflt)
{
	const char *s = getenv("SFS_STRESS_SECONDS");
	double v = s && *s ? atof(s) : dflt;

	return v > 0 ? v : dflt;
}

ssize_t read_mount_stats(const char *mnt, char *buf, size_t cap)
{
	ssize_t n = getxattr(mnt, STATS_XATTR, buf, cap - 1);

	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

long long stats_value(const char *json, const char *name)
{
	char key[128];
	const char *p;

	snprintf(key, sizeof(key), "\"%s\":", name);
	p = strstr(json, key);
	return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

long long mount_counter(const char *mnt, const char *name)
{
	char buf[8192];

	if (read_mount_stats(mnt, buf, sizeof(buf)) < 0)
		return -1;
	return stats_value(buf, name);
}

void print_mount_stats(const char *mnt)
{
	char buf[8192];

	if (read_mount_stats(mnt, buf, sizeof(buf)) >= 0)
		printf("# stats: %s\n", buf);
}
