/*
 * sfs_view: take or delete a tree view of a stablefs mount, for shell
 * tests (views_backup.sh), through the control interface of
 * include/sfs/view_ioctl.h:
 *
 *   sfs_view create|delete MNT NAME
 *
 * Exit 0, or 1 with "sfs_view: create NAME on MNT: <errno text>" on stderr
 * (2: usage). Listing is getxattr(MNT, "user.stablefs.views").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "sfs/view_ioctl.h"

int main(int argc, char **argv)
{
	struct sfs_ioc_view v;
	unsigned long cmd;
	int fd, rc;

	if (argc != 4 || (strcmp(argv[1], "create") && strcmp(argv[1], "delete"))) {
		fprintf(stderr, "usage: sfs_view create|delete MNT NAME\n");
		return 2;
	}
	cmd = strcmp(argv[1], "create") ? SFS_IOC_VIEW_DELETE : SFS_IOC_VIEW_CREATE;
	if (strlen(argv[3]) > SFS_VIEW_NAME_MAX) {
		fprintf(stderr, "sfs_view: name longer than %d bytes\n",
			SFS_VIEW_NAME_MAX);
		return 2;
	}
	memset(&v, 0, sizeof(v));
	memcpy(v.name, argv[3], strlen(argv[3]));
	fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "sfs_view: open %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	rc = ioctl(fd, cmd, &v);
	if (rc)
		fprintf(stderr, "sfs_view: %s %s on %s: %s\n", argv[1], argv[3],
			argv[2], strerror(errno));
	close(fd);
	return rc ? 1 : 0;
}
