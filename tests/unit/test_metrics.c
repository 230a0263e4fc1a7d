/* The Prometheus text (kc_metrics.h): label escaping, histograms with
 * cumulative buckets, refusal reasons, and the metrics_listen parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "kc_metrics.h"
#include "kc_root_counters.h"

static char *text(kc_buf *b)
{
    assert_int_equal(kc_buf_append_byte(b, 0), KC_OK);
    return (char *)b->data;
}

static void test_samples_escape_labels_and_write_infinity(void **state)
{
    kc_buf b = KC_BUF_INIT;
    kc_label l[] = {{"node", "a\"b\\c\nd"}, {"root", "r"}};
    assert_int_equal(kc_metrics_family(&b, "x_total", "Help.", KC_METRIC_COUNTER), KC_OK);
    assert_int_equal(kc_metrics_sample(&b, "x_total", l, 2, 3), KC_OK);
    assert_int_equal(kc_metrics_sample(&b, "y", NULL, 0, INFINITY), KC_OK);
    assert_string_equal(text(&b), "# HELP kafkacrypto_x_total Help.\n"
                                  "# TYPE kafkacrypto_x_total counter\n"
                                  "kafkacrypto_x_total{node=\"a\\\"b\\\\c\\nd\",root=\"r\"} 3\n"
                                  "kafkacrypto_y +Inf\n");
    kc_buf_free(&b);
}

static void test_histogram_buckets_are_cumulative(void **state)
{
    kc_histogram h = {0};
    kc_histogram_add(&h, 0.01);  /* first bucket */
    kc_histogram_add(&h, 0.05);  /* le is inclusive */
    kc_histogram_add(&h, 0.7);   /* le=1 */
    kc_histogram_add(&h, 1000);  /* +Inf */
    assert_int_equal(h.count, 4);
    assert_true(fabs(h.sum - 1000.76) < 1e-9);
    kc_buf b = KC_BUF_INIT;
    kc_label l = {"root", "r"};
    assert_int_equal(kc_metrics_histogram(&b, "lat", &l, 1, &h), KC_OK);
    const char *t = text(&b);
    assert_non_null(strstr(t, "kafkacrypto_lat_bucket{root=\"r\",le=\"0.05\"} 2\n"));
    assert_non_null(strstr(t, "kafkacrypto_lat_bucket{root=\"r\",le=\"0.5\"} 2\n"));
    assert_non_null(strstr(t, "kafkacrypto_lat_bucket{root=\"r\",le=\"1\"} 3\n"));
    assert_non_null(strstr(t, "kafkacrypto_lat_bucket{root=\"r\",le=\"300\"} 3\n"));
    assert_non_null(strstr(t, "kafkacrypto_lat_bucket{root=\"r\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(t, "kafkacrypto_lat_count{root=\"r\"} 4\n"));
    assert_non_null(strstr(t, "kafkacrypto_lat_sum{root=\"r\"} 1000.76"));
    kc_buf_free(&b);
}

static void test_refusal_reasons(void **state)
{
    assert_int_equal(kc_refusal_of(KC_ERR_DENIED, 0), KC_REFUSED_CHAIN);
    assert_int_equal(kc_refusal_of(KC_ERR_DENIED, 1), KC_REFUSED_POLICY);
    assert_int_equal(kc_refusal_of(KC_ERR_EXPIRED, 0), KC_REFUSED_EXPIRED);
    assert_int_equal(kc_refusal_of(KC_ERR_CRYPTO, 0), KC_REFUSED_SIGNATURE);
    assert_int_equal(kc_refusal_of(KC_ERR_INVALID, 0), KC_REFUSED_MALFORMED);
    assert_int_equal(kc_refusal_of(KC_ERR_IO, 0), KC_REFUSED_OTHER);
    kc_root_table t = {0};
    for (int i = 0; i < 20; i++) {
        char root[16];
        snprintf(root, sizeof root, "r%d", i);
        kc_root_counters *c = kc_root_table_get(&t, root);
        assert_non_null(c);
        c->refused[i % KC_REFUSED_N]++;
    }
    assert_ptr_equal(kc_root_table_get(&t, "r3"), kc_root_table_find(&t, "r3"));
    assert_int_equal(t.n, 20);
    assert_int_equal(kc_root_refused_total(kc_root_table_find(&t, "r7")), 1);
    assert_null(kc_root_table_find(&t, "r20"));
    kc_root_table_free(&t);
}

static void test_listen_addresses(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    assert_true(kc_metrics_parse_listen("127.0.0.1:9464", &ss, &len));
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9464);
    assert_true(kc_metrics_parse_listen("[::1]:0", &ss, &len));
    assert_int_equal(ss.ss_family, AF_INET6);
    const char *bad[] = {"", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                         "127.0.0.1:9x", "localhost:80", "[::1:80", "::1:80", "[]:80",
                         "1.2.3.4.5:80", ":80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(kc_metrics_parse_listen(bad[i], &ss, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples_escape_labels_and_write_infinity),
        cmocka_unit_test(test_histogram_buckets_are_cumulative),
        cmocka_unit_test(test_refusal_reasons),
        cmocka_unit_test(test_listen_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
