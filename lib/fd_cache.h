/*
 * The entries' O_PATH fds (the engine's own: inode_table.c uses it).
 *
 * With file handles (sfs_itable_use_handles), an entry's fd may be closed
 * while nobody uses it, oldest idle first, to keep at most `budget` open,
 * and is reopened from the handle at its next use. Its lock is taken
 * inside the table's, never around it; get and put take only this one.
 */
#ifndef SFS_FD_CACHE_H
#define SFS_FD_CACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sfs/inode_table.h"

struct sfs_fd_cache {
	pthread_mutex_t lock;
	int mount_fd;			/* -1: no handles, every fd stays */
	int mount_id;			/* handles only for inodes on this mount */
	size_t budget;			/* close idle fds while more are open */
	struct sfs_inode *oldest, *newest;	/* idle fds, by last use */
	size_t open;
	uint64_t reopens, closes;
};

void sfs_fd_cache_init(struct sfs_fd_cache *c);
void sfs_fd_cache_destroy(struct sfs_fd_cache *c);

/* See sfs_itable_use_handles(); root_fd: an fd of SRC's root. */
int sfs_fd_cache_use_handles(struct sfs_fd_cache *c, int root_fd,
			     int mount_fd, size_t budget);

/* fd (O_PATH, ours now) becomes new entry i's, with i's handle. */
void sfs_fd_cache_add(struct sfs_fd_cache *c, struct sfs_inode *i, int fd);
/* i is going away: its fd is closed. */
void sfs_fd_cache_remove(struct sfs_fd_cache *c, struct sfs_inode *i);
/*
 * Is fd (just looked up, same dev and ino as i) the file of i? If so and
 * i has no fd, fd becomes i's; if i has one, fd is left in *spare.
 */
bool sfs_fd_cache_adopt(struct sfs_fd_cache *c, struct sfs_inode *i, int fd,
			int *spare);

int sfs_fd_cache_get(struct sfs_fd_cache *c, struct sfs_inode *i);
void sfs_fd_cache_put(struct sfs_fd_cache *c, struct sfs_inode *i);
/*
 * Keep i's fd while it has open files or routes: their operations (and a
 * snapshot's preservation) need it, and an unlinked file is best kept
 * open. Does not reopen a closed fd: the next get does, and then it stays.
 * Undone by one put.
 */
void sfs_fd_cache_hold(struct sfs_fd_cache *c, struct sfs_inode *i);

void sfs_fd_cache_stats(struct sfs_fd_cache *c, struct sfs_fd_cache_stats *s);

#endif
