/*
 * stablefs [options] SRC MNT: parse, check, mount, daemonize once mounted,
 * serve until unmounted or signalled.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/quota.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <unistd.h>

#include "cli.h"
#include "fs.h"
#include "sfs/cred.h"
#include "sfs/paths.h"

static bool log_to_syslog;
static bool log_to_journal;	/* stderr is systemd's journal: "<N>" prefixes */
static enum fuse_log_level log_max = FUSE_LOG_INFO;
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;

/* Control characters and non-ASCII bytes as \n, \t, \xNN: one line. */
static void put_escaped(const char *s, size_t len, FILE *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			fputs("\\n", out);
		else if (c == '\t')
			fputs("\\t", out);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\x%02x", c);
		else
			fputc(c, out);
	}
}

/*
 * "stablefs: " at the start of each line, libfuse's "fuse: " dropped.
 * libfuse builds some messages from several calls ("unknown option(s):
 * `-o x'"), so the prefix goes only where a line starts.
 */
static void log_line(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static bool line_start = true;
	char msg[1024];
	const char *m = msg;
	size_t n;

	if (level > log_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_to_syslog) {
		syslog((int)level, "%s", strncmp(m, "fuse: ", 6) ? m : m + 6);
		return;
	}
	pthread_mutex_lock(&log_mutex);
	if (line_start) {
		if (strncmp(m, "fuse: ", 6) == 0)
			m += 6;
		if (strncmp(m, "stablefs: ", 10) == 0)
			m += 10;
		if (log_to_journal)
			fprintf(stderr, "<%d>", (int)level);
		fputs("stablefs: ", stderr);
	}
	/* Pieces may quote user text (libfuse's "unknown option(s): `...'"):
	 * escaped and capped so that a message stays one short line. */
	n = strlen(m);
	line_start = n > 0 && m[n - 1] == '\n';
	put_escaped(m, (line_start ? n - 1 : n) < 300 ? (line_start ? n - 1 : n) : 300,
		    stderr);
	if (line_start)
		fputc('\n', stderr);
	pthread_mutex_unlock(&log_mutex);
}

/*
 * Under systemd (the unit runs stablefs -f), stderr is a stream into the
 * journal, and a line starting "<N>" gets syslog priority N there, so that
 * journalctl -p err shows the errors; plain lines would all be "info".
 * JOURNAL_STREAM names that stream's device:inode: only if stderr still is
 * it (not redirected by a script, not a terminal) are the prefixes added.
 * fuse_log levels are syslog's.
 */
static bool stderr_is_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return stream && sscanf(stream, "%llu:%llu", &dev, &ino) == 2 &&
	       fstat(STDERR_FILENO, &st) == 0 &&
	       (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: stablefs [options] SRC MNT\n"
		"       stablefs stats MNT [--json]\n"
		"       stablefs snapshot MNT NAME | --list MNT [--json] | --delete MNT NAME\n\n"
		"Mounts a passthrough view of SRC on MNT whose spliced and\n"
		"snapshot reads stay stable while the file changes.\n"
		"Detach with: fusermount3 -u MNT\n\n%s\n",
		sfs_options_help());
	fflush(out);
}

/* One clear line on stderr, whatever user text it quotes; returns 1. */
static int fail(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_to_journal)
		fprintf(stderr, "<%d>", LOG_ERR);
	fputs("stablefs: ", stderr);
	put_escaped(msg, strlen(msg), stderr);
	fputc('\n', stderr);
	return 1;
}

static int check_dev_fuse(void)
{
	int fd;

	if (access("/dev/fuse", F_OK) == -1)
		return fail("/dev/fuse does not exist (load the fuse module: modprobe fuse)");
	if (geteuid() != 0)
		return 0;	/* fusermount3 opens it for unprivileged users */
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd == -1)
		return fail("cannot open /dev/fuse: %s", strerror(errno));
	close(fd);
	return 0;
}

/*
 * The default cap on preserved bytes: half the store's free space at mount.
 * The daemon writes the store as root, past quotas and ext4's root reserve:
 * without a cap, one user's overwrites under another's snapshots could fill
 * SRC's filesystem for everyone. Past the cap the oldest snapshots are
 * invalidated, writers never wait. -o max_preserve=0 means no cap.
 */
static uint64_t default_max_preserve(int dirfd)
{
	struct statvfs sv;

	if (fstatvfs(dirfd, &sv) == -1)
		return 0;
	return (uint64_t)sv.f_bavail * sv.f_frsize / 2;
}

static bool same_filesystem(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev;
}

/*
 * The snapshot store: anonymous files in -o store=DIR, or by default on
 * SRC's own filesystem (reflinks possible, nothing visible in SRC).
 */
static int open_store(struct sfs_fs *fs, const char *mnt)
{
	const char *dir = fs->opts.store ? fs->opts.store : fs->src_real;
	char err[512], real[PATH_MAX], real_mnt[PATH_MAX];
	int dirfd;

	if (!fs->opts.snapshot)
		return 0;
	/* realpath() may write PATH_MAX bytes: not into err. */
	if (fs->opts.store && realpath(dir, real) && realpath(mnt, real_mnt) &&
	    sfs_path_within(real, real_mnt))
		return fail("-o store=%s is inside MNT: it would recurse", dir);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd == -1)
		return fail("-o store=%s: %s", dir, strerror(errno));
	if (!fs->opts.max_preserve_str)
		fs->opts.max_preserve = default_max_preserve(dirfd);
	fs->store = sfs_store_new(dirfd, err, sizeof(err));
	close(dirfd);
	if (!fs->store)
		return fail("%s in '%s' (use -o store=DIR elsewhere, or -o snapshot=off)",
			    err, dir);
	sfs_store_set_max(fs->store, fs->opts.max_preserve);
	/* Clones where SRC's files can be cloned into the store: the store
	 * on SRC's filesystem (the default, or -o store= there). */
	sfs_store_use_clones(fs->store, fs->opts.clone &&
			     sfs_store_can_clone(fs->store) &&
			     same_filesystem(fs->src_real, dir));
	sfs_history_detect_oob(fs->opts.oob != SFS_OOB_IGNORE);
	return 0;
}

/* 0, or ENOMEM (fuse_opt says no more than that). */
static int add_mount_options(struct fuse_args *args, const char *src_real)
{
	char *fsname = NULL, *arg = NULL;
	int err = ENOMEM;

	/* The kernel checks permissions against the attributes we report. */
	if (fuse_opt_add_arg(args, "-odefault_permissions") == 0 &&
	    fuse_opt_add_arg(args, "-osubtype=stablefs") == 0 &&
	    fuse_opt_add_opt_escaped(&fsname, src_real) == 0) {
		arg = g_strconcat("-ofsname=", fsname, NULL);
		if (fuse_opt_add_arg(args, arg) == 0)
			err = 0;
	}
	g_free(arg);
	free(fsname);
	return err;
}

/* The kernel's cap on READ sizes; sfs_init() tells libfuse the same. */
static int add_max_read(struct fuse_args *args, unsigned max_read)
{
	char arg[32];

	if (!max_read)
		return 0;
	snprintf(arg, sizeof(arg), "-omax_read=%u", max_read);
	return fuse_opt_add_arg(args, arg);
}

/*
 * The daemon holds O_PATH fds for the inodes the kernel caches (all of them
 * where file handles cannot be used, see use_file_handles) and open files:
 * run with as many fds as this system allows a process (fs.nr_open when
 * root), not the usual soft 1024.
 */
static void raise_fd_limit(void)
{
	unsigned long long nr_open = 0;
	struct rlimit rl;
	FILE *f;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	f = geteuid() == 0 ? fopen("/proc/sys/fs/nr_open", "r") : NULL;
	if (f) {
		if (fscanf(f, "%llu", &nr_open) == 1 && nr_open > rl.rlim_max)
			rl.rlim_max = nr_open;
		fclose(f);
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;	/* not allowed to raise the hard limit */
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * Keep file handles for the inodes the kernel caches, and only a budget of
 * their O_PATH fds open (inode_table.h): the kernel may cache a directory of
 * a million files. Half the fd limit by default, the rest for open files,
 * stores and pipes. Where handles cannot be used (no CAP_DAC_READ_SEARCH, a
 * filesystem without them) every inode keeps its fd, as passthrough_ll does.
 */
static void use_file_handles(struct sfs_fs *fs)
{
	size_t budget = 1024;
	struct rlimit rl;
	int mount_fd, err;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur / 2 > budget)
		budget = rl.rlim_cur / 2;
	if (fs->opts.fd_cache > budget)
		fuse_log(FUSE_LOG_WARNING, "stablefs: -o fd_cache=%u is more than "
			 "half the fd limit allows: %zu\n", fs->opts.fd_cache, budget);
	else if (fs->opts.fd_cache)
		budget = fs->opts.fd_cache;
	/* open_by_handle_at() refuses an O_PATH fd as its mount fd. */
	mount_fd = open(fs->src_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	err = mount_fd == -1 ? errno :
		sfs_itable_use_handles(fs->inodes, mount_fd, budget);
	if (err)
		fuse_log(FUSE_LOG_DEBUG, "stablefs: no file handles (%s): one fd "
			 "per cached inode\n", strerror(err));
}

/*
 * Answer requests until unmounted or signalled, on max_threads workers
 * (one with -s): libfuse's loop result, negative if it failed.
 */
static int serve(struct fuse_session *se, const struct fuse_cmdline_opts *cmd,
		 unsigned max_threads)
{
	struct fuse_loop_config *cfg;
	int res;

	if (cmd->singlethread)
		return fuse_session_loop(se);
	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)cmd->clone_fd);
	fuse_loop_cfg_set_max_threads(cfg, max_threads);
	/* UINT_MAX means "not given"; libfuse 3.14 would log it as invalid. */
	if (cmd->max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(cfg, cmd->max_idle_threads);
	res = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return res;
}

static int run(struct sfs_fs *fs, struct fuse_args *args,
	       const struct fuse_cmdline_opts *cmd)
{
	int root_fd, res = 1;

	root_fd = open(fs->src_real, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd == -1)
		return fail("cannot open SRC '%s': %s", fs->src_real, strerror(errno));
	fs->inodes = sfs_itable_new(root_fd, fs->store);
	if (!fs->inodes)
		return fail("out of memory");
	sfs_views_start(fs);
	use_file_handles(fs);
	fs->max_read = sfs_splice_max_read();
	if (add_mount_options(args, fs->src_real) || add_max_read(args, fs->max_read))
		return fail("out of memory");
	fs->se = fuse_session_new(args, &sfs_ops, sizeof(sfs_ops), fs);
	if (!fs->se)
		goto out;	/* libfuse said why (unknown option...) */
	if (fuse_set_signal_handlers(fs->se))
		goto out_session;
	if (fuse_session_mount(fs->se, cmd->mountpoint))
		goto out_signals;
	sfs_find_bdi(fs, cmd->mountpoint);
	fs->mountpoint = cmd->mountpoint;
	/* Only now: the parent's exit status tells whether we mounted. */
	if (fuse_daemonize(cmd->foreground))
		goto out_unmount;
	if (!cmd->foreground) {
		openlog("stablefs", LOG_PID, LOG_DAEMON);
		log_to_syslog = true;
	}
	if (fs->store && fs->opts.oob != SFS_OOB_IGNORE)
		fs->watch = sfs_oob_watch_start(fs, fs->opts.oob == SFS_OOB_PRESERVE);
	/* Threads only now: fuse_daemonize() forks. */
	sfs_shutdown_watch_start(fs);
	if (sfs_evictor_start(fs)) {
		fuse_log(FUSE_LOG_ERR, "stablefs: cannot start the evictor thread\n");
		goto out_unmount;
	}
	/* Without digest threads large digests run in the workers. */
	if (sfs_digest_pool_start(fs))
		fuse_log(FUSE_LOG_WARNING, "stablefs: no digest threads: large "
			 "digests run in the request workers\n");
	/* The mount exists since fuse_session_mount() returned (notify.c). */
	sfs_notify_ready(fs->src_real, cmd->mountpoint, cmd->foreground);
	/* libfuse 3.14 returns the signal number after SIGTERM/SIGINT/SIGHUP:
	 * an unmount the user asked for, so a clean exit. */
	res = serve(fs->se, cmd, fs->opts.max_threads) < 0 ? 1 : 0;
	sfs_notify_stopping();
	sfs_evictor_stop(fs);
	sfs_digest_pool_stop(fs);
	sfs_shutdown_done();
	sfs_oob_watch_stop(fs->watch);
	fs->watch = NULL;
	sfs_locks_shutdown();
	sfs_handles_close_all(fs);
out_unmount:
	fuse_session_unmount(fs->se);
out_signals:
	fuse_remove_signal_handlers(fs->se);
out_session:
	fuse_session_destroy(fs->se);
out:
	sfs_views_stop(fs);
	sfs_itable_free(fs->inodes);
	return res;
}

/*
 * stablefs stats MNT [--json]: read the mount's counters (stats.c) and
 * print them as "name: value" lines, or the JSON as it came.
 */
static int stats_command(int argc, char *argv[])
{
	const char *mnt = NULL;
	bool json = false;
	char buf[8192];
	ssize_t n;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!mnt && argv[i][0] != '-')
			mnt = argv[i];
		else
			return fail("stats: unexpected argument '%s' "
				    "(usage: stablefs stats MNT [--json])", argv[i]);
	}
	if (!mnt)
		return fail("stats: missing MNT (usage: stablefs stats MNT [--json])");
	n = getxattr(mnt, "user.stablefs.stats", buf, sizeof(buf) - 1);
	if (n < 0)
		return fail("stats: %s: %s", mnt, errno == ENODATA || errno == ENOTSUP ?
			    "not the root of a stablefs mount" : strerror(errno));
	buf[n] = '\0';
	if (json) {
		printf("%s\n", buf);
		return 0;
	}
	/* A flat object of numbers: {"name":value,...}. */
	for (char *p = strtok(buf, "{,}"); p; p = strtok(NULL, "{,}")) {
		char *colon = strchr(p, ':');

		if (!colon)
			continue;
		*colon = '\0';
		if (*p == '"')
			p++;
		if (*p && p[strlen(p) - 1] == '"')
			p[strlen(p) - 1] = '\0';
		printf("%-36s %s\n", p, colon + 1);
	}
	return 0;
}

/*
 * Does SRC's filesystem enforce user, group or project quotas? Then every
 * write on a caller's behalf drops CAP_SYS_RESOURCE (modify.c), which
 * would let it past hard limits. Quotas turned on after the mount are not
 * seen.
 */
#ifndef PRJQUOTA
#define PRJQUOTA 2
#endif

static bool quotas_on(const char *src)
{
	static const int types[] = { USRQUOTA, GRPQUOTA, PRJQUOTA };
	struct if_dqinfo info;
	int fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool on = false;

	if (fd < 0)
		return true;	/* cannot tell: assume they are */
	/* QCMD() shifts Q_GETINFO (0x800005) out of an int (UBSan): the
	 * same bits, computed unsigned. */
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]) && !on; i++)
		on = syscall(SYS_quotactl_fd, fd,
			     (int)(((unsigned)Q_GETINFO << SUBCMDSHIFT) |
				   ((unsigned)types[i] & SUBCMDMASK)),
			     0, &info) == 0;
	close(fd);
	return on;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = { 0 };
	struct sfs_fs fs = { 0 };
	char err[PATH_MAX + 256];
	int res = 1;

	if (argc >= 2 && !strcmp(argv[1], "stats"))
		return stats_command(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "snapshot"))
		return sfs_snapshot_command(argc, argv);
	log_to_journal = stderr_is_journal();
	fuse_set_log_func(log_line);
	/* The kernel already applied the caller's umask to every mode. */
	umask(0);
	if (sfs_options_parse(&args, &fs.opts, err, sizeof(err))) {
		if (err[0])	/* else fuse_opt said why */
			fail("%s", err);
		goto out;
	}
	if (fuse_parse_cmdline(&args, &cmd) != 0)
		goto out;	/* libfuse said why */
	if (cmd.show_help) {
		usage(stdout);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		res = 0;
		goto out;
	}
	if (cmd.show_version) {
		/* Like sshfs: ours, then libfuse's at build and at run time. */
		printf("stablefs version %s\n", STABLEFS_VERSION);
		printf("libfuse version %s (built with %d.%d)\n", fuse_pkgversion(),
		       FUSE_MAJOR_VERSION, FUSE_MINOR_VERSION);
		fflush(stdout);	/* libfuse prints through its own stream */
		fuse_lowlevel_version();
		res = 0;
		goto out;
	}
	if (!fs.opts.src || !cmd.mountpoint) {
		fail("missing %s (usage: stablefs [options] SRC MNT; see --help)",
		     fs.opts.src ? "MNT" : "SRC and MNT");
		goto out;
	}
	if (cmd.debug)
		log_max = FUSE_LOG_DEBUG;
	if (check_dev_fuse())
		goto out;
	if (sfs_check_mount_paths(fs.opts.src, cmd.mountpoint, fs.opts.nonempty,
				  &fs.src_real, err, sizeof(err))) {
		fail("%s", err);
		goto out;
	}
	if (open_store(&fs, cmd.mountpoint))
		goto out;
	raise_fd_limit();
	fs.switch_creds = geteuid() == 0;
	if (fs.switch_creds && sfs_cred_init()) {
		fail("cannot read the daemon's groups: %s", strerror(errno));
		goto out;
	}
	fs.quotas_on = fs.switch_creds && quotas_on(fs.src_real);
	res = run(&fs, &args, &cmd);
out:
	sfs_store_free(fs.store);
	free(cmd.mountpoint);
	free(fs.src_real);
	sfs_options_free(&fs.opts);
	fuse_opt_free_args(&args);
	return res;
}
