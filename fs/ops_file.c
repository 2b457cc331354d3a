/*
 * Regular-file I/O. Reads answer with fuse_reply_data() on an fd buffer, so
 * libfuse splices backing page-cache pages into /dev/fuse without a copy;
 * writes arrive through write_buf and are spliced from the request pipe
 * into the backing fd. Both paths are where later range references hook in.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "sfs/paths.h"

/*
 * Flags for the backing open:
 * - O_APPEND is dropped: the kernel gives every write its offset (the end
 *   of file it knows), and splice(2) refuses O_APPEND destinations.
 * - O_DIRECT is dropped and honoured by FOPEN_DIRECT_IO instead: requests
 *   arrive with the caller's offsets and lengths, which the backing FS
 *   might reject as misaligned, and the FUSE page cache is bypassed anyway.
 * - creation flags were handled by create() already.
 */
static int backing_flags(int flags)
{
	return (flags & ~(O_APPEND | O_DIRECT | O_CREAT | O_EXCL | O_NOCTTY)) |
	       O_CLOEXEC;
}

static void set_open_flags(struct fuse_file_info *fi, int flags)
{
	fi->direct_io = (flags & O_DIRECT) ? 1 : 0;
	fi->keep_cache = 0;
	/* The backing FS answers lseek (SEEK_DATA/SEEK_HOLE need us). */
	fi->nonseekable = 0;
}

static struct sfs_file *file_new(int fd, struct sfs_inode *inode)
{
	struct sfs_file *f = calloc(1, sizeof(*f));

	if (f) {
		f->fd = fd;
		f->inode = inode;
	}
	return f;
}

static void file_free(struct sfs_file *f)
{
	close(f->fd);
	free(f);
}

/* Reply to open/create; if the opener is gone, nobody will release f. */
static void reply_opened(fuse_req_t req, struct fuse_file_info *fi,
			 struct sfs_file *f, const struct fuse_entry_param *e)
{
	int res;

	fi->fh = (uintptr_t)f;
	res = e ? fuse_reply_create(req, e, fi) : fuse_reply_open(req, fi);
	if (res == -ENOENT) {
		if (e)
			sfs_itable_forget(sfs_fs_of(req)->inodes, f->inode, 1);
		file_free(f);
	}
}

void sfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_inode *inode = sfs_inode_of(req, ino);
	char path[SFS_PROC_PATH_MAX];
	struct sfs_file *f;
	int fd;

	sfs_proc_path(path, inode->fd);
	fd = open(path, backing_flags(fi->flags));
	if (fd == -1)
		return (void)fuse_reply_err(req, errno);
	f = file_new(fd, inode);
	if (!f) {
		close(fd);
		return (void)fuse_reply_err(req, ENOMEM);
	}
	set_open_flags(fi, fi->flags);
	reply_opened(req, fi, f, NULL);
}

/* Create as the caller, so the file is theirs and setgid dirs apply. */
static int create_as_caller(fuse_req_t req, struct sfs_inode *dir,
			    const char *name, mode_t mode, int flags, int *fd)
{
	int err = sfs_become_caller(req);

	if (err)
		return err;
	*fd = openat(dir->fd, name, backing_flags(flags) | O_CREAT |
		     (flags & O_EXCL) | O_NOFOLLOW, mode);
	err = *fd == -1 ? errno : 0;
	sfs_become_daemon(req);
	return err;
}

void sfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		   mode_t mode, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = sfs_fs_of(req);
	char path[SFS_PROC_PATH_MAX];
	struct fuse_entry_param e;
	struct sfs_file *f;
	int fd, path_fd, err;

	if (!sfs_name_is_safe(name))
		return (void)fuse_reply_err(req, EINVAL);
	err = create_as_caller(req, sfs_inode_of(req, parent), name, mode,
			       fi->flags, &fd);
	if (err)
		return (void)fuse_reply_err(req, err);
	/* The O_PATH fd comes from the open fd: the very inode we created,
	 * even if the name was replaced in SRC meanwhile. */
	sfs_proc_path(path, fd);
	path_fd = open(path, O_PATH | O_CLOEXEC);
	err = path_fd == -1 ? errno : sfs_entry_from_fd(fs, path_fd, &e);
	if (err) {
		close(fd);
		return (void)fuse_reply_err(req, err);
	}
	f = file_new(fd, sfs_inode_of(req, e.ino));
	if (!f) {
		sfs_itable_forget(fs->inodes, sfs_inode_of(req, e.ino), 1);
		close(fd);
		return (void)fuse_reply_err(req, ENOMEM);
	}
	set_open_flags(fi, fi->flags);
	reply_opened(req, fi, f, &e);
}

void sfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = sfs_file_of(fi)->fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void sfs_op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
		      off_t off, struct fuse_file_info *fi)
{
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	ssize_t res;

	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = sfs_file_of(fi)->fd;
	out.buf[0].pos = off;
	res = fuse_buf_copy(&out, in, 0);
	if (res < 0)
		fuse_reply_err(req, (int)-res);
	else
		fuse_reply_write(req, (size_t)res);
}

void sfs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close() of a duplicate: what the backing FS does at close (NFS
	 * flushes, POSIX lock release) happens at the caller's close. */
	int res = close(dup(sfs_file_of(fi)->fd));

	fuse_reply_err(req, res == -1 ? errno : 0);
}

void sfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	file_free(sfs_file_of(fi));
	fuse_reply_err(req, 0);
}

void sfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		  struct fuse_file_info *fi)
{
	int fd = sfs_file_of(fi)->fd;
	int res = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, res == -1 ? errno : 0);
}

void sfs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
		      off_t len, struct fuse_file_info *fi)
{
	int res = fallocate(sfs_file_of(fi)->fd, mode, off, len);

	fuse_reply_err(req, res == -1 ? errno : 0);
}

void sfs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		  struct fuse_file_info *fi)
{
	off_t res = lseek(sfs_file_of(fi)->fd, off, whence);

	if (res == -1)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, res);
}

void sfs_op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			    struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			    off_t off_out, struct fuse_file_info *fi_out,
			    size_t len, int flags)
{
	loff_t in = off_in, out = off_out;
	ssize_t res = copy_file_range(sfs_file_of(fi_in)->fd, &in,
				      sfs_file_of(fi_out)->fd, &out, len,
				      (unsigned)flags);

	if (res == -1)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, (size_t)res);
}
