/* What a C program can do with kafkacrypto.h alone: open a seed file,
 * encrypt, hand the key to a consumer and decrypt, inspect messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafkacrypto.h"
#include "kc_test.h"

static void test_producer_to_consumer(void **state)
{
    char *dir = tc_tmpdir(), *seed = tc_path(dir, "producer.seed");
    const uint8_t node[32] = {42};
    kc_err err;
    kc_ratchet *r;
    assert_int_equal(kc_ratchet_open_file(seed, NULL, &r, &err), KC_OK);

    kc_serde_config pc;
    kc_serde_config_init(&pc);
    pc.ratchet = r;
    pc.node_id = node;
    pc.node_id_len = sizeof node;
    kc_serde *producer;
    assert_int_equal(kc_serde_new(&pc, &producer, &err), KC_OK);
    kc_buf key = KC_BUF_INIT, value = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(producer, KC_KIND_KEY, "orders.eu", (const uint8_t *)"id-7", 4,
                                        &key, &err), KC_OK);
    assert_int_equal(kc_serde_serialize(producer, KC_KIND_VALUE, "orders.eu",
                                        (const uint8_t *)"{\"qty\": 3}", 10, &value, &err), KC_OK);

    /* The key exchange would deliver (root, key index, secret); here the
     * ratchet derives them directly. */
    kc_keyidx ki;
    uint8_t secret[KC_SECRET_BYTES];
    assert_int_equal(kc_ratchet_derive(r, (const uint8_t *)"orders", 6, node, sizeof node, &ki,
                                       secret, &err), KC_OK);
    kc_serde_config cc;
    kc_serde_config_init(&cc);
    cc.initial_wait_intervals = 0;
    kc_serde *consumer;
    assert_int_equal(kc_serde_new(&cc, &consumer, &err), KC_OK);

    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(consumer, KC_KIND_VALUE, "orders.eu", value.data, value.len,
                                          m, &err), KC_OK);
    assert_false(kc_message_is_cleartext(m, true));
    assert_true(kc_message_is_possibly_decryptable(m));
    assert_string_equal(kc_message_topic(m), "orders.eu");
    const uint8_t *p;
    size_t n;
    assert_int_equal(kc_message_get(m, false, &p, &n, &err), KC_ERR_STATE);

    assert_int_equal(kc_serde_add_consumer_key(consumer, "orders", &ki, secret, &err), KC_OK);
    assert_true(kc_message_is_cleartext(m, true));  /* the retry decrypts it */
    assert_int_equal(kc_message_get(m, false, &p, &n, &err), KC_OK);
    assert_int_equal(n, 10);
    assert_memory_equal(p, "{\"qty\": 3}", 10);
    assert_int_equal(kc_serde_deserialize(consumer, KC_KIND_KEY, "orders.us", key.data, key.len, m,
                                          &err), KC_OK);
    assert_int_equal(kc_message_get(m, false, &p, &n, &err), KC_OK);
    assert_memory_equal(p, "id-7", 4);

    /* the producer's records for persistence */
    assert_true(kc_serde_take_new_pgens(producer));
    kc_buf oldkeys = KC_BUF_INIT;
    size_t count;
    assert_int_equal(kc_serde_export_pgens(producer, &oldkeys, &count, &err), KC_OK);
    assert_int_equal(count, 1);

    kc_message_free(m);
    kc_serde_free(consumer);
    kc_serde_free(producer);
    kc_ratchet_close(r);
    kc_buf_free(&key);
    kc_buf_free(&value);
    kc_buf_free(&oldkeys);
    tc_rmtree(dir);
    free(seed);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_producer_to_consumer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
