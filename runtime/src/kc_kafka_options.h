/* kc_kafka_options.h — Kafka client options: kafka-python names to
 * librdkafka properties (spec §10.5), the one table for the whole runtime.
 *
 * Node configs written for upstream name their Kafka options as kafka-python
 * does (`bootstrap_servers`, `security_protocol`, ...). Upstream's librdkafka
 * (confluent-kafka) wrapper renames the ones it knows — per client kind —,
 * drops a few it cannot express with a warning, keeps one local option per
 * kind (consumer: max_poll_records, producer: produce_timeout) and passes
 * every other name through unchanged, so librdkafka's dotted names work too.
 * The node store (kc_store_kafka_config), the settings file and the Lua/C
 * client API all classify names here; options are collected in the public
 * kc_kafka_config (kafkacrypto.h). */
#ifndef KC_KAFKA_OPTIONS_H
#define KC_KAFKA_OPTIONS_H

#include <stddef.h>

#include "kafkacrypto.h"
#include "kc_err.h"

#define KC_KAFKA_WRAPPER_LOGGER "kafkacrypto.confluent_kafka_wrapper"

typedef enum kc_kafka_opt_kind {
    KC_KOPT_PASS,     /* not a kafka-python name the wrapper maps: given to librdkafka as is */
    KC_KOPT_RENAMED,  /* a kafka-python name with a librdkafka equivalent */
    KC_KOPT_LOCAL,    /* kept by the wrapper: consumer max_poll_records, producer produce_timeout */
    KC_KOPT_IGNORED   /* kafka-python only; dropped with a WARNING as upstream does */
} kc_kafka_opt_kind;

/* Classifies `name` for a client of kind `use`; for KC_KOPT_PASS and
 * KC_KOPT_RENAMED, *rdkafka_name (if not NULL) receives the property name. */
kc_kafka_opt_kind kc_kafka_option_kind(const char *name, kc_kafka_use use,
                                       const char **rdkafka_name);

/* 1 if the value of option `name` must stay out of logs (passwords). */
int kc_kafka_option_secret(const char *name);
/* Upstream's wrapper warnings, with secret values hidden. */
void kc_kafka_option_log_ignored(const char *name, const char *value);
void kc_kafka_option_log_empty(const char *rdkafka_name);

/* An empty configuration with the local options' defaults (500 records,
 * 30 s); free with kc_kafka_config_clear. */
void kc_kafka_config_init(kc_kafka_config *c);
kc_status kc_kafka_config_copy(kc_kafka_config *dst, const kc_kafka_config *src);

/* Sets one option, by kafka-python or librdkafka name, for a client of
 * kind `use`. Values are text as Python prints them ("True"/"False" become
 * librdkafka's "true"/"false"). An empty value is dropped with upstream's
 * warning; a producer drops group_id (as get_kafka_config does); a
 * kafka-python name only the other kind of client knows is skipped (so one
 * set of options can serve both; kc_store_kafka_config, which follows
 * upstream to the letter, passes such names on instead).
 * `origin` names where the option came from, for messages. Setting a
 * property twice keeps the last value. */
kc_status kc_kafka_config_set(kc_kafka_config *c, kc_kafka_use use, const char *name,
                              const char *value, const char *origin, kc_err *err);

/* The value of a librdkafka property, or NULL. */
const char *kc_kafka_config_get(const kc_kafka_config *c, const char *rdkafka_name);

#endif
