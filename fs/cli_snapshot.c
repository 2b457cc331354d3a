/*
 * stablefs snapshot: take, list and delete the point-in-time tree views
 * of a running mount (G7) through sfs/view_ioctl.h: an ioctl on an fd of
 * MNT's root takes or deletes one, getxattr(SFS_XATTR_VIEWS) on it lists
 * them as JSON. A client like any other process: the daemon checks who
 * may do what; here only the arguments are checked, before MNT is touched.
 *
 * Output is for scripts too: taking a view prints its path and nothing
 * else, --list --json the daemon's JSON as it came. Messages are one line
 * on stderr with user text escaped.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "sfs/options.h"
#include "sfs/paths.h"
#include "sfs/view_ioctl.h"
#include "view_list.h"

/* A view is one directory entry of the snapdir: sfs_component_problem()
 * checks the header's rules. */
_Static_assert(SFS_VIEW_NAME_MAX == NAME_MAX, "a view name is one entry");

enum { EXIT_FAILED = 1, EXIT_USAGE = 2 };

#define USAGE_SHORT \
	"stablefs snapshot MNT NAME | --list MNT [--json] | --delete MNT NAME"

static const char usage_text[] =
	"usage: stablefs snapshot MNT NAME            take a view of the whole tree\n"
	"       stablefs snapshot --list MNT [--json]  list the views of MNT\n"
	"       stablefs snapshot --delete MNT NAME    delete a view\n"
	"\n"
	"A view is the tree of MNT as it was at one instant, read-only, at\n"
	"MNT/.snapshots/NAME (the mount's -o snapdir= names that directory);\n"
	"taking one prints its path. NAME: 1 to 255 bytes, no '/', not . or ..\n"
	"(after --, NAME may start with '-'). Only the mount's owner or root\n"
	"may take or delete views.\n"
	"Exit status: 0 done, 1 failed, 2 usage error.\n";

enum action { TAKE, LIST, DELETE };

struct cmd {
	enum action action;
	bool json;
	bool help;
	const char *mnt;
	const char *name;
};

/* ---- messages --------------------------------------------------------- */

/* User text for a message: escaped, capped (sfs_printable). */
struct quoted {
	char s[4 * SFS_QUOTE_MAX + 8];
};

static const char *quote(struct quoted *q, const char *s)
{
	sfs_printable(s, q->s, sizeof(q->s));
	return q->s;
}

/* "stablefs: snapshot: ..." on stderr, one line; returns status. */
static int __attribute__((format(printf, 2, 3)))
say(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("stablefs: snapshot: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

/* A usage error: what is wrong, then the usage in short; returns 2. */
static int __attribute__((format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return say(EXIT_USAGE, "%s (usage: %s; see --help)", msg, USAGE_SHORT);
}

/*
 * Why the mount refused: the errnos the header names, in the user's
 * terms; anything else as strerror. A stablefs older than tree views
 * (and any other file system) answers ENOTTY to the ioctls and ENODATA
 * or ENOTSUP to the xattr.
 */
static int refused(const struct cmd *c, int err)
{
	static const char *const doing[] = {
		[TAKE] = "cannot take view", [LIST] = "cannot list views",
		[DELETE] = "cannot delete view",
	};
	struct quoted qm, qn;
	const char *mnt = quote(&qm, c->mnt);
	const char *name = c->name ? quote(&qn, c->name) : "";

	if (err == ENOTTY || err == ENODATA || err == ENOTSUP)
		return say(EXIT_FAILED, "%s is not a stablefs mount (or its "
			   "stablefs predates tree views)", mnt);
	if (err == EMEDIUMTYPE)
		return say(EXIT_FAILED, "%s is mounted with -o snapshot=off: "
			   "views keep files' bytes as snapshots do", mnt);
	if (err == EEXIST && c->action == TAKE)
		return say(EXIT_FAILED, "a view named '%s' already exists", name);
	if (err == ENOENT && c->action == DELETE)
		return say(EXIT_FAILED, "no view named '%s'", name);
	if ((err == EPERM || err == EACCES) && c->action != LIST)
		return say(EXIT_FAILED, "only the mount's owner or root may take "
			   "or delete views");
	if (err == ENOSPC && c->action == TAKE)
		return say(EXIT_FAILED, "too many views (at most %d): delete one "
			   "first", SFS_VIEWS_MAX);
	/* The kernel's cap on an xattr value, XATTR_SIZE_MAX: a long list. */
	if (err == E2BIG && c->action == LIST)
		return say(EXIT_FAILED, "%s: the list of views is longer than an "
			   "extended attribute may be (64 KiB)", mnt);
	return say(EXIT_FAILED, "%s: %s%s%s%s: %s", mnt, doing[c->action],
		   *name ? " '" : "", name, *name ? "'" : "", strerror(err));
}

/* ---- arguments -------------------------------------------------------- */

static int set_action(struct cmd *c, enum action a)
{
	if (c->action != TAKE && c->action != a)
		return usage_error("--list and --delete exclude each other");
	c->action = a;
	return 0;
}

/* One flag; 0 or a usage error. */
static int take_flag(struct cmd *c, const char *a)
{
	struct quoted q;

	if (!strcmp(a, "--list"))
		return set_action(c, LIST);
	if (!strcmp(a, "--delete"))
		return set_action(c, DELETE);
	if (!strcmp(a, "--json"))
		c->json = true;
	else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
		c->help = true;
	else
		return usage_error("unknown option '%s'", quote(&q, a));
	return 0;
}

/*
 * Flags anywhere, MNT then NAME; after "--" everything is positional (a
 * view may be named "-x"). Only what this action needs is accepted.
 */
static int parse_args(int argc, char *argv[], struct cmd *c)
{
	const char *pos[2] = { NULL, NULL };
	bool dashdash = false;
	struct quoted q;
	int npos = 0, res;

	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (!dashdash && !strcmp(a, "--")) {
			dashdash = true;
		} else if (!dashdash && a[0] == '-' && a[1]) {
			if ((res = take_flag(c, a)))
				return res;
		} else if (npos < 2) {
			pos[npos++] = a;
		} else {
			return usage_error("unexpected argument '%s'", quote(&q, a));
		}
	}
	if (c->help)
		return 0;
	c->mnt = pos[0];
	c->name = pos[1];
	if (!c->mnt)
		return usage_error("missing MNT");
	if (c->action == LIST && c->name)
		return usage_error("--list takes no NAME: unexpected argument '%s'",
				   quote(&q, c->name));
	if (c->action != LIST && !c->name)
		return usage_error("missing NAME");
	if (c->json && c->action != LIST)
		return usage_error("--json goes with --list");
	return 0;
}

/* The header's rules, checked here so that a bad NAME costs no ioctl. */
static int check_name(const char *name)
{
	const char *problem = sfs_component_problem(name);
	struct quoted q;

	if (!problem)
		return 0;
	if (!*name)
		return say(EXIT_USAGE, "the view name is empty");
	return say(EXIT_USAGE, "the view name '%s' %s", quote(&q, name), problem);
}

/* ---- talking to the mount --------------------------------------------- */

static int open_root(const struct cmd *c)
{
	struct quoted q;
	int fd = open(c->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = errno;

	if (fd == -1)
		say(EXIT_FAILED, "%s: %s", quote(&q, c->mnt), strerror(err));
	return fd;
}

/*
 * The listing's JSON, NUL-terminated (g_free it), its length in *len; or
 * NULL with errno. The list may grow between asking its size and reading
 * it (ERANGE): ask again. Trailing NULs, which some xattr writers add,
 * are not part of it.
 */
static char *read_listing(int fd, size_t *len)
{
	for (int tries = 0; tries < 8; tries++) {
		ssize_t size = fgetxattr(fd, SFS_XATTR_VIEWS, NULL, 0), n;
		char *buf;

		if (size < 0)
			return NULL;
		buf = g_malloc((size_t)size + 1);
		n = fgetxattr(fd, SFS_XATTR_VIEWS, buf, (size_t)size);
		if (n >= 0) {
			while (n > 0 && buf[n - 1] == '\0')
				n--;
			buf[n] = '\0';
			*len = (size_t)n;
			return buf;
		}
		g_free(buf);
		if (errno != ERANGE)
			return NULL;
	}
	errno = ERANGE;
	return NULL;
}

static int view_ioctl(int fd, unsigned long request, const char *name)
{
	struct sfs_ioc_view arg = { { 0 } };

	memcpy(arg.name, name, strlen(name));	/* checked: at most 255 */
	return ioctl(fd, request, &arg);
}

/*
 * Where the views are: the listing's snapdir. The view exists already, so
 * an unreadable listing is a warning: the default is printed.
 */
static char *snapdir_of(int fd, const char *mnt)
{
	struct sfs_view_list l;
	struct quoted q;
	char *json, *dir;
	size_t len, at = 0;
	int err;

	json = read_listing(fd, &len);
	err = errno;
	if (json && sfs_view_list_parse(json, len, &l, &at) == 0) {
		dir = l.snapdir;
		l.snapdir = NULL;
		sfs_view_list_free(&l);
		g_free(json);
		return dir;
	}
	say(0, "warning: %s: %s; assuming the views are in %s", quote(&q, mnt),
	    json ? "cannot parse its list of views" : strerror(err),
	    SFS_DEFAULT_SNAPDIR);
	g_free(json);
	return g_strdup(SFS_DEFAULT_SNAPDIR);
}

static int take_view(const struct cmd *c, int fd)
{
	size_t n = strlen(c->mnt);
	char *dir;

	if (view_ioctl(fd, SFS_IOC_VIEW_CREATE, c->name) == -1)
		return refused(c, errno);
	dir = snapdir_of(fd, c->mnt);
	/* The path as given, raw: for $(stablefs snapshot MNT NAME). */
	printf("%s%s%s/%s\n", c->mnt, n && c->mnt[n - 1] == '/' ? "" : "/", dir,
	       c->name);
	g_free(dir);
	return 0;
}

static int delete_view(const struct cmd *c, int fd)
{
	if (view_ioctl(fd, SFS_IOC_VIEW_DELETE, c->name) == -1)
		return refused(c, errno);
	return 0;
}

/* ---- the table -------------------------------------------------------- */

/*
 * A name for a terminal, one line: control characters and '\' escaped;
 * bytes that are not UTF-8 as \xNN (then all of its high bytes, so that
 * the escapes read one way).
 */
static char *display_name(const char *name)
{
	bool utf8 = g_utf8_validate(name, -1, NULL);
	GString *out = g_string_new(NULL);

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p == '\\')
			g_string_append(out, "\\\\");
		else if (*p == '\n')
			g_string_append(out, "\\n");
		else if (*p == '\t')
			g_string_append(out, "\\t");
		else if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !utf8))
			g_string_append_printf(out, "\\x%02x", *p);
		else
			g_string_append_c(out, (char)*p);
	}
	return g_string_free(out, FALSE);
}

/* 1536 -> "1.5 KiB"; below 1 KiB in bytes. */
static void human_bytes(uint64_t bytes, char *out, size_t size)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(out, size, "%llu B", (unsigned long long)bytes);
		return;
	}
	v /= 1024;
	/* Move up also where one decimal would round to 1024.0. */
	while (v >= 1023.95 && u + 1 < G_N_ELEMENTS(units)) {
		v /= 1024;
		u++;
	}
	snprintf(out, size, "%.1f %s", v, units[u]);
}

/* ISO 8601 in local time, to the second, with the zone's offset. */
static void iso_time(uint64_t ns, char *out, size_t size)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	size_t n;

	if (!localtime_r(&t, &tm) ||
	    (n = strftime(out, size, "%Y-%m-%dT%H:%M:%S%z", &tm)) < 5 ||
	    n + 2 > size) {
		snprintf(out, size, "?");
		return;
	}
	/* +0100 -> +01:00 (ISO 8601's extended form, like the rest) */
	memmove(out + n - 1, out + n - 2, 3);
	out[n - 2] = ':';
}

static void pad(const char *s, long width)
{
	fputs(s, stdout);
	for (long n = (long)g_utf8_strlen(s, -1); n < width; n++)
		putchar(' ');
}

static void print_table(const struct sfs_view_list *l)
{
	char **names = g_new0(char *, l->views->len + 1);
	long width = 4;		/* "NAME" */

	for (guint i = 0; i < l->views->len; i++) {
		names[i] = display_name(g_array_index(l->views, struct sfs_view, i).name);
		width = MAX(width, MIN(g_utf8_strlen(names[i], -1), 40));
	}
	pad("NAME", width);
	printf("  %-25s  %8s  %10s  %s\n", "CREATED", "CAPTURES", "PRESERVED", "STATE");
	for (guint i = 0; i < l->views->len; i++) {
		const struct sfs_view *v = &g_array_index(l->views, struct sfs_view, i);
		char created[64], bytes[32];

		iso_time(v->created_ns, created, sizeof(created));
		human_bytes(v->bytes_preserved, bytes, sizeof(bytes));
		pad(names[i], width);
		printf("  %-25s  %8llu  %10s  %s\n", created,
		       (unsigned long long)v->captures, bytes,
		       v->invalid ? "invalid" : "ok");
	}
	g_strfreev(names);
}

static int list_views(const struct cmd *c, int fd)
{
	struct sfs_view_list l;
	struct quoted q;
	size_t len, at = 0;
	char *json = read_listing(fd, &len);

	if (!json)
		return refused(c, errno);
	if (c->json) {
		fwrite(json, 1, len, stdout);
		putchar('\n');
	} else if (sfs_view_list_parse(json, len, &l, &at) == 0) {
		print_table(&l);
		sfs_view_list_free(&l);
	} else {
		g_free(json);
		return say(EXIT_FAILED, "%s: cannot parse its list of views (at "
			   "byte %zu; --json prints it as it is)", quote(&q, c->mnt), at);
	}
	g_free(json);
	return 0;
}

/* ---- the command ------------------------------------------------------ */

int sfs_snapshot_command(int argc, char *argv[])
{
	struct cmd c = { .action = TAKE };
	int fd, res;

	if ((res = parse_args(argc, argv, &c)))
		return res;
	if (c.help) {
		fputs(usage_text, stdout);
		return fflush(stdout) ? EXIT_FAILED : 0;
	}
	if (c.action != LIST && (res = check_name(c.name)))
		return res;
	fd = open_root(&c);
	if (fd == -1)
		return EXIT_FAILED;
	res = c.action == TAKE ? take_view(&c, fd) :
	      c.action == DELETE ? delete_view(&c, fd) : list_views(&c, fd);
	close(fd);
	/* A full disk or a closed pipe must not pass for success. */
	if (fflush(stdout) || ferror(stdout))
		return say(EXIT_FAILED, "writing the output: %s", strerror(errno));
	return res;
}
