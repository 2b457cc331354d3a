/*
 * The counters of a running mount, served as the virtual extended
 * attribute "user.stablefs.stats" of the mount's root (one flat JSON
 * object). `stablefs stats MNT` reads it: no extra daemon, no socket, and
 * it works for whoever may access the mount (the mount's owner; others
 * with allow_other).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "sfs/range_lock.h"
#include "sfs/stats.h"
#include "sfs/views.h"

size_t sfs_stats_json(struct sfs_fs *fs, char *buf, size_t size)
{
	struct sfs_store_stats st = { 0 };
	struct sfs_range_stats rs;
	struct sfs_fd_cache_stats fds;
	size_t n = 0;

	if (fs->store)
		sfs_store_stats_get(fs->store, &st);
	sfs_range_stats_get(&rs);
	sfs_itable_fd_stats(fs->inodes, &fds);
#define PUT(fmt, ...) \
	n += (size_t)snprintf(buf + MIN(n, size), n < size ? size - n : 0, \
			      fmt, __VA_ARGS__)
	PUT("{\"snapshots_enabled\":%d", fs->store != NULL);
	for (int i = 0; i < SFS_STAT_COUNT; i++)
		PUT(",\"%s\":%llu", sfs_stat_name(i),
		    (unsigned long long)sfs_stat_get(i));
	PUT(",\"bytes_preserved\":%llu", (unsigned long long)st.bytes_live);
	PUT(",\"bytes_preserved_total\":%llu", (unsigned long long)st.bytes_copied);
	PUT(",\"bytes_reflinked_total\":%llu", (unsigned long long)st.bytes_reflinked);
	PUT(",\"store_files\":%llu", (unsigned long long)st.files);
	PUT(",\"snapshot_clones_total\":%llu", (unsigned long long)st.clones);
	PUT(",\"bytes_cloned_total\":%llu", (unsigned long long)st.bytes_cloned);
	PUT(",\"snapshot_clones_declined\":%llu",
	    (unsigned long long)st.clones_declined);
	PUT(",\"clones\":%d", sfs_store_clones(fs->store));
	PUT(",\"max_preserve\":%llu", (unsigned long long)fs->opts.max_preserve);
	PUT(",\"range_lock_waits\":%llu", (unsigned long long)rs.waits);
	PUT(",\"range_lock_wait_ns\":%llu", (unsigned long long)rs.wait_ns);
	PUT(",\"inodes\":%zu", sfs_itable_count(fs->inodes));
	PUT(",\"nodes\":%zu", sfs_itable_node_count(fs->inodes));
	PUT(",\"incarnations_total\":%llu",
	    (unsigned long long)sfs_itable_incarnations(fs->inodes));
	PUT(",\"estale_redirects\":%llu",
	    (unsigned long long)sfs_itable_redirects(fs->inodes));
	PUT(",\"inode_fds_open\":%zu", fds.open);
	PUT(",\"inode_fds_reopened_total\":%llu", (unsigned long long)fds.reopens);
	PUT(",\"inode_fds_closed_total\":%llu", (unsigned long long)fds.closes);
	if (fs->views) {
		struct sfs_views_stats vs;

		sfs_views_stats_get(fs->views, &vs);
		PUT(",\"views\":%llu", (unsigned long long)vs.views);
		PUT(",\"view_captures\":%llu", (unsigned long long)vs.captures);
		PUT(",\"views_total\":%llu", (unsigned long long)vs.views_total);
		PUT(",\"view_captures_total\":%llu",
		    (unsigned long long)vs.captures_total);
	}
	PUT("%s", "}");
#undef PUT
	return n;
}
