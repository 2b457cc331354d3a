/*
 * Telling systemd (a Type=notify service) when the mount is up and when it
 * is going away.
 *
 * READY=1 goes out only once the mount exists: fuse_session_mount() has
 * returned (as root it called mount(2) itself; otherwise fusermount3 had
 * mounted before it passed the fd back), so any process that systemd starts
 * after us sees MNT as the FUSE mount, never the empty directory below it.
 * Its first request waits in the kernel until we answer INIT, which the
 * session loop does first thing.
 *
 * STOPPING=1 goes out once, as early as we know: from the shutdown
 * watchdog when a signal arrived (systemctl stop), else when the session
 * loop returns (fusermount3 -u, umount). It reaches systemd before the
 * process exits: the datagram is queued at the socket when sd_notify()
 * returns.
 *
 * Only in the foreground: a daemonized stablefs's main process has exited
 * long before, which a Type=notify unit takes for the service's end.
 * Without $NOTIFY_SOCKET sd_notify() does nothing.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "fs.h"

static atomic_bool enabled, stopping_sent;

static void notify(const char *state)
{
	int res = sd_notify(0, state);

	if (res < 0)
		fuse_log(FUSE_LOG_WARNING, "stablefs: cannot notify systemd (%s): %s\n",
			 state, strerror(-res));
}

/*
 * A path in STATUS=: a newline in it would start another assignment
 * (MAINPID=, READY=...), so control characters become '?'.
 */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

void sfs_notify_ready(const char *src, const char *mnt, bool foreground)
{
	char status[2 * PATH_MAX + 32], state[sizeof(status) + 32];

	atomic_store(&enabled, foreground);
	if (!foreground)
		return;
	snprintf(status, sizeof(status), "serving %s on %s", src, mnt);
	sanitize(status);
	snprintf(state, sizeof(state), "READY=1\nSTATUS=%s", status);
	notify(state);
}

void sfs_notify_stopping(void)
{
	if (!atomic_load(&enabled) || atomic_exchange(&stopping_sent, true))
		return;
	notify("STOPPING=1\nSTATUS=unmounting");
}
