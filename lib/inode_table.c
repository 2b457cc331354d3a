#include "sfs/inode_table.h"

#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct sfs_inode_table {
	pthread_mutex_t lock;		/* protects map and every nlookup */
	GHashTable *map;		/* struct sfs_inode* -> itself, by (dev, ino) */
	struct sfs_inode *root;
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

static void inode_destroy(gpointer p)
{
	struct sfs_inode *i = p;

	sfs_range_lock_destroy(&i->range_lock);
	close(i->fd);
	free(i);
}

static struct sfs_inode *inode_new(int fd, const struct stat *st)
{
	struct sfs_inode *i = calloc(1, sizeof(*i));

	if (!i)
		return NULL;
	i->fd = fd;
	i->dev = st->st_dev;
	i->ino = st->st_ino;
	i->type = st->st_mode & S_IFMT;
	sfs_range_lock_init(&i->range_lock);
	return i;
}

struct sfs_inode_table *sfs_itable_new(int root_fd)
{
	struct sfs_inode_table *t = calloc(1, sizeof(*t));
	struct stat st;

	if (!t)
		return NULL;
	if (fstat(root_fd, &st) == -1 || !(t->root = inode_new(root_fd, &st))) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->map = g_hash_table_new_full(inode_hash, inode_equal, NULL, inode_destroy);
	/* The root is pinned: the kernel never forgets it while mounted. */
	t->root->nlookup = 1;
	g_hash_table_add(t->map, t->root);
	return t;
}

void sfs_itable_free(struct sfs_inode_table *t)
{
	if (!t)
		return;
	g_hash_table_destroy(t->map);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct sfs_inode *sfs_itable_root(struct sfs_inode_table *t)
{
	return t->root;
}

struct sfs_inode *sfs_itable_lookup(struct sfs_inode_table *t, int fd,
				    const struct stat *st)
{
	struct sfs_inode key = { .dev = st->st_dev, .ino = st->st_ino };
	struct sfs_inode *i;

	pthread_mutex_lock(&t->lock);
	i = g_hash_table_lookup(t->map, &key);
	if (i) {
		/*
		 * Holding an fd pins the inode, so (dev, ino) cannot have been
		 * reused: this is the same file, and the new fd is redundant.
		 */
		close(fd);
	} else {
		i = inode_new(fd, st);
		if (!i) {
			pthread_mutex_unlock(&t->lock);
			close(fd);
			errno = ENOMEM;
			return NULL;
		}
		g_hash_table_add(t->map, i);
	}
	i->nlookup++;
	pthread_mutex_unlock(&t->lock);
	return i;
}

void sfs_itable_forget(struct sfs_inode_table *t, struct sfs_inode *inode,
		       uint64_t n)
{
	pthread_mutex_lock(&t->lock);
	inode->nlookup = n >= inode->nlookup ? 0 : inode->nlookup - n;
	if (inode->nlookup == 0 && inode != t->root)
		g_hash_table_remove(t->map, inode);	/* frees it */
	else if (inode == t->root && inode->nlookup == 0)
		inode->nlookup = 1;
	pthread_mutex_unlock(&t->lock);
}

size_t sfs_itable_count(struct sfs_inode_table *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = g_hash_table_size(t->map);
	pthread_mutex_unlock(&t->lock);
	return n;
}
