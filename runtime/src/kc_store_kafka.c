/* get_kafka_config (spec §10.5): upstream's KafkaCryptoStore.get_kafka_config
 * followed by the option handling of its confluent-kafka (librdkafka)
 * wrapper, so that the result can be handed to rd_kafka_conf_set. */
#include "kc_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kc_array.h"
#include "kc_kafka_options.h"
#include "kc_log.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* kafka-python option names upstream knows (common_wrapper's PRODUCER_CONFIGS
 * and CONSUMER_CONFIGS); anything else draws its "Filtering out" warning. */
static const char *const known_options[] = {
    "acks", "api_version", "api_version_auto_timeout_ms", "auto_commit_interval_ms",
    "auto_offset_reset", "batch_size", "bootstrap_servers", "bootstrap_topics_filter",
    "buffer_memory", "check_crcs", "client_id", "compression_type", "connections_max_idle_ms",
    "consumer_timeout_ms", "default_offset_commit_callback", "enable_auto_commit",
    "exclude_internal_topics", "fetch_max_bytes", "fetch_max_wait_ms", "fetch_min_bytes",
    "group_id", "heartbeat_interval_ms", "key_deserializer", "key_serializer",
    "legacy_iterator", "linger_ms", "max_block_ms", "max_in_flight_requests_per_connection",
    "max_partition_fetch_bytes", "max_poll_interval_ms", "max_poll_records",
    "max_request_size", "metadata_max_age_ms", "metric_group_prefix", "metric_reporters",
    "metrics_num_samples", "metrics_sample_window_ms", "partition_assignment_strategy",
    "partitioner", "receive_buffer_bytes", "reconnect_backoff_max_ms", "reconnect_backoff_ms",
    "request_timeout_ms", "retries", "retry_backoff_ms", "sasl_kerberos_domain_name",
    "sasl_kerberos_service_name", "sasl_mechanism", "sasl_oauth_token_provider",
    "sasl_plain_password", "sasl_plain_username", "security_protocol", "selector",
    "send_buffer_bytes", "session_timeout_ms", "socket_options", "ssl_cafile",
    "ssl_certfile", "ssl_check_hostname", "ssl_ciphers", "ssl_context", "ssl_crlfile",
    "ssl_keyfile", "ssl_password", "value_deserializer", "value_serializer",
};

static bool in_list(const char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return true;
    return false;
}

static char *text_of(const kc_value *v)
{
    char *t = NULL;
    if (v->type == KC_VALUE_NONE)
        return strdup("None");
    kc_value_to_text(v, &t, NULL);
    return t;
}

kc_status kc_store_kafka_options(kc_store *s, kc_kafka_use use, const char *extra,
                                 kc_section *out, kc_err *err)
{
    const char *u = use == KC_KAFKA_CONSUMER ? "consumer" : "producer";
    kc_status st = kc_store_load_section(s, "kafka", false, out, err);
    if (st != KC_OK)
        return st;
    char extras[3][128];
    int nextras = 1;
    snprintf(extras[0], sizeof extras[0], "kafka-%s", u);
    if (extra) {
        snprintf(extras[1], sizeof extras[1], "kafka-%.100s", extra);
        snprintf(extras[2], sizeof extras[2], "kafka-%.100s-%s", extra, u);
        nextras = 3;
    }
    for (int e = 0; e < nextras && st == KC_OK; e++) {
        kc_section kec;
        st = kc_store_load_section(s, extras[e], false, &kec, err);
        if (st == KC_ERR_NOTFOUND) {
            st = KC_OK;
            continue;
        }
        for (size_t i = 0; i < kec.n && st == KC_OK; i++) {
            const kc_value *v = &kec.items[i].value;
            /* an empty text unsets; upstream's len() would fail on numbers (B13) */
            bool blank = (v->type == KC_VALUE_TEXT || v->type == KC_VALUE_BYTES) && v->len == 0;
            if (blank && kc_section_pop(out, &kec.items[i].key))
                continue;
            st = kc_section_set(out, &kec.items[i].key, v);
        }
        kc_section_clear(&kec);
    }
    kc_value group = kc_value_text("group_id");
    if (st == KC_OK && use == KC_KAFKA_CONSUMER && !kc_section_get(out, "group_id")) {
        char id[512];
        snprintf(id, sizeof id, "%.400s%s", s->node_id,
                 extra && strcmp(extra, "crypto") == 0 ? ".kafkacrypto" : "");
        kc_value idv = kc_value_text(id);
        st = kc_section_set(out, &group, &idv);
    }
    for (size_t i = 0; i < out->n && st == KC_OK; i++) {
        char *k = text_of(&out->items[i].key);
        if (k && !in_list(known_options, COUNT(known_options), k)) {
            char *v = kc_kafka_option_secret(k) ? strdup("(hidden)") : text_of(&out->items[i].value);
            kc_log(KC_LOG_WARNING, KC_STORE_LOGGER, "Filtering out %s:%s from kafka config.", k,
                   v ? v : "?");
            free(v);
        }
        free(k);
    }
    if (use != KC_KAFKA_CONSUMER)
        kc_section_pop(out, &group);
    if (st != KC_OK)
        kc_section_clear(out);
    if (st == KC_ERR_NOMEM)
        kc_err_set(err, st, "out of memory");
    return st;
}

void kc_kafka_config_clear(kc_kafka_config *c)
{
    for (size_t i = 0; c->props && i < c->n; i++) {
        free(c->props[i].name);
        if (c->props[i].value) {
            memset(c->props[i].value, 0, strlen(c->props[i].value));
            free(c->props[i].value);
        }
    }
    free(c->props);
    memset(c, 0, sizeof *c);
}

/* dict assignment on the property list */
static kc_status prop_set(kc_kafka_config *c, const char *name, const kc_value *v,
                          kc_value **values)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->props[i].name, name) == 0)
            return kc_value_copy(&(*values)[i], v);
    /* kc_kafka_config is public and has no capacity: grown one at a time. */
    if (kc_array_resize(&c->props, c->n + 1, sizeof *c->props) != KC_OK ||
        kc_array_resize(values, c->n + 1, sizeof **values) != KC_OK)
        return KC_ERR_NOMEM;
    kc_kafka_prop *props = c->props;
    kc_value *vals = *values;
    vals[c->n] = kc_value_none();
    props[c->n].value = NULL;
    if (!(props[c->n].name = strdup(name)))
        return KC_ERR_NOMEM;
    kc_status st = kc_value_copy(&vals[c->n], v);
    if (st == KC_OK)
        c->n++;
    else
        free(props[c->n].name);
    return st;
}

static bool number_of(const kc_value *v, double *out)
{
    if (v->type == KC_VALUE_INT || v->type == KC_VALUE_BOOL)
        *out = (double)v->i;
    else if (v->type == KC_VALUE_FLOAT)
        *out = v->f;
    else
        return false;
    return true;
}

kc_status kc_store_kafka_config(kc_store *s, kc_kafka_use use, const char *extra,
                                kc_kafka_config *out, kc_err *err)
{
    memset(out, 0, sizeof *out);
    out->max_poll_records = 500;
    out->produce_timeout = 30;
    kc_section opts;
    kc_status st = kc_store_kafka_options(s, use, extra, &opts, err);
    if (st != KC_OK)
        return st;
    bool consumer = use == KC_KAFKA_CONSUMER;
    kc_value *values = NULL;
    bool timeout_set = false;
    for (size_t i = 0; i < opts.n && st == KC_OK; i++) {
        const kc_value *v = &opts.items[i].value;
        char *k = text_of(&opts.items[i].key);
        if (!k) {
            st = KC_ERR_NOMEM;
            break;
        }
        const char *to;
        double num;
        switch (kc_kafka_option_kind(k, use, &to)) {
        case KC_KOPT_RENAMED:
            if (v->type != KC_VALUE_NONE)
                st = prop_set(out, to, v, &values);
            break;
        case KC_KOPT_LOCAL:
            if (!number_of(v, &num) || num < 0)
                kc_log(KC_LOG_WARNING, KC_KAFKA_WRAPPER_LOGGER,
                       "Warning: %s must be a non-negative number; keeping the default", k);
            else if (consumer)
                out->max_poll_records = (int64_t)num;
            else {
                out->produce_timeout = num;
                timeout_set = true;
            }
            break;
        case KC_KOPT_IGNORED: {
            char *t = text_of(v);
            kc_kafka_option_log_ignored(k, t ? t : "?");
            free(t);
            break;
        }
        case KC_KOPT_PASS:
            st = prop_set(out, k, v, &values);
            break;
        }
        free(k);
    }
    /* the producer's delivery timeouts imply produce_timeout unless it is set */
    for (size_t i = 0; i < opts.n && st == KC_OK && !consumer && !timeout_set; i++) {
        static const char *const timeouts[] = {"delivery.timeout.ms", "message.timeout.ms",
                                               "transaction.timeout.ms"};
        char *k = text_of(&opts.items[i].key);
        double num;
        if (k && in_list(timeouts, COUNT(timeouts), k) && number_of(&opts.items[i].value, &num))
            out->produce_timeout = num / 1000.0;
        free(k);
    }
    kc_section_clear(&opts);
    /* drop empty values, render the rest as librdkafka strings */
    size_t w = 0;
    for (size_t i = 0; i < out->n; i++) {
        kc_value *v = &values[i];
        kc_kafka_prop *p = &out->props[i];
        if (st == KC_OK && (v->type == KC_VALUE_NONE || (v->type == KC_VALUE_TEXT && v->len == 0))) {
            kc_kafka_option_log_empty(p->name);
        } else if (st == KC_OK && v->type == KC_VALUE_BYTES) {
            st = kc_err_set(err, KC_ERR_INVALID,
                            "file %s: kafka option %s holds bytes (base64#...); librdkafka needs "
                            "text, a number or a boolean", s->path, p->name);
        } else if (st == KC_OK) {
            char *t = NULL;
            if (v->type == KC_VALUE_BOOL)
                t = strdup(v->i ? "true" : "false");
            else
                kc_value_to_text(v, &t, NULL);
            if (!t)
                st = KC_ERR_NOMEM;
            p->value = t;
            out->props[w++] = *p;
            kc_value_clear(v);
            continue;
        }
        free(p->name);
        kc_value_clear(v);
    }
    free(values);
    out->n = w;
    if (st == KC_ERR_NOMEM)
        kc_err_set(err, st, "out of memory");
    if (st != KC_OK)
        kc_kafka_config_clear(out);
    return st;
}
