/*
 * Metadata microbenchmark: N small files in one fresh directory, timed per
 * phase. A benchmark, not a test.
 *   meta DIR N [PHASES]
 * PHASES is a comma list (default create,stat,open,readdir,unlink):
 *   create   open(O_CREAT|O_EXCL|O_WRONLY) + write(100 bytes) + close; DIR is
 *            created first (it must not exist)
 *   stat     stat() of every file, in creation order
 *   open     open(O_RDONLY) + close of every file
 *   readdir  opendir + readdir of every entry + closedir (time per entry)
 *   unlink   unlink() of every file, then rmdir(DIR)
 * Phases other than create expect the files f0000000..f(N-1) to exist.
 * Prints one line per phase: "<phase> <microseconds per file>".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "meta: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

int main(int argc, char **argv)
{
	static const char payload[100] = "stablefs meta benchmark payload\n";
	char phases[256], path[4096];
	long n;

	if (argc < 3 || (n = atol(argv[2])) <= 0) {
		fprintf(stderr, "usage: meta DIR N [create,stat,open,readdir,unlink]\n");
		return 2;
	}
	snprintf(phases, sizeof(phases), "%s",
		 argc > 3 ? argv[3] : "create,stat,open,readdir,unlink");
	for (char *save, *ph = strtok_r(phases, ",", &save); ph;
	     ph = strtok_r(NULL, ",", &save)) {
		double t0 = now();
		long ops = n;

		if (!strcmp(ph, "create") && mkdir(argv[1], 0755))
			die("mkdir", argv[1]);
		if (!strcmp(ph, "readdir")) {
			DIR *d = opendir(argv[1]);
			struct dirent *de;

			if (!d)
				die("opendir", argv[1]);
			ops = 0;
			errno = 0;
			while ((de = readdir(d)))
				ops += de->d_name[0] != '.';
			if (errno)
				die("readdir", argv[1]);
			closedir(d);
			if (ops != n) {
				fprintf(stderr, "meta: readdir %s: %ld entries, expected %ld\n",
					argv[1], ops, n);
				return 1;
			}
		} else {
			for (long i = 0; i < n; i++) {
				struct stat st;
				int fd;

				snprintf(path, sizeof(path), "%s/f%07ld", argv[1], i);
				if (!strcmp(ph, "create")) {
					fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
					if (fd < 0)
						die("create", path);
					if (write(fd, payload, sizeof(payload)) != sizeof(payload))
						die("write", path);
					if (close(fd))
						die("close", path);
				} else if (!strcmp(ph, "stat")) {
					if (stat(path, &st))
						die("stat", path);
				} else if (!strcmp(ph, "open")) {
					fd = open(path, O_RDONLY);
					if (fd < 0)
						die("open", path);
					close(fd);
				} else if (!strcmp(ph, "unlink")) {
					if (unlink(path))
						die("unlink", path);
				} else {
					fprintf(stderr, "meta: unknown phase %s\n", ph);
					return 2;
				}
			}
			if (!strcmp(ph, "unlink") && rmdir(argv[1]))
				die("rmdir", argv[1]);
		}
		printf("%s %.3f\n", ph, (now() - t0) * 1e6 / (double)ops);
		fflush(stdout);
	}
	return 0;
}
