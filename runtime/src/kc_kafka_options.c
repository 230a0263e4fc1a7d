#include "kc_kafka_options.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kc_array.h"
#include "kc_log.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef struct name_map {
    const char *from, *to;
} name_map;

/* The wrapper's CONFIG_MAP of each client kind. */
static const name_map common_map[] = {
    {"ssl_cafile", "ssl.ca.location"},
    {"ssl_certfile", "ssl.certificate.location"},
    {"ssl_keyfile", "ssl.key.location"},
    {"ssl_crlfile", "ssl.crl.location"},
    {"ssl_password", "ssl.key.password"},
    {"ssl_ciphers", "ssl.cipher.suites"},
    {"bootstrap_servers", "bootstrap.servers"},
    {"client_id", "client.id"},
    {"group_id", "group.id"},
    {"request_timeout_ms", "request.timeout.ms"},
    {"retry_backoff_ms", "retry.backoff.ms"},
    {"reconnect_backoff_ms", "reconnect.backoff.ms"},
    {"reconnect_backoff_max_ms", "reconnect.backoff.max.ms"},
    {"max_in_flight_requests_per_connection", "max.in.flight.requests.per.connection"},
    {"metadata_max_age_ms", "metadata.max.age.ms"},
    {"receive_buffer_bytes", "socket.receive.buffer.bytes"},
    {"send_buffer_bytes", "socket.send.buffer.bytes"},
    {"security_protocol", "security.protocol"},
    {"sasl_mechanism", "sasl.mechanism"},
    {"sasl_plain_username", "sasl.username"},
    {"sasl_plain_password", "sasl.password"},
    {"sasl_kerberos_service_name", "sasl.kerberos.service.name"},
};
static const name_map consumer_map[] = {
    {"max_partition_fetch_bytes", "message.max.bytes"},
    {"fetch_min_bytes", "fetch.min.bytes"},
    {"fetch_max_wait_ms", "fetch.wait.max.ms"},
    {"fetch_max_bytes", "fetch.max.bytes"},
    {"auto_offset_reset", "auto.offset.reset"},
    {"enable_auto_commit", "enable.auto.commit"},
    {"auto_commit_interval_ms", "auto.commit.interval.ms"},
    {"check_crcs", "check.crcs"},
    {"partition_assignment_strategy", "partition.assignment.strategy"},
    {"max_poll_interval_ms", "max.poll.interval.ms"},
    {"session_timeout_ms", "session.timeout.ms"},
    {"heartbeat_interval_ms", "heartbeat.interval.ms"},
};
static const name_map producer_map[] = {
    {"max_request_size", "message.max.bytes"},
    {"acks", "request.required.acks"},
    {"compression_type", "compression.type"},
    {"retries", "message.send.max.retries"},
    {"linger_ms", "queue.buffering.max.ms"},
};

/* The wrapper's CONFIG_MAP_NULL: accepted by kafka-python, meaningless to
 * librdkafka. Serializer options cannot come from a file, so they are
 * dropped here too. */
static const char *const common_ignored[] = {
    "ssl_context", "socket_options", "ssl_check_hostname", "api_version",
    "api_version_auto_timeout_ms", "connections_max_idle_ms", "metrics_reporters",
    "metrics_num_samples", "metrics_sample_window_ms", "selector",
    "sasl_kerberos_domain_name", "sasl_oauth_token_provider", "key_serializer",
    "value_serializer", "key_deserializer", "value_deserializer",
};
static const char *const consumer_ignored[] = {
    "default_offset_commit_callback", "consumer_timeout_ms", "exclude_internal_topics"};
static const char *const producer_ignored[] = {"batch_size", "partitioner", "buffer_memory",
                                               "max_block_ms"};

static const char *map_lookup(const name_map *map, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(map[i].from, name) == 0)
            return map[i].to;
    return NULL;
}

static int in_list(const char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

static const char *local_option(kc_kafka_use use)
{
    return use == KC_KAFKA_CONSUMER ? "max_poll_records" : "produce_timeout";
}

kc_kafka_opt_kind kc_kafka_option_kind(const char *name, kc_kafka_use use,
                                       const char **rdkafka_name)
{
    int consumer = use == KC_KAFKA_CONSUMER;
    const char *to = map_lookup(common_map, COUNT(common_map), name);
    if (!to)
        to = consumer ? map_lookup(consumer_map, COUNT(consumer_map), name)
                      : map_lookup(producer_map, COUNT(producer_map), name);
    kc_kafka_opt_kind kind = KC_KOPT_RENAMED;
    if (!to) {
        to = name;
        if (strcmp(name, local_option(use)) == 0)
            kind = KC_KOPT_LOCAL;
        else if (in_list(common_ignored, COUNT(common_ignored), name) ||
                 (consumer ? in_list(consumer_ignored, COUNT(consumer_ignored), name)
                           : in_list(producer_ignored, COUNT(producer_ignored), name)))
            kind = KC_KOPT_IGNORED;
        else
            kind = KC_KOPT_PASS;
    }
    if (rdkafka_name)
        *rdkafka_name = (kind == KC_KOPT_PASS || kind == KC_KOPT_RENAMED) ? to : NULL;
    return kind;
}

int kc_kafka_option_secret(const char *name)
{
    return strcasestr(name, "password") || strcasestr(name, "secret");
}

void kc_kafka_option_log_ignored(const char *name, const char *value)
{
    kc_log(KC_LOG_WARNING, KC_KAFKA_WRAPPER_LOGGER,
           "Warning: Unsupported kafka-python parameter passed to confluent wrapper: %s, %s",
           name, kc_kafka_option_secret(name) ? "(hidden)" : value);
}

/* Routine (upstream's node configs carry an empty bootstrap_servers that
 * the command line fills): INFO, upstream's wording. */
void kc_kafka_option_log_empty(const char *rdkafka_name)
{
    kc_log(KC_LOG_INFO, KC_KAFKA_WRAPPER_LOGGER,
           "Warning: Removing empty parameter %s passed to confluent wrapper", rdkafka_name);
}

void kc_kafka_config_init(kc_kafka_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_poll_records = 500;
    c->produce_timeout = 30;
}

static void wipe_free(char *s)
{
    if (s) {
        sodium_memzero(s, strlen(s));   /* values may be passwords */
        free(s);
    }
}

/* dict assignment on the property list */
static kc_status put(kc_kafka_config *c, const char *name, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return KC_ERR_NOMEM;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->props[i].name, name) == 0) {
            wipe_free(c->props[i].value);
            c->props[i].value = v;
            return KC_OK;
        }
    /* kc_kafka_config is public and has no capacity: grown one at a time. */
    char *k = kc_array_resize(&c->props, c->n + 1, sizeof *c->props) == KC_OK ? strdup(name) : NULL;
    if (!k) {
        wipe_free(v);
        return KC_ERR_NOMEM;
    }
    c->props[c->n].name = k;
    c->props[c->n++].value = v;
    return KC_OK;
}

kc_status kc_kafka_config_copy(kc_kafka_config *dst, const kc_kafka_config *src)
{
    kc_kafka_config_init(dst);
    dst->max_poll_records = src->max_poll_records;
    dst->produce_timeout = src->produce_timeout;
    for (size_t i = 0; i < src->n; i++)
        if (put(dst, src->props[i].name, src->props[i].value) != KC_OK) {
            kc_kafka_config_clear(dst);
            return KC_ERR_NOMEM;
        }
    return KC_OK;
}

static kc_status set_local(kc_kafka_config *c, kc_kafka_use use, const char *name,
                           const char *value, const char *origin, kc_err *err)
{
    char *end;
    double v = strtod(value, &end);
    if (end == value || *end != '\0' || !(v >= 0) || v > 1e9)
        return kc_err_set(err, KC_ERR_INVALID,
                          "%s: kafka option %s: expected a non-negative number, got '%s'",
                          origin, name, value);
    if (use == KC_KAFKA_PRODUCER)
        c->produce_timeout = v;   /* seconds, as upstream */
    else
        c->max_poll_records = (int64_t)v;
    return KC_OK;
}

kc_status kc_kafka_config_set(kc_kafka_config *c, kc_kafka_use use, const char *name,
                              const char *value, const char *origin, kc_err *err)
{
    if (!origin)
        origin = "kafka config";
    if (!name || !*name || !value)
        return kc_err_set(err, KC_ERR_INVALID, "%s: kafka option without a name or value",
                          origin);
    /* One set of options often serves both kinds of client (the settings
     * file, a shared Lua table): a kafka-python name that only the other
     * kind knows is skipped, rather than handed to librdkafka unchanged. */
    kc_kafka_use other = use == KC_KAFKA_CONSUMER ? KC_KAFKA_PRODUCER : KC_KAFKA_CONSUMER;
    const char *rdname;
    kc_kafka_opt_kind kind = kc_kafka_option_kind(name, use, &rdname);
    if (kind == KC_KOPT_PASS && kc_kafka_option_kind(name, other, NULL) != KC_KOPT_PASS) {
        kc_log(KC_LOG_DEBUG, KC_KAFKA_WRAPPER_LOGGER, "%s: %s is not a %s option: skipped",
               origin, name, use == KC_KAFKA_CONSUMER ? "consumer" : "producer");
        return KC_OK;
    }
    switch (kind) {
    case KC_KOPT_IGNORED:
        kc_kafka_option_log_ignored(name, value);
        return KC_OK;
    case KC_KOPT_LOCAL:
        return set_local(c, use, name, value, origin, err);
    case KC_KOPT_PASS:
    case KC_KOPT_RENAMED:
        break;
    }
    if (!*value) {
        kc_kafka_option_log_empty(rdname);
        return KC_OK;
    }
    /* A producer has no group; upstream's get_kafka_config removes it too. */
    if (use == KC_KAFKA_PRODUCER && strcmp(rdname, "group.id") == 0)
        return KC_OK;
    if (strcmp(value, "True") == 0)
        value = "true";
    else if (strcmp(value, "False") == 0)
        value = "false";
    if (put(c, rdname, value) != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", origin);
    return KC_OK;
}

const char *kc_kafka_config_get(const kc_kafka_config *c, const char *rdkafka_name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->props[i].name, rdkafka_name) == 0)
            return c->props[i].value;
    return NULL;
}
