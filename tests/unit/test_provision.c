/* kc_provision: password derivations (spec §9.1, worked values of
 * Appendix A.7), key types, roles, and the exact certificate bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <string.h>

#include "kc_mp.h"
#include "kc_provision.h"
#include "kc_test.h"

static void test_password_rot_matches_appendix_a7(void **state)
{
    kc_password_key rot;
    kc_err err;
    const char *pw = "correct horse battery staple";
    assert_int_equal(kc_password_rot(pw, strlen(pw), KC_KEYTYPE_ED25519, &rot, &err), KC_OK);
    assert_string_equal(tc_tohex(rot.salt, 32),
                        "f9c23deaf98f7dfe169e3b73b288b3d645e809b20a828212e631986a884a8b7e");
    assert_string_equal(tc_tohex(rot.sk.x, 32),
                        "f0ab3894445a3e8eceb175f7ebd1424ab76a6fcc9a6e40556bff474292e34226");
    assert_string_equal(tc_tohex(rot.pk.x, 32),
                        "5d5c1881974447727a8fd32962f41c6ad43cac9b52f5adc6fd1757e7c25af3b2");
    /* the salt is SHA256("Root of Trust" || password) */
    uint8_t salt[32];
    char msg[64];
    snprintf(msg, sizeof msg, "Root of Trust%s", pw);
    crypto_hash_sha256(salt, (const uint8_t *)msg, strlen(msg));
    assert_memory_equal(salt, rot.salt, 32);
    kc_password_key_clear(&rot);
    uint8_t zero[64] = {0};
    assert_memory_equal(rot.sk.x, zero, 64);
}

static void test_provisioners_accept_raw_or_hex_rot(void **state)
{
    kc_buf rot = tc_hex("5d5c1881974447727a8fd32962f41c6ad43cac9b52f5adc6fd1757e7c25af3b2");
    const char *hex = "5d5c1881974447727a8fd32962f41c6ad43cac9b52f5adc6fd1757e7c25af3b2";
    kc_password_key a[KC_PROVISIONER_COUNT], b[KC_PROVISIONER_COUNT];
    kc_err err;
    const char *pw = "provisioning-pw";
    assert_int_equal(kc_password_provisioners(pw, strlen(pw), rot.data, rot.len,
                                              KC_KEYTYPE_ED25519, a, &err), KC_OK);
    assert_int_equal(kc_password_provisioners(pw, strlen(pw), (const uint8_t *)hex, strlen(hex),
                                              KC_KEYTYPE_ED25519, b, &err), KC_OK);
    static const char *const pks[KC_PROVISIONER_COUNT] = {
        "0dfe6721ecd2016286fc77966d8d5ff846195453d4265ce4271cf935e12cc7b7",
        "6843917062b63aeef1870a80abe910d7477ff710fdd636a5ac496cf9d568cfc5",
        "e40e5fd7b52f97456b898747255d85d957d5d1c942ca040827a7670b698f9032"};
    for (int p = 0; p < KC_PROVISIONER_COUNT; p++) {
        assert_string_equal(tc_tohex(a[p].pk.x, 32), pks[p]);
        assert_memory_equal(a[p].pk.x, b[p].pk.x, 32);
        kc_password_key_clear(&a[p]);
        kc_password_key_clear(&b[p]);
    }
    kc_buf_free(&rot);
}

static void test_key_types(void **state)
{
    kc_password_key k, ks[KC_PROVISIONER_COUNT];
    kc_err err;
    assert_int_equal(kc_password_rot("x", 1, KC_KEYTYPE_ED25519_SLHDSA, &k, &err),
                     KC_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "SLH-DSA"));
    assert_int_equal(kc_password_provisioners("x", 1, (const uint8_t *)"r", 1, 4, ks, &err),
                     KC_ERR_UNSUPPORTED);
    assert_int_equal(kc_password_rot("x", 1, 2, &k, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "key type 2"));
}

static void test_roles(void **state)
{
    kc_role r;
    assert_int_equal(kc_role_parse("consumer-limited", &r), KC_OK);
    assert_int_equal(r, KC_ROLE_CONSUMER_LIMITED);
    assert_int_equal(kc_role_parse("admin", &r), KC_ERR_INVALID);
    assert_int_equal(kc_role_provisioner(KC_ROLE_CONTROLLER), KC_PROVISIONER_CONSUMER);
    assert_int_equal(kc_role_provisioner(KC_ROLE_PRODCON_LIMITED), KC_PROVISIONER_PRODCON);
    const char *const *u;
    assert_int_equal(kc_role_usages(KC_ROLE_CONTROLLER, &u), 1);
    assert_string_equal(u[0], "key-encrypt-request");
    assert_int_equal(kc_role_usages(KC_ROLE_PRODCON_LIMITED, &u), 2);
    assert_string_equal(u[1], "key-encrypt-subscribe");
    assert_int_equal(kc_provisioner_usages(KC_PROVISIONER_PRODCON, &u), 3);
    for (int i = 0; i < KC_ROLE_COUNT; i++) {
        assert_int_equal(kc_role_parse(kc_role_name((kc_role)i), &r), KC_OK);
        assert_int_equal(r, i);
    }
}

static kc_key pk_of(const char *hex)
{
    kc_buf b = tc_hex(hex);
    kc_key k;
    assert_int_equal(kc_key_from_bytes(&k, KC_SIGN_PK, b.data, b.len, NULL), KC_OK);
    kc_buf_free(&b);
    return k;
}

#define PK "074867c826ff24b56847e492d9b170d02d45d603f4241c128bd3761b37e533b6"

static void test_certificate_bytes(void **state)
{
    kc_key pk = pk_of(PK);
    kc_buf out = KC_BUF_INIT;
    /* provisioner certificate: no expiry (integer 0), usages only */
    assert_int_equal(kc_provisioner_cert(KC_PROVISIONER_PRODUCER, &pk, &out, NULL), KC_OK);
    assert_string_equal(tc_tohex(out.data, out.len),
                        "9300c4169192a675736167657391ab6b65792d656e6372797074c420" PK);
    /* node certificate: float64 expiry, usages, topics, pathlen */
    const char *const topics[] = {"sensor", "metrics"};
    assert_int_equal(kc_node_cert(KC_ROLE_PRODUCER, 2083449600.25, topics, 2, 1, &pk, &out, NULL),
                     KC_OK);
    assert_string_equal(tc_tohex(out.data, out.len),
                        "93cb41df0bbac0100000c4389392a675736167657391ab6b65792d656e637279707492"
                        "a6746f7069637392a673656e736f72a76d65747269637392a7706174686c656e01c420" PK);
    /* no topics and pathlen -1 leave those entries out */
    assert_int_equal(kc_node_cert(KC_ROLE_CONSUMER, 0, NULL, 0, -1, &pk, &out, NULL), KC_OK);
    assert_int_equal(out.data[1], 0x00); /* never expires: the integer 0 */
    kc_mp_doc doc;
    assert_int_equal(kc_mp_decode(&doc, out.data, out.len, "cert", NULL), KC_OK);
    const msgpack_object *root = kc_mp_root(&doc);
    const uint8_t *poison;
    size_t plen;
    assert_true(kc_mp_bytes(&root->via.array.ptr[1], &poison, &plen));
    kc_mp_doc pd;
    assert_int_equal(kc_mp_decode(&pd, poison, plen, "poison", NULL), KC_OK);
    assert_int_equal(kc_mp_root(&pd)->via.array.size, 1);
    kc_mp_doc_free(&pd);
    kc_mp_doc_free(&doc);
    /* a topic that is not UTF-8 text is refused */
    const char *const bad[] = {"\xff"};
    kc_err err;
    assert_int_equal(kc_node_cert(KC_ROLE_PRODUCER, 1, bad, 1, 1, &pk, &out, &err), KC_ERR_INVALID);
    assert_int_equal(kc_node_cert(KC_ROLE_COUNT, 1, NULL, 0, 1, &pk, &out, &err), KC_ERR_INVALID);
    kc_buf_free(&out);
}

static void test_allowlist_entry(void **state)
{
    kc_key pk = pk_of(PK);
    kc_buf out = KC_BUF_INIT;
    assert_int_equal(kc_rot_allowlist_entry(&pk, &out, NULL), KC_OK);
    assert_string_equal(tc_tohex(out.data, out.len), "9300c40190c420" PK);
    kc_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_rot_matches_appendix_a7),
        cmocka_unit_test(test_provisioners_accept_raw_or_hex_rot),
        cmocka_unit_test(test_key_types),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_certificate_bytes),
        cmocka_unit_test(test_allowlist_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
