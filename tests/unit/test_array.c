/* kc_array: the one growable array. Growth doubles, keeps the elements,
 * and a refused size leaves the array as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "kc_array.h"

static void test_grow_doubles_and_keeps_elements(void **state)
{
    (void)state;
    int *a = NULL;
    size_t n = 0, cap = 0, reallocs = 0;
    for (int i = 0; i < 1000; i++) {
        size_t before = cap;
        assert_int_equal(KC_ARRAY_GROW(a, n, cap), KC_OK);
        assert_true(cap > n);
        if (cap != before) {
            reallocs++;
            assert_true(before == 0 ? cap == 8 : cap == 2 * before);
        }
        a[n++] = i;
    }
    assert_int_equal(reallocs, 8); /* 8, 16, ..., 1024 */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(a[i], i);
    free(a);
}

static void test_reserve_reaches_what_is_needed_at_once(void **state)
{
    (void)state;
    char *s = NULL;
    size_t cap = 0;
    assert_int_equal(kc_array_reserve(&s, &cap, 100, 1), KC_OK);
    assert_int_equal(cap, 100);
    assert_int_equal(kc_array_reserve(&s, &cap, 50, 1), KC_OK); /* enough: unchanged */
    assert_int_equal(cap, 100);
    assert_int_equal(kc_array_reserve(&s, &cap, 101, 1), KC_OK);
    assert_int_equal(cap, 200);
    free(s);
}

static void test_overflow_is_refused_and_leaves_the_array(void **state)
{
    (void)state;
    uint64_t *a = NULL;
    size_t n = 0, cap = 0;
    assert_int_equal(KC_ARRAY_GROW(a, n, cap), KC_OK);
    a[0] = 42;
    uint64_t *kept = a;
    assert_int_equal(kc_array_reserve(&a, &cap, SIZE_MAX / 4, sizeof *a), KC_ERR_NOMEM);
    assert_int_equal(kc_array_resize(&a, SIZE_MAX / 2, sizeof *a), KC_ERR_NOMEM);
    assert_int_equal(kc_array_resize(&a, 0, sizeof *a), KC_ERR_NOMEM);
    assert_ptr_equal(a, kept);
    assert_int_equal(cap, 8);
    assert_int_equal(a[0], 42);
    free(a);
}

static void test_resize_is_exact_both_ways(void **state)
{
    (void)state;
    int *a = NULL;
    for (size_t n = 1; n <= 5; n++) {
        assert_int_equal(kc_array_resize(&a, n, sizeof *a), KC_OK);
        a[n - 1] = (int)n;
    }
    assert_int_equal(kc_array_resize(&a, 2, sizeof *a), KC_OK);
    assert_int_equal(a[0], 1);
    assert_int_equal(a[1], 2);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_doubles_and_keeps_elements),
        cmocka_unit_test(test_reserve_reaches_what_is_needed_at_once),
        cmocka_unit_test(test_overflow_is_refused_and_leaves_the_array),
        cmocka_unit_test(test_resize_is_exact_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
