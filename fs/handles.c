/*
 * Open file and directory handles, remembered so that the daemon can close
 * what the kernel never released. RELEASE and RELEASEDIR are sent in the
 * background after the last close and nothing waits for them: an unmount
 * aborts the connection and drops those not read yet (valgrind saw a
 * directory handle and its DIR lost this way). After the session loop
 * ends, whatever is left is closed here. Closing a handle lives here too
 * (release and the ops' own error paths call down to it), so this file
 * never calls back up into the ops that open handles.
 */
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include "fs.h"
#include "sfs/views.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static GHashTable *files, *dirs;	/* sets of handles; protected by lock */

static void track(GHashTable **set, void *h, bool on)
{
	pthread_mutex_lock(&lock);
	if (!*set)
		*set = g_hash_table_new(g_direct_hash, g_direct_equal);
	if (on)
		g_hash_table_add(*set, h);
	else
		g_hash_table_remove(*set, h);
	pthread_mutex_unlock(&lock);
}

void sfs_handle_track_file(struct sfs_file *f, bool on)
{
	track(&files, f, on);
}

void sfs_handle_track_dir(void *d, bool on)
{
	track(&dirs, d, on);
}

/* Close f and give its node back (node_release also ends the snapshot). */
void sfs_file_close(struct sfs_fs *fs, struct sfs_file *f)
{
	close(f->fd);
	/* No writer left, so no WRITE in flight: live reads from now on are
	 * the only ones a later writer must evict after (sfs_op_write_buf). */
	if (f->writable &&
	    __atomic_sub_fetch(&f->inode->writers, 1, __ATOMIC_ACQ_REL) == 0)
		__atomic_store_n(&f->inode->live_reads, false, __ATOMIC_RELEASE);
	if (f->bound)
		sfs_node_release(fs->inodes, f->node);
	/* A view's file (view_ops.c): its snapshot and its view. */
	if (f->view) {
		sfs_history_close(sfs_inode_history(f->inode), fs->store, f->snap);
		sfs_view_put(fs->views, f->view);
	}
	free(f);
}

void sfs_dir_close(void *handle)
{
	struct sfs_dir *d = handle;

	closedir(d->dp);
	free(d);
}

static void close_file(gpointer f, gpointer unused, gpointer fs)
{
	(void)unused;
	sfs_file_close(fs, f);
}

static void close_dir(gpointer d, gpointer unused, gpointer fs)
{
	(void)unused;
	(void)fs;
	sfs_dir_close(d);
}

void sfs_handles_close_all(struct sfs_fs *fs)
{
	GHashTable *f, *d;

	pthread_mutex_lock(&lock);
	f = files;
	d = dirs;
	files = dirs = NULL;
	pthread_mutex_unlock(&lock);
	if (f) {
		g_hash_table_foreach(f, close_file, fs);
		g_hash_table_destroy(f);
	}
	if (d) {
		g_hash_table_foreach(d, close_dir, fs);
		g_hash_table_destroy(d);
	}
}
