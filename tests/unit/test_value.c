/* kc_value: the typing of config text as upstream's str_decode/str_encode
 * does it under CPython 3.11, and Python equality between values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_test.h"
#include "kc_value.h"

static kc_value decoded(const char *text, bool iskey)
{
    kc_value v = kc_value_none();
    assert_int_equal(kc_value_decode((const uint8_t *)text, strlen(text), iskey, &v), KC_OK);
    return v;
}

static void is_int(const char *text, int64_t want)
{
    kc_value v = decoded(text, false);
    if (v.type != KC_VALUE_INT || v.i != want)
        fail_msg("'%s': type %d value %lld, want int %lld", text, v.type, (long long)v.i,
                 (long long)want);
}

static void is_float(const char *text, double want)
{
    kc_value v = decoded(text, false);
    if (v.type != KC_VALUE_FLOAT || !(v.f == want || (isnan(want) && isnan(v.f))))
        fail_msg("'%s': type %d, want float %g", text, v.type, want);
}

static void is_text(const char *text, bool iskey, const char *want)
{
    kc_value v = decoded(text, iskey);
    if (v.type != KC_VALUE_TEXT || strcmp((const char *)v.data, want) != 0)
        fail_msg("'%s': type %d, want text '%s'", text, v.type, want);
    kc_value_clear(&v);
}

static void test_numbers_as_python_reads_them(void **state)
{
    is_int("123", 123);
    is_int("1_000", 1000);
    is_int(" 12 ", 12);
    is_int("-0", 0);
    is_int("+7", 7);
    is_int("007", 7);
    is_int("\xd9\xa3", 3);          /* ARABIC-INDIC DIGIT THREE */
    is_int("\xe3\x80\x80" "5", 5);  /* ideographic space */
    is_int("9223372036854775807", INT64_MAX);
    is_int("-9223372036854775808", INT64_MIN);
    is_float("1e5", 100000.0);
    is_float("1.5", 1.5);
    is_float(".5", 0.5);
    is_float("5.", 5.0);
    is_float("1_0.2_5", 10.25);
    is_float("-inf", -INFINITY);
    is_float("Infinity", INFINITY);
    is_float("nan", NAN);
    is_float("1e999", INFINITY);
    /* int() refuses more than 4300 digits; float() then reads them */
    char big[4400];
    memset(big, '1', 4301);
    big[4301] = 0;
    is_float(big, INFINITY);
    /* not numbers */
    is_text("1__0", false, "1__0");
    is_text("_1", false, "_1");
    is_text("1_", false, "1_");
    is_text("0x10", false, "0x10");
    is_text("1e", false, "1e");
    is_text("\x1c" "1", false, "\x1c" "1"); /* \x1c is no space to int() */
    is_text("1 2", false, "1 2");
    is_text("infinit", false, "infinit");
}

static void test_big_ints_keep_their_digits(void **state)
{
    kc_value v = decoded("-000123456789012345678901234567890", false);
    assert_int_equal(v.type, KC_VALUE_BIGINT);
    assert_string_equal((const char *)v.data, "-123456789012345678901234567890");
    kc_buf out = KC_BUF_INIT;
    assert_int_equal(kc_value_encode(&v, false, &out, NULL), KC_OK);
    assert_int_equal(out.len, 31);
    kc_buf_free(&out);
    kc_value_clear(&v);
    v = decoded("9223372036854775808", false);
    assert_int_equal(v.type, KC_VALUE_BIGINT);
    kc_value f = kc_value_float(9223372036854775808.0);
    assert_true(kc_value_equal(&v, &f)); /* 2**63 == 2.0**63 */
    kc_value_clear(&v);
}

static void test_bools_bytes_and_text(void **state)
{
    kc_value v = decoded("True", false);
    assert_int_equal(v.type, KC_VALUE_BOOL);
    assert_int_equal(v.i, 1);
    v = decoded("fALSE", false);
    assert_int_equal(v.type, KC_VALUE_BOOL);
    assert_int_equal(v.i, 0);
    is_text("true ", false, "true "); /* no stripping for booleans */

    v = decoded("base64#AAFiaW5hcnk=", false);
    assert_int_equal(v.type, KC_VALUE_BYTES);
    assert_memory_equal(v.data, "\x00\x01" "binary", 8);
    kc_value_clear(&v);
    v = decoded("base64#", false);
    assert_int_equal(v.type, KC_VALUE_BYTES);
    assert_int_equal(v.len, 0);
    kc_value_clear(&v);
    /* invalid base64 is None, as upstream's except clause makes it */
    static const char *const invalid[] = {"base64#!!notb64", "base64#A", "base64#AA=A",
                                          "base64#=", "base64#AAA==", "base64#AA AA"};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        v = decoded(invalid[i], false);
        if (v.type != KC_VALUE_NONE)
            fail_msg("'%s' should decode to None", invalid[i]);
    }
    /* CPython 3.11 accepts '=' after complete quads and ignores spare bits */
    v = decoded("base64#AAAA=", false);
    assert_int_equal(v.type, KC_VALUE_BYTES);
    assert_int_equal(v.len, 3);
    kc_value_clear(&v);
    v = decoded("base64#AB==", false);
    assert_int_equal(v.len, 1);
    kc_value_clear(&v);

    is_text("MiXeD", false, "MiXeD");
    is_text("MiXeD", true, "mixed");
    is_text("file#N.crypto", true, "file#n.crypto");
    is_text("\xc3\x84\xce\x91\xce\xa3", true, "\xc3\xa4\xce\xb1\xcf\x82"); /* ÄΑΣ -> äας */
    is_text("\xc4\xb0", true, "i\xcc\x87");                             /* İ -> i̇ */
    is_text("", false, "");
    kc_value bad = kc_value_none();
    assert_int_equal(kc_value_decode((const uint8_t *)"\xff", 1, false, &bad), KC_ERR_INVALID);
}

static void encodes(kc_value v, bool iskey, const char *want)
{
    kc_buf out = KC_BUF_INIT;
    assert_int_equal(kc_value_encode(&v, iskey, &out, NULL), KC_OK);
    kc_buf_append_byte(&out, 0);
    assert_string_equal((const char *)out.data, want);
    kc_buf_free(&out);
}

static void test_encoding_as_python_writes(void **state)
{
    encodes(kc_value_bool(true), false, "True");
    encodes(kc_value_bool(false), true, "false");
    encodes(kc_value_int(316224000), false, "316224000");
    encodes(kc_value_int(INT64_MIN), false, "-9223372036854775808");
    encodes(kc_value_float(0.143), false, "0.143");
    encodes(kc_value_float(2.0), false, "2.0");
    encodes(kc_value_float(1e16), false, "1e+16");
    encodes(kc_value_float(1e15), false, "1000000000000000.0");
    encodes(kc_value_float(1e-4), false, "0.0001");
    encodes(kc_value_float(1e-5), false, "1e-05");
    encodes(kc_value_float(-0.0), false, "-0.0");
    encodes(kc_value_float(1.7976931348623157e308), false, "1.7976931348623157e+308");
    encodes(kc_value_float(5e-324), false, "5e-324");
    encodes(kc_value_float(2083449600.25), false, "2083449600.25");
    encodes(kc_value_float(INFINITY), false, "inf");
    encodes(kc_value_float(NAN), false, "nan");
    encodes(kc_value_text("Str"), false, "Str");
    encodes(kc_value_text("Str"), true, "str");
    encodes(kc_value_bytes("\x00\x01" "binary", 8), false, "base64#AAFiaW5hcnk=");
    encodes(kc_value_bytes("\xff", 1), true, "base64#/w=="); /* bytes keys keep their case */
    kc_buf out = KC_BUF_INIT;
    kc_value none = kc_value_none(), bad = kc_value_textn("\xff", 1);
    assert_int_equal(kc_value_encode(&none, false, &out, NULL), KC_ERR_INVALID);
    assert_int_equal(kc_value_encode(&bad, false, &out, NULL), KC_ERR_INVALID);
    kc_buf_free(&out);
    char *t;
    kc_value f = kc_value_float(1.5);
    assert_int_equal(kc_value_to_text(&f, &t, NULL), KC_OK);
    assert_string_equal(t, "1.5");
    free(t);
}

static void test_python_equality(void **state)
{
    kc_value one = kc_value_int(1), t = kc_value_bool(true), f1 = kc_value_float(1.0);
    kc_value nan = kc_value_float(NAN), half = kc_value_float(0.5);
    kc_value s = kc_value_text("a"), b = kc_value_bytes("a", 1), none = kc_value_none();
    kc_value big53 = kc_value_int(9007199254740993), f53 = kc_value_float(9007199254740992.0);
    assert_true(kc_value_equal(&one, &t));
    assert_true(kc_value_equal(&one, &f1));
    assert_true(kc_value_equal(&t, &f1));
    assert_false(kc_value_equal(&nan, &nan));
    assert_false(kc_value_equal(&one, &half));
    assert_false(kc_value_equal(&s, &b));
    assert_false(kc_value_equal(&s, &none));
    assert_true(kc_value_equal(&none, &none));
    assert_false(kc_value_equal(&big53, &f53)); /* compared exactly, not as doubles */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_as_python_reads_them),
        cmocka_unit_test(test_big_ints_keep_their_digits),
        cmocka_unit_test(test_bools_bytes_and_text),
        cmocka_unit_test(test_encoding_as_python_writes),
        cmocka_unit_test(test_python_equality),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
