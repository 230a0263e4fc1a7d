/* kc_file: the one open/lock/replace layer under every node file (issue 9
 * §3, §5): non-regular files are refused at once, replaces are atomic and
 * locked, new files are 0600, and leftovers of killed writers go on the
 * next locked open while a live writer's temporary file stays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "kc_file.h"
#include "kc_test.h"

static const char *dir; /* this test's, from tc_setup_tmpdir */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned mode_of(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_mode & 07777;
}

static void assert_content(const char *path, const char *text)
{
    kc_buf b = tc_read_file(path);
    assert_int_equal(b.len, strlen(text));
    assert_memory_equal(b.data, text, b.len);
    kc_buf_free(&b);
}

/* A FIFO and a directory in place of a file: refused at once, by every
 * entry point, with the same words. */
static void test_not_regular(void **state)
{
    dir = *state;
    char *fifo = tc_path(dir, "node.config"), *sub = tc_path(dir, "sub.crypto");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    double t0 = now_s();
    kc_err err = {0};
    kc_buf b = KC_BUF_INIT;
    int fd = -1;
    assert_int_equal(kc_file_read(fifo, 100, &b, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(kc_file_open_locked(fifo, 0, &fd, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(fd, -1);
    assert_int_equal(kc_file_open(fifo, O_RDONLY, &fd, &err), KC_ERR_INVALID);
    assert_int_equal(kc_file_replace(fifo, (const uint8_t *)"x", 1, 0600, &err), KC_ERR_INVALID);
    assert_int_equal(kc_file_read(sub, 100, &b, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(kc_file_read("/dev/null", 100, &b, &err), KC_ERR_INVALID);
    assert_true(now_s() - t0 < 1.0);
    char *missing = tc_path(dir, "missing");
    assert_int_equal(kc_file_read(missing, 100, &b, &err), KC_ERR_NOTFOUND);
    assert_int_equal(kc_file_open_locked(missing, 0, &fd, &err), KC_ERR_NOTFOUND);
    free(missing);
    free(fifo);
    free(sub);
}

static void test_replace_and_create(void **state)
{
    dir = *state;
    char *path = tc_path(dir, "node.crypto");
    kc_err err = {0};
    mode_t old = umask(0);
    /* a new file is 0600 (as asked) whatever the umask */
    assert_int_equal(kc_file_replace(path, (const uint8_t *)"one", 3, 0600, &err), KC_OK);
    assert_int_equal(mode_of(path), 0600);
    assert_content(path, "one");
    /* exclusive creation does not touch an existing file */
    assert_int_equal(kc_file_create(path, (const uint8_t *)"two", 3, 0600, NULL, &err),
                     KC_ERR_STATE);
    assert_content(path, "one");
    /* an existing file keeps its bits */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(kc_file_replace(path, (const uint8_t *)"three", 5, 0600, &err), KC_OK);
    assert_int_equal(mode_of(path), 0640);
    assert_content(path, "three");
    umask(old);
    /* through a symlink: the target is replaced, the link kept */
    char *link = tc_path(dir, "link.crypto");
    assert_int_equal(symlink("node.crypto", link), 0);
    assert_int_equal(kc_file_replace(link, (const uint8_t *)"four", 4, 0600, &err), KC_OK);
    struct stat sb;
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_content(path, "four");
    free(link);
    free(path);
}

/* A file held by a node (its lock) is not replaced behind its back; the
 * holder replaces it with the lock carried over to the new file. */
static void test_locking(void **state)
{
    dir = *state;
    char *path = tc_path(dir, "node.seed");
    kc_err err = {0};
    int fd;
    assert_int_equal(kc_file_create(path, (const uint8_t *)"a", 1, 0600, &fd, &err), KC_OK);
    int other;
    assert_int_equal(kc_file_open_locked(path, 0, &other, &err), KC_ERR_BUSY);
    assert_non_null(strstr(err.msg, "locked by another process"));
    double t0 = now_s();
    assert_int_equal(kc_file_open_locked(path, 0.2, &other, &err), KC_ERR_BUSY);
    assert_true(now_s() - t0 >= 0.15);
    assert_int_equal(kc_file_replace(path, (const uint8_t *)"b", 1, 0600, &err), KC_ERR_BUSY);
    assert_content(path, "a");
    assert_int_equal(kc_file_replace_locked(path, (const uint8_t *)"bc", 2, &fd, &err), KC_OK);
    assert_int_not_equal(fd, -1);
    assert_content(path, "bc");
    assert_int_equal(kc_file_open_locked(path, 0, &other, &err), KC_ERR_BUSY);
    close(fd);
    assert_int_equal(kc_file_open_locked(path, 0, &other, &err), KC_OK);
    close(other);
    free(path);
}

static int count_entries(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

/* Leftovers of a killed writer go on the next locked open; a temporary file
 * a live writer holds locked stays, and so do names that are not ours. */
static void test_stale_temps(void **state)
{
    dir = *state;
    char *path = tc_path(dir, "node.crypto");
    kc_err err = {0};
    assert_int_equal(kc_file_replace(path, (const uint8_t *)"k", 1, 0600, &err), KC_OK);
    static const char *const stale[] = {"node.crypto.tmpAb12Cd", "node.crypto.new.x1Y2z3"};
    static const char *const kept[] = {"node.crypto.tmpAb12C", "node.crypto.tmp-b12Cd",
                                       "other.crypto.tmpAb12Cd", "node.crypto.tmpAb12Cd7"};
    for (size_t i = 0; i < 2; i++) {
        char *p = tc_path(dir, stale[i]);
        tc_write_file(p, (const uint8_t *)"secret", 6);
        free(p);
    }
    for (size_t i = 0; i < 4; i++) {
        char *p = tc_path(dir, kept[i]);
        tc_write_file(p, (const uint8_t *)"other", 5);
        free(p);
    }
    char *live = tc_path(dir, "node.crypto.tmpLIVE01");
    tc_write_file(live, (const uint8_t *)"writing", 7);
    int lfd = open(live, O_RDWR);
    assert_true(lfd >= 0);
    assert_int_equal(kc_file_lock(lfd), 0);
    assert_int_equal(count_entries(), 8);

    int fd;
    assert_int_equal(kc_file_open_locked(path, 0, &fd, &err), KC_OK);
    close(fd);
    assert_int_equal(count_entries(), 6);
    for (size_t i = 0; i < 2; i++) {
        char *p = tc_path(dir, stale[i]);
        assert_false(kc_file_exists(p));
        free(p);
    }
    assert_true(kc_file_exists(live));
    close(lfd); /* the writer died: now it goes too */
    assert_int_equal(kc_file_replace(path, (const uint8_t *)"k2", 2, 0600, &err), KC_OK);
    assert_false(kc_file_exists(live));
    assert_int_equal(count_entries(), 5);
    assert_true(kc_file_is_temp_name("a.seed.tmpXYZ123", "a.seed"));
    assert_false(kc_file_is_temp_name("a.seed.tmpXYZ12/", "a.seed"));
    free(live);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_not_regular, tc_setup_tmpdir, tc_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_replace_and_create, tc_setup_tmpdir, tc_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_locking, tc_setup_tmpdir, tc_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_stale_temps, tc_setup_tmpdir, tc_teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
