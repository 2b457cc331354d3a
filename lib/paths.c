#include "sfs/paths.h"
#include "sfs/options.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool sfs_path_within(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	if (strcmp(outer, "/") == 0)
		return true;
	return strncmp(inner, outer, n) == 0 &&
	       (inner[n] == '\0' || inner[n] == '/');
}

bool sfs_name_is_safe(const char *name)
{
	return name && *name && !strchr(name, '/') &&
	       strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static int check_dir(const char *what, const char *path, char *err, size_t errlen)
{
	char q[4 * SFS_QUOTE_MAX + 8];
	struct stat st;

	sfs_printable(path, q, sizeof(q));
	if (stat(path, &st) == -1) {
		if (errno == ENOENT)
			snprintf(err, errlen, "%s '%s' does not exist", what, q);
		else
			snprintf(err, errlen, "%s '%s': %s", what, q, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s '%s' is not a directory", what, q);
		return -1;
	}
	return 0;
}

static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int empty = 1;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	return empty;
}

int sfs_check_mount_paths(const char *src, const char *mnt, bool allow_nonempty,
			  char **src_real, char *err, size_t errlen)
{
	char rsrc[PATH_MAX], rmnt[PATH_MAX];
	char qs[4 * SFS_QUOTE_MAX + 8], qm[4 * SFS_QUOTE_MAX + 8];
	int empty;

	if (check_dir("SRC", src, err, errlen) || check_dir("MNT", mnt, err, errlen))
		return -1;
	if (!realpath(src, rsrc) || !realpath(mnt, rmnt)) {
		sfs_printable(realpath(src, rsrc) ? mnt : src, qs, sizeof(qs));
		snprintf(err, errlen, "cannot resolve '%s': %s", qs, strerror(errno));
		return -1;
	}
	sfs_printable(rsrc, qs, sizeof(qs));
	sfs_printable(rmnt, qm, sizeof(qm));
	if (strcmp(rsrc, rmnt) == 0) {
		snprintf(err, errlen, "SRC and MNT are the same directory '%s'", qs);
		return -1;
	}
	if (sfs_path_within(rmnt, rsrc)) {
		snprintf(err, errlen,
			 "MNT '%s' is inside SRC '%s': the mount would contain itself",
			 qm, qs);
		return -1;
	}
	if (sfs_path_within(rsrc, rmnt)) {
		snprintf(err, errlen,
			 "SRC '%s' is inside MNT '%s': the mount would hide it",
			 qs, qm);
		return -1;
	}
	empty = dir_is_empty(rmnt);
	if (empty < 0) {
		snprintf(err, errlen, "MNT '%s': %s", qm, strerror(errno));
		return -1;
	}
	if (!empty && !allow_nonempty) {
		snprintf(err, errlen,
			 "MNT '%s' is not empty (use -o nonempty to mount over it)",
			 qm);
		return -1;
	}
	*src_real = strdup(rsrc);
	if (!*src_real) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}
