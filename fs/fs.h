/*
 * Private to the daemon: the mounted filesystem's state and the helpers the
 * fuse_lowlevel_ops handlers share. Handlers reply with positive errnos only.
 *
 * One errno convention, for fs/ and lib/ alike: a helper that can fail
 * returns 0 or a positive errno; one that returns an fd, a count or a
 * pointer returns it, or -1 (NULL) with errno set, as system calls do.
 * Never -errno. Parsers of user input (lib/options.c) return 0 or -1 and
 * say why in a message. (libfuse's own results, e.g. of
 * fuse_session_loop_mt(), keep its convention where passed on as they are.)
 */
#ifndef SFS_FS_H
#define SFS_FS_H

#include <dirent.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>

#include "sfs/history.h"
#include "sfs/inode_table.h"
#include "sfs/options.h"
#include "sfs/store.h"

struct sfs_fs {
	struct sfs_options opts;
	char *src_real;			/* canonical SRC */
	struct sfs_inode_table *inodes;
	struct sfs_store *store;	/* NULL with -o snapshot=off */
	struct oob_watch *watch;	/* fanotify on SRC, or NULL */
	struct sfs_evictor *evictor;	/* evicts before replies (evictor.c) */
	struct digest_pool *digests;	/* threads for large digests (digest.c) */
	struct fuse_session *se;
	bool switch_creds;		/* running as root: act as each caller */
	bool apply_umask;		/* DONT_MASK: the caller's umask is ours to apply */
	bool quotas_on;			/* SRC's filesystem enforced quotas at mount */
	bool posix_locks;		/* POSIX locks are ours: FLUSH must come */
	char bdi_path[96];		/* the mount's read_ahead_kb in sysfs */
	unsigned conn_minor;		/* its FUSE connection (0: unknown) */
	char *mountpoint;		/* canonical MNT, for shutdown.c */
	bool readahead_tuned;		/* atomic: done (or tried) once */
	unsigned max_read;		/* cap on READ sizes (0: the kernel's) */
	/* Tree views (views.c), NULL with -o snapshot=off; the gate every
	 * change through MNT holds shared, a view taken exclusively. */
	struct sfs_views *views;
	pthread_rwlock_t view_gate;
	/* sfs_view_capture_held, for the watch's handler (set with views:
	 * the watch sits below the views and does not call up into them). */
	bool (*capture_held)(struct sfs_fs *fs, int fd, const struct stat *st);
};

/* An open regular file: fi->fh points to one. */
struct sfs_file {
	int fd;				/* backing fd, opened read/write as asked */
	struct sfs_inode *inode;
	struct sfs_node *node;		/* the incarnation it was opened on */
	struct sfs_snap *snap;		/* a snapshot's version, or NULL: live */
	bool bound;			/* counted in node->nopen */
	bool eio_logged;		/* said once why reads fail */
	bool writable;			/* counted in inode->writers */
	/*
	 * Reads still running after their reply (they unlock their range
	 * then). Once a READ is answered the kernel may RELEASE the file,
	 * and after our RELEASE reply FORGET the inode: release waits for
	 * this to drop to zero so neither is freed under such a read.
	 */
	unsigned inflight;		/* atomic */
	/* Lock owners that first locked through this handle (ops_lock.c). */
	unsigned lock_owners;		/* atomic */
	/* A file of a tree view (view_ops.c): the view it reads (node's
	 * lookup is its capture's, or the view node's, which the kernel keeps
	 * while the file is open). */
	struct sfs_view *view;
	fuse_ino_t view_ino;		/* the view's node it was opened on */
};

/* An open directory (ops_dir.c): fi->fh points to one. */
struct sfs_dir {
	DIR *dp;
	off_t offset;		/* cookie of the entry after `entry` */
	struct dirent *entry;	/* read but not yet returned, or NULL */
};

extern const struct fuse_lowlevel_ops sfs_ops;

static inline struct sfs_fs *sfs_fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/*
 * The nodeid the kernel uses is the node's address, as in libfuse's
 * passthrough_ll: the kernel only sends nodeids we gave it, and a node
 * lives until the kernel FORGETs its last lookup, after which it never sends
 * that nodeid again.
 */
static inline struct sfs_node *sfs_node_of(fuse_req_t req, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return sfs_itable_root(sfs_fs_of(req)->inodes);
	return (struct sfs_node *)(uintptr_t)ino;
}

static inline struct sfs_inode *sfs_inode_of(fuse_req_t req, fuse_ino_t ino)
{
	return sfs_node_of(req, ino)->inode;
}

static inline fuse_ino_t sfs_nodeid(struct sfs_fs *fs, struct sfs_node *n)
{
	return n == sfs_itable_root(fs->inodes) ? FUSE_ROOT_ID : (uintptr_t)n;
}

/* Can i have snapshots (and so incarnations)? Regular files, with a store. */
static inline bool sfs_has_snapshots(struct sfs_fs *fs, struct sfs_inode *i)
{
	return fs->store && i->type == S_IFREG;
}

static inline struct sfs_file *sfs_file_of(struct fuse_file_info *fi)
{
	return (struct sfs_file *)(uintptr_t)fi->fh;
}

/*
 * The O_PATH fd of inode for one request (the fd cache may have closed it:
 * reopened from its handle), -1 with errno (ESTALE: the file is gone).
 * Every successful get is followed by one put when done with the fd.
 */
static inline int sfs_fd_get(fuse_req_t req, struct sfs_inode *inode)
{
	return sfs_inode_fd_get(sfs_fs_of(req)->inodes, inode);
}

static inline void sfs_fd_put(fuse_req_t req, struct sfs_inode *inode)
{
	sfs_inode_fd_put(sfs_fs_of(req)->inodes, inode);
}

/* inode_fd.c: helpers on an inode's fds, below every op. */
/* "/proc/self/fd/N" for an O_PATH fd: reopens or names exactly that inode. */
#define SFS_PROC_PATH_MAX 32
void sfs_proc_path(char buf[SFS_PROC_PATH_MAX], int fd);
/* fstat of any fd (O_PATH, symlinks included): 0 or errno. */
int sfs_stat_fd(int fd, struct stat *st);
/* Look name up below parent and fill e (one kernel lookup accounted). */
int sfs_do_lookup(fuse_req_t req, struct sfs_inode *parent, const char *name,
		  struct fuse_entry_param *e);
/* Fill e for an inode we hold an O_PATH fd to (consumed); one lookup. */
int sfs_entry_from_fd(fuse_req_t req, int path_fd, struct fuse_entry_param *e);
/* A readable fd of inode's live file (callers close it), or -1 with errno. */
int sfs_open_data_fd(struct sfs_inode_table *t, struct sfs_inode *inode);

/* ops_entry.c: attributes shared with the other ops. */
/* Attributes of node for the kernel (a snapshot node shows its version). */
int sfs_node_stat(fuse_req_t req, struct sfs_node *node, int fd, struct stat *st);
/* A change of metadata only (no data) was made to inode through MNT;
 * fd: its open file's fd, or -1. */
void sfs_note_meta_change(fuse_req_t req, struct sfs_inode *inode, int fd);

/*
 * A page-cache range a request must evict before it replies (evictor.c):
 * inode NULL for none. Filled by sfs_modify, sent with sfs_reply_*_after.
 */
struct sfs_eviction {
	struct sfs_inode *inode;
	uint64_t off, len;
};

/* Add [off, off + len) of inode to ev (one file per request). */
void sfs_eviction_add(struct sfs_eviction *ev, struct sfs_inode *inode,
		      uint64_t off, uint64_t len);

/*
 * Reply once ev is evicted. The eviction runs on the evictor thread, never
 * on a worker (it waits for READs only a free worker answers), so these
 * return at once; with nothing to evict they reply right away. reply(req,
 * ctx) must free ctx; it must not use the caller's stack (fi included).
 */
typedef void (*sfs_reply_fn)(fuse_req_t req, void *ctx);
void sfs_reply_after(fuse_req_t req, const struct sfs_eviction *ev,
		     sfs_reply_fn reply, void *ctx);
void sfs_reply_err_after(fuse_req_t req, const struct sfs_eviction *ev, int err);
void sfs_reply_write_after(fuse_req_t req, const struct sfs_eviction *ev,
			   int err, size_t count);
/*
 * Drop the whole page cache of these nodes, soon, on the evictor thread
 * (callers may hold locks, or be the watch thread): a snapshot that became
 * unreadable must fail whole reads with EIO, not hand out its cached pages
 * first (a short read: tar pads the rest with zeros and goes on).
 */
void sfs_evict_nodes_later(struct sfs_fs *fs, struct sfs_node **nodes,
			   size_t n);
/* The same for nodeids (a view's nodes, view_ops.c, are no sfs_node). */
void sfs_evict_ids_later(struct sfs_fs *fs, const fuse_ino_t *ids, size_t n);
/*
 * Run call(fs, arg) soon on the evictor thread, which holds no lock (for
 * work that notifies the kernel, asked for under locks). false if no
 * evictor runs: then nothing was queued.
 */
bool sfs_evictor_call(struct sfs_fs *fs, void (*call)(struct sfs_fs *, void *),
		      void *arg);
int sfs_evictor_start(struct sfs_fs *fs);
void sfs_evictor_stop(struct sfs_fs *fs);

/*
 * Apply a change to [off, off + len) of inode's data (len SFS_RANGE_EOF - off
 * or more: to the end) by the protocol described in modify.c: exclusive
 * range lock around apply(arg). If ev is not NULL the range is added to it:
 * the caller replies with sfs_reply_*_after(ev), which drops it from the
 * kernel's page cache first. attr_fd: any fd of the file (O_PATH will do),
 * whose fstat after the change is the base for out-of-band detection.
 * Returns apply's positive errno.
 */
int sfs_modify(fuse_req_t req, struct sfs_inode *inode, int attr_fd,
	       uint64_t off, uint64_t len, struct sfs_eviction *ev,
	       int (*apply)(void *arg), void *arg);

/*
 * sfs_modify for a copy from another file: [off, off + len) of src->inode
 * is also locked, shared, for the change (taken in the one global order of
 * range locks, see modify.c). src->inode == inode: the caller's range must
 * cover both.
 */
struct sfs_copy_source {
	struct sfs_inode *inode;
	uint64_t off, len;
};
int sfs_modify_from(fuse_req_t req, struct sfs_inode *inode, int attr_fd,
		    uint64_t off, uint64_t len, struct sfs_eviction *ev,
		    const struct sfs_copy_source *src, int (*apply)(void *arg),
		    void *arg);

/* Change the size of inode (through fd if >= 0, else its O_PATH path_fd)
 * by the modify protocol; the range to evict is added to ev. */
int sfs_set_size(fuse_req_t req, struct sfs_inode *inode, int fd, int path_fd,
		 off_t size, struct sfs_eviction *ev);

/* Drop [off, off + len) of inode from the kernel's page cache, now. */
void sfs_evict(fuse_req_t req, struct sfs_inode *inode, uint64_t off,
	       uint64_t len);

/*
 * Reading [off, off + len) of a snapshot (snapshot_io.c), as every reader
 * of one does it: the range held shared (a change of it first preserves it
 * for us, K6), the live file (live_fd) checked for changes from outside,
 * then the read planned into segs: 0, or EIO with *why. Store segments may
 * be read until sfs_snap_reading_end(), which gives everything back
 * (after a reply that spliced them: their pages may sit in a pipe).
 */
struct sfs_snap_reading {
	struct sfs_inode *inode;
	struct sfs_snap *snap;
	struct sfs_range_request range;
	bool planned;
};
int sfs_snap_reading_start(struct sfs_snap_reading *rd, struct sfs_inode *inode,
			   struct sfs_snap *snap, int live_fd, uint64_t off,
			   uint64_t len, GArray *segs, const char **why);
void sfs_snap_reading_end(struct sfs_snap_reading *rd);

/*
 * A snapshot of inode's file as it is now (snapshot_io.c); any_fd: an fd
 * of it (O_PATH will do). sfs_snapshot_open only opens it (the caller
 * arms the out-of-band watch around it); sfs_snapshot_take arms, opens
 * and settles, for a tree view (sfs_history_open_for_views: max_preserve
 * reclaims it with its view). NULL with errno.
 */
struct sfs_snap *sfs_snapshot_open(struct sfs_fs *fs, struct sfs_inode *inode,
				   int any_fd);
struct sfs_snap *sfs_snapshot_take(struct sfs_fs *fs, struct sfs_inode *inode,
				   int any_fd);
/* sfs_snapshot_take's snapshot without arming, NULL with errno EBUSY
 * rather than wait for a change under way (for the watch's handler, which
 * ends some itself). */
struct sfs_snap *sfs_snapshot_try_open(struct sfs_fs *fs,
				       struct sfs_inode *inode, int any_fd);

/* Answer a read of a snapshot handle (snapshot_io.c). */
void sfs_snapshot_read(fuse_req_t req, struct sfs_file *f, size_t size, off_t off);

/* SEEK_DATA/SEEK_HOLE within a snapshot; 0 with *out, or a positive errno. */
int sfs_snapshot_lseek(struct sfs_file *f, off_t off, int whence, off_t *out);

/*
 * Answer getxattr("user.stablefs.xxh3") of a regular file's node with the
 * XXH3-128 in hex of what its reader gets (digest.c); size: the caller's
 * buffer. Large files are answered later, from a digest thread.
 */
void sfs_digest_reply(fuse_req_t req, struct sfs_node *node, size_t size);
/* The digest threads, for the life of the session: 0 or a positive errno. */
int sfs_digest_pool_start(struct sfs_fs *fs);
void sfs_digest_pool_stop(struct sfs_fs *fs);

/* The mount's counters as one JSON object; returns its length (snprintf). */
size_t sfs_stats_json(struct sfs_fs *fs, char *buf, size_t size);

/* Find the mount's backing device (after mounting), raise its read-ahead
 * (from a request: only once the kernel processed INIT). readahead.c */
void sfs_find_bdi(struct sfs_fs *fs, const char *mnt);
void sfs_tune_readahead(struct sfs_fs *fs);
/* The largest READ libfuse can answer by splice here (before mounting;
 * 0: any the kernel sends). readahead.c */
unsigned sfs_splice_max_read(void);

/*
 * A SIGTERM, SIGINT or SIGHUP ends the daemon even when requests are stuck
 * (shutdown.c): start after fuse_set_signal_handlers(), done once the
 * session's threads are finished.
 */
void sfs_shutdown_watch_start(struct sfs_fs *fs);
void sfs_shutdown_done(void);

/*
 * systemd's readiness protocol (notify.c): READY=1 once the mount exists,
 * STOPPING=1 once (from the first of a signal and the loop's end). Only in
 * the foreground; a no-op without $NOTIFY_SOCKET.
 */
void sfs_notify_ready(const char *src, const char *mnt, bool foreground);
void sfs_notify_stopping(void);

/*
 * The fanotify watch on SRC (oob_watch.c); NULL where unavailable.
 * preserve: hold changes to files with snapshots until preserved, where
 * the kernel and SRC's filesystem allow (else it only detects them).
 */
struct oob_watch;
struct oob_watch *sfs_oob_watch_start(struct sfs_fs *fs, bool preserve);
void sfs_oob_watch_stop(struct oob_watch *w);
void sfs_oob_watch_drain(struct oob_watch *w);
bool sfs_oob_watch_preserves(const struct oob_watch *w);
/* Around taking a snapshot of inode (fd: any fd of it): from arm on, its
 * changes from outside are reported (w may be NULL). */
void sfs_oob_watch_arm(struct oob_watch *w, struct sfs_inode *inode, int fd);
void sfs_oob_watch_opened(struct oob_watch *w, struct sfs_inode *inode);
/* A file we have just created: no event needed for our first change of
 * it (oob_events.c; w may be NULL). */
void sfs_oob_watch_ignore_new(struct oob_watch *w, struct sfs_inode *inode,
			      int fd);
/* A view was taken: report every file again (oob_watch.c). */
void sfs_oob_watch_unignore_all(struct oob_watch *w);

/*
 * handles.c: the lifetimes of file and directory handles. Handles the
 * kernel may never release are tracked from open to release; what is left
 * when the session ends is closed by close_all.
 */
void sfs_handle_track_file(struct sfs_file *f, bool on);
void sfs_handle_track_dir(void *d, bool on);
void sfs_handles_close_all(struct sfs_fs *fs);
/* Close a file handle / a directory handle (struct sfs_dir). */
void sfs_file_close(struct sfs_fs *fs, struct sfs_file *f);
void sfs_dir_close(void *d);

/* creds.c: run the rest of an op with the caller's fsuid/fsgid/groups (if
 * root) and, with DONT_MASK, the caller's umask. */
int sfs_become_caller(fuse_req_t req);
void sfs_become_daemon(fuse_req_t req);

/*
 * Set-ID bits the kernel would clear for the caller and the daemon's root
 * changes keep (setid.c). sfs_setid_to_kill: the bits a modification
 * (chown: a chown) by the caller of req drops from a file stat'd as st;
 * sfs_acl_sgid_to_kill: what setting an access ACL drops. sfs_setid_drop:
 * clear those of kill still set on fd's file (an O_PATH fd will do);
 * sfs_setid_drop_for: both for a modification by the caller. 0 or errno.
 */
bool sfs_caller_in_group(fuse_req_t req, gid_t gid);
mode_t sfs_setid_to_kill(fuse_req_t req, const struct stat *st, bool chown);
mode_t sfs_acl_sgid_to_kill(fuse_req_t req, const struct stat *st);
int sfs_setid_drop(int fd, mode_t kill);
int sfs_setid_drop_for(fuse_req_t req, int fd);

/*
 * Tree views (G7). views.c: the change gate, captures, taking views;
 * view_ops.c: serving MNT/<snapdir>/NAME.
 */
struct sfs_view;
int sfs_views_start(struct sfs_fs *fs);
void sfs_views_stop(struct sfs_fs *fs);
/* Around every change through MNT: from before its captures until it has
 * applied (not recursive). */
void sfs_change_begin(struct sfs_fs *fs);
void sfs_change_end(struct sfs_fs *fs);
/* Before a change: keep inode, or the object dir/name names (if any), as
 * the views that need it see it now. */
void sfs_view_capture_inode(struct sfs_fs *fs, struct sfs_inode *inode);
void sfs_view_capture_name(struct sfs_fs *fs, struct sfs_inode *dir,
			   const char *name);
/*
 * From the watch's handler, before it allows an access from outside that
 * may change the regular file fd refers to (st: its stat now, the writer
 * held): capture it for the views that need it (its snapshot then makes
 * the handler preserve what the change alters). True if captured now.
 */
bool sfs_view_capture_held(struct sfs_fs *fs, int fd, const struct stat *st);
/* An object was just created through MNT (st: its stat): no view has it. */
void sfs_view_note_created(struct sfs_fs *fs, const struct stat *st);
/* Answer the views' ioctls on MNT's root; false if cmd is not one. */
bool sfs_views_ioctl(fuse_req_t req, unsigned int cmd, const void *in,
		     size_t in_size);
/* The views as JSON (include/sfs/view_ioctl.h), g_free'd by the caller. */
char *sfs_views_json(struct sfs_fs *fs, size_t *len);
static inline const char *sfs_snapdir(struct sfs_fs *fs)
{
	return fs->opts.snapdir;
}
/* Is ino one of a view's nodes? */
bool sfs_is_view_ino(fuse_ino_t ino);
void sfs_view_lookup_snapdir(fuse_req_t req);
void sfs_view_forget_name(struct sfs_fs *fs, const char *name);
/*
 * view was invalidated (max_preserve): soon, on the evictor thread, the
 * kernel drops its cached entry and every cached page and attribute of
 * its nodes, so they ask again and get EIO. Takes over the caller's hold
 * on view (sfs_view_hold). Callable under any lock.
 */
void sfs_view_forget_cached_later(struct sfs_fs *fs, struct sfs_view *view);
void sfs_view_nodes_free(struct sfs_fs *fs);
void sfs_vop_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void sfs_vop_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n);
void sfs_vop_getattr(fuse_req_t req, fuse_ino_t ino);
void sfs_vop_readlink(fuse_req_t req, fuse_ino_t ino);
void sfs_vop_statfs(fuse_req_t req);
void sfs_vop_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void sfs_vop_readdir(fuse_req_t req, size_t size, off_t off,
		     struct fuse_file_info *fi, bool plus);
void sfs_vop_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void sfs_vop_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* getxattr of name, or listxattr (name NULL), of a view's node. */
void sfs_vop_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);

/* Entry points of the split ops files, gathered in ops.c. */
void sfs_op_lookup(fuse_req_t, fuse_ino_t, const char *);
void sfs_op_forget(fuse_req_t, fuse_ino_t, uint64_t);
void sfs_op_forget_multi(fuse_req_t, size_t, struct fuse_forget_data *);
void sfs_op_getattr(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void sfs_op_setattr(fuse_req_t, fuse_ino_t, struct stat *, int,
		    struct fuse_file_info *);
void sfs_op_readlink(fuse_req_t, fuse_ino_t);
void sfs_op_mknod(fuse_req_t, fuse_ino_t, const char *, mode_t, dev_t);
void sfs_op_mkdir(fuse_req_t, fuse_ino_t, const char *, mode_t);
void sfs_op_symlink(fuse_req_t, const char *, fuse_ino_t, const char *);
void sfs_op_link(fuse_req_t, fuse_ino_t, fuse_ino_t, const char *);
void sfs_op_unlink(fuse_req_t, fuse_ino_t, const char *);
void sfs_op_rmdir(fuse_req_t, fuse_ino_t, const char *);
void sfs_op_rename(fuse_req_t, fuse_ino_t, const char *, fuse_ino_t,
		   const char *, unsigned int);
void sfs_op_statfs(fuse_req_t, fuse_ino_t);

void sfs_op_opendir(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void sfs_op_readdir(fuse_req_t, fuse_ino_t, size_t, off_t,
		    struct fuse_file_info *);
void sfs_op_readdirplus(fuse_req_t, fuse_ino_t, size_t, off_t,
			struct fuse_file_info *);
void sfs_op_releasedir(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void sfs_op_fsyncdir(fuse_req_t, fuse_ino_t, int, struct fuse_file_info *);

void sfs_op_open(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void sfs_op_create(fuse_req_t, fuse_ino_t, const char *, mode_t,
		   struct fuse_file_info *);
void sfs_op_read(fuse_req_t, fuse_ino_t, size_t, off_t, struct fuse_file_info *);
void sfs_op_write_buf(fuse_req_t, fuse_ino_t, struct fuse_bufvec *, off_t,
		      struct fuse_file_info *);
void sfs_op_flush(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void sfs_op_release(fuse_req_t, fuse_ino_t, struct fuse_file_info *);
void sfs_op_fsync(fuse_req_t, fuse_ino_t, int, struct fuse_file_info *);
void sfs_op_fallocate(fuse_req_t, fuse_ino_t, int, off_t, off_t,
		      struct fuse_file_info *);
void sfs_op_lseek(fuse_req_t, fuse_ino_t, off_t, int, struct fuse_file_info *);
void sfs_op_copy_file_range(fuse_req_t, fuse_ino_t, off_t,
			    struct fuse_file_info *, fuse_ino_t, off_t,
			    struct fuse_file_info *, size_t, int);

void sfs_op_flock(fuse_req_t, fuse_ino_t, struct fuse_file_info *, int);
void sfs_op_getlk(fuse_req_t, fuse_ino_t, struct fuse_file_info *,
		  struct flock *);
void sfs_op_setlk(fuse_req_t, fuse_ino_t, struct fuse_file_info *,
		  struct flock *, int);
/* A handle's FLUSH (one close) and RELEASE end its owners' locks; at the
 * end of the session, waits are cut short and every lock fd closed. */
void sfs_locks_flush(struct sfs_file *f, uint64_t lock_owner);
void sfs_locks_release(struct sfs_file *f);
void sfs_locks_shutdown(void);

void sfs_op_ioctl(fuse_req_t, fuse_ino_t, unsigned int, void *,
		  struct fuse_file_info *, unsigned, const void *, size_t, size_t);
/* The backing fd of a directory handle (opendir's fi). */
int sfs_dir_fd(struct fuse_file_info *fi);

void sfs_op_setxattr(fuse_req_t, fuse_ino_t, const char *, const char *,
		     size_t, int);
void sfs_op_getxattr(fuse_req_t, fuse_ino_t, const char *, size_t);
void sfs_op_listxattr(fuse_req_t, fuse_ino_t, size_t);
void sfs_op_removexattr(fuse_req_t, fuse_ino_t, const char *);

#endif
