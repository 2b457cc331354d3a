/*
 * Read-ahead of the mount (-o readahead_kb=N, default 1024) and the size
 * of READ requests. A FUSE mount's backing_dev_info starts with
 * read_ahead_kb = 128, and the kernel caps it at INIT to what it offered.
 * 1 MiB read cold 1 GiB files about twice as fast as 128 KiB here, 2 and 4
 * MiB no faster (doc/performance.md, "Read-ahead window"). Larger windows
 * once measured slower (K8), but only because their 1 MiB READs could not
 * be spliced: sfs_splice_max_read() below. The value lives in
 * /sys/class/bdi/MAJOR:MINOR/read_ahead_kb, MAJOR:MINOR being the mount's
 * anonymous device. It can only be raised after the kernel has processed
 * our INIT reply, i.e. from the first request after it; and the device is
 * found in /proc/self/mountinfo, because stat(2) of the mount point would
 * be a request to ourselves.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

void sfs_find_bdi(struct sfs_fs *fs, const char *mnt)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4 * PATH_MAX], point[2 * PATH_MAX], dev[64];

	fs->bdi_path[0] = '\0';
	if (!f)
		return;
	/* Fields: id parent major:minor root mount-point ...; the last match
	 * is the newest mount on that point: ours. */
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*d %*d %63s %*s %8191s", dev, point) != 2)
			continue;
		unescape(point);
		if (strcmp(point, mnt) == 0 && strstr(line, " - fuse.stablefs ")) {
			snprintf(fs->bdi_path, sizeof(fs->bdi_path),
				 "/sys/class/bdi/%s/read_ahead_kb", dev);
			/* The FUSE connection is named by the device minor. */
			if (sscanf(dev, "%*u:%u", &fs->conn_minor) != 1)
				fs->conn_minor = 0;
		}
	}
	fclose(f);
}

void sfs_tune_readahead(struct sfs_fs *fs)
{
	char value[16];
	int fd, len;

	if (!fs->opts.readahead_kb || !fs->bdi_path[0] ||
	    __atomic_exchange_n(&fs->readahead_tuned, true, __ATOMIC_ACQ_REL))
		return;
	fd = open(fs->bdi_path, O_WRONLY | O_CLOEXEC);
	len = snprintf(value, sizeof(value), "%u\n", fs->opts.readahead_kb);
	if (fd == -1 || write(fd, value, (size_t)len) != len)
		fuse_log(FUSE_LOG_DEBUG, "stablefs: could not raise %s (%m)\n",
			 fs->bdi_path);
	if (fd != -1)
		close(fd);
}

/*
 * The largest READ we can answer by splice. libfuse 3.14 sends a reply
 * with fd buffers through a pipe of its worker thread only if that pipe
 * holds the header, the payload and a page per buffer more
 * (fuse_send_data_iov); it grows the pipe with F_SETPIPE_SZ and, after
 * the first refusal, copies every larger reply instead: read(2) into a
 * fresh 1 MiB allocation (mmap, page faults, munmap) and writev(2). Past
 * /proc/sys/fs/pipe-max-size (1 MiB by default) only CAP_SYS_RESOURCE may
 * grow a pipe, and a 1 MiB reply needs one of 2 MiB (sizes are powers of
 * two pages). So without that capability (unprivileged mounts, containers)
 * every 1 MiB READ took that copy, ~10x slower than splicing it: the
 * read-ahead of 1 MiB and more was slower than 128 KiB for that reason
 * alone (doc/performance.md, "Read-ahead window"). Asked before mounting,
 * from a pipe made as the workers make theirs: 0 (no cap) if a 1 MiB
 * reply fits, else the largest power of two that leaves the pipe half
 * free for headers and the buffers of a snapshot read's segments.
 */
#define SFS_MAX_REPLY (1u << 20)

unsigned sfs_splice_max_read(void)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned cap = SFS_MAX_REPLY;
	int p[2], max = 0;
	FILE *f;

	if (page <= 0 || pipe2(p, O_CLOEXEC | O_NONBLOCK) == -1)
		return 0;
	/* A 1 MiB reply of one buffer, as fuse_send_data_iov sizes it. */
	if (fcntl(p[0], F_SETPIPE_SZ, (int)(SFS_MAX_REPLY + 3 * page + 16)) != -1) {
		cap = 0;
	} else {
		f = fopen("/proc/sys/fs/pipe-max-size", "re");
		if (!f || fscanf(f, "%d", &max) != 1)
			max = 0;
		if (f)
			fclose(f);
		max = max > 0 ? fcntl(p[0], F_SETPIPE_SZ, max) : -1;
		if (max == -1)
			max = fcntl(p[0], F_GETPIPE_SZ);
		while (cap > (unsigned)page && cap > (unsigned)max / 2)
			cap /= 2;
		/* A pipe too small to splice anything worth it: no cap. */
		if (cap < 64 * 1024)
			cap = 0;
	}
	close(p[0]);
	close(p[1]);
	return cap;
}
