/*
 * A signal ends the daemon even when requests are stuck.
 *
 * libfuse's handler for SIGTERM, SIGINT and SIGHUP only marks the session
 * as exited; the loop then joins its workers (fuse_session_loop_mt), so a
 * worker blocked in the kernel keeps the daemon alive forever, and a worker
 * blocked on our own connection (a folio lock held by a READ nobody will
 * answer now) ignores even SIGKILL. So after a signal a watchdog gives the
 * daemon SHUTDOWN_GRACE_S to finish; then it aborts the mount's FUSE
 * connection (fusectl's abort, as `fusermount3 -u` cannot: every request
 * pending on it fails at once, so stuck workers return); and should even
 * that not end it (a worker blocked on another filesystem SRC lives on), it
 * detaches the mount and exits: killable waits end with the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"

#define SHUTDOWN_GRACE_S 5
#define FUSECTL "/sys/fs/fuse/connections"

static sem_t signalled, finished;
static struct sigaction chained[3];
static const int signals[3] = { SIGTERM, SIGINT, SIGHUP };

/* libfuse's handler first (it marks the session exited), then wake us. */
static void on_signal(int sig)
{
	for (int i = 0; i < 3; i++)
		if (signals[i] == sig && chained[i].sa_handler != SIG_DFL &&
		    chained[i].sa_handler != SIG_IGN)
			chained[i].sa_handler(sig);
	sem_post(&signalled);
}

/* Wait for the session to finish; false after seconds without it. */
static bool finished_within(int seconds)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += seconds;
	while (sem_timedwait(&finished, &t) == -1)
		if (errno != EINTR)
			return false;
	return true;
}

static void abort_connection(unsigned minor)
{
	char path[64];
	int fd;

	if (!minor)
		return;
	/* fusectl may not be mounted yet; EBUSY if it is. */
	mount("fusectl", FUSECTL, "fusectl", 0, NULL);
	snprintf(path, sizeof(path), FUSECTL "/%u/abort", minor);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd == -1 || write(fd, "1", 1) != 1)
		fuse_log(FUSE_LOG_ERR, "stablefs: cannot abort %s: %s\n", path,
			 strerror(errno));
	if (fd != -1)
		close(fd);
}

static void *watchdog(void *arg)
{
	struct sfs_fs *fs = arg;

	while (sem_wait(&signalled) == -1)
		;
	sfs_notify_stopping();	/* here, not in the handler: not signal-safe */
	if (finished_within(SHUTDOWN_GRACE_S))
		return NULL;
	fuse_log(FUSE_LOG_ERR, "stablefs: requests still running %d s after "
		 "the signal: aborting the connection\n", SHUTDOWN_GRACE_S);
	abort_connection(fs->conn_minor);
	if (finished_within(SHUTDOWN_GRACE_S))
		return NULL;
	fuse_log(FUSE_LOG_ERR, "stablefs: still stuck: detaching %s and "
		 "exiting\n", fs->mountpoint ? fs->mountpoint : "the mount");
	if (fs->mountpoint)
		umount2(fs->mountpoint, MNT_DETACH);
	_exit(1);
}

void sfs_shutdown_watch_start(struct sfs_fs *fs)
{
	struct sigaction sa = { .sa_handler = on_signal };
	pthread_t t;

	sem_init(&signalled, 0, 0);
	sem_init(&finished, 0, 0);
	sigemptyset(&sa.sa_mask);
	if (pthread_create(&t, NULL, watchdog, fs)) {
		fuse_log(FUSE_LOG_ERR, "stablefs: no shutdown watchdog\n");
		return;
	}
	pthread_detach(t);
	for (int i = 0; i < 3; i++)
		sigaction(signals[i], &sa, &chained[i]);
}

void sfs_shutdown_done(void)
{
	sem_post(&finished);
}
