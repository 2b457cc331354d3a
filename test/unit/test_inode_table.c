/*
 * Unit tests of lib/inode_table.c: one entry per backing inode with exact
 * lookup counts, and the incarnation rules: which node an open may bind,
 * when it is told ESTALE and where the retry's lookup is routed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sfs/inode_table.h"
#include "history_i.h"	/* the engine's own test: looks inside */
#include "sfs/store.h"

#define TID 4242

struct fixture {
	char dir[64];
	struct sfs_store *store;
	struct sfs_inode_table *t;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	int fd;

	snprintf(f->dir, sizeof(f->dir), "/tmp/sfs-itable-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	fd = open(f->dir, O_RDONLY | O_DIRECTORY);
	f->store = sfs_store_new(fd, err, sizeof(err));
	close(fd);
	fd = open(f->dir, O_PATH | O_DIRECTORY);
	f->t = sfs_itable_new(fd, f->store);
	*state = f;
	return f->t && f->store ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	sfs_itable_free(f->t);
	sfs_store_free(f->store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static int root_fd(struct fixture *f)
{
	return sfs_itable_root(f->t)->inode->fd;
}

/* Look up a name below the fixture dir as the daemon does, as thread tid. */
static struct sfs_node *lookup_as(struct fixture *f, const char *name, pid_t tid)
{
	int fd = openat(root_fd(f), name, O_PATH | O_NOFOLLOW);
	struct sfs_node *n;
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	n = sfs_itable_lookup(f->t, fd, &st, tid);
	assert_non_null(n);
	sfs_node_attr(f->t, n, &st);	/* the kernel gets attributes */
	return n;
}

static struct sfs_node *lookup(struct fixture *f, const char *name)
{
	return lookup_as(f, name, TID);
}

static void create(struct fixture *f, const char *name)
{
	int fd = openat(root_fd(f), name, O_CREAT | O_WRONLY, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	close(fd);
}

static int open_fd_count(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

static void test_same_inode_same_entry(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *a, *b, *c;
	int fds;

	create(f, "a");
	assert_int_equal(linkat(root_fd(f), "a", root_fd(f), "hardlink", 0), 0);
	fds = open_fd_count();
	a = lookup(f, "a");
	b = lookup(f, "hardlink");	/* hard link: the same backing inode */
	c = lookup(f, "a");
	assert_ptr_equal(a, b);
	assert_ptr_equal(a, c);
	assert_int_equal(a->nlookup, 3);
	assert_int_equal(a->inode->nlookup, 3);
	assert_int_equal(a->inode->type, S_IFREG);
	assert_int_equal(sfs_itable_count(f->t), 2);	/* root + a */
	/* Redundant O_PATH fds were closed: only the entry's own remains. */
	assert_int_equal(open_fd_count(), fds + 1);
	sfs_itable_forget(f->t, a, 2);
	assert_int_equal(a->nlookup, 1);
	assert_int_equal(sfs_itable_count(f->t), 2);
	sfs_itable_forget(f->t, a, 1);	/* last: freed, fd closed */
	assert_int_equal(sfs_itable_count(f->t), 1);
	assert_int_equal(open_fd_count(), fds);
}

static void test_distinct_inodes(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *a, *b;

	create(f, "x");
	create(f, "y");
	a = lookup(f, "x");
	b = lookup(f, "y");
	assert_ptr_not_equal(a->inode, b->inode);
	assert_int_equal(sfs_itable_count(f->t), 3);
	/* Over-forgetting clamps at zero and frees once. */
	sfs_itable_forget(f->t, a, 99);
	sfs_itable_forget(f->t, b, 1);
	assert_int_equal(sfs_itable_count(f->t), 1);
	assert_int_equal(sfs_itable_node_count(f->t), 1);
}

static void test_root_pinned(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *root = sfs_itable_root(f->t);

	assert_int_equal(root->inode->type, S_IFDIR);
	sfs_itable_forget(f->t, root, 1000);
	assert_int_equal(sfs_itable_count(f->t), 1);
	assert_ptr_equal(sfs_itable_root(f->t), root);
	assert_true(fcntl(root->inode->fd, F_GETFD) != -1);
}

static void test_entry_survives_rename_and_unlink(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *a, *b;
	struct stat st;

	create(f, "old");
	a = lookup(f, "old");
	assert_int_equal(renameat(root_fd(f), "old", root_fd(f), "new"), 0);
	b = lookup(f, "new");
	assert_ptr_equal(a, b);
	assert_int_equal(unlinkat(root_fd(f), "new", 0), 0);
	/* The O_PATH fd still reaches the (now nameless) inode. */
	assert_int_equal(fstatat(a->inode->fd, "", &st, AT_EMPTY_PATH), 0);
	assert_int_equal(st.st_nlink, 0);
	sfs_itable_forget(f->t, a, 2);
}

/* What the daemon does for a read-only open of node. */
static int open_read(struct fixture *f, struct sfs_node *n, pid_t tid, bool *keep)
{
	struct sfs_snap *snap;

	snap = sfs_history_open(sfs_inode_history(n->inode), n->inode->fd);
	assert_non_null(snap);
	return sfs_node_open(f->t, n, SFS_OPEN_READ, sfs_snap_version(snap), snap, tid, keep,
			     NULL);
}

static int open_write(struct fixture *f, struct sfs_node *n, pid_t tid)
{
	bool keep;

	return sfs_node_open(f->t, n, SFS_OPEN_WRITE, sfs_inode_history(n->inode)->version,
			     NULL, tid, &keep, NULL);
}

/* A change through MNT: the version moves on. */
static void bump_version(struct sfs_node *n)
{
	sfs_history_before_change(sfs_inode_history(n->inode), NULL, NULL, NULL, 0, 0);
	sfs_history_after_change(sfs_inode_history(n->inode), -1, true);
}

static void test_readers_share_a_version(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *n;
	bool keep = true;

	create(f, "r");
	n = lookup(f, "r");
	assert_int_equal(n->mode, SFS_NODE_UNBOUND);
	assert_int_equal(open_read(f, n, TID, &keep), 0);
	assert_int_equal(n->mode, SFS_NODE_READ);
	assert_false(keep);		/* a first binding keeps nothing */
	assert_int_equal(open_read(f, n, TID + 1, &keep), 0);
	assert_true(keep);		/* same version: the cache is right */
	assert_int_equal(n->nopen, 2);
	assert_ptr_equal(n->snap, sfs_inode_history(n->inode)->snaps);
	sfs_node_release(f->t, n);
	sfs_node_release(f->t, n);
	/* Idle: the node keeps its version but no snapshot (nothing held). */
	assert_null(n->snap);
	assert_false(sfs_history_busy(sfs_inode_history(n->inode)));
	/* Unchanged since: a new reader joins again, cache kept. */
	assert_int_equal(open_read(f, n, TID, &keep), 0);
	assert_true(keep);
	sfs_node_release(f->t, n);
	sfs_itable_forget(f->t, n, 1);
}

static void test_stale_reader_is_routed_to_a_new_version(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *old, *fresh, *other;
	uint64_t redirects = sfs_itable_redirects(f->t);
	bool keep;

	create(f, "s");
	old = lookup(f, "s");
	assert_int_equal(open_read(f, old, TID, &keep), 0);
	bump_version(old);
	/* The dentry still points at old: the open is told ESTALE... */
	assert_int_equal(open_read(f, old, TID, &keep), ESTALE);
	assert_int_equal(sfs_itable_redirects(f->t), redirects + 1);
	/* ...another thread's lookup gets a live node, not the old version
	 * (stat by path shows the file as it is)... */
	other = lookup_as(f, "s", TID + 7);
	assert_ptr_not_equal(other, old);
	assert_int_not_equal(other->mode, SFS_NODE_READ);
	/* ...and this thread's retry (the kernel looks up twice) lands on a
	 * node already bound to the new version. */
	fresh = lookup(f, "s");
	assert_ptr_equal(lookup(f, "s"), fresh);
	assert_ptr_not_equal(fresh, old);
	assert_int_equal(fresh->mode, SFS_NODE_READ);
	assert_int_equal(fresh->version, sfs_inode_history(old->inode)->version);
	assert_int_equal(open_read(f, fresh, TID, &keep), 0);
	assert_int_equal(fresh->pins, 0);	/* route used up */
	/* Two snapshots alive: old's and fresh's. */
	assert_ptr_not_equal(old->snap, fresh->snap);
	sfs_node_release(f->t, fresh);
	sfs_node_release(f->t, old);
	sfs_itable_forget(f->t, fresh, 2);
	sfs_itable_forget(f->t, old, 2);
	sfs_itable_forget(f->t, other, 1);
	assert_int_equal(sfs_itable_node_count(f->t), 1);
	assert_int_equal(sfs_itable_count(f->t), 1);
}

/*
 * The kernel retries an open once: the retry must open even when the file
 * changed again between our ESTALE and it. It gets the version its lookup
 * showed (kept by the route), not a second ESTALE.
 */
static void test_routed_retry_always_opens(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *old, *fresh;
	uint64_t routed_version;
	bool keep;

	create(f, "t");
	old = lookup(f, "t");
	assert_int_equal(open_read(f, old, TID, &keep), 0);
	bump_version(old);
	assert_int_equal(open_read(f, old, TID, &keep), ESTALE);
	fresh = lookup(f, "t");
	routed_version = fresh->version;
	bump_version(old);		/* a writer gets in between */
	assert_int_equal(open_read(f, fresh, TID, &keep), 0);
	assert_int_equal(fresh->version, routed_version);
	assert_true(fresh->version < sfs_inode_history(old->inode)->version);
	sfs_node_release(f->t, fresh);
	sfs_node_release(f->t, old);
	sfs_itable_forget(f->t, fresh, 1);
	sfs_itable_forget(f->t, old, 1);
	assert_int_equal(sfs_itable_count(f->t), 1);	/* all freed */
}

static void test_writers_share_one_live_node(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *r, *w;
	bool keep;

	create(f, "w");
	r = lookup(f, "w");
	assert_int_equal(open_read(f, r, TID, &keep), 0);
	/* A writer on a node with a snapshot open: ESTALE to a live node. */
	assert_int_equal(open_write(f, r, TID + 1), ESTALE);
	w = lookup_as(f, "w", TID + 1);
	assert_ptr_not_equal(w, r);
	assert_int_equal(w->mode, SFS_NODE_WRITE);
	assert_int_equal(open_write(f, w, TID + 1), 0);
	/* Another writer arriving on the reader's node goes to the same one. */
	assert_int_equal(open_write(f, r, TID + 2), ESTALE);
	assert_ptr_equal(lookup_as(f, "w", TID + 2), w);
	assert_int_equal(open_write(f, w, TID + 2), 0);
	assert_int_equal(w->nopen, 2);
	/* A reader on the write node while writers have it open: ESTALE. */
	assert_int_equal(open_read(f, w, TID + 3, &keep), ESTALE);
	sfs_itable_forget(f->t, lookup_as(f, "w", TID + 3), 1);
	sfs_node_release(f->t, w);
	sfs_node_release(f->t, w);
	sfs_node_release(f->t, r);
	sfs_itable_forget(f->t, w, 2);
	sfs_itable_forget(f->t, r, 1);
}

/*
 * A reopen through /proc/PID/fd/N: the kernel retries our ESTALE on the
 * same node, without a lookup. A second routing of the retry to the same
 * target once freed that target (its only pin was the route being
 * replaced) and then used it: the daemon crashed. Now the retry opens in
 * place: a read-only reopen of a snapshot reads that snapshot.
 */
static void test_read_reopen_without_lookup_joins_snapshot(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *n;
	struct sfs_snap *shown;
	struct sfs_snap *snap;
	size_t nodes;
	bool keep;

	create(f, "p");
	n = lookup(f, "p");
	assert_int_equal(open_read(f, n, TID, &keep), 0);
	bump_version(n);		/* "echo two >> p" */
	nodes = sfs_itable_node_count(f->t);
	assert_int_equal(open_read(f, n, TID + 1, &keep), ESTALE);
	assert_int_equal(sfs_itable_node_count(f->t), nodes + 1);
	/* The retry: same node, same thread, no lookup in between. */
	snap = sfs_history_open(sfs_inode_history(n->inode), n->inode->fd);
	assert_non_null(snap);
	assert_int_equal(sfs_node_open(f->t, n, SFS_OPEN_READ, sfs_snap_version(snap),
				       snap, TID + 1, &keep, &shown), 0);
	assert_ptr_equal(shown, n->snap);	/* the snapshot it reopens */
	assert_true(keep);
	assert_int_equal(n->nopen, 2);
	/* The route's target was only pinned by the route: freed now. */
	assert_int_equal(sfs_itable_node_count(f->t), nodes);
	sfs_node_release(f->t, n);
	sfs_node_release(f->t, n);
	sfs_itable_forget(f->t, n, 1);
	assert_int_equal(sfs_itable_count(f->t), 1);
}

/* The same for writing: a snapshot's node cannot take a writer (EBUSY),
 * and nothing is freed twice (the crash needed only this sequence). */
static void test_write_reopen_of_snapshot_without_lookup(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *n, *w;
	bool keep;

	create(f, "q");
	n = lookup(f, "q");
	assert_int_equal(open_read(f, n, TID, &keep), 0);
	for (int round = 0; round < 2; round++) {	/* two reopens */
		assert_int_equal(open_write(f, n, TID + 1), ESTALE);
		assert_int_equal(open_write(f, n, TID + 1), EBUSY);
	}
	assert_int_equal(n->nopen, 1);
	/* A writer that looks the name up is routed to the live node. */
	assert_int_equal(open_write(f, n, TID + 2), ESTALE);
	w = lookup_as(f, "q", TID + 2);
	assert_ptr_not_equal(w, n);
	assert_int_equal(open_write(f, w, TID + 2), 0);
	assert_int_equal(w->mode, SFS_NODE_WRITE);
	sfs_node_release(f->t, w);
	sfs_itable_forget(f->t, w, 1);
	sfs_node_release(f->t, n);
	sfs_itable_forget(f->t, n, 1);
	assert_int_equal(sfs_itable_count(f->t), 1);
}

/*
 * open(2) races a rename: we route the ESTALE'd open to a node of file a,
 * but by the kernel's retry the name names file b. b's current node may
 * be a snapshot node: a writer would be told ESTALE a second time, which
 * reaches the caller. The retry's lookup of b gets a node its open binds.
 */
static void test_retry_after_rename_opens(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *a, *b, *n;
	bool keep;

	create(f, "a");
	create(f, "b");
	a = lookup(f, "a");
	b = lookup_as(f, "b", TID + 9);
	assert_int_equal(open_read(f, a, TID + 9, &keep), 0);
	assert_int_equal(open_read(f, b, TID + 9, &keep), 0);	/* b: a READ node */
	/* A writer's open of "a": ESTALE, routed to a's write node... */
	assert_int_equal(open_write(f, a, TID), ESTALE);
	/* ...and "b" was renamed over "a": the retry looks up b. */
	n = lookup(f, "b");
	assert_ptr_not_equal(n, b);
	assert_int_equal(open_write(f, n, TID), 0);
	assert_int_equal(n->mode, SFS_NODE_WRITE);
	/* The same for a reader, on a snapshot node of an old version. */
	assert_int_equal(open_write(f, a, TID + 1), ESTALE);	/* a changes */
	sfs_itable_forget(f->t, lookup_as(f, "a", TID + 1), 1);
	struct sfs_node *w = lookup_as(f, "a", TID + 1);
	assert_int_equal(open_write(f, w, TID + 1), 0);
	bump_version(a);
	assert_int_equal(open_read(f, a, TID + 2, &keep), ESTALE);
	struct sfs_node *r = lookup_as(f, "b", TID + 2);
	assert_int_equal(open_read(f, r, TID + 2, &keep), 0);
	sfs_node_release(f->t, r);
	sfs_node_release(f->t, w);
	sfs_node_release(f->t, n);
	sfs_node_release(f->t, b);
	sfs_node_release(f->t, a);
	sfs_itable_forget(f->t, r, 1);
	sfs_itable_forget(f->t, w, 1);
	sfs_itable_forget(f->t, n, 1);
	sfs_itable_forget(f->t, b, 1);
	sfs_itable_forget(f->t, a, 1);
	assert_int_equal(sfs_itable_count(f->t), 1);
}

static void test_first_open_binds_unbound_node(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *n;

	create(f, "u");
	n = lookup(f, "u");
	assert_int_equal(open_write(f, n, TID), 0);
	assert_int_equal(n->mode, SFS_NODE_WRITE);
	sfs_node_release(f->t, n);
	/* The kernel's attributes of n are from before this change: a reader
	 * must not bind to n (it would trust a stale size). */
	bump_version(n);
	bool keep;
	assert_int_equal(open_read(f, n, TID, &keep), ESTALE);
	struct sfs_node *r = lookup(f, "u");
	assert_int_equal(open_read(f, r, TID, &keep), 0);
	sfs_node_release(f->t, r);
	sfs_itable_forget(f->t, r, 1);
	sfs_itable_forget(f->t, n, 1);
}

/* ------------------------------------------------------------------ */
/* The fd cache: file handles instead of one fd per entry              */
/* ------------------------------------------------------------------ */

#define BUDGET 16

/* Keep at most BUDGET entry fds open; skip where handles are refused. */
static void use_handles(struct fixture *f)
{
	int mount_fd = open(f->dir, O_RDONLY | O_DIRECTORY);
	int err;

	assert_true(mount_fd >= 0);
	err = sfs_itable_use_handles(f->t, mount_fd, BUDGET);
	if (err == EPERM || err == EOPNOTSUPP)
		skip();		/* not root, or no handles on /tmp */
	assert_int_equal(err, 0);
}

static struct sfs_fd_cache_stats fd_stats(struct fixture *f)
{
	struct sfs_fd_cache_stats s;

	sfs_itable_fd_stats(f->t, &s);
	return s;
}

/* Look up names n0..n(count-1), creating them; nodes into out. */
static void lookup_many(struct fixture *f, const char *prefix, int count,
			struct sfs_node **out)
{
	char name[32];

	for (int i = 0; i < count; i++) {
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		create(f, name);
		out[i] = lookup(f, name);
	}
}

/* The fd a get returns is the entry's file, whether or not it was reopened. */
static void assert_fd_is(struct fixture *f, struct sfs_node *n)
{
	int fd = sfs_inode_fd_get(f->t, n->inode);
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_ino, n->inode->ino);
	sfs_inode_fd_put(f->t, n->inode);
}

static void test_fds_beyond_budget_are_reopened(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *n[4 * BUDGET];
	int fds = open_fd_count();
	struct sfs_fd_cache_stats s;

	use_handles(f);
	lookup_many(f, "many", 4 * BUDGET, n);
	s = fd_stats(f);
	assert_int_equal(s.open, BUDGET);
	assert_int_equal(s.closes, 3 * BUDGET + 1);	/* the root keeps its own */
	assert_int_equal(sfs_itable_count(f->t), 4 * BUDGET + 1);
	/* Process-wide: the mount fd, and BUDGET fds for 65 entries. */
	assert_int_equal(open_fd_count(), fds + 1 + BUDGET - 1);
	for (int i = 0; i < 4 * BUDGET; i++)
		assert_fd_is(f, n[i]);
	s = fd_stats(f);
	assert_true(s.reopens >= 3 * BUDGET);
	assert_int_equal(s.open, BUDGET);
	for (int i = 0; i < 4 * BUDGET; i++)
		sfs_itable_forget(f->t, n[i], 1);
	assert_int_equal(fd_stats(f).open, 1);	/* the root's */
	assert_int_equal(open_fd_count(), fds + 1);
}

/* Least recently used first: an fd just used survives the next closes. */
static void test_recently_used_fds_stay(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *n[BUDGET + 4];
	uint64_t reopens;

	use_handles(f);
	lookup_many(f, "lru", BUDGET - 1, n);
	assert_fd_is(f, n[0]);		/* n[0] is now the newest */
	lookup_many(f, "more", 5, n + BUDGET - 1);
	assert_true(n[0]->inode->fd >= 0);
	assert_int_equal(n[1]->inode->fd, -1);	/* the oldest went first */
	reopens = fd_stats(f).reopens;
	assert_fd_is(f, n[0]);
	assert_int_equal(fd_stats(f).reopens, reopens);
	for (int i = 0; i < BUDGET + 4; i++)
		sfs_itable_forget(f->t, n[i], 1);
}

/* An inode with an open file (or a route) keeps its fd, whatever the budget. */
static void test_open_files_pin_fds(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *n[2 * BUDGET], *m[2 * BUDGET], *w;

	use_handles(f);
	create(f, "pinned");
	w = lookup(f, "pinned");
	assert_int_equal(open_write(f, w, TID), 0);
	lookup_many(f, "other", 2 * BUDGET, n);
	assert_true(w->inode->fd >= 0);
	sfs_node_release(f->t, w);
	lookup_many(f, "after", 2 * BUDGET, m);	/* now it may go */
	assert_int_equal(w->inode->fd, -1);
	assert_fd_is(f, w);
	for (int i = 0; i < 2 * BUDGET; i++) {
		sfs_itable_forget(f->t, n[i], 1);
		sfs_itable_forget(f->t, m[i], 1);
	}
	sfs_itable_forget(f->t, w, 1);
}

/*
 * A file deleted while its entry's fd was closed, its inode number then
 * reused by a new file: the new file gets an entry of its own (the handle's
 * generation differs), and the old entry's reopen fails ESTALE.
 */
static void test_reused_inode_number_is_a_new_entry(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *n[2 * BUDGET], *old, *new;
	struct stat st;
	ino_t ino;

	use_handles(f);
	create(f, "gone");
	old = lookup(f, "gone");
	ino = old->inode->ino;
	lookup_many(f, "push", 2 * BUDGET, n);
	assert_int_equal(old->inode->fd, -1);
	assert_int_equal(unlinkat(root_fd(f), "gone", 0), 0);
	/*
	 * ext4 gives a new file the lowest free inode number of its
	 * directory's group: after the lower holes others left, ours.
	 */
	for (int i = 0; i < 20000; i++) {
		char name[32];
		int fd;

		snprintf(name, sizeof(name), "reuse%d", i);
		fd = openat(root_fd(f), name, O_CREAT | O_WRONLY, 0644);
		assert_true(fd >= 0);
		assert_int_equal(fstat(fd, &st), 0);
		close(fd);
		if (st.st_ino == ino) {
			new = lookup(f, name);
			assert_ptr_not_equal(new->inode, old->inode);
			assert_int_equal(new->inode->ino, ino);
			assert_int_equal(sfs_inode_fd_get(f->t, old->inode), -1);
			assert_int_equal(errno, ESTALE);
			/* Both live on, each freed on its own last forget. */
			sfs_itable_forget(f->t, old, 1);
			assert_fd_is(f, new);
			assert_ptr_equal(lookup(f, name), new);
			sfs_itable_forget(f->t, new, 2);
			for (int j = 0; j < 2 * BUDGET; j++)
				sfs_itable_forget(f->t, n[j], 1);
			return;
		}
	}
	skip();		/* this filesystem did not reuse the number */
}

/* Without handles every entry keeps its fd, as before. */
static void test_without_handles_fds_stay(void **state)
{
	struct fixture *f = *state;
	struct sfs_node *n[2 * BUDGET];

	lookup_many(f, "keep", 2 * BUDGET, n);
	assert_int_equal(fd_stats(f).open, 2 * BUDGET + 1);
	assert_int_equal(fd_stats(f).closes, 0);
	for (int i = 0; i < 2 * BUDGET; i++) {
		assert_true(n[i]->inode->fd >= 0);
		sfs_itable_forget(f->t, n[i], 1);
	}
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_same_inode_same_entry),
		T(test_distinct_inodes),
		T(test_root_pinned),
		T(test_entry_survives_rename_and_unlink),
		T(test_readers_share_a_version),
		T(test_stale_reader_is_routed_to_a_new_version),
		T(test_routed_retry_always_opens),
		T(test_read_reopen_without_lookup_joins_snapshot),
		T(test_write_reopen_of_snapshot_without_lookup),
		T(test_retry_after_rename_opens),
		T(test_writers_share_one_live_node),
		T(test_first_open_binds_unbound_node),
		T(test_fds_beyond_budget_are_reopened),
		T(test_recently_used_fds_stay),
		T(test_open_files_pin_fds),
		T(test_reused_inode_number_is_a_new_entry),
		T(test_without_handles_fds_stay),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
