/*
 * Point-in-time views of the whole tree (G7): the engine's bookkeeping.
 *
 * A view is an instant, numbered by a mount-wide epoch: view k is the k-th
 * view taken. Nothing is copied when a view is taken. Instead, the first
 * change through MNT of an object (a file's bytes and attributes, a
 * directory's entries, ...) after a view was taken first captures the
 * object as it was: one capture serves every view taken since the
 * object's previous capture, since they all saw the same state. A view
 * looking at an object uses the oldest capture made after it was taken;
 * if there is none, the object has not changed through MNT since, and the
 * view reads the live object.
 *
 * What a capture holds is the caller's (fs/views.c): here it is an opaque
 * payload, freed by the callback given at creation once no view that
 * could use it remains. Objects are named by (dev, ino).
 *
 * Locking: one mutex, rank VIEWS in lock_order.h: taken under a history's
 * mutex by max_preserve's reclaim, so callbacks run under it take
 * histories' mutexes with trylock only (payloads are freed after it is
 * dropped).
 * Callers keep the epoch still while they capture and change an object
 * (fs/views.c's gate): sfs_views_create() only runs with no change under
 * way.
 */
#ifndef SFS_VIEWS_H
#define SFS_VIEWS_H

#include <stdbool.h>
#include <stddef.h>
#include <glib.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct sfs_views;
struct sfs_view;

/* Frees a capture's payload (ctx: as given to sfs_views_new). */
typedef void (*sfs_capture_free_fn)(void *payload, void *ctx);

struct sfs_views *sfs_views_new(sfs_capture_free_fn free_payload, void *ctx);
/* Frees every view and capture: no view may be in use any more. */
void sfs_views_free(struct sfs_views *v);

/* Is name a valid view name (1..SFS_VIEW_NAME_MAX bytes, no '/', not "."
 * or "..")? */
bool sfs_view_name_ok(const char *name);

/*
 * Take a view named name now. created: the wall-clock time it is taken;
 * horizon: a time stamp of SRC's filesystem such that any object whose
 * ctime is later changed after the view (fs/views.c). 0, or EINVAL (a bad
 * name), EEXIST, ENOSPC (SFS_VIEWS_MAX views live).
 */
int sfs_views_create(struct sfs_views *v, const char *name,
		     const struct timespec *created,
		     const struct timespec *horizon);

/* Set the horizon of the live view name (taking it ends with this). */
void sfs_views_set_horizon(struct sfs_views *v, const char *name,
			   const struct timespec *horizon);

/*
 * Delete a view: it is no longer found by name; its captures go once the
 * last reference to it is put. 0 or ENOENT.
 */
int sfs_views_delete(struct sfs_views *v, const char *name);

/*
 * References. A reference keeps a view's captures (open files and
 * directories of the view take one, and the registry while the view is
 * not deleted); when the last goes, the view is detached: its captures
 * only it used are freed, and it can no longer be used. A hold keeps only
 * the struct (the kernel's cached nodes of the view, which must not keep
 * its bytes after a delete): try_ref then tells whether it is still
 * usable.
 */
/* A live view by name, with a reference (sfs_view_put), or NULL. */
struct sfs_view *sfs_views_get(struct sfs_views *v, const char *name);
void sfs_view_ref(struct sfs_views *v, struct sfs_view *view);
/* A reference if view is not detached: true, else false. */
bool sfs_view_try_ref(struct sfs_views *v, struct sfs_view *view);
void sfs_view_put(struct sfs_views *v, struct sfs_view *view);
void sfs_view_hold(struct sfs_views *v, struct sfs_view *view);
void sfs_view_release(struct sfs_views *v, struct sfs_view *view);

const char *sfs_view_name(const struct sfs_view *view);
uint64_t sfs_view_epoch(const struct sfs_view *view);
struct timespec sfs_view_created(const struct sfs_view *view);
struct timespec sfs_view_horizon(const struct sfs_view *view);
/* The instant (sfs_history_instant) it was taken: max_preserve's order. */
uint64_t sfs_view_instant(const struct sfs_view *view);
/* Why every object of view answers EIO, or NULL while it is valid. */
const char *sfs_view_invalid(struct sfs_views *v, const struct sfs_view *view);
/* Captures this view uses (made for it or for it and others). */
uint64_t sfs_view_captures(struct sfs_views *v, const struct sfs_view *view);

/* Number of views that can still be found by name. */
size_t sfs_views_count(struct sfs_views *v);
/* Is any view alive or still in use (deleted, not yet put)? Lock-free. */
bool sfs_views_any(struct sfs_views *v);

/*
 * Does (dev, ino) need capturing before it changes: is a view alive (or
 * deleted but still in use) that was taken after the object's last
 * capture? Cheap when there is none.
 */
bool sfs_views_need_capture(struct sfs_views *v, dev_t dev, ino_t ino);

/*
 * Record payload as the capture of (dev, ino) for the views taken since
 * its last capture. false if it needs none (any more: another change
 * captured it first): the caller frees payload. A NULL payload records
 * that the object did not exist for those views (it was just created):
 * it will need no capture until the next view.
 */
bool sfs_views_add_capture(struct sfs_views *v, dev_t dev, ino_t ino,
			   void *payload);

/*
 * The capture view must use for (dev, ino): true with *payload set (NULL:
 * the object did not exist at the view's instant), or false: unchanged
 * through MNT since the view was taken. The payload stays valid while the
 * caller holds view.
 */
bool sfs_views_capture_for(struct sfs_views *v, const struct sfs_view *view,
			   dev_t dev, ino_t ino, void **payload);

/*
 * The views that can be found by name, oldest first, each with a
 * reference: *out is an array of n (g_free it after putting each).
 */
size_t sfs_views_list(struct sfs_views *v, struct sfs_view ***out);

/*
 * Call fn for each payload view uses, under the mutex: fn must not call
 * back into v.
 */
void sfs_view_foreach_capture(struct sfs_views *v, const struct sfs_view *view,
			      void (*fn)(void *payload, void *arg), void *arg);

/* Call fn for each payload of (dev, ino), under the mutex (as above). */
void sfs_views_foreach_capture_of(struct sfs_views *v, dev_t dev, ino_t ino,
				  void (*fn)(void *payload, void *arg), void *arg);

/*
 * max_preserve (lib/history.c's reclaim, through fs/views.c): views are
 * invalidated whole, oldest first. holds(payload) tells whether a
 * capture's payload keeps store bytes; both run it under the lock, so it
 * must not call back into v nor wait for a lock (trylock only).
 *
 * sfs_views_oldest_holding: the instant of the oldest view, not invalid,
 * that uses a payload that holds; UINT64_MAX if none.
 *
 * sfs_views_invalidate_oldest: invalidate that view (why: for users) and
 * call drop(payload) for each of its captures that no view still valid
 * uses (those shared with a newer valid view stay). An invalid view needs
 * no capture any more; its captures are freed as before, with its last
 * reference. Returns it with a hold (sfs_view_release), or NULL if none.
 */
uint64_t sfs_views_oldest_holding(struct sfs_views *v,
				  bool (*holds)(void *payload, void *arg),
				  void *arg);
struct sfs_view *sfs_views_invalidate_oldest(struct sfs_views *v,
					     bool (*holds)(void *payload, void *arg),
					     void (*drop)(void *payload, void *arg),
					     void *arg, const char *why);

/*
 * max_preserve could not make room for a preservation some captures need
 * (uses(payload) is true of them) even so: rather than lose that one object,
 * the views they serve go whole, as above (drop, holds). Returns those
 * views, each with a hold (g_ptr_array_free after releasing them); empty if
 * none was valid.
 */
GPtrArray *sfs_views_invalidate_using(struct sfs_views *v,
				      bool (*uses)(void *payload, void *arg),
				      void (*drop)(void *payload, void *arg),
				      void *arg, const char *why);

/* Captures alive, views taken ever, captures made ever. */
struct sfs_views_stats {
	uint64_t views;
	uint64_t captures;
	uint64_t views_total;
	uint64_t captures_total;
};
void sfs_views_stats_get(struct sfs_views *v, struct sfs_views_stats *s);

#endif
