/* The PKCS#11 cryptokey backend on SoftHSM2 (a fresh token in a temporary
 * directory): create, sign, public key, opaque values across opens, the
 * key's non-extractability, every error a user can meet (missing module,
 * wrong PIN, absent object, PIN in the URI, mechanism lacking) and a token
 * removed while in use (through tests/pkcs11/kc_p11_shim.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kafkacrypto.h"
#include "kc_cryptokey.h"
#include "kc_cryptokey_pkcs11.h"
#include "kc_log.h"
#include "kc_test.h"

#define SOFTHSM "/usr/lib/softhsm/libsofthsm2.so"
#define PIN "4711-kc-unit"

static char *dir, *pinfile, *badpin, *shim, *shimdir;
static char logs[32][700];
static int nlogs;

static void capture(void *ctx, kc_log_level level, const char *logger, const char *message)
{
    (void)ctx;
    if (nlogs < 32)
        snprintf(logs[nlogs++], sizeof logs[0], "%s:%s:%s", kc_log_level_name(level), logger,
                 message);
}

static int count_logs(const char *prefix)
{
    int n = 0;
    for (int i = 0; i < nlogs; i++)
        n += strncmp(logs[i], prefix, strlen(prefix)) == 0;
    return n;
}

static char *uri(const char *module, const char *object, const char *pin_source)
{
    char *u = malloc(8192);
    snprintf(u, 8192, "pkcs11:token=kc-unit;object=%s?module-path=%s%s%s", object, module,
             pin_source ? "&pin-source=file:" : "", pin_source ? pin_source : "");
    return u;
}

static int group_setup(void **state)
{
    (void)state;
    dir = tc_tmpdir();
    char *conf = tc_path(dir, "softhsm2.conf"), *tokens = tc_path(dir, "tokens");
    char text[4096], cmd[8192];
    snprintf(text, sizeof text, "directories.tokendir = %s\nobjectstore.backend = file\n"
             "log.level = ERROR\n", tokens);
    tc_write_file(conf, (const uint8_t *)text, strlen(text));
    if (mkdir(tokens, 0700) != 0)
        return -1;
    setenv("SOFTHSM2_CONF", conf, 1);
    snprintf(cmd, sizeof cmd, "softhsm2-util --init-token --free --label kc-unit --so-pin "
             "12345678 --pin %s >/dev/null", PIN);
    if (system(cmd) != 0) {
        fprintf(stderr, "softhsm2-util failed: install softhsm2 (make deps)\n");
        return -1;
    }
    pinfile = tc_path(dir, "pin");
    tc_write_file(pinfile, (const uint8_t *)PIN "\n", strlen(PIN) + 1);
    badpin = tc_path(dir, "badpin");
    tc_write_file(badpin, (const uint8_t *)"0000-wrong\n", 11);
    const char *s = getenv("KC_P11_SHIM");
    if (s) {
        shim = strdup(s);
    } else {
        const char *src = getenv("KC_SOURCE_DIR");
        snprintf(cmd, sizeof cmd, "%s/build/tests/libkc_p11_shim.so", src ? src : ".");
        shim = strdup(cmd);
    }
    shimdir = tc_path(dir, "faults");
    if (mkdir(shimdir, 0700) != 0)
        return -1;
    setenv("KC_P11_SHIM_DIR", shimdir, 1);
    setenv("KC_P11_SHIM_TARGET", SOFTHSM, 1);
    unsetenv(KC_PKCS11_PIN_ENV);
    kc_log_set_sink(capture, NULL);
    free(conf);
    free(tokens);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    kc_log_set_sink(NULL, NULL);
    tc_rmtree(dir);
    free(dir);
    free(pinfile);
    free(badpin);
    free(shim);
    free(shimdir);
    return 0;
}

static void verify(kc_cryptokey *ck, const char *m)
{
    kc_buf sm = KC_BUF_INIT;
    uint8_t pk[32];
    size_t len;
    assert_int_equal(kc_cryptokey_sign(ck, 0, (const uint8_t *)m, strlen(m), &sm, NULL), KC_OK);
    assert_int_equal(kc_cryptokey_spk(ck, 0, pk, sizeof pk, &len, NULL), KC_OK);
    assert_int_equal(len, 32);
    assert_int_equal(sm.len, 64 + strlen(m));
    assert_memory_equal(sm.data + 64, m, strlen(m));
    assert_int_equal(crypto_sign_verify_detached(sm.data, sm.data + 64, strlen(m), pk), 0);
    kc_buf_free(&sm);
}

static void create_sign_and_reopen(void **state)
{
    (void)state;
    char *u = uri(SOFTHSM, "k1", pinfile);
    kc_cryptokey *ck = NULL, *again = NULL;
    kc_err err;
    assert_int_equal(kc_cryptokey_pkcs11_open(&ck, u, true, &err), KC_OK);
    assert_int_equal(kc_cryptokey_num_spk(ck), 1);
    verify(ck, "a key request");

    /* creating it twice would make the URI ambiguous */
    assert_int_equal(kc_cryptokey_pkcs11_open(&again, u, true, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "already holds"));
    assert_null(again);

    /* the same key and the same opaque-value key on the next open */
    assert_int_equal(kc_cryptokey_pkcs11_open(&again, u, false, &err), KC_OK);
    uint8_t a[32], b[32], out[64];
    size_t la, lb, n;
    assert_int_equal(kc_cryptokey_spk(ck, 0, a, 32, &la, NULL), KC_OK);
    assert_int_equal(kc_cryptokey_spk(again, 0, b, 32, &lb, NULL), KC_OK);
    assert_memory_equal(a, b, 32);
    uint8_t wrapped[128];
    assert_int_equal(kc_cryptokey_wrap(ck, (const uint8_t *)"oldkeys", 7, wrapped,
                                       sizeof wrapped, &n, NULL), KC_OK);
    size_t wn = n;
    assert_int_equal(kc_cryptokey_unwrap(again, wrapped, wn, out, sizeof out, &n, NULL), KC_OK);
    assert_int_equal(n, 7);
    assert_memory_equal(out, "oldkeys", 7);
    wrapped[wn - 1] ^= 1;
    assert_int_equal(kc_cryptokey_unwrap(again, wrapped, wn, out, sizeof out, &n, NULL),
                     KC_ERR_CRYPTO);

    /* a key that is not the token's cannot open what the token's wrapped */
    kc_cryptokey *other = NULL;
    char *u2 = uri(SOFTHSM, "k2", pinfile);
    assert_int_equal(kc_cryptokey_pkcs11_open(&other, u2, true, &err), KC_OK);
    wrapped[wn - 1] ^= 1;
    assert_int_equal(kc_cryptokey_unwrap(other, wrapped, wn, out, sizeof out, &n, NULL),
                     KC_ERR_CRYPTO);

    /* the signature ek derives from is never given out */
    static const char ctx[] = "\0kafkacrypto pkcs11 opaque-value key v1\0";
    kc_buf sm = KC_BUF_INIT;
    assert_int_equal(kc_cryptokey_sign(ck, 0, (const uint8_t *)ctx, sizeof ctx + 31, &sm, &err),
                     KC_ERR_DENIED);
    kc_buf_free(&sm);
    kc_cryptokey_close(other);
    kc_cryptokey_close(again);
    kc_cryptokey_close(ck);
    free(u2);
    free(u);
}

/* Asked for its value, the token refuses: the key cannot leave it. */
static void private_key_is_not_extractable(void **state)
{
    (void)state;
    char *u = uri(SOFTHSM, "k3", pinfile);
    kc_cryptokey *ck = NULL;
    assert_int_equal(kc_cryptokey_pkcs11_open(&ck, u, true, NULL), KC_OK);
    kc_cryptokey_close(ck);

    CK_FUNCTION_LIST *m = p11_kit_module_load(SOFTHSM, 0);
    assert_non_null(m);
    assert_int_equal(p11_kit_module_initialize(m), CKR_OK);
    CK_SLOT_ID slots[8];
    CK_ULONG ns = 8;
    assert_int_equal(m->C_GetSlotList(CK_TRUE, slots, &ns), CKR_OK);
    assert_true(ns >= 1);
    CK_SESSION_HANDLE s;
    assert_int_equal(m->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
    assert_int_equal(m->C_Login(s, CKU_USER, (CK_UTF8CHAR *)PIN, strlen(PIN)), CKR_OK);
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, "k3", 2}};
    CK_OBJECT_HANDLE h;
    CK_ULONG nh = 0;
    assert_int_equal(m->C_FindObjectsInit(s, t, 2), CKR_OK);
    assert_int_equal(m->C_FindObjects(s, &h, 1, &nh), CKR_OK);
    m->C_FindObjectsFinal(s);
    assert_int_equal(nh, 1);
    uint8_t value[64];
    CK_ATTRIBUTE v = {CKA_VALUE, value, sizeof value};
    assert_int_equal(m->C_GetAttributeValue(s, h, &v, 1), CKR_ATTRIBUTE_SENSITIVE);
    assert_int_equal(v.ulValueLen, CK_UNAVAILABLE_INFORMATION);
    CK_BBOOL extractable = CK_TRUE, sensitive = CK_FALSE;
    CK_ATTRIBUTE a[2] = {{CKA_EXTRACTABLE, &extractable, 1}, {CKA_SENSITIVE, &sensitive, 1}};
    assert_int_equal(m->C_GetAttributeValue(s, h, a, 2), CKR_OK);
    assert_false(extractable);
    assert_true(sensitive);
    m->C_CloseSession(s);
    p11_kit_module_finalize(m);
    p11_kit_module_release(m);
    free(u);
}

/* Each error names the URI (never a PIN) and says what to do. */
static void expect_error(const char *u, bool create, kc_status code, const char *needle)
{
    kc_cryptokey *ck = (kc_cryptokey *)1;
    kc_err err;
    assert_int_equal(kc_cryptokey_pkcs11_open(&ck, u, create, &err), code);
    assert_null(ck);
    if (!strstr(err.msg, needle) || !strstr(err.msg, "pkcs11:token=kc-unit"))
        fail_msg("for %s: expected \"%s\" and the URI in \"%s\"", u, needle, err.msg);
    assert_null(strstr(err.msg, PIN));
    assert_null(strstr(err.msg, "0000-wrong"));
}

static void errors_name_the_uri(void **state)
{
    (void)state;
    char *u = uri(SOFTHSM, "k4", pinfile);
    kc_cryptokey *ck = NULL;
    assert_int_equal(kc_cryptokey_pkcs11_open(&ck, u, true, NULL), KC_OK);
    kc_cryptokey_close(ck);
    char *v;

    expect_error(v = uri("/nonexistent/libnone.so", "k4", pinfile), false, KC_ERR_NOTFOUND,
                 "module /nonexistent/libnone.so");
    free(v);
    expect_error(v = uri(SOFTHSM, "k4", badpin), false, KC_ERR_DENIED, "refused the PIN");
    free(v);
    expect_error(v = uri(SOFTHSM, "k4", NULL), false, KC_ERR_DENIED, "needs a PIN");
    free(v);
    setenv(KC_PKCS11_PIN_ENV, "0000-wrong", 1);
    expect_error(v = uri(SOFTHSM, "k4", NULL), false, KC_ERR_DENIED, "refused the PIN");
    setenv(KC_PKCS11_PIN_ENV, PIN, 1);
    assert_int_equal(kc_cryptokey_pkcs11_open(&ck, v, false, NULL), KC_OK);
    kc_cryptokey_close(ck);
    unsetenv(KC_PKCS11_PIN_ENV);
    free(v);
    expect_error(v = uri(SOFTHSM, "absent", pinfile), false, KC_ERR_NOTFOUND,
                 "no Ed25519 private key");
    free(v);
    expect_error("pkcs11:token=kc-unit;object=k4", false, KC_ERR_INVALID, "names no module");
    expect_error("pkcs11:token=kc-unit;object=k4?module-path=" SOFTHSM "&pin-value=" PIN, false,
                 KC_ERR_INVALID, "pin-value in the URI is refused");
    expect_error("pkcs11:token=kc-unit?module-path=" SOFTHSM "&pin-value=" PIN, true,
                 KC_ERR_INVALID, "pin-value");
    expect_error(v = uri(SOFTHSM, "k4", pinfile), true, KC_ERR_INVALID, "already holds");
    free(v);

    /* a token without Ed25519 signing */
    char *flag = tc_path(shimdir, "no-eddsa");
    tc_write_file(flag, (const uint8_t *)"", 0);
    expect_error(v = uri(shim, "k4", pinfile), false, KC_ERR_UNSUPPORTED, "CKM_EDDSA");
    unlink(flag);
    assert_int_equal(kc_cryptokey_pkcs11_open(&ck, v, false, NULL), KC_OK);
    kc_cryptokey_close(ck);
    free(v);
    free(flag);
    free(u);
}

static void token_removed_and_back(void **state)
{
    (void)state;
    char *u = uri(shim, "k5", pinfile);
    kc_cryptokey *ck = NULL;
    assert_int_equal(kc_cryptokey_pkcs11_open(&ck, u, true, NULL), KC_OK);
    verify(ck, "before");

    char *flag = tc_path(shimdir, "removed");
    tc_write_file(flag, (const uint8_t *)"", 0);
    nlogs = 0;
    kc_buf sm = KC_BUF_INIT;
    kc_err err;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kc_cryptokey_sign(ck, 0, (const uint8_t *)"m", 1, &sm, &err),
                         KC_ERR_STATE);
        assert_non_null(strstr(err.msg, "pkcs11:token=kc-unit;object=k5"));
    }
    assert_int_equal(sm.len, 0);
    /* logged once, not at every attempt */
    assert_int_equal(count_logs("ERROR:kafkacrypto.cryptokey:Token gone"), 1);
    /* opening fails meanwhile, naming the URI */
    expect_error(u, false, KC_ERR_NOTFOUND, "no token present");

    unlink(flag);
    verify(ck, "after");
    assert_int_equal(count_logs("WARNING:kafkacrypto.cryptokey:Token back"), 1);
    kc_buf_free(&sm);
    kc_cryptokey_close(ck);
    free(flag);
    free(u);
}

static void shown_uri_has_no_pin(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"pkcs11:token=a;object=b?module-path=/m.so&pin-value=1234&pin-source=file:/p",
         "pkcs11:token=a;object=b?module-path=/m.so&pin-source=file:/p"},
        {"pkcs11:token=a?pin-value=1234&module-path=/m.so", "pkcs11:token=a?module-path=/m.so"},
        {"pkcs11:token=a?PIN-VALUE=1234", "pkcs11:token=a"},
        {"pkcs11:token=a;pin-value=1234;object=b", "pkcs11:token=a;object=b"},
        {"pkcs11:token=a?pin-valuex=1", "pkcs11:token=a?pin-valuex=1"},
        {"pkcs11:", "pkcs11:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *shown = kc_pkcs11_uri_shown(cases[i][0]);
        assert_string_equal(shown, cases[i][1]);
        free(shown);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shown_uri_has_no_pin),
        cmocka_unit_test(create_sign_and_reopen),
        cmocka_unit_test(private_key_is_not_extractable),
        cmocka_unit_test(errors_name_the_uri),
        cmocka_unit_test(token_removed_and_back),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
