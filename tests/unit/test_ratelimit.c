/* kc_ratelimit: once per interval per pair of keys; the oldest is
 * forgotten when the table is full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "kc_ratelimit.h"

static kc_ratelimit r;

static void test_once_per_interval(void **state)
{
    kc_ratelimit_init(&r);
    assert_true(kc_ratelimit_due(&r, "fpr", "root", 100, 60));
    assert_false(kc_ratelimit_due(&r, "fpr", "root", 159, 60));
    assert_true(kc_ratelimit_due(&r, "fpr", "root", 160, 60));
    assert_false(kc_ratelimit_due(&r, "fpr", "root", 161, 60));
    /* another pair, and the same bytes split differently, are their own */
    assert_true(kc_ratelimit_due(&r, "fpr", "other", 161, 60));
    assert_true(kc_ratelimit_due(&r, "ab", "c", 161, 60));
    assert_true(kc_ratelimit_due(&r, "a", "bc", 161, 60));
}

static void test_a_full_table_forgets_the_oldest(void **state)
{
    kc_ratelimit_init(&r);
    char a[16];
    for (int i = 0; i < KC_RATELIMIT_SLOTS; i++) {
        snprintf(a, sizeof a, "k%d", i);
        assert_true(kc_ratelimit_due(&r, a, "", 1000 + i, 60));
    }
    assert_false(kc_ratelimit_due(&r, "k0", "", 1000 + KC_RATELIMIT_SLOTS, 1e6));
    /* "new" takes the slot of k0, said longest ago */
    assert_true(kc_ratelimit_due(&r, "new", "", 1000 + KC_RATELIMIT_SLOTS, 1e6));
    assert_false(kc_ratelimit_due(&r, "k1", "", 1000 + KC_RATELIMIT_SLOTS, 1e6));
    assert_false(kc_ratelimit_due(&r, "new", "", 1000 + KC_RATELIMIT_SLOTS, 1e6));
    assert_true(kc_ratelimit_due(&r, "k0", "", 1000 + KC_RATELIMIT_SLOTS, 1e6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_once_per_interval),
        cmocka_unit_test(test_a_full_table_forgets_the_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
