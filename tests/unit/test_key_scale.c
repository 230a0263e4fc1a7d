/* Keys at scale, under the default RLIMIT_MEMLOCK of 8 MiB made binding
 * (CAP_IPC_LOCK dropped). A producer node with 100 000 old producer keys
 * (oldkeys) opens, holds every record without a mapping per key and with
 * all of its key memory locked within the limit, serves the oldest key,
 * and a message made under that key decrypts. A consumer holding the keys
 * and ephemeral secrets of 1 000 roots takes a bounded number of mappings.
 * Before kc_secmem, each of these keys was a sodium_malloc: 2 037 old keys
 * took 8 MiB of locked memory and about 16 000 exhausted vm.max_map_count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kc_ephemeral.h"
#include "kc_keygen.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_message.h"
#include "kc_node.h"
#include "kc_secmem.h"
#include "kc_serde.h"
#include "kc_test.h"
#include "kc_test_mem.h"
#include "kc_test_node.h"

#define RECORDS 100000
#define DEFAULT_MEMLOCK (8u << 20)
#define ROOT "old"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct served {
    int n;
    bool can_encrypt;
    uint8_t secret[KC_SECRET_BYTES];
} served;

static void take_served(void *ctx, const kc_keyidx *ki, const uint8_t secret[KC_SECRET_BYTES],
                        double birth, bool can_encrypt)
{
    (void)ki;
    (void)birth;
    served *s = ctx;
    s->n++;
    s->can_encrypt = can_encrypt;
    memcpy(s->secret, secret, KC_SECRET_BYTES);
}

static void count_records(void *ctx, const kc_keyidx *ki, const uint8_t secret[KC_SECRET_BYTES],
                          double birth, bool can_encrypt)
{
    (void)ki;
    (void)secret;
    (void)birth;
    (void)can_encrypt;
    (*(size_t *)ctx)++;
}

static int setup(void **state)
{
    (void)state;
    tc_limit_memlock(DEFAULT_MEMLOCK);
    kc_log_set_level(KC_LOG_ERROR);
    return 0;
}

static void test_node_with_100000_old_keys_within_default_memlock(void **state)
{
    (void)state;
    char *dir = tc_tmpdir();
    kc_keyidx oldest;
    uint8_t secret[KC_SECRET_BYTES];
    char *config = tc_node_with_oldkeys(dir, "prod", ROOT, RECORDS, &oldest, secret);

    /* A message under the oldest key, as its producer made it days ago. */
    kc_keygen gen;
    uint8_t salt[KC_KEYGEN_SALTBYTES], key[KC_KEYGEN_KEYBYTES], nonce[KC_KEYGEN_NONCEBYTES];
    assert_int_equal(kc_keygen_init(&gen, secret, sizeof secret, kc_keygen_ctx_value, 16, NULL),
                     KC_OK);
    kc_keygen_next(&gen, salt, key, nonce);
    static const char text[] = "made under the oldest key";
    kc_buf wire = KC_BUF_INIT;
    kc_err err;
    assert_int_equal(kc_wire_seal(&wire, &oldest, salt, key, nonce, (const uint8_t *)text,
                                  sizeof text - 1, &err), KC_OK);
    kc_keygen_clear(&gen);
    sodium_memzero(key, sizeof key);

    size_t maps0 = tc_mappings();
    double t0 = now_s();
    kc_node *n = tc_open_node(config, 0.01);
    double open_s = now_s() - t0;
    size_t maps = tc_mappings(), locked = tc_locked_kib();
    kc_secmem_stats st;
    kc_secmem_get_stats(&st);
    print_message("open with %d old keys: %.0f ms, %zu mappings more, VmLck %zu KiB\n", RECORDS,
                  open_s * 1e3, maps - maps0, locked);
    /* Generous for loaded machines and sanitizers; kc-bench gives the figure. */
    assert_true(open_s < 10.0);
    assert_true(maps - maps0 < 1000);  /* a mapping per key would be 400 000 */
    assert_true(locked <= DEFAULT_MEMLOCK / 1024);
    assert_false(st.lock_failed);  /* every key locked, within the limit */

    size_t records = 0;
    kc_serde *s = kc_node_serde(n);
    kc_serde_foreach_pgen(s, ROOT, count_records, &records);
    assert_int_equal(records, RECORDS + 1);  /* and the one that saved them */

    served got = {0};
    assert_int_equal(kc_serde_find_pgens(s, ROOT, &oldest, 1, take_served, &got), KC_OK);
    assert_int_equal(got.n, 1);
    assert_false(got.can_encrypt);
    assert_int_equal(sodium_memcmp(got.secret, secret, sizeof secret), 0);

    /* The message decrypts with the key as served. */
    kc_message *m = kc_message_new();
    assert_non_null(m);
    assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, ROOT ".data", wire.data, wire.len, m,
                                          &err), KC_OK);
    assert_false(kc_message_is_cleartext(m, false));  /* no consumer key yet */
    assert_int_equal(kc_serde_add_consumer_key(s, ROOT, &oldest, got.secret, &err), KC_OK);
    assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, ROOT ".data", wire.data, wire.len, m,
                                          &err), KC_OK);
    assert_true(kc_message_is_cleartext(m, false));
    const uint8_t *pt;
    size_t ptn;
    kc_message_bytes(m, &pt, &ptn);
    assert_int_equal(ptn, sizeof text - 1);
    assert_memory_equal(pt, text, sizeof text - 1);

    kc_message_free(m);
    kc_buf_free(&wire);
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(&got, sizeof got);
    kc_node_close(n);
    free(config);
    tc_rmtree(dir);
    free(dir);
}

#define ROOTS 1000
#define KEYS_PER_ROOT 5

static void test_consumer_with_keys_of_1000_roots(void **state)
{
    (void)state;
    kc_serde_config c;
    kc_serde_config_init(&c);
    kc_serde *s;
    kc_ephemeral *e;
    kc_err err;
    assert_int_equal(kc_serde_new(&c, &s, &err), KC_OK);
    assert_int_equal(kc_ephemeral_new(&e, (const int[]){1}, 1, false, &err), KC_OK);
    size_t maps0 = tc_mappings();
    uint8_t kept[KC_SECRET_BYTES];
    kc_keyidx kept_ki;
    for (int i = 0; i < ROOTS; i++) {
        char root[32], topic[48];
        snprintf(root, sizeof root, "root%d", i);
        snprintf(topic, sizeof topic, "%s.keys", root);
        for (int j = 0; j < KEYS_PER_ROOT; j++) {
            uint8_t secret[KC_SECRET_BYTES];
            kc_keyidx ki;
            randombytes_buf(secret, sizeof secret);
            kc_keyidx_from_int(&ki, j);
            assert_int_equal(kc_serde_add_consumer_key(s, root, &ki, secret, &err), KC_OK);
            if (i == ROOTS / 2 && j == 3) {
                memcpy(kept, secret, sizeof kept);
                kept_ki = ki;
            }
            sodium_memzero(secret, sizeof secret);
        }
        /* the ephemeral secret of an outstanding key request for the root */
        kc_epks epks;
        assert_int_equal(kc_ephemeral_get_epks(e, topic, "decrypt_keys", &epks, &err), KC_OK);
        kc_epks_clear(&epks);
    }
    size_t more = tc_mappings() - maps0;
    print_message("%d roots, %d consumer keys: %zu mappings more, VmLck %zu KiB\n", ROOTS,
                  ROOTS * KEYS_PER_ROOT, more, tc_locked_kib());
    assert_true(more < 100);  /* a sodium_malloc each: about 24 000 */
    assert_true(tc_locked_kib() <= DEFAULT_MEMLOCK / 1024);

    /* One of those keys still decrypts. */
    kc_keygen gen;
    uint8_t salt[KC_KEYGEN_SALTBYTES], key[KC_KEYGEN_KEYBYTES], nonce[KC_KEYGEN_NONCEBYTES];
    assert_int_equal(kc_keygen_init(&gen, kept, sizeof kept, kc_keygen_ctx_value, 16, NULL),
                     KC_OK);
    kc_keygen_next(&gen, salt, key, nonce);
    kc_buf wire = KC_BUF_INIT;
    assert_int_equal(kc_wire_seal(&wire, &kept_ki, salt, key, nonce, (const uint8_t *)"hi", 2,
                                  &err), KC_OK);
    kc_message *m = kc_message_new();
    char topic[48];
    snprintf(topic, sizeof topic, "root%d.data", ROOTS / 2);
    assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, topic, wire.data, wire.len, m, &err),
                     KC_OK);
    assert_true(kc_message_is_cleartext(m, false));
    kc_message_free(m);
    kc_buf_free(&wire);
    kc_keygen_clear(&gen);
    sodium_memzero(key, sizeof key);
    sodium_memzero(kept, sizeof kept);
    kc_ephemeral_free(e);
    kc_serde_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_with_100000_old_keys_within_default_memlock),
        cmocka_unit_test(test_consumer_with_keys_of_1000_roots),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
