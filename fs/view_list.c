/*
 * Just enough JSON for SFS_XATTR_VIEWS, but all of JSON's syntax: fields
 * `stablefs snapshot` does not know (a newer daemon's) are skipped,
 * whatever their type. Strings are bytes: a name may hold any byte but
 * '/' and NUL, so bytes that are not UTF-8 come raw; the daemon escapes
 * '"', '\' and control characters (\uXXXX), which come back as the bytes
 * they stand for.
 */
#include <string.h>

#include "sfs/options.h"
#include "sfs/paths.h"
#include "view_list.h"

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
	struct sfs_view *v = arg;

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
		struct sfs_view v = { 0 };
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
	struct sfs_view_list *l = arg;

	if (!strcmp(key, "snapdir"))
		return json_take_string(j, &l->snapdir);
	if (!strcmp(key, "views"))
		return json_views(j, l->views);
	return json_skip(j);
}

void sfs_view_list_free(struct sfs_view_list *l)
{
	for (guint i = 0; l->views && i < l->views->len; i++)
		g_free(g_array_index(l->views, struct sfs_view, i).name);
	if (l->views)
		g_array_free(l->views, TRUE);
	g_free(l->snapdir);
	l->views = NULL;
	l->snapdir = NULL;
}

int sfs_view_list_parse(const char *text, size_t len, struct sfs_view_list *l,
			size_t *at)
{
	struct json j = { text, text, text + len, 0 };

	l->snapdir = NULL;
	l->views = g_array_new(FALSE, TRUE, sizeof(struct sfs_view));
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
	sfs_view_list_free(l);
	return -1;
}
