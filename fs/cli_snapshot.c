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

/* What getxattr(SFS_XATTR_VIEWS) says about one view. */
struct view {
	char *name;
	uint64_t epoch, created_ns, captures, bytes_preserved;
	bool invalid;
};

struct listing {
	char *snapdir;
	GArray *views;		/* of struct view */
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

/* ---- the listing's JSON ----------------------------------------------- */

/*
 * Just enough JSON for SFS_XATTR_VIEWS, but all of JSON's syntax: fields
 * this command does not know (a newer daemon's) are skipped, whatever
 * their type. Strings are bytes: a name may hold any byte but '/' and NUL,
 * so bytes that are not UTF-8 come raw; the daemon escapes '"', '\' and
 * control characters (\uXXXX), which come back as the bytes they stand for.
 */
struct json {
	const char *p, *start, *end;
	int depth;
};

#define JSON_MAX_DEPTH 32

static void json_ws(struct json *j)
{
	while (j->p < j->end && *j->p && strchr(" \t\r\n", *j->p))
		j->p++;
}

static bool json_eat(struct json *j, char c)
{
	json_ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return true;
	}
	return false;
}

static int json_hex4(struct json *j, unsigned *out)
{
	unsigned v = 0;

	if (j->end - j->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int d = g_ascii_xdigit_value(*j->p++);

		if (d < 0)
			return -1;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return 0;
}

/* After "\u": a code point, a surrogate pair joined. NUL is refused: no
 * name holds one. */
static int json_unicode(struct json *j, gunichar *out)
{
	unsigned hi, lo;

	if (json_hex4(j, &hi))
		return -1;
	if (hi >= 0xdc00 && hi <= 0xdfff)
		return -1;		/* a low surrogate alone */
	if (hi >= 0xd800 && hi <= 0xdbff) {
		if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
			return -1;
		j->p += 2;
		if (json_hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff)
			return -1;
		hi = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
	}
	*out = hi;
	return hi ? 0 : -1;
}

/* After '\': one escape, appended to out as the bytes it stands for. */
static int json_escape(struct json *j, GString *out)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *e;
	gunichar u;

	if (j->p >= j->end)
		return -1;
	if (*j->p == 'u') {
		j->p++;
		if (json_unicode(j, &u))
			return -1;
		g_string_append_unichar(out, u);
		return 0;
	}
	e = *j->p ? strchr(from, *j->p) : NULL;
	if (!e)
		return -1;
	g_string_append_c(out, to[e - from]);
	j->p++;
	return 0;
}

/* A string into out (emptied first). */
static int json_string(struct json *j, GString *out)
{
	g_string_truncate(out, 0);
	if (!json_eat(j, '"'))
		return -1;
	while (j->p < j->end) {
		unsigned char c = (unsigned char)*j->p++;

		if (c == '"')
			return 0;
		if (c == '\\') {
			if (json_escape(j, out))
				return -1;
		} else if (c < 0x20) {
			return -1;	/* JSON has them escaped; NUL ends nothing */
		} else {
			g_string_append_c(out, (char)c);
		}
	}
	return -1;
}

/* A count: digits only (the daemon's numbers are unsigned integers). */
static int json_uint(struct json *j, uint64_t *out)
{
	uint64_t v = 0;
	const char *digits;

	json_ws(j);
	digits = j->p;
	for (; j->p < j->end && g_ascii_isdigit(*j->p); j->p++) {
		unsigned d = (unsigned)(*j->p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return j->p > digits ? 0 : -1;
}

static bool json_word(struct json *j, const char *word)
{
	size_t n = strlen(word);

	json_ws(j);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n))
		return false;
	j->p += n;
	return true;
}

static int json_bool(struct json *j, bool *out)
{
	if (json_word(j, "true"))
		*out = true;
	else if (json_word(j, "false"))
		*out = false;
	else
		return -1;
	return 0;
}

static int json_skip(struct json *j);

/*
 * An object or array, possibly empty: each member of an object is given
 * to member(j, key, arg) if there is one, everything else is skipped.
 * Nesting deeper than JSON_MAX_DEPTH is refused (the stack is finite).
 */
static int json_members(struct json *j, char open, char close,
			int (*member)(struct json *j, const char *key, void *arg),
			void *arg)
{
	GString *key = g_string_new(NULL);
	int res = -1;

	if (!json_eat(j, open)) {
		g_string_free(key, TRUE);
		return -1;
	}
	if (++j->depth > JSON_MAX_DEPTH)
		goto out;
	if (json_eat(j, close)) {
		res = 0;
		goto out;
	}
	do {
		if (open == '{' && (json_string(j, key) || !json_eat(j, ':')))
			goto out;
		if ((member && open == '{') ? member(j, key->str, arg) : json_skip(j))
			goto out;
	} while (json_eat(j, ','));
	res = json_eat(j, close) ? 0 : -1;
out:
	j->depth--;
	g_string_free(key, TRUE);
	return res;
}

static bool json_digits(struct json *j)
{
	const char *start = j->p;

	while (j->p < j->end && g_ascii_isdigit(*j->p))
		j->p++;
	return j->p > start;
}

/* A number of any form: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number(struct json *j)
{
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (!json_digits(j))
		return -1;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!json_digits(j))
			return -1;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!json_digits(j))
			return -1;
	}
	return 0;
}

/* Any value, dropped. */
static int json_skip(struct json *j)
{
	GString *scratch;
	int res;

	json_ws(j);
	if (j->p >= j->end)
		return -1;
	switch (*j->p) {
	case '{':
		return json_members(j, '{', '}', NULL, NULL);
	case '[':
		return json_members(j, '[', ']', NULL, NULL);
	case '"':
		scratch = g_string_new(NULL);
		res = json_string(j, scratch);
		g_string_free(scratch, TRUE);
		return res;
	default:
		if (json_word(j, "true") || json_word(j, "false") ||
		    json_word(j, "null"))
			return 0;
		return json_number(j);
	}
}

/* A string member as a new C string (a name: no NUL inside). */
static int json_take_string(struct json *j, char **out)
{
	GString *s = g_string_new(NULL);

	if (json_string(j, s) || strlen(s->str) != s->len) {
		g_string_free(s, TRUE);
		return -1;
	}
	g_free(*out);
	*out = g_string_free(s, FALSE);
	return 0;
}

static int view_member(struct json *j, const char *key, void *arg)
{
	struct view *v = arg;

	if (!strcmp(key, "name"))
		return json_take_string(j, &v->name);
	if (!strcmp(key, "epoch"))
		return json_uint(j, &v->epoch);
	if (!strcmp(key, "created_ns"))
		return json_uint(j, &v->created_ns);
	if (!strcmp(key, "captures"))
		return json_uint(j, &v->captures);
	if (!strcmp(key, "bytes_preserved"))
		return json_uint(j, &v->bytes_preserved);
	if (!strcmp(key, "invalid"))
		return json_bool(j, &v->invalid);
	return json_skip(j);
}

/* "views": [ {view}, ... ]; every view has a name. */
static int json_views(struct json *j, GArray *views)
{
	if (!json_eat(j, '['))
		return -1;
	if (json_eat(j, ']'))
		return 0;
	do {
		struct view v = { 0 };
		int res = json_members(j, '{', '}', view_member, &v);

		if (res || !v.name) {
			g_free(v.name);
			return -1;
		}
		g_array_append_val(views, v);
	} while (json_eat(j, ','));
	return json_eat(j, ']') ? 0 : -1;
}

static int listing_member(struct json *j, const char *key, void *arg)
{
	struct listing *l = arg;

	if (!strcmp(key, "snapdir"))
		return json_take_string(j, &l->snapdir);
	if (!strcmp(key, "views"))
		return json_views(j, l->views);
	return json_skip(j);
}

static void listing_free(struct listing *l)
{
	for (guint i = 0; l->views && i < l->views->len; i++)
		g_free(g_array_index(l->views, struct view, i).name);
	if (l->views)
		g_array_free(l->views, TRUE);
	g_free(l->snapdir);
}

/*
 * Parse the whole value into l (snapdir defaulted); 0, or -1 with *at the
 * offset where it went wrong. A snapdir that is not one directory entry is
 * wrong too: it would make the printed paths lie.
 */
static int listing_parse(const char *text, size_t len, struct listing *l,
			 size_t *at)
{
	struct json j = { text, text, text + len, 0 };

	l->snapdir = NULL;
	l->views = g_array_new(FALSE, TRUE, sizeof(struct view));
	if (json_members(&j, '{', '}', listing_member, l) == 0) {
		json_ws(&j);
		if (j.p == j.end) {
			if (!l->snapdir)
				l->snapdir = g_strdup(SFS_DEFAULT_SNAPDIR);
			if (!sfs_component_problem(l->snapdir))
				return 0;
		}
	}
	*at = (size_t)(j.p - j.start);
	listing_free(l);
	return -1;
}

/* ---- talking to the mount --------------------------------------------- */

static int open_root(const struct cmd *c)
{
	struct quoted q;
	int fd = open(c->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1)
		say(EXIT_FAILED, "%s: %s", quote(&q, c->mnt), strerror(errno));
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
	struct listing l;
	struct quoted q;
	char *json, *dir;
	size_t len, at = 0;

	json = read_listing(fd, &len);
	if (json && listing_parse(json, len, &l, &at) == 0) {
		dir = l.snapdir;
		l.snapdir = NULL;
		listing_free(&l);
		g_free(json);
		return dir;
	}
	say(0, "warning: %s: %s; assuming the views are in %s", quote(&q, mnt),
	    json ? "cannot parse its list of views" : strerror(errno),
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

static void print_table(const struct listing *l)
{
	char **names = g_new0(char *, l->views->len + 1);
	long width = 4;		/* "NAME" */

	for (guint i = 0; i < l->views->len; i++) {
		names[i] = display_name(g_array_index(l->views, struct view, i).name);
		width = MAX(width, MIN(g_utf8_strlen(names[i], -1), 40));
	}
	pad("NAME", width);
	printf("  %-25s  %8s  %10s  %s\n", "CREATED", "CAPTURES", "PRESERVED", "STATE");
	for (guint i = 0; i < l->views->len; i++) {
		const struct view *v = &g_array_index(l->views, struct view, i);
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
	struct listing l;
	struct quoted q;
	size_t len, at = 0;
	char *json = read_listing(fd, &len);

	if (!json)
		return refused(c, errno);
	if (c->json) {
		fwrite(json, 1, len, stdout);
		putchar('\n');
	} else if (listing_parse(json, len, &l, &at) == 0) {
		print_table(&l);
		listing_free(&l);
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
