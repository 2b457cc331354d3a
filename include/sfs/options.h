/*
 * stablefs' own mount options (-o store=, max_preserve=, snapshot=, oob=,
 * snapdir=, nonempty, ...) and their validation. libfuse's options pass through untouched.
 */
#ifndef SFS_OPTIONS_H
#define SFS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fuse_args;

enum sfs_oob_mode {
	SFS_OOB_DETECT,		/* changes made to SRC directly fail reads with EIO */
	SFS_OOB_IGNORE,
	SFS_OOB_PRESERVE,	/* preserved before they land, where announced */
};

struct sfs_options {
	char *src;		/* SRC exactly as given on the command line */
	char *store;		/* -o store=DIR, or NULL for O_TMPFILE on SRC */
	uint64_t max_preserve;	/* bytes; 0 = no cap */
	bool snapshot;		/* -o snapshot=on|off */
	bool clone;		/* -o clone=auto|off: snapshots as clones */
	enum sfs_oob_mode oob;
	bool nonempty;		/* -o nonempty: allow a non-empty MNT */
	double timeout;		/* -o timeout=SECONDS: entry/attr cache */
	unsigned readahead_kb;	/* -o readahead_kb=N (SFS_DEFAULT_READAHEAD_KB) */
	unsigned max_threads;	/* -o max_threads=N (default 10) */
	unsigned fd_cache;	/* -o fd_cache=N; 0: half the fd limit */
	char *snapdir;		/* -o snapdir=NAME: tree views at MNT/NAME/VIEW
				 * (SFS_DEFAULT_SNAPDIR); never NULL once parsed */

	/* Raw strings as parsed, validated by sfs_options_validate(). */
	char *max_preserve_str;
	char *snapshot_str;
	char *oob_str;
	char *clone_str;
	char *timeout_str;
	char *readahead_str;
	char *max_threads_str;
	char *fd_cache_str;
};

/*
 * The mount's read-ahead unless -o readahead_kb= says otherwise: the
 * smallest window at the plateau of cold sequential reads (128 KiB, the
 * kernel's, was half as fast; 2 and 4 MiB no faster: doc/performance.md,
 * "Read-ahead window").
 */
#define SFS_DEFAULT_READAHEAD_KB 1024

/*
 * Where tree views appear unless -o snapdir= says otherwise: MNT/.snapshots,
 * hidden from a listing of MNT's root (backup tools pointed at MNT do not
 * descend into every view), reachable by name.
 */
#define SFS_DEFAULT_SNAPDIR ".snapshots"

/* Longest user text quoted in a message (sfs_printable). */
#define SFS_QUOTE_MAX 200

/*
 * Parse a size: decimal digits with an optional binary suffix K, M, G, T, P
 * (also KB/KiB style). Returns 0, or -1 for empty, signs, garbage or overflow.
 */
int sfs_parse_size(const char *s, uint64_t *out);

/*
 * Take our options and the SRC argument out of args (leaving MNT and
 * libfuse's options in it) and fill opts with defaults plus what was given.
 * Returns 0, or -1 with a one-line reason in err.
 */
int sfs_options_parse(struct fuse_args *args, struct sfs_options *opts,
		      char *err, size_t errlen);

/* Check the values; 0 or -1 with a one-line reason in err. */
int sfs_options_validate(struct sfs_options *opts, char *err, size_t errlen);

void sfs_options_free(struct sfs_options *opts);

/*
 * Copy s into out for an error message: control characters and bytes that
 * are not printable ASCII as \n, \t, \xNN, and at most SFS_QUOTE_MAX
 * characters of s ("..." after). A message stays one line whatever the
 * user typed, and the terminal gets no escape sequences.
 */
void sfs_printable(const char *s, char *out, size_t outlen);

/* Help text for our options, for -h. */
const char *sfs_options_help(void);

/*
 * What is wrong with name as a single path component a user chose (a tree
 * view's name, -o snapdir=): NULL if nothing, else a phrase for a message,
 * "is empty", "contains '/'", "is '.' or '..'" or "is longer than 255
 * bytes" (NAME_MAX: one directory entry).
 */
const char *sfs_component_problem(const char *name);

#endif
