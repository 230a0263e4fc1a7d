/* Python re.match semantics over PCRE2 for poison regexes: anchoring,
 * Python syntax, and the limits that keep a hostile pattern harmless. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kc_log.h"
#include "kc_regex.h"

static kc_regex_result rx(const char *pattern, const char *subject)
{
    return kc_regex_match_ex((const uint8_t *)pattern, strlen(pattern),
                             (const uint8_t *)subject, strlen(subject), NULL);
}

#define MATCH(p, s) assert_int_equal(rx(p, s), KC_REGEX_MATCH)
#define NOMATCH(p, s) assert_int_equal(rx(p, s), KC_REGEX_NOMATCH)
#define BAD(p) assert_int_equal(rx(p, "anything"), KC_REGEX_BAD_PATTERN)

static void test_anchored_at_start_only(void **state)
{
    MATCH("^sen.*", "sensor");
    MATCH("^sen", "sensorzzz");     /* a prefix is enough: re.match */
    MATCH("sen", "sensor");         /* anchored even without ^ */
    NOMATCH("sen", "xsensor");
    NOMATCH("^sen.*", "xsensor");
    MATCH("^sensor$", "sensor");
    MATCH("^sensor$", "sensor\n");  /* $ before a final newline */
    NOMATCH("^sensor$", "sensor\n\n");
    NOMATCH("^sensor\\Z", "sensor\n"); /* Python \Z: the very end only */
    MATCH("^sensor\\Z", "sensor");
    MATCH("^.*$", "");
    MATCH("", "x");
}

static void test_bytes_semantics(void **state)
{
    NOMATCH("^.", "\n");            /* . is not newline */
    MATCH("(?s)^.", "\n");
    MATCH("^\\w+$", "abc_09");
    NOMATCH("^\\w", "\xc3\xa9");    /* ASCII classes, as a Python bytes pattern */
    MATCH("^\xc3\xa9lan", "\xc3\xa9lan");
    MATCH("^..lan$", "\xc3\xa9lan"); /* one . per byte */
    MATCH("(?i)^SENSOR", "sensor");
    MATCH("^\\s", "\x0b");
    MATCH("^\\v", "\x0b");          /* Python \v is the VT character */
    NOMATCH("^\\v", "\n");
    MATCH("^\\x41\\101", "AA");       /* hex and octal escapes */
    NOMATCH("^A\\0", "A");             /* \0 is a NUL byte */
    assert_int_equal(kc_regex_match_ex((const uint8_t *)"^A\\0", 4, (const uint8_t *)"A\0", 2, NULL),
                     KC_REGEX_MATCH);
}

static void test_python_only_syntax_is_translated(void **state)
{
    MATCH("^a{,2}b", "aab");        /* {,n} = {0,n} */
    MATCH("^a{,}b", "aaaab");
    MATCH("^a{}", "a{}");           /* not a quantifier: literal */
    MATCH("^(a)\\1", "aa");
    MATCH("^(?P<x>a)(?P=x)", "aa");
    MATCH("^[[:alpha:]]", "[]");    /* no POSIX classes in Python: a set, then ']' */
    MATCH("^[[:alpha:]]", "h]");
    NOMATCH("^[[:alpha:]]", "a");
    MATCH("^[]a]", "]");
    MATCH("^(?#comment \\) still)x", "x");
    MATCH("(?x) ^ a  b # comment (?|\n c", "abc");
    MATCH("^(?:a|b)(?=c)", "bc");
    MATCH("^(a)?(?(1)b|c)", "ab");
    MATCH("^(a)?(?(1)b|c)", "c");
    MATCH("(?a)^x", "x");
    MATCH("^a*+", "aa");
    MATCH("^(?>a)", "a");
}

static void test_what_python_rejects_is_rejected(void **state)
{
    BAD("^\\Qx\\E");     /* unknown escapes */
    BAD("^\\K");
    BAD("^\\h");
    BAD("^\\R");
    BAD("^\\p{L}");
    BAD("^\\e");
    BAD("^\\x4");        /* \x needs two hex digits */
    BAD("^(*UTF)a");
    BAD("^(?|a)");
    BAD("^(a)(?1)");
    BAD("^(?R)");
    BAD("^(?<n>a)");     /* Python spells it (?P<n>...) */
    BAD("^a(?i)b");      /* global flags after the start */
    BAD("^(?i)a");
    BAD("(?u)a");        /* u/L flags do not apply to bytes patterns */
    BAD("(?L)a");
    BAD("^\\1(a)");      /* reference to a group not yet defined */
    BAD("^(a\\1)");      /* reference to an open group */
    BAD("^(");
    BAD("^)");
    BAD("^[a");
    BAD("^\\");
    BAD("^\\400");       /* octal beyond 0o377 */
    BAD("*a");
}

static void test_bad_pattern_explains(void **state)
{
    kc_err err;
    kc_err_clear(&err);
    assert_int_equal(kc_regex_match_ex((const uint8_t *)"^(", 2, (const uint8_t *)"x", 1, &err),
                     KC_REGEX_BAD_PATTERN);
    assert_non_null(strstr(err.msg, "does not compile"));
    kc_buf out = KC_BUF_INIT;
    kc_err_clear(&err);
    assert_int_equal(kc_regex_translate((const uint8_t *)"^a\\Qb", 5, &out, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "bad escape \\Q"));
    assert_non_null(strstr(err.msg, "position"));
    assert_int_equal(kc_regex_translate((const uint8_t *)"^x\\Z{,3}", 8, &out, &err), KC_OK);
    assert_int_equal(out.len, strlen("^x\\z{0,3}"));
    assert_memory_equal(out.data, "^x\\z{0,3}", out.len);
    kc_buf_free(&out);
}

static void test_hostile_patterns_give_up_quickly(void **state)
{
    char subject[KC_REGEX_MAX_LEN + 2];
    memset(subject, 'a', KC_REGEX_MAX_LEN - 1);
    subject[KC_REGEX_MAX_LEN - 1] = 'b';
    subject[KC_REGEX_MAX_LEN] = '\0';
    clock_t t0 = clock();
    for (int i = 0; i < 20; i++) {
        assert_int_equal(rx("^(a+)+$", subject), KC_REGEX_LIMIT);
        assert_int_equal(rx("^(?:a|a)+$", subject), KC_REGEX_LIMIT);
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_true(secs < 2.0);
    assert_false(kc_regex_match((const uint8_t *)"^(a+)+$", 7, (const uint8_t *)subject,
                                strlen(subject)));
    /* subjects and patterns beyond the length limit never match */
    memset(subject, 'a', sizeof subject - 1);
    subject[sizeof subject - 1] = '\0';
    assert_int_equal(rx("^a", subject), KC_REGEX_LIMIT);
    char pattern[KC_REGEX_MAX_LEN + 3] = "^";
    memset(pattern + 1, 'a', KC_REGEX_MAX_LEN + 1);
    pattern[KC_REGEX_MAX_LEN + 2] = '\0';
    assert_int_equal(rx(pattern, "a"), KC_REGEX_BAD_PATTERN);
    /* nesting is bounded at compile time */
    char deep[200] = "^";
    for (int i = 0; i < 60; i++)
        strcat(deep, "(");
    strcat(deep, "a");
    for (int i = 0; i < 60; i++)
        strcat(deep, ")");
    BAD(deep);
}

static void test_cache_survives_many_patterns(void **state)
{
    /* more distinct patterns than cache slots: evicted ones recompile */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 200; i++) {
            char p[32], s[32];
            snprintf(p, sizeof p, "^t%d$", i);
            snprintf(s, sizeof s, "t%d", i);
            MATCH(p, s);
            NOMATCH(p, "t");
        }
    kc_regex_cache_clear();
    MATCH("^t1$", "t1");
    kc_regex_cache_clear();
}

static int nlogged;
static void count_sink(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    if (level == KC_LOG_WARNING && strstr(msg, "does not compile"))
        nlogged++;
}

static void test_bad_pattern_logged_once(void **state)
{
    kc_log_set_sink(count_sink, NULL);
    nlogged = 0;
    for (int i = 0; i < 5; i++)
        BAD("^([unterminated");
    kc_log_set_sink(NULL, NULL);
    assert_int_equal(nlogged, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anchored_at_start_only),
        cmocka_unit_test(test_bytes_semantics),
        cmocka_unit_test(test_python_only_syntax_is_translated),
        cmocka_unit_test(test_what_python_rejects_is_rejected),
        cmocka_unit_test(test_bad_pattern_explains),
        cmocka_unit_test(test_hostile_patterns_give_up_quickly),
        cmocka_unit_test(test_cache_survives_many_patterns),
        cmocka_unit_test(test_bad_pattern_logged_once),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    kc_regex_cache_clear();
    return rc;
}
