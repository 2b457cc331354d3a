/*
 * The entries' O_PATH fds, closed while idle over a budget and reopened
 * from file handles (fd_cache.h).
 */
#include "fd_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sfs/lock_order.h"

static void idle_add(struct sfs_fd_cache *c, struct sfs_inode *i)
{
	i->idle_prev = c->newest;
	i->idle_next = NULL;
	if (c->newest)
		c->newest->idle_next = i;
	else
		c->oldest = i;
	c->newest = i;
	i->in_idle = true;
}

static void idle_remove(struct sfs_fd_cache *c, struct sfs_inode *i)
{
	if (!i->in_idle)
		return;
	if (i->idle_prev)
		i->idle_prev->idle_next = i->idle_next;
	else
		c->oldest = i->idle_next;
	if (i->idle_next)
		i->idle_next->idle_prev = i->idle_prev;
	else
		c->newest = i->idle_prev;
	i->idle_prev = i->idle_next = NULL;
	i->in_idle = false;
}

/* With the cache's lock: close idle fds, oldest first, down to budget. */
static void fd_shrink(struct sfs_fd_cache *c)
{
	while (c->budget && c->open > c->budget && c->oldest) {
		struct sfs_inode *i = c->oldest;

		idle_remove(c, i);
		close(i->fd);
		i->fd = -1;
		c->open--;
		c->closes++;
	}
}

/* With the cache's lock: i's fd is no longer used by anyone. */
static void fd_now_idle(struct sfs_fd_cache *c, struct sfs_inode *i)
{
	if (i->handle && i->fd >= 0 && i->fd_users == 0) {
		idle_add(c, i);
		fd_shrink(c);
	}
}

/* With the cache's lock: fd (O_PATH, ours) becomes i's. */
static void fd_install(struct sfs_fd_cache *c, struct sfs_inode *i, int fd)
{
	i->fd = fd;
	c->open++;
	fd_now_idle(c, i);
}

/* With the cache's lock: i is going away. */
static void fd_drop(struct sfs_fd_cache *c, struct sfs_inode *i)
{
	idle_remove(c, i);
	if (i->fd >= 0) {
		close(i->fd);
		i->fd = -1;
		c->open--;
	}
}

union handle_buf {
	struct file_handle fh;
	char space[sizeof(struct file_handle) + MAX_HANDLE_SZ];
};

static int encode_handle(int fd, union handle_buf *b, int *mount_id)
{
	b->fh.handle_bytes = MAX_HANDLE_SZ;
	return name_to_handle_at(fd, "", &b->fh, mount_id, AT_EMPTY_PATH) ? errno : 0;
}

/*
 * The handle of the inode fd refers to, or NULL where handles are off, fail
 * or belong to another mount (a mount inside SRC: its entries keep fds).
 */
static struct file_handle *handle_of(struct sfs_fd_cache *c, int fd)
{
	union handle_buf b;
	struct file_handle *h;
	int mount_id;

	if (c->mount_fd < 0 || encode_handle(fd, &b, &mount_id) ||
	    mount_id != c->mount_id)
		return NULL;
	h = malloc(sizeof(*h) + b.fh.handle_bytes);
	if (h)
		memcpy(h, &b.fh, sizeof(*h) + b.fh.handle_bytes);
	return h;
}

static bool same_handle(const struct file_handle *a, const struct file_handle *b)
{
	return a->handle_type == b->handle_type &&
	       a->handle_bytes == b->handle_bytes &&
	       memcmp(a->f_handle, b->f_handle, a->handle_bytes) == 0;
}

/*
 * Is fd (just looked up) the file of i, which has the same (dev, ino) and
 * a handle but no fd? Their handles tell. Should fd's not be encodable,
 * whether i's still opens does: two live files never share (dev, ino).
 */
static bool same_file(struct sfs_fd_cache *c, struct sfs_inode *i, int fd)
{
	struct file_handle *h = handle_of(c, fd);
	bool same;
	int old;

	if (h) {
		same = same_handle(h, i->handle);
		free(h);
		return same;
	}
	old = open_by_handle_at(c->mount_fd, i->handle, O_PATH | O_CLOEXEC);
	if (old == -1)
		return false;
	close(old);
	return true;
}

int sfs_fd_cache_use_handles(struct sfs_fd_cache *c, int root_fd,
			     int mount_fd, size_t budget)
{
	union handle_buf root;
	int probe, err;

	/* The root's handle tells whether there are handles, and its mount;
	 * opening it whether we may (CAP_DAC_READ_SEARCH), as reopens will. */
	err = encode_handle(root_fd, &root, &c->mount_id);
	if (!err) {
		probe = open_by_handle_at(mount_fd, &root.fh, O_PATH | O_CLOEXEC);
		if (probe == -1)
			err = errno;
		else
			close(probe);
	}
	if (err) {
		close(mount_fd);
		return err;
	}
	sfs_mutex_lock(&c->lock, SFS_RANK_FD_CACHE);
	c->mount_fd = mount_fd;
	c->budget = budget;
	sfs_mutex_unlock(&c->lock);
	return 0;
}

int sfs_fd_cache_get(struct sfs_fd_cache *c, struct sfs_inode *i)
{
	int fd;

	sfs_mutex_lock(&c->lock, SFS_RANK_FD_CACHE);
	while (i->fd < 0) {
		/* Reopen outside the lock: other inodes' gets go on meanwhile. */
		sfs_mutex_unlock(&c->lock);
		fd = open_by_handle_at(c->mount_fd, i->handle,
				       O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1)
			return -1;
		sfs_mutex_lock(&c->lock, SFS_RANK_FD_CACHE);
		if (i->fd >= 0) {
			close(fd);	/* another get was quicker */
		} else {
			i->fd = fd;
			c->open++;
			c->reopens++;
		}
	}
	idle_remove(c, i);
	i->fd_users++;
	fd = i->fd;
	sfs_mutex_unlock(&c->lock);
	return fd;
}

void sfs_fd_cache_put(struct sfs_fd_cache *c, struct sfs_inode *i)
{

	sfs_mutex_lock(&c->lock, SFS_RANK_FD_CACHE);
	if (i->fd_users && --i->fd_users == 0)
		fd_now_idle(c, i);
	sfs_mutex_unlock(&c->lock);
}

void sfs_fd_cache_hold(struct sfs_fd_cache *c, struct sfs_inode *i)
{
	sfs_mutex_lock(&c->lock, SFS_RANK_FD_CACHE);
	idle_remove(c, i);
	i->fd_users++;
	sfs_mutex_unlock(&c->lock);
}

void sfs_fd_cache_stats(struct sfs_fd_cache *c, struct sfs_fd_cache_stats *s)
{
	sfs_mutex_lock(&c->lock, SFS_RANK_FD_CACHE);
	s->open = c->open;
	s->reopens = c->reopens;
	s->closes = c->closes;
	sfs_mutex_unlock(&c->lock);
}

void sfs_fd_cache_init(struct sfs_fd_cache *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->mount_fd = -1;
}

void sfs_fd_cache_destroy(struct sfs_fd_cache *c)
{
	if (c->mount_fd >= 0)
		close(c->mount_fd);
	pthread_mutex_destroy(&c->lock);
}

void sfs_fd_cache_add(struct sfs_fd_cache *c, struct sfs_inode *i, int fd)
{
	i->handle = handle_of(c, fd);
	sfs_mutex_lock(&c->lock, SFS_RANK_FD_CACHE);
	fd_install(c, i, fd);
	sfs_mutex_unlock(&c->lock);
}

void sfs_fd_cache_remove(struct sfs_fd_cache *c, struct sfs_inode *i)
{
	sfs_mutex_lock(&c->lock, SFS_RANK_FD_CACHE);
	fd_drop(c, i);
	sfs_mutex_unlock(&c->lock);
}

bool sfs_fd_cache_adopt(struct sfs_fd_cache *c, struct sfs_inode *i, int fd,
			int *spare)
{
	bool same = true;

	sfs_mutex_lock(&c->lock, SFS_RANK_FD_CACHE);
	if (i->fd >= 0) {
		*spare = fd;
	} else {
		same = same_file(c, i, fd);
		if (same)
			fd_install(c, i, fd);
	}
	sfs_mutex_unlock(&c->lock);
	return same;
}
