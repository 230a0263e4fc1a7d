/* msgpack conventions: strict decoding, the size guard, raw=True accessors
 * and Python-identical encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "kc_mp.h"
#include "kc_test.h"

/* Decoded documents point into their input, so inputs live until exit. */
static kc_buf inputs[32];
static int ninputs;

static void decode_hex(kc_mp_doc *doc, const char *hex, kc_status want)
{
    kc_buf *b = &inputs[ninputs++ % 32];
    kc_buf_free(b);
    *b = tc_hex(hex);
    kc_err err;
    assert_int_equal(kc_mp_decode(doc, b->data, b->len, "test input", &err), want);
    if (want != KC_OK)
        assert_non_null(strstr(err.msg, "test input"));
}

static void test_decode_exactly_one_object(void **state)
{
    kc_mp_doc doc;
    decode_hex(&doc, "93010203", KC_OK);
    assert_int_equal(kc_mp_root(&doc)->via.array.size, 3);
    kc_mp_doc_free(&doc);
    decode_hex(&doc, "9301020300", KC_ERR_INVALID);   /* trailing byte */
    decode_hex(&doc, "930102", KC_ERR_INVALID);       /* truncated */
    decode_hex(&doc, "c1", KC_ERR_INVALID);           /* never-used marker */
    decode_hex(&doc, "", KC_ERR_INVALID);
}

static void test_prefix_reports_used_length(void **state)
{
    kc_buf b = tc_hex("9201020304");
    kc_mp_doc doc;
    size_t used = 0;
    assert_int_equal(kc_mp_decode_prefix(&doc, b.data, b.len, &used, "x", NULL), KC_OK);
    assert_int_equal(used, 3);
    kc_mp_doc_free(&doc);
    kc_buf_free(&b);
}

static void test_huge_declared_sizes_are_refused(void **state)
{
    /* Without the guard msgpack-c would try to allocate these up front. */
    kc_mp_doc doc;
    decode_hex(&doc, "ddffffffff", KC_ERR_INVALID);
    decode_hex(&doc, "dfffffffff", KC_ERR_INVALID);
    decode_hex(&doc, "dd04000000", KC_ERR_INVALID);
    decode_hex(&doc, "91dd04000000", KC_ERR_INVALID);
    decode_hex(&doc, "c6ffffffff00", KC_ERR_INVALID);
    assert_true(kc_mp_sizes_plausible((const uint8_t *)"\x92\x01\x02", 3));
    assert_false(kc_mp_sizes_plausible((const uint8_t *)"\x93\x01\x02", 3));
}

static void test_str_and_bin_are_both_bytes(void **state)
{
    kc_mp_doc a, b;
    decode_hex(&a, "a3616263", KC_OK);   /* str "abc" */
    decode_hex(&b, "c403616263", KC_OK); /* bin "abc" */
    assert_true(kc_mp_is_bytes(kc_mp_root(&a)));
    assert_true(kc_mp_equal(kc_mp_root(&a), kc_mp_root(&b)));
    assert_true(kc_mp_text_eq(kc_mp_root(&b), "abc"));
    assert_false(kc_mp_text_eq(kc_mp_root(&b), "abcd"));
    assert_int_equal(kc_mp_pylen(kc_mp_root(&a)), 3);
    kc_mp_doc_free(&a);
    kc_mp_doc_free(&b);
}

static void test_numbers_compare_like_python(void **state)
{
    kc_mp_doc i, f, neg;
    decode_hex(&i, "01", KC_OK);
    decode_hex(&f, "cb3ff0000000000000", KC_OK); /* 1.0 */
    decode_hex(&neg, "ff", KC_OK);               /* -1 */
    assert_true(kc_mp_equal(kc_mp_root(&i), kc_mp_root(&f)));
    double d;
    assert_true(kc_mp_number(kc_mp_root(&f), &d));
    assert_true(d == 1.0);
    int64_t v;
    assert_true(kc_mp_int(kc_mp_root(&neg), &v));
    assert_int_equal(v, -1);
    assert_false(kc_mp_int(kc_mp_root(&f), &v));
    assert_int_equal(kc_mp_pylen(kc_mp_root(&i)), -1);
    kc_mp_doc_free(&i);
    kc_mp_doc_free(&f);
    kc_mp_doc_free(&neg);
}

static void test_encoding_matches_python(void **state)
{
    kc_mp_out o;
    kc_mp_out_init(&o);
    msgpack_pack_int64(&o.pk, 200);
    msgpack_pack_int64(&o.pk, -100);
    char s[40];
    memset(s, 'a', sizeof s);
    msgpack_pack_str_with_body(&o.pk, s, sizeof s);   /* str8, as msgpack-python */
    kc_mp_pack_bin(&o.pk, "xyz", 3);
    msgpack_pack_double(&o.pk, 2100086400.0);
    assert_int_equal(kc_mp_out_status(&o), KC_OK);
    assert_string_equal(tc_tohex(o.buf.data, o.buf.len),
                        "ccc8d09cd928616161616161616161616161616161616161616161616161616161616161"
                        "61616161616161616161c40378797acb41df4b31a0000000");
    kc_mp_out_free(&o);
}

static void test_describe_is_bounded(void **state)
{
    kc_mp_doc doc;
    decode_hex(&doc, "9300c40190c420e2c15239ef0a85b87e532b15331f092d635dc8c02a639cd8b10c41b9dfd35dd9", KC_OK);
    char out[32];
    kc_mp_describe(kc_mp_root(&doc), out, sizeof out);
    assert_true(strlen(out) < sizeof out);
    assert_memory_equal(out, "[0, <90>, <e2c1", 15);
    kc_mp_doc_free(&doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_exactly_one_object),
        cmocka_unit_test(test_prefix_reports_used_length),
        cmocka_unit_test(test_huge_declared_sizes_are_refused),
        cmocka_unit_test(test_str_and_bin_are_both_bytes),
        cmocka_unit_test(test_numbers_compare_like_python),
        cmocka_unit_test(test_encoding_matches_python),
        cmocka_unit_test(test_describe_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
