/*
 * user.stablefs.xxh3 (G5): XXH3-128, in hex, of exactly the bytes a reader
 * of a node gets: a snapshot node's version, or the live content taken as
 * a snapshot of now (so it cannot tear).
 *
 * A digest may cover terabytes of holes, so:
 *
 *  - Holes are never read. The plan's hole extents, and the holes of the
 *    live file's ranges (SEEK_DATA / SEEK_HOLE), are hashed as zeros by
 *    sfs_xxh3_zeros(), which jumps over whole XXH3 blocks of zeros without
 *    touching a byte (lib/xxh3.c). Still linear (~200 GB/s), hence:
 *  - A digest gives up with EINTR as soon as its caller is interrupted
 *    (fuse_req_interrupted(), polled between 1 MiB reads and between
 *    chunks): a killed caller waits in the kernel for our answer, so
 *    answering promptly is what frees it. Polled, not answered from a
 *    fuse_req_interrupt_func() callback: libfuse 3.14 runs that callback
 *    holding the request's own lock (and at once, from the registering
 *    thread, if the INTERRUPT came first), where a reply, which frees the
 *    request, must not happen; a poll per MiB costs nothing measurable.
 *  - Files up to INLINE_MAX are hashed in the worker that got the request
 *    (a bounded stretch). Larger ones go to a queue served, in order, by
 *    (max_threads + 1) / 2 digest threads (at most 64, started as
 *    digests need them), so no number of digests holds
 *    every worker: the others stay free for every other request, including
 *    the INTERRUPTs that cancel digests. Nobody gets EBUSY; a queued
 *    digest whose caller is interrupted is answered EINTR by whichever
 *    digest thread next looks at the queue.
 *  - The range lock is held shared a chunk at a time (4 MiB where there
 *    is data, up to 64 MiB of hole), never the whole file for the whole
 *    digest: with snapshots, a change
 *    first preserves what the digest's snapshot still needs (as for any
 *    snapshot read), so the chunks add up to one version.
 *  - With -o snapshot=off nothing is preserved. Files up to INLINE_MAX are
 *    held still (shared lock on the whole file) for their short digest.
 *    A larger one is hashed chunk by chunk, and before each chunk and at
 *    the end the file must still be as it was at the start: same count of
 *    changes through MNT, same ctime and size (changes made in SRC). If
 *    not, the digest starts over, up to RESTARTS times, then fails with
 *    EAGAIN: the file keeps changing and nothing holds a version of it.
 *
 * Cached per snapshot and per file. A snapshot's digest is reused while
 * the live file's ctime is the one read before it was computed; the
 * file's, while the version, the count of changes through MNT and that
 * ctime all are. ctime because mtime can be set back (touch -d) and the
 * version only moves with snapshots; ctime cannot be set back, and every
 * change, also one made in SRC directly, sets it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "sfs/clock.h"
#include "sfs/lock_order.h"
#include "sfs/stats.h"
#include "sfs/xxh3.h"

#define CHUNK (64ull << 20)		/* of hole, planned and locked at once */
#define DATA_CHUNK (4ull << 20)		/* where there is data */
#define PIECE (1u << 20)		/* read at a time */
#define INLINE_MAX (16ull << 20)	/* hashed by the worker itself */
#define RESTARTS 3			/* snapshot=off: changed under us */
#define MAX_DIGEST_THREADS 64		/* whatever max_threads says */
#define HEX_LEN 32

/* One getxattr of the digest, from the cache lookup to the reply. */
struct digest_job {
	fuse_req_t req;
	struct sfs_fs *fs;
	struct sfs_inode *inode;
	struct sfs_snap *snap;		/* a ref, closed when answered */
	/* The file as it was before anything was read (cache keys; with
	 * snapshot=off, what must not change while we read). */
	struct timespec ctime;
	uint64_t changes;
	uint64_t live_size;
	bool whole_locked;		/* snapshot=off, small: held still */
	bool queued;			/* run by a digest thread */
	struct digest_job *next;
};

struct digest_pool {
	pthread_mutex_t mutex;
	pthread_cond_t work;
	struct digest_job *head, *tail;
	bool stopping;
	unsigned nthreads, max;		/* started, at most */
	unsigned idle;			/* waiting for a job */
	pthread_t threads[];
};

/* ------------------------------------------------------------------ */
/* Answering                                                          */
/* ------------------------------------------------------------------ */

/*
 * Give the snapshot back, then reply: once answered, the kernel may forget
 * the inode, and the snapshot lives in the inode's history.
 */
static void job_finish(struct digest_job *job, int err, const unsigned char d[16])
{
	fuse_req_t req = job->req;
	char hex[HEX_LEN + 1];

	sfs_history_close(sfs_inode_history(job->inode), job->fs->store, job->snap);
	free(job);
	if (err == EINTR)
		sfs_stat_add(SFS_STAT_DIGESTS_INTERRUPTED, 1);
	if (err)
		return (void)fuse_reply_err(req, err);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	fuse_reply_buf(req, hex, HEX_LEN);
}

/*
 * Unlink the queued jobs whose callers were interrupted and answer them
 * EINTR. Called by digest threads between chunks: a killed caller of a
 * queued digest is freed as promptly as one whose digest runs.
 */
static void pool_reap(struct digest_pool *p)
{
	struct digest_job *gone = NULL, **pp, *j;

	pthread_mutex_lock(&p->mutex);
	p->tail = NULL;
	for (pp = &p->head; (j = *pp);) {
		if (fuse_req_interrupted(j->req)) {
			*pp = j->next;
			j->next = gone;
			gone = j;
		} else {
			p->tail = j;
			pp = &j->next;
		}
	}
	pthread_mutex_unlock(&p->mutex);
	while ((j = gone)) {
		gone = j->next;
		job_finish(j, EINTR, NULL);
	}
}

/* Should the digest stop now (its caller interrupted, or unmounting)? */
static bool job_stopped(struct digest_job *job)
{
	struct digest_pool *p = job->fs->digests;

	if (job->queued) {
		pool_reap(p);
		if (__atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE))
			return true;
	}
	return fuse_req_interrupted(job->req);
}

/* ------------------------------------------------------------------ */
/* Hashing                                                            */
/* ------------------------------------------------------------------ */

struct digest_run {
	struct digest_job *job;
	struct sfs_xxh3 *x;
	char *buf;			/* PIECE bytes */
	GArray *segs;
	int live_fd;
};

static void feed_zeros(struct digest_run *r, uint64_t len)
{
	sfs_xxh3_zeros(r->x, len);
	sfs_stat_add(SFS_STAT_DIGEST_BYTES_ZERO, (int64_t)len);
}

/* Read [pos, pos + len) of fd into the hash; 0 or a positive errno. */
static int feed_read(struct digest_run *r, int fd, uint64_t pos, uint64_t len)
{
	while (len) {
		size_t n = len < PIECE ? (size_t)len : PIECE;
		ssize_t got;

		if (job_stopped(r->job))
			return EINTR;
		got = pread(fd, r->buf, n, (off_t)pos);
		if (got <= 0)
			return got == 0 ? EIO : errno;
		sfs_stat_add(SFS_STAT_DIGEST_BYTES_READ, got);
		sfs_xxh3_update(r->x, r->buf, (size_t)got);
		pos += (uint64_t)got;
		len -= (uint64_t)got;
	}
	return 0;
}

/*
 * [off, off + len) of the live file: its data read, its holes hashed as
 * zeros unread. No data after off (ENXIO) is a hole to the end.
 */
static int feed_live(struct digest_run *r, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;

	while (off < end) {
		off_t data = lseek(r->live_fd, (off_t)off, SEEK_DATA), hole;
		uint64_t stop;
		int err;

		if (data < 0 && errno != ENXIO)
			return errno;
		stop = data < 0 || (uint64_t)data > end ? end : (uint64_t)data;
		feed_zeros(r, stop - off);
		off = stop;
		if (off == end)
			break;
		hole = lseek(r->live_fd, (off_t)off, SEEK_HOLE);
		if (hole < 0)
			return errno == ENXIO ? EIO : errno;	/* shrank meanwhile */
		stop = (uint64_t)hole > end || (uint64_t)hole <= off ? end : (uint64_t)hole;
		err = feed_read(r, r->live_fd, off, stop - off);
		if (err)
			return err;
		off = stop;
	}
	return 0;
}

/* snapshot=off: has the file changed since the job's keys were read? */
static bool changed_since(struct digest_job *job, int fd)
{
	struct stat st;

	return sfs_history_changes(sfs_inode_history(job->inode)) != job->changes ||
	       fstat(fd, &st) == -1 || !sfs_time_equal(st.st_ctim, job->ctime) ||
	       (uint64_t)st.st_size != job->live_size;
}

/* The segments of one planned range into the hash. */
static int feed_segments(struct digest_run *r)
{
	struct sfs_history *h = sfs_inode_history(r->job->inode);
	int err = 0;

	for (guint i = 0; !err && i < r->segs->len; i++) {
		struct sfs_segment *s = &g_array_index(r->segs, struct sfs_segment, i);

		if (s->kind == SFS_SEG_ZERO)
			feed_zeros(r, s->len);
		else if (s->kind == SFS_SEG_LIVE)
			err = feed_live(r, s->off, s->len);
		else
			err = feed_read(r, sfs_history_store_fd(h),
					s->src_off, s->len);
	}
	return err;
}

/*
 * How much from off to plan and lock at once: DATA_CHUNK where the live
 * file has data near (a writer of the range waits for that much reading
 * at most), up to CHUNK of hole (nothing to read). Only a hint, taken
 * unlocked: the locked plan decides what is read.
 */
static uint64_t chunk_len(struct digest_run *r, uint64_t off)
{
	off_t data = lseek(r->live_fd, (off_t)off, SEEK_DATA);

	if (data < 0)
		return CHUNK;	/* ENXIO: hole to the end; errors show later */
	if ((uint64_t)data - off < DATA_CHUNK)
		return DATA_CHUNK;
	return (uint64_t)data - off < CHUNK ? (uint64_t)data - off : CHUNK;
}

/*
 * snapshot=off: [off, off + len) of the live file into the hash, under a
 * shared lock of that range unless the job holds the whole file. EAGAIN:
 * the file changed, start over.
 */
static int digest_live_chunk(struct digest_run *r, uint64_t off, uint64_t len)
{
	struct digest_job *job = r->job;
	struct sfs_range_request range;
	int err;

	if (job->whole_locked)
		return feed_live(r, off, MIN(job->live_size - off, len));
	sfs_range_acquire(sfs_inode_range_lock(job->inode), &range, off, len, false);
	if (changed_since(job, r->live_fd))
		err = EAGAIN;
	else
		err = feed_live(r, off, MIN(job->live_size - off, len));
	sfs_range_release(sfs_inode_range_lock(job->inode), &range);
	return err;
}

/* [off, off + len) of the job's bytes into the hash. */
static int digest_chunk(struct digest_run *r, uint64_t off, uint64_t len)
{
	struct digest_job *job = r->job;
	struct sfs_snap_reading rd;
	const char *why;
	int err;

	if (job_stopped(job))
		return EINTR;
	if (!job->fs->store)
		return digest_live_chunk(r, off, len);
	err = sfs_snap_reading_start(&rd, job->inode, job->snap, r->live_fd,
				     off, len, r->segs, &why);
	if (!err)
		err = feed_segments(r);
	sfs_snap_reading_end(&rd);
	return err;
}

/* The bytes of job's snapshot (or, snapshot=off, of the file) hashed. */
static int digest_bytes(struct digest_run *r, unsigned char d[16])
{
	struct digest_job *job = r->job;
	uint64_t size = job->fs->store ? sfs_snap_size(job->snap) : job->live_size, len;
	bool unlocked = !job->fs->store && !job->whole_locked;
	int err = 0;

	for (uint64_t off = 0; !err && off < size; off += len) {
		len = chunk_len(r, off);
		err = digest_chunk(r, off, len);
	}
	/* snapshot=off: a change meanwhile may also show as a short read. */
	if (err != EINTR && unlocked && changed_since(job, r->live_fd))
		err = EAGAIN;
	if (!err)
		sfs_xxh3_digest(r->x, d);
	return err;
}

/* The job's keys: the file as it is now, before anything is read. */
static int read_keys(struct digest_job *job, int fd)
{
	struct stat st;

	job->changes = sfs_history_changes(sfs_inode_history(job->inode));
	if (fstat(fd, &st) == -1)
		return errno;
	job->ctime = st.st_ctim;
	job->live_size = (uint64_t)st.st_size;
	return 0;
}

static void cache_store(struct digest_job *job, const unsigned char d[16])
{
	sfs_history_digest_save(sfs_inode_history(job->inode), job->snap,
				job->changes, job->ctime, d);
}

/* Compute job's digest (no cache); 0 with d, or a positive errno. */
static int digest_compute(struct digest_job *job, unsigned char d[16])
{
	struct digest_run r = { .job = job };
	int err, tries = 0;

	r.live_fd = sfs_open_data_fd(job->fs->inodes, job->inode);
	if (r.live_fd < 0)
		return errno;
	r.buf = malloc(PIECE);
	r.segs = g_array_new(FALSE, FALSE, sizeof(struct sfs_segment));
	for (err = r.buf ? 0 : ENOMEM; !err;) {
		r.x = sfs_xxh3_new();
		err = r.x ? digest_bytes(&r, d) : ENOMEM;
		sfs_xxh3_free(r.x);
		/* snapshot=off, changed under us: again, as the file is now. */
		if (err != EAGAIN || job->fs->store || ++tries > RESTARTS)
			break;
		err = read_keys(job, r.live_fd);
	}
	if (!err) {
		cache_store(job, d);
		sfs_stat_add(SFS_STAT_DIGESTS, 1);
	}
	free(r.buf);
	g_array_free(r.segs, TRUE);
	close(r.live_fd);
	return err;
}

/* ------------------------------------------------------------------ */
/* The digest threads                                                 */
/* ------------------------------------------------------------------ */

static void *digest_thread(void *arg)
{
	struct digest_pool *p = arg;

	for (;;) {
		struct digest_job *job;
		unsigned char d[16] = { 0 };
		int err;

		pthread_mutex_lock(&p->mutex);
		p->idle++;
		while (!p->head && !p->stopping)
			pthread_cond_wait(&p->work, &p->mutex);
		p->idle--;
		job = p->head;
		if (!job) {
			pthread_mutex_unlock(&p->mutex);
			return NULL;	/* stopping, nothing left */
		}
		p->head = job->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mutex);
		err = __atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE) ? EINTR :
			digest_compute(job, d);
		job_finish(job, err, d);
	}
}

int sfs_digest_pool_start(struct sfs_fs *fs)
{
	unsigned n = (fs->opts.max_threads + 1) / 2;
	struct digest_pool *p;

	n = n < 1 ? 1 : n > MAX_DIGEST_THREADS ? MAX_DIGEST_THREADS : n;
	p = calloc(1, sizeof(*p) + n * sizeof(pthread_t));
	if (!p)
		return ENOMEM;
	pthread_mutex_init(&p->mutex, NULL);
	pthread_cond_init(&p->work, NULL);
	p->max = n;
	fs->digests = p;
	if (!sfs_xxh3_jump_ok())
		fuse_log(FUSE_LOG_WARNING, "stablefs: the zero-run jump of "
			 "XXH3 disagrees with XXH3 itself: holes are hashed "
			 "byte by byte\n");
	return 0;
}

/*
 * The session is over: running digests stop at their next chunk, queued
 * ones are answered EINTR (the threads drain the queue), threads joined.
 */
void sfs_digest_pool_stop(struct sfs_fs *fs)
{
	struct digest_pool *p = fs->digests;

	if (!p)
		return;
	pthread_mutex_lock(&p->mutex);
	__atomic_store_n(&p->stopping, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mutex);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->mutex);
	free(p);
	fs->digests = NULL;
}

/*
 * Queue job, starting a digest thread if none is idle and the cap allows
 * (threads come as digests need them, and stay). Returns false if there
 * is no thread to run it: the caller runs it.
 */
static bool pool_add(struct digest_pool *p, struct digest_job *job)
{
	bool queued = true;

	job->queued = true;
	pthread_mutex_lock(&p->mutex);
	if (p->idle == 0 && p->nthreads < p->max &&
	    pthread_create(&p->threads[p->nthreads], NULL, digest_thread, p) == 0)
		p->nthreads++;
	if (p->nthreads == 0) {
		job->queued = queued = false;
	} else {
		if (p->tail)
			p->tail->next = job;
		else
			p->head = job;
		p->tail = job;
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->mutex);
	if (queued)
		sfs_stat_add(SFS_STAT_DIGESTS_QUEUED, 1);
	return queued;
}

/* ------------------------------------------------------------------ */
/* The request                                                        */
/* ------------------------------------------------------------------ */

/* A snapshot of inode as it is now (a new ref); 0 or a positive errno. */
static int snapshot_now(fuse_req_t req, struct sfs_inode *inode,
			struct sfs_snap **snap)
{
	int fd = sfs_fd_get(req, inode), err = 0;

	if (fd < 0)
		return errno;
	*snap = sfs_history_open(sfs_inode_history(inode), fd);
	if (!*snap)
		err = errno ? errno : ENOMEM;
	sfs_fd_put(req, inode);
	return err;
}

/* The snapshot to hash and the keys; 0 or a positive errno. */
static int job_prepare(struct digest_job *job, struct sfs_node *node)
{
	int fd, err;

	job->snap = sfs_node_snap(job->fs->inodes, node);
	if (!job->snap && (err = snapshot_now(job->req, job->inode, &job->snap)))
		return err;
	fd = sfs_fd_get(job->req, job->inode);
	if (fd < 0)
		return errno;
	err = read_keys(job, fd);
	sfs_fd_put(job->req, job->inode);
	return err;
}

static bool cache_lookup(struct digest_job *job, unsigned char d[16])
{
	return sfs_history_digest_lookup(sfs_inode_history(job->inode), job->snap,
					 job->changes, job->ctime, d);
}

void sfs_digest_reply(fuse_req_t req, struct sfs_node *node, size_t size)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	struct sfs_inode *inode = node->inode;
	struct digest_job *job;
	struct sfs_range_request whole;
	unsigned char d[16] = { 0 };
	bool held;
	int err;

	/* The value is always 32 hex digits: no need to compute it to say so. */
	if (size == 0)
		return (void)fuse_reply_xattr(req, HEX_LEN);
	if (size < HEX_LEN)
		return (void)fuse_reply_err(req, ERANGE);
	job = calloc(1, sizeof(*job));
	if (!job)
		return (void)fuse_reply_err(req, ENOMEM);
	*job = (struct digest_job){ .req = req, .fs = fs, .inode = inode };
	/* snapshot=off: hold the file still from before its size is taken;
	 * kept for small files only (below). */
	if (!fs->store)
		sfs_range_acquire(sfs_inode_range_lock(inode), &whole, 0, SFS_RANGE_EOF, false);
	err = job_prepare(job, node);
	held = !fs->store;
	if (!err && !cache_lookup(job, d)) {
		uint64_t size_now = fs->store ? sfs_snap_size(job->snap) : job->live_size;

		if (size_now <= INLINE_MAX) {
			job->whole_locked = held;
			err = digest_compute(job, d);
		} else {
			/* Not held still: the chunks check for changes. */
			if (held)
				sfs_range_release(sfs_inode_range_lock(inode), &whole);
			held = false;
			if (fs->digests && pool_add(fs->digests, job))
				return;
			err = digest_compute(job, d);	/* no thread to be had */
		}
	}
	if (held)
		sfs_range_release(sfs_inode_range_lock(inode), &whole);
	if (!job->snap) {	/* job_prepare failed before a snapshot */
		fuse_reply_err(req, err);
		free(job);
		return;
	}
	job_finish(job, err, d);
}
