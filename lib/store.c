#include "sfs/store.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

struct sfs_store {
	int dirfd;			/* owned dup of the caller's */
	uint64_t max_bytes;		/* 0: no cap */
	bool clones;			/* snapshots are clones taken at open */
	uint64_t bytes_live, bytes_copied, bytes_reflinked, files; /* atomic */
	uint64_t clones_made, bytes_cloned;	/* atomic */
	uint64_t clones_declined;		/* atomic */
};

static int open_tmpfile(int dirfd)
{
	return openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

struct sfs_store *sfs_store_new(int dirfd, char *err, size_t errlen)
{
	struct sfs_store *s = calloc(1, sizeof(*s));
	int probe;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	probe = s->dirfd == -1 ? -1 : open_tmpfile(s->dirfd);
	if (probe < 0) {
		snprintf(err, errlen, "cannot create anonymous files for the "
			 "snapshot store: %s", strerror(errno));
		if (s->dirfd != -1)
			close(s->dirfd);
		free(s);
		return NULL;
	}
	close(probe);
	return s;
}

void sfs_store_free(struct sfs_store *s)
{
	if (!s)
		return;
	close(s->dirfd);
	free(s);
}

void sfs_store_set_max(struct sfs_store *s, uint64_t max_bytes)
{
	s->max_bytes = max_bytes;
}

bool sfs_store_fits(struct sfs_store *s, uint64_t need)
{
	return !s->max_bytes ||
	       __atomic_load_n(&s->bytes_live, __ATOMIC_RELAXED) + need <= s->max_bytes;
}

int sfs_store_file(struct sfs_store *s)
{
	int fd = open_tmpfile(s->dirfd);

	if (fd >= 0)
		__atomic_add_fetch(&s->files, 1, __ATOMIC_RELAXED);
	return fd;
}

void sfs_store_file_close(struct sfs_store *s, int fd)
{
	close(fd);
	__atomic_sub_fetch(&s->files, 1, __ATOMIC_RELAXED);
}

/* How many of len bytes at off of fd share their extents (FIEMAP). */
static uint64_t shared_bytes(int fd, uint64_t off, uint64_t len)
{
	struct {
		struct fiemap fm;
		struct fiemap_extent ext[32];
	} q;
	uint64_t shared = 0;

	memset(&q, 0, sizeof(q));
	q.fm.fm_start = off;
	q.fm.fm_length = len;
	/* No FIEMAP_FLAG_SYNC: shared extents show at once, and copies need
	 * not be written back just to be counted. */
	q.fm.fm_extent_count = 32;
	if (ioctl(fd, FS_IOC_FIEMAP, &q.fm) == -1)
		return 0;
	for (unsigned i = 0; i < q.fm.fm_mapped_extents; i++) {
		const struct fiemap_extent *e = &q.ext[i];
		uint64_t a = MAX(e->fe_logical, off);
		uint64_t b = e->fe_logical + e->fe_length;

		if (b > off + len)
			b = off + len;
		if ((e->fe_flags & FIEMAP_EXTENT_SHARED) && b > a)
			shared += b - a;
	}
	return shared;
}

/* Fallback where copy_file_range cannot (another filesystem, old kernel). */
static int copy_by_pread(int src, uint64_t src_off, int dst, uint64_t dst_off,
			 uint64_t len)
{
	char buf[65536];

	while (len) {
		ssize_t n = pread(src, buf, MIN(len, sizeof(buf)),
				  (off_t)src_off);

		if (n <= 0)
			return n == 0 ? EIO : errno;
		for (ssize_t done = 0, w; done < n; done += w) {
			w = pwrite(dst, buf + done, (size_t)(n - done),
				   (off_t)dst_off + done);
			if (w < 0)
				return errno;
			if (w == 0)
				return ENOSPC;	/* a short write says no more */
		}
		src_off += (uint64_t)n;
		dst_off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* Count len more bytes held, unless that passes the cap (EDQUOT). */
static int reserve(struct sfs_store *s, uint64_t len)
{
	if (s->max_bytes &&
	    __atomic_add_fetch(&s->bytes_live, len, __ATOMIC_RELAXED) > s->max_bytes) {
		__atomic_sub_fetch(&s->bytes_live, len, __ATOMIC_RELAXED);
		return EDQUOT;
	}
	if (!s->max_bytes)
		__atomic_add_fetch(&s->bytes_live, len, __ATOMIC_RELAXED);
	return 0;
}

int sfs_store_copy(struct sfs_store *s, int src, uint64_t src_off, int dst,
		   uint64_t dst_off, uint64_t len)
{
	loff_t in = (loff_t)src_off, out = (loff_t)dst_off;
	uint64_t left = len;
	int err = 0;

	/* Reserve first: concurrent copies must not pass the cap together. */
	err = reserve(s, len);
	if (err)
		return err;
	while (left) {
		ssize_t n = copy_file_range(src, &in, dst, &out, left, 0);

		if (n == 0) {
			err = EIO;	/* the source shrank under us */
			break;
		}
		if (n < 0) {
			if (errno != EXDEV && errno != EOPNOTSUPP && errno != ENOSYS &&
			    errno != EINVAL)
				err = errno;
			else
				err = copy_by_pread(src, (uint64_t)in, dst,
						    (uint64_t)out, left);
			break;
		}
		left -= (uint64_t)n;
	}
	if (err) {
		/* What was copied before the failure (ENOSPC...) goes now, not
		 * when the store file closes with the last snapshot. */
		fallocate(dst, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)dst_off, (off_t)len);
		__atomic_sub_fetch(&s->bytes_live, len, __ATOMIC_RELAXED);
		return err;
	}
	__atomic_add_fetch(&s->bytes_copied, len, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->bytes_reflinked, shared_bytes(dst, dst_off, len),
			   __ATOMIC_RELAXED);
	return 0;
}

/*
 * A clone shares every block with src until src changes, but it may come
 * to hold all of them: it counts in full against the cap, as a copy would.
 */
/*
 * Has fd more than max extents? FIEMAP asked for max + 1 of them stops
 * there, so finding out costs at most that many. Unknown (no FIEMAP):
 * no.
 */
static bool too_many_extents(int fd, unsigned max)
{
	size_t size = sizeof(struct fiemap) + (max + 1) * sizeof(struct fiemap_extent);
	struct fiemap *fm = calloc(1, size);
	bool many;

	if (!fm)
		return true;
	fm->fm_length = FIEMAP_MAX_OFFSET;
	fm->fm_extent_count = max + 1;
	many = ioctl(fd, FS_IOC_FIEMAP, fm) == 0 && fm->fm_mapped_extents > max;
	free(fm);
	return many;
}

int sfs_store_clone(struct sfs_store *s, int src, int dst, uint64_t dst_off,
		    uint64_t len)
{
	struct file_clone_range r = {
		.src_fd = src, .src_offset = 0, .src_length = 0, /* to EOF */
		.dest_offset = dst_off,
	};
	int err;

	if (too_many_extents(src, SFS_CLONE_MAX_EXTENTS)) {
		__atomic_add_fetch(&s->clones_declined, 1, __ATOMIC_RELAXED);
		return E2BIG;
	}
	err = reserve(s, len);
	if (err)
		return err;
	if (ioctl(dst, FICLONERANGE, &r) == -1) {
		err = errno;
		__atomic_sub_fetch(&s->bytes_live, len, __ATOMIC_RELAXED);
		return err;
	}
	__atomic_add_fetch(&s->clones_made, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->bytes_cloned, len, __ATOMIC_RELAXED);
	/* Preserved bytes, every one a shared extent. */
	__atomic_add_fetch(&s->bytes_copied, len, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->bytes_reflinked, len, __ATOMIC_RELAXED);
	return 0;
}

void sfs_store_use_clones(struct sfs_store *s, bool on)
{
	s->clones = on;
}

bool sfs_store_clones(struct sfs_store *s)
{
	return s && s->clones;
}

/*
 * Can files of the store's filesystem be cloned into store files? Probed
 * on two anonymous files of its own (a block of data cloned).
 */
bool sfs_store_can_clone(struct sfs_store *s)
{
	static const char block[4096];
	int a = open_tmpfile(s->dirfd), b = open_tmpfile(s->dirfd);
	bool ok = a >= 0 && b >= 0 &&
		  pwrite(a, block, sizeof(block), 0) == (ssize_t)sizeof(block) &&
		  ioctl(b, FICLONE, a) == 0;

	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return ok;
}

void sfs_store_release(struct sfs_store *s, int fd, uint64_t off, uint64_t len)
{
	fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		  (off_t)len);
	__atomic_sub_fetch(&s->bytes_live, len, __ATOMIC_RELAXED);
}

void sfs_store_stats_get(struct sfs_store *s, struct sfs_store_stats *out)
{
	out->bytes_live = __atomic_load_n(&s->bytes_live, __ATOMIC_RELAXED);
	out->bytes_copied = __atomic_load_n(&s->bytes_copied, __ATOMIC_RELAXED);
	out->bytes_reflinked = __atomic_load_n(&s->bytes_reflinked, __ATOMIC_RELAXED);
	out->files = __atomic_load_n(&s->files, __ATOMIC_RELAXED);
	out->clones = __atomic_load_n(&s->clones_made, __ATOMIC_RELAXED);
	out->clones_declined = __atomic_load_n(&s->clones_declined, __ATOMIC_RELAXED);
	out->bytes_cloned = __atomic_load_n(&s->bytes_cloned, __ATOMIC_RELAXED);
}
