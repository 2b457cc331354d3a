/*
 * Reading a snapshot: the bytes of the version a read-only open saw, put
 * together from the live file (ranges nobody changed since), the store
 * (ranges preserved before they changed) and zeros (holes), all spliced into
 * the reply without a copy. (The digest of a version: digest.c.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "sfs/stats.h"
#include "sfs/views.h"

/*
 * The snapshot a read-only open gets, or a tree view's (for_views: shared
 * only among views, reclaimed with its view under max_preserve; !wait:
 * EBUSY rather than wait for a change under way). Where the store takes
 * clones, the history clones the file, which needs a readable fd (any_fd
 * may be O_PATH).
 */
static struct sfs_snap *open_snapshot(struct sfs_fs *fs, struct sfs_inode *inode,
				      int any_fd, bool for_views, bool wait)
{
	struct sfs_history *h = sfs_inode_history(inode);
	struct sfs_store *store = NULL;
	struct sfs_snap *s;
	int fd = -1, err;

	if (sfs_store_clones(fs->store))
		fd = sfs_open_data_fd(fs->inodes, inode);
	if (fd >= 0)
		store = fs->store;
	if (for_views)
		s = sfs_history_open_for_views(h, store, fd >= 0 ? fd : any_fd,
					       wait);
	else
		s = sfs_history_open_in(h, store, fd >= 0 ? fd : any_fd);
	err = errno;
	if (fd >= 0)
		close(fd);
	errno = err;
	return s;
}

struct sfs_snap *sfs_snapshot_open(struct sfs_fs *fs, struct sfs_inode *inode,
				   int any_fd)
{
	return open_snapshot(fs, inode, any_fd, false, true);
}

struct sfs_snap *sfs_snapshot_try_open(struct sfs_fs *fs,
				       struct sfs_inode *inode, int any_fd)
{
	return open_snapshot(fs, inode, any_fd, true, false);
}

struct sfs_snap *sfs_snapshot_take(struct sfs_fs *fs, struct sfs_inode *inode,
				   int any_fd)
{
	/* A clone never reads the live file: its file needs no watching. */
	struct oob_watch *watch = sfs_store_clones(fs->store) ? NULL : fs->watch;
	struct sfs_snap *s;

	sfs_oob_watch_arm(watch, inode, any_fd);
	sfs_oob_watch_drain(fs->watch);
	s = open_snapshot(fs, inode, any_fd, true, true);
	sfs_oob_watch_opened(watch, inode);
	return s;
}

/* Holes are sent from here: one read is at most max_read (1 MiB). */
static const char zeros[1 << 20];

/*
 * A snapshot read fails: said once per open file, and then the node's
 * cached pages go (evictor.c), so later reads fail whole with EIO instead
 * of handing out what is cached first: such a short read looks like end of
 * file to tar and cpio, which pad the rest with zeros and exit 0.
 */
static void fail_read(fuse_req_t req, struct sfs_file *f, const char *why,
		      off_t off, size_t size)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct sfs_node *nodes[64];

	sfs_stat_add(SFS_STAT_EIO_READS, 1);
	if (f->eio_logged)
		return;
	f->eio_logged = true;
	fuse_log(FUSE_LOG_ERR, "stablefs: snapshot of inode %llu, bytes "
		 "%lld..%lld: %s: reads fail with EIO\n",
		 (unsigned long long)f->inode->ino, (long long)off,
		 (long long)off + (long long)size, why);
	/* A view's file: its own node is the one whose pages the reader
	 * gets (view_ops.c); the live file's nodes are not. */
	if (f->view)
		return sfs_evict_ids_later(fs, &f->view_ino, 1);
	sfs_evict_nodes_later(fs, nodes, sfs_itable_nodes(fs->inodes, f->inode,
							  nodes, 64));
}

static struct fuse_bufvec *bufvec_for(GArray *segs, int live_fd, int store_fd)
{
	size_t n = 0;
	struct fuse_bufvec *v;

	for (guint i = 0; i < segs->len; i++) {
		struct sfs_segment *s = &g_array_index(segs, struct sfs_segment, i);

		n += s->kind == SFS_SEG_ZERO ? (s->len + sizeof(zeros) - 1) / sizeof(zeros) : 1;
	}
	v = calloc(1, sizeof(*v) + (n ? n - 1 : 0) * sizeof(struct fuse_buf));
	if (!v)
		return NULL;
	v->count = n;
	n = 0;
	for (guint i = 0; i < segs->len; i++) {
		struct sfs_segment *s = &g_array_index(segs, struct sfs_segment, i);
		uint64_t left = s->len;

		if (s->kind != SFS_SEG_ZERO) {
			struct fuse_buf *b = &v->buf[n++];

			b->size = s->len;
			b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
			b->fd = s->kind == SFS_SEG_LIVE ? live_fd : store_fd;
			b->pos = (off_t)(s->kind == SFS_SEG_LIVE ? s->off : s->src_off);
			continue;
		}
		while (left) {
			struct fuse_buf *b = &v->buf[n++];

			b->size = MIN(left, sizeof(zeros));
			b->mem = (void *)zeros;
			left -= b->size;
		}
	}
	return v;
}

int sfs_snap_reading_start(struct sfs_snap_reading *rd, struct sfs_inode *inode,
			   struct sfs_snap *snap, int live_fd, uint64_t off,
			   uint64_t len, GArray *segs, const char **why)
{
	struct sfs_history *h = sfs_inode_history(inode);
	int err;

	rd->inode = inode;
	rd->snap = snap;
	sfs_range_acquire(sfs_inode_range_lock(inode), &rd->range, off, len, false);
	/* A changed SRC file, noticed before its bytes are served as ours. */
	sfs_history_check_oob(h, live_fd);
	err = sfs_snap_plan(h, snap, off, len, segs, why);
	rd->planned = !err;
	return err;
}

void sfs_snap_reading_end(struct sfs_snap_reading *rd)
{
	if (rd->planned)
		sfs_snap_plan_done(sfs_inode_history(rd->inode), rd->snap);
	sfs_range_release(sfs_inode_range_lock(rd->inode), &rd->range);
}

void sfs_snapshot_read(fuse_req_t req, struct sfs_file *f, size_t size, off_t off)
{
	struct sfs_history *h = sfs_inode_history(f->inode);
	struct sfs_fs *fs = sfs_fs_of(req);
	struct sfs_snap_reading rd;
	struct fuse_bufvec *v = NULL;
	const char *why = NULL;
	GArray *segs;
	int err;

	/* A file of a view invalidated since its open (max_preserve): its
	 * snapshot may still read, but the view as a whole answers EIO. */
	if (f->view && (why = sfs_view_invalid(fs->views, f->view))) {
		fail_read(req, f, why, off, size);
		return (void)fuse_reply_err(req, EIO);
	}
	segs = g_array_new(FALSE, FALSE, sizeof(struct sfs_segment));
	err = sfs_snap_reading_start(&rd, f->inode, f->snap, f->fd,
				     (uint64_t)off, size, segs, &why);
	if (err)
		fail_read(req, f, why, off, size);
	else if (!(v = bufvec_for(segs, f->fd, sfs_history_store_fd(h))))
		err = ENOMEM;
	if (err)
		fuse_reply_err(req, err);
	else if (v->count == 0)
		fuse_reply_buf(req, NULL, 0);	/* at or past the snapshot's end */
	else
		fuse_reply_data(req, v, 0);	/* no SPLICE_MOVE: ops.c */
	/* Only now may the store bytes we spliced be given back (K6). */
	sfs_snap_reading_end(&rd);
	free(v);
	g_array_free(segs, TRUE);
}

/*
 * SEEK_DATA / SEEK_HOLE on a snapshot: where its data and holes were at
 * open. Preserved ranges are data, preserved holes are holes, and the rest
 * is asked of the live file, which still holds those bytes. The kernel
 * answers SEEK_SET/CUR/END itself (END from the snapshot's size).
 */
/* The first data (or hole) at or after the start of the segments: 0 with
 * *out (-1: none in them), or an errno. */
static int seek_in_segments(GArray *segs, int live_fd, int whence, off_t *out)
{
	for (guint i = 0; i < segs->len; i++) {
		struct sfs_segment *s = &g_array_index(segs, struct sfs_segment, i);
		off_t end = (off_t)(s->off + s->len), at = (off_t)s->off;

		if (s->kind == SFS_SEG_LIVE) {
			at = lseek(live_fd, (off_t)s->off, whence);
			if (at == -1 && errno != ENXIO)
				return errno;
			if (at == -1 || at >= end)
				continue;
		} else if ((s->kind == SFS_SEG_ZERO) != (whence == SEEK_HOLE)) {
			continue;
		}
		*out = at;
		return 0;
	}
	*out = -1;
	return 0;
}

int sfs_snapshot_lseek(struct sfs_file *f, off_t off, int whence, off_t *out)
{
	uint64_t size = sfs_snap_size(f->snap);
	struct sfs_snap_reading rd;
	const char *why = NULL;
	GArray *segs;
	int err;

	if (off < 0 || (uint64_t)off >= size)
		return ENXIO;
	segs = g_array_new(FALSE, FALSE, sizeof(struct sfs_segment));
	err = sfs_snap_reading_start(&rd, f->inode, f->snap, f->fd, (uint64_t)off,
				     size - (uint64_t)off, segs, &why);
	if (!err)
		err = seek_in_segments(segs, f->fd, whence, out);
	sfs_snap_reading_end(&rd);
	g_array_free(segs, TRUE);
	if (!err && *out == -1) {
		if (whence == SEEK_DATA)
			return ENXIO;
		*out = (off_t)size;	/* the end of the snapshot is a hole */
	}
	return err;
}
