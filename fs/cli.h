/*
 * Subcommands of the stablefs binary that act on a running mount as one
 * of its clients: no FUSE session, only system calls on MNT.
 */
#ifndef SFS_CLI_H
#define SFS_CLI_H

/*
 * stablefs snapshot MNT NAME | --list MNT [--json] | --delete MNT NAME
 * (argv[1] is "snapshot"). Returns the exit status: 0, 1 (the mount
 * refused or failed), 2 (a usage error: nothing was asked of the mount).
 */
int sfs_snapshot_command(int argc, char *argv[]);

#endif
