/*
 * How every modification of file data through MNT is applied, so that bytes
 * already delivered to a pipe never change (SPEC G1):
 *
 *   1. lock the affected range of the backing inode exclusively: this waits
 *      until every read that spliced backing pages of that range into a
 *      daemon pipe has had its reply copied into the kernel (K6);
 *   2. apply the change to the backing file;
 *   3. unlock;
 *   4. evict the range from the FUSE inode's page cache
 *      (fuse_lowlevel_notify_inval_inode): the kernel drops those folios,
 *      and pipes that reference them keep the old bytes (K5);
 *   5. reply. Only after the reply does the kernel zero partial folios of
 *      the range in place (truncate_pagecache_range after a truncate, punch
 *      or zero range, K4) — there are none left for it to zero but folios
 *      read after step 3, which already hold the new bytes.
 *
 * Why evict after unlocking and never while holding a range lock: eviction
 * waits for the folio locks of reads in flight, and a read in flight holds
 * its folios locked while it waits for our range lock. Evicting under the
 * lock would deadlock; evicting after it only waits for reads that are
 * free to finish.
 *
 * Plain writes need no step 4: write-capable handles are FOPEN_DIRECT_IO, so
 * the kernel never copies user data into cached folios, and it drops the
 * written range from the cache itself before sending the WRITE.
 */
#include <errno.h>
#include <string.h>

#include "fs.h"

static uint64_t evictions;

void sfs_evict(fuse_req_t req, struct sfs_inode *inode, uint64_t off,
	       uint64_t len)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	/* The kernel reads len <= 0 as "to the end of the file". */
	off_t n = len >= (uint64_t)INT64_MAX - off ? 0 : (off_t)len;
	int res = fuse_lowlevel_notify_inval_inode(fs->se, sfs_nodeid(fs, inode),
						   (off_t)off, n);

	__atomic_add_fetch(&evictions, 1, __ATOMIC_RELAXED);
	/* ENOENT: the kernel has no such inode cached, nothing to drop. */
	if (res && res != -ENOENT)
		fuse_log(FUSE_LOG_ERR, "stablefs: cannot evict cached pages of "
			 "inode %llu: %s\n", (unsigned long long)inode->ino,
			 strerror(-res));
}

uint64_t sfs_evictions(void)
{
	return __atomic_load_n(&evictions, __ATOMIC_RELAXED);
}

int sfs_modify(fuse_req_t req, struct sfs_inode *inode, uint64_t off,
	       uint64_t len, bool evict, int (*apply)(void *arg), void *arg)
{
	struct sfs_range r;
	int err;

	sfs_range_lock(&inode->range_lock, &r, off, len, true);
	err = apply(arg);
	sfs_range_unlock(&inode->range_lock, &r);
	if (evict)
		sfs_evict(req, inode, off, len);
	return err;
}
