/* Hostile input on every key-passing topic: nodes on the embedded broker
 * meet garbage, truncated, wrongly typed, wrongly shaped, oversized,
 * wrongly signed and replayed messages, written by a raw librdkafka
 * producer to every partition of <root>.subs, <root>.reqs, <root>.keys,
 * chains, allowlist and denylist. Nothing crashes, the refusals are
 * counted, nothing changes (lists, own chain, keys, node files), and a
 * legitimate key exchange still works afterwards.
 *
 * Phase A targets a producer (it reads .reqs), phase B a consumer waiting
 * for a key (it reads .keys) while no producer is up, phase C brings the
 * producer back: the consumer gets its key, and a replay of the whole
 * .keys topic is refused. Every node reads the three management topics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kc_broker.h"
#include "kc_cryptokey.h"
#include "kc_exchange.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_node.h"
#include "kc_provision_node.h"
#include "kc_serde.h"
#include "kc_test.h"
#include "kc_test_fixture.h"
#include "kc_test_node.h"
#include "kc_tunables.h"

#define ROOT "mal"
#define DATA_TOPIC ROOT ".data"
#define KEY_TOPIC_PARTITIONS 3
#define OVERSIZED (512 * 1024)

#define KEY_WAIT 0.05   /* s a deserializer waits per try for a missing key */

static kc_tunables tun;
static rd_kafka_t *raw;   /* the attacker's producer */

/* ---- nodes -------------------------------------------------------------------------- */

static char *provision(const char *node, kc_role role, const char *rot_password)
{
    return tc_provision(tc_dir, node, role, rot_password, 1);
}

/* The bytes of a node's first signing key, as the chains topic keys them. */
static kc_buf signing_key(const char *node)
{
    char name[64];
    snprintf(name, sizeof name, "%s.crypto", node);
    char *path = tc_path(tc_dir, name);
    kc_cryptokey *ck;
    kc_key spk;
    kc_buf out = KC_BUF_INIT;
    assert_int_equal(kc_cryptokey_open(&ck, path, NULL, 0, NULL), KC_OK);
    assert_int_equal(kc_cryptokey_get_spk(ck, 0, &spk, NULL), KC_OK);
    assert_int_equal(kc_key_bytes(&spk, &out), KC_OK);
    kc_key_clear(&spk);
    kc_cryptokey_close(ck);
    free(path);
    return out;
}

static void pgen_count(void *ctx, const kc_keyidx *ki, const uint8_t secret[KC_SECRET_BYTES],
                       double birth, bool can_encrypt)
{
    (*(size_t *)ctx)++;
}

/* What must not change in a node under attack. */
typedef struct snapshot {
    size_t allow, deny, pgens;
    kc_buf chain, config;
    kc_node_stats stats;
} snapshot;

static void take(kc_node *n, const char *config, snapshot *s)
{
    memset(s, 0, sizeof *s);
    kc_exchange *x = kc_node_exchange(n);
    s->allow = kc_exchange_list_size(x, KC_LIST_ALLOW);
    s->deny = kc_exchange_list_size(x, KC_LIST_DENY);
    kc_serde_foreach_pgen(kc_node_serde(n), ROOT, pgen_count, &s->pgens);
    assert_int_equal(kc_exchange_own_chain(x, 0, &s->chain), KC_OK);
    s->config = tc_read_file(config);
    kc_node_get_stats(n, &s->stats);
}

static void assert_unchanged(kc_node *n, const char *config, const snapshot *before)
{
    snapshot now;
    take(n, config, &now);
    assert_int_equal(now.allow, before->allow);
    assert_int_equal(now.deny, before->deny);
    assert_int_equal(now.pgens, before->pgens);
    assert_int_equal(now.chain.len, before->chain.len);
    assert_memory_equal(now.chain.data, before->chain.data, now.chain.len);
    assert_int_equal(now.config.len, before->config.len);
    assert_memory_equal(now.config.data, before->config.data, now.config.len);
    assert_int_equal(now.stats.replies_sent, before->stats.replies_sent);
    assert_int_equal(now.stats.keys_received, before->stats.keys_received);
    assert_int_equal(now.stats.chains_adopted, before->stats.chains_adopted);
    assert_int_equal(now.stats.list_entries_added, before->stats.list_entries_added);
    kc_buf_free(&now.chain);
    kc_buf_free(&now.config);
}

static void snapshot_free(snapshot *s)
{
    kc_buf_free(&s->chain);
    kc_buf_free(&s->config);
}

static uint64_t refused(kc_node *n)
{
    kc_node_stats s;
    kc_node_get_stats(n, &s);
    return s.refused;
}

/* Waits until the node has refused `want` messages in all, and checks a
 * little later that it stays there. */
static void wait_refused(kc_node *n, uint64_t want)
{
    for (int i = 0; i < 300 && refused(n) < want; i++)
        usleep(100000);
    if (refused(n) < want)
        print_message("refused %llu, expected at least %llu\n",
                      (unsigned long long)refused(n), (unsigned long long)want);
    assert_true(refused(n) >= want);
    usleep(500000);
    assert_int_equal(refused(n), want); /* each refused once, nothing else */
}

/* Waits until the node has refused nothing new for a second (a backlog on
 * the management topics it reads from the beginning is done). */
static void wait_quiet(kc_node *n)
{
    uint64_t last = refused(n);
    for (int i = 0, still = 0; i < 300 && still < 10; i++) {
        usleep(100000);
        uint64_t now = refused(n);
        still = now == last ? still + 1 : 0;
        last = now;
    }
}

/* ---- the attacker ---------------------------------------------------------------------- */

static void inject(const char *topic, int32_t partition, const void *key, size_t klen,
                   const void *value, size_t vlen)
{
    rd_kafka_resp_err_t e = rd_kafka_producev(
        raw, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY((void *)key, klen),
        RD_KAFKA_V_VALUE((void *)value, vlen), RD_KAFKA_V_END);
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void flush_raw(void)
{
    assert_int_equal(rd_kafka_flush(raw, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* Hostile (key, value) pairs; `key` is a well-formed Kafka key for the
 * topic (a msgkey naming a real key index, or the target's signing key) so
 * that the value is examined too, `signed_value` a well-formed message
 * signed by a root the nodes do not trust. Each pair goes to the next
 * partition in turn. Returns how many were sent; *keyed_values counts
 * those with `key` and a value (not null). */
static int inject_all(const char *topic, int partitions, const kc_buf *key,
                      const kc_buf *signed_value, int *keyed_values)
{
    uint8_t garbage[300], big[64];
    randombytes_buf(garbage, sizeof garbage);
    uint8_t *oversized = malloc(OVERSIZED);
    assert_non_null(oversized);
    /* array32 claiming 2^32-1 elements, then bin32 claiming 4 GiB, then filler */
    memset(oversized, 0xc4, OVERSIZED);
    memcpy(oversized, "\xdd\xff\xff\xff\xff\xc6\xff\xff\xff\xff", 10);
    memcpy(big, "\x93\xc6\xff\xff\xff\xf0\x01\x02", 8);
    static const uint8_t
        wrong_type_int[] = {0x05},                                /* 5 */
        wrong_type_map[] = {0x81, 0xa1, 'k', 0xa1, 'v'},           /* {"k": "v"} */
        wrong_type_str[] = {0xa5, 'h', 'e', 'l', 'l', 'o'},        /* "hello" */
        wrong_shape_3bin[] = {0x93, 0xc4, 0x01, 'x', 0xc4, 0x01, 'y', 0xc4, 0x01, 'z'},
        wrong_shape_nested[] = {0x92, 0x92, 0x01, 0x02, 0x92, 0x03, 0x90},
        wrong_shape_empty[] = {0x90},
        trailing[] = {0x91, 0xc4, 0x01, 'x', 0xff, 0xff},        /* valid, then junk */
        nil[] = {0xc0};
    struct { const void *p; size_t n; } values[] = {
        {NULL, 0},
        {"", 0},
        {garbage, sizeof garbage},
        {wrong_type_int, sizeof wrong_type_int},
        {wrong_type_map, sizeof wrong_type_map},
        {wrong_type_str, sizeof wrong_type_str},
        {nil, sizeof nil},
        {wrong_shape_3bin, sizeof wrong_shape_3bin},
        {wrong_shape_nested, sizeof wrong_shape_nested},
        {wrong_shape_empty, sizeof wrong_shape_empty},
        {trailing, sizeof trailing},
        {big, 8},
        {oversized, OVERSIZED},
        {signed_value->data, signed_value->len / 2},  /* truncated */
        {signed_value->data, signed_value->len - 1},  /* one byte short */
        {signed_value->data, signed_value->len},      /* wrongly signed */
        {signed_value->data, signed_value->len},      /* ... and replayed */
    };
    size_t nv = sizeof values / sizeof values[0];
    int k = 0;
    *keyed_values = 0;
    /* hostile keys with a well-formed value */
    inject(topic, k++ % partitions, NULL, 0, signed_value->data, signed_value->len);
    inject(topic, k++ % partitions, garbage, 40, signed_value->data, signed_value->len);
    inject(topic, k++ % partitions, wrong_type_map, sizeof wrong_type_map, signed_value->data,
           signed_value->len);
    inject(topic, k++ % partitions, oversized, 100000, signed_value->data, signed_value->len);
    /* hostile values, without a key and with a well-formed one */
    for (size_t i = 0; i < nv; i++) {
        inject(topic, k++ % partitions, NULL, 0, values[i].p, values[i].n);
        inject(topic, k++ % partitions, key->data, key->len, values[i].p, values[i].n);
        *keyed_values += values[i].p != NULL;
    }
    flush_raw();
    free(oversized);
    return k;
}

/* Re-sends every message now in topic (all partitions) as it is. */
static int replay_topic(const char *topic, int partitions)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       kc_broker_bootstrap(kc_broker_embedded_get()), errstr,
                                       sizeof errstr), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", "malformed-replayer", errstr,
                                       sizeof errstr), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "fetch.wait.max.ms", "20", errstr, sizeof errstr),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    assert_non_null(c);
    rd_kafka_topic_partition_list_t *tps = rd_kafka_topic_partition_list_new(partitions);
    int64_t total = 0;
    for (int p = 0; p < partitions; p++) {
        int64_t lo, hi;
        assert_int_equal(rd_kafka_query_watermark_offsets(c, topic, p, &lo, &hi, 5000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        total += hi - lo;
        rd_kafka_topic_partition_list_add(tps, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    assert_int_equal(rd_kafka_assign(c, tps), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(tps);
    int64_t got = 0;
    for (int i = 0; i < 300 && got < total; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m)
            continue;
        if (!m->err) {
            inject(topic, m->partition, m->key, m->key_len, m->payload, m->len);
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(got, total);
    flush_raw();
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return (int)total;
}

/* ---- the test ------------------------------------------------------------------------- */

static void undecryptable(kc_node *c, const kc_buf *wire)
{
    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(kc_node_serde(c), KC_KIND_VALUE, DATA_TOPIC, wire->data,
                                          wire->len, m, NULL), KC_OK);
    assert_false(kc_message_is_cleartext(m, false));
    assert_true(kc_message_is_possibly_decryptable(m));
    kc_message_free(m);
}

static bool decrypts_within(kc_node *c, const kc_buf *wire, double seconds)
{
    kc_message *m = kc_message_new();
    bool ok = false;
    for (int i = 0; i < (int)(seconds * 10) && !ok; i++) {
        assert_int_equal(kc_serde_deserialize(kc_node_serde(c), KC_KIND_VALUE, DATA_TOPIC,
                                              wire->data, wire->len, m, NULL), KC_OK);
        ok = kc_message_is_cleartext(m, false);
        if (!ok)
            usleep(100000);
    }
    kc_message_free(m);
    return ok;
}

static void test_hostile_messages_on_every_key_passing_topic(void **state)
{
    kc_broker *b;
    assert_int_equal(kc_broker_embedded(&b, NULL), KC_OK);
    char subs[2 * KC_TOPIC_NAME_MAX], reqs[2 * KC_TOPIC_NAME_MAX], keys[2 * KC_TOPIC_NAME_MAX];
    snprintf(subs, sizeof subs, ROOT "%s", tun.topic_suffix_subs);
    snprintf(reqs, sizeof reqs, ROOT "%s", tun.topic_suffix_reqs);
    snprintf(keys, sizeof keys, ROOT "%s", tun.topic_suffix_keys);
    /* several partitions: nodes read them all (an existing topic is kept) */
    const char *key_topics[] = {subs, reqs, keys};
    for (int i = 0; i < 3; i++)
        assert_int_equal(kc_broker_create_topic(b, key_topics[i], KEY_TOPIC_PARTITIONS, NULL),
                         KC_OK);
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", kc_broker_bootstrap(b), errstr,
                                       sizeof errstr), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "linger.ms", "1", errstr, sizeof errstr),
                     RD_KAFKA_CONF_OK);
    raw = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    assert_non_null(raw);

    char *pcfg = provision("prod", KC_ROLE_PRODUCER, "the root password");
    char *ccfg = provision("cons", KC_ROLE_CONSUMER, "the root password");
    char *rcfg = provision("rogue", KC_ROLE_PRODCON, "another root password");
    kc_buf pspk = signing_key("prod"), cspk = signing_key("cons");

    /* The rogue's well-formed, wrongly signed messages: its request, its
     * reply to that request, and its chain. */
    kc_node *r = tc_open_node(rcfg, KEY_WAIT);
    kc_exchange *rx = kc_node_exchange(r);
    kc_exchange_msgs rreq = {0}, rreply = {0};
    assert_int_equal(kc_exchange_signed_epks(rx, ROOT, &rreq, NULL), KC_OK);
    assert_true(rreq.n >= 1);
    kc_buf rchain = KC_BUF_INIT;
    assert_int_equal(kc_exchange_own_chain(rx, 0, &rchain), KC_OK);
    assert_true(rchain.len > 0);

    /* Phase A: a producer with a key for ROOT reads .reqs. */
    kc_node *p = tc_open_node(pcfg, KEY_WAIT);
    kc_buf wire = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(kc_node_serde(p), KC_KIND_VALUE, DATA_TOPIC,
                                        (const uint8_t *)"secret", 6, &wire, NULL), KC_OK);
    kc_keyidx ki;
    uint8_t salt[KC_KEYGEN_SALTBYTES];
    assert_int_equal(kc_serde_producer_state(kc_node_serde(p), ROOT, KC_KIND_VALUE, &ki, salt),
                     KC_OK);
    kc_buf msgkey = KC_BUF_INIT;
    assert_int_equal(kc_exchange_msgkey_build(&ki, 1, &msgkey), KC_OK);
    kc_exchange_keys fake = {0};
    uint8_t fake_secret[KC_SECRET_BYTES];
    randombytes_buf(fake_secret, sizeof fake_secret);
    assert_int_equal(kc_exchange_keys_add(&fake, &ki, fake_secret), KC_OK);
    assert_int_equal(kc_exchange_encrypt_keys(rx, ROOT, &fake, rreq.items[0].value.data,
                                              rreq.items[0].value.len, &rreply, NULL), KC_OK);
    assert_true(rreply.n >= 1);
    kc_node_persist(p, NULL);
    wait_quiet(p);
    snapshot pa;
    take(p, pcfg, &pa);

    /* Refused: every message on .reqs, allowlist and denylist; on chains,
     * those for the producer's key (a chain for another key is not ours to
     * judge). Nodes do not read .subs (controllers do). */
    int keyed, unused;
    uint64_t want = pa.stats.refused;
    want += (uint64_t)inject_all(reqs, KEY_TOPIC_PARTITIONS, &msgkey, &rreq.items[0].value,
                                 &unused);
    inject_all(subs, KEY_TOPIC_PARTITIONS, &msgkey, &rreq.items[0].value, &unused);
    inject_all(tun.mgmt_topic_chains, 1, &pspk, &rchain, &keyed);
    want += (uint64_t)keyed;
    want += (uint64_t)inject_all(tun.mgmt_topic_allowlist, 1, &pspk, &rchain, &unused);
    want += (uint64_t)inject_all(tun.mgmt_topic_denylist, 1, &pspk, &rchain, &unused);
    wait_refused(p, want);
    assert_unchanged(p, pcfg, &pa);
    snapshot_free(&pa);
    kc_node_close(p);

    /* Phase B: a consumer waiting for that key, no producer up, reads .keys
     * (and the management topics from the beginning). */
    kc_node *c = tc_open_node(ccfg, KEY_WAIT);
    undecryptable(c, &wire);
    for (int i = 0; i < 100; i++) {
        kc_node_stats s;
        kc_node_get_stats(c, &s);
        if (s.requests_sent > 0)
            break;
        usleep(100000);
    }
    wait_quiet(c);
    snapshot cb;
    take(c, ccfg, &cb);
    assert_true(cb.stats.requests_sent >= 1);
    want = cb.stats.refused;
    int n_keys = inject_all(keys, KEY_TOPIC_PARTITIONS, &msgkey, &rreply.items[0].value,
                            &unused);
    want += (uint64_t)n_keys;
    inject_all(tun.mgmt_topic_chains, 1, &cspk, &rchain, &keyed);
    want += (uint64_t)keyed;
    wait_refused(c, want);
    assert_unchanged(c, ccfg, &cb);
    undecryptable(c, &wire);

    /* Phase C: the producer is back and answers; a replay of everything on
     * .keys (the real reply included) is refused and delivers nothing. */
    p = tc_open_node(pcfg, KEY_WAIT);
    /* a reopened producer listens on .reqs of every root it holds keys for
     * from open (spec D2); it produces on the root too */
    kc_buf wire2 = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(kc_node_serde(p), KC_KIND_VALUE, DATA_TOPIC,
                                        (const uint8_t *)"more", 4, &wire2, NULL), KC_OK);
    kc_buf_free(&wire2);
    assert_true(decrypts_within(c, &wire, 20));
    kc_node_stats cs, ps;
    kc_node_get_stats(c, &cs);
    assert_true(cs.keys_received >= 1);
    snapshot_free(&cb);
    /* each reply's second copy (D3) is out about a second after it */
    for (int i = 0; i < 200; i++) {
        kc_node_get_stats(p, &ps);
        if (ps.replies_sent_again >= ps.replies_sent)
            break;
        usleep(50 * 1000);
    }
    assert_int_equal(ps.replies_sent_again, ps.replies_sent);
    wait_quiet(c);
    take(c, ccfg, &cb);
    int n_replayed = replay_topic(keys, KEY_TOPIC_PARTITIONS);
    kc_node_get_stats(p, &ps);
    /* the injected messages and the real replies, each sent twice */
    assert_int_equal(n_replayed, n_keys + (int)(ps.replies_sent + ps.replies_sent_again));
    wait_refused(c, cb.stats.refused + (uint64_t)n_replayed);
    assert_unchanged(c, ccfg, &cb);
    assert_true(decrypts_within(c, &wire, 1));

    snapshot_free(&cb);
    kc_node_close(c);
    kc_node_close(p);
    kc_node_close(r);
    rd_kafka_destroy(raw);
    kc_exchange_msgs_clear(&rreq);
    kc_exchange_msgs_clear(&rreply);
    kc_exchange_keys_clear(&fake);
    kc_buf *bufs[] = {&pspk, &cspk, &rchain, &wire, &msgkey};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        kc_buf_free(bufs[i]);
    free(pcfg);
    free(ccfg);
    free(rcfg);
}

int main(void)
{
    kc_init();
    kc_tunables_init(&tun);
    if (getenv("KC_TEST_LOG"))
        kc_log_set_level(KC_LOG_INFO);
    else
        kc_log_set_level(KC_LOG_CRITICAL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_messages_on_every_key_passing_topic),
    };
    int rc = cmocka_run_group_tests(tests, tc_setup_dir, tc_teardown_dir);
    kc_broker_embedded_stop();
    return rc;
}
