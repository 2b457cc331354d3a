/* Unit tests of lib/paths.c: containment, SRC/MNT checks, safe names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sfs/paths.h"

static void test_within(void **state)
{
	(void)state;
	assert_true(sfs_path_within("/a/b", "/a"));
	assert_true(sfs_path_within("/a", "/a"));
	assert_true(sfs_path_within("/a/b/c", "/a/b"));
	assert_true(sfs_path_within("/anything", "/"));
	assert_false(sfs_path_within("/ab", "/a"));	/* prefix is not parent */
	assert_false(sfs_path_within("/a", "/a/b"));
	assert_false(sfs_path_within("/b", "/a"));
}

static void test_safe_names(void **state)
{
	(void)state;
	assert_true(sfs_name_is_safe("file"));
	assert_true(sfs_name_is_safe("..."));
	assert_true(sfs_name_is_safe(".hidden"));
	assert_true(sfs_name_is_safe("new\nline"));
	assert_false(sfs_name_is_safe(""));
	assert_false(sfs_name_is_safe(NULL));
	assert_false(sfs_name_is_safe("."));
	assert_false(sfs_name_is_safe(".."));
	assert_false(sfs_name_is_safe("a/b"));
	assert_false(sfs_name_is_safe("/"));
}

/* The rules of view names and -o snapdir=: one directory entry a user chose. */
struct dirs {
	char base[PATH_MAX - 64];
	char src[PATH_MAX], mnt[PATH_MAX], file[PATH_MAX];
};

static int setup(void **state)
{
	struct dirs *d = calloc(1, sizeof(*d));

	snprintf(d->base, sizeof(d->base), "/tmp/sfs-paths-XXXXXX");
	if (!mkdtemp(d->base))
		return -1;
	snprintf(d->src, sizeof(d->src), "%s/src", d->base);
	snprintf(d->mnt, sizeof(d->mnt), "%s/mnt", d->base);
	snprintf(d->file, sizeof(d->file), "%s/file", d->base);
	if (mkdir(d->src, 0755) || mkdir(d->mnt, 0755))
		return -1;
	close(open(d->file, O_CREAT | O_WRONLY, 0644));
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	struct dirs *d = *state;
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->base);
	if (system(cmd) != 0)
		return -1;
	free(d);
	return 0;
}

static void expect_error(const char *src, const char *mnt, bool nonempty,
			 const char *word)
{
	char err[PATH_MAX * 3] = "", *real = NULL;

	if (sfs_check_mount_paths(src, mnt, nonempty, &real, err, sizeof(err)) == 0)
		fail_msg("%s on %s accepted", src, mnt);
	assert_null(real);
	if (!strstr(err, word))
		fail_msg("message '%s' lacks '%s'", err, word);
	assert_null(strchr(err, '\n'));	/* one line */
}

static void test_mount_path_errors(void **state)
{
	struct dirs *d = *state;
	char sub[PATH_MAX + 8], missing[PATH_MAX + 8];

	snprintf(missing, sizeof(missing), "%s/nope", d->base);
	expect_error(missing, d->mnt, false, "SRC");
	expect_error(missing, d->mnt, false, "does not exist");
	expect_error(d->file, d->mnt, false, "not a directory");
	expect_error(d->src, missing, false, "MNT");
	expect_error(d->src, d->file, false, "not a directory");
	expect_error(d->src, d->src, false, "same directory");
	snprintf(sub, sizeof(sub), "%s/inner", d->src);
	assert_int_equal(mkdir(sub, 0755), 0);
	expect_error(d->src, sub, false, "inside SRC");
	expect_error(sub, d->src, true, "inside MNT");
}

static void test_mount_paths_ok(void **state)
{
	struct dirs *d = *state;
	char err[PATH_MAX * 3] = "", *real = NULL, rel[PATH_MAX + 16], x[PATH_MAX + 8];

	/* A relative, non-canonical SRC comes back canonical. */
	snprintf(rel, sizeof(rel), "%s/../%s/src/.", d->base, strrchr(d->base, '/') + 1);
	assert_int_equal(sfs_check_mount_paths(rel, d->mnt, false, &real, err,
					       sizeof(err)), 0);
	assert_string_equal(real, d->src);
	free(real);
	/* Non-empty MNT: refused unless allowed. */
	snprintf(x, sizeof(x), "%s/x", d->mnt);
	close(open(x, O_CREAT | O_WRONLY, 0644));
	expect_error(d->src, d->mnt, false, "not empty");
	assert_int_equal(sfs_check_mount_paths(d->src, d->mnt, true, &real, err,
					       sizeof(err)), 0);
	free(real);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_within),
		cmocka_unit_test(test_safe_names),
		cmocka_unit_test_setup_teardown(test_mount_path_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mount_paths_ok, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
