/*
 * Sequential write benchmark. A benchmark, not a test.
 *   wbench [-b BLOCK] [-s SIZE] [-f none|end|each] [-o] FILE
 *   -b BLOCK  bytes per write(2) (default 1 MiB; K/M/G suffixes)
 *   -s SIZE   total bytes (default 1 GiB)
 *   -f none   no fsync (default); the time ends after close(2)
 *      end    one fsync(2) before close, included in the time
 *      each   fdatasync(2) after every write (latency of a durable write)
 *   -o        overwrite FILE in place (no O_TRUNC; it must exist), else
 *             FILE is created or truncated before the clock starts
 *   -S STRIDE start each write STRIDE bytes after the previous one's start
 *             (default BLOCK: contiguous); SIZE counts bytes written, so
 *             -b 4K -S 8K -s 40M touches every other 4 KiB block of 80 MiB
 * Prints "<MiB/s> <microseconds per write>".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long size_arg(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	switch (*end) {
	case 'G': case 'g': v <<= 10; /* fall through */
	case 'M': case 'm': v <<= 10; /* fall through */
	case 'K': case 'k': v <<= 10;
	}
	return v;
}

int main(int argc, char **argv)
{
	long long block = 1 << 20, size = 1LL << 30, done = 0, stride = 0;
	const char *sync = "none";
	int overwrite = 0, opt, fd;
	char *buf;
	long writes = 0;
	double t0, dt;

	while ((opt = getopt(argc, argv, "b:s:f:oS:")) != -1) {
		switch (opt) {
		case 'b': block = size_arg(optarg); break;
		case 's': size = size_arg(optarg); break;
		case 'f': sync = optarg; break;
		case 'o': overwrite = 1; break;
		case 'S': stride = size_arg(optarg); break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || block <= 0 || size < block ||
	    (strcmp(sync, "none") && strcmp(sync, "end") && strcmp(sync, "each")))
		goto usage;
	if (stride < block)
		stride = block;
	if (!(buf = malloc(block)))
		return 1;
	for (long long i = 0; i < block; i++)	/* not all zeros, not compressible by pattern */
		buf[i] = (char)(i * 2654435761u >> 13);
	fd = open(argv[optind], overwrite ? O_WRONLY : O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		goto fail;
	t0 = now();
	while (done < size) {
		ssize_t n = pwrite(fd, buf, block, writes * stride);

		if (n != block)
			goto fail;
		done += n;
		writes++;
		if (!strcmp(sync, "each") && fdatasync(fd))
			goto fail;
	}
	if (!strcmp(sync, "end") && fsync(fd))
		goto fail;
	if (close(fd))
		goto fail;
	dt = now() - t0;
	printf("%.1f %.3f\n", done / dt / (1 << 20), dt * 1e6 / writes);
	return 0;
fail:
	fprintf(stderr, "wbench: %s: %s\n", argv[optind], strerror(errno));
	return 1;
usage:
	fprintf(stderr, "usage: wbench [-b BLOCK] [-s SIZE] [-S STRIDE] [-f none|end|each] [-o] FILE\n");
	return 2;
}
