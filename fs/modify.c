/*
 * How every modification of file data through MNT is applied, so that bytes
 * already delivered to a pipe never change (SPEC G1) and snapshots keep
 * reading what they opened (G2):
 *
 *   1. lock the affected range of the backing inode exclusively: this waits
 *      until every read that spliced backing pages of that range into a
 *      daemon pipe has had its reply copied into the kernel (K6);
 *   2. preserve, for every live snapshot, the bytes of the range it still
 *      reads from the live file (lib/history.c);
 *   3. apply the change to the backing file;
 *   4. unlock;
 *   5. evict the range from the page cache of the inode's live nodes
 *      (fuse_lowlevel_notify_inval_inode): the kernel drops those folios,
 *      and pipes that reference them keep the old bytes (K5);
 *   6. reply. Only after the reply does the kernel zero partial folios of
 *      the range in place (truncate_pagecache_range after a truncate, punch
 *      or zero range, K4) — there are none left for it to zero but folios
 *      read after step 4, which already hold the new bytes.
 *
 * Why evict after unlocking and never while holding a range lock: eviction
 * waits for the folio locks of reads in flight, and a read in flight holds
 * its folios locked while it waits for our range lock. Evicting under the
 * lock would deadlock; evicting after it only waits for reads that are
 * free to finish.
 *
 * Snapshot nodes are never evicted: their content never changes, so pages
 * they cached stay right. Plain writes need no step 5: write-capable
 * handles are FOPEN_DIRECT_IO, so the kernel never copies user data into
 * cached folios, and it drops the written range from the cache itself
 * before sending the WRITE.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "sfs/stats.h"

#define MAX_EVICT_NODES 16

void sfs_evict(fuse_req_t req, struct sfs_inode *inode, uint64_t off,
	       uint64_t len)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct sfs_node *nodes[MAX_EVICT_NODES];
	size_t n = sfs_itable_live_nodes(fs->inodes, inode, nodes, MAX_EVICT_NODES);
	/* The kernel reads len <= 0 as "to the end of the file". */
	off_t l = len >= (uint64_t)INT64_MAX - off ? 0 : (off_t)len;

	for (size_t i = 0; i < n; i++) {
		int res = fuse_lowlevel_notify_inval_inode(fs->se,
							   sfs_nodeid(fs, nodes[i]),
							   (off_t)off, l);

		sfs_stat_add(SFS_STAT_EVICTIONS, 1);
		/* ENOENT: the kernel has no such inode cached, nothing to drop. */
		if (res && res != -ENOENT)
			fuse_log(FUSE_LOG_ERR, "stablefs: cannot evict cached "
				 "pages of inode %llu: %s\n",
				 (unsigned long long)inode->ino, strerror(-res));
	}
}

/* A readable fd of the live file, opened only if something is preserved. */
struct data_fd {
	struct sfs_inode_table *inodes;
	struct sfs_inode *inode;
	int fd;
};

static int data_fd_get(void *arg)
{
	struct data_fd *d = arg;

	if (d->fd == -1)
		d->fd = sfs_open_data_fd(d->inodes, d->inode);
	return d->fd;
}

int sfs_modify(fuse_req_t req, struct sfs_inode *inode, int attr_fd,
	       uint64_t off, uint64_t len, bool evict, int (*apply)(void *arg),
	       void *arg)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	uint64_t end = len > SFS_RANGE_EOF - off ? SFS_RANGE_EOF : off + len;
	struct data_fd data = { .inodes = fs->inodes, .inode = inode, .fd = -1 };
	struct sfs_range_lock *lock = sfs_inode_range_lock(inode);
	struct sfs_history *h = sfs_inode_history(inode);
	bool snapshots = sfs_incarnated(fs, inode);
	struct sfs_range r;
	int err;

	sfs_range_lock(lock, &r, off, len, true);
	if (snapshots)
		sfs_history_before_change(h, fs->store, data_fd_get, &data,
					  off, end);
	err = apply(arg);
	/* Counted even if apply failed: it may have changed part of it. */
	sfs_history_changed(h);
	if (snapshots)
		sfs_history_after_change(h, attr_fd, true);
	sfs_range_unlock(lock, &r);
	if (data.fd >= 0)
		close(data.fd);
	if (evict)
		sfs_evict(req, inode, off, len);
	return err;
}
