/*
 * The inode table: one entry per backing inode (st_dev, st_ino) the kernel
 * knows about, holding an O_PATH fd to it. No paths are kept: every
 * operation is relative to these fds, so renames in SRC never confuse us and
 * a name is only ever resolved one component at a time below SRC.
 */
#ifndef SFS_INODE_TABLE_H
#define SFS_INODE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sfs/range_lock.h"

struct stat;

struct sfs_inode {
	int fd;			/* O_PATH|O_NOFOLLOW, owned by the entry */
	dev_t dev;
	ino_t ino;
	mode_t type;		/* S_IFMT bits: fixed for the inode's life */
	/*
	 * How many lookups the kernel holds (FORGET gives them back); the
	 * entry is freed when it reaches zero. Protected by the table's lock.
	 */
	uint64_t nlookup;
	/* Orders reads against modifications of this inode's bytes. */
	struct sfs_range_lock range_lock;
};

struct sfs_inode_table;

/* Create a table whose root entry owns root_fd (an O_PATH fd of SRC). */
struct sfs_inode_table *sfs_itable_new(int root_fd);

/* Free every entry and close their fds. */
void sfs_itable_free(struct sfs_inode_table *t);

struct sfs_inode *sfs_itable_root(struct sfs_inode_table *t);

/*
 * Account one kernel lookup of the inode that fd (O_PATH) refers to, with
 * st its stat. Takes ownership of fd: it becomes the entry's fd, or is closed
 * when the inode already has an entry. Returns the entry, or NULL with errno.
 */
struct sfs_inode *sfs_itable_lookup(struct sfs_inode_table *t, int fd,
				    const struct stat *st);

/* Give back n lookups; the entry is freed when none remain (not the root). */
void sfs_itable_forget(struct sfs_inode_table *t, struct sfs_inode *inode,
		       uint64_t n);

/* Number of entries, root included. */
size_t sfs_itable_count(struct sfs_inode_table *t);

#endif
