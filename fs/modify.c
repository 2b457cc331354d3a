/*
 * How every modification of file data through MNT is applied, so that bytes
 * already delivered to a pipe never change (G1) and snapshots keep reading
 * what they opened (G2; both in doc/guarantees.md):
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
 *      and pipes that reference them keep the old bytes (K5). This runs on
 *      the evictor thread, never on a worker (evictor.c says why);
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
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fs.h"
#include "sfs/cred.h"
#include "sfs/stats.h"

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

/*
 * Room the daemon's writers may take between our look at free space and
 * their allocation: max_threads requests of max_write bytes, and then some.
 */
#define RESERVE_MARGIN (64ull << 20)

/*
 * Could a change of len bytes (0: unknown, a truncation) of fd's file reach
 * blocks only root may use (ext4's reserve: for fsuid 0 or
 * CAP_SYS_RESOURCE)? Only then must it run as the caller, which costs four
 * credential changes (about 20 us here; a 4 KiB write takes about as long).
 */
static bool near_root_reserve(int fd, uint64_t len)
{
	struct statfs sf;
	uint64_t avail;

	if (fstatfs(fd, &sf))
		return true;
	avail = (uint64_t)sf.f_bavail * (uint64_t)sf.f_bsize;
	return avail < len + RESERVE_MARGIN;
}

/*
 * The change itself runs with the caller's fsuid and fsgid and without
 * CAP_SYS_RESOURCE (lib/cred.c) when that matters: near the root reserve,
 * or always when SRC enforces quotas (hard limits yield to
 * CAP_SYS_RESOURCE); so it stops with ENOSPC or EDQUOT where the caller's
 * own would. The preservation before it is the daemon's own store write
 * and keeps the daemon's rights.
 */
static int apply_as_caller(fuse_req_t req, int fd, uint64_t len,
			   int (*apply)(void *arg), void *arg)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct sfs_fs *fs = sfs_fs_of(req);
	int err;

	if (!fs->switch_creds || ctx->uid == 0 ||
	    (!fs->quotas_on && !near_root_reserve(fd, len)))
		return apply(arg);
	err = sfs_cred_enter_data(ctx->uid, ctx->gid);
	if (err)
		return err;
	err = apply(arg);
	if (sfs_cred_leave_data())
		fuse_log(FUSE_LOG_ERR, "stablefs: cannot restore credentials "
			 "after a write\n");
	return err;
}

/*
 * Lock the destination range exclusively and, for a copy from another
 * file, the source range shared. Two range locks are always taken in one
 * global order, lower lock address first (as the kernel's
 * lock_two_nondirectories orders by address; include/sfs/lock_order.h):
 * copies A -> B and B -> A at once then never hold one lock each while
 * waiting for the other's.
 */
static void lock_ranges(struct sfs_inode *inode, struct sfs_range_request *r,
			uint64_t off, uint64_t len,
			const struct sfs_copy_source *src, struct sfs_range_request *sr)
{
	struct sfs_range_lock *lock = sfs_inode_range_lock(inode);
	struct sfs_range_lock *src_lock;

	if (!src) {
		sfs_range_acquire(lock, r, off, len, true);
		return;
	}
	src_lock = sfs_inode_range_lock(src->inode);
	if ((uintptr_t)src_lock < (uintptr_t)lock)
		sfs_range_acquire(src_lock, sr, src->off, src->len, false);
	sfs_range_acquire(lock, r, off, len, true);
	if ((uintptr_t)src_lock > (uintptr_t)lock)
		sfs_range_acquire(src_lock, sr, src->off, src->len, false);
}

int sfs_modify_from(fuse_req_t req, struct sfs_inode *inode, int attr_fd,
		    uint64_t off, uint64_t len, struct sfs_eviction *ev,
		    const struct sfs_copy_source *src, int (*apply)(void *arg),
		    void *arg)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	uint64_t end = len > SFS_RANGE_EOF - off ? SFS_RANGE_EOF : off + len;
	struct data_fd data = { .inodes = fs->inodes, .inode = inode, .fd = -1 };
	struct sfs_history *h = sfs_inode_history(inode);
	bool snapshots = sfs_has_snapshots(fs, inode);
	struct sfs_range_request r, sr;
	int err;

	if (src && src->inode == inode)
		src = NULL;	/* the caller's range covers both */
	lock_ranges(inode, &r, off, len, src, &sr);
	if (snapshots)
		sfs_history_before_change(h, fs->store, data_fd_get, &data,
					  off, end);
	err = apply_as_caller(req, attr_fd, end == SFS_RANGE_EOF ? 0 : end - off,
			      apply, arg);
	/* Counted even if apply failed: it may have changed part of it. */
	sfs_history_changed(h);
	if (snapshots)
		sfs_history_after_change(h, attr_fd, true);
	if (src)
		sfs_range_release(sfs_inode_range_lock(src->inode), &sr);
	sfs_range_release(sfs_inode_range_lock(inode), &r);
	if (data.fd >= 0)
		close(data.fd);
	if (ev)
		sfs_eviction_add(ev, inode, off, len);
	return err;
}

int sfs_modify(fuse_req_t req, struct sfs_inode *inode, int attr_fd,
	       uint64_t off, uint64_t len, struct sfs_eviction *ev,
	       int (*apply)(void *arg), void *arg)
{
	return sfs_modify_from(req, inode, attr_fd, off, len, ev, NULL,
			       apply, arg);
}

struct size_args {
	int fd, path_fd;
	off_t size;
};

static int apply_size(void *arg)
{
	struct size_args *a = arg;
	char path[SFS_PROC_PATH_MAX];

	if (a->fd >= 0)
		return ftruncate(a->fd, a->size) ? errno : 0;
	sfs_proc_path(path, a->path_fd);
	return truncate(path, a->size) ? errno : 0;
}

/*
 * Truncation changes [new size, end); growing zero-fills [old size, new
 * size), beyond the bytes anyone could have read. Both are covered by
 * [min(old, new), end), with old read before locking: a concurrent size
 * change holds its own lock, and only ever moves what we lock further out.
 */
int sfs_set_size(fuse_req_t req, struct sfs_inode *inode, int fd, int path_fd,
		 off_t size, struct sfs_eviction *ev)
{
	struct size_args a = { .fd = fd, .path_fd = path_fd, .size = size };
	struct stat st;
	off_t from = size;

	if (size < 0)
		return EINVAL;
	if (fstatat(fd >= 0 ? fd : path_fd, "", &st, AT_EMPTY_PATH) == 0 &&
	    st.st_size < from)
		from = st.st_size;
	return sfs_modify(req, inode, fd >= 0 ? fd : path_fd, (uint64_t)from,
			  SFS_RANGE_EOF, ev, apply_size, &a);
}
