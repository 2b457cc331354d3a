/*
 * Out-of-band changes, seen as they happen: a fanotify mark on SRC's whole
 * filesystem reports every FAN_MODIFY (write, truncate, fallocate) with the
 * pid that made it. Changes by this daemon are its own; any other one to a
 * file that has live snapshots marks them out-of-band at once
 * (lib/history.c), including changes the (mtime, size) check cannot see (a
 * write whose mtime is set back afterwards, or one racing our own change).
 * Where fanotify is not available (not root, kernel without it), that check
 * alone remains. Events arrive after the change, asynchronously: a read
 * that races the external write itself can still see it (G3's limit, in
 * doc/design.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

#define MAX_NODES 64

struct oob_watch {
	/* Held while events are read and handled, so that a drain returns
	 * only once every event queued before it has been handled. */
	pthread_mutex_t mutex;
	int fan;		/* fanotify group (non-blocking) */
	int stop;		/* eventfd: tells the thread to end */
	pthread_t thread;
	struct sfs_fs *fs;
};

/*
 * Events were lost (queue overflow, or an event the kernel could not give
 * us: it drops one whose fd it cannot open, EMFILE/ENFILE/ENOMEM). We
 * cannot tell which files changed, so no open snapshot trusts its live
 * ranges any more: failing reads beats serving a mix.
 */
static void events_lost(struct oob_watch *w, const char *why)
{
	fuse_log(FUSE_LOG_ERR, "stablefs: fanotify events lost (%s): every "
		 "open snapshot now distrusts its live ranges\n", why);
	sfs_itable_mark_oob(w->fs->inodes, NULL, NULL, 0);
}

static void handle_event(struct oob_watch *w, const struct fanotify_event_metadata *m)
{
	struct sfs_node *nodes[MAX_NODES];
	struct stat st;

	if (m->mask & FAN_Q_OVERFLOW) {
		events_lost(w, "queue overflow");
		return;
	}
	if (m->fd < 0)
		return;
	if (m->pid != getpid() && fstat(m->fd, &st) == 0)
		sfs_evict_nodes_later(w->fs, nodes,
				      sfs_itable_mark_oob(w->fs->inodes, &st,
							  nodes, MAX_NODES));
	close(m->fd);
}

/* Read and handle what is queued now. With w->mutex held. */
static void handle_queued(struct oob_watch *w)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
	ssize_t n;

	while ((n = read(w->fan, buf, sizeof(buf))) > 0)
		for (struct fanotify_event_metadata *m = (void *)buf;
		     FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n))
			handle_event(w, m);
	if (n == -1 && errno != EAGAIN && errno != EINTR)
		events_lost(w, strerror(errno));
}

static void *watch_main(void *arg)
{
	struct oob_watch *w = arg;
	struct pollfd pfd[2] = { { w->fan, POLLIN, 0 }, { w->stop, POLLIN, 0 } };

	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
			events_lost(w, "the watch stops");
			break;
		}
		if (pfd[1].revents)
			break;
		pthread_mutex_lock(&w->mutex);
		handle_queued(w);
		pthread_mutex_unlock(&w->mutex);
	}
	return NULL;
}

/*
 * Events arrive late. Before a snapshot is taken, every change already
 * reported must be handled: one made before the open belongs to the
 * snapshot's content, and must not be taken for a change after it.
 */
void sfs_oob_watch_drain(struct oob_watch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mutex);
	handle_queued(w);
	pthread_mutex_unlock(&w->mutex);
}

struct oob_watch *sfs_oob_watch_start(struct sfs_fs *fs)
{
	struct oob_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->fs = fs;
	pthread_mutex_init(&w->mutex, NULL);
	/* No queue limit (root only): an overflow distrusts every snapshot,
	 * and a busy filesystem fills the default 16,384 events quickly. */
	w->fan = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK |
			       FAN_UNLIMITED_QUEUE,
			       O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (w->fan < 0)
		w->fan = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK,
				       O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (w->fan < 0 ||
	    fanotify_mark(w->fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_MODIFY,
			  AT_FDCWD, fs->src_real) < 0) {
		fuse_log(FUSE_LOG_INFO, "stablefs: no fanotify watch on SRC (%s): "
			 "out-of-band changes are seen by mtime and size only\n",
			 strerror(errno));
		goto fail;
	}
	w->stop = eventfd(0, EFD_CLOEXEC);
	if (w->stop < 0 || pthread_create(&w->thread, NULL, watch_main, w)) {
		if (w->stop >= 0)
			close(w->stop);
		goto fail;
	}
	return w;
fail:
	if (w->fan >= 0)
		close(w->fan);
	free(w);
	return NULL;
}

void sfs_oob_watch_stop(struct oob_watch *w)
{
	uint64_t one = 1;

	if (!w)
		return;
	if (write(w->stop, &one, sizeof(one)) == sizeof(one))
		pthread_join(w->thread, NULL);
	close(w->stop);
	close(w->fan);
	free(w);
}
