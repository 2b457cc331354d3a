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

/* Holes are sent from here: one read is at most max_read (1 MiB). */
static const char zeros[1 << 20];

/* Log why a snapshot read fails, once per open file. */
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

			b->size = left < sizeof(zeros) ? left : sizeof(zeros);
			b->mem = (void *)zeros;
			left -= b->size;
		}
	}
	return v;
}

/*
 * A changed SRC file, noticed before its bytes are served as the
 * snapshot's. fd: any fd of the live file (the snapshot's own open one).
 */
static void check_oob(struct sfs_inode *inode, int fd)
{
	sfs_history_check_oob(sfs_inode_history(inode), fd);
}

void sfs_snapshot_read(fuse_req_t req, struct sfs_file *f, size_t size, off_t off)
{
	struct sfs_history *h = sfs_inode_history(f->inode);
	GArray *segs = g_array_new(FALSE, FALSE, sizeof(struct sfs_segment));
	struct fuse_bufvec *v = NULL;
	const char *why = NULL;
	struct sfs_range r;
	bool planned;
	int err;

	/* Shared: a change of this range first preserves it for us (K6). */
	sfs_range_lock(sfs_inode_range_lock(f->inode), &r, (uint64_t)off, size, false);
	check_oob(f->inode, f->fd);
	err = sfs_snap_plan(h, f->snap, (uint64_t)off, size, segs, &why);
	planned = !err;
	if (err)
		fail_read(req, f, why, off, size);
	else if (!(v = bufvec_for(segs, f->fd,
				  __atomic_load_n(&h->store_fd, __ATOMIC_ACQUIRE))))
		err = ENOMEM;
	if (err)
		fuse_reply_err(req, err);
	else if (v->count == 0)
		fuse_reply_buf(req, NULL, 0);	/* at or past the snapshot's end */
	else
		fuse_reply_data(req, v, 0);	/* no SPLICE_MOVE: ops.c */
	/* Only now may the store bytes we spliced be given back (K6). */
	if (planned)
		sfs_snap_plan_done(h, f->snap);
	sfs_range_unlock(sfs_inode_range_lock(f->inode), &r);
	free(v);
	g_array_free(segs, TRUE);
}

/*
 * SEEK_DATA / SEEK_HOLE on a snapshot: where its data and holes were at
 * open. Preserved ranges are data, preserved holes are holes, and the rest
 * is asked of the live file, which still holds those bytes. The kernel
 * answers SEEK_SET/CUR/END itself (END from the snapshot's size).
 */
int sfs_snapshot_lseek(struct sfs_file *f, off_t off, int whence, off_t *out)
{
	struct sfs_history *h = sfs_inode_history(f->inode);
	GArray *segs = g_array_new(FALSE, FALSE, sizeof(struct sfs_segment));
	const char *why = NULL;
	uint64_t size = f->snap->size;
	struct sfs_range r;
	int err;

	if (off < 0 || (uint64_t)off >= size) {
		g_array_free(segs, TRUE);
		return ENXIO;
	}
	sfs_range_lock(sfs_inode_range_lock(f->inode), &r, (uint64_t)off, SFS_RANGE_EOF, false);
	check_oob(f->inode, f->fd);
	err = sfs_snap_plan(h, f->snap, (uint64_t)off, size - (uint64_t)off, segs, &why);
	if (!err)
		sfs_snap_plan_done(h, f->snap);	/* no store bytes are read */
	*out = whence == SEEK_HOLE ? (off_t)size : -1;	/* EOF is a hole */
	for (guint i = 0; !err && i < segs->len; i++) {
		struct sfs_segment *s = &g_array_index(segs, struct sfs_segment, i);
		off_t end = (off_t)(s->off + s->len), at = (off_t)s->off;

		if (s->kind == SFS_SEG_LIVE) {
			at = lseek(f->fd, (off_t)s->off, whence);
			if (at == -1 && errno != ENXIO) {
				err = errno;
				break;
			}
			if (at == -1 || at >= end)
				continue;
		} else if ((s->kind == SFS_SEG_ZERO) != (whence == SEEK_HOLE)) {
			continue;
		}
		*out = at;
		break;
	}
	sfs_range_unlock(sfs_inode_range_lock(f->inode), &r);
	g_array_free(segs, TRUE);
	if (!err && *out == -1)
		err = ENXIO;
	return err;
}
