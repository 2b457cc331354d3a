#include "sfs/inode_table.h"
#include "sfs/lock_order.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sfs/store.h"
#include "fd_cache.h"
#include "history_i.h"
#include "sfs/clock.h"

/*
 * What only an inode whose bytes are read or changed through the mount
 * needs, allocated at the first such use: most cached inodes are only
 * looked up and stat'ed (a backup walking a tree), and these two are 312
 * of the entry's bytes.
 */
struct sfs_data_state {
	/* Orders reads against modifications of this inode's bytes. */
	struct sfs_range_lock range_lock;
	/* Versions snapshots still read (regular files). */
	struct sfs_history history;
};

/* Where an ESTALE sent a thread: its next lookup of inode gets node. */
struct route {
	struct sfs_node *node;
	uint64_t expires_ns;
	uint64_t set_ns;	/* when the ESTALE was decided */
	bool looked_up;		/* a lookup has been steered by it */
};


struct sfs_inode_table {
	/* Protects map, routes, every node and every nlookup. Taken before
	 * a history's mutex, never while holding one. */
	pthread_mutex_t lock;
	GHashTable *map;		/* struct sfs_inode* -> itself, by (dev, ino) */
	GHashTable *orphans;		/* entries whose ino was reused meanwhile */
	GHashTable *routes;		/* tid -> struct route* */
	unsigned nroutes;		/* its size, read without the lock */
	struct sfs_inode *root;
	struct sfs_store *store;
	uint64_t nodes, incarnations, redirects;
	struct sfs_fd_cache fds;
};

static guint inode_hash(gconstpointer p)
{
	const struct sfs_inode *i = p;
	uint64_t h = (uint64_t)i->ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)i->dev;

	return (guint)(h ^ (h >> 32));
}

static gboolean inode_equal(gconstpointer a, gconstpointer b)
{
	const struct sfs_inode *x = a, *y = b;

	return x->ino == y->ino && x->dev == y->dev;
}


/*
 * The kernel retries an ESTALE'd open at once, within the same system
 * call: a route older than this is not steering a retry any more, and the
 * thread's next open is a new one, to be decided afresh. (A retry whose
 * lookup finds no name cancels its route at once: sfs_itable_route_cancel;
 * one its open steered is dropped by that open.) Generous: on a loaded
 * machine the retry's requests may wait long for a worker.
 */
#define RETRY_WINDOW_NS SFS_ROUTE_TTL_NS

static bool retry_pending(const struct route *r)
{
	return r && !r->looked_up && sfs_now_ns() - r->set_ns < RETRY_WINDOW_NS;
}

int sfs_itable_use_handles(struct sfs_inode_table *t, int mount_fd,
			   size_t budget)
{
	return sfs_fd_cache_use_handles(&t->fds, t->root->fd, mount_fd, budget);
}

int sfs_inode_fd_get(struct sfs_inode_table *t, struct sfs_inode *i)
{
	return sfs_fd_cache_get(&t->fds, i);
}

void sfs_inode_fd_put(struct sfs_inode_table *t, struct sfs_inode *i)
{
	sfs_fd_cache_put(&t->fds, i);
}

void sfs_itable_fd_stats(struct sfs_inode_table *t, struct sfs_fd_cache_stats *s)
{
	sfs_fd_cache_stats(&t->fds, s);
}

/* ------------------------------------------------------------------ */
/* Entries                                                             */
/* ------------------------------------------------------------------ */

/*
 * Free i, out of the map, whose nodes are all gone or dropped with the
 * table. Nothing else can reach it: callers do this after dropping the
 * table's lock where they can, as closing the last fd of a deleted file
 * evicts its inode (13-17% of the daemon's time in an unlink benchmark,
 * where FORGETs held the lock meanwhile).
 */
static void inode_free(struct sfs_inode_table *t, struct sfs_inode *i)
{
	struct sfs_data_state *d = i->data;

	for (struct sfs_node *n = i->nodes; n; n = n->next)
		n->snap = NULL;		/* freed with the history */
	if (d) {
		sfs_history_destroy(&d->history, t->store);
		sfs_range_lock_destroy(&d->range_lock);
		g_free(d);
	}
	sfs_fd_cache_remove(&t->fds, i);
	while (i->nodes) {
		struct sfs_node *next = i->nodes->next;

		free(i->nodes);
		i->nodes = next;
	}
	free(i->handle);
	free(i);
}

/* i's data state if it has one yet; never allocates. */
static struct sfs_data_state *data_if_any(struct sfs_inode *i)
{
	return __atomic_load_n(&i->data, __ATOMIC_ACQUIRE);
}

static struct sfs_data_state *inode_data(struct sfs_inode *i)
{
	struct sfs_data_state *d = data_if_any(i);
	struct sfs_data_state *none = NULL;

	if (d)
		return d;
	d = g_new0(struct sfs_data_state, 1);
	sfs_range_lock_init(&d->range_lock);
	sfs_history_init(&d->history);
	/* Two first uses at once: one state wins, the other is dropped. */
	if (__atomic_compare_exchange_n(&i->data, &none, d, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return d;
	sfs_history_destroy(&d->history, NULL);
	sfs_range_lock_destroy(&d->range_lock);
	g_free(d);
	return none;
}

struct sfs_history *sfs_inode_history(struct sfs_inode *i)
{
	return &inode_data(i)->history;
}

struct sfs_range_lock *sfs_inode_range_lock(struct sfs_inode *i)
{
	return &inode_data(i)->range_lock;
}

uint64_t sfs_inode_version(struct sfs_inode *i)
{
	struct sfs_data_state *d = data_if_any(i);

	return d ? sfs_history_version(&d->history) : 0;
}

/* With the table's lock: a new entry for fd (ours now) and st, in the map. */
static struct sfs_inode *inode_new(struct sfs_inode_table *t, int fd,
				   const struct stat *st)
{
	struct sfs_inode *i = calloc(1, sizeof(*i));

	if (!i)
		return NULL;
	i->dev = st->st_dev;
	i->ino = st->st_ino;
	i->type = st->st_mode & S_IFMT;
	sfs_fd_cache_add(&t->fds, i, fd);
	g_hash_table_add(t->map, i);
	i->hashed = true;
	return i;
}

/*
 * With the table's lock: is i, found by (dev, ino), the file fd refers to?
 * While i's fd is open it pins the inode, so (dev, ino) cannot have been
 * reused; once the cache closed it, the file may have been deleted and
 * its number given to a new one: the handle (which has the inode's
 * generation) tells. If it is the same file, fd is installed, or left in
 * *spare when i has one already (to be closed after the table's lock).
 */
static bool inode_matches(struct sfs_inode_table *t, struct sfs_inode *i, int fd,
			  int *spare)
{
	return sfs_fd_cache_adopt(&t->fds, i, fd, spare);
}

/* With the table's lock: i's number now names another file; i lives on
 * for the kernel's lookups of it, out of the map. */
static void inode_unhash(struct sfs_inode_table *t, struct sfs_inode *i)
{
	g_hash_table_steal(t->map, i);
	i->hashed = false;
	g_hash_table_add(t->orphans, i);
}

/* ------------------------------------------------------------------ */
/* Nodes                                                               */
/* ------------------------------------------------------------------ */

static struct sfs_node *node_new(struct sfs_inode_table *t, struct sfs_inode *i)
{
	struct sfs_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->inode = i;
	n->next = i->nodes;
	i->nodes = n;
	t->nodes++;
	t->incarnations++;
	return n;
}

/* Drop a READ node's snapshot ref once nothing uses the node. */
static void node_settle(struct sfs_inode_table *t, struct sfs_node *n)
{
	if (n->snap && n->nopen == 0 && n->pins == 0) {
		sfs_history_close(sfs_inode_history(n->inode), t->store, n->snap);
		n->snap = NULL;
	}
}

/*
 * Free n if the kernel and our routes are done with it. When that was its
 * inode's last node and the kernel holds no lookup of it, the inode leaves
 * the map and is returned: the caller inode_free()s it.
 */
static struct sfs_inode *node_maybe_free(struct sfs_inode_table *t,
					 struct sfs_node *n)
{
	struct sfs_inode *i = n->inode;

	node_settle(t, n);
	if (n->nlookup || n->nopen || n->pins)
		return NULL;
	for (struct sfs_node **pp = &i->nodes; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	if (i->current == n)
		i->current = i->nodes;
	t->nodes--;
	free(n);
	if (i->nlookup || i->nodes || i == t->root)
		return NULL;
	g_hash_table_remove(i->hashed ? t->map : t->orphans, i);
	return i;
}

/* ------------------------------------------------------------------ */
/* Routes                                                              */
/* ------------------------------------------------------------------ */

static void route_drop(struct sfs_inode_table *t, gpointer tid)
{
	struct route *r = g_hash_table_lookup(t->routes, tid);
	struct sfs_inode *dead;

	if (!r)
		return;
	g_hash_table_remove(t->routes, tid);
	__atomic_sub_fetch(&t->nroutes, 1, __ATOMIC_RELAXED);
	r->node->pins--;
	sfs_inode_fd_put(t, r->node->inode);
	dead = node_maybe_free(t, r->node);
	if (dead)
		inode_free(t, dead);	/* rare: under the lock */
	free(r);
}

static void routes_expire(struct sfs_inode_table *t)
{
	uint64_t now = sfs_now_ns();
	GHashTableIter it;
	gpointer tid, value;
	GSList *old = NULL;

	g_hash_table_iter_init(&it, t->routes);
	while (g_hash_table_iter_next(&it, &tid, &value))
		if (((struct route *)value)->expires_ns < now)
			old = g_slist_prepend(old, tid);
	for (GSList *l = old; l; l = l->next)
		route_drop(t, l->data);
	g_slist_free(old);
}

/*
 * Route tid's next lookup of n's inode to n. n is pinned before tid's old
 * route is dropped: that route may be the only thing keeping n alive (an
 * open retried without a lookup lands on the old node again and is routed
 * to the same target a second time).
 */
static void route_set(struct sfs_inode_table *t, pid_t tid, struct sfs_node *n)
{
	struct route *r = malloc(sizeof(*r));

	if (!r)
		return;		/* the retry lands on the current node */
	n->pins++;
	sfs_fd_cache_hold(&t->fds, n->inode);
	route_drop(t, GINT_TO_POINTER(tid));
	r->node = n;
	r->set_ns = sfs_now_ns();
	r->expires_ns = r->set_ns + SFS_ROUTE_TTL_NS;
	r->looked_up = false;
	g_hash_table_insert(t->routes, GINT_TO_POINTER(tid), r);
	__atomic_add_fetch(&t->nroutes, 1, __ATOMIC_RELAXED);
	t->redirects++;
}

/* ------------------------------------------------------------------ */
/* The table                                                           */
/* ------------------------------------------------------------------ */

struct sfs_inode_table *sfs_itable_new(int root_fd, struct sfs_store *store)
{
	struct sfs_inode_table *t = calloc(1, sizeof(*t));
	struct stat st;

	if (!t) {
		close(root_fd);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	sfs_fd_cache_init(&t->fds);
	t->store = store;
	t->map = g_hash_table_new(inode_hash, inode_equal);
	t->orphans = g_hash_table_new(g_direct_hash, g_direct_equal);
	t->routes = g_hash_table_new(g_direct_hash, g_direct_equal);
	/* The root keeps its fd (no handle yet) and is pinned: the kernel
	 * never forgets it while mounted. */
	if (fstat(root_fd, &st) == -1 || !(t->root = inode_new(t, root_fd, &st))) {
		close(root_fd);
		sfs_itable_free(t);
		return NULL;
	}
	if (!(t->root->current = node_new(t, t->root))) {
		sfs_itable_free(t);
		return NULL;
	}
	t->root->nlookup = 1;
	t->root->current->nlookup = 1;
	return t;
}

/* At the end: drop every entry of one hash table, whatever its lookups. */
static void free_entries(struct sfs_inode_table *t, GHashTable *entries)
{
	GHashTableIter it;
	gpointer key;

	g_hash_table_iter_init(&it, entries);
	while (g_hash_table_iter_next(&it, &key, NULL))
		inode_free(t, key);
	g_hash_table_destroy(entries);
}

void sfs_itable_free(struct sfs_inode_table *t)
{
	GHashTableIter it;
	gpointer tid, value;

	if (!t)
		return;
	g_hash_table_iter_init(&it, t->routes);
	while (g_hash_table_iter_next(&it, &tid, &value))
		free(value);
	g_hash_table_destroy(t->routes);
	free_entries(t, t->map);
	free_entries(t, t->orphans);
	sfs_fd_cache_destroy(&t->fds);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct sfs_node *sfs_itable_root(struct sfs_inode_table *t)
{
	return t->root->current;
}

/*
 * With the lock held: which node a lookup of i by tid gets. A routed
 * thread gets its route; anyone else the most recently used node, unless
 * that shows an old version: then a live one (the write node, an unbound
 * one, or a new one), so that stat(2) by path shows the file as it is.
 */
static struct sfs_node *find_node(struct sfs_inode *i, enum sfs_node_mode mode,
				  uint64_t version)
{
	for (struct sfs_node *n = i->nodes; n; n = n->next)
		if (n->mode == mode && (mode != SFS_NODE_READ ||
					(n->version == version && n->snap)))
			return n;
	return NULL;
}

/*
 * With the lock held: the retry of an open we routed to a node of another
 * file looks i up: the name was renamed over or recreated in between.
 * Give it a node its open can bind without a second ESTALE, which the
 * kernel would pass to the caller: i's write node for a writer (or one
 * that can become it), else a snapshot node of this version, or a fresh
 * node either kind of open binds.
 */
static struct sfs_node *node_for_retry(struct sfs_inode_table *t,
				       struct sfs_inode *i, struct route *r,
				       uint64_t version)
{
	enum sfs_node_mode want = r->node->mode == SFS_NODE_WRITE ?
				  SFS_NODE_WRITE : SFS_NODE_READ;
	struct sfs_node *n = find_node(i, want, version);

	/* The route stays unused: the retry looks the name up twice (K7),
	 * and the second lookup must get such a node too. */
	return n ? n : node_new(t, i);
}

static struct sfs_node *pick_node(struct sfs_inode_table *t, struct sfs_inode *i,
				  pid_t tid, uint64_t version)
{
	struct sfs_node *n = i->current;
	struct route *r;

	if (g_hash_table_size(t->routes)) {
		r = g_hash_table_lookup(t->routes, GINT_TO_POINTER(tid));
		if (r && r->node->inode == i) {
			r->looked_up = true;
			return r->node;
		}
		if (retry_pending(r) && i->type == S_IFREG &&
		    (n = node_for_retry(t, i, r, version)))
			return n;
		n = i->current;
	}
	if (n && (n->mode != SFS_NODE_READ || n->version == version))
		return n;
	for (n = i->nodes; n; n = n->next)
		if (n->mode != SFS_NODE_READ)
			break;
	if (!n)
		n = node_new(t, i);
	i->current = n;
	return n;
}

struct sfs_node *sfs_itable_lookup(struct sfs_inode_table *t, int fd,
				   const struct stat *st, pid_t tid)
{
	struct sfs_inode key = { .dev = st->st_dev, .ino = st->st_ino };
	struct sfs_inode *i;
	struct sfs_node *n;
	uint64_t version;
	int spare = -1;		/* fd, when the entry has its own */

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	/* First: an expired route may free the very inode looked up now. */
	if (g_hash_table_size(t->routes))
		routes_expire(t);
	i = g_hash_table_lookup(t->map, &key);
	if (i && !inode_matches(t, i, fd, &spare)) {
		inode_unhash(t, i);
		i = NULL;
	}
	if (!i) {
		i = inode_new(t, fd, st);
		if (!i) {
			sfs_mutex_unlock(&t->lock);
			close(fd);
			errno = ENOMEM;
			return NULL;
		}
	}
	version = sfs_inode_version(i);
	n = pick_node(t, i, tid, version);
	if (!n) {
		if (!i->nlookup && !i->nodes) {
			g_hash_table_remove(t->map, i);
			inode_free(t, i);
		}
		sfs_mutex_unlock(&t->lock);
		if (spare >= 0)
			close(spare);
		errno = ENOMEM;
		return NULL;
	}
	n->nlookup++;
	i->nlookup++;
	sfs_mutex_unlock(&t->lock);
	if (spare >= 0)
		close(spare);
	return n;
}

void sfs_itable_route_cancel(struct sfs_inode_table *t, pid_t tid)
{
	if (!__atomic_load_n(&t->nroutes, __ATOMIC_RELAXED))
		return;
	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	route_drop(t, GINT_TO_POINTER(tid));
	sfs_mutex_unlock(&t->lock);
}

void sfs_itable_forget(struct sfs_inode_table *t, struct sfs_node *n,
		       uint64_t count)
{
	struct sfs_inode *i = n->inode, *dead = NULL;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	if (count > n->nlookup)
		count = n->nlookup;
	n->nlookup -= count;
	i->nlookup -= count;
	if (i == t->root) {
		if (n->nlookup == 0)
			n->nlookup = i->nlookup = 1;
	} else {
		dead = node_maybe_free(t, n);
	}
	sfs_mutex_unlock(&t->lock);
	if (dead)
		inode_free(t, dead);
}

size_t sfs_itable_count(struct sfs_inode_table *t)
{
	size_t n;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	n = g_hash_table_size(t->map);
	sfs_mutex_unlock(&t->lock);
	return n;
}

size_t sfs_itable_node_count(struct sfs_inode_table *t)
{
	size_t n;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	n = t->nodes;
	sfs_mutex_unlock(&t->lock);
	return n;
}

/* With the table's lock: i's nodes (only those not showing a snapshot:
 * live_only) into out, at most max. */
static size_t nodes_of(struct sfs_inode *i, bool live_only,
		       struct sfs_node **out, size_t max)
{
	size_t n = 0;

	for (struct sfs_node *p = i->nodes; p && n < max; p = p->next)
		if (!live_only || p->mode != SFS_NODE_READ)
			out[n++] = p;
	return n;
}

/*
 * With the table's lock. Only a file with snapshots has anything to mark,
 * and its fd is held open by them: no other file's fd is reopened here.
 */
static bool mark_oob(struct sfs_inode_table *t, struct sfs_inode *i, bool exact)
{
	struct sfs_data_state *d = data_if_any(i);
	bool marked = false;
	int fd;

	if (!d || !sfs_history_busy(&d->history))
		return false;
	fd = sfs_inode_fd_get(t, i);
	if (fd >= 0) {
		marked = sfs_history_mark_oob(&d->history, fd, exact);
		sfs_inode_fd_put(t, i);
	}
	return marked;
}

static void mark_oob_each(gpointer key, gpointer value, gpointer table)
{
	(void)value;
	mark_oob(table, key, true);
}

size_t sfs_itable_mark_oob(struct sfs_inode_table *t, const struct stat *st,
			   bool exact, struct sfs_node **nodes, size_t max)
{
	size_t n = 0;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	if (st) {
		struct sfs_inode key = { .dev = st->st_dev, .ino = st->st_ino };
		struct sfs_inode *i = g_hash_table_lookup(t->map, &key);

		if (i && mark_oob(t, i, exact))
			n = nodes_of(i, false, nodes, max);
	} else {
		g_hash_table_foreach(t->map, mark_oob_each, t);
	}
	sfs_mutex_unlock(&t->lock);
	return n;
}

static bool watched(struct sfs_inode *i)
{
	struct sfs_data_state *d = data_if_any(i);

	return __atomic_load_n(&i->oob_opening, __ATOMIC_ACQUIRE) ||
	       (d && sfs_history_has_snaps(&d->history));
}

struct sfs_node *sfs_itable_hold_watched(struct sfs_inode_table *t,
					 dev_t dev, ino_t ino)
{
	struct sfs_inode key = { .dev = dev, .ino = ino };
	struct sfs_node *n = NULL;
	struct sfs_inode *i;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	i = g_hash_table_lookup(t->map, &key);
	if (i && i->type == S_IFREG && i->nodes && watched(i)) {
		n = i->nodes;
		n->pins++;
	}
	sfs_mutex_unlock(&t->lock);
	return n;
}

void sfs_itable_unhold(struct sfs_inode_table *t, struct sfs_node *n)
{
	struct sfs_inode *dead;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	n->pins--;
	dead = node_maybe_free(t, n);
	sfs_mutex_unlock(&t->lock);
	if (dead)
		inode_free(t, dead);
}

size_t sfs_itable_nodes(struct sfs_inode_table *t, struct sfs_inode *i,
			struct sfs_node **out, size_t max)
{
	size_t n;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	n = nodes_of(i, false, out, max);
	sfs_mutex_unlock(&t->lock);
	return n;
}

size_t sfs_itable_live_nodes(struct sfs_inode_table *t, struct sfs_inode *i,
			     struct sfs_node **out, size_t max)
{
	size_t n;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	n = nodes_of(i, true, out, max);
	sfs_mutex_unlock(&t->lock);
	return n;
}

uint64_t sfs_itable_redirects(struct sfs_inode_table *t)
{
	return __atomic_load_n(&t->redirects, __ATOMIC_RELAXED);
}

uint64_t sfs_itable_incarnations(struct sfs_inode_table *t)
{
	return __atomic_load_n(&t->incarnations, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* Opens                                                               */
/* ------------------------------------------------------------------ */

static void bind_read(struct sfs_node *n, struct sfs_snap *snap)
{
	n->mode = SFS_NODE_READ;
	n->version = snap->version;
	n->size = snap->size;
	n->snap = snap;
}

/* Did an ESTALE route tid's retry to n? */
static bool routed_here(struct sfs_inode_table *t, struct sfs_node *n, pid_t tid)
{
	struct route *r = g_hash_table_lookup(t->routes, GINT_TO_POINTER(tid));

	return r && r->node == n;
}

/*
 * A READ open. Joining a node that shows this very version lets the kernel
 * keep its cache; an unused node whose attributes the kernel got at this
 * version can be bound to it. Anything else is a stale incarnation.
 */
static int open_read(struct sfs_inode_table *t, struct sfs_node *n,
		     uint64_t version, struct sfs_snap *snap, pid_t tid,
		     bool *keep_cache)
{
	struct sfs_inode *i = n->inode;
	struct sfs_node *target;

	/*
	 * The retry after our ESTALE lands where we routed it: it must open
	 * (the kernel retries only once), even if the file changed again in
	 * between; it gets the version of its lookup, which the route kept.
	 */
	if (n->mode == SFS_NODE_READ && n->snap && routed_here(t, n, tid))
		version = n->version;
	if (n->mode == SFS_NODE_READ && n->version == version) {
		if (!n->snap)
			n->snap = snap;
		else
			sfs_history_close(sfs_inode_history(i), t->store, snap);
		*keep_cache = true;
		return 0;
	}
	if (n->nopen == 0 && n->pins == 0 && n->told_version == version &&
	    n->mode != SFS_NODE_READ) {
		bind_read(n, snap);
		*keep_cache = false;
		return 0;
	}
	target = find_node(i, SFS_NODE_READ, version);
	if (target) {
		sfs_history_close(sfs_inode_history(i), t->store, snap);
	} else {
		target = node_new(t, i);
		if (!target) {
			sfs_history_close(sfs_inode_history(i), t->store, snap);
			return ENOMEM;
		}
		bind_read(target, snap);
	}
	route_set(t, tid, target);
	return ESTALE;
}

/* A WRITE open: only the inode's write node, or a node that can become it. */
static int open_write(struct sfs_inode_table *t, struct sfs_node *n,
		      uint64_t version, pid_t tid, bool *keep_cache)
{
	struct sfs_inode *i = n->inode;
	struct sfs_node *w = find_node(i, SFS_NODE_WRITE, 0);

	*keep_cache = false;
	if (n->mode == SFS_NODE_WRITE)
		return 0;
	if (!w && n->nopen == 0 && n->pins == 0 && n->told_version == version) {
		node_settle(t, n);
		n->mode = SFS_NODE_WRITE;
		return 0;
	}
	if (!w) {
		w = node_new(t, i);
		if (!w)
			return ENOMEM;
		w->mode = SFS_NODE_WRITE;
	}
	route_set(t, tid, w);
	return ESTALE;
}

/*
 * Is this open the retry of one we answered ESTALE, back on the same node
 * with no lookup in between? Then the caller's path ended in a magic link
 * (/proc/PID/fd/N, /dev/stdin) or the file was opened by its handle:
 * nothing looks a name up again, no route can steer the open, and a second
 * ESTALE would reach the caller.
 */
static bool unroutable_retry(struct sfs_inode_table *t, struct sfs_node *n,
			     pid_t tid)
{
	struct route *r = g_hash_table_lookup(t->routes, GINT_TO_POINTER(tid));

	return retry_pending(r) && r->node != n && r->node->inode == n->inode;
}

/*
 * Such a reopen names n itself, the node of a file already open:
 * - read-only on a snapshot's node: that snapshot (as a dup would be);
 * - read-only on a live node nobody uses since the kernel got its
 *   attributes: bound to a snapshot as any read-only open;
 * - read-only on a live node in use: no snapshot can be had here, and a
 *   live handle would break the promise of read-only opens (G2): EBUSY.
 *   Only the kernel's own opens (SFS_OPEN_READ_IN_PLACE: ioctls, which
 *   never read; a 32-bit open(2) looks the same) get the live file;
 * - for writing on a live node: fine (every live node is evicted on
 *   change); on a snapshot's node: the kernel would cache live bytes
 *   among the snapshot's pages: EBUSY.
 * The same holds for the rare retry that lands on a node another thread's
 * lookup of the name gave (the VFS shares parallel lookups of one name).
 */
static int open_in_place(struct sfs_inode_table *t, struct sfs_node *n,
			 enum sfs_open_kind kind, struct sfs_snap *snap,
			 bool *keep_cache)
{
	struct sfs_history *h = sfs_inode_history(n->inode);

	*keep_cache = false;
	if (n->mode != SFS_NODE_READ && kind == SFS_OPEN_READ && snap &&
	    n->nopen == 0 && n->pins == 0 && n->told_version == snap->version) {
		bind_read(n, snap);
		return 0;
	}
	if (snap)
		sfs_history_close(h, t->store, snap);
	if (n->mode != SFS_NODE_READ)
		return kind == SFS_OPEN_READ ? EBUSY : 0;
	if (kind == SFS_OPEN_WRITE)
		return EBUSY;
	if (!n->snap)
		return ESTALE;	/* an idle old version: nothing to join */
	*keep_cache = true;
	return 0;
}

int sfs_node_open(struct sfs_inode_table *t, struct sfs_node *n,
		  enum sfs_open_kind kind, uint64_t version, struct sfs_snap *snap,
		  pid_t tid, bool *keep_cache, struct sfs_snap **shown)
{
	struct route *r;
	bool in_place;
	int err;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	in_place = kind == SFS_OPEN_READ_IN_PLACE || unroutable_retry(t, n, tid);
	if (in_place)
		err = open_in_place(t, n, kind, snap, keep_cache);
	else if (kind == SFS_OPEN_READ)
		err = open_read(t, n, version, snap, tid, keep_cache);
	else
		err = open_write(t, n, version, tid, keep_cache);
	if (!err) {
		n->nopen++;
		sfs_fd_cache_hold(&t->fds, n->inode);
		n->inode->current = n;
	}
	/* A route is used up by the open it steered (or by the retry's open
	 * of whatever file the name named by then), and one no lookup
	 * followed is of no use: the kernel does not retry twice. */
	r = g_hash_table_lookup(t->routes, GINT_TO_POINTER(tid));
	if (r && (in_place || !err))
		route_drop(t, GINT_TO_POINTER(tid));
	if (shown)
		*shown = !err && n->mode == SFS_NODE_READ ? n->snap : NULL;
	sfs_mutex_unlock(&t->lock);
	return err;
}

void sfs_node_release(struct sfs_inode_table *t, struct sfs_node *n)
{
	struct sfs_inode *dead;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	if (n->nopen) {
		n->nopen--;
		sfs_inode_fd_put(t, n->inode);
	}
	dead = node_maybe_free(t, n);
	sfs_mutex_unlock(&t->lock);
	if (dead)
		inode_free(t, dead);
}

struct sfs_snap *sfs_node_snap(struct sfs_inode_table *t, struct sfs_node *n)
{
	struct sfs_snap *snap;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	snap = n->mode == SFS_NODE_READ ? n->snap : NULL;
	if (snap)
		sfs_snap_ref(sfs_inode_history(n->inode), snap);
	sfs_mutex_unlock(&t->lock);
	return snap;
}

bool sfs_node_told_differs(struct sfs_inode_table *t, struct sfs_node *n,
			   const struct sfs_snap *s)
{
	bool differs;

	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	differs = n->mode != SFS_NODE_READ && n->told_attrs &&
		  n->told_version == s->version &&
		  (n->told_size != s->size || !sfs_time_equal(n->told_mtime, s->mtime) ||
		   !sfs_time_equal(n->told_ctime, s->ctime));
	sfs_mutex_unlock(&t->lock);
	return differs;
}

void sfs_node_attr(struct sfs_inode_table *t, struct sfs_node *n,
		   struct stat *st)
{
	uint64_t version;

	/* Only regular files have versions, and only with snapshots. */
	if (n->inode->type != S_IFREG || !t->store)
		return;
	version = sfs_inode_version(n->inode);
	sfs_mutex_lock(&t->lock, SFS_RANK_TABLE);
	/*
	 * The size is the version's: the kernel sizes reads by it. So are
	 * mtime and ctime once the data may have moved on: a backup tool
	 * compares them before and after reading (GNU tar: "file changed as
	 * we read it") and must see the file it read. Mode, owner and links
	 * stay live metadata, as on SRC, and so do the times after a change
	 * of metadata only through MNT (a chmod or touch shows at once).
	 */
	if (n->mode == SFS_NODE_READ) {
		st->st_size = (off_t)n->size;
		if (n->snap && sfs_snap_times_frozen(sfs_inode_history(n->inode),
						     n->snap, n->version, st)) {
			st->st_mtim = n->snap->mtime;
			st->st_ctim = n->snap->ctime;
		}
		version = n->version;	/* what these attributes show */
	} else {
		n->told_attrs = true;
		n->told_size = (uint64_t)st->st_size;
		n->told_mtime = st->st_mtim;
		n->told_ctime = st->st_ctim;
	}
	n->told_version = version;
	sfs_mutex_unlock(&t->lock);
}
