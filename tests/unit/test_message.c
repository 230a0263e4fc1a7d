/* The wire format and its classification (spec §4.1, §4.3) and the
 * message object (§4.5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "kc_keyidx.h"
#include "kc_message.h"
#include "kc_test.h"

#define KI32 "c42098e550465c2433e513b536c67dbaf952102c70274a956d7ee013cd8e9d58ef5b"
#define SALT16 "c41000000000000000000000000000000000"

static void test_appendix_a4(void **state)
{
    kc_buf S = tc_hex("6af7cd861c85b898ea38a54c96ded9f6b13c2785672418d2a2e92ad08e1a61a1");
    kc_buf kib = tc_hex("98e550465c2433e513b536c67dbaf952102c70274a956d7ee013cd8e9d58ef5b");
    kc_keyidx ki;
    kc_keyidx_from_bytes(&ki, kib.data, kib.len);
    kc_keygen vg, kg;
    kc_keygen_init(&vg, S.data, 32, kc_keygen_ctx_value, 16, NULL);
    kc_keygen_init(&kg, S.data, 32, kc_keygen_ctx_key, 16, NULL);
    uint8_t salt[16], key[32], nonce[24];
    kc_keygen_next(&vg, salt, key, nonce);
    assert_string_equal(tc_tohex(key, 32),
                        "3bc4e6c42685ab42848f5fc2473e438116d71f3d17ff8879508410c081912121");
    assert_string_equal(tc_tohex(nonce, 24), "6e80c6eeeea281c30992b242c9ad42bb8294aec68ea02496");
    kc_buf out = KC_BUF_INIT;
    assert_int_equal(kc_wire_seal(&out, &ki, salt, key, nonce, (const uint8_t *)"hello world", 11,
                                  NULL), KC_OK);
    assert_string_equal(tc_tohex(out.data, out.len),
                        "0193" KI32 SALT16 "c41b29d83d3508b1c126b71d1e46459c645008a5d7d392bdce312437e2");
    kc_keygen_next(&kg, salt, key, nonce);
    assert_int_equal(kc_wire_seal(&out, &ki, salt, key, nonce, (const uint8_t *)"k1", 2, NULL), KC_OK);
    assert_string_equal(tc_tohex(out.data, out.len),
                        "0193" KI32 SALT16 "c412124dd126233a9632238be9352f9d97723f9c");

    /* and back */
    msgpack_zone zone;
    msgpack_zone_init(&zone, 256);
    kc_wire w;
    assert_int_equal(kc_wire_parse(out.data, out.len, &zone, &w, NULL), KC_OK);
    assert_true(w.ki_usable && kc_keyidx_equal(&w.ki, &ki));
    assert_int_equal(w.salt.type, KC_ANY_BYTES);
    assert_int_equal(w.salt.len, 16);
    kc_buf pt = KC_BUF_INIT;
    assert_true(kc_wire_open(w.ct, w.ct_len, key, nonce, &pt));
    assert_int_equal(pt.len, 2);
    assert_memory_equal(pt.data, "k1", 2);
    /* tampered MAC / ciphertext, wrong key, short box */
    uint8_t ct[64];
    memcpy(ct, w.ct, w.ct_len);
    ct[0] ^= 1;
    assert_false(kc_wire_open(ct, w.ct_len, key, nonce, &pt));
    assert_int_equal(pt.len, 0);
    ct[0] ^= 1;
    ct[w.ct_len - 1] ^= 0x80;
    assert_false(kc_wire_open(ct, w.ct_len, key, nonce, &pt));
    key[0] ^= 1;
    assert_false(kc_wire_open(w.ct, w.ct_len, key, nonce, &pt));
    assert_false(kc_wire_open(w.ct, 15, key, nonce, &pt));
    msgpack_zone_destroy(&zone);
    kc_buf_free(&pt);
    kc_buf_free(&out);
    kc_buf_free(&S);
    kc_buf_free(&kib);
}

typedef struct shape {
    const char *hex;
    bool candidate;
    const char *why;
} shape;

static void test_classification(void **state)
{
    static const shape cases[] = {
        {"", false, "empty"},
        {"00", false, "marker 0x00"},
        {"0293" KI32 SALT16 "c410", false, "marker 0x02"},
        {"01", false, "marker only"},
        {"01c0", false, "nil"},
        {"012a", false, "an integer"},
        {"01c3", false, "a boolean"},
        {"0192" KI32 SALT16, false, "array of 2"},
        {"0194" KI32 SALT16 "c400c400", false, "array of 4"},
        {"0193" KI32 SALT16 "c400" "00", false, "trailing byte"},
        {"0193" KI32 SALT16, false, "truncated"},
        {"0193" KI32 SALT16 "c6ffffffff", false, "huge declared bin"},
        {"01ddffffffff", false, "huge declared array"},
        {"01dfffffffff", false, "huge declared map"},
        {"01c1", false, "reserved byte"},
        {"0183a16101a16202a16303", false, "3-map with str keys (B6)"},
        {"0183c4016101c4016202c4016303", false, "3-map with bin keys (B6)"},
        {"018300c40001c40002c400", false, "map with int keys"},
        {"0193" "8101c0" SALT16 "c400", false, "int map key nested"},
        {"0193" "d6ff00000000" SALT16 "c400", true, "timestamp32 is fine"},
        {"0193" "c7" "05" "ff0000000000" SALT16 "c400", false, "timestamp of 5 bytes"},
        {"0193" "d7ff" "ffffffff00000000" SALT16 "c400", false, "timestamp64 nsec >= 1e9"},
        {"0193" "d7ff" "0000000000000000" SALT16 "c400", true, "timestamp64"},
        {"0193" "c70cff" "3b9aca00" "0000000000000000" SALT16 "c400", false, "timestamp96 nsec 1e9"},
        {"0193" "c70cff" "3b9ac9ff" "0000000000000000" SALT16 "c400", true, "timestamp96"},
        {"0193" "d40501" SALT16 "c400", true, "other ext"},
        {"01c403616263", true, "3-byte bin"},
        {"01a3616263", true, "3-byte str"},
        {"0193" KI32 SALT16 "c400", true, "array of 3"},
        {"019300c400c400", true, "short index"},
    };
    msgpack_zone zone;
    msgpack_zone_init(&zone, 64);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kc_buf b = tc_hex(cases[i].hex);
        kc_wire w;
        kc_err err;
        kc_status st = kc_wire_parse(b.data, b.len, &zone, &w, &err);
        if ((st == KC_OK) != cases[i].candidate)
            fail_msg("%s: %s", cases[i].why, st == KC_OK ? "candidate" : err.msg);
        kc_buf_free(&b);
    }
    /* deeper than msgpack-c nests: not a kafkacrypto message (documented) */
    uint8_t deep[1 + 1 + 40 + 1];
    deep[0] = 1;
    deep[1] = 0x93;
    memset(deep + 2, 0x91, 40);
    deep[42] = 0xc0;
    kc_wire w;
    assert_int_equal(kc_wire_parse(deep, sizeof deep, &zone, &w, NULL), KC_ERR_INVALID);
    msgpack_zone_destroy(&zone);
}

static kc_wire parse_ok(msgpack_zone *zone, kc_buf *b, const char *hex)
{
    *b = tc_hex(hex);
    kc_wire w;
    assert_int_equal(kc_wire_parse(b->data, b->len, zone, &w, NULL), KC_OK);
    return w;
}

static void test_candidate_fields(void **state)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 64);
    kc_buf b;
    kc_wire w = parse_ok(&zone, &b, "01c403616263");
    /* bytes indexed give integers: ki 97, salt and box are not bytes */
    assert_true(w.ki_usable);
    assert_int_equal(w.ki.num, 97);
    assert_int_equal(w.salt.type, KC_ANY_OTHER);
    assert_false(w.ct_is_bytes);
    kc_buf_free(&b);
    w = parse_ok(&zone, &b, "0193da0020" "98e550465c2433e513b536c67dbaf952102c70274a956d7ee013cd8e9d58ef5b"
                            "07" "cd3039");
    assert_true(w.ki_usable);
    assert_int_equal(w.ki.type, KC_KEYIDX_BYTES);
    assert_int_equal(w.salt.type, KC_ANY_OTHER);  /* an int salt: the counter */
    assert_false(w.ct_is_bytes);
    kc_buf_free(&b);
    w = parse_ok(&zone, &b, "0193" "9100" SALT16 "c400");
    assert_false(w.ki_usable);  /* unhashable */
    kc_buf_free(&b);
    w = parse_ok(&zone, &b, "0193" "cb3ff0000000000000" "c411" "0000000000000000000000000000000000" "c400");
    assert_false(w.ki_usable);  /* a float matches no key */
    assert_int_equal(w.salt.len, 17);  /* refused later, by the generator */
    kc_buf_free(&b);
    msgpack_zone_destroy(&zone);
}

static void test_direct_decoder_agrees_with_msgpack_c(void **state)
{
    /* every integer and byte-string form in each position */
    static const char *cases[] = {
        "0193" "05" "c400" "c400",           "0193" "ff" "c400" "c400",
        "0193" "cc80" "c400" "c400",         "0193" "cd0100" "a0" "a0",
        "0193" "ce00010000" "c400" "c400",   "0193" "cfffffffffffffffff" "c400" "c400",
        "0193" "d005" "c400" "c400",         "0193" "d0ff" "c400" "c400",
        "0193" "d1fffe" "c400" "c400",       "0193" "d27fffffff" "c400" "c400",
        "0193" "d38000000000000000" "c400" "c400",
        "0193" "d90161" "d90162" "d90163",   "0193" "da000161" "da000162" "da000163",
        "0193" "db0000000161" "c50001ff" "c600000001ff",
        "0193" "c4" "41" "0000000000000000000000000000000000000000000000000000000000000000"
               "0000000000000000000000000000000000000000000000000000000000000000" "00" "c400" "c400",
        "0193" "05" "c400" "c401",           "0193" "05" "c400" "c400" "00",
        "0193" "cd01" "c400" "c400",         "0193" "d3ffffffff" "c400" "c400",
        "0193" "05" "06" "c400",             "0193" "05" "c400" "07",
        "0193" "c0" "c400" "c400",           "0192" "05" "c400",
    };
    msgpack_zone z1, z2;
    msgpack_zone_init(&z1, 64);
    msgpack_zone_init(&z2, 64);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kc_buf b = tc_hex(cases[i]);
        kc_wire a, g;
        kc_status sa = kc_wire_parse(b.data, b.len, &z1, &a, NULL);
        kc_status sg = kc_wire_parse_msgpack(b.data, b.len, &z2, &g, NULL);
        if (sa != sg)
            fail_msg("case %zu (%s): %d vs %d", i, cases[i], sa, sg);
        if (sa == KC_OK) {
            assert_int_equal(a.ki_usable, g.ki_usable);
            assert_int_equal(a.ki.type, g.ki.type);
            if (a.ki_usable)
                assert_true(kc_keyidx_equal(&a.ki, &g.ki));
            assert_int_equal(a.salt.type, g.salt.type);
            assert_int_equal(a.salt.len, g.salt.len);
            assert_int_equal(a.ct_is_bytes, g.ct_is_bytes);
            assert_int_equal(a.ct_len, g.ct_len);
        }
        kc_buf_free(&b);
    }
    msgpack_zone_destroy(&z1);
    msgpack_zone_destroy(&z2);
}

static void test_message_object(void **state)
{
    kc_message *m = kc_message_new();
    assert_non_null(m);
    assert_true(kc_message_is_null(m));
    const uint8_t *p;
    size_t n;
    kc_err err;
    assert_int_equal(kc_message_get(m, true, &p, &n, &err), KC_ERR_STATE);
    assert_string_equal(err.msg, "Message not decrypted!");
    assert_int_equal(kc_message_set_cleartext(m, (const uint8_t *)"abc", 3, NULL), KC_OK);
    assert_false(kc_message_is_null(m));
    assert_true(kc_message_is_cleartext(m, true));
    assert_true(kc_message_is_possibly_decryptable(m));
    assert_int_equal(kc_message_get(m, false, &p, &n, NULL), KC_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(p, "abc", 3);
    assert_string_equal(kc_message_topic(m), "");
    /* fromEncryptedBytes: empty is never decryptable; without a
     * deserializer neither */
    assert_int_equal(kc_message_set_encrypted(m, (const uint8_t *)"", 0, NULL, KC_KIND_KEY, "t", 1,
                                              true), KC_OK);
    assert_false(kc_message_is_cleartext(m, true));
    assert_false(kc_message_is_possibly_decryptable(m));
    kc_message_bytes(m, &p, &n);
    assert_int_equal(n, 0);
    assert_int_equal(kc_message_set_encrypted(m, (const uint8_t *)"\x01\x02", 2, NULL, KC_KIND_KEY,
                                              "t", 1, true), KC_OK);
    assert_false(kc_message_is_possibly_decryptable(m));
    assert_int_equal(kc_message_get(m, true, &p, &n, &err), KC_ERR_STATE);
    kc_message_bytes(m, &p, &n);
    assert_int_equal(n, 2);
    assert_int_equal(kc_message_kind(m), KC_KIND_KEY);
    assert_int_equal(kc_message_set_cleartext(m, NULL, 1, &err), KC_ERR_INVALID);
    kc_message_free(m);
    kc_message_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appendix_a4),
        cmocka_unit_test(test_classification),
        cmocka_unit_test(test_candidate_fields),
        cmocka_unit_test(test_direct_decoder_agrees_with_msgpack_c),
        cmocka_unit_test(test_message_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
