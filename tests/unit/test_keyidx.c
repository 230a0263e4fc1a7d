/* Key indices: upstream's equality under raw=True decoding, packing, and
 * the insertion-ordered map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "kc_keyidx.h"
#include "kc_mp.h"
#include "kc_test.h"

static kc_keyidx from_hex_mp(const char *hex, bool *hashable)
{
    kc_buf b = tc_hex(hex);
    kc_mp_doc doc;
    assert_int_equal(kc_mp_decode(&doc, b.data, b.len, "test", NULL), KC_OK);
    kc_keyidx ki;
    *hashable = kc_keyidx_from_mp(&ki, kc_mp_root(&doc));
    kc_mp_doc_free(&doc);
    kc_buf_free(&b);
    return ki;
}

static void test_equality(void **state)
{
    bool h;
    kc_keyidx bin = from_hex_mp("c403616263", &h), str = from_hex_mp("a3616263", &h);
    assert_true(h);
    assert_true(kc_keyidx_equal(&bin, &str));  /* str == bin under raw=True */
    kc_keyidx zero = from_hex_mp("00", &h), zero16 = from_hex_mp("cd0000", &h);
    assert_true(kc_keyidx_equal(&zero, &zero16));
    kc_keyidx empty = from_hex_mp("c400", &h);
    assert_false(kc_keyidx_equal(&zero, &empty));  /* int 0 is not bytes */
    kc_keyidx neg = from_hex_mp("ff", &h), big = from_hex_mp("cfffffffffffffffff", &h);
    assert_false(kc_keyidx_equal(&neg, &big));  /* -1 vs 2^64-1 */
    kc_keyidx a, b;
    kc_keyidx_from_int(&a, -1);
    assert_true(kc_keyidx_equal(&a, &neg));
    kc_keyidx_from_uint(&b, UINT64_MAX);
    assert_true(kc_keyidx_equal(&b, &big));

    kc_keyidx fl = from_hex_mp("cb3ff0000000000000", &h);  /* 1.0 */
    assert_true(h);
    assert_int_equal(fl.type, KC_KEYIDX_OTHER);
    assert_false(kc_keyidx_equal(&fl, &fl));  /* OTHER matches nothing */
    kc_keyidx arr = from_hex_mp("9101", &h);
    assert_false(h);  /* unhashable */
    assert_int_equal(arr.type, KC_KEYIDX_OTHER);
    kc_keyidx nil = from_hex_mp("c0", &h);
    assert_int_equal(nil.type, KC_KEYIDX_OTHER);
    uint8_t longb[KC_KEYIDX_MAX_BYTES + 1] = {0};
    kc_keyidx_from_bytes(&a, longb, sizeof longb);
    assert_int_equal(a.type, KC_KEYIDX_OTHER);
    uint8_t key[16] = {0};
    assert_int_equal(kc_keyidx_hash(&bin, key), kc_keyidx_hash(&str, key));
}

static const char *packed(const kc_keyidx *ki)
{
    kc_mp_out o;
    kc_mp_out_init(&o);
    kc_keyidx_pack(&o.pk, ki);
    const char *hex = tc_tohex(o.buf.data, o.buf.len);
    kc_mp_out_free(&o);
    return hex;
}

static void test_pack_smallest(void **state)
{
    kc_keyidx k;
    kc_keyidx_from_uint(&k, 0);
    assert_string_equal(packed(&k), "00");
    kc_keyidx_from_uint(&k, 127);
    assert_string_equal(packed(&k), "7f");
    kc_keyidx_from_uint(&k, 128);
    assert_string_equal(packed(&k), "cc80");
    kc_keyidx_from_uint(&k, 300);
    assert_string_equal(packed(&k), "cd012c");
    kc_keyidx_from_uint(&k, UINT64_MAX);
    assert_string_equal(packed(&k), "cfffffffffffffffff");
    kc_keyidx_from_int(&k, -1);
    assert_string_equal(packed(&k), "ff");
    kc_keyidx_from_int(&k, -33);
    assert_string_equal(packed(&k), "d0df");
    uint8_t b32[32];
    memset(b32, 0x98, 32);
    kc_keyidx_from_bytes(&k, b32, 32);
    assert_string_equal(packed(&k), "c4209898989898989898989898989898989898989898989898989898989898989898");
    char d[200];
    assert_string_equal(kc_keyidx_describe(&k, d, 9), "98989898");
    kc_keyidx_from_int(&k, -5);
    assert_string_equal(kc_keyidx_describe(&k, d, sizeof d), "-5");
}

static void test_map(void **state)
{
    kc_kimap m;
    kc_kimap_init(&m);
    kc_keyidx k[1000];
    for (int i = 0; i < 1000; i++) {
        if (i % 2) {
            kc_keyidx_from_uint(&k[i], (uint64_t)i);
        } else {
            uint8_t b[32] = {0};
            memcpy(b, &i, sizeof i);
            kc_keyidx_from_bytes(&k[i], b, 32);
        }
        assert_int_equal(kc_kimap_put(&m, &k[i], &k[i]), KC_OK);
    }
    assert_int_equal(kc_kimap_count(&m), 1000);
    for (int i = 0; i < 1000; i++)
        assert_ptr_equal(kc_kimap_get(&m, &k[i]), &k[i]);
    kc_keyidx absent;
    kc_keyidx_from_uint(&absent, 2);  /* only odd integers were added */
    assert_null(kc_kimap_get(&m, &absent));
    /* replace keeps the position; remove keeps the order of the rest */
    int marker;
    assert_int_equal(kc_kimap_put(&m, &k[1], &marker), KC_OK);
    assert_ptr_equal(kc_kimap_remove(&m, &k[0]), &k[0]);
    assert_null(kc_kimap_remove(&m, &k[0]));
    assert_int_equal(kc_kimap_count(&m), 999);
    size_t pos = 0, n = 0;
    const kc_kimap_entry *e;
    while (kc_kimap_next(&m, &pos, &e)) {
        assert_true(kc_keyidx_equal(&e->key, &k[n + 1]));
        assert_ptr_equal(e->value, n == 0 ? (void *)&marker : (void *)&k[n + 1]);
        n++;
    }
    assert_int_equal(n, 999);
    for (int i = 1; i < 1000; i++)
        assert_non_null(kc_kimap_remove(&m, &k[i]));
    assert_int_equal(kc_kimap_count(&m), 0);
    assert_int_equal(kc_kimap_put(&m, &k[5], &k[5]), KC_OK);
    assert_ptr_equal(kc_kimap_get(&m, &k[5]), &k[5]);
    kc_keyidx other;
    bool h;
    other = from_hex_mp("c0", &h);
    assert_int_equal(kc_kimap_put(&m, &other, &k[0]), KC_ERR_INVALID);
    assert_null(kc_kimap_get(&m, &other));
    kc_kimap_free(&m);
}

/* Removal shifts the probe cluster back (kc_kislots_delete): under churn
 * every live key stays findable, removed ones are gone, the insertion order
 * holds and the map does not grow. */
static void test_map_churn(void **state)
{
    (void)state;
    enum { LIVE = 500, STEPS = 20000 };
    kc_kimap m;
    kc_kimap_init(&m);
    static int v[LIVE + STEPS];
    static kc_keyidx k[LIVE + STEPS];
    for (int i = 0; i < LIVE + STEPS; i++) {
        v[i] = i;
        kc_keyidx_from_int(&k[i], 7 * i);
    }
    for (int i = 0; i < LIVE; i++)
        assert_int_equal(kc_kimap_put(&m, &k[i], &v[i]), KC_OK);
    size_t most_cap = 0;
    for (int i = 0; i < STEPS; i++) {
        /* the oldest goes (its slot is anywhere in the index: keyed hash), a new one comes */
        assert_ptr_equal(kc_kimap_remove(&m, &k[i]), &v[i]);
        assert_null(kc_kimap_get(&m, &k[i]));
        assert_int_equal(kc_kimap_put(&m, &k[i + LIVE], &v[i + LIVE]), KC_OK);
        int some = i + 1 + (i * 7919) % LIVE;   /* a pseudo-random live one */
        assert_ptr_equal(kc_kimap_get(&m, &k[some]), &v[some]);
        most_cap = m.index_cap > most_cap ? m.index_cap : most_cap;
    }
    assert_int_equal(kc_kimap_count(&m), LIVE);
    for (int i = 0; i < LIVE + STEPS; i++)
        assert_ptr_equal(kc_kimap_get(&m, &k[i]), i >= STEPS ? &v[i] : NULL);
    size_t pos = 0, n = 0;
    const kc_kimap_entry *e;
    while (kc_kimap_next(&m, &pos, &e)) {
        assert_ptr_equal(e->value, &v[STEPS + n]);
        n++;
    }
    assert_int_equal(n, LIVE);
    assert_true(most_cap <= 2048);   /* bounded by the live count, not by the churn */
    kc_kimap_free(&m);
}

static bool keep_odd(void *ctx, void *value)
{
    ++*(int *)ctx;
    return *(const int *)value % 2 == 1;
}

static void test_map_filter(void **state)
{
    (void)state;
    kc_kimap m;
    kc_kimap_init(&m);
    static int v[2000];
    kc_keyidx k[2000];
    for (int i = 0; i < 2000; i++) {
        v[i] = i;
        kc_keyidx_from_int(&k[i], i);
        assert_int_equal(kc_kimap_put(&m, &k[i], &v[i]), KC_OK);
    }
    int calls = 0;
    kc_kimap_filter(&m, keep_odd, &calls);
    assert_int_equal(calls, 2000);
    assert_int_equal(kc_kimap_count(&m), 1000);
    for (int i = 0; i < 2000; i++)
        if (i % 2)
            assert_ptr_equal(kc_kimap_get(&m, &k[i]), &v[i]);
        else
            assert_null(kc_kimap_get(&m, &k[i]));
    /* Insertion order survives, and the map keeps working. */
    size_t pos = 0;
    const kc_kimap_entry *e;
    int expect = 1;
    while (kc_kimap_next(&m, &pos, &e)) {
        assert_ptr_equal(e->value, &v[expect]);
        expect += 2;
    }
    assert_int_equal(expect, 2001);
    assert_int_equal(kc_kimap_put(&m, &k[0], &v[0]), KC_OK);
    assert_ptr_equal(kc_kimap_get(&m, &k[0]), &v[0]);
    kc_kimap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equality),
        cmocka_unit_test(test_pack_smallest),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_map_filter),
        cmocka_unit_test(test_map_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
