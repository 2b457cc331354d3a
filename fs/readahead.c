/*
 * Read-ahead of the mount (-o readahead_kb=N). A FUSE mount's
 * backing_dev_info starts with read_ahead_kb = 128, and the kernel caps it
 * at INIT to what it offered. K8 (doc/kernel-facts.md) saw a passthrough_ll
 * mount read faster with 4096; for stablefs it was slower here (1 GiB
 * splice reads: hot 2,440-2,720 MiB/s at 128 against 1,630-1,760 at 4096;
 * cold 2,589 against 1,644), so the default leaves the kernel's value. The
 * value lives in /sys/class/bdi/MAJOR:MINOR/read_ahead_kb, MAJOR:MINOR
 * being the mount's anonymous device. It can only be raised after the
 * kernel has processed our INIT reply, i.e. from the first request after
 * it; and the device is found in /proc/self/mountinfo, because stat(2) of
 * the mount point would be a request to ourselves.
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
