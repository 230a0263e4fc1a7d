/* kc_datafile: what a policy's read_file may read (issue 9 §3). Data files
 * in the policy's directory are readable; node files, temporary files and
 * private (owner-only) files are not, under any name: through symlinks,
 * hard links, "..", subdirectories, FIFOs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kc_datafile.h"
#include "kc_test.h"

static char *top, *dir;

static int setup(void **state)
{
    top = tc_tmpdir();
    dir = tc_path(top, "policies");
    assert_int_equal(mkdir(dir, 0755), 0);
    return 0;
}

static int teardown(void **state)
{
    tc_rmtree(top);
    free(dir);
    free(top);
    return 0;
}

static void put(const char *base, const char *name, const char *text, mode_t mode)
{
    char *p = tc_path(base, name);
    tc_write_file(p, (const uint8_t *)text, strlen(text));
    assert_int_equal(chmod(p, mode), 0);
    free(p);
}

static void in_dir(const char *name, const char *target, int hard)
{
    char *p = tc_path(dir, name);
    assert_int_equal(hard ? link(target, p) : symlink(target, p), 0);
    free(p);
}

static void test_rule(void **state)
{
    put(dir, "allow.txt", "alice\n", 0644);
    put(dir, "group.txt", "bob\n", 0640);
    put(dir, "private.txt", "mine\n", 0600);
    put(dir, "node.crypto", "secret", 0644);
    put(dir, "node.seed.tmpAb12Cd", "secret", 0644);
    put(dir, "node.config", "[x]", 0644);
    put(top, "node.seed", "secret", 0600);
    put(top, "outside.txt", "public\n", 0644);
    char *sub = tc_path(dir, "sub"), *fifo = tc_path(dir, "fifo.txt");
    char *seed = tc_path(top, "node.seed"), *outside = tc_path(top, "outside.txt");
    assert_int_equal(mkdir(sub, 0755), 0);
    put(sub, "deeper.txt", "deep\n", 0644);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    in_dir("seed-link.txt", seed, 0);     /* symlink to a node file */
    in_dir("seed-hard.txt", seed, 1);     /* hard link: same 0600 inode */
    in_dir("out-link.txt", outside, 0);   /* symlink out of the directory */
    in_dir("crypto-link.txt", "node.crypto", 0);
    in_dir("up", "..", 0);                /* a directory symlink to the parent */
    in_dir("allow-link.txt", "allow.txt", 0);

    static const struct { const char *name, *text; } ok[] = {
        {"allow.txt", "alice\n"},
        {"group.txt", "bob\n"},
        {"sub/deeper.txt", "deep\n"},
        {"./allow.txt", "alice\n"},
        {"allow-link.txt", "alice\n"},
    };
    kc_buf out = KC_BUF_INIT;
    kc_err err = {0};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (kc_datafile_read(dir, ok[i].name, 1 << 20, &out, &err) != KC_OK)
            fail_msg("%s: %s", ok[i].name, err.msg);
        assert_int_equal(out.len, strlen(ok[i].text));
        assert_memory_equal(out.data, ok[i].text, out.len);
    }
    static const struct { const char *name, *why; kc_status st; } refused[] = {
        {"private.txt", "readable only by its owner", KC_ERR_DENIED},
        {"node.crypto", "never readable", KC_ERR_DENIED},
        {"node.config", "never readable", KC_ERR_DENIED},
        {"node.seed.tmpAb12Cd", "never readable", KC_ERR_DENIED},
        {"x.crypto.new.ab12cd", "never readable", KC_ERR_DENIED},
        {"seed-link.txt", "outside the policy's directory", KC_ERR_DENIED},
        {"seed-hard.txt", "readable only by its owner", KC_ERR_DENIED},
        {"out-link.txt", "outside the policy's directory", KC_ERR_DENIED},
        {"crypto-link.txt", ".crypto, .seed, .config or temporary", KC_ERR_DENIED},
        {"up/outside.txt", "outside the policy's directory", KC_ERR_DENIED},
        {"../outside.txt", "without '..'", KC_ERR_DENIED},
        {"/etc/passwd", "relative name", KC_ERR_DENIED},
        {"", "relative name", KC_ERR_DENIED},
        {"sub", "not a regular file", KC_ERR_DENIED},
        {"fifo.txt", "not a regular file", KC_ERR_DENIED},
        {"missing.txt", "No such file", KC_ERR_NOTFOUND},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        kc_status st = kc_datafile_read(dir, refused[i].name, 1 << 20, &out, &err);
        if (st != refused[i].st || !strstr(err.msg, refused[i].why))
            fail_msg("%s: status %d: %s", refused[i].name, (int)st, err.msg);
        assert_int_equal(out.len, 0);
    }
    assert_int_equal(kc_datafile_read(dir, "allow.txt", 3, &out, &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "larger than the data file limit"));
    kc_buf_free(&out);
    free(sub);
    free(fifo);
    free(seed);
    free(outside);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rule, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
