/*
 * Out-of-band changes: writes to SRC that do not go through the mount.
 *
 * One fanotify group with a mark on SRC's whole filesystem. Two modes:
 *
 *   detect (-o oob=detect): FAN_MODIFY, reported after the change. A
 *      change by another process to a file with open snapshots makes them
 *      distrust the live file: their reads of live ranges fail EIO (G3 in
 *      doc/guarantees.md). Events come late: a read racing the change
 *      itself can still see it (doc/design.md).
 *   preserve (-o oob=preserve): a pre-content group (K9 in
 *      doc/kernel-facts.md). FAN_PRE_ACCESS and FAN_OPEN_PERM hold the
 *      accessing thread before the access; for a file with snapshots the
 *      handler preserves what the access may change, as for a change
 *      through the mount, and only then allows it. FAN_MODIFY still
 *      reports the changes nobody announced (fds opened before the mark
 *      exists are invisible to pre-content events): those are detected.
 *
 * Cost. A filesystem mark reports every access of every file on SRC's
 * filesystem, a permission event costs its process a round trip to us
 * (12-20 us here) and a notification about 1 us. So a file that has no
 * snapshot gets an evictable ignore mark at its first event, after which
 * the kernel filters its events out (within a few tenths of a us of no
 * watch at all); a snapshot's open removes it first (sfs_oob_watch_arm).
 *
 * Threads. The reader (oob_queue.c) answers the daemon's own permission
 * events at once: our own reads and writes of SRC raise them too, and a
 * worker holding a range lock must never wait for a thread that may wait
 * for that lock. Everything else goes to the handler (oob_events.c),
 * which may wait for range locks and the store. Layers: this file (the
 * group's life, arming files) -> oob_events.c -> oob_queue.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "oob_watch.h"
#include "sfs/lock_order.h"

/*
 * Events arrive late. Before a snapshot is taken, every event already
 * queued must be handled: a change made before the open belongs to the
 * snapshot's content, and must not be taken for a change after it.
 */
void sfs_oob_watch_drain(struct oob_watch *w)
{
	uint64_t target;

	if (!w)
		return;
	target = sfs_oob_read_now(w);
	pthread_mutex_lock(&w->done_lock);
	while (w->handled < target)
		pthread_cond_wait(&w->done_cond, &w->done_lock);
	pthread_mutex_unlock(&w->done_lock);
}

/*
 * Changes to a file nobody watched were let through unannounced (ignored)
 * or without a grant: one may still be landing after its file is armed,
 * where it would change what a new snapshot reads, raising only a
 * FAN_MODIFY once done (the snapshot's reads then fail EIO). Such changes
 * hold the inode's lock (i_rwsem) while they change data or size: write,
 * truncate and fallocate on ext4, XFS and btrfs. Removing an xattr that
 * does not exist takes that lock first and then fails (ENODATA), changing
 * nothing and raising no event: a barrier after which only changes that
 * had passed the kernel's pre-content hook but not yet reached the lock
 * (a thread preempted in between, microseconds) can land unannounced.
 */
static void wait_for_unannounced(const char *path)
{
	if (removexattr(path, "user.stablefs.barrier") == 0)
		fuse_log(FUSE_LOG_WARNING, "stablefs: removed an xattr "
			 "user.stablefs.barrier that should not exist\n");
}

/* With mark_lock: the kernel reports the file at path to us again. */
static void unignore(struct oob_watch *w, const char *path)
{
	/* ENOENT: no mark (never seen, or evicted with its inode). */
	if (fanotify_mark(w->fan, FAN_MARK_REMOVE | FAN_MARK_IGNORE, w->mask,
			  AT_FDCWD, path) && errno != ENOENT)
		fuse_log(FUSE_LOG_ERR, "stablefs: cannot unignore a file for "
			 "its snapshot: %s\n", strerror(errno));
}

/*
 * The first snapshot of a file (none live, no other open arming it):
 * changes the handler let through while it was unwatched must land first,
 * then those the kernel never reported. What they made is the file the
 * snapshot gets; their FAN_MODIFYs still to come are late (ctime is the
 * new base).
 */
static void settle(struct oob_watch *w, struct sfs_inode *inode,
		   const char *path, int fd)
{
	sfs_oob_watch_drain(w);
	sfs_oob_wait_passes(w, inode->dev, inode->ino);
	wait_for_unannounced(path);
	sfs_history_rebase(sfs_inode_history(inode), fd);
	pthread_mutex_lock(&w->done_lock);
	inode->oob_settling--;
	pthread_cond_broadcast(&w->done_cond);
	pthread_mutex_unlock(&w->done_lock);
}

/* Another open is settling the file: our snapshot comes after it too. */
static void wait_settled(struct oob_watch *w, struct sfs_inode *inode)
{
	pthread_mutex_lock(&w->done_lock);
	while (inode->oob_settling)
		pthread_cond_wait(&w->done_cond, &w->done_lock);
	pthread_mutex_unlock(&w->done_lock);
}

/*
 * Before a snapshot of inode is taken: changes from outside must reach us
 * from now on, so its ignore mark goes (the handler adds none while
 * oob_opening is set or snapshots live). fd: any fd of the file, O_PATH
 * too (the mark is removed by path: fanotify_mark() takes no O_PATH fd).
 * Pair with sfs_oob_watch_opened().
 */
void sfs_oob_watch_arm(struct oob_watch *w, struct sfs_inode *inode, int fd)
{
	bool first;
	char path[64];

	if (!w) {
		__atomic_add_fetch(&inode->oob_opening, 1, __ATOMIC_ACQ_REL);
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	sfs_mutex_lock(&w->mark_lock, SFS_RANK_OOB_MARKS);
	/* Armed already while another open runs or snapshots live. */
	first = __atomic_fetch_add(&inode->oob_opening, 1, __ATOMIC_ACQ_REL) == 0 &&
		!sfs_history_has_snaps(sfs_inode_history(inode));
	if (first) {
		unignore(w, path);
		pthread_mutex_lock(&w->done_lock);
		inode->oob_settling += w->preserve;
		pthread_mutex_unlock(&w->done_lock);
	}
	sfs_mutex_unlock(&w->mark_lock);
	/* Detection needs only the file's events back: a change that lands
	 * late is caught by its FAN_MODIFY or the (mtime, size) check. */
	if (!w->preserve)
		return;
	if (first)
		settle(w, inode, path, fd);
	else
		wait_settled(w, inode);
}

/*
 * A view was taken (fs/views.c, under its gate): every file may now need
 * capturing before a change from outside lands, so the kernel must report
 * them all again. FAN_MARK_FLUSH without FAN_MARK_FILESYSTEM removes the
 * group's inode marks, which are all ignore marks here; the filesystem
 * mark stays. The handler ignores a file again once no view needs it.
 */
void sfs_oob_watch_unignore_all(struct oob_watch *w)
{
	if (!w || !w->preserve)
		return;
	sfs_mutex_lock(&w->mark_lock, SFS_RANK_OOB_MARKS);
	if (fanotify_mark(w->fan, FAN_MARK_FLUSH, 0, AT_FDCWD, NULL))
		fuse_log(FUSE_LOG_ERR, "stablefs: cannot drop the watch's ignore "
			 "marks for a view: %s\n", strerror(errno));
	sfs_mutex_unlock(&w->mark_lock);
	/*
	 * A writer let through before (a pass) may land only now: held at
	 * the kernel's hook, it still has to be woken and scheduled, often
	 * milliseconds on a busy machine. Its change is the view's: wait
	 * for it, so that it lands before the view's horizon is stamped.
	 */
	sfs_oob_wait_all_passes(w);
	/* So may a change to a file with snapshots, allowed but not landed
	 * (a grant): were it to land after the horizon, the view would
	 * answer EIO for that file until its writer's next event captured
	 * it. */
	sfs_oob_wait_all_grants(w);
}

void sfs_oob_watch_opened(struct oob_watch *w, struct sfs_inode *inode)
{
	(void)w;
	__atomic_sub_fetch(&inode->oob_opening, 1, __ATOMIC_ACQ_REL);
}

bool sfs_oob_watch_preserves(const struct oob_watch *w)
{
	return w && w->preserve;
}

/* The group and its filesystem mark on SRC: 0 or a positive errno. */
static int open_group(struct oob_watch *w, bool preserve)
{
	unsigned flags = FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_TID |
			 (preserve ? FAN_CLASS_PRE_CONTENT : FAN_CLASS_NOTIF);

	/* No queue or mark limits (root only): an overflow distrusts every
	 * snapshot, and each file seen gets an ignore mark. */
	int err;

	w->fan = fanotify_init(flags | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS,
			       O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (w->fan < 0)
		return errno;
	w->preserve = preserve;
	w->mask = FAN_MODIFY | (preserve ? PERM_EVENTS : 0);
	if (fanotify_mark(w->fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, w->mask,
			  AT_FDCWD, w->fs->src_real) == 0)
		return 0;
	err = errno;
	close(w->fan);
	w->fan = -1;
	return err;
}

static void stop_handler(struct oob_watch *w)
{
	struct oob_event *e = g_new0(struct oob_event, 1);

	e->stop = true;
	g_async_queue_push(w->events, e);
	pthread_join(w->handler, NULL);
}

/* Closing the group allows whatever still waits for an answer. */
static void watch_free(struct oob_watch *w)
{
	if (w->stop >= 0)
		close(w->stop);
	close(w->fan);
	g_async_queue_unref(w->events);
	g_array_free(w->grants, TRUE);
	g_array_free(w->ended, TRUE);
	g_array_free(w->passes, TRUE);
	g_array_free(w->open_grants, TRUE);
	g_hash_table_destroy(w->named);
	g_free(w);
}

struct oob_watch *sfs_oob_watch_start(struct sfs_fs *fs, bool preserve)
{
	struct oob_watch *w = g_new0(struct oob_watch, 1);
	int err;

	w->fs = fs;
	w->fan = -1;
	w->stop = -1;
	if (preserve && (err = open_group(w, true))) {
		fuse_log(FUSE_LOG_WARNING, "stablefs: -o oob=preserve: no "
			 "pre-content watch on SRC (%s): changes made to SRC "
			 "directly are detected, not preserved\n", strerror(err));
	}
	if (w->fan < 0 && (err = open_group(w, false))) {
		fuse_log(FUSE_LOG_INFO, "stablefs: no fanotify watch on SRC (%s): "
			 "out-of-band changes are seen by mtime and size only\n",
			 strerror(err));
		g_free(w);
		return NULL;
	}
	pthread_mutex_init(&w->read_lock, NULL);
	pthread_mutex_init(&w->done_lock, NULL);
	pthread_cond_init(&w->done_cond, NULL);
	pthread_mutex_init(&w->mark_lock, NULL);
	w->events = g_async_queue_new();
	w->grants = g_array_new(FALSE, FALSE, sizeof(struct oob_grant *));
	w->ended = g_array_new(FALSE, FALSE, sizeof(struct oob_grant *));
	w->passes = g_array_new(FALSE, FALSE, sizeof(struct oob_pass));
	w->open_grants = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	w->named = g_hash_table_new(NULL, NULL);
	w->stop = eventfd(0, EFD_CLOEXEC);
	if (w->stop < 0 ||
	    pthread_create(&w->handler, NULL, sfs_oob_handler_main, w))
		goto fail;
	if (pthread_create(&w->reader, NULL, sfs_oob_reader_main, w)) {
		stop_handler(w);
		goto fail;
	}
	return w;
fail:
	watch_free(w);
	return NULL;
}

void sfs_oob_watch_stop(struct oob_watch *w)
{
	uint64_t one = 1;

	if (!w)
		return;
	if (write(w->stop, &one, sizeof(one)) == sizeof(one))
		pthread_join(w->reader, NULL);
	stop_handler(w);
	watch_free(w);
}
