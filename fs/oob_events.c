/*
 * The out-of-band watch's handler thread: what each event from SRC's
 * filesystem means for the snapshots (oob_watch.c says which events come).
 *
 *   - A file without snapshots (nor one being taken) is of no interest:
 *     it gets an evictable ignore mark, so the kernel stops reporting it.
 *   - A held access (FAN_PRE_ACCESS, FAN_OPEN_PERM) to a file with
 *     snapshots: if its syscall may change bytes (lib/oob_access.c), those
 *     bytes are preserved exactly as for a change through the mount
 *     (range lock, sfs_history_before_change), then it is allowed. Until
 *     the change has landed it is a "grant": the history counts it as a
 *     change of ours running, so a snapshot opened meanwhile waits for it
 *     and the (mtime, size) check does not take it for an unannounced one.
 *   - FAN_MODIFY by a thread with a grant on that file ends the grant;
 *     by any other thread but ours it is a change nobody announced (an fd
 *     opened before the mark): the file's snapshots distrust the live file
 *     from now on (EIO, G3), and the process is named once in the log.
 *
 * A grant also ends when its thread is seen out of the syscall it was
 * held in (/proc/TID/syscall shows another one, or the thread is gone: a
 * failed write raises no FAN_MODIFY; a thread on a CPU shows "running",
 * which tells nothing), at its thread's next event on the same file, or
 * after GRANT_TIMEOUT_NS, whatever comes first.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oob_watch.h"
#include "sfs/lock_order.h"
#include "sfs/oob_access.h"
#include "sfs/stats.h"
#include "sfs/clock.h"
#include "sfs/views.h"

#define GRANT_TIMEOUT_NS (2ull * 1000000000ull)
#define GRANT_POLL_US 1000
#define MAX_NODES 64
#define MAX_NAMED 1024

struct oob_grant {
	pid_t tid;
	char line[256];		/* its /proc/TID/syscall when held */
	struct sfs_node *held;	/* the file (a node pinned) */
	int fd;			/* the event's fd: fstat for the new base */
	dev_t dev;
	ino_t ino;
	uint64_t off, end;
	uint64_t deadline_ns;
	uint64_t seq;		/* ended: the last event read at the end */
	uint64_t id;		/* in w->open_grants until it ends */
};

/* Grant ids, for sfs_oob_wait_all_grants (under done_lock). */
static void grant_opened(struct oob_watch *w, struct oob_grant *g)
{
	pthread_mutex_lock(&w->done_lock);
	g->id = ++w->grant_ids;
	g_array_append_val(w->open_grants, g->id);
	pthread_mutex_unlock(&w->done_lock);
}

static void grant_closed(struct oob_watch *w, const struct oob_grant *g)
{
	pthread_mutex_lock(&w->done_lock);
	for (guint i = 0; i < w->open_grants->len; i++)
		if (g_array_index(w->open_grants, uint64_t, i) == g->id) {
			g_array_remove_index_fast(w->open_grants, i);
			break;
		}
	pthread_cond_broadcast(&w->done_cond);
	pthread_mutex_unlock(&w->done_lock);
}

void sfs_oob_wait_all_grants(struct oob_watch *w)
{
	uint64_t upto;

	pthread_mutex_lock(&w->done_lock);
	upto = w->grant_ids;
	for (;;) {
		bool found = false;

		for (guint i = 0; i < w->open_grants->len && !found; i++)
			found = g_array_index(w->open_grants, uint64_t, i) <= upto;
		if (!found)
			break;
		pthread_cond_wait(&w->done_cond, &w->done_lock);
	}
	pthread_mutex_unlock(&w->done_lock);
}


static bool read_proc(pid_t tid, const char *what, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)tid, what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

/*
 * Events were lost (a failed read of the group). We cannot tell which
 * files changed, so no open snapshot trusts its live ranges any more:
 * failing reads beats serving a mix.
 */
static void events_lost(struct oob_watch *w)
{
	static uint64_t logged_ns;
	uint64_t now = sfs_now_ns();

	/* Said at most every 10 s: out of fds, the kernel reports every
	 * event it cannot give an fd as lost, thousands a second. */
	if (!logged_ns || now - logged_ns > 10000000000ull) {
		logged_ns = now;
		fuse_log(FUSE_LOG_ERR, "stablefs: fanotify events lost: every "
			 "open snapshot now distrusts its live ranges\n");
	}
	sfs_itable_mark_oob(w->fs->inodes, NULL, true, NULL, 0);
}

/*
 * With mark_lock: the kernel stops reporting this file to us. The inode
 * mark gets the filesystem mark's mask as well as the ignore mask: events
 * are not doubled (one per group and access), and when a snapshot removes
 * the ignore mask (fs/oob_watch.c unignore()) the mark stays. A mark with
 * nothing left in either mask is destroyed, and with the inode's last mark
 * goes its connector, freed after an SRCU grace period by a kworker: ~55
 * us more per first read-only open of a file created through MNT, which
 * made open+close ~1.9x passthrough_ll's at 3,000 files (doc/performance.md,
 * Latest results, the metadata goal; test kernel_facts_fanotify
 * test_ignore_marks).
 */
static void ignore_file(struct oob_watch *w, int fd)
{
	if (fanotify_mark(w->fan, FAN_MARK_ADD | FAN_MARK_EVICTABLE, w->mask,
			  fd, NULL))
		fuse_log(FUSE_LOG_DEBUG, "stablefs: inode mark: %s\n",
			 strerror(errno));
	if (fanotify_mark(w->fan, FAN_MARK_ADD | FAN_MARK_IGNORE_SURV |
			  FAN_MARK_EVICTABLE, w->mask, fd, NULL) == 0)
		sfs_stat_add(SFS_STAT_OOB_IGNORE_MARKS, 1);
}

/*
 * With mark_lock: ignore the file (fd, st) unless its events are needed:
 * it has snapshots or one is being taken (returned held: a node pinned,
 * for the caller to unhold), or a view may still need it as it was (its
 * next change must come).
 */
static struct sfs_node *ignore_unless_needed(struct oob_watch *w, int fd,
					     const struct stat *st)
{
	struct sfs_node *held;

	held = sfs_itable_hold_watched(w->fs->inodes, st->st_dev, st->st_ino);
	if (!held && S_ISREG(st->st_mode) && !(w->fs->views &&
	    sfs_views_need_capture(w->fs->views, st->st_dev, st->st_ino)))
		ignore_file(w, fd);
	return held;
}

/*
 * A file just created through MNT (inode; fd: open, not O_PATH, as
 * fanotify_mark() needs): ignored at once, on the handler's terms, rather
 * than at the event of its first change, which is ours. That event cost
 * the reader and the handler about 10 syscalls and a wakeup each
 * per new file (strace and perf of bench/meta, doc/performance.md), and
 * the writer the event's queueing; the mark costs the create one syscall.
 */
void sfs_oob_watch_ignore_new(struct oob_watch *w, struct sfs_inode *inode,
			      int fd)
{
	struct stat st = { .st_dev = inode->dev, .st_ino = inode->ino,
			   .st_mode = inode->type };
	struct sfs_node *held;

	if (!w)
		return;
	sfs_mutex_lock(&w->mark_lock, SFS_RANK_OOB_MARKS);
	held = ignore_unless_needed(w, fd, &st);
	sfs_mutex_unlock(&w->mark_lock);
	if (held)
		sfs_itable_unhold(w->fs->inodes, held);
}

/*
 * The change of grant index has landed (or failed). by_event: its thread's
 * own next event on the file told us. Otherwise /proc or the clock did,
 * and the change's FAN_MODIFY, queued before its syscall returned, may
 * still be on its way to us: the grant is kept in w->ended until the
 * events read by now are handled, so that event is known for ours.
 */
static void complete_grant(struct oob_watch *w, guint index, bool by_event)
{
	struct oob_grant *g = g_array_index(w->grants, struct oob_grant *, index);
	struct sfs_inode *inode = g->held->inode;
	struct sfs_node *nodes[MAX_NODES];
	size_t n;

	g_array_remove_index_fast(w->grants, index);
	sfs_history_after_change(sfs_inode_history(inode), g->fd, true);
	grant_closed(w, g);
	/* Pages the live nodes cached before the change are stale now;
	 * snapshots' nodes keep theirs (their bytes were preserved). */
	n = sfs_itable_live_nodes(w->fs->inodes, inode, nodes, MAX_NODES);
	sfs_evict_nodes_later(w->fs, nodes, n);
	sfs_itable_unhold(w->fs->inodes, g->held);
	g->held = NULL;
	close(g->fd);
	g->fd = -1;
	if (by_event) {
		g_free(g);
		return;
	}
	g->seq = sfs_oob_read_now(w);
	g_array_append_val(w->ended, g);
}

/* End tid's grants on (dev, ino); true if it had one. */
static bool complete_grants_of(struct oob_watch *w, pid_t tid,
			       const struct stat *st)
{
	bool found = false;

	for (guint i = w->grants->len; i-- > 0;) {
		struct oob_grant *g = g_array_index(w->grants, struct oob_grant *, i);

		if (g->tid == tid && g->dev == st->st_dev && g->ino == st->st_ino) {
			complete_grant(w, i, true);
			found = true;
		}
	}
	return found;
}

/* Is e the FAN_MODIFY of a grant that ended before e was handled? Also
 * forgets the ended grants whose events are all handled. */
static bool ended_grant_of(struct oob_watch *w, const struct oob_event *e,
			   const struct stat *st)
{
	bool found = false;

	for (guint i = w->ended->len; i-- > 0;) {
		struct oob_grant *g = g_array_index(w->ended, struct oob_grant *, i);
		bool mine = !found && (e->mask & FAN_MODIFY) && g->tid == e->tid &&
			    g->dev == st->st_dev && g->ino == st->st_ino &&
			    e->seq <= g->seq;

		if (mine || g->seq <= e->seq) {
			g_array_remove_index_fast(w->ended, i);
			g_free(g);
		}
		found |= mine;
	}
	return found;
}

static bool is_running(const char *line)
{
	return strncmp(line, "running", 7) == 0;
}

/*
 * The syscall a thread held by its event is in. /proc reads it only while
 * the thread is off the CPU, else says "running": answering any event of
 * the group wakes every held thread for a moment (K9, surprise 11: up to
 * 2.6 ms, 36 ms seen under load). Look again for up to RUNNING_WAIT_NS;
 * past that the syscall is unknown, taken for a change to the end.
 */
#define RUNNING_WAIT_NS (50ull * 1000000ull)

static bool read_held_syscall(pid_t tid, char *line, size_t size)
{
	uint64_t end = sfs_now_ns() + RUNNING_WAIT_NS;

	for (;;) {
		if (!read_proc(tid, "syscall", line, size))
			return false;
		if (!is_running(line) || sfs_now_ns() > end)
			return true;
		usleep(20);
	}
}

/*
 * Has the thread left the syscall it showed as line (or is it gone)?
 * "running" says nothing: it may still be in it; and a line that was
 * "running" itself can tell nothing (events and the clock will).
 */
static bool left_syscall(pid_t tid, const char *line)
{
	char now[256];

	if (is_running(line))
		return false;
	return !read_proc(tid, "syscall", now, sizeof(now)) ||
	       (!is_running(now) && strcmp(now, line));
}

/* A change let through to a file nobody watches (not held): remembered
 * until it lands, in case a snapshot's open arms the file meanwhile. */
static void note_pass(struct oob_watch *w, const struct oob_event *e,
		      const struct stat *st)
{
	struct oob_pass p = { .tid = e->tid, .dev = st->st_dev, .ino = st->st_ino };
	struct sfs_syscall sc = { .known = false };
	uint64_t off, end;

	if (read_held_syscall(e->tid, p.line, sizeof(p.line)))
		sfs_syscall_parse(p.line, &sc);
	if (!sfs_oob_access_changes(&sc, e->mask & FAN_OPEN_PERM ? SFS_OOB_OPEN :
				    SFS_OOB_PRE_ACCESS, e->off, e->count, &off, &end))
		return;
	p.deadline_ns = sfs_now_ns() + GRANT_TIMEOUT_NS;
	pthread_mutex_lock(&w->done_lock);
	g_array_append_val(w->passes, p);
	pthread_mutex_unlock(&w->done_lock);
}

/* End the passes that have landed: all of tid's on (dev, ino) if st,
 * else those whose thread left its syscall or whose time is up. */
static void end_passes(struct oob_watch *w, pid_t tid, const struct stat *st)
{
	uint64_t now = st ? 0 : sfs_now_ns();
	bool ended = false;

	pthread_mutex_lock(&w->done_lock);
	for (guint i = w->passes->len; i-- > 0;) {
		struct oob_pass *p = &g_array_index(w->passes, struct oob_pass, i);
		bool done = st ? p->tid == tid && p->dev == st->st_dev &&
				 p->ino == st->st_ino :
			    now > p->deadline_ns || left_syscall(p->tid, p->line);

		if (done) {
			g_array_remove_index_fast(w->passes, i);
			ended = true;
		}
	}
	if (ended)
		pthread_cond_broadcast(&w->done_cond);
	pthread_mutex_unlock(&w->done_lock);
}

static bool passes_pending(struct oob_watch *w)
{
	bool any;

	pthread_mutex_lock(&w->done_lock);
	any = w->passes->len > 0;
	pthread_mutex_unlock(&w->done_lock);
	return any;
}

void sfs_oob_wait_passes(struct oob_watch *w, dev_t dev, ino_t ino)
{
	pthread_mutex_lock(&w->done_lock);
	for (;;) {
		bool found = false;

		for (guint i = 0; i < w->passes->len && !found; i++) {
			struct oob_pass *p = &g_array_index(w->passes, struct oob_pass, i);

			found = p->dev == dev && p->ino == ino;
		}
		if (!found)
			break;
		pthread_cond_wait(&w->done_cond, &w->done_lock);
	}
	pthread_mutex_unlock(&w->done_lock);
}

static void check_grants(struct oob_watch *w)
{
	uint64_t now = sfs_now_ns();

	for (guint i = w->grants->len; i-- > 0;) {
		struct oob_grant *g = g_array_index(w->grants, struct oob_grant *, i);

		if (now > g->deadline_ns) {
			sfs_stat_add(SFS_STAT_OOB_GRANT_TIMEOUTS, 1);
			complete_grant(w, i, false);
		} else if (left_syscall(g->tid, g->line)) {
			complete_grant(w, i, false);
		}
	}
	if (passes_pending(w))
		end_passes(w, 0, NULL);
}

static int event_fd(void *arg)
{
	return *(int *)arg;
}

/*
 * Preserving ahead. A held write waits while its range is copied into the
 * store; on ext4, which cannot share blocks, that copy costs more than the
 * write itself (about 210 us per MiB against 160 us, doc/performance.md),
 * so a rewrite in place under a snapshot ran at 2.4x or worse. A thread
 * that writes a file in order (cp over a file, rsync --inplace, dd, a
 * dump) will write the next range next: once its write is let go, the
 * handler copies that next range while the write runs on the other CPU,
 * and the next event finds nothing left to copy. The guess costs at most
 * one window of store space per writer that stops (counted: the bytes
 * preserved ahead, and the writes that found theirs done). It never waits
 * for a range lock: a busy range is simply not guessed at.
 */
#define AHEAD_MIN (256u << 10)
#define AHEAD_MAX (8u << 20)

static bool continues_stream(const struct oob_stream *s, pid_t tid,
			     const struct stat *st, uint64_t off, uint64_t end)
{
	return s->tid == tid && s->dev == st->st_dev && s->ino == st->st_ino &&
	       off <= s->end && end > s->end;
}

static void preserve_ahead(struct oob_watch *w, struct sfs_node *held,
			   struct oob_event *e, uint64_t from, uint64_t len)
{
	struct sfs_range_lock *lock = sfs_inode_range_lock(held->inode);
	struct sfs_range_request r;
	uint64_t bytes;

	len = MIN(MAX(len, AHEAD_MIN), AHEAD_MAX);
	if (!sfs_range_try_acquire(lock, &r, from, len, true))
		return;
	bytes = sfs_history_preserve_ahead(sfs_inode_history(held->inode),
					   w->fs->store, event_fd, &e->fd,
					   from, from + len);
	sfs_range_release(lock, &r);
	sfs_stat_add(SFS_STAT_OOB_AHEAD_BYTES, (int64_t)bytes);
	w->stream.ahead_end = MAX(w->stream.ahead_end, from + len);
}

/* After a held write of [off, end) was let go: guess the next one. */
static void after_held_write(struct oob_watch *w, struct sfs_node *held,
			     struct oob_event *e, const struct stat *st,
			     uint64_t off, uint64_t end)
{
	struct oob_stream *s = &w->stream;
	bool in_order = continues_stream(s, e->tid, st, off, end);

	if (in_order && end <= s->ahead_end)
		sfs_stat_add(SFS_STAT_OOB_AHEAD_HITS, 1);
	if (!in_order)
		*s = (struct oob_stream){ .tid = e->tid, .dev = st->st_dev,
					  .ino = st->st_ino };
	s->end = end;
	if (in_order)
		preserve_ahead(w, held, e, end, end - off);
}

/*
 * A held access to a file with snapshots (held: its node): preserve what
 * it may change, then allow it. Returns true if e->fd and held now belong
 * to a grant.
 */
static bool hold_for_change(struct oob_watch *w, struct oob_event *e,
			    struct sfs_node *held, const struct stat *st)
{
	struct sfs_history *h = sfs_inode_history(held->inode);
	struct sfs_range_lock *lock = sfs_inode_range_lock(held->inode);
	enum sfs_oob_event kind = e->mask & FAN_OPEN_PERM ? SFS_OOB_OPEN :
				  SFS_OOB_PRE_ACCESS;
	struct oob_grant *g = g_new0(struct oob_grant, 1);
	struct sfs_syscall sc = { .known = false };
	struct sfs_range_request r;

	sfs_stat_add(SFS_STAT_OOB_HELD, 1);
	if (read_held_syscall(e->tid, g->line, sizeof(g->line)))
		sfs_syscall_parse(g->line, &sc);
	if (!sfs_oob_access_changes(&sc, kind, e->off, e->count, &g->off, &g->end)) {
		g_free(g);
		return false;
	}
	/* As a change through the mount (modify.c): wait for reads that
	 * spliced the range, preserve, let the change go. */
	sfs_range_acquire(lock, &r, g->off,
		       g->end == UINT64_MAX ? SFS_RANGE_EOF - g->off : g->end - g->off,
		       true);
	sfs_history_before_change(h, w->fs->store, event_fd, &e->fd,
				  g->off, g->end);
	sfs_range_release(lock, &r);
	/* Counted before the answer: the writer, woken by it, may look. */
	sfs_stat_add(SFS_STAT_OOB_PRESERVED, 1);
	sfs_oob_respond(w, e->fd, FAN_ALLOW);
	g->tid = e->tid;
	g->held = held;
	g->fd = e->fd;
	g->dev = st->st_dev;
	g->ino = st->st_ino;
	g->deadline_ns = sfs_now_ns() + GRANT_TIMEOUT_NS;
	grant_opened(w, g);
	g_array_append_val(w->grants, g);
	if (sfs_syscall_is_write(&sc) && g->end != UINT64_MAX)
		after_held_write(w, held, e, st, g->off, g->end);
	return true;
}

/* Say once per thread who changed files under snapshots unannounced. */
static void name_once(struct oob_watch *w, pid_t tid)
{
	char comm[64] = "?";

	if (g_hash_table_size(w->named) >= MAX_NAMED ||
	    g_hash_table_contains(w->named, GINT_TO_POINTER(tid)))
		return;
	g_hash_table_add(w->named, GINT_TO_POINTER(tid));
	if (read_proc(tid, "comm", comm, sizeof(comm)))
		comm[strcspn(comm, "\n")] = '\0';
	fuse_log(FUSE_LOG_WARNING, "stablefs: thread %d (%s) changed a file "
		 "with open snapshots in SRC directly%s: their reads of the "
		 "live file fail with EIO\n", (int)tid, comm,
		 w->preserve ? ", through an fd the kernel does not announce "
		 "(opened before the mount)" : "");
}

/* A change nobody announced, to a file with snapshots. */
static void unannounced(struct oob_watch *w, struct oob_event *e,
			const struct stat *st)
{
	struct sfs_node *nodes[MAX_NODES];
	/* With pre-content events every change after an open is either
	 * announced (a grant) or surely unannounced: no ctime guesswork. */
	size_t n = sfs_itable_mark_oob(w->fs->inodes, st, w->preserve,
				       nodes, MAX_NODES);

	if (!n)
		return;	/* made before the snapshots' opens, or nothing to mark */
	/* Their cached pages must go too: whole reads fail, never short. */
	sfs_evict_nodes_later(w->fs, nodes, n);
	name_once(w, e->tid);
}

/*
 * A held access from outside to a regular file a view still needs as it
 * was (G7): if it may change the file, capture the file for the views
 * first (fs/views.c). The capture is a snapshot, so the access is then
 * held and preserved below like any other to a file with snapshots.
 * Accesses that only read are let be (not captured: no cost to readers).
 */
/* Is p one of the n passes in old? */
static bool pass_in(const struct oob_pass *p, const struct oob_pass *old,
		    guint n)
{
	for (guint i = 0; i < n; i++)
		if (old[i].tid == p->tid && old[i].dev == p->dev &&
		    old[i].ino == p->ino && old[i].deadline_ns == p->deadline_ns)
			return true;
	return false;
}

void sfs_oob_wait_all_passes(struct oob_watch *w)
{
	struct oob_pass *old;
	guint n;

	pthread_mutex_lock(&w->done_lock);
	n = w->passes->len;
	old = g_memdup2(w->passes->data, n * sizeof(*old));
	for (;;) {
		bool found = false;

		for (guint i = 0; i < w->passes->len && !found; i++)
			found = pass_in(&g_array_index(w->passes, struct oob_pass, i),
					old, n);
		if (!found)
			break;
		pthread_cond_wait(&w->done_cond, &w->done_lock);
	}
	pthread_mutex_unlock(&w->done_lock);
	g_free(old);
}

static void capture_for_views(struct oob_watch *w, struct oob_event *e,
			      const struct stat *st)
{
	enum sfs_oob_event kind = e->mask & FAN_OPEN_PERM ? SFS_OOB_OPEN :
				  SFS_OOB_PRE_ACCESS;
	struct sfs_syscall sc = { .known = false };
	struct sfs_views *views = w->fs->views;
	uint64_t off, end;
	char line[256];

	if (!views || !sfs_views_any(views) ||
	    !sfs_views_need_capture(views, st->st_dev, st->st_ino))
		return;
	if (read_held_syscall(e->tid, line, sizeof(line)))
		sfs_syscall_parse(line, &sc);
	if (sfs_oob_access_changes(&sc, kind, e->off, e->count, &off, &end) &&
	    w->fs->capture_held)
		w->fs->capture_held(w->fs, e->fd, st);
}

static void handle_event(struct oob_watch *w, struct oob_event *e)
{
	struct sfs_node *held;
	struct stat st;
	bool kept = false, granted;

	if (e->mask & FAN_Q_OVERFLOW) {
		events_lost(w);
		return;
	}
	if (e->fd < 0)
		return;
	if (fstat(e->fd, &st)) {
		if ((e->mask & PERM_EVENTS) && !e->own)
			sfs_oob_respond(w, e->fd, FAN_ALLOW);
		close(e->fd);
		return;
	}
	/* Its thread is past whatever we held it in on this file: that
	 * change has landed, and a capture now would find it still running
	 * and be refused (the view then answered EIO for the file). */
	granted = !e->own && complete_grants_of(w, e->tid, &st);
	if ((e->mask & PERM_EVENTS) && !e->own && w->preserve && S_ISREG(st.st_mode))
		capture_for_views(w, e, &st);
	sfs_mutex_lock(&w->mark_lock, SFS_RANK_OOB_MARKS);
	held = ignore_unless_needed(w, e->fd, &st);
	sfs_mutex_unlock(&w->mark_lock);
	if (!e->own) {
		granted = granted || ended_grant_of(w, e, &st);

		if (passes_pending(w))
			end_passes(w, e->tid, &st);
		if (e->mask & PERM_EVENTS) {
			kept = held && hold_for_change(w, e, held, &st);
			if (!held && S_ISREG(st.st_mode))
				note_pass(w, e, &st);
			if (!kept)
				sfs_oob_respond(w, e->fd, FAN_ALLOW);
		} else if (held && (e->mask & FAN_MODIFY) && !granted) {
			unannounced(w, e, &st);
		}
	}
	if (!kept) {
		if (held)
			sfs_itable_unhold(w->fs->inodes, held);
		close(e->fd);
	}
}

static void mark_handled(struct oob_watch *w)
{
	pthread_mutex_lock(&w->done_lock);
	w->handled++;
	pthread_cond_broadcast(&w->done_cond);
	pthread_mutex_unlock(&w->done_lock);
}

void *sfs_oob_handler_main(void *arg)
{
	struct oob_watch *w = arg;

	for (;;) {
		struct oob_event *e = w->grants->len || passes_pending(w) ?
			g_async_queue_timeout_pop(w->events, GRANT_POLL_US) :
			g_async_queue_pop(w->events);

		if (e && e->stop) {
			g_free(e);
			break;
		}
		if (e) {
			handle_event(w, e);
			g_free(e);
			mark_handled(w);
		}
		check_grants(w);
	}
	while (w->grants->len)
		complete_grant(w, w->grants->len - 1, true);
	while (w->ended->len) {
		g_free(g_array_index(w->ended, struct oob_grant *, 0));
		g_array_remove_index_fast(w->ended, 0);
	}
	return NULL;
}
