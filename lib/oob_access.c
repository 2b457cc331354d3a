/*
 * Telling reads from changes for the out-of-band watch (include/sfs/
 * oob_access.h). Syscall numbers come from <sys/syscall.h>, so they are
 * the build architecture's; a syscall this table does not know is a
 * change of the event's range to the end of file.
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "sfs/oob_access.h"

void sfs_syscall_parse(const char *line, struct sfs_syscall *sc)
{
	char *end;
	long nr;

	sc->known = false;
	nr = strtol(line, &end, 10);
	if (end == line || nr < 0)
		return;		/* "running", or "-1 sp pc" */
	for (int i = 0; i < 6; i++) {
		const char *p = end;

		sc->args[i] = strtoull(p, &end, 16);
		if (end == p)
			return;
	}
	sc->nr = nr;
	sc->known = true;
}

static bool is_read(long nr)
{
	return nr == SYS_read || nr == SYS_pread64 || nr == SYS_readv ||
	       nr == SYS_preadv || nr == SYS_preadv2;
}

bool sfs_syscall_is_write(const struct sfs_syscall *sc)
{
	long nr = sc->nr;

	return sc->known && (nr == SYS_write || nr == SYS_pwrite64 ||
			     nr == SYS_writev || nr == SYS_pwritev ||
			     nr == SYS_pwritev2);
}

static bool is_open(long nr)
{
#ifdef SYS_open
	if (nr == SYS_open)
		return true;
#endif
	return nr == SYS_openat || nr == SYS_openat2;
}

/* open(2) flags of an open syscall: openat2 keeps them in memory we do
 * not read, so it may truncate. */
static bool open_truncates(const struct sfs_syscall *sc)
{
#ifdef SYS_creat
	if (sc->nr == SYS_creat)
		return true;
#endif
#ifdef SYS_open
	if (sc->nr == SYS_open)
		return sc->args[1] & O_TRUNC;
#endif
	if (sc->nr == SYS_openat)
		return sc->args[2] & O_TRUNC;
	return true;
}

/* fallocate modes that change no byte: allocation, with or without size. */
static bool falloc_keeps_bytes(uint64_t mode)
{
	return (mode & ~(uint64_t)FALLOC_FL_KEEP_SIZE) == 0;
}

bool sfs_oob_access_changes(const struct sfs_syscall *sc,
			    enum sfs_oob_event ev, uint64_t ev_off,
			    uint64_t ev_count, uint64_t *off, uint64_t *end)
{
	*off = ev_off;
	*end = ev_count ? ev_off + ev_count : ev_off;
	if (ev == SFS_OOB_OPEN) {
		/* Only a truncating open changes bytes (all of them). */
		*off = 0;
		*end = UINT64_MAX;
		return !sc->known || !is_open(sc->nr) || open_truncates(sc);
	}
	if (!sc->known) {
		*end = UINT64_MAX;
		return true;
	}
	if (is_read(sc->nr))
		return false;
#ifdef SYS_io_uring_enter
	if (sc->nr == SYS_io_uring_enter) {
		*end = UINT64_MAX;	/* any operation, ftruncate too */
		return true;
	}
#endif
	if (sc->nr == SYS_mmap) {
		/* A shared writable mapping is announced once, at mmap(), for
		 * its whole length: later stores are never seen (K9). */
		uint64_t type = sc->args[3] & MAP_TYPE;

		return (sc->args[2] & PROT_WRITE) &&
		       (type == MAP_SHARED || type == MAP_SHARED_VALIDATE);
	}
	if (sc->nr == SYS_truncate || sc->nr == SYS_ftruncate) {
		/* The event names the page of the new end only. */
		*off = sc->args[1];
		*end = UINT64_MAX;
		return true;
	}
	if (sc->nr == SYS_fallocate) {
		uint64_t mode = sc->args[1], start = sc->args[2], len = sc->args[3];

		if (falloc_keeps_bytes(mode))
			return false;
		*off = start;
		/* Collapse and insert move every byte after the range. */
		*end = mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE) ||
		       len > UINT64_MAX - start ? UINT64_MAX : start + len;
		return true;
	}
	/* write, pwrite, writev, copy_file_range, splice, sendfile, clone
	 * ioctls: the event's range is what they write. */
	if (ev_count == 0)
		*end = UINT64_MAX;
	return true;
}
