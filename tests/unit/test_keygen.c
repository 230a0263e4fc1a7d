/* KeyGenerator (spec §3.1): the worked example of Appendix A.1, counter
 * rules, padding, error cases and upstream's typing rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <string.h>

#include "kc_keygen.h"
#include "kc_test.h"

static const uint8_t zero16[16];

static void secret_0_to_31(uint8_t s[32])
{
    for (int i = 0; i < 32; i++)
        s[i] = (uint8_t)i;
}

static void assert_hex(const uint8_t *p, size_t n, const char *hex)
{
    assert_string_equal(tc_tohex(p, n), hex);
}

static void test_appendix_a1(void **state)
{
    uint8_t s[32], salt[16], key[32], nonce[24];
    secret_0_to_31(s);
    kc_keygen kg;
    assert_int_equal(kc_keygen_init(&kg, s, 32, kc_keygen_ctx_key, 16, NULL), KC_OK);
    kc_keygen_next(&kg, salt, key, nonce);
    assert_memory_equal(salt, zero16, 16);
    assert_hex(key, 32, "acae076f7489e656c2ccf80ea1cd4051d11128a5a4019e3773b5a6b971014d29");
    assert_hex(nonce, 24, "81df56091242a540fd5aaa36c15f4dcf5fa57722a1462a21");
    kc_keygen_next(&kg, salt, key, nonce);
    assert_hex(salt, 16, "01000000000000000000000000000000");
    assert_hex(key, 32, "7ecb4e8b5de8a659ceec54215cdb021999be9b0f69e7d4769f060f7ab689e7c5");
    assert_hex(nonce, 24, "635db2843e7ce2d1de5f21b0bcfb84e9dac84a965bce2b30");

    assert_int_equal(kc_keygen_init(&kg, s, 32, (const uint8_t *)"value", 5, NULL), KC_OK);
    kc_keygen_next(&kg, salt, key, nonce);
    assert_hex(key, 32, "2b0ae8334a5891523b1aff6c0d1fc0d6207684dac797130a9b5a5263c7d2ce15");
    assert_hex(nonce, 24, "e0e674307b2c757e4db294dd3ae4dccfc0f1412e70116317");
    /* a 1-byte salt 01 is zero-padded: the same as counter value 1 */
    assert_int_equal(kc_keygen_at(&kg, (const uint8_t *)"\x01", 1, key, nonce, NULL), KC_OK);
    assert_hex(key, 32, "273676a5a1d1ff380d2a7dea96f8e667c6778f714a523dd3033a8eadbe498329");
    assert_hex(nonce, 24, "14b623c364615ed7e7fb505b27e428e9c2c4004a26d84c72");
    /* the 56-byte digest: key = first 32, nonce = last 24 */
    uint8_t out[56];
    crypto_generichash_blake2b_salt_personal(out, 56, NULL, 0, s, 32, zero16, kc_keygen_ctx_value);
    assert_hex(out, 56, "2b0ae8334a5891523b1aff6c0d1fc0d6207684dac797130a9b5a5263c7d2ce15"
                        "e0e674307b2c757e4db294dd3ae4dccfc0f1412e70116317");
    kc_keygen_clear(&kg);
}

static void test_counter_moves_on_every_success_only(void **state)
{
    uint8_t s[32], key[64], nonce[64], salt17[17] = {0};
    secret_0_to_31(s);
    kc_keygen kg;
    kc_keygen_init(&kg, s, 32, NULL, 0, NULL);
    kc_any explicit = kc_any_bytes("abc", 3), none = kc_any_none();
    assert_int_equal(kc_keygen_generate(&kg, NULL, NULL, &explicit, 32, 24, key, nonce, NULL), KC_OK);
    assert_int_equal(kc_keygen_salt(&kg)[0], 1);  /* explicit salt still counts */
    assert_int_equal(kc_keygen_at(&kg, (const uint8_t *)"x", 1, key, nonce, NULL), KC_OK);
    assert_int_equal(kc_keygen_salt(&kg)[0], 2);

    kc_err err;
    kc_any big = kc_any_bytes(salt17, 17);
    assert_int_equal(kc_keygen_generate(&kg, NULL, NULL, &big, 32, 24, key, nonce, &err),
                     KC_ERR_INVALID);
    assert_string_equal(err.msg, "Cannot pad salt (len: 17 - expected 16 or less)");
    assert_int_equal(kc_keygen_at(&kg, salt17, 17, key, nonce, &err), KC_ERR_INVALID);
    assert_int_equal(kc_keygen_generate(&kg, NULL, NULL, &none, 33, 32, key, nonce, &err),
                     KC_ERR_INVALID);
    assert_int_equal(kc_keygen_generate(&kg, NULL, NULL, &none, 0, 0, key, nonce, &err),
                     KC_ERR_INVALID);
    kc_any text = kc_any_text("msg", 3);
    assert_int_equal(kc_keygen_generate(&kg, &text, NULL, NULL, 32, 24, key, nonce, &err),
                     KC_ERR_INVALID);
    assert_string_equal(err.msg, "Message is not bytes!");
    kc_any longctx = kc_any_bytes("0123456789abcdefX", 17);
    assert_int_equal(kc_keygen_generate(&kg, NULL, &longctx, NULL, 32, 24, key, nonce, &err),
                     KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "Cannot pad personal"));
    assert_int_equal(kc_keygen_salt(&kg)[0], 2);  /* none of the failures counted */
    kc_keygen_clear(&kg);
}

static void test_counter_is_128_bit_little_endian(void **state)
{
    uint8_t key[32], nonce[24], salt[16];
    kc_keygen kg;
    kc_keygen_init(&kg, NULL, 0, NULL, 0, NULL);
    memset(kg.salt, 0xff, 3);
    kc_keygen_next(&kg, salt, key, nonce);
    assert_hex(kg.salt, 16, "00000001000000000000000000000000");
    memset(kg.salt, 0xff, 16);
    kc_keygen_next(&kg, salt, key, nonce);
    assert_memory_equal(kg.salt, zero16, 16);
}

static void test_nonsize_zero_quirk_and_sizes(void **state)
{
    uint8_t s[32], key[64], nonce[64], whole[64];
    secret_0_to_31(s);
    kc_keygen kg;
    kc_keygen_init(&kg, s, 32, NULL, 0, NULL);
    kc_any salt0 = kc_any_bytes(zero16, 16);
    assert_int_equal(kc_keygen_generate(&kg, NULL, NULL, &salt0, 20, 0, key, nonce, NULL), KC_OK);
    assert_memory_equal(key, nonce, 20);  /* out[-0:] is the whole output */
    crypto_generichash_blake2b_salt_personal(whole, 64, NULL, 0, s, 32, zero16,
                                             kc_keygen_ctx_default);
    assert_int_equal(kc_keygen_generate(&kg, NULL, NULL, &salt0, 40, 24, key, nonce, NULL), KC_OK);
    assert_memory_equal(key, whole, 40);
    assert_memory_equal(nonce, whole + 40, 24);
    /* a message changes the output; a non-bytes salt selects the counter */
    kc_any msg = kc_any_bytes("hello", 5), other = kc_any_other();
    uint8_t k2[40], n2[24];
    assert_int_equal(kc_keygen_generate(&kg, &msg, NULL, &salt0, 40, 24, k2, n2, NULL), KC_OK);
    assert_memory_not_equal(k2, whole, 40);
    memset(kg.salt, 0, 16);
    assert_int_equal(kc_keygen_generate(&kg, NULL, NULL, &other, 40, 24, k2, n2, NULL), KC_OK);
    assert_memory_equal(k2, whole, 40);
    kc_any ctx_text = kc_any_text("generator", 9);
    assert_int_equal(kc_keygen_generate(&kg, NULL, &ctx_text, &salt0, 40, 24, k2, n2, NULL), KC_OK);
    assert_memory_equal(k2, whole, 40);
    /* the output length is a BLAKE2b parameter, not a truncation */
    assert_int_equal(kc_keygen_generate(&kg, NULL, NULL, &salt0, 32, 24, k2, n2, NULL), KC_OK);
    assert_memory_not_equal(k2, whole, 32);
}

static void test_constructor_and_rekey_errors(void **state)
{
    uint8_t s[33] = {1};
    kc_keygen kg;
    kc_err err;
    assert_int_equal(kc_keygen_init(&kg, s, 31, NULL, 0, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "Secret is malformed!"));
    assert_int_equal(kc_keygen_init(&kg, s, 33, NULL, 0, &err), KC_ERR_INVALID);
    assert_int_equal(kc_keygen_init(&kg, s, 32, (const uint8_t *)"0123456789abcdefg", 17, &err),
                     KC_ERR_INVALID);
    kc_any text = kc_any_text("0123456789abcdef0123456789abcdef", 32), ok = kc_any_bytes(s, 32);
    assert_int_equal(kc_keygen_init_any(&kg, &text, NULL, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "Secret is malformed!"));
    kc_any ctx_text = kc_any_text("key", 3), ctx_other = kc_any_other();
    assert_int_equal(kc_keygen_init_any(&kg, &ok, &ctx_text, &err), KC_ERR_INVALID);
    assert_string_equal(err.msg, "Context is not bytes!");
    assert_int_equal(kc_keygen_init_any(&kg, &ok, &ctx_other, &err), KC_ERR_INVALID);

    /* default secret: 32 zero bytes, which a rekey to zeros then refuses */
    kc_any none = kc_any_none();
    assert_int_equal(kc_keygen_init_any(&kg, &none, &none, NULL), KC_OK);
    uint8_t zeros[32] = {0};
    assert_int_equal(kc_keygen_rekey(&kg, zeros, 32, &err), KC_ERR_INVALID);
    assert_int_equal(kc_keygen_rekey(&kg, s, 31, &err), KC_ERR_INVALID);
    assert_int_equal(kc_keygen_rekey(&kg, NULL, 32, &err), KC_ERR_INVALID);
    uint8_t key[32], nonce[24];
    kc_keygen_next(&kg, NULL, key, nonce);
    assert_int_equal(kc_keygen_rekey(&kg, s, 32, &err), KC_OK);
    assert_memory_equal(kc_keygen_salt(&kg), zero16, 16);  /* counter reset */
    assert_int_equal(kc_keygen_rekey(&kg, s, 32, &err), KC_ERR_INVALID);  /* same secret */
    assert_null(strstr(err.msg, tc_tohex(s, 32)));  /* never the secret in a message */
}

static void test_clear_wipes(void **state)
{
    kc_keygen kg;
    uint8_t s[32];
    memset(s, 0x5a, 32);
    kc_keygen_init(&kg, s, 32, NULL, 0, NULL);
    kc_keygen_clear(&kg);
    uint8_t zero[sizeof kg] = {0};
    assert_memory_equal(&kg, zero, sizeof kg);
    kc_keygen_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appendix_a1),
        cmocka_unit_test(test_counter_moves_on_every_success_only),
        cmocka_unit_test(test_counter_is_128_bit_little_endian),
        cmocka_unit_test(test_nonsize_zero_quirk_and_sizes),
        cmocka_unit_test(test_constructor_and_rekey_errors),
        cmocka_unit_test(test_clear_wipes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
