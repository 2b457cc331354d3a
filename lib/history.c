#include "history_i.h"
#include "sfs/clock.h"
#include "sfs/lock_order.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sfs/stats.h"
#include "sfs/store.h"

/* Store chunks start at the same offset modulo this as their source, and
 * cover whole blocks where the file allows, so XFS/btrfs can reflink them. */
#define SFS_STORE_ALIGN 4096u

static bool detect_oob = true;

void sfs_history_detect_oob(bool on)
{
	detect_oob = on;
}

void sfs_history_init(struct sfs_history *h)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->mutex, NULL);
	pthread_cond_init(&h->idle, NULL);
	h->store_fd = -1;
}

static void chunk_put(struct sfs_history *h, struct sfs_store *s,
		      struct sfs_chunk *c)
{
	if (!c || --c->refs)
		return;
	sfs_store_release(s, h->store_fd, c->store_off, c->len);
	free(c);
}

/*
 * Every live snapshot of the process, oldest first: when -o max_preserve
 * is reached, the oldest snapshots are invalidated to make room. Lock
 * order: a history's mutex, then all_lock; a history's mutex is taken while
 * holding all_lock only with trylock.
 */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sfs_snap *all_oldest, *all_newest;

static void all_add(struct sfs_snap *snap)
{
	sfs_mutex_lock(&all_lock, SFS_RANK_HISTORIES);
	snap->older = all_newest;
	snap->newer = NULL;
	if (all_newest)
		all_newest->newer = snap;
	else
		all_oldest = snap;
	all_newest = snap;
	sfs_mutex_unlock(&all_lock);
}

static void all_remove(struct sfs_snap *snap)
{
	sfs_mutex_lock(&all_lock, SFS_RANK_HISTORIES);
	if (snap->older)
		snap->older->newer = snap->newer;
	else
		all_oldest = snap->newer;
	if (snap->newer)
		snap->newer->older = snap->older;
	else
		all_newest = snap->older;
	sfs_mutex_unlock(&all_lock);
}

/* Give back the store bytes snap holds (its extents); with h's mutex. */
static void snap_release_extents(struct sfs_history *h, struct sfs_store *s,
				 struct sfs_snap *snap)
{
	for (guint i = 0; i < snap->extents->len; i++)
		chunk_put(h, s, g_array_index(snap->extents, struct sfs_extent, i).chunk);
	g_array_set_size(snap->extents, 0);
}

static void snap_free(struct sfs_history *h, struct sfs_store *s,
		      struct sfs_snap *snap)
{
	sfs_stat_add(SFS_STAT_SNAPSHOTS_LIVE, -1);
	all_remove(snap);
	snap_release_extents(h, s, snap);
	g_array_free(snap->extents, TRUE);
	free(snap);
}

static uint64_t instants;

uint64_t sfs_history_instant(void)
{
	return __atomic_add_fetch(&instants, 1, __ATOMIC_RELAXED);
}

/* Tree views' side of max_preserve (history.h); under all_lock. */
static struct sfs_view_reclaim view_reclaim;

void sfs_history_set_view_reclaim(const struct sfs_view_reclaim *r)
{
	sfs_mutex_lock(&all_lock, SFS_RANK_HISTORIES);
	if (r)
		view_reclaim = *r;
	else
		memset(&view_reclaim, 0, sizeof(view_reclaim));
	sfs_mutex_unlock(&all_lock);
}

/*
 * Inside a reclaim (held's mutex and all_lock taken): lock snap's history
 * too, unless it is held's. Only trylock, so false if it is busy.
 */
static bool lock_owner(struct sfs_history *held, struct sfs_snap *snap)
{
	return snap->owner == held ||
	       !sfs_mutex_trylock(&snap->owner->mutex, SFS_RANK_HISTORY);
}

static void unlock_owner(struct sfs_history *held, struct sfs_snap *snap)
{
	if (snap->owner != held)
		sfs_mutex_unlock(&snap->owner->mutex);
}

static bool holds_store_bytes(const struct sfs_snap *snap)
{
	for (guint i = 0; i < snap->extents->len; i++)
		if (g_array_index(snap->extents, struct sfs_extent, i).chunk)
			return true;
	return false;
}

bool sfs_snap_holds_bytes(struct sfs_history *held, struct sfs_snap *snap)
{
	bool holds;

	if (!lock_owner(held, snap))
		return true;	/* busy: it may */
	holds = !snap->invalid && holds_store_bytes(snap);
	unlock_owner(held, snap);
	return holds;
}

/* With snap's history locked: its bytes back, unless a read of them is
 * in flight (their store pages may sit in a pipe: a later reclaim). */
static void release_unread(struct sfs_store *s, struct sfs_snap *snap)
{
	if (!snap->readers && snap->extents->len)
		snap_release_extents(snap->owner, s, snap);
}

void sfs_snap_reclaim(struct sfs_history *held, struct sfs_store *s,
		      struct sfs_snap *snap, const char *why)
{
	if (!lock_owner(held, snap))
		return;		/* its bytes go at a later reclaim */
	if (!snap->invalid)
		snap->invalid = why;
	release_unread(s, snap);
	unlock_owner(held, snap);
}

/* With all_lock: the instant of the oldest view that still holds store
 * bytes, UINT64_MAX if none (or no views). */
static uint64_t oldest_view(struct sfs_history *h)
{
	return view_reclaim.oldest ? view_reclaim.oldest(view_reclaim.ctx, h) :
	       UINT64_MAX;
}

/*
 * With all_lock: invalidate views, oldest first, while the store is over
 * and the oldest of them was taken before instant `before`. Returns the
 * instant of the oldest view left holding bytes.
 */
static uint64_t reclaim_views_before(struct sfs_history *h,
				     struct sfs_store *s, uint64_t need,
				     uint64_t view, uint64_t before)
{
	while (view < before && !sfs_store_fits(s, need) &&
	       view_reclaim.invalidate_oldest(view_reclaim.ctx, h, s))
		view = oldest_view(h);
	return view;
}

/*
 * A view's snapshot is reclaimed with its view (the hooks), never alone.
 * One already made unreadable that way while a read of it ran, or its
 * history was busy, still has bytes: they go now if they can.
 */
static void reclaim_view_leftover(struct sfs_history *h, struct sfs_store *s,
				  struct sfs_snap *p)
{
	if (!p->invalid || !p->extents->len || !lock_owner(h, p))
		return;
	release_unread(s, p);
	unlock_owner(h, p);
}

/*
 * With h's mutex: max_preserve could not make room for bytes p, a view's
 * snapshot, needs. Its views go whole (the hooks) rather than p alone;
 * true if that made p unreadable.
 */
static bool views_give_up(struct sfs_history *h, struct sfs_store *s,
			  struct sfs_snap *p)
{
	bool gone = false;

	sfs_mutex_lock(&all_lock, SFS_RANK_HISTORIES);
	if (view_reclaim.invalidate_users)
		view_reclaim.invalidate_users(view_reclaim.ctx, h, s, p);
	gone = p->invalid != NULL;
	sfs_mutex_unlock(&all_lock);
	return gone;
}

/*
 * The store would pass max_preserve: make room oldest first by the
 * instant things were taken. A plain snapshot goes alone (invalidated,
 * its bytes given back); a tree view goes whole (the hooks invalidate it
 * and reclaim the snapshots of its captures no newer view shares). Skipped:
 * snapshots with reads in flight (their store pages may sit in a pipe)
 * and those whose history is busy (trylock: we hold h's mutex). Stops as
 * soon as need more bytes fit; returns whether they do. With h's mutex.
 */
static bool reclaim_oldest(struct sfs_history *h, struct sfs_store *s,
			   uint64_t need)
{
	uint64_t view;
	bool fits;

	sfs_mutex_lock(&all_lock, SFS_RANK_HISTORIES);
	view = oldest_view(h);
	for (struct sfs_snap *p = all_oldest; p && !sfs_store_fits(s, need);
	     p = p->newer) {
		struct sfs_history *o = p->owner;

		view = reclaim_views_before(h, s, need, view, p->instant);
		if (sfs_store_fits(s, need))
			break;
		if (p->for_views) {
			reclaim_view_leftover(h, s, p);
			continue;
		}
		if (p->invalid || !p->extents->len)
			continue;
		if (o != h && sfs_mutex_trylock(&o->mutex, SFS_RANK_HISTORY))
			continue;
		if (p->readers == 0) {
			p->invalid = "max_preserve reached (oldest snapshots go first)";
			sfs_stat_add(SFS_STAT_INVALIDATED_CAP, 1);
			snap_release_extents(o, s, p);
		}
		if (o != h)
			sfs_mutex_unlock(&o->mutex);
	}
	/* Views newer than every plain snapshot. */
	reclaim_views_before(h, s, need, view, UINT64_MAX);
	fits = sfs_store_fits(s, need);
	sfs_mutex_unlock(&all_lock);
	return fits;
}

/* With the mutex held: no snapshot left, so the store file can go. */
static void drop_store_if_unused(struct sfs_history *h, struct sfs_store *s)
{
	if (!h->snaps && h->store_fd >= 0) {
		sfs_store_file_close(s, h->store_fd);
		__atomic_store_n(&h->store_fd, -1, __ATOMIC_RELEASE);
		h->store_end = 0;
	}
}

void sfs_history_destroy(struct sfs_history *h, struct sfs_store *s)
{
	while (h->snaps) {
		struct sfs_snap *next = h->snaps->next;

		snap_free(h, s, h->snaps);
		h->snaps = next;
	}
	drop_store_if_unused(h, s);
	pthread_cond_destroy(&h->idle);
	pthread_mutex_destroy(&h->mutex);
}

uint64_t sfs_history_version(struct sfs_history *h)
{
	uint64_t v;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	v = h->version;
	sfs_mutex_unlock(&h->mutex);
	return v;
}

bool sfs_history_busy(struct sfs_history *h)
{
	bool busy;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	busy = h->snaps || h->store_fd >= 0;
	sfs_mutex_unlock(&h->mutex);
	return busy;
}

bool sfs_history_has_snaps(struct sfs_history *h)
{
	bool snaps;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	snaps = h->snaps != NULL;
	sfs_mutex_unlock(&h->mutex);
	return snaps;
}

static void set_base(struct sfs_history *h, const struct stat *st)
{
	h->base_known = true;
	h->base_pending = false;
	h->base_mtime = st->st_mtim;
	h->base_ctime = st->st_ctim;
	h->base_size = (uint64_t)st->st_size;
}

/*
 * With the mutex held, after a change of the data with no snapshot live:
 * leave the base unknown instead of an fstat per write (one syscall of
 * the four a 4 KiB WRITE costs the daemon; doc/performance.md). Nothing
 * needs it before the next snapshot: out-of-band detection only guards
 * live snapshots (mark_oob and check_oob look only while there are some),
 * and the next open reads the file under this mutex anyway
 * (check_oob_locked then records it). What that skips is telling this
 * change from a later one outside; both made content no snapshot and no
 * READ node has seen, because this change has just made a new version
 * and READ nodes come only from snapshots, whose open sets the base first.
 * So the rebase before the first snapshot must not count it as one more
 * version either: the kernel was told the attributes at this version by
 * its lookup, and a new one would send that open back to look up again.
 */
static void defer_base(struct sfs_history *h)
{
	h->base_known = false;
	h->base_pending = true;
}

/* With the mutex held: the file's attributes now are unknown, so the
 * next rebase counts whatever it finds as a new version. */
static void forget_base(struct sfs_history *h)
{
	h->base_known = false;
	h->base_pending = false;
}

static bool matches_base(const struct sfs_history *h, const struct stat *st)
{
	return h->base_mtime.tv_sec == st->st_mtim.tv_sec &&
	       h->base_mtime.tv_nsec == st->st_mtim.tv_nsec &&
	       h->base_size == (uint64_t)st->st_size;
}

/*
 * With the mutex held: st changed from outside, whatever the base says.
 * A snapshot whose open saw this very ctime was opened after the change
 * (a change sets ctime anew, past any ctime read before it): its live
 * ranges already are the changed file, so it keeps them. That is the
 * late fanotify event for a change made before the open.
 */
static bool mark_oob_locked(struct sfs_history *h, const struct stat *st,
			    bool exact)
{
	bool hurt = false;

	for (struct sfs_snap *p = h->snaps; p; p = p->next) {
		if (!exact && p->ctime.tv_sec == st->st_ctim.tv_sec &&
		    p->ctime.tv_nsec == st->st_ctim.tv_nsec)
			continue;
		/* A clone never reads the live file: nothing lost. */
		hurt |= !p->oob && !p->invalid && !p->cloned;
		p->oob = true;
	}
	h->oob_seen++;
	sfs_stat_add(SFS_STAT_OOB_CHANGES, 1);
	if (hurt)
		sfs_stat_add(SFS_STAT_OOB_UNPRESERVED, 1);
	set_base(h, st);
	/* Content we never saw is a new version for later opens. */
	h->version++;
	return hurt;
}

/* With the mutex held. */
static bool check_oob_locked(struct sfs_history *h, const struct stat *st)
{
	if (h->changing || !detect_oob)
		return false;	/* our own change runs: cannot tell */
	if (!h->base_known) {
		set_base(h, st);
		return false;
	}
	if (matches_base(h, st))
		return false;
	mark_oob_locked(h, st, false);
	return true;
}

/*
 * Events come late: one may describe a change made before the base was
 * taken (e.g. the file written in SRC, then a snapshot opened, then the
 * event read). ctime tells: every change sets it to now and nobody can set
 * it back (utimensat cannot), so an unchanged ctime since the base means
 * nothing happened since. A changed one, even with mtime and size as they
 * were, is a change we did not make.
 */
bool sfs_history_mark_oob(struct sfs_history *h, int fd, bool exact)
{
	struct stat st;
	bool marked = false;

	if (!detect_oob)
		return false;
	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	if (h->snaps && fstat(fd, &st) == 0 &&
	    !(h->base_known && st.st_ctim.tv_sec == h->base_ctime.tv_sec &&
	      st.st_ctim.tv_nsec == h->base_ctime.tv_nsec)) {
		marked = mark_oob_locked(h, &st, exact);
	}
	sfs_mutex_unlock(&h->mutex);
	return marked;
}

void sfs_history_meta_changed(struct sfs_history *h, int fd)
{
	struct stat st;

	if (fstat(fd, &st))
		return;
	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	h->meta_ctime = st.st_ctim;
	sfs_mutex_unlock(&h->mutex);
}

bool sfs_snap_times_frozen(struct sfs_history *h, const struct sfs_snap *snap,
			   uint64_t node_version, const struct stat *live)
{
	bool frozen;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	frozen = node_version != h->version ||
		 (!sfs_time_equal(live->st_ctim, snap->ctime) &&
		  !sfs_time_equal(live->st_ctim, h->meta_ctime));
	sfs_mutex_unlock(&h->mutex);
	return frozen;
}

void sfs_history_bump(struct sfs_history *h)
{
	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	h->version++;
	sfs_mutex_unlock(&h->mutex);
}

void sfs_history_rebase(struct sfs_history *h, int fd)
{
	struct stat st;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	if (!h->changing && fstat(fd, &st) == 0) {
		/* Changed since the old base, or unknown: content we never
		 * saw is a new version (a snapshot node of the old one keeps
		 * the old pages in its cache). */
		if (!h->base_pending &&
		    (!h->base_known || !matches_base(h, &st) ||
		     h->base_ctime.tv_sec != st.st_ctim.tv_sec ||
		     h->base_ctime.tv_nsec != st.st_ctim.tv_nsec))
			h->version++;
		set_base(h, &st);
	}
	sfs_mutex_unlock(&h->mutex);
}

bool sfs_history_check_oob(struct sfs_history *h, int fd)
{
	struct stat st;
	bool found = false;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	if (!h->changing && fstat(fd, &st) == 0)
		found = check_oob_locked(h, &st);
	sfs_mutex_unlock(&h->mutex);
	return found;
}

/*
 * With the mutex held: make a new snapshot a clone of the whole file (fd
 * readable) in the store, so it never reads the live file again: immune to
 * every writer, also those the daemon never hears of (fds that predate the
 * mount, shared mappings). One FICLONERANGE: atomic against writers of the
 * file, cost per extent, not per byte. Anything amiss (no clones here, the
 * cap, the file changed while we cloned) leaves the snapshot lazy, as
 * before: preserved range by range when changed through the mount.
 */
static void clone_snap(struct sfs_history *h, struct sfs_store *s, int fd,
		       struct sfs_snap *snap)
{
	uint64_t off = (h->store_end + SFS_STORE_ALIGN - 1) &
		       ~(uint64_t)(SFS_STORE_ALIGN - 1);
	struct sfs_extent e = { 0, snap->size, NULL, 0 };
	struct stat after;

	if (!snap->size)
		return;
	if (h->store_fd < 0) {
		int sfd = sfs_store_file(s);

		if (sfd < 0)
			return;
		__atomic_store_n(&h->store_fd, sfd, __ATOMIC_RELEASE);
	}
	if (sfs_store_clone(s, fd, h->store_fd, off, snap->size))
		return;
	e.chunk = calloc(1, sizeof(*e.chunk));
	if (!e.chunk || fstat(fd, &after) == -1 ||
	    after.st_ctim.tv_sec != snap->ctime.tv_sec ||
	    after.st_ctim.tv_nsec != snap->ctime.tv_nsec) {
		sfs_store_release(s, h->store_fd, off, snap->size);
		free(e.chunk);
		return;
	}
	e.chunk->store_off = off;
	e.chunk->len = snap->size;
	e.chunk->refs = 1;
	g_array_append_val(snap->extents, e);
	h->store_end = off + snap->size;
	snap->cloned = true;
}

struct sfs_snap *sfs_history_open(struct sfs_history *h, int fd)
{
	return sfs_history_open_in(h, NULL, fd);
}

static struct sfs_snap *open_in(struct sfs_history *h, struct sfs_store *s,
			       int fd, bool wait, bool for_views)
{
	struct sfs_snap *snap;
	struct stat stbuf, *st = &stbuf;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	while (h->changing && wait)
		pthread_cond_wait(&h->idle, &h->mutex);
	if (h->changing) {
		sfs_mutex_unlock(&h->mutex);
		errno = EBUSY;
		return NULL;
	}
	if (fstat(fd, st) == -1) {
		sfs_mutex_unlock(&h->mutex);
		return NULL;
	}
	check_oob_locked(h, st);
	snap = h->snaps;
	if (snap && snap->version == h->version && !snap->invalid && !snap->oob &&
	    snap->size == (uint64_t)st->st_size && snap->for_views == for_views) {
		snap->refs++;
		sfs_mutex_unlock(&h->mutex);
		return snap;
	}
	snap = calloc(1, sizeof(*snap));
	if (snap) {
		snap->version = h->version;
		snap->size = (uint64_t)st->st_size;
		snap->mtime = st->st_mtim;
		snap->ctime = st->st_ctim;
		snap->refs = 1;
		snap->extents = g_array_new(FALSE, FALSE, sizeof(struct sfs_extent));
		snap->next = h->snaps;
		snap->owner = h;
		snap->instant = sfs_history_instant();
		snap->for_views = for_views;
		h->snaps = snap;
		all_add(snap);
		sfs_stat_add(SFS_STAT_SNAPSHOTS_LIVE, 1);
		if (sfs_store_clones(s))
			clone_snap(h, s, fd, snap);
	}
	sfs_mutex_unlock(&h->mutex);
	return snap;
}

struct sfs_snap *sfs_history_open_in(struct sfs_history *h,
				     struct sfs_store *s, int fd)
{
	return open_in(h, s, fd, true, false);
}

struct sfs_snap *sfs_history_open_for_views(struct sfs_history *h,
					    struct sfs_store *s, int fd,
					    bool wait)
{
	return open_in(h, s, fd, wait, true);
}

void sfs_history_close(struct sfs_history *h, struct sfs_store *s,
		       struct sfs_snap *snap)
{
	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	if (--snap->refs == 0) {
		for (struct sfs_snap **pp = &h->snaps; *pp; pp = &(*pp)->next) {
			if (*pp == snap) {
				*pp = snap->next;
				break;
			}
		}
		snap_free(h, s, snap);
		drop_store_if_unused(h, s);
	}
	sfs_mutex_unlock(&h->mutex);
}

void sfs_snap_ref(struct sfs_history *h, struct sfs_snap *snap)
{
	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	snap->refs++;
	sfs_mutex_unlock(&h->mutex);
}

void sfs_snap_invalidate(struct sfs_history *h, struct sfs_snap *snap,
			 const char *why)
{
	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	if (!snap->invalid) {
		snap->invalid = why;
		sfs_stat_add(SFS_STAT_INVALIDATED_OTHER, 1);
	}
	sfs_mutex_unlock(&h->mutex);
}

uint64_t sfs_snap_preserved_bytes(struct sfs_history *h,
				  struct sfs_snap *snap)
{
	uint64_t n = 0;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	for (guint i = 0; i < snap->extents->len; i++) {
		struct sfs_extent *e = &g_array_index(snap->extents,
						      struct sfs_extent, i);

		if (e->chunk)
			n += e->end - e->start;
	}
	sfs_mutex_unlock(&h->mutex);
	return n;
}

bool sfs_snap_unreadable(struct sfs_history *h, struct sfs_snap *snap)
{
	bool r;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	r = snap->invalid != NULL;
	sfs_mutex_unlock(&h->mutex);
	return r;
}

/* ------------------------------------------------------------------ */
/* Gaps: the parts of a range a snapshot does not have preserved yet.  */
/* ------------------------------------------------------------------ */

/* Index of the first extent ending after off. */
static guint first_extent_after(GArray *ex, uint64_t off)
{
	guint lo = 0, hi = ex->len;

	while (lo < hi) {
		guint mid = (lo + hi) / 2;

		if (g_array_index(ex, struct sfs_extent, mid).end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct range {
	uint64_t start, end;
};

/* Append to gaps the parts of [off, end) that snap's extents do not cover. */
static void add_gaps(const struct sfs_snap *snap, uint64_t off, uint64_t end,
		     GArray *gaps)
{
	guint i = first_extent_after(snap->extents, off);

	while (off < end) {
		const struct sfs_extent *e = i < snap->extents->len ?
			&g_array_index(snap->extents, struct sfs_extent, i) : NULL;
		uint64_t gap_end = e ? MIN(e->start, end) : end;

		if (gap_end > off) {
			struct range r = { off, gap_end };

			g_array_append_val(gaps, r);
		}
		if (!e || e->start >= end)
			break;
		off = e->end;
		i++;
	}
}

static gint range_cmp(gconstpointer a, gconstpointer b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Sort and merge overlapping or touching ranges in place. */
static void merge_ranges(GArray *r)
{
	guint out = 0;

	g_array_sort(r, range_cmp);
	for (guint i = 0; i < r->len; i++) {
		struct range *cur = &g_array_index(r, struct range, i);
		struct range *last = out ? &g_array_index(r, struct range, out - 1) : NULL;

		if (last && cur->start <= last->end) {
			if (cur->end > last->end)
				last->end = cur->end;
		} else {
			g_array_index(r, struct range, out++) = *cur;
		}
	}
	g_array_set_size(r, out);
}

/* ------------------------------------------------------------------ */
/* Preserving                                                          */
/* ------------------------------------------------------------------ */

/* What one preservation produced: [start, end) held by chunk (NULL: hole). */
struct piece {
	uint64_t start, end;
	struct sfs_chunk *chunk;
};

/*
 * Copy [start, end) of live (data, no hole inside) into a new chunk, widened
 * to whole blocks where the file has them (so XFS/btrfs can share extents
 * rather than copy). *base is the file offset the chunk starts at.
 */
static int preserve_data(struct sfs_history *h, struct sfs_store *s, int live,
			 uint64_t live_size, uint64_t start, uint64_t end,
			 struct sfs_chunk **out, uint64_t *base)
{
	uint64_t from = start & ~(uint64_t)(SFS_STORE_ALIGN - 1);
	uint64_t to = (end + SFS_STORE_ALIGN - 1) & ~(uint64_t)(SFS_STORE_ALIGN - 1);
	struct sfs_chunk *c;
	int err;

	if (to > live_size)
		to = MAX(live_size, end);
	if (h->store_fd < 0) {
		int fd = sfs_store_file(s);

		if (fd < 0)
			return errno;
		/* Atomic: readers of store segments load it without the mutex. */
		__atomic_store_n(&h->store_fd, fd, __ATOMIC_RELEASE);
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return ENOMEM;
	/* Same offset modulo the block size as the source: reflinkable. */
	c->store_off = (h->store_end + SFS_STORE_ALIGN - 1) &
		       ~(uint64_t)(SFS_STORE_ALIGN - 1);
	c->len = to - from;
	err = sfs_store_copy(s, live, from, h->store_fd, c->store_off, c->len);
	if (err == EDQUOT && reclaim_oldest(h, s, c->len))
		err = sfs_store_copy(s, live, from, h->store_fd, c->store_off, c->len);
	if (err) {
		free(c);
		return err;
	}
	h->store_end = c->store_off + c->len;
	*out = c;
	*base = from;
	return 0;
}

/* A chunk made by this preservation, and the file offset it starts at. */
struct chunk_base {
	struct sfs_chunk *chunk;
	uint64_t base;			/* file offset of chunk->store_off */
};

/*
 * Split a range of the live file into data and holes (SEEK_DATA and
 * SEEK_HOLE) and preserve the data parts: holes stay holes in snapshots.
 */
static int preserve_range(struct sfs_history *h, struct sfs_store *s, int live,
			  uint64_t live_size, struct range r, GArray *pieces,
			  GArray *bases)
{
	uint64_t off = r.start;

	while (off < r.end) {
		off_t data = lseek(live, (off_t)off, SEEK_DATA);
		uint64_t data_start = data < 0 ? r.end : (uint64_t)data;
		struct piece p;

		if (data_start > r.end)
			data_start = r.end;
		if (data_start > off) {		/* a hole first */
			p = (struct piece){ off, data_start, NULL };
			g_array_append_val(pieces, p);
			off = data_start;
			continue;
		}
		off_t hole = lseek(live, (off_t)off, SEEK_HOLE);
		uint64_t data_end = hole < 0 ? r.end : (uint64_t)hole;
		struct chunk_base cb;
		int err;

		if (data_end > r.end || data_end <= off)
			data_end = r.end;
		err = preserve_data(h, s, live, live_size, off, data_end,
				    &cb.chunk, &cb.base);
		if (err)
			return err;
		g_array_append_val(bases, cb);
		/*
		 * The chunk holds whole blocks: where they reach beyond the
		 * range (not into one of its holes), those bytes are the live
		 * file's too and may serve snapshots that still read them
		 * live, so a later out-of-band change spares them.
		 */
		p = (struct piece){
			off == r.start ? cb.base : off,
			data_end == r.end ? cb.base + cb.chunk->len : data_end,
			cb.chunk,
		};
		g_array_append_val(pieces, p);
		off = data_end;
	}
	return 0;
}

static uint64_t base_of(GArray *bases, const struct sfs_chunk *c)
{
	for (guint i = 0; i < bases->len; i++)
		if (g_array_index(bases, struct chunk_base, i).chunk == c)
			return g_array_index(bases, struct chunk_base, i).base;
	return 0;
}

static gint extent_cmp(gconstpointer a, gconstpointer b)
{
	const struct sfs_extent *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * Merge fresh (sorted; disjoint from ex, as it fills ex's gaps) into ex
 * (sorted), in place from the back. Not g_array_sort() of the whole map:
 * that mallocs a temporary copy of it on every change, which glibc then
 * keeps resident in each writer thread's arena — measured as ~320 bytes of
 * daemon RSS per preserved extent with 10 workers, and O(n log n) per
 * write. Appending past the last extent (the common case) moves nothing.
 */
static void merge_extents(GArray *ex, const GArray *fresh)
{
	guint i = ex->len, j = fresh->len, out = ex->len + fresh->len;

	g_array_set_size(ex, out);
	while (j > 0) {
		const struct sfs_extent *f =
			&g_array_index(fresh, struct sfs_extent, j - 1);
		struct sfs_extent *old = i ? &g_array_index(ex, struct sfs_extent, i - 1) : NULL;

		if (old && old->start > f->start) {
			g_array_index(ex, struct sfs_extent, --out) = *old;
			i--;
		} else {
			g_array_index(ex, struct sfs_extent, --out) = *f;
			j--;
		}
	}
}

/*
 * Holes that meet make one extent: a hole filled in order under a snapshot
 * would otherwise cost an extent per write, unbounded by max_preserve
 * (holes take no store bytes). Fresh holes (sorted, filling gaps of ex)
 * that meet each other, or a hole of ex before or after them, are folded
 * into it; what is left of fresh is merged as usual.
 */
static bool is_hole_ending_at(const struct sfs_extent *e, uint64_t off)
{
	return !e->chunk && e->end == off;
}

static void absorb_holes(GArray *ex, GArray *fresh)
{
	guint out = 0;

	for (guint k = 0; k < fresh->len; k++) {
		struct sfs_extent f = g_array_index(fresh, struct sfs_extent, k);
		struct sfs_extent *prev = out ?
			&g_array_index(fresh, struct sfs_extent, out - 1) : NULL;
		guint at;

		if (f.chunk) {
			g_array_index(fresh, struct sfs_extent, out++) = f;
			continue;
		}
		if (prev && is_hole_ending_at(prev, f.start)) {
			prev->end = f.end;
			continue;
		}
		/* ex's extent before the gap f fills, and the one after it. */
		at = first_extent_after(ex, f.start);
		if (at > 0 && is_hole_ending_at(&g_array_index(ex, struct sfs_extent,
							       at - 1), f.start)) {
			struct sfs_extent *before = &g_array_index(ex, struct sfs_extent,
								   at - 1);

			before->end = f.end;
			if (at < ex->len && !g_array_index(ex, struct sfs_extent, at).chunk &&
			    g_array_index(ex, struct sfs_extent, at).start == f.end) {
				before->end = g_array_index(ex, struct sfs_extent, at).end;
				g_array_remove_index(ex, at);
			}
			continue;
		}
		if (at < ex->len && !g_array_index(ex, struct sfs_extent, at).chunk &&
		    g_array_index(ex, struct sfs_extent, at).start == f.end) {
			g_array_index(ex, struct sfs_extent, at).start = f.start;
			continue;
		}
		g_array_index(fresh, struct sfs_extent, out++) = f;
	}
	g_array_set_size(fresh, out);
}

/* Give snap extents for its gaps from the preserved pieces. */
static void attach_pieces(struct sfs_snap *snap, GArray *gaps, GArray *pieces,
			  GArray *bases)
{
	GArray *fresh = g_array_new(FALSE, FALSE, sizeof(struct sfs_extent));

	for (guint g = 0; g < gaps->len; g++) {
		struct range gap = g_array_index(gaps, struct range, g);
		uint64_t done = gap.start;	/* widened pieces may overlap */

		for (guint i = 0; i < pieces->len; i++) {
			struct piece *p = &g_array_index(pieces, struct piece, i);
			uint64_t a = MAX(done, p->start);
			uint64_t b = MIN(gap.end, p->end);
			struct sfs_extent e;

			if (a >= b)
				continue;
			done = b;
			e.start = a;
			e.end = b;
			e.chunk = p->chunk;
			e.chunk_off = p->chunk ? a - base_of(bases, p->chunk) : 0;
			if (p->chunk)
				p->chunk->refs++;
			g_array_append_val(fresh, e);
		}
	}
	/* Small (this change only), and nearly always sorted already. */
	g_array_sort(fresh, extent_cmp);
	absorb_holes(snap->extents, fresh);
	merge_extents(snap->extents, fresh);
	g_array_free(fresh, TRUE);
}

/* The span the pieces cover (empty if none). */
static struct range pieces_window(GArray *pieces)
{
	struct range w = { UINT64_MAX, 0 };

	for (guint i = 0; i < pieces->len; i++) {
		struct piece *p = &g_array_index(pieces, struct piece, i);

		if (p->start < w.start)
			w.start = p->start;
		if (p->end > w.end)
			w.end = p->end;
	}
	return w;
}

/* Chunks nobody took (every snapshot that needed them was invalidated). */
static void drop_unused_chunks(struct sfs_history *h, struct sfs_store *s,
			       GArray *bases)
{
	for (guint i = 0; i < bases->len; i++) {
		struct sfs_chunk *c = g_array_index(bases, struct chunk_base, i).chunk;

		if (c->refs == 0) {
			c->refs = 1;
			chunk_put(h, s, c);
		}
	}
}

/*
 * Extents one snapshot may hold: each costs the daemon about 66 bytes, and
 * holes cost no store bytes, so max_preserve does not bound them (a file
 * with holes scattered by writes under a snapshot). Past it the snapshot
 * is invalidated, as past max_preserve: about 66 MiB per snapshot.
 */
static unsigned max_extents = 1u << 20;

void sfs_history_set_max_extents(unsigned n)
{
	max_extents = n;
}

/* With the mutex held: p grew past max_extents. */
static void too_many_extents(struct sfs_history *h, struct sfs_store *s,
			     struct sfs_snap *p)
{
	if (p->readers)
		return;		/* its store pages may sit in a pipe: next time */
	p->invalid = "too many changed ranges to keep (memory)";
	sfs_stat_add(SFS_STAT_INVALIDATED_CAP, 1);
	snap_release_extents(h, s, p);
}

/*
 * With the mutex held and snapshots to serve: preserve what the live
 * snapshots still need of [off, end) from the live file (live_fd(arg)).
 * Returns the bytes of the ranges newly preserved (holes included).
 */
static uint64_t preserve_locked(struct sfs_history *h, struct sfs_store *s,
				int (*live_fd)(void *arg), void *arg,
				uint64_t off, uint64_t end)
{
	GArray *all, *pieces, *bases;
	uint64_t preserved = 0;
	struct range win;
	struct stat st;
	int fd, err = 0;

	fd = live_fd(arg);
	if (fd >= 0 && fstat(fd, &st) == 0)
		check_oob_locked(h, &st);
	else
		err = errno;	/* of live_fd() or fstat() */
	all = g_array_new(FALSE, FALSE, sizeof(struct range));
	pieces = g_array_new(FALSE, FALSE, sizeof(struct piece));
	bases = g_array_new(FALSE, FALSE, sizeof(struct chunk_base));
	for (struct sfs_snap *p = h->snaps; p; p = p->next) {
		uint64_t e = MIN(end, p->size);

		if (!p->invalid && !p->oob && off < e)
			add_gaps(p, off, e, all);
	}
	merge_ranges(all);
	for (guint i = 0; i < all->len && !err; i++) {
		struct range r = g_array_index(all, struct range, i);

		err = preserve_range(h, s, fd, (uint64_t)st.st_size, r, pieces,
				     bases);
		preserved += err ? 0 : r.end - r.start;
	}
	win = pieces_window(pieces);
	for (struct sfs_snap *p = h->snaps; p; p = p->next) {
		uint64_t e = MIN(end, p->size);
		GArray *gaps;

		if (p->invalid || p->oob || off >= e)
			continue;
		if (err == EDQUOT && p->for_views && views_give_up(h, s, p))
			continue;
		if (err) {
			p->invalid = err == ENOSPC ? "store full (ENOSPC)" :
				     err == EDQUOT ? "max_preserve reached" :
				     "preserving failed";
			sfs_stat_add(err == ENOSPC ? SFS_STAT_INVALIDATED_ENOSPC :
				     err == EDQUOT ? SFS_STAT_INVALIDATED_CAP :
				     SFS_STAT_INVALIDATED_OTHER, 1);
			continue;
		}
		gaps = g_array_new(FALSE, FALSE, sizeof(struct range));
		add_gaps(p, MIN(win.start, off),
			 win.end > e ? MIN(win.end, p->size) : e,
			 gaps);
		attach_pieces(p, gaps, pieces, bases);
		g_array_free(gaps, TRUE);
	}
	drop_unused_chunks(h, s, bases);
	/* After: releasing extents may free this change's chunks. */
	for (struct sfs_snap *p = h->snaps; p; p = p->next)
		if (!p->invalid && p->extents->len > max_extents)
			too_many_extents(h, s, p);
	g_array_free(all, TRUE);
	g_array_free(pieces, TRUE);
	g_array_free(bases, TRUE);
	return err ? 0 : preserved;
}

void sfs_history_before_change(struct sfs_history *h, struct sfs_store *s,
			       int (*live_fd)(void *arg), void *arg,
			       uint64_t off, uint64_t end)
{
	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	/* The out-of-band check runs before the change is counted: once it
	 * is, a new mtime is ours and tells nothing. */
	if (h->snaps && off < end)
		preserve_locked(h, s, live_fd, arg, off, end);
	h->changing++;
	sfs_mutex_unlock(&h->mutex);
}

uint64_t sfs_history_preserve_ahead(struct sfs_history *h,
				    struct sfs_store *s,
				    int (*live_fd)(void *arg), void *arg,
				    uint64_t off, uint64_t end)
{
	uint64_t preserved = 0;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	if (h->snaps && off < end)
		preserved = preserve_locked(h, s, live_fd, arg, off, end);
	sfs_mutex_unlock(&h->mutex);
	return preserved;
}

void sfs_history_after_change(struct sfs_history *h, int fd, bool data_changed)
{
	struct stat st;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	if (data_changed)
		h->version++;
	if (h->changing)
		h->changing--;
	/* The base is only exact when no other change of ours is running. */
	if (h->changing == 0) {
		if (data_changed && !h->snaps)
			defer_base(h);
		else if (fd >= 0 && fstat(fd, &st) == 0)
			set_base(h, &st);
		else
			forget_base(h);
		pthread_cond_broadcast(&h->idle);
	}
	sfs_mutex_unlock(&h->mutex);
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

static void add_segment(GArray *segs, enum sfs_seg_kind kind, uint64_t off,
			uint64_t len, uint64_t src_off)
{
	struct sfs_segment seg = { kind, off, len, src_off };

	if (len)
		g_array_append_val(segs, seg);
}

int sfs_snap_plan(struct sfs_history *h, struct sfs_snap *snap, uint64_t off,
		  uint64_t len, GArray *segs, const char **why)
{
	uint64_t end;
	guint i;
	int err = 0;

	g_array_set_size(segs, 0);
	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	if (snap->invalid) {
		*why = snap->invalid;
		err = EIO;
		goto out;
	}
	end = off + len < off || off + len > snap->size ? snap->size : off + len;
	i = first_extent_after(snap->extents, off);
	while (off < end) {
		const struct sfs_extent *e = i < snap->extents->len ?
			&g_array_index(snap->extents, struct sfs_extent, i) : NULL;
		uint64_t live_end = e ? MIN(e->start, end) : end;

		if (live_end > off) {
			if (snap->oob) {
				*why = "the file was changed outside the mount";
				err = EIO;
				break;
			}
			add_segment(segs, SFS_SEG_LIVE, off, live_end - off, 0);
			off = live_end;
			continue;
		}
		uint64_t seg_end = MIN(e->end, end);

		if (e->chunk)
			add_segment(segs, SFS_SEG_STORE, off, seg_end - off,
				    e->chunk->store_off + e->chunk_off + (off - e->start));
		else
			add_segment(segs, SFS_SEG_ZERO, off, seg_end - off, 0);
		off = seg_end;
		i++;
	}
out:
	if (!err)
		snap->readers++;
	sfs_mutex_unlock(&h->mutex);
	return err;
}

void sfs_snap_plan_done(struct sfs_history *h, struct sfs_snap *snap)
{
	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	snap->readers--;
	sfs_mutex_unlock(&h->mutex);
}

void sfs_history_before_meta_change(struct sfs_history *h)
{
	sfs_history_before_change(h, NULL, NULL, NULL, 0, 0);
}

void sfs_history_changed(struct sfs_history *h)
{
	__atomic_add_fetch(&h->changes, 1, __ATOMIC_ACQ_REL);
}

uint64_t sfs_history_changes(struct sfs_history *h)
{
	return __atomic_load_n(&h->changes, __ATOMIC_ACQUIRE);
}

uint64_t sfs_snap_size(const struct sfs_snap *snap)
{
	return snap->size;
}

uint64_t sfs_snap_version(const struct sfs_snap *snap)
{
	return snap->version;
}

int sfs_history_store_fd(struct sfs_history *h)
{
	return __atomic_load_n(&h->store_fd, __ATOMIC_ACQUIRE);
}

bool sfs_history_digest_lookup(struct sfs_history *h, struct sfs_snap *snap,
			       uint64_t changes, struct timespec ctime,
			       unsigned char d[16])
{
	bool hit = false;

	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	if (snap->have_digest && sfs_time_equal(snap->digest_ctime, ctime)) {
		memcpy(d, snap->digest, 16);
		hit = true;
	} else if (h->have_digest && !snap->oob &&
		   h->digest_version == snap->version &&
		   h->digest_changes == changes &&
		   sfs_time_equal(h->digest_ctime, ctime)) {
		memcpy(d, h->digest, 16);
		hit = true;
	}
	sfs_mutex_unlock(&h->mutex);
	return hit;
}

void sfs_history_digest_save(struct sfs_history *h, struct sfs_snap *snap,
			     uint64_t changes, struct timespec ctime,
			     const unsigned char d[16])
{
	sfs_mutex_lock(&h->mutex, SFS_RANK_HISTORY);
	memcpy(snap->digest, d, 16);
	snap->digest_ctime = ctime;
	snap->have_digest = true;
	memcpy(h->digest, d, 16);
	h->digest_version = snap->version;
	h->digest_changes = changes;
	h->digest_ctime = ctime;
	h->have_digest = true;
	sfs_mutex_unlock(&h->mutex);
}
