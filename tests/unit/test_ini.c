/* kc_ini: the ConfigParser dialect of NODE.config — what parses, what is
 * refused (with the line), what values come out, and the exact bytes the
 * writer produces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_ini.h"
#include "kc_test.h"

static kc_ini ini;

static kc_status parse(const char *text, kc_err *err)
{
    kc_ini_free(&ini);
    kc_ini_init(&ini);
    return kc_ini_parse(&ini, (const uint8_t *)text, strlen(text), "node1.config", err);
}

static void parses(const char *text)
{
    kc_err err = {0};
    if (parse(text, &err) != KC_OK)
        fail_msg("unexpected parse error: %s", err.msg);
}

/* The error message must name the file and the line. */
static void refused(const char *text, int line, const char *why)
{
    kc_err err = {0};
    assert_int_equal(parse(text, &err), KC_ERR_INVALID);
    char where[64];
    snprintf(where, sizeof where, "file node1.config: line %d: ", line);
    if (strncmp(err.msg, where, strlen(where)) != 0 || !strstr(err.msg, why))
        fail_msg("message '%s' should start with '%s' and mention '%s'", err.msg, where, why);
}

static const kc_ini_section *section(const char *name)
{
    return kc_ini_section_find(&ini, (const uint8_t *)name, strlen(name));
}

/* The interpolated value of an option, as ConfigParser.get returns it. */
static char *get(const char *sec, const char *name, kc_status want)
{
    static kc_buf out;
    kc_buf_free(&out);
    kc_err err = {0};
    kc_status st = kc_ini_get(&ini, section(sec), (const uint8_t *)name, strlen(name), &out, &err);
    if (st != want)
        fail_msg("get [%s] %s: status %d (%s), want %d", sec, name, st, err.msg, want);
    kc_buf_append_byte(&out, 0);
    return (char *)out.data;
}

static char *written(void)
{
    static kc_buf out;
    kc_buf_free(&out);
    assert_int_equal(kc_ini_write(&ini, &out), KC_OK);
    kc_buf_append_byte(&out, 0);
    return (char *)out.data;
}

static void test_colon_is_the_only_delimiter(void **state)
{
    refused("[s]\nkey = value\n", 2, "'=' is not a delimiter");
    parses("[s]\nurl : http://host:9092\nk:v\nspaced   :   x  \n  more : text\n");
    assert_string_equal(get("s", "url", KC_OK), "http://host:9092");
    assert_string_equal(get("s", "k", KC_OK), "v");
    assert_string_equal(get("s", "spaced", KC_OK), "x\nmore : text"); /* indented: continues */
    parses("[s]\na = b : c\n"); /* the name runs to the first ':' */
    assert_string_equal(get("s", "a = b", KC_OK), "c");
    refused("[s]\n : value\n", 2, "option name");
    refused("[s]\njust words\n", 2, "expected 'name : value'");
}

static void test_only_semicolon_starts_a_comment(void **state)
{
    parses("; top\n[s]\n  ; indented\nk : v ; not a comment\n");
    assert_string_equal(get("s", "k", KC_OK), "v ; not a comment");
    refused("[s]\n# hash\n", 2, "expected 'name : value'");
    parses("[s]\n#k : v\n");
    assert_string_equal(get("s", "#k", KC_OK), "v");
}

static void test_sections(void **state)
{
    refused("k : v\n", 1, "section header");
    refused("\n\n[DEFAULT]\n[s]\n[s]\n", 5, "section [s] appears twice");
    parses("[a]b]\nx : 1\n[c] trailing\ny : 2\n[ spaced ]\n");
    assert_non_null(section("a]b"));
    assert_non_null(section("c"));
    assert_non_null(section(" spaced "));
    refused("[]\n", 1, "section header"); /* an empty name is no header */
}

static void test_strict_duplicates(void **state)
{
    refused("[s]\nk : 1\nk : 2\n", 3, "option 'k' appears twice in section [s]");
    parses("[s]\nk : 1\nK : 2\n"); /* names are case-sensitive */
    assert_string_equal(get("s", "K", KC_OK), "2");
    parses("[DEFAULT]\na : 1\n[s]\n[DEFAULT]\nb : 2\n"); /* DEFAULT may repeat */
    assert_string_equal(get("s", "b", KC_OK), "2");
    refused("[DEFAULT]\na : 1\n[DEFAULT]\na : 2\n", 4, "appears twice in section [DEFAULT]");
}

static void test_multiline_values(void **state)
{
    parses("[s]\nk : first\n  second\n\n\tthird\n  ; comment\n\n\nnext : x\n");
    assert_string_equal(get("s", "k", KC_OK), "first\nsecond\n\nthird");
    assert_string_equal(get("s", "next", KC_OK), "x");
    assert_string_equal(written(), "[s]\nk : first\n\tsecond\n\t\n\tthird\nnext : x\n\n");
    parses("[s]\nk :\n  [not a section]\n");
    assert_string_equal(get("s", "k", KC_OK), "\n[not a section]");
    assert_string_equal(written(), "[s]\nk : \n\t[not a section]\n\n");
    /* an option line indented like the previous one is not a continuation */
    parses("[s]\n  a : 1\n  b : 2\n");
    assert_string_equal(get("s", "a", KC_OK), "1");
}

static void test_line_endings_whitespace_and_utf8(void **state)
{
    parses("[s]\r\na : 1\rb : 2\r\n");
    assert_string_equal(get("s", "b", KC_OK), "2");
    parses("[s]\nk : \xc2\xa0value\xe3\x80\x80\n"); /* NBSP and ideographic space strip */
    assert_string_equal(get("s", "k", KC_OK), "value");
    parses("[s]\nk : a\x1c\n"); /* Python strips \x1c too */
    assert_string_equal(get("s", "k", KC_OK), "a");
    refused("[s]\nk : \xff\n", 2, "not valid UTF-8");
    refused("[s]\nk : \xed\xa0\x80\n", 2, "not valid UTF-8"); /* a surrogate */
    refused("\xef\xbb\xbf[s]\n", 1, "section header"); /* a BOM is text to Python */
    parses("");
    assert_string_equal(written(), "");
}

static void test_default_inheritance_and_options(void **state)
{
    parses("[DEFAULT]\nnode_id : n1\nshared : d\n[s]\nshared : own\nx : 1\n[t]\n");
    assert_string_equal(get("s", "shared", KC_OK), "own");
    assert_string_equal(get("t", "shared", KC_OK), "d");
    assert_string_equal(get("t", "node_id", KC_OK), "n1");
    get("t", "x", KC_ERR_NOTFOUND);
    assert_true(kc_ini_has_option(&ini, section("t"), (const uint8_t *)"node_id", 7));
    const kc_ini_option **opts;
    size_t n;
    assert_int_equal(kc_ini_options(&ini, section("s"), &opts, &n), KC_OK);
    assert_int_equal(n, 3); /* shared, x, then node_id */
    assert_memory_equal(opts[0]->name, "shared", 6);
    assert_memory_equal(opts[1]->name, "x", 1);
    assert_memory_equal(opts[2]->name, "node_id", 7);
    free(opts);
}

static void test_interpolation(void **state)
{
    parses("[DEFAULT]\nhost : h\nurl : %(host)s:%(port)s\nport : 1\n"
           "[s]\nport : 2\npct : 50%%\nlone : 50%\nbad : %(x\nmissing : %(nope)s\n"
           "self : %(self)s\nname : %(Host)s\n");
    assert_string_equal(get("s", "pct", KC_OK), "50%");
    assert_string_equal(get("s", "url", KC_OK), "h:2"); /* resolved in the section's context */
    assert_string_equal(get("DEFAULT", "url", KC_OK), "h:1");
    kc_err err;
    kc_buf out = KC_BUF_INIT;
    const kc_ini_section *s = section("s");
    assert_int_equal(kc_ini_get(&ini, s, (const uint8_t *)"lone", 4, &out, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "section [s]: option 'lone'"));
    assert_int_equal(kc_ini_get(&ini, s, (const uint8_t *)"bad", 3, &out, &err), KC_ERR_INVALID);
    assert_int_equal(kc_ini_get(&ini, s, (const uint8_t *)"missing", 7, &out, &err),
                     KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "%(nope)s"));
    assert_int_equal(kc_ini_get(&ini, s, (const uint8_t *)"self", 4, &out, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "10 levels"));
    /* reference names are case-sensitive like option names */
    assert_int_equal(kc_ini_get(&ini, s, (const uint8_t *)"name", 4, &out, &err), KC_ERR_INVALID);
    kc_buf_free(&out);
    /* values are stored raw and written back raw */
    assert_non_null(strstr(written(), "pct : 50%%\nlone : 50%\n"));
}

static void test_settable_values(void **state)
{
    static const struct { const char *v; bool ok; } cases[] = {
        {"plain", true}, {"50%%", true}, {"%(x)s", true}, {"50%", false},
        {"%%%", false}, {"%(x)", false}, {"%()s", false}, {"%(a%%)s", true},
        {"a%%(b)s", true}, {"", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (kc_ini_value_settable((const uint8_t *)cases[i].v, strlen(cases[i].v)) != cases[i].ok)
            fail_msg("settable('%s') should be %d", cases[i].v, cases[i].ok);
}

static void test_writer_layout(void **state)
{
    parses("[DEFAULT]\n[b]\nempty :\n[a]\n");
    /* no [DEFAULT] without options; creation order; "name : " for empty */
    assert_string_equal(written(), "[b]\nempty : \n\n[a]\n\n");
    kc_ini_section *d;
    assert_int_equal(kc_ini_section_add(&ini, (const uint8_t *)"DEFAULT", 7, &d), KC_OK);
    assert_ptr_equal(d, &ini.defaults);
    assert_int_equal(kc_ini_option_set(d, (const uint8_t *)"node_id", 7,
                                       (const uint8_t *)"n", 1), KC_OK);
    kc_ini_section *b = (kc_ini_section *)section("b");
    assert_int_equal(kc_ini_option_set(b, (const uint8_t *)"z", 1, (const uint8_t *)"1", 1), KC_OK);
    assert_int_equal(kc_ini_option_set(b, (const uint8_t *)"empty", 5,
                                       (const uint8_t *)"x\ny", 3), KC_OK); /* keeps its place */
    assert_string_equal(written(), "[DEFAULT]\nnode_id : n\n\n[b]\nempty : x\n\ty\nz : 1\n\n[a]\n\n");
    assert_true(kc_ini_option_remove(b, (const uint8_t *)"empty", 5));
    assert_false(kc_ini_option_remove(b, (const uint8_t *)"empty", 5));
    assert_non_null(kc_ini_option_find(b, (const uint8_t *)"z", 1));
    assert_string_equal(written(), "[DEFAULT]\nnode_id : n\n\n[b]\nz : 1\n\n[a]\n\n");

    kc_ini copy;
    assert_int_equal(kc_ini_clone(&copy, &ini), KC_OK);
    assert_true(kc_ini_equal(&copy, &ini));
    kc_ini_option_remove(&copy.defaults, (const uint8_t *)"node_id", 7);
    assert_false(kc_ini_equal(&copy, &ini));
    kc_ini_free(&copy);
}

static void test_many_options_stay_indexed(void **state)
{
    kc_buf text = KC_BUF_INIT;
    kc_buf_append(&text, "[s]\n", 4);
    char line[32];
    for (int i = 0; i < 5000; i++) {
        int k = snprintf(line, sizeof line, "k%d : %d\n", i, i);
        kc_buf_append(&text, line, (size_t)k);
    }
    kc_buf_append_byte(&text, 0);
    parses((const char *)text.data);
    kc_ini_section *s = (kc_ini_section *)section("s");
    for (int i = 0; i < 5000; i += 2) {
        int k = snprintf(line, sizeof line, "k%d", i);
        assert_true(kc_ini_option_remove(s, (const uint8_t *)line, (size_t)k));
    }
    assert_int_equal(s->n, 2500);
    assert_string_equal(get("s", "k4999", KC_OK), "4999");
    get("s", "k4998", KC_ERR_NOTFOUND);
    kc_buf_free(&text);
}

static int teardown(void **state)
{
    kc_ini_free(&ini);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_colon_is_the_only_delimiter, teardown),
        cmocka_unit_test_teardown(test_only_semicolon_starts_a_comment, teardown),
        cmocka_unit_test_teardown(test_sections, teardown),
        cmocka_unit_test_teardown(test_strict_duplicates, teardown),
        cmocka_unit_test_teardown(test_multiline_values, teardown),
        cmocka_unit_test_teardown(test_line_endings_whitespace_and_utf8, teardown),
        cmocka_unit_test_teardown(test_default_inheritance_and_options, teardown),
        cmocka_unit_test_teardown(test_interpolation, teardown),
        cmocka_unit_test_teardown(test_settable_values, teardown),
        cmocka_unit_test_teardown(test_writer_layout, teardown),
        cmocka_unit_test_teardown(test_many_options_stay_indexed, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
