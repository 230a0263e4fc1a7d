/* Keys: encodings, strict parsing (truncated, oversized, wrong types, unknown
 * versions, post-quantum material), signatures and X25519. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "kc_keys.h"
#include "kc_mp.h"
#include "kc_test.h"

/* A-2 producer identity: seed = SHA256("kc-test-producer") */
#define PRODUCER_SEED "63e1dfb84cd0c455a747301d5a17d2a037afb7ce5df6598bc8de30396962206b"
#define PRODUCER_PK "363147d88ca75eb438cab346ea307a2f31e12d2b8252bc04198b56ce75b7aa74"
#define X32 "45ff4a85444f75a82a29331618993a883b343ec4d087efcecca7923c2ec8e3ac"

/* Decoded documents point into their input, so inputs live until exit. */
static kc_buf inputs[64];
static int ninputs;

static const msgpack_object *obj_hex(kc_mp_doc *doc, const char *hex)
{
    kc_buf *b = &inputs[ninputs++ % 64];
    kc_buf_free(b);
    *b = tc_hex(hex);
    assert_int_equal(kc_mp_decode(doc, b->data, b->len, "test", NULL), KC_OK);
    return kc_mp_root(doc);
}

static kc_status from_hex(kc_key *k, kc_key_kind kind, const char *hex, kc_err *err)
{
    kc_buf b = tc_hex(hex);
    kc_status st = kc_key_from_bytes(k, kind, b.data, b.len, err);
    kc_buf_free(&b);
    return st;
}

static kc_status from_obj_hex(kc_key *k, kc_key_kind kind, const char *hex, kc_err *err)
{
    kc_mp_doc doc;
    kc_status st = kc_key_from_object(k, kind, obj_hex(&doc, hex), err);
    kc_mp_doc_free(&doc);
    return st;
}

static void producer_keys(kc_key *pk, kc_key *sk)
{
    kc_buf seed = tc_hex(PRODUCER_SEED);
    assert_int_equal(kc_sign_keypair_from_seed(pk, sk, seed.data), KC_OK);
    kc_buf_free(&seed);
}

static void test_seed_keypair_matches_appendix_a(void **state)
{
    kc_key pk, sk, derived;
    producer_keys(&pk, &sk);
    assert_string_equal(tc_tohex(pk.x, pk.x_len), PRODUCER_PK);
    assert_int_equal(kc_key_public(&derived, &sk), KC_OK);
    assert_true(kc_key_equal(&derived, &pk));
    kc_buf b = KC_BUF_INIT;
    assert_int_equal(kc_key_bytes(&sk, &b), KC_OK);
    assert_int_equal(b.len, 64);
    kc_key back;
    assert_int_equal(kc_key_from_bytes(&back, KC_SIGN_SK, b.data, b.len, NULL), KC_OK);
    assert_true(kc_key_equal(&back, &sk));
    kc_key_clear(&back);
    kc_key_clear(&sk);
    kc_buf_free(&b);
}

static void test_sign_and_open(void **state)
{
    kc_key pk, sk, other_pk, other_sk;
    producer_keys(&pk, &sk);
    assert_int_equal(kc_sign_keypair_new(&other_pk, &other_sk), KC_OK);
    kc_buf sm = KC_BUF_INIT;
    assert_int_equal(kc_sign(&sk, (const uint8_t *)"hello", 5, &sm), KC_OK);
    assert_int_equal(sm.len, 69);
    const uint8_t *m;
    size_t mlen;
    assert_int_equal(kc_sign_open(&pk, sm.data, sm.len, &m, &mlen, NULL), KC_OK);
    assert_int_equal(mlen, 5);
    assert_memory_equal(m, "hello", 5);
    kc_err err;
    /* wrong key, tampered signature, tampered message, truncated */
    assert_int_equal(kc_sign_open(&other_pk, sm.data, sm.len, &m, &mlen, &err), KC_ERR_CRYPTO);
    for (size_t i = 0; i < sm.len; i += 7) {
        sm.data[i] ^= 1;
        assert_int_equal(kc_sign_open(&pk, sm.data, sm.len, &m, &mlen, NULL), KC_ERR_CRYPTO);
        sm.data[i] ^= 1;
    }
    for (size_t n = 0; n < sm.len; n++)
        assert_int_equal(kc_sign_open(&pk, sm.data, n, &m, &mlen, NULL), KC_ERR_CRYPTO);
    /* empty message */
    assert_int_equal(kc_sign(&sk, NULL, 0, &sm), KC_OK);
    assert_int_equal(kc_sign_open(&pk, sm.data, sm.len, &m, &mlen, NULL), KC_OK);
    assert_int_equal(mlen, 0);
    /* a public key cannot sign, a secret key cannot verify */
    assert_int_equal(kc_sign(&pk, m, 0, &sm), KC_ERR_INVALID);
    assert_int_equal(kc_sign_open(&sk, sm.data, sm.len, &m, &mlen, &err), KC_ERR_INVALID);
    kc_key_clear(&sk);
    kc_key_clear(&other_sk);
    kc_buf_free(&sm);
}

static void test_bytes_form_lengths(void **state)
{
    kc_key k;
    kc_err err;
    /* 31 bytes is not a raw key and not msgpack [v, keys] */
    assert_int_equal(from_hex(&k, KC_SIGN_PK, X32 + 2, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "signing public key"));
    /* 33 bytes: one too many */
    assert_int_equal(from_hex(&k, KC_SIGN_PK, X32 "00", NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_KEM_PK, X32 "00", NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_KEM_SK, X32 "00", NULL), KC_ERR_INVALID);
    /* a 32-byte string is not a signing secret key, 64 bytes are */
    assert_int_equal(from_hex(&k, KC_SIGN_SK, X32, NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_SIGN_SK, X32 X32, NULL), KC_OK);
    kc_key_clear(&k);
    assert_int_equal(from_hex(&k, KC_SIGN_SK, X32 X32 "00", NULL), KC_ERR_INVALID);
    /* empty */
    assert_int_equal(kc_key_from_bytes(&k, KC_SIGN_PK, (const uint8_t *)"", 0, NULL),
                     KC_ERR_INVALID);
    /* [1, bin32] with trailing garbage */
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "9201c420" X32 "00", NULL), KC_ERR_INVALID);
    /* [1, bin32] truncated by one byte */
    char trunc[200];
    snprintf(trunc, sizeof trunc, "9201c420%.62s", X32);
    assert_int_equal(from_hex(&k, KC_SIGN_PK, trunc, NULL), KC_ERR_INVALID);
}

static void test_wrong_types_inside_msgpack(void **state)
{
    kc_key k;
    /* version is a string, a float, a bool, nil */
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "92a131c420" X32, NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "92cb3ff0000000000000c420" X32, NULL),
                     KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "92c3c420" X32, NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "92c0c420" X32, NULL), KC_ERR_INVALID);
    /* key is an int, a list, nil */
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "920120", NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "920191c420" X32, NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_KEM_PK, "9201c0", NULL), KC_ERR_INVALID);
    /* wrong arity, a map, a bare int */
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "9101", NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "9301c420" X32 "01", NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "8101c420" X32, NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "01", NULL), KC_ERR_INVALID);
    /* the bytes form is raw=False upstream: a str key is refused ... */
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "9201d920" X32, NULL), KC_ERR_INVALID);
    /* ... while the decoded (raw=True) form accepts str and bin alike */
    assert_int_equal(from_obj_hex(&k, KC_SIGN_PK, "9201d920" X32, NULL), KC_OK);
    assert_int_equal(k.version, 1);
    /* decoded: a non-key scalar */
    assert_int_equal(from_obj_hex(&k, KC_SIGN_PK, "c3", NULL), KC_ERR_INVALID);
    /* v1 inside a list must still have the right length */
    char short_key[100];
    snprintf(short_key, sizeof short_key, "9201c41f%.62s", X32);
    assert_int_equal(from_obj_hex(&k, KC_SIGN_PK, short_key, NULL), KC_ERR_INVALID);
    assert_int_equal(from_obj_hex(&k, KC_SIGN_SK, "9201c420" X32, NULL), KC_ERR_INVALID);
}

static void test_unknown_versions_are_rejected(void **state)
{
    kc_key k;
    kc_err err;
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "9207c420" X32, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "unknown version 7"));
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "9200c420" X32, NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "92ffc420" X32, NULL), KC_ERR_INVALID);
    /* 2^64-1 does not fit int64 */
    assert_int_equal(from_hex(&k, KC_KEM_PK, "92cfffffffffffffffffc420" X32, NULL),
                     KC_ERR_INVALID);
    /* signing versions are not KEM versions and vice versa */
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "920292c420" X32 "c40101", NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_KEM_PK, "920492c420" X32 "c420" X32, NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_SIGN_SK, "9205c420" X32, NULL), KC_ERR_INVALID);
}

static void test_post_quantum_recognised(void **state)
{
    kc_key k;
    kc_err err;
    /* public PQ keys parse (they appear in certificates and offers) */
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "920492c420" X32 "c420" X32, NULL), KC_OK);
    assert_int_equal(k.version, 4);
    kc_buf b = KC_BUF_INIT;
    assert_int_equal(kc_key_bytes(&k, &b), KC_OK);
    assert_string_equal(tc_tohex(b.data, b.len), "920492c420" X32 "c420" X32);
    /* ... but cannot verify in this build */
    const uint8_t *m;
    size_t mlen;
    uint8_t sm[17200] = {0};
    assert_int_equal(kc_sign_open(&k, sm, sizeof sm, &m, &mlen, &err), KC_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "SLH-DSA"));
    /* nor pair with an X25519 secret */
    kc_key esk, epk;
    uint8_t shared[32];
    assert_int_equal(kc_kem_keypair_new(&epk, &esk, 1), KC_OK);
    assert_int_equal(kc_kem_complete(&esk, &k, shared), KC_ERR_UNSUPPORTED);
    kc_key_clear(&k);
    assert_int_equal(from_hex(&k, KC_KEM_PK, "920592c420" X32 "c40401020304", NULL), KC_OK);
    assert_int_equal(kc_kem_esk_version(&k), 5);
    assert_int_equal(kc_kem_complete(&esk, &k, shared), KC_ERR_UNSUPPORTED);
    kc_key_clear(&k);
    assert_int_equal(from_hex(&k, KC_KEM_PK, "920692c420" X32 "c40401020304", NULL), KC_OK);
    assert_int_equal(kc_kem_esk_version(&k), 5);
    kc_key_clear(&k);
    assert_int_equal(from_hex(&k, KC_KEM_PK, "920392c420" X32 "c40401020304", NULL), KC_OK);
    assert_int_equal(kc_kem_esk_version(&k), 2);
    kc_key_clear(&k);
    /* PQ secrets are "known but unusable": skip, don't reject */
    assert_int_equal(from_hex(&k, KC_SIGN_SK, "920492c440" X32 X32 "c440" X32 X32, &err),
                     KC_ERR_UNSUPPORTED);
    assert_int_equal(from_hex(&k, KC_KEM_SK, "920292c420" X32 "92c40101c40102", NULL),
                     KC_ERR_UNSUPPORTED);
    assert_int_equal(kc_kem_keypair_new(&epk, &esk, 5), KC_ERR_UNSUPPORTED);
    /* malformed PQ public keys are rejected */
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "920491c420" X32, NULL), KC_ERR_INVALID);
    char short_half[200];
    snprintf(short_half, sizeof short_half, "920492c41f%.62sc420%s", X32, X32);
    assert_int_equal(from_hex(&k, KC_SIGN_PK, short_half, NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_KEM_PK, "920592c420" X32 "c400", NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_KEM_PK, "9205c420" X32, NULL), KC_ERR_INVALID);
    kc_buf_free(&b);
}

static void test_oversized_declared_lengths(void **state)
{
    kc_key k;
    /* bin32 header declaring 4 GiB, array32 declaring 2^32-1 entries */
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "9201c6ffffffff00", NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_SIGN_PK, "ddffffffff01", NULL), KC_ERR_INVALID);
    assert_int_equal(from_hex(&k, KC_KEM_PK, "920592c420" X32 "c6ffffffff", NULL),
                     KC_ERR_INVALID);
}

static void test_get_pks(void **state)
{
    kc_mp_doc doc;
    kc_pks pks;
    kc_err err;
    /* a 32-byte string is an Ed25519 key, even as str */
    assert_int_equal(kc_get_pks(&pks, obj_hex(&doc, "d920" X32), NULL), KC_OK);
    assert_false(pks.is_list);
    assert_int_equal(pks.keys[0].kind, KC_SIGN_PK);
    kc_pks_clear(&pks);
    kc_mp_doc_free(&doc);
    /* [2, ...] is a KEM key */
    assert_int_equal(kc_get_pks(&pks, obj_hex(&doc, "920292c420" X32 "c40101"), NULL), KC_OK);
    assert_int_equal(pks.keys[0].kind, KC_KEM_PK);
    kc_pks pks2;
    assert_int_equal(kc_pks_copy(&pks2, &pks), KC_OK);
    assert_true(kc_key_equal(&pks2.keys[0], &pks.keys[0]));
    kc_pks_clear(&pks2);
    kc_pks_clear(&pks);
    kc_mp_doc_free(&doc);
    /* a list of keys packs back to the same bytes */
    const char *list = "92c420" X32 "920492c420" X32 "c420" X32;
    assert_int_equal(kc_get_pks(&pks, obj_hex(&doc, list), NULL), KC_OK);
    assert_true(pks.is_list);
    assert_int_equal(pks.n, 2);
    kc_mp_out o;
    kc_mp_out_init(&o);
    kc_pks_pack(&o.pk, &pks);
    assert_string_equal(tc_tohex(o.buf.data, o.buf.len), list);
    kc_mp_out_free(&o);
    kc_pks_clear(&pks);
    kc_mp_doc_free(&doc);
    /* empty list, nested list, bad entry (named), scalar, unknown version */
    assert_int_equal(kc_get_pks(&pks, obj_hex(&doc, "90"), NULL), KC_ERR_INVALID);
    kc_mp_doc_free(&doc);
    assert_int_equal(kc_get_pks(&pks, obj_hex(&doc, "9191c420" X32), NULL), KC_ERR_INVALID);
    kc_mp_doc_free(&doc);
    assert_int_equal(kc_get_pks(&pks, obj_hex(&doc, "92c420" X32 "c401ff"), &err),
                     KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "entry 1"));
    kc_mp_doc_free(&doc);
    assert_int_equal(kc_get_pks(&pks, obj_hex(&doc, "07"), NULL), KC_ERR_INVALID);
    kc_mp_doc_free(&doc);
    assert_int_equal(kc_get_pks(&pks, obj_hex(&doc, "9209c420" X32), NULL), KC_ERR_INVALID);
    kc_mp_doc_free(&doc);
    assert_int_equal(kc_get_pks(&pks, obj_hex(&doc, "c0"), NULL), KC_ERR_INVALID);
    kc_mp_doc_free(&doc);
}

static void test_equality_and_type(void **state)
{
    kc_key s, s2, kem, conv, v4;
    assert_int_equal(from_hex(&s, KC_SIGN_PK, X32, NULL), KC_OK);
    assert_int_equal(from_obj_hex(&s2, KC_SIGN_PK, "9201c420" X32, NULL), KC_OK);
    assert_int_equal(from_hex(&kem, KC_KEM_PK, X32, NULL), KC_OK);
    assert_int_equal(from_hex(&v4, KC_SIGN_PK, "920492c420" X32 "c420" X32, NULL), KC_OK);
    assert_true(kc_key_equal(&s, &s2));
    assert_false(kc_key_equal(&s, &kem));   /* same bytes, different class */
    assert_false(kc_key_equal(&s, &v4));    /* same Ed25519 half, different version */
    assert_true(kc_key_same_type(&s, &s2));
    assert_false(kc_key_same_type(&s, &v4));
    assert_false(kc_key_same_type(&s, &kem));
    assert_int_equal(kc_key_to_kem_pk(&conv, &s), KC_OK);
    assert_true(kc_key_equal(&conv, &kem));
    assert_int_equal(kc_key_to_kem_pk(&conv, &v4), KC_ERR_INVALID);
    s2.x[31] ^= 1;
    assert_false(kc_key_equal(&s, &s2));
    kc_key_clear(&v4);
}

static void test_x25519_low_order_peer(void **state)
{
    kc_key esk, epk, peer;
    uint8_t shared[32];
    assert_int_equal(kc_kem_keypair_new(&epk, &esk, 1), KC_OK);
    /* the all-zero point and the point of order 1 (u = 1) give an all-zero result */
    assert_int_equal(from_hex(&peer, KC_KEM_PK, "00000000000000000000000000000000"
                                                "00000000000000000000000000000000", NULL), KC_OK);
    assert_int_equal(kc_kem_complete(&esk, &peer, shared), KC_ERR_CRYPTO);
    assert_true(sodium_is_zero(shared, sizeof shared));
    assert_int_equal(from_hex(&peer, KC_KEM_PK, "01000000000000000000000000000000"
                                                "00000000000000000000000000000000", NULL), KC_OK);
    assert_int_equal(kc_kem_complete(&esk, &peer, shared), KC_ERR_CRYPTO);
    /* a good peer agrees from both sides */
    kc_key esk2, epk2;
    uint8_t shared2[32];
    assert_int_equal(kc_kem_keypair_new(&epk2, &esk2, 1), KC_OK);
    assert_int_equal(kc_kem_complete(&esk, &epk2, shared), KC_OK);
    assert_int_equal(kc_kem_complete(&esk2, &epk, shared2), KC_OK);
    assert_memory_equal(shared, shared2, 32);
    /* a public key is not a secret */
    assert_int_equal(kc_kem_complete(&epk, &epk2, shared), KC_ERR_UNSUPPORTED);
    kc_key_clear(&esk);
    kc_key_clear(&esk2);
}

static void test_describe(void **state)
{
    kc_key pk, sk, v5;
    producer_keys(&pk, &sk);
    char out[600];
    assert_string_equal(kc_key_describe(&pk, out, sizeof out), "(Ed25519, " PRODUCER_PK ")");
    /* secrets are never shown */
    assert_string_equal(kc_key_describe(&sk, out, sizeof out), "(Ed25519-Secret, <not shown>)");
    assert_int_equal(from_hex(&v5, KC_KEM_PK, "920592c420" X32 "c40401020304", NULL), KC_OK);
    assert_string_equal(kc_key_describe(&v5, out, sizeof out),
                        "(Curve25519-ML-KEM-1024-pk, [" X32 ",01020304])");
    /* bounded */
    char small[12];
    kc_key_describe(&pk, small, sizeof small);
    assert_true(strlen(small) < sizeof small);
    assert_memory_equal(small, "(Ed25519, ", 10);
    kc_key_clear(&v5);
    kc_key_clear(&sk);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_keypair_matches_appendix_a),
        cmocka_unit_test(test_sign_and_open),
        cmocka_unit_test(test_bytes_form_lengths),
        cmocka_unit_test(test_wrong_types_inside_msgpack),
        cmocka_unit_test(test_unknown_versions_are_rejected),
        cmocka_unit_test(test_post_quantum_recognised),
        cmocka_unit_test(test_oversized_declared_lengths),
        cmocka_unit_test(test_get_pks),
        cmocka_unit_test(test_equality_and_type),
        cmocka_unit_test(test_x25519_low_order_peer),
        cmocka_unit_test(test_describe),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < 64; i++)
        kc_buf_free(&inputs[i]);
    return rc;
}
