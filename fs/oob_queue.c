/*
 * The out-of-band watch's queue: reading the fanotify group, answering the
 * daemon's own permission events at once, passing the rest on to the
 * handler thread (oob_events.c), and answering events for it. The bottom
 * of the watch: it takes no lock of the daemon but the watch's own
 * read_lock, so the reader thread never waits for a worker (oob_watch.c
 * says why that matters).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "oob_watch.h"

void sfs_oob_respond(struct oob_watch *w, int fd, uint32_t response)
{
	struct fanotify_response r = { .fd = fd, .response = response };

	if (write(w->fan, &r, sizeof(r)) != sizeof(r))
		fuse_log(FUSE_LOG_ERR, "stablefs: cannot answer a fanotify "
			 "event: %s\n", strerror(errno));
}

/* Is tid one of this daemon's threads? tgkill() checks it without /proc. */
static bool own_thread(pid_t tid)
{
	return syscall(SYS_tgkill, getpid(), tid, 0) == 0;
}

static void parse_info(struct oob_event *e, const struct fanotify_event_metadata *m)
{
	const char *p = (const char *)m + m->metadata_len;
	const char *end = (const char *)m + m->event_len;

	while (p + sizeof(struct fanotify_event_info_header) <= end) {
		const struct fanotify_event_info_header *h = (const void *)p;

		if (h->len == 0 || p + h->len > end)
			break;
		if (h->info_type == FAN_EVENT_INFO_TYPE_RANGE &&
		    h->len >= sizeof(struct oob_range_info)) {
			const struct oob_range_info *r = (const void *)p;

			e->has_range = true;
			e->off = r->offset;
			e->count = r->count;
		}
		p += h->len;
	}
}

static void forward(struct oob_watch *w, const struct fanotify_event_metadata *m)
{
	struct oob_event *e = g_new0(struct oob_event, 1);

	e->mask = m->mask;
	e->fd = m->fd;
	e->tid = m->pid;
	parse_info(e, m);
	/* Our own accesses are allowed here and now; the handler only
	 * decides whether the file can be ignored from now on. */
	if (m->fd >= 0 && own_thread(m->pid)) {
		e->own = true;
		if (m->mask & PERM_EVENTS)
			sfs_oob_respond(w, m->fd, FAN_ALLOW);
	}
	e->seq = ++w->forwarded;
	g_async_queue_push(w->events, e);
}

/* Read what is queued in the group now and pass it on. With read_lock. */
static void read_queued(struct oob_watch *w)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
	ssize_t n;

	while ((n = read(w->fan, buf, sizeof(buf))) > 0)
		for (struct fanotify_event_metadata *m = (void *)buf;
		     FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n))
			forward(w, m);
	if (n == -1 && errno != EAGAIN && errno != EINTR) {
		/* The handler says it: an overflow-like event. */
		struct fanotify_event_metadata lost = {
			.mask = FAN_Q_OVERFLOW, .fd = FAN_NOFD,
		};

		forward(w, &lost);
	}
}

void *sfs_oob_reader_main(void *arg)
{
	struct oob_watch *w = arg;
	struct pollfd pfd[2] = { { w->fan, POLLIN, 0 }, { w->stop, POLLIN, 0 } };

	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
			struct fanotify_event_metadata lost = {
				.mask = FAN_Q_OVERFLOW, .fd = FAN_NOFD,
			};

			pthread_mutex_lock(&w->read_lock);
			forward(w, &lost);
			pthread_mutex_unlock(&w->read_lock);
			break;
		}
		if (pfd[1].revents)
			break;
		pthread_mutex_lock(&w->read_lock);
		read_queued(w);
		pthread_mutex_unlock(&w->read_lock);
	}
	return NULL;
}

uint64_t sfs_oob_read_now(struct oob_watch *w)
{
	uint64_t last;

	pthread_mutex_lock(&w->read_lock);
	read_queued(w);
	last = w->forwarded;
	pthread_mutex_unlock(&w->read_lock);
	return last;
}
