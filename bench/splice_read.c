/*
 * Sequential read throughput of one file, two ways: splice(2) into a pipe
 * drained to /dev/null, and read(2) into a buffer. 1 MiB chunks. The file
 * is opened O_RDONLY, or O_RDWR with "rw" (on stablefs: the live file
 * instead of a snapshot).
 *   splice_read FILE [splice|read] [repeats] [ro|rw]
 *   splice_read - memcpy        memcpy of 1 GiB, 1 MiB at a time, between
 *                               two buffers touched before: the reference
 * Prints one line per run: "<mode> <MiB/s>".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long by_splice(int fd, int null)
{
	int p[2];
	long long total = 0;
	ssize_t n;

	if (pipe(p) || fcntl(p[1], F_SETPIPE_SZ, CHUNK) < 0)
		return -1;
	while ((n = splice(fd, NULL, p[1], NULL, CHUNK, SPLICE_F_MOVE)) > 0) {
		total += n;
		while (n > 0) {
			ssize_t m = splice(p[0], NULL, null, NULL, (size_t)n, SPLICE_F_MOVE);

			if (m <= 0)
				return -1;
			n -= m;
		}
	}
	close(p[0]);
	close(p[1]);
	return n < 0 ? -1 : total;
}

static long long by_read(int fd)
{
	static char buf[CHUNK];
	long long total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	return n < 0 ? -1 : total;
}

#define MEMCPY_SIZE ((size_t)1 << 30)

/* Two buffers of MEMCPY_SIZE, touched, so that only copies are timed. */
static char *memcpy_buffers(void)
{
	char *a = malloc(2 * MEMCPY_SIZE);

	if (a)
		memset(a, 1, 2 * MEMCPY_SIZE);
	return a;
}

static long long by_memcpy(char *a)
{
	if (!a)
		return -1;
	for (size_t off = 0; off < MEMCPY_SIZE; off += CHUNK)
		memcpy(a + MEMCPY_SIZE + off, a + off, CHUNK);
	return (long long)MEMCPY_SIZE;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "splice";
	int repeats = argc > 3 ? atoi(argv[3]) : 1;
	int null = open("/dev/null", O_WRONLY);
	char *bufs = strcmp(mode, "memcpy") ? NULL : memcpy_buffers();

	if (argc < 2 || null < 0) {
		fprintf(stderr, "usage: splice_read FILE [splice|read] [repeats] [ro|rw]\n"
			"       splice_read - memcpy [repeats]\n");
		return 2;
	}
	for (int r = 0; r < repeats; r++) {
		int memcpy_only = !strcmp(mode, "memcpy");
		int fd = memcpy_only ? -1 : open(argv[1], argc > 4 &&
				   !strcmp(argv[4], "rw") ? O_RDWR : O_RDONLY);
		double t0 = now();
		long long bytes = memcpy_only ? by_memcpy(bufs) : fd < 0 ? -1 :
			strcmp(mode, "read") ? by_splice(fd, null) : by_read(fd);
		double dt = now() - t0;

		if (bytes < 0) {
			fprintf(stderr, "splice_read: %s: %s\n", argv[1], strerror(errno));
			return 1;
		}
		if (fd >= 0)
			close(fd);
		printf("%s %.0f\n", mode, bytes / dt / (1 << 20));
	}
	return 0;
}
