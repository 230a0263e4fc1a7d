/* The ratchet and its `.seed` file (spec §3.2–§3.4, §10.8, §12 item 28):
 * the worked example, creation with and without escrow, validation of
 * every field, locking, crash safety of the rewrite, and the backend
 * interface. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kc_file.h"
#include "kc_hex.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_ratchet.h"
#include "kc_test.h"

static char *dir, *seed;

static int setup(void **state)
{
    dir = tc_tmpdir();
    seed = tc_path(dir, "node.seed");
    return 0;
}

static int teardown(void **state)
{
    tc_rmtree(dir);
    free(seed);
    free(dir);
    return 0;
}

static void write_hex(const char *path, const char *hex)
{
    kc_buf b = tc_hex(hex);
    tc_write_file(path, b.data, b.len);
    kc_buf_free(&b);
}

static const char *file_hex(const char *path)
{
    kc_buf b = tc_read_file(path);
    const char *h = tc_tohex(b.data, b.len);
    kc_buf_free(&b);
    return h;
}

/* ---- log capture ---- */
static char logged[8][512];
static int nlogged;

static void sink(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    if (nlogged < 8)
        snprintf(logged[nlogged++], sizeof logged[0], "%s:%s:%s", kc_log_level_name(level),
                 logger, msg);
}

static void test_appendix_a3(void **state)
{
    write_hex(seed, "9200c420afe95f4eeac879a81a62d49eefd65c6705fcaf482636012fa0548309fe745353");
    kc_ratchet *r;
    kc_err err;
    assert_int_equal(kc_ratchet_open_file(seed, NULL, &r, &err), KC_OK);
    assert_string_equal(file_hex(seed),
                        "9201c4200360f2430690d218fa7de0130b2e9d45867c1710a23a6e549b763577de0fa036");
    kc_buf pk = tc_hex("363147d88ca75eb438cab346ea307a2f31e12d2b8252bc04198b56ce75b7aa74");
    kc_keyidx ki;
    uint8_t s[32];
    assert_int_equal(kc_ratchet_derive(r, (const uint8_t *)"example001", 10, pk.data, pk.len, &ki, s,
                                       &err), KC_OK);
    assert_string_equal(tc_tohex(s, 32),
                        "6af7cd861c85b898ea38a54c96ded9f6b13c2785672418d2a2e92ad08e1a61a1");
    assert_int_equal(ki.type, KC_KEYIDX_BYTES);
    assert_string_equal(tc_tohex(ki.bytes, ki.len),
                        "98e550465c2433e513b536c67dbaf952102c70274a956d7ee013cd8e9d58ef5b");
    assert_int_equal(kc_ratchet_derive(r, (const uint8_t *)"example001", 10, NULL, 0, &ki, s, &err),
                     KC_OK);
    assert_int_equal(ki.type, KC_KEYIDX_INT);
    assert_int_equal(ki.num, 0);
    /* increments advance both the file and the current pair */
    assert_int_equal(kc_ratchet_increment(r, &err), KC_OK);
    assert_int_equal(kc_ratchet_derive(r, (const uint8_t *)"example001", 10, NULL, 0, &ki, s, &err),
                     KC_OK);
    assert_int_equal(ki.num, 1);
    assert_memory_equal(file_hex(seed), "9202c420", 8);
    kc_ratchet_close(r);
    kc_buf_free(&pk);
}

static void test_creation_without_escrow(void **state)
{
    nlogged = 0;
    kc_log_set_sink(sink, NULL);
    kc_ratchet *r;
    kc_err err;
    assert_int_equal(kc_ratchet_open_file(seed, NULL, &r, &err), KC_OK);
    kc_log_set_sink(NULL, NULL);
    assert_int_equal(nlogged, 2);
    assert_non_null(strstr(logged[0], "WARNING:kafkacrypto.keygenerator:Initializing new Ratchet file"));
    assert_non_null(strstr(logged[0], seed));
    assert_string_equal(logged[1], "WARNING:kafkacrypto.keygenerator:  Ratchet Initialized.");
    struct stat sb;
    assert_int_equal(stat(seed, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    kc_buf b = tc_read_file(seed);
    uint64_t idx;
    uint8_t s[32];
    assert_int_equal(kc_seed_parse(b.data, b.len, seed, &idx, s, &err), KC_OK);
    assert_int_equal(idx, 1);  /* created at 0, advanced by the open */
    assert_int_equal(b.len, 36);
    kc_buf_free(&b);
    kc_ratchet_close(r);
}

static void test_creation_with_escrow(void **state)
{
    uint8_t pk[32], sk[32];
    crypto_box_keypair(pk, sk);
    nlogged = 0;
    kc_log_set_sink(sink, NULL);
    kc_ratchet *r;
    kc_err err;
    assert_int_equal(kc_ratchet_open_file(seed, pk, &r, &err), KC_OK);
    kc_log_set_sink(NULL, NULL);
    assert_int_equal(nlogged, 4);
    char want[200];
    snprintf(want, sizeof want, "WARNING:kafkacrypto.keygenerator:  Escrow public key: %s",
             tc_tohex(pk, 32));
    assert_string_equal(logged[1], want);
    const char *prefix = "WARNING:kafkacrypto.keygenerator:  Escrow value: ";
    assert_memory_equal(logged[2], prefix, strlen(prefix));
    assert_string_equal(logged[3], "WARNING:kafkacrypto.keygenerator:  Ratchet Initialized.");
    kc_buf sealed = tc_hex(logged[2] + strlen(prefix));
    assert_int_equal(sealed.len, 80);
    uint8_t rb[32], next[32], s[32];
    assert_int_equal(crypto_box_seal_open(rb, sealed.data, sealed.len, pk, sk), 0);
    /* the escrowed value is the seed the file started from */
    kc_ratchet_next_secret(rb, next);
    kc_buf b = tc_read_file(seed);
    uint64_t idx;
    assert_int_equal(kc_seed_parse(b.data, b.len, seed, &idx, s, &err), KC_OK);
    assert_int_equal(idx, 1);
    assert_memory_equal(s, next, 32);
    kc_buf_free(&b);
    kc_buf_free(&sealed);
    kc_ratchet_close(r);
    sodium_memzero(sk, sizeof sk);
}

static void test_unusable_escrow_key_creates_nothing(void **state)
{
    uint8_t zero[32] = {0};
    kc_ratchet *r;
    kc_err err;
    assert_int_equal(kc_ratchet_open_file(seed, zero, &r, &err), KC_ERR_INVALID);
    assert_null(r);
    assert_false(kc_file_exists(seed));
}

typedef struct bad_seed {
    const char *hex;
    const char *expect;
} bad_seed;

#define S32 "4242424242424242424242424242424242424242424242424242424242424242"

static void test_validation(void **state)
{
    static const bad_seed cases[] = {
        {"", "empty"},
        {"9200c420424242424242424242424242424242424242424242424242424242424242", "truncated"},
        {"9200c420" S32 "00", "unexpected bytes after"},
        {"c420" S32, "expected a msgpack array [keyidx, secret], got a bin"},
        {"9100", "got a shorter array"},
        {"8200c4" "20" S32 "01c0", "got a map"},
        {"92a178c420" S32, "field keyidx: expected an integer, got a str"},
        {"92cb3ff0000000000000c420" S32, "field keyidx: expected an integer, got a float"},
        {"92c3c420" S32, "field keyidx: expected an integer, got a boolean"},
        {"92ffc420" S32, "field keyidx: expected a non-negative integer, got -1"},
        {"92cfffffffffffffffffc420" S32, "cannot advance"},
        {"9200c41f42424242424242424242424242424242424242424242424242424242424242",
         "field secret: expected 32 bytes, got 31"},
        {"9200c421" S32 "42", "field secret: expected 32 bytes, got 33"},
        {"920005", "field secret: expected 32 bytes (bin or str), got an integer"},
        {"9200c0", "got nil"},
        {"9200c4200000000000000000000000000000000000000000000000000000000000000000",
         "Secret is malformed!"},
        {"dd ffffffff", "truncated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char hex[200];
        size_t k = 0;
        for (const char *c = cases[i].hex; *c; c++)
            if (*c != ' ')
                hex[k++] = *c;
        hex[k] = '\0';
        write_hex(seed, hex);
        kc_ratchet *r;
        kc_err err;
        kc_status st = kc_ratchet_open_file(seed, NULL, &r, &err);
        if (st == KC_OK || !strstr(err.msg, cases[i].expect) || !strstr(err.msg, seed))
            fail_msg("case %zu (%s): %s", i, cases[i].expect, st == KC_OK ? "accepted" : err.msg);
        assert_null(r);
        assert_null(strstr(err.msg, "4242424242"));  /* never the secret */
        assert_string_equal(file_hex(seed), hex);   /* a refused file is left alone */
    }
    /* larger than a seed file can be */
    uint8_t big[KC_SEED_MAX_BYTES + 1];
    memset(big, 0x90, sizeof big);
    tc_write_file(seed, big, sizeof big);
    kc_ratchet *r;
    kc_err err;
    assert_int_equal(kc_ratchet_open_file(seed, NULL, &r, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "a seed file has at most"));
    /* not a file */
    char *sub = tc_path(dir, "adir");
    mkdir(sub, 0700);
    assert_int_not_equal(kc_ratchet_open_file(sub, NULL, &r, &err), KC_OK);
    assert_non_null(strstr(err.msg, sub));
    free(sub);
    assert_int_equal(kc_ratchet_open_file("", NULL, &r, &err), KC_ERR_INVALID);
}

static void test_legacy_forms_accepted(void **state)
{
    kc_ratchet *r;
    kc_err err;
    /* str8 and str16 secrets, extra elements, non-minimal index */
    const char *forms[] = {
        "9205d920" S32,
        "9205da0020" S32,
        "9405c420" S32 "a178c0",
        "92cd0005c420" S32,
    };
    for (size_t i = 0; i < 4; i++) {
        write_hex(seed, forms[i]);
        assert_int_equal(kc_ratchet_open_file(seed, NULL, &r, &err), KC_OK);
        kc_keyidx ki;
        uint8_t s[32];
        assert_int_equal(kc_ratchet_derive(r, (const uint8_t *)"t", 1, NULL, 0, &ki, s, NULL), KC_OK);
        assert_int_equal(ki.num, 5);
        /* rewritten as upstream writes it (extras dropped), 36 bytes */
        const char *h = file_hex(seed);
        assert_int_equal(strlen(h), 72);
        assert_memory_equal(h, "9206c420", 8);
        kc_ratchet_close(r);
    }
}

static void test_largest_index(void **state)
{
    write_hex(seed, "92cffffffffffffffffec420" S32);
    kc_ratchet *r;
    kc_err err;
    assert_int_equal(kc_ratchet_open_file(seed, NULL, &r, &err), KC_OK);
    assert_memory_equal(file_hex(seed), "92cfffffffffffffffffc420", 24);
    assert_int_equal(kc_ratchet_increment(r, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "cannot advance"));
    /* the current pair is unchanged and still usable */
    kc_keyidx ki;
    uint8_t s[32];
    assert_int_equal(kc_ratchet_derive(r, (const uint8_t *)"t", 1, NULL, 0, &ki, s, NULL), KC_OK);
    assert_int_equal(ki.num, UINT64_MAX - 1);
    kc_ratchet_close(r);
}

static void test_lock(void **state)
{
    kc_ratchet *r, *r2;
    kc_err err;
    assert_int_equal(kc_ratchet_open_file(seed, NULL, &r, &err), KC_OK);
    const char *before = file_hex(seed);
    char saved[200];
    snprintf(saved, sizeof saved, "%s", before);
    /* a second opener in this process */
    assert_int_equal(kc_ratchet_open_file(seed, NULL, &r2, &err), KC_ERR_BUSY);
    assert_non_null(strstr(err.msg, seed));
    assert_string_equal(file_hex(seed), saved);  /* and it did not advance the file */
    /* ... and in another process */
    pid_t pid = fork();
    if (pid == 0) {
        kc_ratchet *c;
        _exit(kc_ratchet_open_file(seed, NULL, &c, NULL) == KC_ERR_BUSY ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    kc_ratchet_close(r);
    assert_int_equal(kc_ratchet_open_file(seed, NULL, &r, &err), KC_OK);
    kc_ratchet_close(r);
}

static void test_lock_excludes_posix_record_locks(void **state)
{
    /* A process holding lockf() (what Python's config lock uses) on the seed. */
    kc_ratchet *r;
    kc_err err;
    assert_int_equal(kc_ratchet_open_file(seed, NULL, &r, &err), KC_OK);
    kc_ratchet_close(r);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(seed, O_RDWR);
        char c = lockf(fd, F_TLOCK, 0) == 0 ? 'y' : 'n';
        if (write(pipefd[1], &c, 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char c;
    assert_int_equal(read(pipefd[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    assert_int_equal(kc_ratchet_open_file(seed, NULL, &r, &err), KC_ERR_BUSY);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(pipefd[0]);
    close(pipefd[1]);
    assert_int_equal(kc_ratchet_open_file(seed, NULL, &r, &err), KC_OK);
    kc_ratchet_close(r);
}

/* Kill a process at random instants while it advances the ratchet; the file
 * must always hold a valid pair, and the index never goes back. */
static uint64_t crash_loop(const char *initial_hex, int rounds, int max_delay_us)
{
    uint64_t last = 0;
    for (int i = 0; i < rounds; i++) {
        if (initial_hex)
            write_hex(seed, initial_hex);
        pid_t pid = fork();
        if (pid == 0) {
            kc_ratchet *r;
            kc_log_set_level(KC_LOG_ERROR);
            if (kc_ratchet_open_file(seed, NULL, &r, NULL) != KC_OK)
                _exit(3);
            for (;;)
                if (kc_ratchet_increment(r, NULL) != KC_OK)
                    _exit(4);
        }
        usleep((useconds_t)(randombytes_uniform((uint32_t)max_delay_us) + 1));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));  /* it did not fail on its own */
        if (!initial_hex && last == 0 && !kc_file_exists(seed))
            continue;  /* killed before it created the file: nothing to check */
        kc_buf b = tc_read_file(seed);
        uint64_t idx;
        uint8_t s[32];
        kc_err err;
        if (kc_seed_parse(b.data, b.len, seed, &idx, s, &err) != KC_OK)
            fail_msg("round %d: %s (%s)", i, err.msg, tc_tohex(b.data, b.len));
        if (!initial_hex) {
            assert_true(idx >= last);
            last = idx;
        }
        kc_buf_free(&b);
    }
    return last;
}

static void test_crash_safety_in_place(void **state)
{
    /* the children did get to advance it many times */
    assert_true(crash_loop(NULL, 30, 20000) > 30);
}

static void test_crash_safety_shrinking_rewrite(void **state)
{
    /* str16 secret plus an extra element: the first rewrite is shorter and
     * goes through rename. Kill around it. */
    crash_loop("9307da0020" S32 "c0", 40, 3000);
}

/* ---- a backend of our own ---- */
typedef struct mem_backend {
    uint64_t index;
    int closed;
    bool fail;
} mem_backend;

static kc_status mem_increment(void *self, kc_err *err)
{
    mem_backend *m = self;
    if (m->fail)
        return kc_err_set(err, KC_ERR_IO, "hsm: unavailable");
    m->index++;
    return KC_OK;
}

static kc_status mem_derive(void *self, const uint8_t *root, size_t root_len, const uint8_t *node,
                            size_t node_len, kc_keyidx *ki, uint8_t secret[32], kc_err *err)
{
    mem_backend *m = self;
    kc_keyidx_from_uint(ki, m->index);
    memset(secret, (int)m->index, 32);
    return KC_OK;
}

static void mem_close(void *self)
{
    ((mem_backend *)self)->closed++;
}

static void test_backend_interface(void **state)
{
    static const kc_ratchet_ops ops = {"mem", mem_increment, mem_derive, mem_close};
    static const kc_ratchet_ops broken = {"broken", NULL, mem_derive, NULL};
    mem_backend m = {7, 0, false};
    kc_ratchet *r;
    kc_err err;
    assert_int_equal(kc_ratchet_new(&broken, &m, &r, &err), KC_ERR_INVALID);
    assert_int_equal(kc_ratchet_new(&ops, &m, &r, &err), KC_OK);
    assert_int_equal(kc_ratchet_increment(r, &err), KC_OK);
    kc_keyidx ki;
    uint8_t s[32], salt[16], key[32], nonce[24], want[32];
    kc_keygen kg, vg;
    assert_int_equal(kc_ratchet_get_key_value_generators(r, (const uint8_t *)"x", 1, NULL, 0, &ki, s,
                                                         &kg, &vg, &err), KC_OK);
    assert_int_equal(ki.num, 8);
    memset(want, 8, 32);
    assert_memory_equal(s, want, 32);
    assert_memory_equal(kg.ctx, kc_keygen_ctx_key, 16);
    assert_memory_equal(vg.ctx, kc_keygen_ctx_value, 16);
    kc_keygen_next(&kg, salt, key, nonce);
    m.fail = true;
    assert_int_equal(kc_ratchet_increment(r, &err), KC_ERR_IO);
    kc_ratchet_close(r);
    assert_int_equal(m.closed, 1);
    kc_ratchet_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_appendix_a3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creation_without_escrow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_creation_with_escrow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_escrow_key_creates_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_forms_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_largest_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_excludes_posix_record_locks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_safety_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_safety_shrinking_rewrite, setup, teardown),
        cmocka_unit_test(test_backend_interface),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
