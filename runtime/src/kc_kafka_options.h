/* kc_kafka_options.h — Kafka client options: kafka-python names to
 * librdkafka properties (spec §10.5), and the option list handed to
 * librdkafka.
 *
 * Node configs written for upstream name their Kafka options as kafka-python
 * does (`bootstrap_servers`, `security_protocol`, ...). Upstream's librdkafka
 * wrapper renames the known ones, drops a few it cannot express, keeps two
 * for itself (`max_poll_records`, `produce_timeout`) and passes every other
 * name through unchanged, so librdkafka's dotted names work too. This module
 * is that table, shared by the node store (get_kafka_config), the settings
 * file and the Lua/C client API. */
#ifndef KC_KAFKA_OPTIONS_H
#define KC_KAFKA_OPTIONS_H

#include <stddef.h>

#include "kc_err.h"

typedef enum kc_kafka_use {
    KC_KAFKA_PRODUCER,
    KC_KAFKA_CONSUMER
} kc_kafka_use;

typedef enum kc_kafka_opt_kind {
    KC_KOPT_PASS,     /* not a known kafka-python name: given to librdkafka as is */
    KC_KOPT_RENAMED,  /* a kafka-python name with a librdkafka equivalent */
    KC_KOPT_LOCAL,    /* kept by our wrapper (max_poll_records, produce_timeout) */
    KC_KOPT_IGNORED   /* kafka-python only; dropped with a WARNING as upstream does */
} kc_kafka_opt_kind;

/* Classifies `name` for a client of kind `use`; for KC_KOPT_PASS and
 * KC_KOPT_RENAMED, *rdkafka_name (if not NULL) receives the property name. */
kc_kafka_opt_kind kc_kafka_option_kind(const char *name, kc_kafka_use use,
                                       const char **rdkafka_name);

/* An ordered list of librdkafka properties plus the local options.
 * Setting a property twice keeps the last value. */
typedef struct kc_kafka_conf {
    kc_kafka_use use;
    size_t count, cap;
    char **names;   /* librdkafka property names */
    char **values;
    int produce_timeout_ms;  /* how long send() waits for queue space (default 30 s) */
    int max_poll_records;    /* kept for completeness (default 500); poll() returns one */
} kc_kafka_conf;

void kc_kafka_conf_init(kc_kafka_conf *conf, kc_kafka_use use);
void kc_kafka_conf_free(kc_kafka_conf *conf);
kc_status kc_kafka_conf_copy(kc_kafka_conf *dst, const kc_kafka_conf *src);

/* Sets one option given by its kafka-python or librdkafka name. Values are
 * text as Python would print them: "True"/"False" become librdkafka's
 * "true"/"false". An empty value is dropped with a WARNING (upstream's
 * wrapper does the same). `origin` names where the option came from
 * ("node.config section kafka", "Lua config") for messages. */
kc_status kc_kafka_conf_set(kc_kafka_conf *conf, const char *name, const char *value,
                            const char *origin, kc_err *err);

/* The value of a librdkafka property, or NULL. */
const char *kc_kafka_conf_get(const kc_kafka_conf *conf, const char *rdkafka_name);
/* Removes a librdkafka property if present. */
void kc_kafka_conf_unset(kc_kafka_conf *conf, const char *rdkafka_name);

#endif
