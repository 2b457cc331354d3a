/*
 * Regular-file I/O. Reads answer with fuse_reply_data() on an fd buffer, so
 * libfuse splices backing page-cache pages into /dev/fuse without a copy,
 * holding a shared range lock until the reply is in the kernel (K6); writes
 * arrive through write_buf, are spliced from the request pipe into the
 * backing fd, and like every other modification go through sfs_modify()
 * (modify.c explains the order of locking and eviction).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fs.h"
#include "sfs/paths.h"
#include "sfs/stats.h"
#include "sfs/views.h"

/*
 * Flags for the backing open:
 * - O_APPEND stays for the open, where the backing FS checks it (writing an
 *   append-only file needs it), and is then cleared by drop_append(): the
 *   kernel gives every write its offset (the end of file it knows), and
 *   splice(2) refuses O_APPEND destinations.
 * - O_DIRECT is dropped and honoured by FOPEN_DIRECT_IO instead: requests
 *   arrive with the caller's offsets and lengths, which the backing FS
 *   might reject as misaligned, and the FUSE page cache is bypassed anyway.
 * - O_NOFOLLOW is dropped: the kernel resolved the caller's path already,
 *   and we reopen through /proc/self/fd/N, itself a symlink (ELOOP).
 * - creation flags were handled by create() already.
 */
static int backing_flags(int flags)
{
	return (flags & ~(O_DIRECT | O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW)) |
	       O_CLOEXEC;
}

/*
 * Clear O_APPEND on a backing fd. An append-only file (chattr +a) refuses
 * (EPERM): then it stays, writes fall back from splice to pwrite, which
 * appends at the true end of file — what append-only demands anyway.
 */
static void drop_append(int fd, int flags)
{
	if (flags & O_APPEND)
		fcntl(fd, F_SETFL, flags & ~O_APPEND & (O_NONBLOCK | O_NOATIME));
}

/*
 * The kernel sends FLUSH at every close(2) for filesystems that act at
 * close (NFS writes back and reports errors there; sfs_op_flush passes it
 * on). The local filesystems SRC usually is have no ->flush at all: there
 * the round trip does nothing, and skipping it (FOPEN_NOFLUSH, honoured
 * without writeback caching, which we never ask for) took one of the six
 * requests of a create and one of the four of an open+close.
 *
 * But POSIX locks taken through the mount are held by the daemon
 * (ops_lock.c), and the kernel sends no unlock at close for them: FLUSH,
 * naming the closing process, is their only release (fuse_setlk() returns
 * early for FL_CLOSE_POSIX, "handled by the flush method"). So when the
 * kernel sends us POSIX locks every close costs that round trip again.
 */
static bool flush_is_noop(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) == -1)
		return false;
	switch (sf.f_type) {
	case EXT4_SUPER_MAGIC:	/* also ext2 and ext3 */
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
	case TMPFS_MAGIC:
		return true;
	default:
		return false;
	}
}

/*
 * Handles that can write are FOPEN_DIRECT_IO: the kernel then never copies
 * user data into cached folios that a pipe may reference (K4), and refuses
 * MAP_SHARED on them with ENODEV (libfuse 3.14 cannot ask for
 * FUSE_DIRECT_IO_ALLOW_MMAP), so no shared mapping can write into them
 * either. Read-only handles keep the page cache: splice hands out its
 * folios (K3), and nothing we allow modifies a cached folio in place.
 *
 * fd: the backing file just opened.
 */
static void set_open_flags(struct sfs_fs *fs, struct fuse_file_info *fi,
			   int flags, int fd, bool keep_cache)
{
	fi->direct_io = (flags & O_DIRECT) || (flags & O_ACCMODE) != O_RDONLY;
	fi->keep_cache = keep_cache;
	fi->noflush = !fs->posix_locks && flush_is_noop(fd);
	/* The backing FS answers lseek (SEEK_DATA/SEEK_HOLE need us). */
	fi->nonseekable = 0;
}

static bool opens_for_change(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/*
 * Opens the kernel does not retry after an ESTALE: its own (FS_IOC_GETFLAGS
 * and the like: fuse_priv_ioctl_prepare() sends OPEN with exactly
 * O_RDONLY), and other in-kernel filp_open()s. Every open(2) of a 64-bit
 * process carries O_LARGEFILE (force_o_largefile()), so the bare O_RDONLY
 * marks them; a 32-bit process's open(2) looks the same (and is retried,
 * but cannot be told apart). Either may read: it opens in place, reading
 * what its node shows, so no live bytes enter a snapshot node's cache.
 */
static bool kernel_internal_open(int flags)
{
	return flags == O_RDONLY;
}

/*
 * Put an open on the right incarnation (inode_table.h): a read-only open
 * becomes a snapshot of the file as it is now (nothing is copied), one for
 * writing goes to the live node. ESTALE when the kernel must look the name
 * up again (K7); then nothing was opened or applied yet. any_fd: an fd of
 * the file (O_PATH will do), for its attributes.
 */
static int bind_open(fuse_req_t req, struct sfs_node *node, int any_fd,
		     int flags, struct sfs_snap **snap, bool *keep_cache,
		     bool *bound)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct sfs_inode *inode = node->inode;
	pid_t tid = fuse_req_ctx(req)->pid;
	struct oob_watch *watch;
	struct sfs_snap *s;
	int err;

	*snap = NULL;
	*keep_cache = false;
	*bound = false;
	if (!sfs_has_snapshots(fs, inode))
		return 0;
	if (opens_for_change(flags)) {
		err = sfs_node_open(fs->inodes, node, SFS_OPEN_WRITE,
				    sfs_inode_version(inode), NULL, tid, keep_cache,
				    NULL);
		*bound = !err;
		return err;
	}
	/* A clone never reads the live file: its file needs no watching. */
	watch = sfs_store_clones(fs->store) ? NULL : fs->watch;
	sfs_oob_watch_arm(watch, inode, any_fd);
	sfs_oob_watch_drain(fs->watch);
	s = sfs_snapshot_open(fs, inode, any_fd);
	if (s && sfs_node_told_differs(fs->inodes, node, s)) {
		/* Changed in SRC since the lookup, before we knew the file:
		 * a new version, so the open is steered to a fresh lookup
		 * (the kernel would size its reads by the old attributes). */
		sfs_history_close(sfs_inode_history(inode), fs->store, s);
		sfs_history_bump(sfs_inode_history(inode));
		s = sfs_snapshot_open(fs, inode, any_fd);
	}
	sfs_oob_watch_opened(watch, inode);
	if (!s)
		return errno ? errno : ENOMEM;
	err = sfs_node_open(fs->inodes, node, kernel_internal_open(flags) ?
			    SFS_OPEN_READ_IN_PLACE : SFS_OPEN_READ, sfs_snap_version(s),
			    s, tid, keep_cache, snap);
	if (!err) {
		*bound = true;
		if (*snap)
			sfs_stat_add(SFS_STAT_SNAPSHOT_OPENS, 1);
	}
	return err;
}

static struct sfs_file *file_new(int fd, struct sfs_node *node,
				 struct sfs_snap *snap, bool bound, int flags)
{
	struct sfs_file *f = calloc(1, sizeof(*f));

	if (f) {
		f->fd = fd;
		f->node = node;
		f->inode = node->inode;
		f->snap = snap;
		f->bound = bound;
		f->writable = (flags & O_ACCMODE) != O_RDONLY;
		if (f->writable)
			__atomic_add_fetch(&f->inode->writers, 1, __ATOMIC_ACQ_REL);
		sfs_handle_track_file(f, true);
	}
	return f;
}

static void file_free(struct sfs_fs *fs, struct sfs_file *f)
{
	sfs_handle_track_file(f, false);
	sfs_file_close(fs, f);
}

/*
 * Reply to open/create; if the opener is gone, nobody will release f.
 * The reply frees req whatever it returns: fs is taken before.
 */
static void reply_opened(fuse_req_t req, struct fuse_file_info *fi,
			 struct sfs_file *f, const struct fuse_entry_param *e)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	int res;

	fi->fh = (uintptr_t)f;
	res = e ? fuse_reply_create(req, e, fi) : fuse_reply_open(req, fi);
	if (res == -ENOENT) {
		struct sfs_node *node = f->node;

		file_free(fs, f);
		if (e)
			sfs_itable_forget(fs->inodes, node, 1);
	}
}

struct open_args {
	const char *path;
	int flags;
	int fd;
};

static int apply_open(void *arg)
{
	struct open_args *a = arg;

	a->fd = open(a->path, a->flags);
	return a->fd == -1 ? errno : 0;
}

/* Open the backing file as asked; O_TRUNC is a modification of it all
 * (its eviction is added to ev). */
static int open_backing(fuse_req_t req, struct sfs_inode *inode, int path_fd,
			int flags, int *fd, struct sfs_eviction *ev)
{
	char path[SFS_PROC_PATH_MAX];
	struct open_args a = { .path = path, .flags = backing_flags(flags) };
	int err;

	sfs_proc_path(path, path_fd);
	/* O_RDONLY | O_TRUNC truncates too (the kernel checked write access). */
	if (flags & O_TRUNC)
		err = sfs_modify(req, inode, path_fd, 0, SFS_RANGE_EOF, ev,
				 apply_open, &a);
	else
		err = apply_open(&a);
	if (!err) {
		drop_append(a.fd, flags);
		*fd = a.fd;
		/* Our root open truncated: clear what the caller's would have
		 * (the kernel does not, with atomic O_TRUNC; setid.c). */
		if (flags & O_TRUNC)
			sfs_setid_drop_for(req, a.fd);
	}
	return err;
}

/* An open's reply after its O_TRUNC eviction: fi is a copy (the worker's
 * own is gone by then). */
struct open_reply {
	struct fuse_file_info fi;
	struct sfs_file *f;
};

static void send_open_reply(fuse_req_t req, void *ctx)
{
	struct open_reply *o = ctx;

	reply_opened(req, &o->fi, o->f, NULL);
	free(o);
}

void sfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct sfs_node *node = sfs_node_of(req, ino);
	struct sfs_eviction ev = { 0 };
	struct open_reply *o = NULL;
	struct sfs_snap *snap;
	struct sfs_file *f = NULL;
	bool keep_cache, bound = false;
	int fd = -1, path_fd, err;

	path_fd = sfs_fd_get(req, node->inode);
	if (path_fd < 0)
		return (void)fuse_reply_err(req, errno);
	err = bind_open(req, node, path_fd, fi->flags, &snap, &keep_cache, &bound);
	if (!err)
		err = open_backing(req, node->inode, path_fd, fi->flags, &fd, &ev);
	sfs_fd_put(req, node->inode);
	if (!err && (!(o = malloc(sizeof(*o))) ||
		     !(f = file_new(fd, node, snap, bound, fi->flags)))) {
		close(fd);
		err = ENOMEM;
	}
	if (err) {
		free(o);
		if (bound)
			sfs_node_release(fs->inodes, node);
		return sfs_reply_err_after(req, &ev, err);
	}
	set_open_flags(fs, fi, fi->flags, fd, keep_cache);
	o->fi = *fi;
	o->f = f;
	sfs_reply_after(req, &ev, send_open_reply, o);
}

/*
 * Create as the caller, so the file is theirs and setgid dirs apply.
 * Always exclusively: the kernel sends CREATE for a name it believes absent,
 * but the name may exist in SRC meanwhile (made there directly, or a hard
 * link to a file with snapshots), and opening that with O_TRUNC here would
 * bypass the modification protocol. Unless the caller asked O_EXCL, such a
 * create is answered ESTALE: the kernel then looks the name up again and
 * opens the existing file (do_filp_open retries with LOOKUP_REVAL).
 */
static int create_as_caller(fuse_req_t req, struct sfs_inode *dir,
			    const char *name, mode_t mode, int flags, int *fd)
{
	int dir_fd = sfs_fd_get(req, dir), err;

	if (dir_fd < 0)
		return errno;
	err = sfs_become_caller(req);
	if (!err) {
		*fd = openat(dir_fd, name, backing_flags(flags) | O_CREAT |
			     O_EXCL | O_NOFOLLOW, mode);
		err = *fd == -1 ? errno : 0;
		sfs_become_daemon(req);
	}
	sfs_fd_put(req, dir);
	if (err == EEXIST && !(flags & O_EXCL))
		err = ESTALE;
	if (!err)
		drop_append(*fd, flags);
	return err;
}

void sfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		   mode_t mode, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	char path[SFS_PROC_PATH_MAX];
	struct fuse_entry_param e;
	struct sfs_node *node;
	struct sfs_snap *snap = NULL;
	struct sfs_file *f = NULL;
	bool keep_cache = false, bound = false;
	int fd = -1, path_fd, err;

	if (!sfs_name_is_safe(name))
		return (void)fuse_reply_err(req, EINVAL);
	err = create_as_caller(req, sfs_inode_of(req, parent), name, mode,
			       fi->flags, &fd);
	if (err)
		return (void)fuse_reply_err(req, err);
	/* The O_PATH fd comes from the open fd: the very inode we created,
	 * even if the name was replaced in SRC meanwhile. */
	sfs_proc_path(path, fd);
	path_fd = open(path, O_PATH | O_CLOEXEC);
	err = path_fd == -1 ? errno : sfs_entry_from_fd(req, path_fd, &e);
	if (err) {
		close(fd);
		return (void)fuse_reply_err(req, err);
	}
	sfs_view_note_created(fs, &e.attr);
	node = sfs_node_of(req, e.ino);
	/* A new inode's first node binds as asked (no ESTALE: nothing else
	 * can hold it yet); should it not, the create fails cleanly. */
	err = bind_open(req, node, fd, fi->flags, &snap, &keep_cache, &bound);
	if (!err && !(f = file_new(fd, node, snap, bound, fi->flags))) {
		if (bound)
			sfs_node_release(fs->inodes, node);
		err = ENOMEM;
	}
	if (err) {
		close(fd);
		sfs_itable_forget(fs->inodes, node, 1);
		return (void)fuse_reply_err(req, err == ESTALE ? EAGAIN : err);
	}
	/* After bind_open: a read-only create's snapshot keeps its events. */
	sfs_oob_watch_ignore_new(fs->watch, node->inode, fd);
	set_open_flags(fs, fi, fi->flags, fd, keep_cache);
	reply_opened(req, fi, f, &e);
}

void sfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	struct sfs_file *f = sfs_file_of(fi);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	struct sfs_range_request r;

	__atomic_add_fetch(&f->inflight, 1, __ATOMIC_ACQUIRE);
	if (f->snap) {
		sfs_snapshot_read(req, f, size, off);
		__atomic_sub_fetch(&f->inflight, 1, __ATOMIC_RELEASE);
		return;
	}
	/* The reply may land in the live page cache (see sfs_op_write_buf). */
	__atomic_store_n(&f->inode->live_reads, true, __ATOMIC_RELEASE);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = f->fd;
	buf.buf[0].pos = off;
	/*
	 * libfuse splices the backing pages into its pipe, then the pipe into
	 * /dev/fuse, where the kernel copies them out. Until that returns the
	 * pipe references backing folios a modification could change (K6).
	 */
	sfs_range_acquire(sfs_inode_range_lock(f->inode), &r, (uint64_t)off, size, false);
	fuse_reply_data(req, &buf, 0);	/* no SPLICE_MOVE: ops.c */
	sfs_range_release(sfs_inode_range_lock(f->inode), &r);
	__atomic_sub_fetch(&f->inflight, 1, __ATOMIC_RELEASE);
}

struct write_args {
	struct fuse_bufvec *in;
	int fd;
	off_t off;
	ssize_t written;
};

static int apply_write(void *arg)
{
	struct write_args *a = arg;
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(a->in));

	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = a->fd;
	out.buf[0].pos = a->off;
	a->written = fuse_buf_copy(&out, a->in, 0);
	return a->written < 0 ? (int)-a->written : 0;
}

/*
 * The kernel gives O_APPEND writes the offset of the end of file it knows,
 * so [off, off + len) is the range written in every case.
 */
void sfs_op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
		      off_t off, struct fuse_file_info *fi)
{
	struct sfs_file *f = sfs_file_of(fi);
	struct write_args a = { .in = in, .fd = f->fd, .off = off };
	struct sfs_eviction ev = { 0 };
	int err;

	/* The kernel leaves set-ID bits to us for direct writes (setid.c). */
	sfs_setid_drop_for(req, f->fd);
	err = sfs_modify(req, f->inode, f->fd, (uint64_t)off, fuse_buf_size(in),
			 NULL, apply_write, &a);
	/*
	 * The kernel drops the range from the cache before sending a direct
	 * WRITE, but a read of the live file that runs between that and our
	 * pwrite caches the old bytes again, where a later splice or mmap by
	 * the writer would find them. Such a read may have come for any write
	 * still on its way to us, so a write does not clear the flag (one
	 * writer's clearing once lost another's eviction): it stays set until
	 * the last writable handle closes, when no WRITE can be in flight.
	 */
	if (__atomic_load_n(&f->inode->live_reads, __ATOMIC_ACQUIRE))
		sfs_eviction_add(&ev, f->inode, (uint64_t)off, fuse_buf_size(in));
	sfs_reply_write_after(req, &ev, err, (size_t)a.written);
}

void sfs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_file *f = sfs_file_of(fi);
	int res;

	/* The closing process's POSIX locks on the file (ops_lock.c). */
	sfs_locks_flush(f, fi->lock_owner);
	/* close() of a duplicate: what the backing FS does at close (NFS
	 * flushes) happens at the caller's close. */
	res = close(dup(f->fd));

	fuse_reply_err(req, res == -1 ? errno : 0);
}

void sfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_file *f = sfs_file_of(fi);

	/* Only a read between its reply and its unlock can be here: a few
	 * instructions away from done, so yielding beats a condvar per read. */
	while (__atomic_load_n(&f->inflight, __ATOMIC_ACQUIRE))
		sched_yield();
	sfs_locks_release(f);
	file_free(sfs_fs_of(req), f);
	fuse_reply_err(req, 0);
}

void sfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		  struct fuse_file_info *fi)
{
	int fd = sfs_file_of(fi)->fd;
	int res = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, res == -1 ? errno : 0);
}

struct fallocate_args {
	int fd, mode;
	off_t off, len;
};

static int apply_fallocate(void *arg)
{
	struct fallocate_args *a = arg;

	return fallocate(a->fd, a->mode, a->off, a->len) ? errno : 0;
}

/*
 * Collapse and insert shift everything after off; the others touch only
 * [off, off + len). After a punch or zero range the kernel zeroes partial
 * folios in place, so those are evicted (the kernel refuses collapse and
 * insert itself on 6.18, EOPNOTSUPP, but should it pass them on, the
 * shifted bytes must not stay cached either).
 */
void sfs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
		      off_t len, struct fuse_file_info *fi)
{
	struct sfs_file *f = sfs_file_of(fi);
	struct fallocate_args a = { .fd = f->fd, .mode = mode, .off = off, .len = len };
	bool shifts = mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE);
	bool zeroes = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE);
	struct sfs_eviction ev = { 0 };
	int err;

	if (off < 0 || len <= 0)
		return (void)fuse_reply_err(req, EINVAL);
	/* As the backing FS's fallocate does for the caller (file_modified). */
	sfs_setid_drop_for(req, f->fd);
	err = sfs_modify(req, f->inode, f->fd, (uint64_t)off,
			 shifts ? SFS_RANGE_EOF : (uint64_t)len,
			 shifts || zeroes ? &ev : NULL, apply_fallocate, &a);
	sfs_reply_err_after(req, &ev, err);
}

void sfs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		  struct fuse_file_info *fi)
{
	struct sfs_file *f = sfs_file_of(fi);
	off_t res;
	int err;

	if (f->view && sfs_view_invalid(sfs_fs_of(req)->views, f->view)) {
		err = EIO;	/* max_preserve took its view: all of it EIO */
	} else if (f->snap && (whence == SEEK_DATA || whence == SEEK_HOLE)) {
		err = sfs_snapshot_lseek(f, off, whence, &res);
	} else {
		res = lseek(f->fd, off, whence);
		err = res == -1 ? errno : 0;
	}
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_lseek(req, res);
}

struct copy_args {
	struct sfs_file *in, *out;
	loff_t off_in, off_out;
	size_t len;
	unsigned flags;
	ssize_t copied;
};

static int apply_copy(void *arg)
{
	struct copy_args *a = arg;

	a->copied = copy_file_range(a->in->fd, &a->off_in, a->out->fd,
				    &a->off_out, a->len, a->flags);
	return a->copied == -1 ? errno : 0;
}

/*
 * The source range is read (shared), the destination written (exclusive,
 * through sfs_modify, evicted afterwards: the kernel drops the destination
 * range from its cache after the reply, zeroing the parts of large folios
 * it cannot split). Within one file the source must not change under the
 * copy either, so the destination lock covers both ranges.
 */
void sfs_op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			    struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			    off_t off_out, struct fuse_file_info *fi_out,
			    size_t len, int flags)
{
	struct copy_args a = {
		.in = sfs_file_of(fi_in), .out = sfs_file_of(fi_out),
		.off_in = off_in, .off_out = off_out, .len = len,
		.flags = (unsigned)flags,
	};
	uint64_t lo = (uint64_t)off_out, hi = (uint64_t)off_out + len;
	struct sfs_eviction ev = { 0 };
	int err;

	if (off_in < 0 || off_out < 0)
		return (void)fuse_reply_err(req, EINVAL);
	/* From a snapshot the bytes are not (all) in the live file: EXDEV
	 * makes the kernel copy through splice, i.e. through our reads. */
	if (a.in->snap)
		return (void)fuse_reply_err(req, EXDEV);
	/* The kernel's file_modified() before sending us the copy only
	 * applies the old S_ISGID rule (setid.c). */
	sfs_setid_drop_for(req, a.out->fd);
	if (a.in->inode == a.out->inode) {
		lo = lo < (uint64_t)off_in ? lo : (uint64_t)off_in;
		hi = hi > (uint64_t)off_in + len ? hi : (uint64_t)off_in + len;
		err = sfs_modify(req, a.out->inode, a.out->fd, lo, hi - lo, &ev,
				 apply_copy, &a);
	} else {
		struct sfs_copy_source src = { .inode = a.in->inode,
					       .off = (uint64_t)off_in, .len = len };

		err = sfs_modify_from(req, a.out->inode, a.out->fd, lo, len,
				      &ev, &src, apply_copy, &a);
	}
	sfs_reply_write_after(req, &ev, err, (size_t)a.copied);
}
