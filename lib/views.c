/*
 * Views and their captures (include/sfs/views.h). Views are kept in an
 * array by epoch, oldest first; deleted ones stay in it while referenced
 * (an open file of a deleted view still reads it). Each object changed
 * since some view has a list of captures, newest first, each serving the
 * views whose epoch lies in (from, epoch].
 */
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sfs/history.h"
#include "sfs/lock_order.h"
#include "sfs/options.h"
#include "sfs/view_ioctl.h"
#include "sfs/views.h"

struct sfs_view {
	char *name;
	uint64_t epoch;
	struct timespec created, horizon;
	/* What keeps its captures: the registry's own while not deleted,
	 * open files and directories of it. At zero it is detached. */
	unsigned refs;
	unsigned holds;			/* what keeps only the struct (nodes) */
	bool deleted;
	bool detached;			/* captures gone: unusable */
	uint64_t instant;		/* sfs_history_instant() when taken */
	const char *invalid;		/* non-NULL: every object answers EIO
					 * (why); it needs no captures any more */
};

struct capture {
	uint64_t from, epoch;		/* serves views with from < epoch <= epoch */
	void *payload;			/* NULL: the object did not exist */
	struct capture *older;
};

struct object {
	dev_t dev;
	ino_t ino;
	struct capture *newest;
};

struct sfs_views {
	pthread_mutex_t lock;
	GPtrArray *views;		/* struct sfs_view, by epoch */
	GHashTable *objects;		/* struct object, by (dev, ino) */
	uint64_t epoch;			/* of the newest view ever taken */
	size_t named;			/* views not deleted (atomic reads) */
	size_t present;			/* views in the array (atomic reads) */
	sfs_capture_free_fn free_payload;
	void *ctx;
	uint64_t captures, captures_total, views_total;
};

/*
 * The view counts change only under the lock and are read without it
 * (sfs_views_count, sfs_views_any): atomic stores of the new value. (An
 * atomic read-modify-write of the field also trips GCC 12's
 * -Wstringop-overflow under -fsanitize=address, a false positive.)
 */
static void count_set(size_t *count, size_t value)
{
	__atomic_store_n(count, value, __ATOMIC_RELEASE);
}

static guint object_hash(gconstpointer p)
{
	const struct object *o = p;

	return g_int64_hash(&(gint64){ (gint64)o->ino }) ^ (guint)o->dev;
}

static gboolean object_equal(gconstpointer a, gconstpointer b)
{
	const struct object *x = a, *y = b;

	return x->dev == y->dev && x->ino == y->ino;
}

struct sfs_views *sfs_views_new(sfs_capture_free_fn free_payload, void *ctx)
{
	struct sfs_views *v = g_new0(struct sfs_views, 1);

	pthread_mutex_init(&v->lock, NULL);
	v->views = g_ptr_array_new();
	v->objects = g_hash_table_new(object_hash, object_equal);
	v->free_payload = free_payload;
	v->ctx = ctx;
	return v;
}

static void view_free(struct sfs_view *view)
{
	g_free(view->name);
	g_free(view);
}

void sfs_views_free(struct sfs_views *v)
{
	GHashTableIter it;
	gpointer key;

	if (!v)
		return;
	g_hash_table_iter_init(&it, v->objects);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		struct object *o = key;

		while (o->newest) {
			struct capture *c = o->newest;

			o->newest = c->older;
			if (c->payload)
				v->free_payload(c->payload, v->ctx);
			g_free(c);
		}
		g_free(o);
	}
	g_hash_table_destroy(v->objects);
	for (guint i = 0; i < v->views->len; i++)
		view_free(g_ptr_array_index(v->views, i));
	g_ptr_array_free(v->views, TRUE);
	pthread_mutex_destroy(&v->lock);
	g_free(v);
}

bool sfs_view_name_ok(const char *name)
{
	/* One directory entry in MNT/<snapdir>: the rule users see too. */
	return !sfs_component_problem(name);
}

/* The view named name that is not deleted, or NULL. Under the lock. */
static struct sfs_view *find_named(struct sfs_views *v, const char *name)
{
	for (guint i = 0; i < v->views->len; i++) {
		struct sfs_view *view = g_ptr_array_index(v->views, i);

		if (!view->deleted && !strcmp(view->name, name))
			return view;
	}
	return NULL;
}

int sfs_views_create(struct sfs_views *v, const char *name,
		     const struct timespec *created,
		     const struct timespec *horizon)
{
	struct sfs_view *view;
	int err = 0;

	if (!sfs_view_name_ok(name))
		return EINVAL;
	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	if (find_named(v, name))
		err = EEXIST;
	else if (v->named >= SFS_VIEWS_MAX)
		err = ENOSPC;
	if (!err) {
		view = g_new0(struct sfs_view, 1);
		view->name = g_strdup(name);
		view->epoch = ++v->epoch;
		view->instant = sfs_history_instant();
		view->created = *created;
		view->horizon = *horizon;
		view->refs = 1;
		g_ptr_array_add(v->views, view);
		count_set(&v->named, v->named + 1);
		count_set(&v->present, v->present + 1);
		v->views_total++;
	}
	sfs_mutex_unlock(&v->lock);
	return err;
}

void sfs_views_set_horizon(struct sfs_views *v, const char *name,
			   const struct timespec *horizon)
{
	struct sfs_view *view;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	view = find_named(v, name);
	if (view)
		view->horizon = *horizon;
	sfs_mutex_unlock(&v->lock);
}

/* Is a view with from < epoch <= to still in the array? Under the lock. */
static bool view_between(struct sfs_views *v, uint64_t from, uint64_t to)
{
	for (guint i = 0; i < v->views->len; i++) {
		uint64_t e = ((struct sfs_view *)g_ptr_array_index(v->views, i))->epoch;

		if (e > from)
			return e <= to;
	}
	return false;
}

/*
 * Drop the captures no view can use any more; their payloads go on
 * *dead, to be freed after the lock. Under the lock.
 */
static void collect(struct sfs_views *v, GPtrArray *dead)
{
	GHashTableIter it;
	gpointer key;

	g_hash_table_iter_init(&it, v->objects);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		struct object *o = key;
		struct capture **p = &o->newest;

		while (*p) {
			struct capture *c = *p;

			if (view_between(v, c->from, c->epoch)) {
				p = &c->older;
				continue;
			}
			*p = c->older;
			if (c->payload) {
				g_ptr_array_add(dead, c->payload);
				v->captures--;
			}
			g_free(c);
		}
		if (!o->newest) {
			g_hash_table_iter_remove(&it);
			g_free(o);
		}
	}
}

/* Put a reference under the lock; the last one of a deleted view frees it
 * and the captures only it used (payloads onto dead). */
static void put_locked(struct sfs_views *v, struct sfs_view *view,
		       GPtrArray *dead)
{
	if (--view->refs)
		return;
	g_ptr_array_remove(v->views, view);
	count_set(&v->present, v->present - 1);
	view->detached = true;
	collect(v, dead);
	if (!view->holds)
		view_free(view);
}

static void free_dead(struct sfs_views *v, GPtrArray *dead)
{
	for (guint i = 0; i < dead->len; i++)
		v->free_payload(g_ptr_array_index(dead, i), v->ctx);
	g_ptr_array_free(dead, TRUE);
}

int sfs_views_delete(struct sfs_views *v, const char *name)
{
	GPtrArray *dead = g_ptr_array_new();
	struct sfs_view *view;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	view = find_named(v, name);
	if (view) {
		view->deleted = true;
		count_set(&v->named, v->named - 1);
		put_locked(v, view, dead);
	}
	sfs_mutex_unlock(&v->lock);
	free_dead(v, dead);
	return view ? 0 : ENOENT;
}

struct sfs_view *sfs_views_get(struct sfs_views *v, const char *name)
{
	struct sfs_view *view;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	view = find_named(v, name);
	if (view)
		view->refs++;
	sfs_mutex_unlock(&v->lock);
	return view;
}

void sfs_view_ref(struct sfs_views *v, struct sfs_view *view)
{
	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	view->refs++;
	sfs_mutex_unlock(&v->lock);
}

bool sfs_view_try_ref(struct sfs_views *v, struct sfs_view *view)
{
	bool ok;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	ok = !view->detached;
	if (ok)
		view->refs++;
	sfs_mutex_unlock(&v->lock);
	return ok;
}

void sfs_view_hold(struct sfs_views *v, struct sfs_view *view)
{
	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	view->holds++;
	sfs_mutex_unlock(&v->lock);
}

void sfs_view_release(struct sfs_views *v, struct sfs_view *view)
{
	bool dead;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	dead = !--view->holds && view->detached;
	sfs_mutex_unlock(&v->lock);
	if (dead)
		view_free(view);
}

void sfs_view_put(struct sfs_views *v, struct sfs_view *view)
{
	GPtrArray *dead = g_ptr_array_new();

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	put_locked(v, view, dead);
	sfs_mutex_unlock(&v->lock);
	free_dead(v, dead);
}

const char *sfs_view_name(const struct sfs_view *view)
{
	return view->name;
}

uint64_t sfs_view_epoch(const struct sfs_view *view)
{
	return view->epoch;
}

struct timespec sfs_view_created(const struct sfs_view *view)
{
	return view->created;
}

struct timespec sfs_view_horizon(const struct sfs_view *view)
{
	return view->horizon;
}

uint64_t sfs_view_instant(const struct sfs_view *view)
{
	return view->instant;
}

const char *sfs_view_invalid(struct sfs_views *v, const struct sfs_view *view)
{
	const char *why;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	why = view->invalid;
	sfs_mutex_unlock(&v->lock);
	return why;
}

size_t sfs_views_count(struct sfs_views *v)
{
	return __atomic_load_n(&v->named, __ATOMIC_ACQUIRE);
}

bool sfs_views_any(struct sfs_views *v)
{
	return __atomic_load_n(&v->present, __ATOMIC_ACQUIRE) != 0;
}

/*
 * The epoch of the newest view in the array (alive or still used) that is
 * not invalid, 0 if none: what a change must capture for. An invalid view
 * needs nothing kept. Under the lock.
 */
static uint64_t newest_epoch(struct sfs_views *v)
{
	for (guint i = v->views->len; i > 0; i--) {
		struct sfs_view *view = g_ptr_array_index(v->views, i - 1);

		if (!view->invalid)
			return view->epoch;
	}
	return 0;
}

static struct object *object_of(struct sfs_views *v, dev_t dev, ino_t ino)
{
	struct object key = { .dev = dev, .ino = ino };

	return g_hash_table_lookup(v->objects, &key);
}

bool sfs_views_need_capture(struct sfs_views *v, dev_t dev, ino_t ino)
{
	struct object *o;
	bool need;

	/* A deleted view still read (open files, cached nodes) is kept as
	 * it was until its last reader goes. */
	if (!sfs_views_any(v))
		return false;
	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	o = object_of(v, dev, ino);
	need = newest_epoch(v) > (o && o->newest ? o->newest->epoch : 0);
	sfs_mutex_unlock(&v->lock);
	return need;
}

bool sfs_views_add_capture(struct sfs_views *v, dev_t dev, ino_t ino,
			   void *payload)
{
	uint64_t last, now;
	struct capture *c;
	struct object *o;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	o = object_of(v, dev, ino);
	last = o && o->newest ? o->newest->epoch : 0;
	now = newest_epoch(v);
	if (now <= last) {
		sfs_mutex_unlock(&v->lock);
		return false;
	}
	if (!o) {
		o = g_new0(struct object, 1);
		o->dev = dev;
		o->ino = ino;
		g_hash_table_add(v->objects, o);
	}
	c = g_new0(struct capture, 1);
	c->from = last;
	c->epoch = now;
	c->payload = payload;
	c->older = o->newest;
	o->newest = c;
	if (payload) {
		v->captures++;
		v->captures_total++;
	}
	sfs_mutex_unlock(&v->lock);
	return true;
}

/* Does c serve the view of epoch e? */
static bool serves(const struct capture *c, uint64_t e)
{
	return c->from < e && e <= c->epoch;
}

/* The capture of o the view of epoch e reads, if any. Under the lock. */
static struct capture *capture_serving(const struct object *o, uint64_t e)
{
	for (struct capture *c = o ? o->newest : NULL; c; c = c->older)
		if (serves(c, e))
			return c;
	return NULL;
}

bool sfs_views_capture_for(struct sfs_views *v, const struct sfs_view *view,
			   dev_t dev, ino_t ino, void **payload)
{
	struct capture *c;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	c = capture_serving(object_of(v, dev, ino), view->epoch);
	if (c)
		*payload = c->payload;
	sfs_mutex_unlock(&v->lock);
	return c != NULL;
}

size_t sfs_views_list(struct sfs_views *v, struct sfs_view ***out)
{
	size_t n = 0;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	*out = g_new(struct sfs_view *, v->views->len + 1);
	for (guint i = 0; i < v->views->len; i++) {
		struct sfs_view *view = g_ptr_array_index(v->views, i);

		if (!view->deleted) {
			view->refs++;
			(*out)[n++] = view;
		}
	}
	sfs_mutex_unlock(&v->lock);
	return n;
}

void sfs_view_foreach_capture(struct sfs_views *v, const struct sfs_view *view,
			      void (*fn)(void *payload, void *arg), void *arg)
{
	GHashTableIter it;
	gpointer key;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	g_hash_table_iter_init(&it, v->objects);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		struct capture *c = capture_serving(key, view->epoch);

		if (c && c->payload)
			fn(c->payload, arg);
	}
	sfs_mutex_unlock(&v->lock);
}

void sfs_views_foreach_capture_of(struct sfs_views *v, dev_t dev, ino_t ino,
				  void (*fn)(void *payload, void *arg), void *arg)
{
	struct object *o;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	o = object_of(v, dev, ino);
	for (struct capture *c = o ? o->newest : NULL; c; c = c->older)
		if (c->payload)
			fn(c->payload, arg);
	sfs_mutex_unlock(&v->lock);
}

static void count_one(void *payload, void *arg)
{
	(void)payload;
	(*(uint64_t *)arg)++;
}

uint64_t sfs_view_captures(struct sfs_views *v, const struct sfs_view *view)
{
	uint64_t n = 0;

	sfs_view_foreach_capture(v, view, count_one, &n);
	return n;
}

void sfs_views_stats_get(struct sfs_views *v, struct sfs_views_stats *s)
{
	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	s->views = v->named;
	s->captures = v->captures;
	s->views_total = v->views_total;
	s->captures_total = v->captures_total;
	sfs_mutex_unlock(&v->lock);
}

/* ---- max_preserve: invalidating whole views ----------------------------- */

/* Does a payload view uses satisfy holds? Under the lock. */
static bool view_holds(struct sfs_views *v, const struct sfs_view *view,
		       bool (*holds)(void *payload, void *arg), void *arg)
{
	GHashTableIter it;
	gpointer key;

	g_hash_table_iter_init(&it, v->objects);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		struct capture *c = capture_serving(key, view->epoch);

		if (c && c->payload && holds(c->payload, arg))
			return true;
	}
	return false;
}

/* The oldest view not invalid that holds (see above), or NULL. Under the
 * lock. The array is by epoch, and instants grow with epochs. */
static struct sfs_view *oldest_holding(struct sfs_views *v,
				       bool (*holds)(void *payload, void *arg),
				       void *arg)
{
	for (guint i = 0; i < v->views->len; i++) {
		struct sfs_view *view = g_ptr_array_index(v->views, i);

		if (!view->invalid && view_holds(v, view, holds, arg))
			return view;
	}
	return NULL;
}

uint64_t sfs_views_oldest_holding(struct sfs_views *v,
				  bool (*holds)(void *payload, void *arg),
				  void *arg)
{
	struct sfs_view *view;
	uint64_t instant;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	view = oldest_holding(v, holds, arg);
	instant = view ? view->instant : UINT64_MAX;
	sfs_mutex_unlock(&v->lock);
	return instant;
}

/* Is a view with from < epoch <= to in the array and not invalid? Under
 * the lock. */
static bool valid_view_between(struct sfs_views *v, uint64_t from, uint64_t to)
{
	for (guint i = 0; i < v->views->len; i++) {
		struct sfs_view *view = g_ptr_array_index(v->views, i);

		if (view->epoch > to)
			break;
		if (view->epoch > from && !view->invalid)
			return true;
	}
	return false;
}

/* Does c serve one of the views gone[0..n)? */
static bool serves_any(const struct capture *c, struct sfs_view *const *gone,
		       guint n)
{
	for (guint i = 0; i < n; i++)
		if (serves(c, gone[i]->epoch))
			return true;
	return false;
}

/* The views gone[0..n) were just invalidated: drop() each payload of their
 * captures that no valid view uses any more, once. Under the lock. */
static void drop_unneeded(struct sfs_views *v, struct sfs_view *const *gone,
			  guint n, void (*drop)(void *payload, void *arg),
			  void *arg)
{
	GHashTableIter it;
	gpointer key;

	g_hash_table_iter_init(&it, v->objects);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		for (struct capture *c = ((struct object *)key)->newest; c;
		     c = c->older) {
			if (c->payload && serves_any(c, gone, n) &&
			    !valid_view_between(v, c->from, c->epoch))
				drop(c->payload, arg);
		}
	}
}

struct sfs_view *sfs_views_invalidate_oldest(struct sfs_views *v,
					     bool (*holds)(void *payload, void *arg),
					     void (*drop)(void *payload, void *arg),
					     void *arg, const char *why)
{
	struct sfs_view *view;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	view = oldest_holding(v, holds, arg);
	if (view) {
		view->invalid = why;
		view->holds++;
		drop_unneeded(v, &view, 1, drop, arg);
	}
	sfs_mutex_unlock(&v->lock);
	return view;
}

GPtrArray *sfs_views_invalidate_using(struct sfs_views *v,
				      bool (*uses)(void *payload, void *arg),
				      void (*drop)(void *payload, void *arg),
				      void *arg, const char *why)
{
	GPtrArray *gone = g_ptr_array_new();
	GHashTableIter it;
	gpointer key;

	sfs_mutex_lock(&v->lock, SFS_RANK_VIEWS);
	g_hash_table_iter_init(&it, v->objects);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		for (struct capture *c = ((struct object *)key)->newest; c;
		     c = c->older) {
			if (!c->payload || !uses(c->payload, arg))
				continue;
			for (guint i = 0; i < v->views->len; i++) {
				struct sfs_view *view = g_ptr_array_index(v->views, i);

				if (!serves(c, view->epoch) || view->invalid)
					continue;
				view->invalid = why;
				view->holds++;
				g_ptr_array_add(gone, view);
			}
		}
	}
	drop_unneeded(v, (struct sfs_view *const *)gone->pdata, gone->len, drop,
		      arg);
	sfs_mutex_unlock(&v->lock);
	return gone;
}
