#include "sfs/options.h"
#include "sfs/paths.h"

#include <ctype.h>
#include <errno.h>
#include <fuse_opt.h>
#include <glib.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SFS_OPT(t, field) { t, offsetof(struct sfs_options, field), 1 }

enum { KEY_POSITIONAL_SEEN = -10 };

static const struct fuse_opt sfs_opt_spec[] = {
	SFS_OPT("store=%s", store),
	SFS_OPT("max_preserve=%s", max_preserve_str),
	SFS_OPT("snapshot=%s", snapshot_str),
	SFS_OPT("oob=%s", oob_str),
	SFS_OPT("clone=%s", clone_str),
	SFS_OPT("timeout=%s", timeout_str),
	SFS_OPT("readahead_kb=%s", readahead_str),
	SFS_OPT("max_threads=%s", max_threads_str),
	SFS_OPT("fd_cache=%s", fd_cache_str),
	SFS_OPT("snapdir=%s", snapdir),
	SFS_OPT("nonempty", nonempty),
	FUSE_OPT_END
};

int sfs_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGTPE";
	const char *p = s;
	uint64_t value = 0;
	unsigned shift = 0;

	if (!s || !isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned digit = (unsigned)(*p - '0');

		if (value > (UINT64_MAX - digit) / 10)
			return -1;
		value = value * 10 + digit;
	}
	if (*p) {
		const char *u = strchr(units, toupper((unsigned char)*p));

		if (!u)
			return -1;
		shift = 10 * (unsigned)(u - units + 1);
		p++;
		if (strcasecmp(p, "iB") == 0 || strcasecmp(p, "B") == 0)
			p += strlen(p);
	}
	if (*p)
		return -1;
	if (shift && value > (UINT64_MAX >> shift))
		return -1;
	*out = value << shift;
	return 0;
}

/* fuse_opt calls this for what the spec does not match: catch SRC. */
static int take_positional(void *data, const char *arg, int key,
			   struct fuse_args *outargs)
{
	struct sfs_options *opts = data;

	(void)outargs;
	if (key == FUSE_OPT_KEY_NONOPT && !opts->src) {
		opts->src = strdup(arg);
		return opts->src ? 0 : -1;
	}
	return 1;	/* keep: MNT and libfuse's options */
}

void sfs_printable(const char *s, char *out, size_t outlen)
{
	size_t n = 0, shown = 0;

	for (; *s && n + 5 < outlen; s++, shown++) {
		unsigned char c = (unsigned char)*s;

		if (shown == SFS_QUOTE_MAX) {
			n += (size_t)snprintf(out + n, outlen - n, "...");
			break;
		}
		if (c == '\n')
			n += (size_t)snprintf(out + n, outlen - n, "\\n");
		else if (c == '\t')
			n += (size_t)snprintf(out + n, outlen - n, "\\t");
		else if (c < 0x20 || c >= 0x7f)
			n += (size_t)snprintf(out + n, outlen - n, "\\x%02x", c);
		else
			out[n++] = (char)c;
	}
	out[MIN(n, outlen - 1)] = '\0';
}

int sfs_options_parse(struct fuse_args *args, struct sfs_options *opts,
		      char *err, size_t errlen)
{
	memset(opts, 0, sizeof(*opts));
	opts->snapshot = true;
	opts->oob = SFS_OOB_DETECT;
	opts->clone = true;
	opts->timeout = 1.0;
	opts->max_threads = 10;
	opts->readahead_kb = SFS_DEFAULT_READAHEAD_KB;
	if (fuse_opt_parse(args, opts, sfs_opt_spec, take_positional) == -1) {
		err[0] = '\0';	/* fuse_opt said why */
		return -1;
	}
	/* Only now: fuse_opt replaces a string it parses, and frees the old. */
	if (!opts->snapdir && !(opts->snapdir = strdup(SFS_DEFAULT_SNAPDIR))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return sfs_options_validate(opts, err, errlen);
}

static int parse_on_off(const char *s, bool *out)
{
	if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "1"))
		*out = true;
	else if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "0"))
		*out = false;
	else
		return -1;
	return 0;
}

/* Decimal seconds: digits, optionally a '.' and more digits. */
static int parse_seconds(const char *s, double *out)
{
	const char *p = s;
	char *end;
	double v;

	while (isdigit((unsigned char)*p))
		p++;
	if (p == s)
		return -1;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	if (*p)
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (*end || errno || !isfinite(v) || v > 86400 * 365)
		return -1;
	*out = v;
	return 0;
}

/* A decimal count in [min, max], nothing else. */
static int parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -1;
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p) || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * One option given as text: its parser takes the text (and the check's
 * bounds) and sets the option's value; on failure the message says what
 * was expected. -o store= is checked on its own: it is kept as text.
 */
struct opt_check {
	const char *name;		/* -o NAME= */
	size_t text;			/* offsetof its raw string */
	int (*parse)(const char *s, const struct opt_check *c,
		     struct sfs_options *o);
	const char *expected;
	uint64_t min, max;		/* counts and sizes */
};

static int take_max_preserve(const char *s, const struct opt_check *c,
			     struct sfs_options *o)
{
	return sfs_parse_size(s, &o->max_preserve);
}

static int take_snapshot(const char *s, const struct opt_check *c,
			 struct sfs_options *o)
{
	return parse_on_off(s, &o->snapshot);
}

static int take_oob(const char *s, const struct opt_check *c,
		    struct sfs_options *o)
{
	if (!strcmp(s, "detect"))
		o->oob = SFS_OOB_DETECT;
	else if (!strcmp(s, "ignore"))
		o->oob = SFS_OOB_IGNORE;
	else if (!strcmp(s, "preserve"))
		o->oob = SFS_OOB_PRESERVE;
	else
		return -1;
	return 0;
}

static int take_clone(const char *s, const struct opt_check *c,
		      struct sfs_options *o)
{
	if (!strcmp(s, "auto"))
		o->clone = true;
	else if (!strcmp(s, "off"))
		o->clone = false;
	else
		return -1;
	return 0;
}

static int take_readahead(const char *s, const struct opt_check *c,
			  struct sfs_options *o)
{
	uint64_t n;

	if (sfs_parse_size(s, &n) || n < c->min || n > c->max)
		return -1;
	o->readahead_kb = (unsigned)n;
	return 0;
}

static int take_max_threads(const char *s, const struct opt_check *c,
			    struct sfs_options *o)
{
	uint64_t n;

	if (parse_count(s, c->min, c->max, &n))
		return -1;
	o->max_threads = (unsigned)n;
	return 0;
}

static int take_fd_cache(const char *s, const struct opt_check *c,
			 struct sfs_options *o)
{
	uint64_t n;

	if (parse_count(s, c->min, c->max, &n))
		return -1;
	o->fd_cache = (unsigned)n;
	return 0;
}

static int take_timeout(const char *s, const struct opt_check *c,
			struct sfs_options *o)
{
	return parse_seconds(s, &o->timeout);
}

/* Kept as text: only checked. One directory entry in MNT's root. */
static int take_snapdir(const char *s, const struct opt_check *c,
			struct sfs_options *o)
{
	return sfs_component_problem(s) ? -1 : 0;
}

#define TEXT(field) offsetof(struct sfs_options, field)

static const struct opt_check opt_checks[] = {
	{ "max_preserve", TEXT(max_preserve_str), take_max_preserve,
	  "a size (digits with an optional K, M, G, T suffix)", 0, 0 },
	{ "snapshot", TEXT(snapshot_str), take_snapshot, "on or off", 0, 0 },
	{ "oob", TEXT(oob_str), take_oob, "preserve, detect or ignore", 0, 0 },
	{ "clone", TEXT(clone_str), take_clone, "auto or off", 0, 0 },
	{ "readahead_kb", TEXT(readahead_str), take_readahead,
	  "1 to 1048576 (KiB)", 1, 1 << 20 },
	{ "max_threads", TEXT(max_threads_str), take_max_threads,
	  "a number of threads from 1 to 100000", 1, 100000 },
	{ "fd_cache", TEXT(fd_cache_str), take_fd_cache,
	  "a number of fds from 16 to 100000000", 16, 100000000 },
	{ "timeout", TEXT(timeout_str), take_timeout,
	  "seconds (0 or more, decimal)", 0, 0 },
	{ "snapdir", TEXT(snapdir), take_snapdir,
	  "one directory name: 1 to 255 bytes, no '/', not . or ..", 0, 0 },
};

int sfs_options_validate(struct sfs_options *opts, char *err, size_t errlen)
{
	char q[4 * SFS_QUOTE_MAX + 8];

	if (opts->store && !*opts->store) {
		snprintf(err, errlen, "-o store= needs a directory");
		return -1;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(opt_checks); i++) {
		const struct opt_check *c = &opt_checks[i];
		const char *s = *(char **)((char *)opts + c->text);

		if (!s || c->parse(s, c, opts) == 0)
			continue;
		sfs_printable(s, q, sizeof(q));
		snprintf(err, errlen, "-o %s=%s: expected %s", c->name, q, c->expected);
		return -1;
	}
	return 0;
}

void sfs_options_free(struct sfs_options *opts)
{
	free(opts->src);
	free(opts->store);
	free(opts->max_preserve_str);
	free(opts->snapshot_str);
	free(opts->oob_str);
	free(opts->clone_str);
	free(opts->timeout_str);
	free(opts->readahead_str);
	free(opts->max_threads_str);
	free(opts->fd_cache_str);
	free(opts->snapdir);
	memset(opts, 0, sizeof(*opts));
}

const char *sfs_options_help(void)
{
	return
	"stablefs options:\n"
	"    -o store=DIR           where preserved data lives (default: anonymous\n"
	"                           O_TMPFILE files on SRC's filesystem)\n"
	"    -o max_preserve=SIZE   cap on preserved bytes (K, M, G, T suffixes;\n"
	"                           default half the store's free space, 0: none)\n"
	"    -o snapshot=on|off     copy-on-open for read-only opens (default on)\n"
	"    -o oob=preserve|detect|ignore\n"
	"                           changes made to SRC directly: keep what open\n"
	"                           snapshots need first, or fail their reads\n"
	"                           with EIO (default detect)\n"
	"    -o clone=auto|off      snapshots as clones taken at open where the\n"
	"                           store's filesystem can (XFS, btrfs; default auto)\n"
	"    -o timeout=SECONDS     kernel entry/attribute cache time (default 1)\n"
	"    -o readahead_kb=N      the mount's read-ahead in KiB (default 1024;\n"
	"                           needs root, else the kernel's 128)\n"
	"    -o snapdir=NAME        where tree views appear: MNT/NAME/VIEW, not\n"
	"                           listed in MNT (default .snapshots)\n"
	"    -o nonempty            allow mounting over a non-empty MNT\n"
	"    -o max_threads=N       worker thread cap (default 10)\n"
	"    -o fd_cache=N          O_PATH fds kept open for cached inodes; more\n"
	"                           are reopened from file handles (default:\n"
	"                           half the fd limit)\n";
}

const char *sfs_component_problem(const char *name)
{
	if (!*name)
		return "is empty";
	if (strchr(name, '/'))
		return "contains '/'";
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return "is '.' or '..'";
	if (strlen(name) > NAME_MAX)
		return "is longer than 255 bytes";
	return NULL;
}
