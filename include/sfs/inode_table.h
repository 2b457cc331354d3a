/*
 * The inode table: one entry per backing inode (st_dev, st_ino) the kernel
 * knows about, reached through an O_PATH fd. No paths are kept: every
 * operation is relative to these fds, so renames in SRC never confuse us and
 * a name is only ever resolved one component at a time below SRC.
 *
 * The kernel may cache far more inodes than a process may hold fds (a
 * directory of a million files, listed with readdirplus, is a million
 * lookups). So, where SRC's filesystem gives file handles and we may open
 * them (CAP_DAC_READ_SEARCH), an entry also keeps its file handle, and its
 * fd is only a cache: idle fds beyond a budget are closed, least recently
 * used first, and reopened from the handle (open_by_handle_at) when next
 * needed. An fd in use, or of an inode with open files or routes, is never
 * closed. Without handles every entry keeps its fd, as passthrough_ll does.
 *
 * Incarnations. The kernel caches file pages per FUSE inode and a splice
 * hands those pages out (K3 in doc/kernel-facts.md), so one FUSE inode's
 * page cache may only ever hold one version of the file. A regular file is
 * therefore shown to the kernel as one or more nodes (nodeids), each an
 * incarnation of the backing inode:
 *   - UNBOUND: looked up, never opened;
 *   - READ at version v: opened read-only; its cache and attributes show v
 *     for its whole life (snapshots);
 *   - WRITE: the live file; at most one per backing inode.
 * An open that lands on a node of the wrong kind is answered ESTALE; the
 * kernel then looks the name up again (K7) and this thread's lookup is
 * routed to the right node. Other inodes have a single node.
 */
#ifndef SFS_INODE_TABLE_H
#define SFS_INODE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sfs/history.h"
#include "sfs/range_lock.h"

struct stat;
struct sfs_store;

enum sfs_node_mode { SFS_NODE_UNBOUND, SFS_NODE_READ, SFS_NODE_WRITE };

struct sfs_inode;

struct sfs_node {
	struct sfs_inode *inode;
	/* All below protected by the table's lock. */
	enum sfs_node_mode mode;
	uint64_t version;		/* READ: the version shown */
	uint64_t size;			/* READ: v's size, as the kernel caches it */
	/* READ: v's snapshot, one ref held while open files or routes use
	 * the node (so an idle node keeps nothing preserved). */
	struct sfs_snap *snap;
	uint64_t told_version;		/* V(B) when the kernel last got attrs */
	/* Not READ: the live size and times the kernel last got (it sizes
	 * reads by that size until it asks again). */
	bool told_attrs;
	uint64_t told_size;
	struct timespec told_mtime, told_ctime;
	uint64_t nlookup;		/* the kernel's lookups of this nodeid */
	unsigned nopen;			/* open files on this node */
	unsigned pins;			/* routes pointing here */
	struct sfs_node *next;		/* in inode->nodes */
};

/* What only an inode whose bytes are read or changed needs (inode_table.c). */
struct sfs_data_state;

struct sfs_inode {
	/* O_PATH|O_NOFOLLOW, owned by the entry; -1 while closed by the fd
	 * cache (only with a handle). Use sfs_inode_fd_get()/put(). */
	int fd;
	struct file_handle *handle;	/* reopens fd; NULL: fd never closed */
	/* Fd cache, under its lock: users of fd, and the idle list. */
	unsigned fd_users;
	struct sfs_inode *idle_prev, *idle_next;
	bool in_idle;
	bool hashed;		/* in the map (not replaced by a reused ino) */
	dev_t dev;
	ino_t ino;
	mode_t type;		/* S_IFMT bits: fixed for the inode's life */
	/* Sum of the nodes' lookups; freed at zero. Table's lock. */
	uint64_t nlookup;
	struct sfs_node *nodes;	/* table's lock */
	struct sfs_node *current; /* most recently used node; table's lock */
	struct sfs_data_state *data;	/* atomic; NULL until first needed */
	/* Atomic: live reads served since writable handles were last all
	 * closed, and how many are open now (fs/ops_file.c). */
	bool live_reads;
	unsigned writers;
	/* Atomic: snapshot opens under way (fs/oob_watch.c arms the file's
	 * out-of-band watch for them before they look at it). */
	unsigned oob_opening;
	/* First opens still settling the file (fs/oob_watch.c, under the
	 * watch's done_lock): other opens wait for them. */
	unsigned oob_settling;
};

struct sfs_inode_table;

/*
 * i's history and range lock, in its data state, allocated at the first
 * call (glib aborts on OOM) and kept until i is freed.
 */
struct sfs_history *sfs_inode_history(struct sfs_inode *i);
struct sfs_range_lock *sfs_inode_range_lock(struct sfs_inode *i);
/* i's version V(B) without allocating anything: 0 before any change. */
uint64_t sfs_inode_version(struct sfs_inode *i);

/*
 * Create a table whose root entry owns root_fd (an O_PATH fd of SRC; closed
 * on failure too).
 * store: where snapshots' preserved bytes go (may be NULL: no snapshots).
 */
struct sfs_inode_table *sfs_itable_new(int root_fd, struct sfs_store *store);

/* Free every entry and close their fds. */
void sfs_itable_free(struct sfs_inode_table *t);

/*
 * Keep file handles, and at most budget idle fds open (0: no limit):
 * mount_fd is a readable (not O_PATH) fd of SRC's root, owned by the table
 * from now on. Returns 0, or why handles cannot be used here (the table
 * then keeps one fd per entry): EPERM without CAP_DAC_READ_SEARCH,
 * EOPNOTSUPP where SRC's filesystem has no handles.
 */
int sfs_itable_use_handles(struct sfs_inode_table *t, int mount_fd,
			   size_t budget);

/*
 * The O_PATH fd of i for one operation, reopened from its handle if the
 * cache closed it; -1 with errno (ESTALE: the file no longer exists).
 * Every successful get needs one sfs_inode_fd_put() when done with fd.
 */
int sfs_inode_fd_get(struct sfs_inode_table *t, struct sfs_inode *i);
void sfs_inode_fd_put(struct sfs_inode_table *t, struct sfs_inode *i);

struct sfs_fd_cache_stats {
	size_t open;		/* entries' fds open now */
	uint64_t reopens;	/* fds reopened from a handle */
	uint64_t closes;	/* idle fds closed over budget */
};
void sfs_itable_fd_stats(struct sfs_inode_table *t, struct sfs_fd_cache_stats *s);

struct sfs_node *sfs_itable_root(struct sfs_inode_table *t);

/*
 * Account one kernel lookup of the inode that fd (O_PATH) refers to, with
 * st its stat, made by thread tid. Takes ownership of fd: it becomes the
 * entry's fd, or is closed when the inode already has an entry. Returns the
 * node the kernel is to use: the one an ESTALE routed tid to, else the
 * inode's current node (a new unbound one for a new inode). NULL: errno.
 */
struct sfs_node *sfs_itable_lookup(struct sfs_inode_table *t, int fd,
				   const struct stat *st, pid_t tid);

/* tid's lookup found no file: a route it had steers nothing any more. */
void sfs_itable_route_cancel(struct sfs_inode_table *t, pid_t tid);

/* Give back n lookups; nodes and entries are freed when none remain. */
void sfs_itable_forget(struct sfs_inode_table *t, struct sfs_node *node,
		       uint64_t n);

/* Number of entries (backing inodes), root included. */
size_t sfs_itable_count(struct sfs_inode_table *t);
/* Number of nodes (incarnations), root included. */
size_t sfs_itable_node_count(struct sfs_inode_table *t);

enum sfs_open_kind {
	SFS_OPEN_READ,		/* read-only: a snapshot */
	SFS_OPEN_WRITE,		/* may modify: the live file */
	/* read-only, and never retried after ESTALE: reads what the node
	 * shows (its snapshot, or the live file on a live node) */
	SFS_OPEN_READ_IN_PLACE,
};

/*
 * Decide an open of a regular file on node by thread tid, the file being
 * at version `version` now. For SFS_OPEN_READ, snap is the snapshot at that
 * version, with a ref the call always takes over. Returns 0 (node bound;
 * *keep_cache says whether the kernel may keep the node's cached pages;
 * *shown, if not NULL, is the snapshot the open reads, held by the node
 * while it is open, or NULL: the live file), ESTALE after routing tid's
 * next lookup of this inode to the right node, or EBUSY for a reopen for
 * writing of a snapshot's open file that no lookup can steer
 * (/proc/PID/fd/N: see open_in_place).
 */
int sfs_node_open(struct sfs_inode_table *t, struct sfs_node *node,
		  enum sfs_open_kind kind, uint64_t version, struct sfs_snap *snap,
		  pid_t tid, bool *keep_cache, struct sfs_snap **shown);

/* An open file of node was released. */
void sfs_node_release(struct sfs_inode_table *t, struct sfs_node *node);

/* Routes older than this are dropped (the retry comes at once). */
#define SFS_ROUTE_TTL_NS 2000000000ull

/* The snapshot a READ node shows right now (NULL if none), with a ref. */
struct sfs_snap *sfs_node_snap(struct sfs_inode_table *t, struct sfs_node *node);

/*
 * Fill attributes the kernel should see for node: st is the live stat;
 * a READ node shows its version's size and times. Records told_version.
 */
void sfs_node_attr(struct sfs_inode_table *t, struct sfs_node *node,
		   struct stat *st);

/*
 * The nodes of i whose kernel page cache may hold live data (every node
 * but snapshot ones, whose content never changes), at most max of them.
 * Nodes may be freed once the lock is dropped: use them only as nodeids.
 */
size_t sfs_itable_live_nodes(struct sfs_inode_table *t, struct sfs_inode *i,
			     struct sfs_node **out, size_t max);

/*
 * A change was made to the file st describes, from outside the mount:
 * its open snapshots stop trusting the live file. NULL: to every file.
 * exact: as for sfs_history_mark_oob().
 * Returns how many of the file's nodes went into nodes (at most max; none
 * unless snapshots were marked), whose cached pages the caller drops: a
 * read would otherwise get those before its EIO, a short read (use them
 * only as nodeids: they may be freed once the lock is dropped).
 */
/*
 * Would a snapshot s bound to n (not yet READ) contradict what the kernel
 * caches for n? The file changed since its lookup in a way no version
 * counted (changed in SRC before the daemon knew its attributes): the
 * kernel would read s by the old size.
 */
bool sfs_node_told_differs(struct sfs_inode_table *t, struct sfs_node *n,
			   const struct sfs_snap *s);

size_t sfs_itable_mark_oob(struct sfs_inode_table *t, const struct stat *st,
			   bool exact, struct sfs_node **nodes, size_t max);

/* Every node of i, at most max of them (as nodeids only, as above). */
/*
 * For the out-of-band watch: does (dev, ino) need watching, a snapshot of
 * it being live or being taken (oob_opening)? Then its inode is returned
 * held (a node of it pinned: node->inode stays valid) until
 * sfs_itable_unhold(); else NULL.
 */
struct sfs_node *sfs_itable_hold_watched(struct sfs_inode_table *t,
					 dev_t dev, ino_t ino);
void sfs_itable_unhold(struct sfs_inode_table *t, struct sfs_node *n);

size_t sfs_itable_nodes(struct sfs_inode_table *t, struct sfs_inode *i,
			struct sfs_node **out, size_t max);

/* Counters: ESTALE redirects, nodes ever created. */
uint64_t sfs_itable_redirects(struct sfs_inode_table *t);
uint64_t sfs_itable_incarnations(struct sfs_inode_table *t);

#endif
