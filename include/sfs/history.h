/*
 * The versions of one backing file that snapshots still read.
 *
 * A snapshot is the file's content at some open(): the live file, except for
 * ranges changed since, which were preserved in the store just before they
 * changed. The history keeps, per live snapshot, a sorted map of preserved
 * extents (store bytes, or holes), and the file's current version, bumped
 * by every change through MNT. Snapshots opened at the same version share
 * one struct sfs_snap.
 *
 * Locking: a change of [off, end) calls sfs_history_before_change() while
 * holding that range of the backing inode exclusively, so no snapshot read
 * of the range (which holds it shared) can see the map and the live file
 * disagree. Everything else is protected by the history's own mutex.
 */
#ifndef SFS_HISTORY_H
#define SFS_HISTORY_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

struct sfs_store;

/* The engine's own (lib/history_i.h): fs/ uses the functions below. */
struct sfs_history;
struct sfs_snap;

enum sfs_seg_kind { SFS_SEG_LIVE, SFS_SEG_STORE, SFS_SEG_ZERO };

/* One piece of a snapshot read: [off, off + len) of the file. */
struct sfs_segment {
	enum sfs_seg_kind kind;
	uint64_t off, len;
	uint64_t src_off;		/* SFS_SEG_STORE: offset in store_fd */
};

/* Process-wide: look for out-of-band changes at all (-o oob=detect). */
void sfs_history_detect_oob(bool on);

void sfs_history_init(struct sfs_history *h);
/* Frees every snapshot and the store file, whatever their refs. */
void sfs_history_destroy(struct sfs_history *h, struct sfs_store *s);

/* A change of the data through MNT was applied (any mode). */
void sfs_history_changed(struct sfs_history *h);
/* How many such changes there were (a key for cached digests). */
uint64_t sfs_history_changes(struct sfs_history *h);

/* The file's current version V(B). */
uint64_t sfs_history_version(struct sfs_history *h);

/* Is anything live (a snapshot or a store file)? */
bool sfs_history_busy(struct sfs_history *h);
/* Are snapshots live? */
bool sfs_history_has_snaps(struct sfs_history *h);

/*
 * The snapshot for an open now (fd: the live file, any fd fstat accepts):
 * joins the one at the current version, or starts a new one (O(1): nothing
 * copied). Waits while one of our changes is being applied: a snapshot
 * taken in the middle would miss the preservation that change already did.
 *
 * Every function here that looks at the live file's attributes does so
 * itself, under the mutex: attributes read outside it could predate a
 * change of ours that completes meanwhile, and look like one from outside.
 */
struct sfs_snap *sfs_history_open(struct sfs_history *h, int fd);
/*
 * The same; where s takes clones (sfs_store_use_clones), a new snapshot is
 * a clone of the file in s at once (fd must then be readable) and never
 * reads the live file.
 */
struct sfs_snap *sfs_history_open_in(struct sfs_history *h,
				     struct sfs_store *s, int fd);
/*
 * sfs_history_open_in for a tree view (a capture, or a view's open file):
 * such a snapshot is shared only with other views' (never with a plain
 * open), and max_preserve reclaims it only with its views, through
 * sfs_history_set_view_reclaim(). !wait: NULL with errno EBUSY while a
 * change runs, for the out-of-band watch's handler, which ends some of
 * those changes itself (its grants) and so must never wait for them.
 */
struct sfs_snap *sfs_history_open_for_views(struct sfs_history *h,
					    struct sfs_store *s, int fd,
					    bool wait);
void sfs_history_close(struct sfs_history *h, struct sfs_store *s,
		       struct sfs_snap *snap);

/*
 * Around a change of [off, end) of the live file (end UINT64_MAX: to the
 * end), with that range locked exclusively. live_fd(arg) gives a readable
 * fd of the live file (or -1 with errno), asked only if something must be
 * preserved, under the history's mutex (an empty range, off >= end, only
 * marks a change of metadata running). before_change preserves what
 * live snapshots still need (never failing the writer: a snapshot that
 * cannot be preserved is invalidated); after_change bumps the version and,
 * if no other change of ours still runs, records the file's attributes
 * now (fstat of fd; fd < 0: unknown) as the base for out-of-band detection.
 */
void sfs_history_before_change(struct sfs_history *h, struct sfs_store *s,
			       int (*live_fd)(void *arg), void *arg,
			       uint64_t off, uint64_t end);
void sfs_history_after_change(struct sfs_history *h, int fd, bool data_changed);
/*
 * Preserve [off, end) for the live snapshots that still need it, before
 * any change of it is announced: a guess that a sequential writer comes
 * next, so the copy overlaps its current write rather than holding the
 * next one. The caller holds the range exclusively, as for a change, and
 * no change of it may be running. Returns the bytes newly preserved.
 */
uint64_t sfs_history_preserve_ahead(struct sfs_history *h,
				    struct sfs_store *s,
				    int (*live_fd)(void *arg), void *arg,
				    uint64_t off, uint64_t end);
/*
 * A change of metadata only (times, mode) through MNT begins: nothing to
 * preserve, but until sfs_history_after_change(h, fd, false) the file's
 * new mtime or ctime must not look like a change from outside.
 */
void sfs_history_before_meta_change(struct sfs_history *h);

/*
 * Check the live file (fstat of fd) against what we last did to it. A
 * difference while none of our changes runs is an out-of-band change:
 * snapshots open now lose their live ranges. Returns true if it found one.
 */
bool sfs_history_check_oob(struct sfs_history *h, int fd);

/*
 * Plan a read of [off, off + len) of snap, clamped to its size, into segs
 * (cleared first). Returns 0 (then call sfs_snap_plan_done() once the
 * segments have been read), or EIO if the snapshot is invalid or a live
 * range is needed after an out-of-band change (what is wrong in *why).
 */
int sfs_snap_plan(struct sfs_history *h, struct sfs_snap *snap, uint64_t off,
		  uint64_t len, GArray *segs, const char **why);

/*
 * Someone outside changed the file (fanotify saw it): snapshots open now
 * distrust the live file, whatever its mtime says; fd gives the new base.
 * Unless ctime is still the base's: the event is late, for a change
 * made before the base was taken. exact: then every live snapshot is
 * marked (the watch knows no change after the base was announced). Else
 * a snapshot whose open saw the current ctime is spared: the event may be
 * late for a change made before that open. True if a snapshot that reads
 * the live file was newly marked (counted as oob_unpreserved).
 */
bool sfs_history_mark_oob(struct sfs_history *h, int fd, bool exact);

/*
 * The file as it is now (fstat of fd) is the base for out-of-band
 * detection, unless a change of ours is running (then its end sets it);
 * if it differs from the old base, later opens get a new version. For a
 * watch that knows no change is under way.
 */
void sfs_history_rebase(struct sfs_history *h, int fd);

/* A change of metadata only was made through MNT (fd: any fd of the
 * file, to read the ctime it set). */
void sfs_history_meta_changed(struct sfs_history *h, int fd);

/*
 * Should snap show its open-time mtime and ctime rather than the live ones
 * (live: the file's attributes now)? Yes once its data may have moved on:
 * the version is not current, or ctime moved by anything but a change of
 * metadata through MNT.
 */
bool sfs_snap_times_frozen(struct sfs_history *h, const struct sfs_snap *snap,
			   uint64_t node_version, const struct stat *live);

/* The file changed in a way no version counted: later opens get a new one. */
void sfs_history_bump(struct sfs_history *h);

/*
 * The process-wide clock of max_preserve: every snapshot is stamped with
 * the next instant when it is taken, and a tree view takes one when it is
 * taken, so that reclaiming goes oldest first across both.
 */
uint64_t sfs_history_instant(void);

/*
 * Tree views under max_preserve. A view's file snapshots are not
 * reclaimed one by one (a view would then answer EIO for some files and
 * not others): when the store would pass the cap, the history asks these
 * hooks to invalidate whole views, oldest first by instant, interleaved
 * with plain snapshots by the same clock, while the store is still over.
 *
 * Both run inside a preservation: with the mutex of the history being
 * changed (held) and the list of all snapshots locked, so they may only
 * take the views' lock (rank VIEWS) and, for the snapshots of their
 * captures, call sfs_snap_holds_bytes() and sfs_snap_reclaim(), which take
 * other histories' mutexes with trylock only. Nothing they do may wait
 * for a reader: writers never wait for views.
 *
 * oldest: the instant of the oldest view not yet invalidated whose
 * captures hold store bytes, UINT64_MAX if none. invalidate_oldest:
 * invalidate that view, reclaiming the snapshots no valid view needs any
 * more; false if there was none.
 */
struct sfs_view_reclaim {
	uint64_t (*oldest)(void *ctx, struct sfs_history *held);
	bool (*invalidate_oldest)(void *ctx, struct sfs_history *held,
				  struct sfs_store *s);
	/*
	 * Even so the bytes do not fit, and snap (a view's, in held) needs
	 * them: invalidate every view it serves, whole, rather than let snap
	 * alone go (a view that held nothing yet was no candidate above).
	 * Same context and rules (snap among the snapshots it reclaims).
	 */
	void (*invalidate_users)(void *ctx, struct sfs_history *held,
				 struct sfs_store *s, struct sfs_snap *snap);
	void *ctx;
};
/* Install (r) or remove (NULL) the hooks; r is copied. */
void sfs_history_set_view_reclaim(const struct sfs_view_reclaim *r);

/*
 * From those hooks only (held: the history whose mutex the caller has).
 * Does snap keep bytes in the store? (True when its history is busy:
 * trylock, so it may.) sfs_snap_reclaim: snap's views are invalid; make it
 * unreadable and give its store bytes back, unless its history is busy or
 * a read of it is in flight (then its bytes go at a later reclaim, or
 * when it is closed).
 */
bool sfs_snap_holds_bytes(struct sfs_history *held, struct sfs_snap *snap);
void sfs_snap_reclaim(struct sfs_history *held, struct sfs_store *s,
		      struct sfs_snap *snap, const char *why);

/* Process-wide: extents one snapshot may hold before it is invalidated
 * (default 1 Mi, about 66 MiB of the daemon's memory). For tests. */
void sfs_history_set_max_extents(unsigned n);

/* Take another ref on a snapshot someone holds. */
void sfs_snap_ref(struct sfs_history *h, struct sfs_snap *snap);

/* A read planned by sfs_snap_plan() (which returned 0) has been answered. */
void sfs_snap_plan_done(struct sfs_history *h, struct sfs_snap *snap);

/* Invalidate snap (reads fail EIO from now on). */
void sfs_snap_invalidate(struct sfs_history *h, struct sfs_snap *snap,
			 const char *why);

/* Bytes of the file snap keeps in the store (or as reflinks). */
uint64_t sfs_snap_preserved_bytes(struct sfs_history *h,
				  struct sfs_snap *snap);
/* Has snap been invalidated (every read fails)? */
bool sfs_snap_unreadable(struct sfs_history *h, struct sfs_snap *snap);

/* The file's size when snap was taken, and its version. */
uint64_t sfs_snap_size(const struct sfs_snap *snap);
uint64_t sfs_snap_version(const struct sfs_snap *snap);

/*
 * The store file SFS_SEG_STORE segments point into. Stable while a
 * snapshot with such segments is held, so it is read without the mutex.
 */
int sfs_history_store_fd(struct sfs_history *h);

/*
 * The digest of snap's bytes, if known: computed for snap itself while the
 * live file's ctime was `ctime`, or for another snapshot of the same
 * version while the change count and ctime were as they are now (a
 * version's bytes are the same for every snapshot of it, unless SRC
 * changed under one). True with d filled.
 */
bool sfs_history_digest_lookup(struct sfs_history *h, struct sfs_snap *snap,
			       uint64_t changes, struct timespec ctime,
			       unsigned char d[16]);
/* Remember d as snap's digest, computed under those keys. */
void sfs_history_digest_save(struct sfs_history *h, struct sfs_snap *snap,
			     uint64_t changes, struct timespec ctime,
			     const unsigned char d[16]);

#endif
