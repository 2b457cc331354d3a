/*
 * kfuse_daemon: a deliberately naive FUSE daemon for kernel_facts_fuse.c.
 *
 * K4 and K5 (doc/kernel-facts.md) are facts about FUSE itself: what the
 * kernel does to the FUSE inode's page cache (and so to pipes holding its
 * pages after splice) when a file is written, mapped, truncated or punched.
 * stablefs hides those effects by design, so they are measured on this daemon
 * instead. It serves ONE regular file, "f", at the root of the mount, backed
 * by a file given on the command line, and does nothing to protect pipes
 * unless told to:
 *
 *   kfuse_daemon BACKING MNT [--direct-io-writes] [--evict-before-truncate]
 *                            [--evict-before-punch]
 *
 *   --direct-io-writes      write-capable opens get FOPEN_DIRECT_IO
 *   --evict-before-truncate a size change first evicts [newsize, EOF) from
 *                           the FUSE page cache (notify_inval_inode), then
 *                           truncates the backing file
 *   --evict-before-punch    punch hole / zero range first evicts the range
 *
 * It runs in the foreground, multi-threaded (an eviction waits for folio
 * locks of reads in flight, which another thread must be free to serve),
 * and exits when unmounted or on SIGTERM/SIGINT/SIGHUP. The mount's type is
 * "fuse.kfuse".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 314
#endif
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_INO 2	/* FUSE_ROOT_ID is 1 */
#define FILE_NAME "f"
#define TIMEOUT 3600.0	/* attributes and entries: no refresh during a test */

static struct {
	int fd;			/* the backing file, O_RDWR */
	struct fuse_session *se;
	bool direct_io_writes;
	bool evict_before_truncate;
	bool evict_before_punch;
} kf = { .fd = -1 };

/* The attributes of ino, taken from the backing file for "f". */
static int kf_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	if (ino == FUSE_ROOT_ID) {
		st->st_ino = FUSE_ROOT_ID;
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (ino != FILE_INO)
		return ENOENT;
	if (fstat(kf.fd, st))
		return errno;
	st->st_ino = FILE_INO;
	return 0;
}

static void kf_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Like stablefs: splice both ways, no write-back cache. */
	conn->want |= conn->capable & (FUSE_CAP_SPLICE_READ |
		FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static void kf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = { .ino = FILE_INO, .attr_timeout = TIMEOUT,
				      .entry_timeout = TIMEOUT };
	int err;

	if (parent != FUSE_ROOT_ID || strcmp(name, FILE_NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	err = kf_stat(FILE_INO, &e.attr);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void kf_getattr(fuse_ino_t ino, fuse_req_t req)
{
	struct stat st;
	int err = kf_stat(ino, &st);

	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

/* Wrapper with the argument order of the ops table. */
static void kf_op_getattr(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)fi;
	kf_getattr(ino, req);
}

/* Evict [off, off+len) (len 0: to EOF) from the FUSE inode's page cache. */
static void kf_evict(off_t off, off_t len)
{
	int res = fuse_lowlevel_notify_inval_inode(kf.se, FILE_INO, off, len);

	if (res && res != -ENOENT)
		fprintf(stderr, "kfuse: notify_inval_inode: %s\n", strerror(-res));
}

/* Only sizes (and the time stamps the kernel sends along) are supported. */
static void kf_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)fi;
	if (ino != FILE_INO) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		/* From this handler thread: other threads serve reads meanwhile. */
		if (kf.evict_before_truncate)
			kf_evict(attr->st_size, 0);
		if (ftruncate(kf.fd, attr->st_size)) {
			fuse_reply_err(req, errno);
			return;
		}
	}
	kf_getattr(ino, req);
}

static void kf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FILE_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	/* All handles share kf.fd; fi->fh is unused. */
	fi->direct_io = kf.direct_io_writes &&
			(fi->flags & O_ACCMODE) != O_RDONLY;
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

static void kf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ino;
	(void)fi;
	/* libfuse splices from the backing fd into /dev/fuse if it can. */
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = kf.fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void kf_write_buf(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	ssize_t n;

	(void)ino;
	(void)fi;
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = kf.fd;
	out.buf[0].pos = off;
	n = fuse_buf_copy(&out, in, 0);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void kf_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	if (kf.evict_before_punch &&
	    (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)))
		kf_evict(off, len);
	fuse_reply_err(req, fallocate(kf.fd, mode, off, len) ? errno : 0);
}

static void kf_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* ".", ".." and "f", all in one reply. */
static void kf_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	static const char *const names[] = { ".", "..", FILE_NAME };
	char buf[512];
	size_t used = 0;

	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	for (off_t i = off; i < 3; i++) {
		struct stat st = { .st_ino = i == 2 ? FILE_INO : FUSE_ROOT_ID,
				   .st_mode = i == 2 ? S_IFREG : S_IFDIR };
		size_t n = fuse_add_direntry(req, buf + used, sizeof(buf) - used,
					     names[i], &st, i + 1);

		if (used + n > sizeof(buf) || used + n > size)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

static const struct fuse_lowlevel_ops kf_ops = {
	.init = kf_init,
	.lookup = kf_lookup,
	.getattr = kf_op_getattr,
	.setattr = kf_setattr,
	.open = kf_open,
	.read = kf_read,
	.write_buf = kf_write_buf,
	.fallocate = kf_fallocate,
	.release = kf_release,
	.readdir = kf_readdir,
};

static int usage(const char *argv0)
{
	fprintf(stderr, "usage: %s BACKING MNT [--direct-io-writes] "
		"[--evict-before-truncate] [--evict-before-punch]\n", argv0);
	return 2;
}

int main(int argc, char *argv[])
{
	char *fargv[] = { argv[0], "-o", "fsname=kfuse,subtype=kfuse", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_loop_config *cfg;
	int rc = 1;

	if (argc < 3)
		return usage(argv[0]);
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--direct-io-writes") == 0)
			kf.direct_io_writes = true;
		else if (strcmp(argv[i], "--evict-before-truncate") == 0)
			kf.evict_before_truncate = true;
		else if (strcmp(argv[i], "--evict-before-punch") == 0)
			kf.evict_before_punch = true;
		else
			return usage(argv[0]);
	}
	kf.fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (kf.fd < 0) {
		fprintf(stderr, "kfuse: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	kf.se = fuse_session_new(&args, &kf_ops, sizeof(kf_ops), NULL);
	if (!kf.se)
		goto out_fd;
	if (fuse_set_signal_handlers(kf.se))
		goto out_session;
	if (fuse_session_mount(kf.se, argv[2]))
		goto out_signals;
	cfg = fuse_loop_cfg_create();
	if (cfg) {
		fuse_loop_cfg_set_clone_fd(cfg, 0);
		rc = fuse_session_loop_mt(kf.se, cfg) ? 1 : 0;
		fuse_loop_cfg_destroy(cfg);
	}
	fuse_session_unmount(kf.se);
out_signals:
	fuse_remove_signal_handlers(kf.se);
out_session:
	fuse_session_destroy(kf.se);
out_fd:
	close(kf.fd);
	fuse_opt_free_args(&args);
	return rc;
}
