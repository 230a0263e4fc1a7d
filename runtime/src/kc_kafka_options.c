#include "kc_kafka_options.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "kc_log.h"

static const char LOGGER[] = "kafkacrypto.kafka";

/* kafka-python name -> librdkafka property (spec §10.5). */
static const struct { const char *from, *to; } renamed[] = {
    {"bootstrap_servers", "bootstrap.servers"},
    {"security_protocol", "security.protocol"},
    {"ssl_cafile", "ssl.ca.location"},
    {"ssl_certfile", "ssl.certificate.location"},
    {"ssl_keyfile", "ssl.key.location"},
    {"ssl_crlfile", "ssl.crl.location"},
    {"ssl_password", "ssl.key.password"},
    {"ssl_ciphers", "ssl.cipher.suites"},
    {"sasl_mechanism", "sasl.mechanism"},
    {"sasl_plain_username", "sasl.username"},
    {"sasl_plain_password", "sasl.password"},
    {"sasl_kerberos_service_name", "sasl.kerberos.service.name"},
    {"client_id", "client.id"},
    {"group_id", "group.id"},
    {"enable_auto_commit", "enable.auto.commit"},
    {"auto_offset_reset", "auto.offset.reset"},
    {"auto_commit_interval_ms", "auto.commit.interval.ms"},
    {"fetch_min_bytes", "fetch.min.bytes"},
    {"fetch_max_wait_ms", "fetch.wait.max.ms"},
    {"fetch_max_bytes", "fetch.max.bytes"},
    {"request_timeout_ms", "request.timeout.ms"},
    {"retry_backoff_ms", "retry.backoff.ms"},
    {"reconnect_backoff_ms", "reconnect.backoff.ms"},
    {"reconnect_backoff_max_ms", "reconnect.backoff.max.ms"},
    {"max_in_flight_requests_per_connection", "max.in.flight.requests.per.connection"},
    {"metadata_max_age_ms", "metadata.max.age.ms"},
    {"partition_assignment_strategy", "partition.assignment.strategy"},
    {"max_poll_interval_ms", "max.poll.interval.ms"},
    {"session_timeout_ms", "session.timeout.ms"},
    {"heartbeat_interval_ms", "heartbeat.interval.ms"},
    {"receive_buffer_bytes", "socket.receive.buffer.bytes"},
    {"send_buffer_bytes", "socket.send.buffer.bytes"},
    {"check_crcs", "check.crcs"},
    {"acks", "request.required.acks"},
    {"compression_type", "compression.type"},
    {"retries", "message.send.max.retries"},
    {"linger_ms", "queue.buffering.max.ms"},
};

static const char *const ignored[] = {
    "ssl_context", "socket_options", "default_offset_commit_callback",
    "consumer_timeout_ms", "ssl_check_hostname", "api_version",
    "api_version_auto_timeout_ms", "connections_max_idle_ms", "selector",
    "exclude_internal_topics", "sasl_kerberos_domain_name",
    "sasl_oauth_token_provider", "batch_size", "partitioner", "buffer_memory",
    "max_block_ms",
};

kc_kafka_opt_kind kc_kafka_option_kind(const char *name, kc_kafka_use use,
                                       const char **rdkafka_name)
{
    const char *to = name;
    kc_kafka_opt_kind kind = KC_KOPT_PASS;

    if (strcmp(name, "max_poll_records") == 0 || strcmp(name, "produce_timeout") == 0)
        kind = KC_KOPT_LOCAL;
    else if (strncmp(name, "metrics_", 8) == 0)
        kind = KC_KOPT_IGNORED;
    for (size_t i = 0; kind == KC_KOPT_PASS && i < sizeof ignored / sizeof ignored[0]; i++)
        if (strcmp(name, ignored[i]) == 0)
            kind = KC_KOPT_IGNORED;
    /* One librdkafka property, named differently per client kind upstream. */
    if (kind == KC_KOPT_PASS &&
        strcmp(name, use == KC_KAFKA_CONSUMER ? "max_partition_fetch_bytes"
                                              : "max_request_size") == 0) {
        kind = KC_KOPT_RENAMED;
        to = "message.max.bytes";
    }
    for (size_t i = 0; kind == KC_KOPT_PASS && i < sizeof renamed / sizeof renamed[0]; i++)
        if (strcmp(name, renamed[i].from) == 0) {
            kind = KC_KOPT_RENAMED;
            to = renamed[i].to;
        }
    if (rdkafka_name)
        *rdkafka_name = (kind == KC_KOPT_PASS || kind == KC_KOPT_RENAMED) ? to : NULL;
    return kind;
}

void kc_kafka_conf_init(kc_kafka_conf *conf, kc_kafka_use use)
{
    memset(conf, 0, sizeof *conf);
    conf->use = use;
    conf->produce_timeout_ms = 30000;
    conf->max_poll_records = 500;
}

void kc_kafka_conf_free(kc_kafka_conf *conf)
{
    /* Values may be passwords (sasl.password, ssl.key.password). */
    for (size_t i = 0; i < conf->count; i++) {
        free(conf->names[i]);
        sodium_memzero(conf->values[i], strlen(conf->values[i]));
        free(conf->values[i]);
    }
    free(conf->names);
    free(conf->values);
    kc_kafka_conf_init(conf, conf->use);
}

static kc_status put(kc_kafka_conf *conf, const char *name, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return KC_ERR_NOMEM;
    for (size_t i = 0; i < conf->count; i++)
        if (strcmp(conf->names[i], name) == 0) {
            sodium_memzero(conf->values[i], strlen(conf->values[i]));
            free(conf->values[i]);
            conf->values[i] = v;
            return KC_OK;
        }
    if (conf->count == conf->cap) {
        size_t cap = conf->cap ? 2 * conf->cap : 16;
        char **n = realloc(conf->names, cap * sizeof *n);
        if (n)
            conf->names = n;
        char **vs = n ? realloc(conf->values, cap * sizeof *vs) : NULL;
        if (!vs) {
            free(v);
            return KC_ERR_NOMEM;
        }
        conf->values = vs;
        conf->cap = cap;
    }
    char *k = strdup(name);
    if (!k) {
        free(v);
        return KC_ERR_NOMEM;
    }
    conf->names[conf->count] = k;
    conf->values[conf->count++] = v;
    return KC_OK;
}

kc_status kc_kafka_conf_copy(kc_kafka_conf *dst, const kc_kafka_conf *src)
{
    kc_kafka_conf_init(dst, src->use);
    dst->produce_timeout_ms = src->produce_timeout_ms;
    dst->max_poll_records = src->max_poll_records;
    for (size_t i = 0; i < src->count; i++)
        if (put(dst, src->names[i], src->values[i]) != KC_OK) {
            kc_kafka_conf_free(dst);
            return KC_ERR_NOMEM;
        }
    return KC_OK;
}

static kc_status set_local(kc_kafka_conf *conf, const char *name, const char *value,
                           const char *origin, kc_err *err)
{
    char *end;
    double v = strtod(value, &end);
    if (end == value || *end != '\0' || !(v >= 0) || v > 1e9)
        return kc_err_set(err, KC_ERR_INVALID, "%s: kafka option %s: expected a number, got '%s'",
                          origin, name, value);
    if (strcmp(name, "produce_timeout") == 0)   /* seconds, as upstream */
        conf->produce_timeout_ms = (int)(v * 1000);
    else
        conf->max_poll_records = v < 1 ? 1 : (int)v;
    return KC_OK;
}

kc_status kc_kafka_conf_set(kc_kafka_conf *conf, const char *name, const char *value,
                            const char *origin, kc_err *err)
{
    if (!origin)
        origin = "kafka config";
    if (!name || !*name || !value)
        return kc_err_set(err, KC_ERR_INVALID, "%s: kafka option without a name or value",
                          origin);
    const char *rdname;
    switch (kc_kafka_option_kind(name, conf->use, &rdname)) {
    case KC_KOPT_IGNORED:
        kc_log(KC_LOG_WARNING, LOGGER, "Filtering out %s:%s from kafka config.", name, value);
        return KC_OK;
    case KC_KOPT_LOCAL:
        return set_local(conf, name, value, origin, err);
    case KC_KOPT_PASS:
    case KC_KOPT_RENAMED:
        break;
    }
    if (!*value) {
        kc_log(KC_LOG_WARNING, LOGGER, "%s: dropping kafka option %s with an empty value",
               origin, name);
        return KC_OK;
    }
    /* A producer has no group; upstream's get_kafka_config removes it too. */
    if (conf->use == KC_KAFKA_PRODUCER && strcmp(rdname, "group.id") == 0)
        return KC_OK;
    if (strcmp(value, "True") == 0)
        value = "true";
    else if (strcmp(value, "False") == 0)
        value = "false";
    if (put(conf, rdname, value) != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", origin);
    return KC_OK;
}

const char *kc_kafka_conf_get(const kc_kafka_conf *conf, const char *rdkafka_name)
{
    for (size_t i = 0; i < conf->count; i++)
        if (strcmp(conf->names[i], rdkafka_name) == 0)
            return conf->values[i];
    return NULL;
}

void kc_kafka_conf_unset(kc_kafka_conf *conf, const char *rdkafka_name)
{
    for (size_t i = 0; i < conf->count; i++)
        if (strcmp(conf->names[i], rdkafka_name) == 0) {
            free(conf->names[i]);
            sodium_memzero(conf->values[i], strlen(conf->values[i]));
            free(conf->values[i]);
            memmove(conf->names + i, conf->names + i + 1, (conf->count - i - 1) * sizeof(char *));
            memmove(conf->values + i, conf->values + i + 1, (conf->count - i - 1) * sizeof(char *));
            conf->count--;
            return;
        }
}
