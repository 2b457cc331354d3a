/*
 * Evictions off the worker pool.
 *
 * Evicting a range (fuse_lowlevel_notify_inval_inode, modify.c step 5)
 * makes the kernel lock every cached folio in it, and a folio being read
 * stays locked until its READ is answered. Were the evicting thread a
 * worker, and every worker (with -s or max_threads=1, the only one)
 * evicting or queued behind one, nobody would be left to answer that READ:
 * the daemon hung in D state, SIGKILL ignored until the connection was
 * aborted (test/mount/reliability.c reproduced it within a second with one
 * worker and -o snapshot=off). So a request that must evict before it
 * replies hands both to the evictor thread, and its worker goes back to
 * serving requests; the evictor only ever waits for READs that free
 * workers answer. The reply still follows the eviction, as the protocol
 * requires (after a truncate or punch reply the kernel zeroes partial
 * folios in place: they must be gone by then).
 *
 * One thread: evictions are short once their READs are answered, and a
 * request's reply never waits for anything but its own eviction and those
 * queued before it.
 */
#include <errno.h>
#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "fs.h"
#include "sfs/lock_order.h"
#include "sfs/stats.h"

#define MAX_EVICT_NODES 16

struct evict_job {
	fuse_req_t req;		/* NULL: no reply (and with no ids: stop) */
	struct sfs_eviction ev;
	/* Nodes whose whole cache goes (a snapshot became unreadable). */
	struct sfs_fs *fs;
	fuse_ino_t *ids;
	size_t nids;
	sfs_reply_fn reply;	/* NULL: reply err, or count if err is 0 */
	void (*call)(struct sfs_fs *fs, void *arg);	/* or this, with no req */
	void *call_arg;
	void *ctx;
	int err;
	size_t count;
	bool write;		/* count is a WRITE reply's */
};

/* The thread and its queue; a job with no request, ids nor call stops it. */
struct sfs_evictor {
	GAsyncQueue *jobs;
	GThread *thread;
};

void sfs_evict(fuse_req_t req, struct sfs_inode *inode, uint64_t off,
	       uint64_t len)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct sfs_node *nodes[MAX_EVICT_NODES];
	size_t n = sfs_itable_live_nodes(fs->inodes, inode, nodes, MAX_EVICT_NODES);
	/* The kernel reads len <= 0 as "to the end of the file". */
	off_t l = len >= (uint64_t)INT64_MAX - off ? 0 : (off_t)len;

	sfs_lock_order_assert_none("evicting");
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

void sfs_eviction_add(struct sfs_eviction *ev, struct sfs_inode *inode,
		      uint64_t off, uint64_t len)
{
	uint64_t end = len > SFS_RANGE_EOF - off ? SFS_RANGE_EOF : off + len;

	if (ev->inode && ev->inode == inode) {
		uint64_t old_end = ev->len > SFS_RANGE_EOF - ev->off ?
				   SFS_RANGE_EOF : ev->off + ev->len;

		off = MIN(off, ev->off);
		end = MAX(end, old_end);
	}
	/* One request changes one file's data (copies: the destination). */
	ev->inode = inode;
	ev->off = off;
	ev->len = end - off;
}

static void run_job(const struct evict_job *j)
{
	if (j->call)
		return j->call(j->fs, j->call_arg);
	for (size_t i = 0; i < j->nids; i++)
		if (fuse_lowlevel_notify_inval_inode(j->fs->se, j->ids[i], 0, 0) == 0)
			sfs_stat_add(SFS_STAT_EVICTIONS, 1);
	if (!j->req)
		return;
	if (j->ev.inode)
		sfs_evict(j->req, j->ev.inode, j->ev.off, j->ev.len);
	if (j->reply)
		j->reply(j->req, j->ctx);
	else if (j->err || !j->write)
		fuse_reply_err(j->req, j->err);
	else
		fuse_reply_write(j->req, j->count);
}

static gpointer evictor_main(gpointer arg)
{
	struct sfs_evictor *e = arg;
	struct evict_job *j;

	while ((j = g_async_queue_pop(e->jobs))->req || j->ids || j->call) {
		run_job(j);
		g_free(j->ids);
		g_free(j);
	}
	g_free(j);
	return NULL;
}

/*
 * Run j now if nothing is to be evicted (or no evictor runs), else queue a
 * copy. j lives on the caller's stack: most replies evict nothing (every
 * plain WRITE), and they then cost no allocation.
 */
static void submit(const struct evict_job *j)
{
	struct sfs_evictor *e = sfs_fs_of(j->req)->evictor;

	if (!j->ev.inode || !e) {
		run_job(j);
		return;
	}
	g_async_queue_push(e->jobs, g_memdup2(j, sizeof(*j)));
}

static struct evict_job job_of(fuse_req_t req, const struct sfs_eviction *ev)
{
	struct evict_job j = { .req = req };

	if (ev)
		j.ev = *ev;
	return j;
}

void sfs_reply_after(fuse_req_t req, const struct sfs_eviction *ev,
		     sfs_reply_fn reply, void *ctx)
{
	struct evict_job j = job_of(req, ev);

	j.reply = reply;
	j.ctx = ctx;
	submit(&j);
}

void sfs_reply_err_after(fuse_req_t req, const struct sfs_eviction *ev, int err)
{
	struct evict_job j = job_of(req, ev);

	j.err = err;
	submit(&j);
}

void sfs_reply_write_after(fuse_req_t req, const struct sfs_eviction *ev,
			   int err, size_t count)
{
	struct evict_job j = job_of(req, ev);

	j.err = err;
	j.count = count;
	j.write = true;
	submit(&j);
}

void sfs_evict_ids_later(struct sfs_fs *fs, const fuse_ino_t *ids, size_t n)
{
	struct evict_job *j;

	if (!n || !fs->evictor)
		return;
	j = g_new0(struct evict_job, 1);
	j->fs = fs;
	j->ids = g_memdup2(ids, n * sizeof(*ids));
	j->nids = n;
	g_async_queue_push(fs->evictor->jobs, j);
}

bool sfs_evictor_call(struct sfs_fs *fs, void (*call)(struct sfs_fs *, void *),
		      void *arg)
{
	struct evict_job *j;

	if (!fs->evictor)
		return false;
	j = g_new0(struct evict_job, 1);
	j->fs = fs;
	j->call = call;
	j->call_arg = arg;
	g_async_queue_push(fs->evictor->jobs, j);
	return true;
}

void sfs_evict_nodes_later(struct sfs_fs *fs, struct sfs_node **nodes,
			   size_t n)
{
	fuse_ino_t ids[64];

	for (size_t done = 0; done < n; done += MIN(n - done, 64)) {
		size_t k = MIN(n - done, 64);

		for (size_t i = 0; i < k; i++)
			ids[i] = sfs_nodeid(fs, nodes[done + i]);
		sfs_evict_ids_later(fs, ids, k);
	}
}

int sfs_evictor_start(struct sfs_fs *fs)
{
	struct sfs_evictor *e = g_new0(struct sfs_evictor, 1);

	e->jobs = g_async_queue_new();
	e->thread = g_thread_try_new("sfs-evictor", evictor_main, e, NULL);
	if (!e->thread) {
		g_async_queue_unref(e->jobs);
		g_free(e);
		return ENOMEM;
	}
	fs->evictor = e;
	return 0;
}

/* After the session loop: every queued reply is sent, then the thread ends. */
void sfs_evictor_stop(struct sfs_fs *fs)
{
	struct sfs_evictor *e = fs->evictor;

	if (!e)
		return;
	g_async_queue_push(e->jobs, g_new0(struct evict_job, 1));
	g_thread_join(e->thread);
	g_async_queue_unref(e->jobs);
	g_free(e);
	fs->evictor = NULL;
}
