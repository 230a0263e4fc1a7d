/* kafkacrypto sealed box: upstream's bytes, the libsodium fallback, and every
 * way a sealed box can be broken. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <string.h>

#include "kc_keys.h"
#include "kc_seal.h"
#include "kc_test.h"
#include "kc_test_rng.h"

/* spec Appendix A.8 */
#define A8_SK "fb63cb6dd32e94538fe5ac9e068754f02fb664ac507305b9010d9f590c02c38b"
#define A8_PK "fda7f1b02bf7ed14efc973faa6895cf982c8bef0d57caa7da19da663df45a367"
#define A8_ESK "b7d739807111513c4ce014256ad3e9efacb11eb38557991567f2ff95b44d8309"
#define A8_NONCE "ca41b916c56979d411699c0e89d520bc342a41831fc32f89"
#define A8_SEALED                                                                \
    "0020001887e92b61fe4dd0f94add3352c557b4fa36e578222a2e29f6523536ce"           \
    "c987652fca41b916c56979d411699c0e89d520bc342a41831fc32f89d0cfbc47"           \
    "b25c0ea8dff7eaac1f00dad0cd346a4b7ae8a52397c132682954fdfcf5"
#define A8_MSG "secret-seed-bytes"

typedef struct pair {
    kc_key sk, pk;
} pair;

static pair a8(void)
{
    pair p;
    kc_buf b = tc_hex(A8_SK);
    assert_int_equal(kc_key_from_bytes(&p.sk, KC_KEM_SK, b.data, b.len, NULL), KC_OK);
    assert_int_equal(kc_key_public(&p.pk, &p.sk), KC_OK);
    kc_buf_free(&b);
    return p;
}

static pair fresh(void)
{
    pair p;
    assert_int_equal(kc_kem_keypair_new(&p.pk, &p.sk, 1), KC_OK);
    return p;
}

static void test_appendix_a8_bytes(void **state)
{
    pair r = a8();
    assert_string_equal(tc_tohex(r.pk.x, 32), A8_PK);
    /* the public call draws esk first, then the nonce, as upstream */
    tc_rng_script_hex(A8_ESK A8_NONCE);
    kc_buf out = KC_BUF_INIT;
    assert_int_equal(kc_seal(&r.pk, (const uint8_t *)A8_MSG, strlen(A8_MSG), &out, NULL), KC_OK);
    assert_int_equal(tc_rng_pending(), 0);
    assert_string_equal(tc_tohex(out.data, out.len), A8_SEALED);
    assert_int_equal(out.len, KC_SEAL_OVERHEAD + strlen(A8_MSG));
    kc_buf opened = KC_BUF_INIT;
    assert_int_equal(kc_seal_open(&r.sk, out.data, out.len, &opened, NULL), KC_OK);
    assert_int_equal(opened.len, strlen(A8_MSG));
    assert_memory_equal(opened.data, A8_MSG, opened.len);
    kc_key_clear(&r.sk);
    kc_buf_free(&out);
    kc_buf_free(&opened);
}

static void test_round_trip_and_empty(void **state)
{
    pair r = fresh();
    kc_buf out = KC_BUF_INIT, opened = KC_BUF_INIT;
    uint8_t big[5000];
    randombytes_buf(big, sizeof big);
    assert_int_equal(kc_seal(&r.pk, big, sizeof big, &out, NULL), KC_OK);
    assert_int_equal(kc_seal_open(&r.sk, out.data, out.len, &opened, NULL), KC_OK);
    assert_int_equal(opened.len, sizeof big);
    assert_memory_equal(opened.data, big, sizeof big);
    assert_int_equal(kc_seal(&r.pk, NULL, 0, &out, NULL), KC_OK);
    assert_int_equal(out.len, KC_SEAL_OVERHEAD);
    assert_int_equal(kc_seal_open(&r.sk, out.data, out.len, &opened, NULL), KC_OK);
    assert_int_equal(opened.len, 0);
    /* two seals of one message differ (fresh esk and nonce) */
    kc_buf again = KC_BUF_INIT;
    assert_int_equal(kc_seal(&r.pk, NULL, 0, &again, NULL), KC_OK);
    assert_memory_not_equal(out.data, again.data, out.len);
    /* a version-1 signing key is the same 32 bytes to upstream */
    kc_key as_sign = r.pk;
    as_sign.kind = KC_SIGN_PK;
    assert_int_equal(kc_seal(&as_sign, big, 10, &out, NULL), KC_OK);
    assert_int_equal(kc_seal_open(&r.sk, out.data, out.len, &opened, NULL), KC_OK);
    kc_key_clear(&r.sk);
    kc_buf_free(&out);
    kc_buf_free(&again);
    kc_buf_free(&opened);
}

static void test_tampering_fails(void **state)
{
    pair r = a8();
    kc_buf sealed = tc_hex(A8_SEALED), out = KC_BUF_INIT;
    kc_err err;
    /* every byte: header, epk, nonce, MAC, ciphertext */
    for (size_t i = 0; i < sealed.len; i++) {
        sealed.data[i] ^= 0x40;
        assert_int_equal(kc_seal_open(&r.sk, sealed.data, sealed.len, &out, &err), KC_ERR_CRYPTO);
        assert_int_equal(out.len, 0);
        sealed.data[i] ^= 0x40;
    }
    /* the reason of the custom format is in the message */
    sealed.data[sealed.len - 1] ^= 1;
    assert_int_equal(kc_seal_open(&r.sk, sealed.data, sealed.len, &out, &err), KC_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "MAC check failed"));
    sealed.data[sealed.len - 1] ^= 1;
    /* appended byte */
    assert_int_equal(kc_buf_append_byte(&sealed, 0), KC_OK);
    assert_int_equal(kc_seal_open(&r.sk, sealed.data, sealed.len, &out, NULL), KC_ERR_CRYPTO);
    kc_key_clear(&r.sk);
    kc_buf_free(&sealed);
    kc_buf_free(&out);
}

static void test_truncation_and_header_lengths(void **state)
{
    pair r = a8();
    kc_buf sealed = tc_hex(A8_SEALED), out = KC_BUF_INIT;
    kc_err err;
    for (size_t n = 0; n < sealed.len; n++)
        assert_int_equal(kc_seal_open(&r.sk, sealed.data, n, &out, NULL), KC_ERR_CRYPTO);
    assert_int_equal(kc_seal_open(&r.sk, sealed.data, 3, &out, &err), KC_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "4-byte header"));
    /* lengths that exceed the message (and would overflow 16-bit sums) */
    static const uint8_t headers[][4] = {
        {0xff, 0xff, 0xff, 0xff}, {0xff, 0xff, 0x00, 0x18}, {0x00, 0x20, 0xff, 0xff},
        {0x00, 0x1f, 0x00, 0x18}, {0x00, 0x21, 0x00, 0x18}, {0x00, 0x20, 0x00, 0x17},
        {0x00, 0x00, 0x00, 0x00},
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        memcpy(sealed.data, headers[i], 4);
        assert_int_equal(kc_seal_open(&r.sk, sealed.data, sealed.len, &out, &err), KC_ERR_CRYPTO);
        assert_int_equal(out.len, 0);
    }
    kc_key_clear(&r.sk);
    kc_buf_free(&sealed);
    kc_buf_free(&out);
}

static void test_wrong_recipient(void **state)
{
    pair r = a8(), other = fresh();
    kc_buf sealed = tc_hex(A8_SEALED), out = KC_BUF_INIT;
    assert_int_equal(kc_seal_open(&other.sk, sealed.data, sealed.len, &out, NULL), KC_ERR_CRYPTO);
    /* and a standard libsodium box for someone else */
    uint8_t box[crypto_box_SEALBYTES + 3];
    crypto_box_seal(box, (const uint8_t *)"abc", 3, other.pk.x);
    assert_int_equal(kc_seal_open(&r.sk, box, sizeof box, &out, NULL), KC_ERR_CRYPTO);
    kc_key_clear(&r.sk);
    kc_key_clear(&other.sk);
    kc_buf_free(&sealed);
    kc_buf_free(&out);
}

static void test_libsodium_fallback(void **state)
{
    pair r = fresh();
    uint8_t box[crypto_box_SEALBYTES + 5];
    crypto_box_seal(box, (const uint8_t *)"hello", 5, r.pk.x);
    kc_buf out = KC_BUF_INIT;
    assert_int_equal(kc_seal_open(&r.sk, box, sizeof box, &out, NULL), KC_OK);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "hello", 5);
    box[sizeof box - 1] ^= 1;
    kc_err err;
    assert_int_equal(kc_seal_open(&r.sk, box, sizeof box, &out, &err), KC_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "libsodium"));
    /* an empty standard box */
    uint8_t empty[crypto_box_SEALBYTES];
    crypto_box_seal(empty, NULL, 0, r.pk.x);
    assert_int_equal(kc_seal_open(&r.sk, empty, sizeof empty, &out, NULL), KC_OK);
    assert_int_equal(out.len, 0);
    kc_key_clear(&r.sk);
    kc_buf_free(&out);
}

static void test_low_order_keys(void **state)
{
    pair r = a8();
    kc_key zero;
    kc_buf z = tc_hex("0000000000000000000000000000000000000000000000000000000000000000");
    assert_int_equal(kc_key_from_bytes(&zero, KC_KEM_PK, z.data, z.len, NULL), KC_OK);
    kc_buf out = KC_BUF_INIT;
    kc_err err;
    assert_int_equal(kc_seal(&zero, (const uint8_t *)"x", 1, &out, &err), KC_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "low-order"));
    assert_int_equal(out.len, 0);
    /* a box whose ephemeral key is the zero point */
    kc_buf sealed = tc_hex(A8_SEALED);
    memset(sealed.data + 4, 0, 32);
    assert_int_equal(kc_seal_open(&r.sk, sealed.data, sealed.len, &out, &err), KC_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "all-zero"));
    kc_key_clear(&r.sk);
    kc_buf_free(&z);
    kc_buf_free(&sealed);
    kc_buf_free(&out);
}

static void test_post_quantum_and_wrong_kinds(void **state)
{
    pair r = a8();
    kc_buf out = KC_BUF_INIT;
    kc_err err;
    kc_key v5 = tc_key_hex(KC_KEM_PK, "920592c420" A8_PK "c40401020304");
    kc_key v2 = tc_key_hex(KC_KEM_PK, "920292c420" A8_PK "c40401020304");
    kc_key v3 = tc_key_hex(KC_KEM_PK, "920392c420" A8_PK "c40401020304");
    kc_key v4 = tc_key_hex(KC_SIGN_PK, "920492c420" A8_PK "c420" A8_PK);
    tc_rng_script_hex(A8_ESK);  /* must not be drawn: nothing to seal to */
    assert_int_equal(kc_seal(&v5, (const uint8_t *)"x", 1, &out, &err), KC_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "ML-KEM-1024"));
    assert_int_equal(tc_rng_pending(), 32);
    assert_int_equal(kc_seal(&v2, (const uint8_t *)"x", 1, &out, &err), KC_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "sntrup761"));
    assert_int_equal(kc_seal(&v3, (const uint8_t *)"x", 1, &out, NULL), KC_ERR_INVALID);
    assert_int_equal(kc_seal(&v4, (const uint8_t *)"x", 1, &out, NULL), KC_ERR_INVALID);
    assert_int_equal(kc_seal(&r.sk, (const uint8_t *)"x", 1, &out, NULL), KC_ERR_INVALID);
    kc_buf eat = KC_BUF_INIT;
    assert_int_equal(kc_seal(&r.pk, NULL, 0, &eat, NULL), KC_OK);  /* drains the script */
    assert_int_equal(tc_rng_pending(), 0);
    /* opening needs a KEM secret key */
    kc_buf sealed = tc_hex(A8_SEALED);
    assert_int_equal(kc_seal_open(&r.pk, sealed.data, sealed.len, &out, NULL), KC_ERR_INVALID);
    /* a box whose ephemeral key is a PQ key: custom fails, fallback fails */
    kc_buf pq = tc_hex("002b0018920592c420" A8_PK "c40401020304" A8_NONCE
                       "000102030405060708090a0b0c0d0e0f");
    assert_int_equal(kc_seal_open(&r.sk, pq.data, pq.len, &out, &err), KC_ERR_CRYPTO);
    assert_non_null(strstr(err.msg, "version 5"));
    kc_key_clear(&v5);
    kc_key_clear(&v2);
    kc_key_clear(&v3);
    kc_key_clear(&v4);
    kc_key_clear(&r.sk);
    kc_buf_free(&out);
    kc_buf_free(&eat);
    kc_buf_free(&sealed);
    kc_buf_free(&pq);
}

int main(void)
{
    if (tc_rng_install() != 0 || sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appendix_a8_bytes),
        cmocka_unit_test(test_round_trip_and_empty),
        cmocka_unit_test(test_tampering_fails),
        cmocka_unit_test(test_truncation_and_header_lengths),
        cmocka_unit_test(test_wrong_recipient),
        cmocka_unit_test(test_libsodium_fallback),
        cmocka_unit_test(test_low_order_keys),
        cmocka_unit_test(test_post_quantum_and_wrong_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
