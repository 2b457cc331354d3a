#include "sfs/options.h"

#include <ctype.h>
#include <errno.h>
#include <fuse_opt.h>
#include <math.h>
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
	SFS_OPT("timeout=%s", timeout_str),
	SFS_OPT("readahead_kb=%s", readahead_str),
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

int sfs_options_parse(struct fuse_args *args, struct sfs_options *opts,
		      char *err, size_t errlen)
{
	memset(opts, 0, sizeof(*opts));
	opts->snapshot = true;
	opts->oob = SFS_OOB_DETECT;
	opts->timeout = 1.0;
	if (fuse_opt_parse(args, opts, sfs_opt_spec, take_positional) == -1) {
		snprintf(err, errlen, "cannot parse the command line");
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

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v < 0 || v > 86400 * 365)
		return -1;
	*out = v;
	return 0;
}

int sfs_options_validate(struct sfs_options *opts, char *err, size_t errlen)
{
	if (opts->store && !*opts->store) {
		snprintf(err, errlen, "-o store= needs a directory");
		return -1;
	}
	if (opts->max_preserve_str &&
	    sfs_parse_size(opts->max_preserve_str, &opts->max_preserve)) {
		snprintf(err, errlen,
			 "-o max_preserve=%s: not a size (digits with an optional K, M, G, T suffix)",
			 opts->max_preserve_str);
		return -1;
	}
	if (opts->snapshot_str && parse_on_off(opts->snapshot_str, &opts->snapshot)) {
		snprintf(err, errlen, "-o snapshot=%s: expected on or off",
			 opts->snapshot_str);
		return -1;
	}
	if (opts->oob_str) {
		if (!strcmp(opts->oob_str, "detect"))
			opts->oob = SFS_OOB_DETECT;
		else if (!strcmp(opts->oob_str, "ignore"))
			opts->oob = SFS_OOB_IGNORE;
		else {
			snprintf(err, errlen, "-o oob=%s: expected detect or ignore",
				 opts->oob_str);
			return -1;
		}
	}
	if (opts->readahead_str) {
		uint64_t kb;

		if (sfs_parse_size(opts->readahead_str, &kb) || kb == 0 || kb > 1 << 20) {
			snprintf(err, errlen, "-o readahead_kb=%s: expected 1 to 1048576 "
				 "(KiB)", opts->readahead_str);
			return -1;
		}
		opts->readahead_kb = (unsigned)kb;
	}
	if (opts->timeout_str && parse_seconds(opts->timeout_str, &opts->timeout)) {
		snprintf(err, errlen, "-o timeout=%s: expected seconds (0 or more)",
			 opts->timeout_str);
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
	free(opts->timeout_str);
	free(opts->readahead_str);
	memset(opts, 0, sizeof(*opts));
}

const char *sfs_options_help(void)
{
	return
	"stablefs options:\n"
	"    -o store=DIR           where preserved data lives (default: anonymous\n"
	"                           O_TMPFILE files on SRC's filesystem)\n"
	"    -o max_preserve=SIZE   cap on preserved bytes (K, M, G, T suffixes)\n"
	"    -o snapshot=on|off     copy-on-open for read-only opens (default on)\n"
	"    -o oob=detect|ignore   changes made to SRC directly (default detect)\n"
	"    -o timeout=SECONDS     kernel entry/attribute cache time (default 1)\n"
	"    -o readahead_kb=N      set the mount's read-ahead (default: the\n"
	"                           kernel's 128; larger was slower here)\n"
	"    -o nonempty            allow mounting over a non-empty MNT\n"
	"    -o max_threads=N       worker thread cap (default 10)\n";
}
