/*
 * What views keep and check of an object, shared by the code that takes
 * views (views.c) and the code that serves them (view_ops.c): directory
 * listings, xattr lists, and the horizon test for changes from outside.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "view.h"
#include "sfs/stats.h"

/* ---- directories and xattrs as a view keeps them ---------------------- */

static void dirent_clear(gpointer p)
{
	g_free(((struct view_dirent *)p)->name);
}

struct view_dir *view_dir_new(void)
{
	struct view_dir *d = g_new0(struct view_dir, 1);

	d->entries = g_array_new(FALSE, FALSE, sizeof(struct view_dirent));
	g_array_set_clear_func(d->entries, dirent_clear);
	d->by_name = g_hash_table_new(g_str_hash, g_str_equal);
	d->refs = 1;
	return d;
}

struct view_dir *view_dir_read(int path_fd)
{
	struct view_dir *d;
	struct dirent *e;
	DIR *dp;
	int fd = openat(path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || !(dp = fdopendir(fd))) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		errno = err;
		return NULL;
	}
	d = view_dir_new();
	errno = 0;
	while ((e = readdir(dp))) {
		struct view_dirent de = {
			.name = g_strdup(e->d_name), .ino = e->d_ino,
			.type = e->d_type,
		};

		g_array_append_val(d->entries, de);
		errno = 0;
	}
	if (errno) {
		int err = errno;

		closedir(dp);
		view_dir_put(d);
		errno = err;
		return NULL;
	}
	closedir(dp);
	/* Names point into the entries, which no longer move. */
	for (guint i = 0; i < d->entries->len; i++)
		g_hash_table_insert(d->by_name,
				    g_array_index(d->entries, struct view_dirent, i).name,
				    GUINT_TO_POINTER(i + 1));
	return d;
}

void view_dir_put(struct view_dir *d)
{
	if (!d || __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL))
		return;
	g_hash_table_destroy(d->by_name);
	g_array_free(d->entries, TRUE);
	g_free(d);
}

const struct view_dirent *view_dir_find(const struct view_dir *d,
					const char *name)
{
	guint i = GPOINTER_TO_UINT(g_hash_table_lookup(d->by_name, name));

	return i ? &g_array_index(d->entries, struct view_dirent, i - 1) : NULL;
}

int view_xattrs_read(int path_fd, GByteArray **out, bool *known)
{
	char path[SFS_PROC_PATH_MAX];
	char *names = NULL;
	ssize_t n;
	GByteArray *a;

	*out = NULL;
	*known = false;
	sfs_proc_path(path, path_fd);
	/* The list may grow between the calls (not through MNT: the gate
	 * holds those); retry a few times like getfattr does. */
	for (int tries = 0;; tries++) {
		n = listxattr(path, NULL, 0);
		if (n < 0)
			return errno == ENOTSUP ? 0 : errno;
		names = g_realloc(names, (size_t)n + 1);
		n = listxattr(path, names, (size_t)n);
		if (n >= 0)
			break;
		if (errno != ERANGE || tries == 4) {
			int err = errno;

			g_free(names);
			return err;
		}
	}
	a = g_byte_array_new();
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(names + off) + 1) {
		const char *name = names + off;
		ssize_t size = getxattr(path, name, NULL, 0);
		char *value;
		uint32_t len;

		if (size < 0)
			continue;	/* gone meanwhile, or not ours to read */
		value = g_malloc((size_t)size + 1);
		size = getxattr(path, name, value, (size_t)size);
		if (size >= 0) {
			len = (uint32_t)size;
			g_byte_array_append(a, (const guint8 *)name, (guint)strlen(name) + 1);
			g_byte_array_append(a, (const guint8 *)&len, sizeof(len));
			g_byte_array_append(a, (const guint8 *)value, len);
		}
		g_free(value);
	}
	g_free(names);
	*out = a;
	*known = true;
	return 0;
}

/* ---- the horizon ------------------------------------------------------ */

bool view_ts_after(struct timespec a, struct timespec b)
{
	return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

bool view_changed_outside(const struct sfs_view *view, const struct stat *st)
{
	return view_ts_after(st->st_ctim, sfs_view_horizon(view));
}

void view_note_outside(const struct sfs_view *view, const struct stat *st)
{
	static bool logged;

	sfs_stat_add(SFS_STAT_VIEW_EIO, 1);
	if (__atomic_exchange_n(&logged, true, __ATOMIC_RELAXED))
		return;
	fuse_log(FUSE_LOG_WARNING, "stablefs: view %s: inode %llu changed "
		 "outside the mount after the view was taken: it answers EIO "
		 "(said once)\n", sfs_view_name(view),
		 (unsigned long long)st->st_ino);
}

