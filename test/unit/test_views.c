/*
 * Unit tests of lib/views.c: which view sees which capture, when an object
 * needs capturing, and that deleting views frees exactly the captures no
 * remaining view can use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfs/history.h"
#include "sfs/view_ioctl.h"
#include "sfs/views.h"
#include "test_util.h"

/* A payload: which capture it is, and whether it was freed. */
struct payload {
	int id;
	int *freed;	/* counts frees, indexed by id */
};

static void free_payload(void *p, void *ctx)
{
	struct payload *pl = p;

	(void)ctx;
	pl->freed[pl->id]++;
	free(pl);
}

static int freed[64];

static struct payload *payload(int id)
{
	struct payload *p = malloc(sizeof(*p));

	assert_non_null(p);
	p->id = id;
	p->freed = freed;
	return p;
}

static struct sfs_views *V;
static const struct timespec T0 = { 100, 0 }, T1 = { 200, 0 };

static int setup(void **state)
{
	(void)state;
	memset(freed, 0, sizeof(freed));
	V = sfs_views_new(free_payload, NULL);
	return V ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	sfs_views_free(V);
	V = NULL;
	return 0;
}

/* The payload id view n sees for (1, ino), -1: unchanged, -2: absent. */
static int seen(const char *name, ino_t ino)
{
	struct sfs_view *view = sfs_views_get(V, name);
	void *p = NULL;
	int id;

	assert_non_null(view);
	if (!sfs_views_capture_for(V, view, 1, ino, &p))
		id = -1;
	else
		id = p ? ((struct payload *)p)->id : -2;
	sfs_view_put(V, view);
	return id;
}

static void test_names(void **state)
{
	char big[SFS_VIEW_NAME_MAX + 2];

	(void)state;
	assert_true(sfs_view_name_ok("nightly-2026-12-02"));
	assert_true(sfs_view_name_ok("..."));
	assert_false(sfs_view_name_ok(""));
	assert_false(sfs_view_name_ok("."));
	assert_false(sfs_view_name_ok(".."));
	assert_false(sfs_view_name_ok("a/b"));
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_false(sfs_view_name_ok(big));
	big[SFS_VIEW_NAME_MAX] = '\0';
	assert_true(sfs_view_name_ok(big));
	assert_int_equal(sfs_views_create(V, "a/b", &T0, &T0), EINVAL);
	assert_int_equal(sfs_views_count(V), 0);
}

static void test_create_delete(void **state)
{
	struct sfs_view **list;
	size_t n;

	(void)state;
	assert_int_equal(sfs_views_create(V, "a", &T0, &T1), 0);
	assert_int_equal(sfs_views_create(V, "a", &T0, &T1), EEXIST);
	assert_int_equal(sfs_views_create(V, "b", &T1, &T1), 0);
	assert_int_equal(sfs_views_count(V), 2);
	n = sfs_views_list(V, &list);
	assert_int_equal(n, 2);
	assert_string_equal(sfs_view_name(list[0]), "a");
	assert_int_equal(sfs_view_epoch(list[0]), 1);
	assert_int_equal(sfs_view_horizon(list[0]).tv_sec, 200);
	assert_string_equal(sfs_view_name(list[1]), "b");
	assert_int_equal(sfs_view_epoch(list[1]), 2);
	for (size_t i = 0; i < n; i++)
		sfs_view_put(V, list[i]);
	g_free(list);
	assert_int_equal(sfs_views_delete(V, "a"), 0);
	assert_int_equal(sfs_views_delete(V, "a"), ENOENT);
	assert_null(sfs_views_get(V, "a"));
	/* The name is free again; epochs never repeat. */
	assert_int_equal(sfs_views_create(V, "a", &T1, &T1), 0);
	n = sfs_views_list(V, &list);
	assert_int_equal(n, 2);
	assert_int_equal(sfs_view_epoch(list[1]), 3);
	for (size_t i = 0; i < n; i++)
		sfs_view_put(V, list[i]);
	g_free(list);
}

static void test_too_many(void **state)
{
	char name[32];

	(void)state;
	for (int i = 0; i < SFS_VIEWS_MAX; i++) {
		snprintf(name, sizeof(name), "v%d", i);
		assert_int_equal(sfs_views_create(V, name, &T0, &T0), 0);
	}
	assert_int_equal(sfs_views_create(V, "one-more", &T0, &T0), ENOSPC);
	assert_int_equal(sfs_views_delete(V, "v7"), 0);
	assert_int_equal(sfs_views_create(V, "one-more", &T0, &T0), 0);
}

static void test_no_views_no_captures(void **state)
{
	struct payload *p = payload(0);

	(void)state;
	assert_false(sfs_views_need_capture(V, 1, 10));
	assert_false(sfs_views_add_capture(V, 1, 10, p));
	free(p);
}

/* One capture serves every view taken since the previous one. */
static void test_capture_shared_by_views(void **state)
{
	(void)state;
	assert_int_equal(sfs_views_create(V, "a", &T0, &T0), 0);
	assert_int_equal(sfs_views_create(V, "b", &T0, &T0), 0);
	assert_true(sfs_views_need_capture(V, 1, 10));
	assert_int_equal(seen("a", 10), -1);
	assert_true(sfs_views_add_capture(V, 1, 10, payload(1)));
	/* A second change of the same state captures nothing more. */
	assert_false(sfs_views_need_capture(V, 1, 10));
	assert_int_equal(seen("a", 10), 1);
	assert_int_equal(seen("b", 10), 1);
	/* Another object is untouched. */
	assert_int_equal(seen("a", 11), -1);
	/* A later view sees the object live until its next change. */
	assert_int_equal(sfs_views_create(V, "c", &T0, &T0), 0);
	assert_int_equal(seen("c", 10), -1);
	assert_true(sfs_views_need_capture(V, 1, 10));
	assert_true(sfs_views_add_capture(V, 1, 10, payload(2)));
	assert_int_equal(seen("a", 10), 1);
	assert_int_equal(seen("b", 10), 1);
	assert_int_equal(seen("c", 10), 2);
}

/* A file created after the newest view needs no capture for it. */
static void test_created_marker(void **state)
{
	(void)state;
	assert_int_equal(sfs_views_create(V, "a", &T0, &T0), 0);
	assert_true(sfs_views_add_capture(V, 1, 20, NULL));
	assert_false(sfs_views_need_capture(V, 1, 20));
	assert_int_equal(seen("a", 20), -2);
	assert_int_equal(sfs_views_create(V, "b", &T0, &T0), 0);
	assert_true(sfs_views_need_capture(V, 1, 20));
	assert_int_equal(seen("b", 20), -1);
}

/* Deleting a view frees exactly what no other view uses. */
static void test_delete_frees(void **state)
{
	(void)state;
	assert_int_equal(sfs_views_create(V, "a", &T0, &T0), 0);
	assert_true(sfs_views_add_capture(V, 1, 10, payload(1)));
	assert_int_equal(sfs_views_create(V, "b", &T0, &T0), 0);
	assert_true(sfs_views_add_capture(V, 1, 10, payload(2)));
	assert_true(sfs_views_add_capture(V, 1, 11, payload(3)));	/* a and b */
	{
		struct sfs_view *a = sfs_views_get(V, "a");

		assert_int_equal(sfs_view_captures(V, a), 2);
		sfs_view_put(V, a);
	}
	assert_int_equal(sfs_views_delete(V, "a"), 0);
	assert_int_equal(freed[1], 1);
	assert_int_equal(freed[2], 0);
	assert_int_equal(freed[3], 0);
	assert_int_equal(seen("b", 11), 3);
	assert_int_equal(sfs_views_delete(V, "b"), 0);
	assert_int_equal(freed[2], 1);
	assert_int_equal(freed[3], 1);
	{
		struct sfs_views_stats s;

		sfs_views_stats_get(V, &s);
		assert_int_equal(s.views, 0);
		assert_int_equal(s.captures, 0);
		assert_int_equal(s.captures_total, 3);
		assert_int_equal(s.views_total, 2);
	}
}

/* A deleted view still in use keeps its captures until it is put. */
static void test_deleted_view_in_use(void **state)
{
	struct sfs_view *a;
	void *p = NULL;

	(void)state;
	assert_int_equal(sfs_views_create(V, "a", &T0, &T0), 0);
	a = sfs_views_get(V, "a");
	assert_true(sfs_views_add_capture(V, 1, 10, payload(1)));
	assert_int_equal(sfs_views_delete(V, "a"), 0);
	assert_int_equal(sfs_views_count(V), 0);
	/* Nobody can find it, but it is still read: changes still
	 * capture for it, until it is put. */
	assert_true(sfs_views_need_capture(V, 1, 11));
	assert_true(sfs_views_capture_for(V, a, 1, 10, &p));
	assert_int_equal(((struct payload *)p)->id, 1);
	assert_int_equal(freed[1], 0);
	sfs_view_put(V, a);
	assert_int_equal(freed[1], 1);
	assert_false(sfs_views_need_capture(V, 1, 11));
}

/* max_preserve's callbacks: which payloads hold bytes, which were dropped. */
static bool holds_bytes[64];
static int dropped[64];

static bool holds(void *p, void *arg)
{
	(void)arg;
	return holds_bytes[((struct payload *)p)->id];
}

static void drop(void *p, void *arg)
{
	(void)arg;
	dropped[((struct payload *)p)->id]++;
}

static const char *invalid(const char *name)
{
	struct sfs_view *view = sfs_views_get(V, name);
	const char *why;

	assert_non_null(view);
	why = sfs_view_invalid(V, view);
	sfs_view_put(V, view);
	return why;
}

static uint64_t instant(const char *name)
{
	struct sfs_view *view = sfs_views_get(V, name);
	uint64_t i;

	assert_non_null(view);
	i = sfs_view_instant(view);
	sfs_view_put(V, view);
	return i;
}

/* The view max_preserve invalidates now (released), or NULL. */
static const char *invalidate_oldest(void)
{
	struct sfs_view *view = sfs_views_invalidate_oldest(V, holds, drop, NULL,
							    "test");
	static char name[64];

	if (!view)
		return NULL;
	snprintf(name, sizeof(name), "%s", sfs_view_name(view));
	sfs_view_release(V, view);
	return name;
}

/*
 * Two views: capture 1 serves a only, 2 serves a and b, 3 b only. The
 * oldest view goes whole, and only what no valid view shares is dropped.
 */
static void test_invalidate_oldest_whole(void **state)
{
	uint64_t before, after;

	(void)state;
	memset(dropped, 0, sizeof(dropped));
	memset(holds_bytes, 1, sizeof(holds_bytes));
	before = sfs_history_instant();
	assert_int_equal(sfs_views_create(V, "a", &T0, &T0), 0);
	assert_true(sfs_views_add_capture(V, 1, 10, payload(1)));
	assert_int_equal(sfs_views_create(V, "b", &T1, &T1), 0);
	after = sfs_history_instant();
	assert_true(sfs_views_add_capture(V, 1, 11, payload(2)));
	assert_true(sfs_views_add_capture(V, 1, 10, payload(3)));
	/* On the snapshots' clock, in the order they were taken. */
	assert_true(before < instant("a"));
	assert_true(instant("a") < instant("b"));
	assert_true(instant("b") < after);
	assert_int_equal(sfs_views_oldest_holding(V, holds, NULL), instant("a"));

	assert_string_equal(invalidate_oldest(), "a");
	assert_non_null(invalid("a"));
	assert_null(invalid("b"));
	assert_int_equal(dropped[1], 1);
	assert_int_equal(dropped[2], 0);	/* b still reads it */
	assert_int_equal(dropped[3], 0);
	assert_int_equal(seen("b", 11), 2);
	assert_int_equal(seen("b", 10), 3);
	/* Nothing is freed before the view is deleted (open files of it). */
	assert_int_equal(freed[1], 0);
	assert_int_equal(sfs_views_oldest_holding(V, holds, NULL), instant("b"));
	/* b still needs new captures. */
	assert_true(sfs_views_need_capture(V, 1, 12));

	assert_string_equal(invalidate_oldest(), "b");
	assert_int_equal(dropped[2], 1);
	assert_int_equal(dropped[3], 1);
	assert_int_equal(dropped[1], 1);	/* once */
	/* No valid view: nothing to capture for. */
	assert_false(sfs_views_need_capture(V, 1, 12));
	assert_false(sfs_views_add_capture(V, 1, 12, NULL));
	assert_null(invalidate_oldest());
	assert_true(sfs_views_oldest_holding(V, holds, NULL) == UINT64_MAX);

	/* An invalid view stays listed until deleted, then goes as usual. */
	assert_int_equal(sfs_views_count(V), 2);
	assert_int_equal(sfs_views_delete(V, "a"), 0);
	assert_int_equal(freed[1], 1);
	assert_int_equal(freed[2], 0);
	assert_int_equal(sfs_views_delete(V, "b"), 0);
	assert_int_equal(freed[2], 1);
	assert_int_equal(freed[3], 1);
}

/* A view whose captures keep no bytes is passed over: invalidating it
 * would free nothing. A view taken later still captures anew. */
static void test_invalidate_skips_views_without_bytes(void **state)
{
	(void)state;
	memset(dropped, 0, sizeof(dropped));
	memset(holds_bytes, 0, sizeof(holds_bytes));
	holds_bytes[2] = true;
	assert_int_equal(sfs_views_create(V, "a", &T0, &T0), 0);
	assert_true(sfs_views_add_capture(V, 1, 10, payload(1)));
	assert_int_equal(sfs_views_create(V, "b", &T0, &T0), 0);
	assert_true(sfs_views_add_capture(V, 1, 10, payload(2)));
	assert_int_equal(sfs_views_oldest_holding(V, holds, NULL), instant("b"));
	assert_string_equal(invalidate_oldest(), "b");
	assert_null(invalid("a"));
	assert_int_equal(dropped[2], 1);
	assert_int_equal(dropped[1], 0);
	/* a is still whole and still captures. */
	assert_int_equal(seen("a", 10), 1);
	assert_true(sfs_views_need_capture(V, 1, 11));
	assert_int_equal(sfs_views_create(V, "c", &T0, &T0), 0);
	assert_true(sfs_views_need_capture(V, 1, 10));
	assert_true(sfs_views_add_capture(V, 1, 10, payload(3)));
	assert_int_equal(seen("c", 10), 3);
	assert_int_equal(seen("a", 10), 1);
}

static bool is_payload_2(void *p, void *arg)
{
	(void)arg;
	return ((struct payload *)p)->id == 2;
}

/*
 * A capture whose bytes cannot be kept: every view it serves goes whole
 * (its other captures dropped where no valid view shares them), a view
 * it does not serve stays.
 */
static void test_invalidate_using(void **state)
{
	GPtrArray *gone;

	(void)state;
	memset(dropped, 0, sizeof(dropped));
	assert_int_equal(sfs_views_create(V, "a", &T0, &T0), 0);
	assert_true(sfs_views_add_capture(V, 1, 10, payload(1)));	/* a */
	assert_int_equal(sfs_views_create(V, "b", &T0, &T0), 0);
	assert_true(sfs_views_add_capture(V, 1, 11, payload(2)));	/* a, b */
	assert_int_equal(sfs_views_create(V, "c", &T0, &T0), 0);
	assert_true(sfs_views_add_capture(V, 1, 10, payload(3)));	/* b, c */
	gone = sfs_views_invalidate_using(V, is_payload_2, drop, NULL, "test");
	assert_int_equal(gone->len, 2);
	for (guint i = 0; i < gone->len; i++)
		sfs_view_release(V, g_ptr_array_index(gone, i));
	g_ptr_array_free(gone, TRUE);
	assert_non_null(invalid("a"));
	assert_non_null(invalid("b"));
	assert_null(invalid("c"));
	assert_int_equal(dropped[1], 1);
	assert_int_equal(dropped[2], 1);
	assert_int_equal(dropped[3], 0);	/* c still reads it */
	assert_int_equal(seen("c", 10), 3);
	/* Nothing left to invalidate for it. */
	gone = sfs_views_invalidate_using(V, is_payload_2, drop, NULL, "test");
	assert_int_equal(gone->len, 0);
	g_ptr_array_free(gone, TRUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_views_no_captures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capture_shared_by_views, setup, teardown),
		cmocka_unit_test_setup_teardown(test_created_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_frees, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_view_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalidate_oldest_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalidate_skips_views_without_bytes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalidate_using, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
