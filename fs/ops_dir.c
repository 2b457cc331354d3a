/*
 * Directory handles: readdir and readdirplus over a DIR stream of the
 * backing directory. Offsets are the backing telldir() cookies, so a reader
 * that seeks back (seekdir) resumes exactly where the backing FS says.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

static struct sfs_dir *dir_of(struct fuse_file_info *fi)
{
	return (struct sfs_dir *)(uintptr_t)fi->fh;
}

int sfs_dir_fd(struct fuse_file_info *fi)
{
	return dirfd(dir_of(fi)->dp);
}

void sfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_inode *inode = sfs_inode_of(req, ino);
	struct sfs_dir *d = calloc(1, sizeof(*d));
	int path_fd, fd = -1, err;

	if (!d)
		return (void)fuse_reply_err(req, ENOMEM);
	path_fd = sfs_fd_get(req, inode);
	if (path_fd >= 0) {
		fd = openat(path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		err = errno;
		sfs_fd_put(req, inode);
		errno = err;
	}
	if (fd == -1 || !(d->dp = fdopendir(fd))) {
		err = errno;
		if (fd != -1)
			close(fd);
		free(d);
		return (void)fuse_reply_err(req, err);
	}
	fi->fh = (uintptr_t)d;
	sfs_handle_track_dir(d, true);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* The opener was interrupted: nobody will release this. */
		sfs_handle_track_dir(d, false);
		sfs_dir_close(d);
	}
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' &&
	       (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/*
 * Append one entry to buf. For readdirplus, the entry is looked up (the
 * kernel then holds one lookup of it) except . and .., which the kernel
 * never looks up this way. Returns bytes used, 0 if it did not fit (any
 * lookup taken is given back), or -1 with errno (ENOENT: the entry went
 * away meanwhile).
 */
static ssize_t add_entry(fuse_req_t req, fuse_ino_t ino, bool plus, char *buf,
			 size_t rem, struct dirent *de, off_t next)
{
	struct fuse_entry_param e = { 0 };
	size_t size;
	int err;

	if (!plus) {
		struct stat st = { .st_ino = de->d_ino, .st_mode = DTTOIF(de->d_type) };

		size = fuse_add_direntry(req, buf, rem, de->d_name, &st, next);
		return size > rem ? 0 : (ssize_t)size;
	}
	if (is_dot_or_dotdot(de->d_name)) {
		e.attr.st_ino = de->d_ino;
		e.attr.st_mode = DTTOIF(de->d_type);
	} else {
		err = sfs_do_lookup(req, sfs_inode_of(req, ino), de->d_name, &e);
		if (err) {
			errno = err;
			return -1;
		}
	}
	size = fuse_add_direntry_plus(req, buf, rem, de->d_name, &e, next);
	if (size > rem) {
		if (e.ino)
			sfs_itable_forget(sfs_fs_of(req)->inodes,
					  sfs_node_of(req, e.ino), 1);
		return 0;
	}
	return (ssize_t)size;
}

/*
 * The views' directory is entered by name only (like ZFS's .zfs): a backup
 * of MNT must not descend into every view of it. An entry of that name in
 * SRC's root is hidden behind it.
 */
static bool hidden(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct sfs_fs *fs = sfs_fs_of(req);

	return ino == FUSE_ROOT_ID && fs->views && !strcmp(name, sfs_snapdir(fs));
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		       struct fuse_file_info *fi, bool plus)
{
	struct sfs_dir *d = dir_of(fi);
	char *buf = malloc(size);
	size_t used = 0;
	int err = 0;

	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		ssize_t n;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				err = errno;	/* 0 at the end */
				break;
			}
		}
		n = hidden(req, ino, d->entry->d_name) ? -1 :
			add_entry(req, ino, plus, buf + used, size - used,
				  d->entry, telldir(d->dp));
		if (n < 0 && hidden(req, ino, d->entry->d_name))
			errno = ENOENT;	/* skipped, as if unlinked */
		if (n == 0)
			break;		/* full: keep d->entry for next time */
		if (n < 0 && errno != ENOENT) {	/* ENOENT: raced with an unlink */
			err = errno;
			break;
		}
		used += n > 0 ? (size_t)n : 0;
		d->offset = telldir(d->dp);
		d->entry = NULL;
	}
	/* An error after some entries: return those, report it next time. */
	if (err && used == 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

void sfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
		    struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, offset, fi, false);
}

void sfs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			off_t offset, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, offset, fi, true);
}

void sfs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_dir *d = dir_of(fi);

	sfs_handle_track_dir(d, false);
	sfs_dir_close(d);
	fuse_reply_err(req, 0);
}

void sfs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	int fd = dirfd(dir_of(fi)->dp);
	int res = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, res == -1 ? errno : 0);
}
