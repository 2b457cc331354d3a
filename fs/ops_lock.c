/*
 * File locks: flock, POSIX (F_SETLK/F_SETLKW/F_GETLK) and OFD (F_OFD_*).
 *
 * Left to the kernel, locks live per FUSE inode, and a regular file is
 * several FUSE inodes (its incarnations, inode_table.h): a read-only open
 * would not see the lock a writer holds. So the kernel is asked to send
 * locks here (FUSE_CAP_FLOCK_LOCKS, FUSE_CAP_POSIX_LOCKS) and they are taken
 * on the backing file, where every open through the mount, whatever its
 * node, and every process locking SRC directly, meet:
 *
 * - flock: every FUSE open has a backing fd of its own, i.e. an open file
 *   description, which is exactly what flock locks belong to.
 * - POSIX and OFD: the kernel names the owner (a process's files table, or
 *   the struct file of an OFD lock) by fi->lock_owner, without saying which
 *   kind. Each (backing inode, owner) gets an fd opened on the backing file
 *   and the request is applied there as an OFD lock, as virtiofsd does: one
 *   owner never conflicts with itself, two owners conflict in the backing
 *   kernel, and so do classic POSIX lockers of SRC. An owner's locks go
 *   when its fd is closed: at a FLUSH naming it (POSIX drops a process's
 *   locks at any close of the file: the kernel sends FLUSH with the closing
 *   files table as lock_owner and does not send an unlock), or at the
 *   RELEASE of the handle it first locked through (an OFD owner is that
 *   handle's struct file; a POSIX owner that locked through a handle has
 *   closed one of its fds of the file, i.e. flushed, before that handle
 *   can be released).
 *
 * Blocking requests first try without blocking; a lock that is taken is
 * then waited for by a thread of its own, not a libfuse worker (there are
 * max_threads of those, one with -s), which replies when the wait ends. An
 * INTERRUPT (the caller got a signal) wakes that thread with WAKE_SIGNAL,
 * re-sent until the thread says its blocking call returned, as the signal
 * may arrive just before it enters the call.
 *
 * Lock order: req->lock (libfuse, held around the interrupt callback) may
 * be held while taking `table_lock` below; `table_lock` is a leaf: nothing is taken,
 * waited for or slept on while holding it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"

/* Breaks a waiting thread's blocking call (EINTR): no SA_RESTART. */
#define WAKE_SIGNAL (SIGRTMIN + 3)

/* One lock owner of one backing inode. */
struct owner {
	struct sfs_inode *inode;	/* key, with id */
	uint64_t id;			/* the kernel's lock_owner */
	int fd;				/* the owner's open file description */
	struct sfs_file *file;	/* handle it first locked through */
	unsigned refs;			/* the table's (until dropped), waiters' */
	bool dropped;			/* out of the table: its locks are gone */
	/* For F_GETLK's l_pid: the pid and range of its last lock taken. */
	pid_t pid;
	off_t start, len;
};

struct waiter {
	fuse_req_t req;
	pthread_t thread;
	int fd;			/* flock: a dup of the handle's fd */
	struct owner *owner;	/* POSIX: the owner, one ref held; else NULL */
	int op;			/* flock's operation */
	struct flock fl;	/* POSIX: the request */
	bool woke;		/* atomic: the blocking call has returned */
	bool interrupted;	/* atomic: reply EINTR */
	struct waiter *next;	/* in waiters */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static GHashTable *owners;	/* struct owner (its own key); table_lock */
static unsigned nowners;	/* its size; atomic, written under table_lock */
static struct waiter *waiters;	/* threads waiting now; table_lock */
static unsigned nwaiters;	/* those, and threads not listed yet; table_lock */
static bool shutting_down;	/* table_lock */
static pthread_once_t signal_once = PTHREAD_ONCE_INIT;

static guint owner_hash(gconstpointer p)
{
	const struct owner *o = p;

	return g_direct_hash(o->inode) ^ g_int64_hash(&o->id);
}

static gboolean owner_equal(gconstpointer a, gconstpointer b)
{
	const struct owner *x = a, *y = b;

	return x->inode == y->inode && x->id == y->id;
}

/* Under table_lock, after every change of owners. */
static void owners_counted(void)
{
	__atomic_store_n(&nowners, owners ? g_hash_table_size(owners) : 0,
			 __ATOMIC_RELEASE);
}

/* Under table_lock; the last ref closes the fd, and with it the owner's locks. */
static void owner_unref_locked(struct owner *o)
{
	if (--o->refs)
		return;
	close(o->fd);
	free(o);
}

static void owner_put(struct owner *o)
{
	pthread_mutex_lock(&table_lock);
	owner_unref_locked(o);
	pthread_mutex_unlock(&table_lock);
}

/*
 * Out of the table, under table_lock. A waiter may still use the fd: its locks
 * are dropped now, not when that waiter is done (fcntl does not block).
 */
static void owner_drop_locked(struct owner *o)
{
	struct flock all = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

	o->dropped = true;
	if (o->refs > 1)
		fcntl(o->fd, F_OFD_SETLK, &all);
	owner_unref_locked(o);
}

/*
 * An fd for a new owner of f's file. Read-write if possible, so that the
 * owner can take both kinds of lock whatever handle it uses next (the
 * backing kernel checks the fd's mode); else the mode f was opened with.
 * While it is open the file counts as open for writing (execve of it gets
 * ETXTBSY), as for virtiofsd's lock fds. O_NONBLOCK: a lease on SRC makes
 * the open fail (EWOULDBLOCK) instead of holding a worker until it breaks;
 * it does not change how fcntl locks wait.
 */
static int owner_fd_open(const struct sfs_file *f)
{
	char path[SFS_PROC_PATH_MAX];
	int fd, mode;

	sfs_proc_path(path, f->fd);
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	mode = fcntl(f->fd, F_GETFL);
	if (mode == -1)
		return -1;
	return open(path, (mode & O_ACCMODE) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
}

/*
 * The owner id of f's inode with a ref, created if create; NULL: errno
 * (0 when there is none and create is false).
 */
static struct owner *owner_get(struct sfs_file *f, uint64_t id, bool create)
{
	struct owner key = { .inode = f->inode, .id = id }, *o, *fresh;
	int fd;

	pthread_mutex_lock(&table_lock);
	if (!owners)
		owners = g_hash_table_new(owner_hash, owner_equal);
	o = g_hash_table_lookup(owners, &key);
	if (o)
		o->refs++;
	pthread_mutex_unlock(&table_lock);
	if (o || !create) {
		errno = 0;
		return o;
	}
	/* The open is outside the lock (it is a leaf). */
	fd = owner_fd_open(f);
	if (fd == -1)
		return NULL;
	fresh = calloc(1, sizeof(*fresh));
	if (!fresh) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	*fresh = key;
	fresh->fd = fd;
	fresh->file = f;
	fresh->refs = 2;		/* the table's and ours */
	pthread_mutex_lock(&table_lock);
	o = g_hash_table_lookup(owners, &key);
	if (o) {			/* the same owner raced us: theirs */
		o->refs++;
	} else {
		g_hash_table_add(owners, fresh);
		owners_counted();
		__atomic_add_fetch(&f->lock_owners, 1, __ATOMIC_RELAXED);
		o = fresh;
		fresh = NULL;
	}
	pthread_mutex_unlock(&table_lock);
	if (fresh) {
		close(fresh->fd);
		free(fresh);
	}
	return o;
}

static void owner_note_lock(struct owner *o, const struct flock *fl,
			    const struct fuse_ctx *ctx)
{
	if (fl->l_type == F_UNLCK)
		return;
	pthread_mutex_lock(&table_lock);
	o->pid = ctx->pid;
	o->start = fl->l_start;
	o->len = fl->l_len;
	pthread_mutex_unlock(&table_lock);
}

static bool ranges_overlap(off_t s1, off_t l1, off_t s2, off_t l2)
{
	bool before = l1 && s1 + l1 <= s2;	/* 1 ends before 2 starts */
	bool after = l2 && s2 + l2 <= s1;

	return !before && !after;
}

/*
 * The pid to report for a conflict with an OFD lock on f's file, that is
 * (as this daemon takes no other OFD locks on SRC) one of our owners: the
 * owner of that inode other than `self` whose last lock taken overlaps the
 * conflict, else the last one that took any. Approximate: an owner's
 * earlier locks elsewhere are not remembered, and an OFD lock taken on
 * SRC by some other process would be blamed on one of ours (or 0).
 */
static pid_t holder_pid(struct sfs_inode *inode, uint64_t self,
			const struct flock *conflict)
{
	GHashTableIter it;
	gpointer key;
	pid_t any = 0, pid = 0;

	pthread_mutex_lock(&table_lock);
	g_hash_table_iter_init(&it, owners);
	while (!pid && g_hash_table_iter_next(&it, &key, NULL)) {
		struct owner *o = key;

		if (o->inode != inode || o->id == self || !o->pid)
			continue;
		if (ranges_overlap(o->start, o->len, conflict->l_start,
				   conflict->l_len))
			pid = o->pid;
		else
			any = o->pid;
	}
	pthread_mutex_unlock(&table_lock);
	return pid ? pid : any;
}

static void wake_handler(int sig)
{
	(void)sig;
}

static void install_wake_handler(void)
{
	struct sigaction sa = { .sa_handler = wake_handler };

	sigemptyset(&sa.sa_mask);
	sigaction(WAKE_SIGNAL, &sa, NULL);
}

/* Until w's blocking call returned: w is alive (see waiter_finish). */
static void waiter_kick(struct waiter *w)
{
	const struct timespec ms = { .tv_nsec = 1000000 };

	__atomic_store_n(&w->interrupted, true, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&w->woke, __ATOMIC_ACQUIRE)) {
		pthread_kill(w->thread, WAKE_SIGNAL);
		nanosleep(&ms, NULL);
	}
}

/* libfuse calls this under req->lock; also from the thread's own
 * registration if the INTERRUPT came first, where it must not wait. */
static void waiter_interrupted(fuse_req_t req, void *data)
{
	struct waiter *w = data;

	(void)req;
	if (pthread_equal(pthread_self(), w->thread))
		__atomic_store_n(&w->interrupted, true, __ATOMIC_RELEASE);
	else
		waiter_kick(w);
}

/* The blocking call, restarted after signals unless interrupted. */
static int waiter_wait(struct waiter *w)
{
	for (;;) {
		int res;

		if (__atomic_load_n(&w->interrupted, __ATOMIC_ACQUIRE))
			return EINTR;
		if (w->owner)
			res = fcntl(w->fd, F_OFD_SETLKW, &w->fl);
		else
			res = flock(w->fd, w->op);
		if (res == 0)
			return 0;
		if (errno != EINTR)
			return errno;
	}
}

/*
 * The wait ended with err. After fuse_req_interrupt_func(NULL) returns no
 * interrupt callback runs with w (it is called under req->lock, which the
 * registration takes too), so w may go.
 */
static void waiter_finish(struct waiter *w, int err)
{
	struct waiter **p;

	__atomic_store_n(&w->woke, true, __ATOMIC_RELEASE);
	fuse_req_interrupt_func(w->req, NULL, NULL);
	if (w->owner)
		owner_put(w->owner);
	else
		close(w->fd);
	/*
	 * Cut short by the end of the session, not by a signal: EINTR would
	 * reach the caller as ERESTARTSYS (512), which only a pending signal
	 * turns into a restart or EINTR. The connection is going away.
	 */
	pthread_mutex_lock(&table_lock);
	if (err == EINTR && shutting_down)
		err = ENOTCONN;
	pthread_mutex_unlock(&table_lock);
	fuse_reply_err(w->req, err);
	pthread_mutex_lock(&table_lock);
	for (p = &waiters; *p != w; p = &(*p)->next)
		;
	*p = w->next;
	nwaiters--;
	pthread_mutex_unlock(&table_lock);
	free(w);
}

/*
 * A POSIX wait granted on an owner fd that a FLUSH dropped meanwhile: the
 * process closed the file in another thread while this one waited. POSIX
 * keeps such a wait going and grants it to the process; so does this, to
 * the owner the process is now: this fd again if it has none (the close
 * dropped every other lock on it), else the new owner's fd, where the wait
 * starts over (returns true). After the session's end: nothing held,
 * *err ENOTCONN.
 */
static bool waiter_rebind(struct waiter *w, int *err)
{
	struct owner *o = w->owner, *cur;
	struct flock undo = w->fl;
	bool again = false;

	undo.l_type = F_UNLCK;
	pthread_mutex_lock(&table_lock);
	if (!o->dropped) {
		pthread_mutex_unlock(&table_lock);
		return false;
	}
	cur = shutting_down ? NULL : g_hash_table_lookup(owners, o);
	if (shutting_down) {
		fcntl(w->fd, F_OFD_SETLK, &undo);
		*err = ENOTCONN;
	} else if (!cur) {
		o->dropped = false;
		o->file = NULL;		/* a POSIX owner: ends at a FLUSH */
		o->refs++;
		g_hash_table_add(owners, o);
		owners_counted();
	} else {
		fcntl(w->fd, F_OFD_SETLK, &undo);
		cur->refs++;
		owner_unref_locked(o);
		w->owner = cur;
		w->fd = cur->fd;
		again = true;
	}
	pthread_mutex_unlock(&table_lock);
	return again;
}

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	const struct fuse_ctx *ctx = fuse_req_ctx(w->req);
	sigset_t set;
	int err;

	sigemptyset(&set);
	sigaddset(&set, WAKE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	/* Listed (for sfs_locks_shutdown) once w->thread is known. */
	w->thread = pthread_self();
	pthread_mutex_lock(&table_lock);
	w->next = waiters;
	waiters = w;
	pthread_mutex_unlock(&table_lock);
	fuse_req_interrupt_func(w->req, waiter_interrupted, w);
	do
		err = waiter_wait(w);
	while (!err && w->owner && waiter_rebind(w, &err));
	if (!err && w->owner)
		owner_note_lock(w->owner, &w->fl, ctx);
	waiter_finish(w, err);
	return NULL;
}

/* Wait for the lock in a thread of its own, which replies. Takes over
 * owner's ref, or fd (flock). Returns 0, or a positive errno (not taken
 * over then). */
static int wait_in_thread(fuse_req_t req, struct owner *o, int fd, int op,
			  const struct flock *fl)
{
	struct waiter *w = calloc(1, sizeof(*w));
	pthread_attr_t attr;
	pthread_t t;
	int err;

	if (!w)
		return ENOMEM;
	pthread_once(&signal_once, install_wake_handler);
	w->req = req;
	w->owner = o;
	w->fd = o ? o->fd : fd;
	w->op = op;
	if (fl)
		w->fl = *fl;
	pthread_mutex_lock(&table_lock);
	nwaiters++;
	pthread_mutex_unlock(&table_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	err = pthread_create(&t, &attr, waiter_main, w);
	pthread_attr_destroy(&attr);
	if (err) {
		pthread_mutex_lock(&table_lock);
		nwaiters--;
		pthread_mutex_unlock(&table_lock);
		free(w);
	}
	return err;
}

static bool would_block(int err)
{
	return err == EAGAIN || err == EACCES || err == EWOULDBLOCK;
}

void sfs_op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		  int op)
{
	struct sfs_file *f = sfs_file_of(fi);
	int fd, err;

	(void)ino;
	if (flock(f->fd, op | LOCK_NB) == 0)
		return (void)fuse_reply_err(req, 0);
	err = errno;
	if ((op & LOCK_NB) || !would_block(err))
		return (void)fuse_reply_err(req, err);
	/* The handle may be released while we wait: a dup keeps the open
	 * file description (and so the lock we get) alive. */
	fd = dup(f->fd);
	if (fd == -1)
		return (void)fuse_reply_err(req, errno);
	err = wait_in_thread(req, NULL, fd, op & ~LOCK_NB, NULL);
	if (err) {
		close(fd);
		fuse_reply_err(req, err);
	}
}

/* libfuse gives l_start and l_len (0: to the end) with SEEK_SET. */
static struct flock ofd_request(const struct flock *lock)
{
	struct flock fl = {
		.l_type = lock->l_type,
		.l_whence = SEEK_SET,
		.l_start = lock->l_start,
		.l_len = lock->l_len,
		.l_pid = 0,		/* OFD requests must say 0 */
	};

	return fl;
}

void sfs_op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		  struct flock *lock)
{
	struct sfs_file *f = sfs_file_of(fi);
	struct flock fl = ofd_request(lock);
	struct owner *o = owner_get(f, fi->lock_owner, false);
	/* No owner: it holds no lock here, so any fd without OFD locks asks
	 * the same question; the handle's fd has none (flock's do not
	 * count). */
	int res = fcntl(o ? o->fd : f->fd, F_OFD_GETLK, &fl), err = errno;

	(void)ino;
	if (o)
		owner_put(o);
	if (res == -1)
		return (void)fuse_reply_err(req, err);
	/* l_pid -1: an OFD lock, so one of our owners (see holder_pid);
	 * otherwise a classic POSIX lock on SRC and its holder's pid. */
	if (fl.l_type != F_UNLCK && fl.l_pid == -1)
		fl.l_pid = holder_pid(f->inode, fi->lock_owner, &fl);
	fuse_reply_lock(req, &fl);
}

void sfs_op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		  struct flock *lock, int sleep)
{
	struct sfs_file *f = sfs_file_of(fi);
	struct flock fl = ofd_request(lock);
	bool unlock = fl.l_type == F_UNLCK;
	struct owner *o = owner_get(f, fi->lock_owner, !unlock);
	int err;

	(void)ino;
	if (!o)		/* unlocking what was never locked here: done */
		return (void)fuse_reply_err(req, errno);
	err = fcntl(o->fd, F_OFD_SETLK, &fl) == -1 ? errno : 0;
	if (!err) {
		owner_note_lock(o, &fl, fuse_req_ctx(req));
	} else if (sleep && would_block(err)) {
		err = wait_in_thread(req, o, -1, 0, &fl);
		if (!err)
			return;		/* the waiter replies */
	}
	owner_put(o);
	fuse_reply_err(req, err);
}

/* close() of one of a process's fds of the file: its POSIX locks go. */
void sfs_locks_flush(struct sfs_file *f, uint64_t lock_owner)
{
	struct owner key = { .inode = f->inode, .id = lock_owner }, *o;

	/* Every close comes here: no global lock while nobody holds locks.
	 * A lock request racing a close by the same owner may go either
	 * way, as it may on any filesystem. */
	if (!__atomic_load_n(&nowners, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&table_lock);
	o = owners ? g_hash_table_lookup(owners, &key) : NULL;
	if (o) {
		g_hash_table_remove(owners, o);
		owners_counted();
		if (o->file)
			__atomic_sub_fetch(&o->file->lock_owners, 1,
					   __ATOMIC_RELAXED);
		owner_drop_locked(o);
	}
	pthread_mutex_unlock(&table_lock);
}

static gboolean first_locked_through(gpointer key, gpointer value,
				     gpointer f)
{
	struct owner *o = key;

	(void)value;
	if (o->file != f)
		return FALSE;
	owner_drop_locked(o);
	return TRUE;
}

/* f is released: the owners it brought (its OFD locks) go. */
void sfs_locks_release(struct sfs_file *f)
{
	if (!__atomic_load_n(&f->lock_owners, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&table_lock);
	g_hash_table_foreach_remove(owners, first_locked_through, f);
	owners_counted();
	__atomic_store_n(&f->lock_owners, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&table_lock);
}

static gboolean drop_any(gpointer key, gpointer value, gpointer unused)
{
	(void)value;
	(void)unused;
	owner_drop_locked(key);
	return TRUE;
}

/*
 * The session is over: waiting threads are woken and reply EINTR (into a
 * connection that is gone) before the session is destroyed under them;
 * then every owner's fd is closed.
 */
void sfs_locks_shutdown(void)
{
	const struct timespec ms = { .tv_nsec = 1000000 };

	pthread_mutex_lock(&table_lock);
	shutting_down = true;
	pthread_mutex_unlock(&table_lock);
	for (;;) {
		pthread_mutex_lock(&table_lock);
		if (!nwaiters)
			break;
		for (struct waiter *w = waiters; w; w = w->next) {
			__atomic_store_n(&w->interrupted, true, __ATOMIC_RELEASE);
			if (!__atomic_load_n(&w->woke, __ATOMIC_ACQUIRE))
				pthread_kill(w->thread, WAKE_SIGNAL);
		}
		pthread_mutex_unlock(&table_lock);
		nanosleep(&ms, NULL);
	}
	if (owners) {
		g_hash_table_foreach_remove(owners, drop_any, NULL);
		g_hash_table_destroy(owners);
		owners = NULL;
		owners_counted();
	}
	pthread_mutex_unlock(&table_lock);
}
