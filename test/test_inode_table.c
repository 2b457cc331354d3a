/* Unit tests of lib/inode_table.c: one entry per backing inode, exact counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sfs/inode_table.h"

struct fixture {
	char dir[64];
	struct sfs_inode_table *t;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	snprintf(f->dir, sizeof(f->dir), "/tmp/sfs-itable-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	fd = open(f->dir, O_PATH | O_DIRECTORY);
	f->t = sfs_itable_new(fd);
	*state = f;
	return f->t ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	sfs_itable_free(f->t);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* Look up a name below the fixture dir as the daemon does. */
static struct sfs_inode *lookup(struct fixture *f, const char *name)
{
	struct sfs_inode *root = sfs_itable_root(f->t);
	int fd = openat(root->fd, name, O_PATH | O_NOFOLLOW);
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	return sfs_itable_lookup(f->t, fd, &st);
}

static void create(struct fixture *f, const char *name)
{
	int fd = openat(sfs_itable_root(f->t)->fd, name, O_CREAT | O_WRONLY, 0644);

	assert_true(fd >= 0);
	close(fd);
}

static int open_fd_count(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

static void test_same_inode_same_entry(void **state)
{
	struct fixture *f = *state;
	struct sfs_inode *a, *b, *c;
	int fds;

	create(f, "a");
	assert_int_equal(linkat(sfs_itable_root(f->t)->fd, "a",
				sfs_itable_root(f->t)->fd, "hardlink", 0), 0);
	fds = open_fd_count();
	a = lookup(f, "a");
	b = lookup(f, "hardlink");	/* hard link: the same backing inode */
	c = lookup(f, "a");
	assert_ptr_equal(a, b);
	assert_ptr_equal(a, c);
	assert_int_equal(a->nlookup, 3);
	assert_int_equal(a->type, S_IFREG);
	assert_int_equal(sfs_itable_count(f->t), 2);	/* root + a */
	/* Redundant O_PATH fds were closed: only the entry's own remains. */
	assert_int_equal(open_fd_count(), fds + 1);
	sfs_itable_forget(f->t, a, 2);
	assert_int_equal(a->nlookup, 1);
	assert_int_equal(sfs_itable_count(f->t), 2);
	sfs_itable_forget(f->t, a, 1);	/* last: freed, fd closed */
	assert_int_equal(sfs_itable_count(f->t), 1);
	assert_int_equal(open_fd_count(), fds);
}

static void test_distinct_inodes(void **state)
{
	struct fixture *f = *state;
	struct sfs_inode *a, *b;

	create(f, "x");
	create(f, "y");
	a = lookup(f, "x");
	b = lookup(f, "y");
	assert_ptr_not_equal(a, b);
	assert_int_equal(sfs_itable_count(f->t), 3);
	/* Over-forgetting clamps at zero and frees once. */
	sfs_itable_forget(f->t, a, 99);
	sfs_itable_forget(f->t, b, 1);
	assert_int_equal(sfs_itable_count(f->t), 1);
}

static void test_root_pinned(void **state)
{
	struct fixture *f = *state;
	struct sfs_inode *root = sfs_itable_root(f->t);

	assert_int_equal(root->type, S_IFDIR);
	sfs_itable_forget(f->t, root, 1000);
	assert_int_equal(sfs_itable_count(f->t), 1);
	assert_ptr_equal(sfs_itable_root(f->t), root);
	assert_true(fcntl(root->fd, F_GETFD) != -1);
}

static void test_entry_survives_rename_and_unlink(void **state)
{
	struct fixture *f = *state;
	struct sfs_inode *a, *b;
	int rootfd = sfs_itable_root(f->t)->fd;
	struct stat st;

	create(f, "old");
	a = lookup(f, "old");
	assert_int_equal(renameat(rootfd, "old", rootfd, "new"), 0);
	b = lookup(f, "new");
	assert_ptr_equal(a, b);
	assert_int_equal(unlinkat(rootfd, "new", 0), 0);
	/* The O_PATH fd still reaches the (now nameless) inode. */
	assert_int_equal(fstatat(a->fd, "", &st, AT_EMPTY_PATH), 0);
	assert_int_equal(st.st_nlink, 0);
	sfs_itable_forget(f->t, a, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_same_inode_same_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_distinct_inodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_pinned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_survives_rename_and_unlink,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
