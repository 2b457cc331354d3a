#include "mount_util.h"
#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Mounts still attached, so a fatal signal or exit() can detach them. */
#define MAX_LIVE 16
static struct test_mount *live[MAX_LIVE];

void test_fusermount(const char *flags, const char *mnt)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("fusermount3", "fusermount3", flags, mnt, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

int test_abort_connection(unsigned minor)
{
	char p[128];
	int fd, rc = 0;

	snprintf(p, sizeof(p), "/sys/fs/fuse/connections/%u/abort", minor);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1) {
			printf("# abort %s: %s\n", p, strerror(errno));
			rc = -1;
		}
		close(fd);
	} else {
		printf("# cannot open %s: %s\n", p, strerror(errno));
		rc = -1;
	}
	return rc;
}

static void detach_all_live(void)
{
	for (int i = 0; i < MAX_LIVE; i++) {
		if (live[i] && live[i]->mounted) {
			test_fusermount("-uz", live[i]->mnt);
			live[i]->mounted = false;
		}
		if (live[i] && live[i]->pid > 0) {
			kill(live[i]->pid, SIGTERM);
			/* A test may have stopped it (SIGSTOP): let it act. */
			kill(live[i]->pid, SIGCONT);
			waitpid(live[i]->pid, NULL, 0);
			live[i]->pid = 0;
		}
	}
}

static void on_fatal_signal(int sig)
{
	detach_all_live();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_cleanup_once(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	atexit(detach_all_live);
	signal(SIGTERM, on_fatal_signal);	/* meson's timeout */
	signal(SIGINT, on_fatal_signal);
	signal(SIGABRT, on_fatal_signal);
}

/* A mount restarted on the same struct (a test that kills and restarts
 * its daemon) is tracked once: untracking must leave nothing behind. */
static void track(struct test_mount *m, bool on)
{
	for (int i = 0; on && i < MAX_LIVE; i++) {
		if (live[i] == m)
			return;
	}
	for (int i = 0; i < MAX_LIVE; i++) {
		if (on && !live[i]) {
			live[i] = m;
			return;
		}
		if (!on && live[i] == m) {
			live[i] = NULL;
			return;
		}
	}
}

const char *test_stablefs_bin(void)
{
	const char *bin = getenv("STABLEFS_BIN");

	return bin && *bin ? bin : "./fs/stablefs";
}

void test_skip_all(const char *why)
{
	/* TAP's plan for "skipped as a whole", and meson's skip status. */
	printf("1..0 # SKIP %s\n", why);
	exit(77);
}

void test_require_fuse(void)
{
	int fd = open("/dev/fuse", O_RDWR);

	if (fd < 0) {
		test_skip_all("/dev/fuse cannot be opened");
	}
	close(fd);
	if (system("command -v fusermount3 >/dev/null 2>&1") != 0) {
		test_skip_all("fusermount3 is not installed");
	}
}

bool test_can_mount(void)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return access(test_stablefs_bin(), X_OK) == 0 &&
	       system("command -v fusermount3 >/dev/null 2>&1") == 0;
}

int test_mount_prepare(struct test_mount *m, const char *tag)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->base, sizeof(m->base), "%s/sfs-%s-XXXXXX", tmp_base(), tag);
	if (!mkdtemp(m->base)) {
		perror("mkdtemp");
		m->base[0] = '\0';	/* nothing to clean up */
		return -1;
	}
	/* Let unprivileged test users reach src/ and mnt/. */
	chmod(m->base, 0755);
	snprintf(m->src, sizeof(m->src), "%s/src", m->base);
	snprintf(m->mnt, sizeof(m->mnt), "%s/mnt", m->base);
	if (mkdir(m->src, 0755) || mkdir(m->mnt, 0755)) {
		perror("mkdir");
		return -1;
	}
	return 0;
}

int test_mount_setup(struct test_mount *m, const char *tag, const char *opts,
		     const char **skip_why)
{
	memset(m, 0, sizeof(*m));
	if (!test_can_mount()) {
		*skip_why = "no /dev/fuse, fusermount3 or stablefs binary";
		return 0;
	}
	if (test_mount_prepare(m, tag))
		return -1;
	return test_mount_start(m, opts);
}

bool test_is_stablefs_mount(const char *path)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char dev[PATH_MAX], dir[PATH_MAX], type[256];
	bool found = false;

	if (!f)
		return false;
	while (fscanf(f, "%4095s %4095s %255s %*[^\n]", dev, dir, type) == 3) {
		if (strcmp(dir, path) == 0 && strcmp(type, "fuse.stablefs") == 0)
			found = true;
	}
	fclose(f);
	return found;
}

int test_mount_spawn(struct test_mount *m, const char *opts)
{
	const char *bin = test_stablefs_bin();
	pid_t parent = getpid();
	pid_t pid;

	install_cleanup_once();
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* If the test dies, the daemon is told to unmount and exit. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		if (opts && *opts)
			execl(bin, bin, "-f", "-o", opts, m->src, m->mnt, (char *)NULL);
		else
			execl(bin, bin, "-f", m->src, m->mnt, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	m->pid = pid;
	track(m, true);
	return 0;
}

int test_mount_start(struct test_mount *m, const char *opts)
{
	if (test_mount_spawn(m, opts))
		return -1;
	for (int waited = 0; waited < 10000; waited += 10) {
		int status;

		if (test_is_stablefs_mount(m->mnt)) {
			m->mounted = true;
			return 0;
		}
		if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
			fprintf(stderr, "stablefs exited before mounting (status %d)\n",
				WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
			m->pid = 0;
			track(m, false);
			return -1;
		}
		sleep_ms(10);
	}
	fprintf(stderr, "stablefs did not mount %s within 10 s\n", m->mnt);
	test_mount_stop(m);
	return -1;
}

int test_mount_stop(struct test_mount *m)
{
	int status = 0, rc = 0;

	if (m->mounted || test_is_stablefs_mount(m->mnt)) {
		test_fusermount("-u", m->mnt);
		if (test_is_stablefs_mount(m->mnt)) {
			test_fusermount("-uz", m->mnt);
			rc = -1;	/* it was busy: a test leaked an fd */
		}
		m->mounted = false;
	}
	if (m->pid > 0) {
		if (!wait_pid_ms(m->pid, &status, 5000)) {
			fprintf(stderr, "stablefs pid %d did not exit, killing\n", m->pid);
			kill(m->pid, SIGKILL);
			waitpid(m->pid, &status, 0);
			rc = -1;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "stablefs exited with status %d\n",
				WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			rc = -1;
		}
		m->pid = 0;
	}
	track(m, false);
	return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) ? 0 : 0;
	unlink(path);
	return 0;
}

int test_rm_rf(const char *path)
{
	return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

void test_mount_destroy(struct test_mount *m)
{
	test_mount_stop(m);
	test_loop_unmount(m);
	if (m->base[0])
		test_rm_rf(m->base);
	m->base[0] = '\0';
}

int test_mount_finish(struct test_mount *m)
{
	int rc = 0;

	if (test_mount_stop(m)) {
		fprintf(stderr, "stablefs did not unmount/exit cleanly\n");
		rc = -1;
	}
	if (test_is_stablefs_mount(m->mnt)) {
		fprintf(stderr, "leaked mount %s\n", m->mnt);
		rc = -1;
	}
	test_mount_destroy(m);
	return rc;
}

int test_run(const char *fmt, ...)
{
	char cmd[PATH_MAX * 3];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

int test_loop_src(struct test_mount *m, const char *mkfs, int size_mib)
{
	char image[PATH_MAX];

	if (join_path(image, m->base, "image") ||
	    test_run("truncate -s %dM '%s' && %s '%s' >/dev/null 2>&1", size_mib,
		     image, mkfs, image) ||
	    test_run("mount -o loop '%s' '%s'", image, m->src))
		return -1;
	m->loop_src = true;
	return 0;
}

void test_loop_unmount(struct test_mount *m)
{
	if (m->loop_src)
		umount2(m->src, MNT_DETACH);
	m->loop_src = false;
}

int test_loop_setup(struct test_mount *m, const char *tag, const char *mkfs,
		    int size_mib, bool start, const char *opts)
{
	if (test_mount_prepare(m, tag) || test_loop_src(m, mkfs, size_mib) ||
	    (start && test_mount_start(m, opts))) {
		test_mount_destroy(m);
		return -1;
	}
	return 0;
}

/* Every thread of pid in a stop ('T'/'t' in /proc/PID/task/TID/stat)? */
static bool threads_stopped(pid_t pid)
{
	char dir[64], stat_path[PATH_MAX], buf[512];
	struct dirent *d;
	bool stopped = true;
	DIR *tasks;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	tasks = opendir(dir);
	if (!tasks)
		return false;
	while (stopped && (d = readdir(tasks))) {
		char *paren;
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(stat_path, sizeof(stat_path), "%s/%s/stat", dir, d->d_name);
		f = fopen(stat_path, "r");
		if (!f)
			continue;	/* a thread gone */
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
		paren = strrchr(buf, ')');
		stopped = paren && (paren[2] == 'T' || paren[2] == 't');
	}
	closedir(tasks);
	return stopped;
}

bool test_stop_threads(pid_t pid)
{
	if (kill(pid, SIGSTOP))
		return false;
	for (long end = now_ms() + 10000; now_ms() < end; sleep_ms(5))
		if (threads_stopped(pid))
			return true;
	return false;
}
