/*
 * Unit tests of lib/cred.c: the switch is per thread (glibc's wrappers would
 * switch every thread), files created while switched belong to the caller,
 * and leaving restores the daemon's rights. Needs root; skipped otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sfs/cred.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	snprintf(dir, sizeof(dir), "/tmp/sfs-cred-XXXXXX");
	if (!mkdtemp(dir) || chmod(dir, 0700))
		return -1;
	return sfs_cred_init();
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	if (geteuid() != 0)
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? -1 : 0;
}

static void require_root(void)
{
	if (geteuid() != 0)
		skip();
}

static const struct sfs_cred nobody = {
	.uid = 65534, .gid = 65534, .ngroups = 1, .groups = { 65534 },
};

static void test_create_as_caller(void **state)
{
	char path[128];
	struct stat st;
	int fd;

	(void)state;
	require_root();
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(sfs_cred_enter(&nobody), 0);
	assert_int_equal(sfs_cred_current_fsuid(), 65534);
	snprintf(path, sizeof(path), "%s/made-by-nobody", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_int_equal(sfs_cred_leave(), 0);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_gid, 65534);
	assert_int_equal(sfs_cred_current_fsuid(), 0);
	assert_int_equal(chmod(dir, 0700), 0);
}

static void test_permissions_are_the_callers(void **state)
{
	char path[128];

	(void)state;
	require_root();
	/* dir is 0700 root: nobody may not create in it. */
	snprintf(path, sizeof(path), "%s/denied", dir);
	assert_int_equal(sfs_cred_enter(&nobody), 0);
	assert_int_equal(open(path, O_CREAT | O_WRONLY, 0600), -1);
	assert_int_equal(errno, EACCES);
	assert_int_equal(sfs_cred_leave(), 0);
	/* Back as root: allowed again. */
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static void test_supplementary_groups(void **state)
{
	struct sfs_cred c = nobody;
	char sub[128], path[160];
	int fd;

	(void)state;
	require_root();
	/* A dir writable only by group 4242: nobody gets in only with it. */
	snprintf(sub, sizeof(sub), "%s/grp", dir);
	assert_int_equal(mkdir(sub, 0770), 0);
	assert_int_equal(chown(sub, 0, 4242), 0);
	assert_int_equal(chmod(sub, 0770), 0);	/* umask took group write */
	assert_int_equal(chmod(dir, 0711), 0);
	snprintf(path, sizeof(path), "%s/f", sub);
	assert_int_equal(sfs_cred_enter(&c), 0);
	assert_int_equal(open(path, O_CREAT | O_WRONLY, 0600), -1);
	assert_int_equal(errno, EACCES);
	assert_int_equal(sfs_cred_leave(), 0);
	c.ngroups = 2;
	c.groups[1] = 4242;
	assert_int_equal(sfs_cred_enter(&c), 0);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	int saved = errno;
	assert_int_equal(sfs_cred_leave(), 0);
	if (fd < 0)
		fail_msg("create with group 4242: %s", strerror(saved));
	close(fd);
	assert_int_equal(chmod(dir, 0700), 0);
}

struct peer {
	pthread_barrier_t switched, looked;
	uid_t seen;
};

/* Started before the switch (a new thread would copy the creator's creds). */
static void *peer_thread(void *arg)
{
	struct peer *p = arg;

	pthread_barrier_wait(&p->switched);
	p->seen = sfs_cred_current_fsuid();
	pthread_barrier_wait(&p->looked);
	return NULL;
}

static void test_per_thread(void **state)
{
	struct peer p = { .seen = 12345 };
	pthread_t t;

	(void)state;
	require_root();
	pthread_barrier_init(&p.switched, NULL, 2);
	pthread_barrier_init(&p.looked, NULL, 2);
	pthread_create(&t, NULL, peer_thread, &p);
	assert_int_equal(sfs_cred_enter(&nobody), 0);
	pthread_barrier_wait(&p.switched);
	pthread_barrier_wait(&p.looked);
	assert_int_equal(sfs_cred_current_fsuid(), 65534);
	assert_int_equal(sfs_cred_leave(), 0);
	pthread_join(t, NULL);
	/* The other worker kept the daemon's identity throughout. */
	assert_int_equal(p.seen, 0);
}

/* Is capability cap in the calling thread's effective set? */
static bool effective(int cap)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0,
	};
	struct __user_cap_data_struct d[2];

	assert_int_equal(syscall(SYS_capget, &h, d), 0);
	return d[cap / 32].effective & (1u << (cap % 32));
}

/*
 * A caller's creations must not use root's quota and block reserve. (Where
 * the bounding set lacks CAP_SYS_RESOURCE, as in some containers, only
 * the restore of the rest is checked.)
 */
static void test_no_sys_resource_as_caller(void **state)
{
	bool had;

	(void)state;
	require_root();
	had = effective(CAP_SYS_RESOURCE);
	assert_int_equal(sfs_cred_enter(&nobody), 0);
	assert_false(effective(CAP_SYS_RESOURCE));
	assert_false(effective(CAP_FSETID));
	assert_int_equal(sfs_cred_leave(), 0);
	assert_int_equal(effective(CAP_SYS_RESOURCE), had);
	assert_true(effective(CAP_FSETID));
}

/* Data changes: the caller's fsuid, no CAP_SYS_RESOURCE, all else kept. */
static void test_enter_data(void **state)
{
	bool had;

	(void)state;
	require_root();
	had = effective(CAP_SYS_RESOURCE);
	assert_int_equal(sfs_cred_enter_data(65534, 65534), 0);
	assert_int_equal(sfs_cred_current_fsuid(), 65534);
	assert_false(effective(CAP_SYS_RESOURCE));
	assert_true(effective(CAP_FSETID));
	assert_true(effective(CAP_DAC_OVERRIDE));
	assert_int_equal(sfs_cred_leave_data(), 0);
	assert_int_equal(sfs_cred_current_fsuid(), 0);
	assert_int_equal(effective(CAP_SYS_RESOURCE), had);
	assert_true(effective(CAP_FSETID));
	assert_true(effective(CAP_DAC_OVERRIDE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_as_caller),
		cmocka_unit_test(test_permissions_are_the_callers),
		cmocka_unit_test(test_supplementary_groups),
		cmocka_unit_test(test_per_thread),
		cmocka_unit_test(test_no_sys_resource_as_caller),
		cmocka_unit_test(test_enter_data),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
