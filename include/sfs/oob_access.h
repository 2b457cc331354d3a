/*
 * What an access to SRC announced by a fanotify permission event is about
 * to do to the file's bytes.
 *
 * A pre-content event (FAN_PRE_ACCESS) holds the accessing thread before
 * the access, but it does not say whether it reads or writes (both have
 * the same mask), and for a truncation it names only the page at the new
 * end of file; open(O_TRUNC) raises no pre-content event at all, only
 * FAN_OPEN_PERM (doc/kernel-facts.md, K9). The held thread is inside its
 * syscall, so /proc/PID/task/TID/syscall shows the syscall and its raw
 * arguments: that tells a read from a change, and which bytes a change
 * reaches.
 */
#ifndef SFS_OOB_ACCESS_H
#define SFS_OOB_ACCESS_H

#include <stdbool.h>
#include <stdint.h>

/* A line of /proc/PID/task/TID/syscall. */
struct sfs_syscall {
	bool known;		/* false: "running", or not in a syscall */
	long nr;
	uint64_t args[6];
};

/* Parse line (as read, NUL-terminated). Never fails: unparsable lines
 * give known = false. */
void sfs_syscall_parse(const char *line, struct sfs_syscall *sc);

/* Is it write(2) or one of its vector/positioned kin: a change of just
 * the range it names, with no size change but growth? */
bool sfs_syscall_is_write(const struct sfs_syscall *sc);

enum sfs_oob_event { SFS_OOB_PRE_ACCESS, SFS_OOB_OPEN };

/*
 * May the access change bytes of the file, and which: [*off, *end)
 * (*end UINT64_MAX: to the end of file)? ev_off/ev_count: the event's
 * range record (SFS_OOB_PRE_ACCESS only). An access we cannot tell is
 * taken for a change from ev_off to the end: preserving too much costs
 * store space, too little costs a snapshot.
 */
bool sfs_oob_access_changes(const struct sfs_syscall *sc,
			    enum sfs_oob_event ev, uint64_t ev_off,
			    uint64_t ev_count, uint64_t *off, uint64_t *end);

#endif
