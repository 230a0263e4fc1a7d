/* Where a consumer node reads its key topics, and what a rebuild of its
 * assignment looks up, on the embedded broker.
 *
 * A reply written after a consumer's request is read even when another
 * root's key topic joins the assignment before the consumer has read it:
 * a rebuild of the assignment used to move every key topic not read from
 * yet to its end again, past that reply, and the key came a request
 * interval later (60 s by default). Here the test answers each request
 * itself, once (no D3 copy, the next request round 30 s away), and adds
 * another root at once; several rounds, as the old behaviour lost the
 * reply most of the time, not always.
 *
 * And a rebuild looks up only the topics new to it (kc_node.c logs each at
 * DEBUG): each once, however many roots join later (it used to count
 * every tracked topic again, a metadata round trip each). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kc_broker.h"
#include "kc_exchange.h"
#include "kc_kafka.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_message.h"
#include "kc_node.h"
#include "kc_serde.h"
#include "kc_test.h"
#include "kc_test_fixture.h"
#include "kc_tunables.h"

#define ROUNDS 3
#define WAIT 15.0   /* s: generous, for a loaded machine */

static tc_pki pki;

/* "Looking up new topic T." lines, per topic. */
static struct {
    pthread_mutex_t mu;
    char topic[64][64];
    int times[64];
    int n;
} looked = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void sink(void *ctx, kc_log_level level, const char *logger, const char *message)
{
    (void)ctx;
    static const char prefix[] = "Looking up new topic ";
    if (strncmp(message, prefix, sizeof prefix - 1) == 0) {
        char t[64];
        snprintf(t, sizeof t, "%s", message + sizeof prefix - 1);
        t[strcspn(t, " ")] = '\0';
        if (*t && t[strlen(t) - 1] == '.')
            t[strlen(t) - 1] = '\0';
        pthread_mutex_lock(&looked.mu);
        int i = 0;
        while (i < looked.n && strcmp(looked.topic[i], t) != 0)
            i++;
        if (i == looked.n && looked.n < 64)
            snprintf(looked.topic[looked.n++], sizeof looked.topic[0], "%s", t);
        if (i < 64)
            looked.times[i]++;
        pthread_mutex_unlock(&looked.mu);
    }
    if (getenv("KC_TEST_LOG") && level >= KC_LOG_INFO)
        fprintf(stderr, "%s: %s\n", logger, message);
}

/* The data of one root: a message and the producer key it needs. */
typedef struct root_data {
    char root[16], topic[32], reqs[32], keys[32];
    kc_buf wire;
    kc_keyidx ki;
    uint8_t secret[KC_SECRET_BYTES];
} root_data;

static void keep_secret(void *ctx, const kc_keyidx *ki, const uint8_t secret[KC_SECRET_BYTES],
                        double birth, bool can_encrypt)
{
    root_data *d = ctx;
    if (kc_keyidx_equal(ki, &d->ki))
        memcpy(d->secret, secret, KC_SECRET_BYTES);
}

static void produce_data(kc_node *p, root_data *d, const char *root)
{
    *d = (root_data){.wire = KC_BUF_INIT};
    snprintf(d->root, sizeof d->root, "%s", root);
    snprintf(d->topic, sizeof d->topic, "%s.data", root);
    snprintf(d->reqs, sizeof d->reqs, "%s.reqs", root);
    snprintf(d->keys, sizeof d->keys, "%s.keys", root);
    assert_int_equal(kc_serde_serialize(kc_node_serde(p), KC_KIND_VALUE, d->topic,
                                       (const uint8_t *)d->root, strlen(d->root), &d->wire, NULL),
                     KC_OK);
    assert_int_equal(kc_serde_producer_state(kc_node_serde(p), root, KC_KIND_VALUE, &d->ki, NULL),
                     KC_OK);
    assert_int_equal(kc_serde_find_pgens(kc_node_serde(p), root, &d->ki, 1, keep_secret, d),
                     KC_OK);
}

static kc_node *open_node(const char *config)
{
    static kc_tunables t;
    kc_tunables_init(&t);
    /* no second request round within the test: a lost reply stays lost */
    assert_int_equal(kc_tunables_set_number(&t, "crypto_sub_interval", 30, KC_SOURCE_SETTINGS,
                                            "test", NULL), KC_OK);
    kc_node_options o;
    kc_node_options_init(&o);
    o.config_path = config;
    o.tunables = &t;
    o.key_wait_interval = 0.01;
    kc_node *n = NULL;
    kc_err err = {0};
    if (kc_node_open(&n, &o, &err) != KC_OK)
        fail_msg("cannot open %s: %s", config, err.msg);
    return n;
}

/* One deserialization: whether it decrypted to d's root name. */
static bool decrypts(kc_node *c, const root_data *d)
{
    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(kc_node_serde(c), KC_KIND_VALUE, d->topic,
                                          d->wire.data, d->wire.len, m, NULL), KC_OK);
    const uint8_t *p;
    size_t n;
    bool ok = kc_message_get(m, false, &p, &n, NULL) == KC_OK;
    if (ok) {
        assert_int_equal(n, strlen(d->root));
        assert_memory_equal(p, d->root, n);
    }
    kc_message_free(m);
    return ok;
}

/* The consumer's next request for d's root, read from <root>.reqs. */
static kc_record *next_request(kc_consumer *reqs, const root_data *d)
{
    const char *topic = d->reqs;
    kc_topic_partition tp = {topic, 0, KC_OFFSET_BEGINNING};
    assert_int_equal(kc_consumer_assign(reqs, &tp, 1, NULL), KC_OK);
    for (double end = tc_mono() + WAIT; tc_mono() < end;) {
        kc_record *r = NULL;
        assert_int_equal(kc_consumer_poll(reqs, 100, &r, NULL), KC_OK);
        if (r && !r->eof && r->value && strcmp(r->topic, topic) == 0)
            return r;
        kc_record_free(r);
    }
    fail_msg("no key request on %s", topic);
    return NULL;
}

/* What the root's producer would send: one reply, to <root>.keys. */
static void reply(kc_producer *keys, tc_party *replier, const root_data *d, const kc_record *req)
{
    kc_exchange_keys sel = {0};
    kc_exchange_msgs out = {0};
    kc_buf msgkey = KC_BUF_INIT;
    kc_err err = {0};
    assert_int_equal(kc_exchange_keys_add(&sel, &d->ki, d->secret), KC_OK);
    kc_exchange_msgkey_build(&d->ki, 1, &msgkey);
    if (kc_exchange_encrypt_keys(replier->x, d->root, &sel, req->value, req->value_len, &out,
                                 &err) != KC_OK)
        fail_msg("reply for %s: %s", d->root, err.msg);
    assert_true(out.n >= 1);
    assert_int_equal(kc_producer_send(keys, d->keys, 0, msgkey.data, msgkey.len,
                                      out.items[0].value.data, out.items[0].value.len, NULL,
                                      NULL), KC_OK);
    assert_int_equal(kc_producer_flush(keys, 5000, NULL), KC_OK);
    kc_exchange_keys_clear(&sel);
    kc_exchange_msgs_clear(&out);
    kc_buf_free(&msgkey);
}

static void test_a_reply_is_read_though_another_root_joins_before(void **state)
{
    /* the data of every root, then its producer is gone: the test answers */
    char *pcfg = tc_node_dir(tc_dir, "prod", KC_ROLE_PRODUCER, NULL, &pki, &pki);
    char *ccfg = tc_node_dir(tc_dir, "cons", KC_ROLE_CONSUMER, NULL, &pki, &pki);
    kc_node *p = open_node(pcfg);
    root_data asked[ROUNDS], joining[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        char root[16];
        snprintf(root, sizeof root, "kta%d", i);
        produce_data(p, &asked[i], root);
        snprintf(root, sizeof root, "ktb%d", i);
        produce_data(p, &joining[i], root);
    }
    kc_node_close(p);
    tc_party replier;
    tc_party_make(&replier, &pki, "keytopics replier",
                  &(tc_party_options){.role = KC_ROLE_PRODUCER});
    kc_kafka_config conf;
    kc_kafka_config_init(&conf);
    kc_consumer *reqs;
    kc_producer *keys;
    assert_int_equal(kc_consumer_new(&reqs, &conf, NULL), KC_OK);
    assert_int_equal(kc_producer_new(&keys, &conf, 0, NULL), KC_OK);

    kc_node *c = open_node(ccfg);
    for (int i = 0; i < ROUNDS; i++) {
        assert_false(decrypts(c, &asked[i]));   /* asks for the key */
        kc_record *req = next_request(reqs, &asked[i]);
        reply(keys, &replier, &asked[i], req);
        kc_record_free(req);
        assert_false(decrypts(c, &joining[i])); /* another key topic, at once */
        bool ok = false;
        for (double end = tc_mono() + WAIT; !ok && tc_mono() < end; usleep(20000))
            ok = decrypts(c, &asked[i]);
        if (!ok)
            fail_msg("round %d: the reply to %s was not read", i + 1, asked[i].root);
    }
    kc_node_stats st;
    kc_node_get_stats(c, &st);
    assert_int_equal(st.keys_received, ROUNDS);
    kc_node_close(c);

    kc_consumer_close(reqs);
    kc_producer_close(keys, 1000);
    kc_kafka_config_clear(&conf);
    tc_party_free(&replier);
    for (int i = 0; i < ROUNDS; i++) {
        kc_buf_free(&asked[i].wire);
        kc_buf_free(&joining[i].wire);
    }
    free(pcfg);
    free(ccfg);
}

static void test_a_rebuild_looks_up_only_new_topics(void **state)
{
    char *ccfg = tc_node_dir(tc_dir, "counting", KC_ROLE_CONSUMER, NULL, &pki, &pki);
    kc_log_set_sink(sink, NULL);
    kc_log_set_level(KC_LOG_DEBUG);
    kc_node *c = open_node(ccfg);
    /* one root after the other, each in its own rebuild: the next root
     * comes once the last one's request went out (after its rebuild) */
    for (int i = 0; i < ROUNDS; i++) {
        char topic[32];
        snprintf(topic, sizeof topic, "ktc%d.data", i);
        uint8_t wire[TC_MADE_UP_BYTES];
        tc_made_up_message(wire);
        kc_message *m = kc_message_new();
        assert_int_equal(kc_serde_deserialize(kc_node_serde(c), KC_KIND_VALUE, topic, wire,
                                              sizeof wire, m, NULL), KC_OK);
        assert_false(kc_message_is_cleartext(m, false));
        kc_message_free(m);
        kc_node_stats st = {0};
        for (double end = tc_mono() + WAIT; st.requests_sent < (uint64_t)i + 1 && tc_mono() < end;
             usleep(10000))
            kc_node_get_stats(c, &st);
        assert_int_equal(st.requests_sent, i + 1);
    }
    kc_node_close(c);
    kc_log_set_sink(NULL, NULL);
    kc_log_set_level(KC_LOG_CRITICAL);

    /* the 3 management topics and each root's key topic, once each (every
     * rebuild used to count every tracked topic again) */
    pthread_mutex_lock(&looked.mu);
    assert_int_equal(looked.n, 3 + ROUNDS);
    for (int i = 0; i < looked.n; i++)
        if (looked.times[i] != 1)
            fail_msg("%s looked up %d times", looked.topic[i], looked.times[i]);
    pthread_mutex_unlock(&looked.mu);
    free(ccfg);
}

int main(void)
{
    kc_init();
    tc_pki_init(&pki, "keytopics test rot", "keytopics test provisioner");
    kc_log_set_level(KC_LOG_CRITICAL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_reply_is_read_though_another_root_joins_before),
        cmocka_unit_test(test_a_rebuild_looks_up_only_new_topics),
    };
    int rc = cmocka_run_group_tests(tests, tc_setup_dir, tc_teardown_dir);
    kc_broker_embedded_stop();
    tc_pki_clear(&pki);
    return rc;
}
