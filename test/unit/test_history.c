/*
 * Unit tests of lib/history.c and lib/store.c on plain files: what a
 * snapshot reads after the live file changes, shared and separate
 * versions, holes, truncation, out-of-band changes, and that closing the
 * last snapshot gives every preserved byte back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "history_i.h"
#include "sfs/stats.h"
#include "sfs/store.h"

#define FILE_SIZE (256 * 1024)

struct fx {
	char dir[64];
	int dirfd, live;
	struct sfs_store *store;
	struct sfs_history h;
	unsigned char orig[FILE_SIZE];
};

static unsigned char byte_at(uint64_t pos, int gen)
{
	return (unsigned char)((pos * 7 + (uint64_t)gen * 13) % 251 + 1);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[128], err[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/sfs-history-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(path, sizeof(path), "%s/live", f->dir);
	f->live = open(path, O_CREAT | O_RDWR, 0644);
	for (uint64_t i = 0; i < FILE_SIZE; i++)
		f->orig[i] = byte_at(i, 0);
	if (f->live < 0 || pwrite(f->live, f->orig, FILE_SIZE, 0) != FILE_SIZE)
		return -1;
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY);
	f->store = sfs_store_new(f->dirfd, err, sizeof(err));
	if (!f->store)
		return -1;
	sfs_history_init(&f->h);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	sfs_history_destroy(&f->h, f->store);
	sfs_store_free(f->store);
	close(f->live);
	close(f->dirfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd))
		return -1;
	free(f);
	return 0;
}

static struct sfs_snap *open_snap(struct fx *f)
{
	return sfs_history_open(&f->h, f->live);
}

static int live_fd_of(void *arg)
{
	return ((struct fx *)arg)->live;
}

/* What the daemon does for a change through MNT. */
static void change(struct fx *f, uint64_t off, uint64_t end,
		   void (*apply)(struct fx *, uint64_t, uint64_t))
{
	sfs_history_before_change(&f->h, f->store, live_fd_of, f, off, end);
	apply(f, off, end);
	sfs_history_after_change(&f->h, f->live, true);
}

static void overwrite(struct fx *f, uint64_t off, uint64_t end)
{
	unsigned char buf[FILE_SIZE];

	for (uint64_t i = off; i < end; i++)
		buf[i - off] = byte_at(i, 1);
	assert_int_equal(pwrite(f->live, buf, end - off, (off_t)off), (ssize_t)(end - off));
}

static void truncate_to(struct fx *f, uint64_t off, uint64_t end)
{
	(void)end;
	assert_int_equal(ftruncate(f->live, (off_t)off), 0);
}

static void punch(struct fx *f, uint64_t off, uint64_t end)
{
	assert_int_equal(fallocate(f->live, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)off, (off_t)(end - off)), 0);
}

/* Read [off, off + len) of snap as the daemon would; returns bytes or -errno. */
static long read_snap(struct fx *f, struct sfs_snap *snap, uint64_t off,
		      uint64_t len, unsigned char *buf, GArray *kinds)
{
	GArray *segs = g_array_new(FALSE, FALSE, sizeof(struct sfs_segment));
	const char *why = NULL;
	long total = 0;
	int err = sfs_snap_plan(&f->h, snap, off, len, segs, &why);
	bool planned = !err;

	for (guint i = 0; !err && i < segs->len; i++) {
		struct sfs_segment *s = &g_array_index(segs, struct sfs_segment, i);
		unsigned char *dst = buf + (s->off - off);

		if (kinds)
			g_array_append_val(kinds, s->kind);
		if (s->kind == SFS_SEG_ZERO)
			memset(dst, 0, s->len);
		else if (pread(s->kind == SFS_SEG_LIVE ? f->live : f->h.store_fd,
			       dst, s->len, (off_t)(s->kind == SFS_SEG_LIVE ? s->off :
						     s->src_off)) != (ssize_t)s->len)
			err = EIO;
		total += (long)s->len;
	}
	if (planned)
		sfs_snap_plan_done(&f->h, snap);
	g_array_free(segs, TRUE);
	return err ? -err : total;
}

static void assert_snap_is_original(struct fx *f, struct sfs_snap *snap)
{
	static unsigned char buf[FILE_SIZE];

	assert_int_equal(read_snap(f, snap, 0, FILE_SIZE * 2, buf, NULL), FILE_SIZE);
	assert_memory_equal(buf, f->orig, FILE_SIZE);
}

static uint64_t live_bytes(struct fx *f)
{
	struct sfs_store_stats st;

	sfs_store_stats_get(f->store, &st);
	return st.bytes_live;
}

static void test_open_costs_nothing(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *a = open_snap(f), *b = open_snap(f);

	assert_ptr_equal(a, b);		/* same version: shared */
	assert_int_equal(a->refs, 2);
	assert_int_equal(a->extents->len, 0);
	assert_int_equal(live_bytes(f), 0);
	assert_int_equal(f->h.store_fd, -1);	/* no store file yet */
	sfs_history_close(&f->h, f->store, a);
	sfs_history_close(&f->h, f->store, b);
	assert_false(sfs_history_busy(&f->h));
}

static void test_overwrite_preserves_only_the_range(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *snap = open_snap(f);
	unsigned char buf[8192];
	GArray *kinds = g_array_new(FALSE, FALSE, sizeof(enum sfs_seg_kind));

	change(f, 10000, 10100, overwrite);
	assert_snap_is_original(f, snap);
	/* 100 bytes changed: one block preserved, not the file. */
	assert_int_equal(live_bytes(f), 4096);
	/* The whole block [8192, 12288) was kept and serves the snapshot:
	 * a read across it is live, store, live. */
	assert_int_equal(read_snap(f, snap, 7000, 6000, buf, kinds), 6000);
	assert_int_equal(kinds->len, 3);
	assert_int_equal(g_array_index(kinds, enum sfs_seg_kind, 0), SFS_SEG_LIVE);
	assert_int_equal(g_array_index(kinds, enum sfs_seg_kind, 1), SFS_SEG_STORE);
	assert_int_equal(g_array_index(kinds, enum sfs_seg_kind, 2), SFS_SEG_LIVE);
	g_array_free(kinds, TRUE);
	/* Changing the same range again: already preserved, nothing more. */
	change(f, 10000, 10100, overwrite);
	assert_int_equal(live_bytes(f), 4096);
	assert_snap_is_original(f, snap);
	sfs_history_close(&f->h, f->store, snap);
	assert_int_equal(live_bytes(f), 0);
	assert_false(sfs_history_busy(&f->h));
}

/* Preserving ahead copies what snapshots need before the change comes:
 * the change then finds nothing to copy, the snapshot reads its bytes,
 * and a second guess of the same range costs nothing. */
static void test_preserve_ahead(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *snap;

	/* No snapshot: nothing to keep. */
	assert_int_equal(sfs_history_preserve_ahead(&f->h, f->store, live_fd_of,
						    f, 0, 65536), 0);
	snap = open_snap(f);
	assert_int_equal(sfs_history_preserve_ahead(&f->h, f->store, live_fd_of,
						    f, 65536, 131072), 65536);
	assert_int_equal(live_bytes(f), 65536);
	assert_int_equal(f->h.changing, 0);	/* no change was announced */
	assert_int_equal(sfs_history_preserve_ahead(&f->h, f->store, live_fd_of,
						    f, 65536, 131072), 0);
	/* Past the snapshot's end there is nothing it needs. */
	assert_int_equal(sfs_history_preserve_ahead(&f->h, f->store, live_fd_of,
						    f, FILE_SIZE, FILE_SIZE + 4096), 0);
	change(f, 65536, 131072, overwrite);
	assert_int_equal(live_bytes(f), 65536);	/* nothing more copied */
	assert_snap_is_original(f, snap);
	sfs_history_close(&f->h, f->store, snap);
	assert_int_equal(live_bytes(f), 0);
}

static void test_versions_see_their_own_content(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *v0 = open_snap(f), *v1;
	unsigned char buf[FILE_SIZE];

	change(f, 0, 8192, overwrite);
	v1 = open_snap(f);
	assert_ptr_not_equal(v0, v1);
	assert_true(v1->version > v0->version);
	change(f, 4096, UINT64_MAX, truncate_to);	/* [4096, end) goes */
	assert_snap_is_original(f, v0);
	assert_int_equal(read_snap(f, v1, 0, FILE_SIZE, buf, NULL), FILE_SIZE);
	for (uint64_t i = 0; i < FILE_SIZE; i++)
		assert_int_equal(buf[i], i < 8192 ? byte_at(i, 1) : byte_at(i, 0));
	sfs_history_close(&f->h, f->store, v0);
	assert_int_equal(read_snap(f, v1, 0, FILE_SIZE, buf, NULL), FILE_SIZE);
	assert_int_equal(buf[8192], byte_at(8192, 0));
	sfs_history_close(&f->h, f->store, v1);
	assert_int_equal(live_bytes(f), 0);
}

static void test_truncate_and_size(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *snap = open_snap(f);

	change(f, 100, UINT64_MAX, truncate_to);
	assert_int_equal(snap->size, FILE_SIZE);
	assert_snap_is_original(f, snap);
	/* Growing again adds nothing the snapshot could read. */
	change(f, 100, UINT64_MAX, truncate_to);
	assert_snap_is_original(f, snap);
	sfs_history_close(&f->h, f->store, snap);
}

static void test_holes_stay_holes(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *snap;
	unsigned char buf[FILE_SIZE];
	GArray *kinds = g_array_new(FALSE, FALSE, sizeof(enum sfs_seg_kind));

	change(f, 65536, 131072, punch);	/* no snapshot yet: a plain hole */
	memset(f->orig + 65536, 0, 65536);
	snap = open_snap(f);
	change(f, 60000, 140000, overwrite);	/* writes data into the hole */
	assert_snap_is_original(f, snap);
	assert_int_equal(read_snap(f, snap, 65536, 65536, buf, kinds), 65536);
	assert_int_equal(kinds->len, 1);
	assert_int_equal(g_array_index(kinds, enum sfs_seg_kind, 0), SFS_SEG_ZERO);
	/* Only the data around the hole was copied, widened to blocks:
	 * [57344, 65536) and [131072, 143360). */
	assert_int_equal(live_bytes(f), 8192 + 12288);
	g_array_free(kinds, TRUE);
	sfs_history_close(&f->h, f->store, snap);
}

/*
 * A sparse file filled in order under a snapshot (a download, a VM image):
 * every write preserves a piece of hole, which costs no store bytes, so
 * max_preserve never bounds it. Extents of hole that meet are one extent:
 * the daemon's memory stays flat however many writes fill the hole.
 */
static void test_filled_hole_is_one_extent(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *snap;

	change(f, 0, FILE_SIZE, punch);
	memset(f->orig, 0, FILE_SIZE);
	snap = open_snap(f);
	for (uint64_t off = 0; off < FILE_SIZE; off += 4096)
		change(f, off, off + 4096, overwrite);
	assert_snap_is_original(f, snap);
	printf("# %u extents after %d sequential writes into a hole\n",
	       snap->extents->len, FILE_SIZE / 4096);
	assert_int_equal(snap->extents->len, 1);
	assert_int_equal(live_bytes(f), 0);
	sfs_history_close(&f->h, f->store, snap);
}

/*
 * Holes scattered by writes under a snapshot cost extents but no store
 * bytes: past the extent cap the snapshot is invalidated (its reads fail)
 * and its extents are given back, as past max_preserve.
 */
static void test_scattered_holes_are_capped(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *snap;
	unsigned char buf[4096];
	const char *why = NULL;
	GArray *segs = g_array_new(FALSE, FALSE, sizeof(struct sfs_segment));

	change(f, 0, FILE_SIZE, punch);
	snap = open_snap(f);
	sfs_history_set_max_extents(16);
	/* Every other page: extents that never meet. */
	for (uint64_t off = 0; off < FILE_SIZE; off += 8192)
		change(f, off, off + 4096, overwrite);
	sfs_history_set_max_extents(1u << 20);
	printf("# %u extents left, invalid: %s\n", snap->extents->len,
	       snap->invalid ? snap->invalid : "no");
	assert_non_null(snap->invalid);
	assert_int_equal(snap->extents->len, 0);
	assert_int_equal(sfs_snap_plan(&f->h, snap, 0, sizeof(buf), segs, &why), EIO);
	g_array_free(segs, TRUE);
	sfs_history_close(&f->h, f->store, snap);
}

/* Write c at off of the live file behind the history's back, mtime kept. */
static void write_keep_mtime(struct fx *f, char c, off_t off)
{
	struct timespec keep[2] = { { 0, UTIME_OMIT }, { 0, 0 } };
	struct stat st;

	assert_int_equal(fstat(f->live, &st), 0);
	keep[1] = st.st_mtim;
	assert_int_equal(pwrite(f->live, &c, 1, off), 1);
	assert_int_equal(futimens(f->live, keep), 0);
}

/*
 * fanotify's event for a change made in SRC comes late: a snapshot opened
 * after the change (mtime put back, so the open saw nothing) already reads
 * the changed file and must not fail; one opened before it must.
 */
static void test_late_oob_event_spares_later_snapshots(void **state)
{
	struct fx *f = *state;
	unsigned char buf[FILE_SIZE];
	struct sfs_snap *snap;

	assert_false(sfs_history_check_oob(&f->h, f->live));	/* the base */
	write_keep_mtime(f, 'Y', 1000);
	snap = open_snap(f);
	sfs_history_mark_oob(&f->h, f->live, false);	/* the late event */
	assert_int_equal(read_snap(f, snap, 1000, 1, buf, NULL), 1);
	assert_int_equal(buf[0], 'Y');
	/* Opened before the next change: that one's event does fail it. */
	write_keep_mtime(f, 'Z', 2000);
	sfs_history_mark_oob(&f->h, f->live, false);
	assert_int_equal(read_snap(f, snap, 2000, 1, buf, NULL), -EIO);
	sfs_history_close(&f->h, f->store, snap);
}

/*
 * An exact event (the watch knows the change came after the open: its
 * thread announced nothing, and events queued before the open were all
 * handled) fails even a snapshot whose open saw the change's ctime: the
 * change set ctime first and its bytes may have landed after the open.
 */
static void test_exact_oob_event_marks_every_snapshot(void **state)
{
	struct fx *f = *state;
	unsigned char buf[FILE_SIZE];
	struct sfs_snap *snap;

	assert_false(sfs_history_check_oob(&f->h, f->live));
	write_keep_mtime(f, 'Y', 1000);
	snap = open_snap(f);
	assert_true(sfs_history_mark_oob(&f->h, f->live, true));
	assert_int_equal(read_snap(f, snap, 1000, 1, buf, NULL), -EIO);
	sfs_history_close(&f->h, f->store, snap);
}

/* A rebase takes the file as it is: a late event for a change before it
 * (ctime unchanged since) marks nothing, exact or not. */
static void test_event_before_rebase_is_late(void **state)
{
	struct fx *f = *state;
	unsigned char buf[FILE_SIZE];
	struct sfs_snap *snap;

	write_keep_mtime(f, 'Y', 1000);
	sfs_history_rebase(&f->h, f->live);
	snap = open_snap(f);
	assert_false(sfs_history_mark_oob(&f->h, f->live, true));
	assert_int_equal(read_snap(f, snap, 1000, 1, buf, NULL), 1);
	assert_int_equal(buf[0], 'Y');
	write_keep_mtime(f, 'Z', 2000);
	assert_true(sfs_history_mark_oob(&f->h, f->live, true));
	assert_int_equal(read_snap(f, snap, 2000, 1, buf, NULL), -EIO);
	sfs_history_close(&f->h, f->store, snap);
}

/*
 * A change with no snapshot live takes no fstat for the base: the version
 * it made is new, so the first rebase and open take the file as they find
 * it, also after a change from outside, without one more version (no
 * snapshot or READ node has seen this one). From that open on the base is
 * known again and the next change from outside is one.
 */
static void test_change_without_snapshot_defers_base(void **state)
{
	struct fx *f = *state;
	unsigned char buf[FILE_SIZE];
	struct sfs_snap *snap;
	uint64_t v = sfs_history_version(&f->h);

	change(f, 0, 4096, overwrite);
	assert_int_equal(sfs_history_version(&f->h), v + 1);
	assert_false(f->h.base_known);
	write_keep_mtime(f, 'Y', 1000);		/* outside, after ours */
	sfs_history_rebase(&f->h, f->live);
	assert_int_equal(sfs_history_version(&f->h), v + 1);
	snap = open_snap(f);
	assert_int_equal(read_snap(f, snap, 1000, 1, buf, NULL), 1);
	assert_int_equal(buf[0], 'Y');
	assert_int_equal(read_snap(f, snap, 0, 1, buf, NULL), 1);
	assert_int_equal(buf[0], byte_at(0, 1));
	write_keep_mtime(f, 'Z', 2000);
	assert_true(sfs_history_mark_oob(&f->h, f->live, true));
	assert_int_equal(read_snap(f, snap, 2000, 1, buf, NULL), -EIO);
	sfs_history_close(&f->h, f->store, snap);
	/* With a snapshot live, a change records the base at once. */
	snap = open_snap(f);
	change(f, 0, 4096, overwrite);
	assert_true(f->h.base_known);
	assert_false(sfs_history_check_oob(&f->h, f->live));
	sfs_history_close(&f->h, f->store, snap);
}

static void test_out_of_band_change_fails_live_reads(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *snap = open_snap(f);
	unsigned char buf[FILE_SIZE];
	struct timespec later[2] = { { 0, UTIME_OMIT }, { 12345, 0 } };

	change(f, 0, 4096, overwrite);		/* ours: preserved */
	/* Behind our back: a write and a different mtime. */
	assert_int_equal(pwrite(f->live, "X", 1, 50000), 1);
	assert_int_equal(futimens(f->live, later), 0);
	assert_true(sfs_history_check_oob(&f->h, f->live));
	assert_int_equal(f->h.oob_seen, 1);
	/* The preserved range still reads; anything live fails with EIO. */
	assert_int_equal(read_snap(f, snap, 0, 4096, buf, NULL), 4096);
	assert_memory_equal(buf, f->orig, 4096);
	assert_int_equal(read_snap(f, snap, 0, 8192, buf, NULL), -EIO);
	assert_int_equal(read_snap(f, snap, 40000, 100, buf, NULL), -EIO);
	/* Seen once; a snapshot opened now reads the new content. */
	assert_false(sfs_history_check_oob(&f->h, f->live));
	struct sfs_snap *fresh = open_snap(f);
	assert_ptr_not_equal(fresh, snap);
	assert_int_equal(read_snap(f, fresh, 50000, 1, buf, NULL), 1);
	assert_int_equal(buf[0], 'X');
	sfs_history_close(&f->h, f->store, fresh);
	sfs_history_close(&f->h, f->store, snap);
}

static void test_invalidated_snapshot_fails(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *snap = open_snap(f);
	unsigned char buf[16];

	sfs_snap_invalidate(&f->h, snap, "max_preserve reached");
	assert_int_equal(read_snap(f, snap, 0, 16, buf, NULL), -EIO);
	sfs_history_close(&f->h, f->store, snap);
}

/*
 * max_preserve: past the cap, the oldest snapshots of the process are
 * invalidated to make room (not the newer ones, nor the writer), except
 * one with a read in flight, whose store pages may sit in a pipe.
 */
static void test_cap_invalidates_oldest_first(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *a, *b, *c;
	unsigned char buf[FILE_SIZE];
	GArray *segs = g_array_new(FALSE, FALSE, sizeof(struct sfs_segment));
	const char *why;

	sfs_store_set_max(f->store, 8192);
	a = open_snap(f);
	change(f, 0, 4096, overwrite);		/* 4096 for a */
	b = open_snap(f);
	change(f, 8192, 12288, overwrite);	/* 4096 shared by a and b */
	assert_int_equal(live_bytes(f), 8192);
	c = open_snap(f);
	/* b is "being read": planned, not done. */
	assert_int_equal(sfs_snap_plan(&f->h, b, 0, 100, segs, &why), 0);
	change(f, 16384, 20480, overwrite);	/* 4096 more: over the cap */
	/* a, the oldest, went; b (next, but in use) and c stay and read right. */
	assert_int_equal(read_snap(f, a, 0, 16, buf, NULL), -EIO);
	assert_non_null(a->invalid);
	assert_null(b->invalid);
	assert_null(c->invalid);
	sfs_snap_plan_done(&f->h, b);
	assert_int_equal(read_snap(f, b, 8192, 4096, buf, NULL), 4096);
	assert_memory_equal(buf, f->orig + 8192, 4096);
	assert_int_equal(read_snap(f, c, 16384, 4096, buf, NULL), 4096);
	assert_memory_equal(buf, f->orig + 16384, 4096);
	assert_true(live_bytes(f) <= 8192);
	g_array_free(segs, TRUE);
	sfs_history_close(&f->h, f->store, a);
	sfs_history_close(&f->h, f->store, b);
	sfs_history_close(&f->h, f->store, c);
	assert_int_equal(live_bytes(f), 0);
}

/* One tree view, as fs/views.c would hook it: its instant and the one
 * snapshot it keeps. */
static struct {
	uint64_t instant;
	struct sfs_snap *snap;
	bool invalid;
	int invalidated;
} view;

static uint64_t view_oldest(void *ctx, struct sfs_history *held)
{
	(void)ctx;
	return !view.invalid && sfs_snap_holds_bytes(held, view.snap) ?
	       view.instant : UINT64_MAX;
}

static bool view_invalidate(void *ctx, struct sfs_history *held,
			    struct sfs_store *s)
{
	(void)ctx;
	if (view.invalid)
		return false;
	view.invalid = true;
	view.invalidated++;
	sfs_snap_reclaim(held, s, view.snap, "its view was invalidated");
	return true;
}

static void view_invalidate_users(void *ctx, struct sfs_history *held,
				  struct sfs_store *s, struct sfs_snap *snap)
{
	if (snap == view.snap)
		view_invalidate(ctx, held, s);
}

static const struct sfs_view_reclaim view_hooks = {
	.oldest = view_oldest,
	.invalidate_oldest = view_invalidate,
	.invalidate_users = view_invalidate_users,
};

/*
 * max_preserve with a tree view: plain snapshots and the view go oldest
 * first by instant, the view's snapshot only with the view (never alone),
 * and a plain snapshot newer than the view outlives it.
 */
static void test_cap_views_go_whole_by_instant(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *p, *q, *other;
	unsigned char buf[FILE_SIZE];

	memset(&view, 0, sizeof(view));
	sfs_history_set_view_reclaim(&view_hooks);
	sfs_store_set_max(f->store, 12288);
	p = open_snap(f);			/* older than the view */
	change(f, 0, 4096, overwrite);		/* A: p */
	view.instant = sfs_history_instant();
	view.snap = sfs_history_open_for_views(&f->h, f->store, f->live, true);
	assert_non_null(view.snap);
	/* Plain opens and views never share a snapshot. */
	other = open_snap(f);
	assert_ptr_not_equal(other, view.snap);
	sfs_history_close(&f->h, f->store, other);
	change(f, 8192, 12288, overwrite);	/* B: p, view */
	q = open_snap(f);			/* newer than the view */
	change(f, 16384, 20480, overwrite);	/* C: p, view, q: at the cap */
	assert_int_equal(live_bytes(f), 12288);

	change(f, 24576, 28672, overwrite);	/* over: p, the oldest, goes */
	assert_non_null(p->invalid);
	assert_int_equal(view.invalidated, 0);
	assert_null(view.snap->invalid);
	assert_null(q->invalid);
	assert_int_equal(read_snap(f, view.snap, 8192, 4096, buf, NULL), 4096);
	assert_memory_equal(buf, f->orig + 8192, 4096);
	assert_int_equal(live_bytes(f), 12288);	/* B, C, D */

	/* Over again: the view (older than q, which holds bytes too) goes
	 * whole; q stays. */
	change(f, 32768, 36864, overwrite);
	assert_int_equal(view.invalidated, 1);
	assert_non_null(view.snap->invalid);
	assert_int_equal(read_snap(f, view.snap, 8192, 16, buf, NULL), -EIO);
	assert_null(q->invalid);
	for (uint64_t off = 16384; off <= 32768; off += 8192) {
		assert_int_equal(read_snap(f, q, off, 4096, buf, NULL), 4096);
		assert_memory_equal(buf, f->orig + off, 4096);
	}
	/* What only the view kept (B) was given back at once. */
	assert_int_equal(live_bytes(f), 12288);

	sfs_history_set_view_reclaim(NULL);
	sfs_history_close(&f->h, f->store, p);
	sfs_history_close(&f->h, f->store, q);
	sfs_history_close(&f->h, f->store, view.snap);
	assert_int_equal(live_bytes(f), 0);
}

/*
 * A view that keeps nothing yet is no candidate for making room; if one
 * change needs more for it than the cap, the view goes whole (the hooks)
 * rather than that file alone.
 */
static void test_cap_too_small_for_a_view(void **state)
{
	struct fx *f = *state;
	uint64_t lost = sfs_stat_get(SFS_STAT_INVALIDATED_CAP);
	unsigned char buf[16];

	memset(&view, 0, sizeof(view));
	sfs_history_set_view_reclaim(&view_hooks);
	sfs_store_set_max(f->store, 4096);
	view.instant = sfs_history_instant();
	view.snap = sfs_history_open_for_views(&f->h, f->store, f->live, true);
	change(f, 0, 8192, overwrite);		/* never fits */
	assert_int_equal(view.invalidated, 1);
	assert_int_equal(read_snap(f, view.snap, 0, 16, buf, NULL), -EIO);
	/* Not counted as a file lost on its own. */
	assert_int_equal(sfs_stat_get(SFS_STAT_INVALIDATED_CAP), lost);
	assert_int_equal(live_bytes(f), 0);
	sfs_history_set_view_reclaim(NULL);
	sfs_history_close(&f->h, f->store, view.snap);
}

/* A snapshot's extents are sorted and do not overlap. */
static void assert_extents_sorted(const struct sfs_snap *snap)
{
	for (guint i = 1; i < snap->extents->len; i++)
		assert_true(g_array_index(snap->extents, struct sfs_extent, i - 1).end <=
			    g_array_index(snap->extents, struct sfs_extent, i).start);
}

/*
 * Changes in any order (backwards, then one across the gaps between
 * extents already there) leave each map sorted, and every snapshot reads
 * its own version, with the bytes both still need shared.
 */
static void test_changes_in_any_order(void **state)
{
	struct fx *f = *state;
	struct sfs_snap *v0 = open_snap(f), *v1;
	static unsigned char buf[FILE_SIZE];

	for (int k = 6; k >= 0; k--)		/* blocks at 8 KiB + k * 32 KiB */
		change(f, 8192 + k * 32768, 8192 + k * 32768 + 4096, overwrite);
	change(f, 0, 100, overwrite);
	assert_extents_sorted(v0);
	v1 = open_snap(f);
	change(f, 1000, 230 * 1024, overwrite);
	assert_extents_sorted(v0);
	assert_extents_sorted(v1);
	assert_snap_is_original(f, v0);
	/* v1: generation 1 where the first changes wrote. */
	assert_int_equal(read_snap(f, v1, 0, FILE_SIZE, buf, NULL), FILE_SIZE);
	for (uint64_t i = 0; i < FILE_SIZE; i++) {
		bool changed = i < 100 ||
			(i >= 8192 && i <= 200 * 1024 + 4095 &&
			 (i - 8192) % (32 * 1024) < 4096);

		assert_int_equal(buf[i], byte_at(i, changed ? 1 : 0));
	}
	/* v0's 8 blocks, and one chunk of [0, 232 KiB) both share. */
	assert_int_equal(live_bytes(f), (8 + 58) * 4096);
	sfs_history_close(&f->h, f->store, v0);
	sfs_history_close(&f->h, f->store, v1);
	assert_int_equal(live_bytes(f), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_costs_nothing),
		T(test_overwrite_preserves_only_the_range),
		T(test_preserve_ahead),
		T(test_versions_see_their_own_content),
		T(test_truncate_and_size),
		T(test_holes_stay_holes),
		T(test_filled_hole_is_one_extent),
		T(test_scattered_holes_are_capped),
		T(test_out_of_band_change_fails_live_reads),
		T(test_late_oob_event_spares_later_snapshots),
		T(test_exact_oob_event_marks_every_snapshot),
		T(test_event_before_rebase_is_late),
		T(test_change_without_snapshot_defers_base),
		T(test_invalidated_snapshot_fails),
		T(test_cap_invalidates_oldest_first),
		T(test_cap_views_go_whole_by_instant),
		T(test_cap_too_small_for_a_view),
		T(test_changes_in_any_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
