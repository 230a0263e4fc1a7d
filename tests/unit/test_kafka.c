/* Kafka glue: option names, producer/consumer round trips through the
 * in-process broker, the fixed-port relay, key topics with one partition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "kc_broker.h"
#include "kc_kafka.h"
#include "kc_log.h"

/* ---- captured log lines -------------------------------------------------- */

static char logged[8192];

static void capture(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s:%s:%s\n", kc_log_level_name(level), logger, msg);
}

/* ---- option names (spec §10.5) --------------------------------------------- */

static void test_option_names(void **state)
{
    const char *to;
    assert_int_equal(kc_kafka_option_kind("bootstrap_servers", KC_KAFKA_PRODUCER, &to),
                     KC_KOPT_RENAMED);
    assert_string_equal(to, "bootstrap.servers");
    assert_int_equal(kc_kafka_option_kind("linger_ms", KC_KAFKA_PRODUCER, &to), KC_KOPT_RENAMED);
    assert_string_equal(to, "queue.buffering.max.ms");
    assert_int_equal(kc_kafka_option_kind("receive_buffer_bytes", KC_KAFKA_CONSUMER, &to),
                     KC_KOPT_RENAMED);
    assert_string_equal(to, "socket.receive.buffer.bytes");
    /* one librdkafka property, two kafka-python names depending on the client */
    assert_int_equal(kc_kafka_option_kind("max_partition_fetch_bytes", KC_KAFKA_CONSUMER, &to),
                     KC_KOPT_RENAMED);
    assert_string_equal(to, "message.max.bytes");
    assert_int_equal(kc_kafka_option_kind("max_request_size", KC_KAFKA_PRODUCER, &to),
                     KC_KOPT_RENAMED);
    assert_string_equal(to, "message.max.bytes");
    /* the wrapper maps per client kind: other kinds pass names through */
    assert_int_equal(kc_kafka_option_kind("max_request_size", KC_KAFKA_CONSUMER, &to),
                     KC_KOPT_PASS);
    assert_int_equal(kc_kafka_option_kind("fetch_max_wait_ms", KC_KAFKA_PRODUCER, &to),
                     KC_KOPT_PASS);
    assert_int_equal(kc_kafka_option_kind("socket.timeout.ms", KC_KAFKA_CONSUMER, &to),
                     KC_KOPT_PASS);
    assert_string_equal(to, "socket.timeout.ms");
    assert_int_equal(kc_kafka_option_kind("api_version", KC_KAFKA_CONSUMER, &to), KC_KOPT_IGNORED);
    assert_null(to);
    assert_int_equal(kc_kafka_option_kind("batch_size", KC_KAFKA_PRODUCER, NULL), KC_KOPT_IGNORED);
    assert_int_equal(kc_kafka_option_kind("batch_size", KC_KAFKA_CONSUMER, NULL), KC_KOPT_PASS);
    assert_int_equal(kc_kafka_option_kind("produce_timeout", KC_KAFKA_PRODUCER, NULL),
                     KC_KOPT_LOCAL);
    assert_int_equal(kc_kafka_option_kind("max_poll_records", KC_KAFKA_CONSUMER, NULL),
                     KC_KOPT_LOCAL);
    assert_true(kc_kafka_option_secret("sasl_plain_password"));
    assert_false(kc_kafka_option_secret("client_id"));
}

#define CSET(c, n, v) kc_kafka_config_set(c, KC_KAFKA_CONSUMER, n, v, "t", &err)
#define PSET(c, n, v) kc_kafka_config_set(c, KC_KAFKA_PRODUCER, n, v, "t", &err)

static void test_config_set(void **state)
{
    kc_kafka_config c;
    kc_err err;
    kc_kafka_config_init(&c);
    assert_int_equal(CSET(&c, "enable_auto_commit", "False"), KC_OK);
    assert_string_equal(kc_kafka_config_get(&c, "enable.auto.commit"), "false");
    assert_int_equal(CSET(&c, "group_id", "g1"), KC_OK);
    assert_int_equal(CSET(&c, "group.id", "g2"), KC_OK);
    assert_string_equal(kc_kafka_config_get(&c, "group.id"), "g2");   /* last one wins */
    assert_int_equal(c.n, 2);

    logged[0] = '\0';
    kc_log_set_sink(capture, NULL);
    kc_log_set_level(KC_LOG_INFO); /* an empty parameter removed is said at INFO */
    assert_int_equal(CSET(&c, "ssl_check_hostname", "True"), KC_OK);
    assert_int_equal(CSET(&c, "sasl_oauth_token_provider", "x"), KC_OK);
    assert_int_equal(CSET(&c, "client_id", ""), KC_OK);
    kc_log_set_sink(NULL, NULL);
    kc_log_set_level(KC_LOG_WARNING);
    assert_non_null(strstr(logged, "WARNING:kafkacrypto.confluent_kafka_wrapper:Warning: "
                                   "Unsupported kafka-python parameter passed to confluent "
                                   "wrapper: ssl_check_hostname, True"));
    assert_non_null(strstr(logged, "Warning: Removing empty parameter client.id passed to "
                                   "confluent wrapper"));
    assert_null(kc_kafka_config_get(&c, "client.id"));
    assert_int_equal(c.n, 2);

    assert_int_equal(CSET(&c, "max_poll_records", "20"), KC_OK);
    assert_int_equal(c.max_poll_records, 20);
    /* the producer's options are not for consumers: skipped, not passed on */
    assert_int_equal(CSET(&c, "produce_timeout", "soon"), KC_OK);
    assert_int_equal(CSET(&c, "linger_ms", "5"), KC_OK);
    assert_int_equal(c.n, 2);
    kc_kafka_config cp;
    assert_int_equal(kc_kafka_config_copy(&cp, &c), KC_OK);
    assert_int_equal(cp.n, 2);
    assert_int_equal(cp.max_poll_records, 20);
    assert_string_equal(kc_kafka_config_get(&cp, "group.id"), "g2");
    kc_kafka_config_clear(&cp);
    kc_kafka_config_clear(&c);

    /* a producer has no group (upstream's get_kafka_config drops it) */
    kc_kafka_config_init(&c);
    assert_int_equal(PSET(&c, "group_id", "g"), KC_OK);
    assert_int_equal(PSET(&c, "produce_timeout", "1.5"), KC_OK);
    assert_int_equal(PSET(&c, "max_poll_records", "3"), KC_OK);
    assert_int_equal(PSET(&c, "session_timeout_ms", "3000"), KC_OK);   /* consumers' */
    assert_int_equal(c.n, 0);
    assert_int_equal(PSET(&c, "no_such_name", "1"), KC_OK);   /* unknown: passed on */
    assert_int_equal(c.n, 1);
    assert_true(c.produce_timeout == 1.5);
    assert_int_equal(kc_kafka_config_set(&c, KC_KAFKA_PRODUCER, "produce_timeout", "soon",
                                         "my.cfg", &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "my.cfg"));
    assert_non_null(strstr(err.msg, "produce_timeout"));
    kc_kafka_config_clear(&c);
}

/* ---- round trips ---------------------------------------------------------- */

static kc_broker *broker;

static void confs(kc_kafka_config *p, kc_kafka_config *c, const char *bootstrap)
{
    kc_err err;
    kc_kafka_config_init(p);
    kc_kafka_config_init(c);
    if (bootstrap) {
        assert_int_equal(PSET(p, "bootstrap_servers", bootstrap), KC_OK);
        assert_int_equal(CSET(c, "bootstrap_servers", bootstrap), KC_OK);
    }
    assert_int_equal(PSET(p, "linger_ms", "1"), KC_OK);
    assert_int_equal(CSET(c, "fetch_max_wait_ms", "50"), KC_OK);
}

static kc_record *poll_one(kc_consumer *c)
{
    kc_record *m = NULL;
    kc_err err;
    for (int i = 0; i < 300 && !m; i++)   /* up to 30 s: the machine may be busy */
        assert_int_equal(kc_consumer_poll(c, 100, &m, &err), KC_OK);
    assert_non_null(m);
    return m;
}

static void round_trip(const char *bootstrap, const char *topic)
{
    kc_kafka_config pc, cc;
    kc_err err;
    confs(&pc, &cc, bootstrap);
    kc_producer *p;
    kc_consumer *c;
    assert_int_equal(kc_producer_new(&p, &pc, 1, &err), KC_OK);
    assert_int_equal(kc_consumer_new(&c, &cc, &err), KC_OK);

    uint64_t seq[3];
    assert_int_equal(kc_producer_send(p, topic, 0, "k1", 2, "v1", 2, &seq[0], &err), KC_OK);
    assert_int_equal(kc_producer_send(p, topic, 0, NULL, 0, "", 0, &seq[1], &err), KC_OK);
    assert_int_equal(kc_producer_send(p, topic, 0, "", 0, NULL, 0, &seq[2], &err), KC_OK);
    assert_true(seq[0] < seq[1] && seq[1] < seq[2]);
    assert_int_equal(kc_producer_flush(p, 30000, &err), KC_OK);

    kc_delivery d;
    for (int i = 0; i < 3; i++) {
        assert_true(kc_producer_next_delivery(p, &d));
        assert_int_equal(d.seq, seq[i]);
        assert_string_equal(d.topic, topic);
        assert_int_equal(d.status, KC_OK);
        assert_int_equal(d.offset, i);
        kc_delivery_clear(&d);
    }
    assert_false(kc_producer_next_delivery(p, &d));
    kc_producer_stats stats;
    kc_producer_get_stats(p, &stats);
    assert_int_equal(stats.sent, 3);
    assert_int_equal(stats.delivered, 3);

    kc_topic_partition tp = {topic, 0, KC_OFFSET_BEGINNING};
    assert_int_equal(kc_consumer_assign(c, &tp, 1, &err), KC_OK);
    kc_record *m = poll_one(c);
    assert_string_equal(m->topic, topic);
    assert_int_equal(m->partition, 0);
    assert_int_equal(m->offset, 0);
    assert_memory_equal(m->key, "k1", 2);
    assert_int_equal(m->value_len, 2);
    assert_memory_equal(m->value, "v1", 2);
    assert_true(m->timestamp_ms > 0);
    kc_record_free(m);
    /* null key, empty value */
    m = poll_one(c);
    assert_null(m->key);
    assert_non_null(m->value);
    assert_int_equal(m->value_len, 0);
    kc_record_free(m);
    /* empty key, null value */
    m = poll_one(c);
    assert_non_null(m->key);
    assert_int_equal(m->key_len, 0);
    assert_null(m->value);
    kc_record_free(m);
    assert_int_equal(kc_consumer_poll(c, 200, &m, &err), KC_OK);
    assert_null(m);

    /* assign from the end: only what is sent afterwards arrives */
    tp.offset = KC_OFFSET_END;
    assert_int_equal(kc_consumer_assign(c, &tp, 1, &err), KC_OK);
    assert_int_equal(kc_consumer_poll(c, 500, &m, &err), KC_OK);
    assert_null(m);
    assert_int_equal(kc_producer_send(p, topic, 0, "k4", 2, "v4", 2, NULL, &err), KC_OK);
    assert_int_equal(kc_producer_flush(p, 30000, &err), KC_OK);
    m = poll_one(c);
    assert_int_equal(m->offset, 3);
    kc_record_free(m);

    kc_consumer_close(c);
    kc_producer_close(p, 5000);
    kc_kafka_config_clear(&pc);
    kc_kafka_config_clear(&cc);
}

static void test_round_trip_started_broker(void **state)
{
    round_trip(kc_broker_bootstrap(broker), "roundtrip");
}

static void test_round_trip_embedded_broker(void **state)
{
    /* no bootstrap.servers: the process's embedded broker */
    assert_null(kc_broker_embedded_get());
    round_trip(NULL, "embedded");
    kc_broker *e = kc_broker_embedded_get();
    assert_non_null(e);
    assert_ptr_not_equal(e, broker);
    kc_broker *again;
    assert_int_equal(kc_broker_embedded(&again, NULL), KC_OK);
    assert_ptr_equal(again, e);
    kc_broker_embedded_stop();
    assert_null(kc_broker_embedded_get());
}

static void test_relay_port(void **state)
{
    int port = -1;
    kc_err err;
    assert_int_equal(kc_broker_listen(broker, 0, &port, &err), KC_OK);
    assert_true(port > 0);
    assert_int_equal(kc_broker_listen(broker, 0, &port, &err), KC_ERR_STATE);
    char bootstrap[64];
    snprintf(bootstrap, sizeof bootstrap, "127.0.0.1:%d", port);
    round_trip(bootstrap, "relayed");
}

static void test_subscribe_regex(void **state)
{
    kc_kafka_config pc, cc;
    kc_err err;
    confs(&pc, &cc, kc_broker_bootstrap(broker));
    assert_int_equal(CSET(&cc, "auto_offset_reset", "earliest"), KC_OK);
    kc_producer *p;
    kc_consumer *c;
    assert_int_equal(kc_producer_new(&p, &pc, 0, &err), KC_OK);
    assert_int_equal(kc_producer_send(p, "regex.a", KC_PARTITION_ANY, NULL, 0, "a", 1, NULL, &err), KC_OK);
    assert_int_equal(kc_producer_send(p, "other.b", KC_PARTITION_ANY, NULL, 0, "b", 1, NULL, &err), KC_OK);
    assert_int_equal(kc_producer_flush(p, 30000, &err), KC_OK);

    assert_int_equal(kc_consumer_new(&c, &cc, &err), KC_OK);
    assert_int_equal(kc_consumer_subscribe(c, NULL, 0, &err), KC_ERR_INVALID);
    const char *topics[] = {"^regex\\..*"};
    assert_int_equal(kc_consumer_subscribe(c, topics, 1, &err), KC_OK);
    kc_record *m = poll_one(c);
    assert_string_equal(m->topic, "regex.a");
    kc_record_free(m);
    assert_int_equal(kc_consumer_poll(c, 300, &m, &err), KC_OK);
    assert_null(m);
    kc_consumer_close(c);
    kc_producer_close(p, 5000);
    kc_kafka_config_clear(&pc);
    kc_kafka_config_clear(&cc);
}

static void test_key_topics_have_one_partition(void **state)
{
    kc_tunables t;
    kc_err err;
    kc_tunables_init(&t);
    assert_int_equal(kc_broker_create_key_topics(broker, &t, "root1", &err), KC_OK);
    /* again: existing topics are fine */
    assert_int_equal(kc_broker_create_key_topics(broker, &t, "root1", &err), KC_OK);
    assert_int_equal(kc_broker_create_topic(broker, "bad topic", 1, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "bad topic"));
    assert_int_equal(kc_broker_create_topic(broker, "four", 0, &err), KC_ERR_INVALID);
    assert_int_equal(kc_broker_create_topic(broker, "four", 4, &err), KC_OK);

    /* Messages without a partition land on partition 0 of a key topic. */
    kc_kafka_config pc, cc;
    confs(&pc, &cc, kc_broker_bootstrap(broker));
    kc_producer *p;
    assert_int_equal(kc_producer_new(&p, &pc, 1, &err), KC_OK);
    const char *names[] = {"root1.subs", "root1.reqs", "root1.keys", "chains", "allowlist",
                           "denylist"};
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 4; k++) {
            char key = (char)('a' + k);
            assert_int_equal(kc_producer_send(p, names[i], KC_PARTITION_ANY, &key, 1, "x", 1,
                                              NULL, &err), KC_OK);
        }
    /* partition 3 exists only in the 4-partition topic */
    assert_int_equal(kc_producer_send(p, "four", 3, NULL, 0, "x", 1, NULL, &err), KC_OK);
    assert_int_equal(kc_producer_send(p, "chains", 3, NULL, 0, "x", 1, NULL, &err), KC_OK);
    kc_producer_flush(p, 30000, &err);
    kc_delivery d;
    int delivered = 0, failed = 0;
    while (kc_producer_next_delivery(p, &d)) {
        if (d.status == KC_OK) {
            delivered++;
            assert_int_equal(d.partition, strcmp(d.topic, "four") == 0 ? 3 : 0);
        } else {
            failed++;
            assert_string_equal(d.topic, "chains");
            assert_true(strlen(d.error) > 0);
        }
        kc_delivery_clear(&d);
    }
    assert_int_equal(delivered, 25);
    assert_int_equal(failed, 1);
    kc_producer_close(p, 5000);
    kc_kafka_config_clear(&pc);
    kc_kafka_config_clear(&cc);
}

static void test_bad_options_name_the_option(void **state)
{
    kc_kafka_config c;
    kc_err err;
    kc_producer *p;
    kc_consumer *k;
    kc_kafka_config_init(&c);
    assert_int_equal(PSET(&c, "bootstrap_servers", kc_broker_bootstrap(broker)), KC_OK);
    assert_int_equal(PSET(&c, "no_such_option", "1"), KC_OK);
    assert_int_equal(kc_producer_new(&p, &c, 0, &err), KC_ERR_INVALID);
    assert_null(p);
    assert_non_null(strstr(err.msg, "no_such_option"));
    kc_kafka_config_clear(&c);

    kc_kafka_config_init(&c);
    assert_int_equal(CSET(&c, "bootstrap_servers", kc_broker_bootstrap(broker)), KC_OK);
    assert_int_equal(CSET(&c, "session_timeout_ms", "many"), KC_OK);
    assert_int_equal(kc_consumer_new(&k, &c, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "session.timeout.ms"));
    kc_kafka_config_clear(&c);
}

static void test_assign_rejects_bad_entries(void **state)
{
    kc_kafka_config c;
    kc_err err;
    kc_consumer *k;
    kc_kafka_config_init(&c);
    assert_int_equal(CSET(&c, "bootstrap_servers", kc_broker_bootstrap(broker)), KC_OK);
    assert_int_equal(kc_consumer_new(&k, &c, &err), KC_OK);
    kc_topic_partition bad[] = {{"t", 0, KC_OFFSET_STORED}, {"t", -1, 0}};
    assert_int_equal(kc_consumer_assign(k, bad, 2, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "entry 2"));
    kc_topic_partition bad_offset = {"t", 0, -7};
    assert_int_equal(kc_consumer_assign(k, &bad_offset, 1, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "t[0]"));
    assert_int_equal(kc_consumer_assign(k, bad, 1, &err), KC_OK);
    kc_consumer_close(k);
    kc_kafka_config_clear(&c);
}

/* The node's key-topic look-ups go through its producer (kc_kafka.h). */
static void test_producer_lookups(void **state)
{
    kc_kafka_config pc, cc;
    kc_err err;
    confs(&pc, &cc, kc_broker_bootstrap(broker));
    kc_producer *p;
    assert_int_equal(kc_producer_new(&p, &pc, 1, &err), KC_OK);
    assert_int_equal(kc_broker_create_topic(broker, "ends", 3, &err), KC_OK);
    int count = 0;
    assert_int_equal(kc_producer_partition_count(p, "ends", 10000, &count, &err), KC_OK);
    assert_int_equal(count, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(kc_producer_send(p, "ends", i < 2 ? 1 : 2, NULL, 0, "x", 1, NULL, &err),
                         KC_OK);
    assert_int_equal(kc_producer_flush(p, 30000, &err), KC_OK);

    kc_topic_partition tps[] = {{"ends", 0, KC_OFFSET_END}, {"ends", 1, KC_OFFSET_END},
                                {"ends", 2, KC_OFFSET_END}};
    assert_int_equal(kc_producer_end_offsets(p, tps, 3, 10000, &err), KC_OK);
    assert_int_equal(tps[0].offset, 0);
    assert_int_equal(tps[1].offset, 2);
    assert_int_equal(tps[2].offset, 1);

    /* a partition the topic lacks, or a bad entry: an error, and nothing changed */
    kc_topic_partition missing[] = {{"ends", 1, KC_OFFSET_END}, {"ends", 7, KC_OFFSET_END}};
    assert_int_not_equal(kc_producer_end_offsets(p, missing, 2, 10000, &err), KC_OK);
    assert_non_null(strstr(err.msg, "ends"));
    assert_int_equal(missing[0].offset, KC_OFFSET_END);
    kc_topic_partition bad = {"bad topic", 0, KC_OFFSET_END};
    assert_int_equal(kc_producer_end_offsets(p, &bad, 1, 10000, &err), KC_ERR_INVALID);
    assert_int_equal(bad.offset, KC_OFFSET_END);
    kc_producer_close(p, 5000);
    kc_kafka_config_clear(&pc);
    kc_kafka_config_clear(&cc);
}

static int setup(void **state)
{
    return kc_broker_start(&broker, NULL) == KC_OK ? 0 : -1;
}

static int teardown(void **state)
{
    kc_broker_stop(broker);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_names),
        cmocka_unit_test(test_config_set),
        cmocka_unit_test(test_round_trip_started_broker),
        cmocka_unit_test(test_round_trip_embedded_broker),
        cmocka_unit_test(test_relay_port),
        cmocka_unit_test(test_subscribe_regex),
        cmocka_unit_test(test_key_topics_have_one_partition),
        cmocka_unit_test(test_bad_options_name_the_option),
        cmocka_unit_test(test_assign_rejects_bad_entries),
        cmocka_unit_test(test_producer_lookups),
    };
    return cmocka_run_group_tests_name("kafka", tests, setup, teardown);
}
