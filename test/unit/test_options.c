/* Unit tests of lib/options.c: sizes, our -o options, what passes through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <fuse_opt.h>

#include "sfs/options.h"

static void size_ok(const char *s, uint64_t want)
{
	uint64_t v = 12345;

	if (sfs_parse_size(s, &v) != 0)
		fail_msg("'%s' rejected", s);
	assert_int_equal(v, want);
}

static void size_bad(const char *s)
{
	uint64_t v = 12345;

	if (sfs_parse_size(s, &v) == 0)
		fail_msg("'%s' accepted as %llu", s, (unsigned long long)v);
	assert_int_equal(v, 12345);	/* untouched on error */
}

static void test_sizes(void **state)
{
	(void)state;
	size_ok("0", 0);
	size_ok("4096", 4096);
	size_ok("1K", 1024);
	size_ok("1k", 1024);
	size_ok("10M", 10ull << 20);
	size_ok("2G", 2ull << 30);
	size_ok("2GiB", 2ull << 30);
	size_ok("2GB", 2ull << 30);
	size_ok("1T", 1ull << 40);
	size_ok("15E", 15ull << 60);
	size_ok("18446744073709551615", UINT64_MAX);
	size_bad("");
	size_bad(NULL);
	size_bad("abc");
	size_bad("-5");
	size_bad("+5");
	size_bad(" 5");
	size_bad("5 ");
	size_bad("12Q");
	size_bad("1KK");
	size_bad("1.5G");
	size_bad("18446744073709551616");
	size_bad("99999999999999999999999T");
	size_bad("16E");
	size_bad("17179869184G");	/* 2^34 GiB = 2^64 */
}

/* Parse a command line; returns sfs_options_parse's result. */
static int parse(int argc, char **argv, struct sfs_options *o,
		 struct fuse_args *left, char *err, size_t errlen)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	int res;

	for (int i = 0; i < argc; i++)
		assert_int_equal(fuse_opt_add_arg(&args, argv[i]), 0);
	res = sfs_options_parse(&args, o, err, errlen);
	*left = args;
	return res;
}

static void test_defaults_and_src(void **state)
{
	char *argv[] = { "stablefs", "/src", "/mnt" };
	struct sfs_options o;
	struct fuse_args left;
	char err[256];

	(void)state;
	assert_int_equal(parse(3, argv, &o, &left, err, sizeof(err)), 0);
	assert_string_equal(o.src, "/src");
	assert_true(o.snapshot);
	assert_int_equal(o.oob, SFS_OOB_DETECT);
	assert_int_equal(o.max_preserve, 0);
	assert_null(o.store);
	assert_false(o.nonempty);
	assert_string_equal(o.snapdir, ".snapshots");
	/* MNT stays for libfuse's fuse_parse_cmdline. */
	assert_int_equal(left.argc, 2);
	assert_string_equal(left.argv[1], "/mnt");
	sfs_options_free(&o);
	fuse_opt_free_args(&left);
}

static void test_our_options_consumed(void **state)
{
	char *argv[] = { "stablefs", "-o",
		"allow_other,store=/var/tmp,max_preserve=1G,snapshot=off,oob=ignore,nonempty,timeout=2.5",
		"/src", "/mnt" };
	struct sfs_options o;
	struct fuse_args left;
	char err[256];

	(void)state;
	assert_int_equal(parse(5, argv, &o, &left, err, sizeof(err)), 0);
	assert_string_equal(o.store, "/var/tmp");
	assert_int_equal(o.max_preserve, 1ull << 30);
	assert_false(o.snapshot);
	assert_int_equal(o.oob, SFS_OOB_IGNORE);
	assert_true(o.nonempty);
	assert_true(o.timeout > 2.4 && o.timeout < 2.6);
	/* libfuse's own option is left for libfuse, ours are gone. */
	int saw_allow_other = 0;
	for (int i = 0; i < left.argc; i++) {
		assert_null(strstr(left.argv[i], "store="));
		assert_null(strstr(left.argv[i], "nonempty"));
		if (strstr(left.argv[i], "allow_other"))
			saw_allow_other = 1;
	}
	assert_true(saw_allow_other);
	sfs_options_free(&o);
	fuse_opt_free_args(&left);
}

static void expect_rejected(const char *opt, const char *word)
{
	char *argv[] = { "stablefs", "-o", (char *)opt, "/src", "/mnt" };
	struct sfs_options o;
	struct fuse_args left;
	char err[1024] = "";	/* main()'s is larger still: whole messages */

	if (parse(5, argv, &o, &left, err, sizeof(err)) == 0)
		fail_msg("-o %s accepted", opt);
	if (!strstr(err, word))
		fail_msg("-o %s: message '%s' lacks '%s'", opt, err, word);
	sfs_options_free(&o);
	fuse_opt_free_args(&left);
}

static void test_bad_values(void **state)
{
	(void)state;
	expect_rejected("max_preserve=abc", "max_preserve=abc");
	expect_rejected("max_preserve=12Q", "size");
	expect_rejected("max_preserve=-5", "size");
	expect_rejected("max_preserve=99999999999999999999999T", "size");
	expect_rejected("max_preserve=", "size");
	expect_rejected("store=", "store");
	expect_rejected("snapshot=maybe", "on or off");
	expect_rejected("oob=foo", "detect or ignore");
	expect_rejected("timeout=-1", "timeout");
	expect_rejected("timeout=nan", "timeout");
	expect_rejected("timeout=1x", "timeout");
	expect_rejected("readahead_kb=0", "readahead_kb");
	expect_rejected("readahead_kb=abc", "readahead_kb");
	expect_rejected("readahead_kb=4G", "readahead_kb");
}

/* -o snapdir=: one directory entry of MNT's root, kept as given. */
static void test_snapdir(void **state)
{
	char *argv[] = { "stablefs", "-o", "allow_other,snapdir=.views", "/src", "/mnt" };
	char *dots[] = { "stablefs", "-o", "snapdir=...", "/src", "/mnt" };
	char longest[16 + 255] = "snapdir=", too_long[16 + 256] = "snapdir=";
	struct sfs_options o;
	struct fuse_args left;
	char err[256];

	(void)state;
	assert_int_equal(parse(5, argv, &o, &left, err, sizeof(err)), 0);
	assert_string_equal(o.snapdir, ".views");
	for (int i = 0; i < left.argc; i++)
		assert_null(strstr(left.argv[i], "snapdir"));
	sfs_options_free(&o);
	fuse_opt_free_args(&left);
	assert_int_equal(parse(5, dots, &o, &left, err, sizeof(err)), 0);
	assert_string_equal(o.snapdir, "...");
	sfs_options_free(&o);
	fuse_opt_free_args(&left);

	memset(longest + 8, 's', 255);
	longest[8 + 255] = '\0';
	argv[2] = longest;
	assert_int_equal(parse(5, argv, &o, &left, err, sizeof(err)), 0);
	assert_int_equal(strlen(o.snapdir), 255);
	sfs_options_free(&o);
	fuse_opt_free_args(&left);

	memset(too_long + 8, 's', 256);
	too_long[8 + 256] = '\0';
	expect_rejected(too_long, "255 bytes");
	expect_rejected("snapdir=", "snapdir=: expected one directory name");
	expect_rejected("snapdir=a/b", "snapdir=a/b: expected one directory name");
	expect_rejected("snapdir=/", "no '/'");
	expect_rejected("snapdir=.", "not . or ..");
	expect_rejected("snapdir=..", "not . or ..");
}

static void test_component_problem(void **state)
{
	char longest[256], too_long[257];

	(void)state;
	memset(longest, 'n', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	memset(too_long, 'n', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = '\0';
	assert_null(sfs_component_problem("nightly"));
	assert_null(sfs_component_problem("..."));
	assert_null(sfs_component_problem(".snapshots"));
	assert_null(sfs_component_problem("-x"));
	assert_null(sfs_component_problem("new\nline \"quoted\" \\"));
	assert_null(sfs_component_problem("\xff\xfe"));
	assert_null(sfs_component_problem(longest));
	assert_string_equal(sfs_component_problem(""), "is empty");
	assert_string_equal(sfs_component_problem("a/b"), "contains '/'");
	assert_string_equal(sfs_component_problem("/"), "contains '/'");
	assert_string_equal(sfs_component_problem("."), "is '.' or '..'");
	assert_string_equal(sfs_component_problem(".."), "is '.' or '..'");
	assert_string_equal(sfs_component_problem(too_long), "is longer than 255 bytes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_component_problem),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_defaults_and_src),
		cmocka_unit_test(test_our_options_consumed),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_snapdir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
