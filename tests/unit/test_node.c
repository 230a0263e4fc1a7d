/* Nodes on the embedded broker, end to end: a producer encrypts, a consumer
 * meets an unknown key, requests it over Kafka, receives it and decrypts;
 * a restarted producer serves its old keys; an unauthorised consumer never
 * gets keys; the node files stay consistent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kc_broker.h"
#include "kc_chain.h"
#include "kc_log.h"
#include "kc_node.h"
#include "kc_provision.h"
#include "kc_ratchet.h"
#include "kc_store.h"
#include "kc_test.h"
#include "kc_test_fixture.h"
#include "kc_test_node.h"

#define KEY_WAIT 0.1   /* s a deserializer waits per try for a missing key */

static tc_pki pki, rogue_pki;

/* NODE.config, NODE.crypto and NODE.seed for `role` on `root`, under the
 * test root (or under another root when rogue). */
static char *provision(const char *node, kc_role role, const char *root, bool rogue)
{
    return tc_node_dir(tc_dir, node, role, root, &pki, rogue ? &rogue_pki : &pki);
}

/* Deserializes until the plaintext comes (the first miss waits ~1 s inside
 * the deserializer; keys arrive through the management thread). */
static bool decrypts_within(kc_node *c, const char *topic, const kc_buf *wire, const char *want,
                            double seconds)
{
    kc_message *m = kc_message_new();
    bool ok = false;
    for (int i = 0; i < (int)(seconds * 10) && !ok; i++) {
        assert_int_equal(kc_serde_deserialize(kc_node_serde(c), KC_KIND_VALUE, topic, wire->data,
                                              wire->len, m, NULL), KC_OK);
        const uint8_t *p;
        size_t n;
        if (kc_message_get(m, false, &p, &n, NULL) == KC_OK) {
            assert_int_equal(n, strlen(want));
            assert_memory_equal(p, want, n);
            ok = true;
        } else {
            assert_true(kc_message_is_possibly_decryptable(m));
            usleep(100000);
        }
    }
    kc_message_free(m);
    return ok;
}

static void test_key_exchange_over_the_embedded_broker(void **state)
{
    char *pcfg = provision("prod", KC_ROLE_PRODUCER, "sensor", false);
    char *ccfg = provision("cons", KC_ROLE_CONSUMER, "sensor", false);
    char *rcfg = provision("rogue", KC_ROLE_CONSUMER, "sensor", true);
    kc_node *p = tc_open_node(pcfg, KEY_WAIT), *c = tc_open_node(ccfg, KEY_WAIT);
    kc_node *r = tc_open_node(rcfg, KEY_WAIT);
    kc_buf wire = KC_BUF_INIT, wire2 = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(kc_node_serde(p), KC_KIND_VALUE, "sensor.temp",
                                       (const uint8_t *)"21.5 C", 6, &wire, NULL), KC_OK);
    /* the new producer key was saved before the message was handed out */
    kc_value old = kc_value_none();
    assert_int_equal(kc_store_load_value(kc_node_store(p), "crypto", "oldkeys", &old, NULL), KC_OK);
    assert_int_equal(old.type, KC_VALUE_BYTES);
    kc_value_clear(&old);

    assert_true(decrypts_within(c, "sensor.temp", &wire, "21.5 C", 20));
    kc_node_stats ps, cs, rs;
    kc_node_get_stats(p, &ps);
    kc_node_get_stats(c, &cs);
    assert_true(ps.replies_sent >= 1);
    assert_true(cs.requests_sent >= 1);
    assert_true(cs.keys_received >= 1);

    /* a consumer provisioned under another root never gets the key */
    assert_false(decrypts_within(r, "sensor.temp", &wire, "21.5 C", 3));
    kc_node_get_stats(r, &rs);
    assert_int_equal(rs.keys_received, 0);

    /* restart the producer: a new key index; the old one is still served */
    kc_node_close(p);
    p = tc_open_node(pcfg, KEY_WAIT);
    assert_int_equal(kc_serde_serialize(kc_node_serde(p), KC_KIND_VALUE, "sensor.temp",
                                       (const uint8_t *)"22.0 C", 6, &wire2, NULL), KC_OK);
    kc_node *late = NULL;
    kc_node_close(c);
    late = tc_open_node(ccfg, KEY_WAIT); /* consumer keys are memory only: it must ask again */
    assert_true(decrypts_within(late, "sensor.temp", &wire2, "22.0 C", 20));
    assert_true(decrypts_within(late, "sensor.temp", &wire, "21.5 C", 20));
    kc_node_close(late);
    kc_node_close(p);
    kc_node_close(r);
    kc_buf_free(&wire);
    kc_buf_free(&wire2);
    free(pcfg);
    free(ccfg);
    free(rcfg);
}

int main(void)
{
    kc_init();
    tc_pki_init(&pki, "node test rot", "node test provisioner");
    tc_pki_init(&rogue_pki, "rogue root", "node test provisioner");
    if (getenv("KC_TEST_LOG"))
        kc_log_set_level(KC_LOG_INFO);
    else
        kc_log_set_level(KC_LOG_CRITICAL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_exchange_over_the_embedded_broker),
    };
    int rc = cmocka_run_group_tests(tests, tc_setup_dir, tc_teardown_dir);
    kc_broker_embedded_stop();
    tc_pki_clear(&pki);
    tc_pki_clear(&rogue_pki);
    return rc;
}
