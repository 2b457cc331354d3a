/*
 * The listing of a mount's tree views, getxattr(MNT, SFS_XATTR_VIEWS)
 * (sfs/view_ioctl.h), parsed from its JSON for `stablefs snapshot --list`.
 */
#ifndef SFS_VIEW_LIST_H
#define SFS_VIEW_LIST_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the listing says about one view. */
struct sfs_view {
	char *name;
	uint64_t epoch, created_ns, captures, bytes_preserved;
	bool invalid;
};

struct sfs_view_list {
	char *snapdir;		/* SFS_DEFAULT_SNAPDIR if the listing has none */
	GArray *views;		/* of struct sfs_view, in the listing's order */
};

/*
 * Parse text[0..len) into l: 0, or -1 with *at the byte offset where it
 * went wrong (l then holds nothing to free). A listing is refused whole:
 * a view without a name, a snapdir that is not one directory entry
 * (printed paths would lie), anything that is not JSON.
 */
int sfs_view_list_parse(const char *text, size_t len, struct sfs_view_list *l,
			size_t *at);

void sfs_view_list_free(struct sfs_view_list *l);

#endif
