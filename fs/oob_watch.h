/*
 * The out-of-band watch's insides, shared by oob_watch.c (the fanotify
 * group, its reader thread, arming files for snapshots) and oob_events.c
 * (what the handler thread does with each event). The daemon at large sees
 * only the functions in fs.h.
 */
#ifndef SFS_OOB_WATCH_H
#define SFS_OOB_WATCH_H

#include <glib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/fanotify.h>
#include <sys/types.h>

#include "fs.h"

#include "sfs/fanotify_compat.h"

/* The events that hold the accessing thread until answered. */
#define PERM_EVENTS (FAN_PRE_ACCESS | FAN_OPEN_PERM)

/* The range record of a pre-content event. */
struct oob_range_info {
	struct fanotify_event_info_header hdr;
	uint32_t pad;
	uint64_t offset;
	uint64_t count;
};

struct oob_grant;

struct oob_pass {
	pid_t tid;
	char line[256];		/* its /proc/TID/syscall when let through */
	dev_t dev;
	ino_t ino;
	uint64_t deadline_ns;
};

/* One event, handed from the reader to the handler thread. */
struct oob_event {
	uint64_t mask;
	int fd;			/* the event's fd (FAN_NOFD: none) */
	pid_t tid;		/* FAN_REPORT_TID */
	bool own;		/* ours, and already answered */
	bool has_range;
	uint64_t off, count;
	uint64_t seq;		/* 1, 2, ... in the order read */
	bool stop;		/* the handler's last event */
};

struct oob_watch {
	struct sfs_fs *fs;
	bool preserve;		/* a pre-content group: preserve, then allow */
	uint64_t mask;		/* what the filesystem mark reports */
	int fan;		/* the group (non-blocking) */
	int stop;		/* eventfd: tells the reader to end */
	pthread_t reader, handler;
	GAsyncQueue *events;	/* struct oob_event *, reader -> handler */
	/*
	 * Draining: reading the group is serialized by read_lock; forwarded
	 * counts the events passed on, handled those the handler is done
	 * with (done_lock, done_cond). Leaves: nothing is taken under them.
	 */
	pthread_mutex_t read_lock;
	uint64_t forwarded;
	pthread_mutex_t done_lock;
	pthread_cond_t done_cond;
	uint64_t handled;
	/*
	 * Changes let through to files nobody watched (struct oob_pass),
	 * until they have landed; under done_lock, done_cond says when one
	 * ends. A snapshot's first open waits for its file's (arm).
	 */
	GArray *passes;
	/*
	 * Grants not ended yet, by id (uint64_t, ids given in order from
	 * grant_ids), under done_lock: a view waits for those allowed before
	 * it (sfs_oob_wait_all_grants). The grants themselves are the
	 * handler's (below).
	 */
	GArray *open_grants;
	uint64_t grant_ids;
	/* SFS_RANK_OOB_MARKS: deciding to ignore a file vs. arming it. */
	pthread_mutex_t mark_lock;
	/* The handler's own: changes allowed but maybe not landed yet
	 * (struct oob_grant *), grants ended before their FAN_MODIFY was
	 * handled (struct oob_grant *, seq: the last event read then), and
	 * the threads already named in the log. */
	GArray *grants;
	GArray *ended;
	GHashTable *named;
	/* The handler's: the last held write, for preserving ahead. */
	struct oob_stream {
		pid_t tid;
		dev_t dev;
		ino_t ino;
		uint64_t end;		/* where it ended */
		uint64_t ahead_end;	/* preserved ahead up to here */
	} stream;
};

/* oob_queue.c: read what the group has queued now and pass it on (takes
 * read_lock); returns the seq of the last event passed on. */
uint64_t sfs_oob_read_now(struct oob_watch *w);
/* oob_queue.c: answer a permission event. */
void sfs_oob_respond(struct oob_watch *w, int fd, uint32_t response);
/* oob_queue.c: the reader thread (polls the group and w->stop). */
void *sfs_oob_reader_main(void *arg);

/* oob_events.c: the handler thread. */
void *sfs_oob_handler_main(void *arg);

/* Wait until no change let through to (dev, ino) may still land. */
void sfs_oob_wait_passes(struct oob_watch *w, dev_t dev, ino_t ino);
/* Wait until every change let through so far, to any file, has landed
 * (or its pass timed out); changes let through meanwhile are not waited
 * for. */
void sfs_oob_wait_all_passes(struct oob_watch *w);
/* Wait until every change allowed so far to a file with snapshots (a
 * grant) has landed, or its grant timed out; later ones are not waited
 * for. */
void sfs_oob_wait_all_grants(struct oob_watch *w);

#endif
