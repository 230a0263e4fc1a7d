/* kc_settings.h — the runtime's own settings (kafkacrypto.cfg, libconfig).
 *
 * These are settings of this program, not of a node: which broker, which
 * node files, logging, where Lua code lives, policy files, Kafka client
 * options and the protocol tunables of spec §7.2. The repository's
 * kafkacrypto.cfg documents every one. Precedence, most specific first:
 *   command line (--set NAME=VALUE, --broker, --log-level)
 *   > kafkacrypto.cfg (-c FILE, default ./kafkacrypto.cfg when present)
 *   > node config (tunables and Kafka options, read by the node store)
 *   > built-in defaults.
 * Relative paths in the file are relative to the file's directory; on the
 * command line, to the current directory.
 *
 * Reading is strict: an unknown setting, a wrong type or a bad value is an
 * error naming the file, the line and the setting. */
#ifndef KC_SETTINGS_H
#define KC_SETTINGS_H

#include <stddef.h>

#include "kc_err.h"
#include "kc_kafka_options.h"
#include "kc_log.h"
#include "kc_tunables.h"

typedef struct kc_settings_kafka {
    char *name;    /* as written: kafka-python or librdkafka name */
    char *value;
    char *origin;  /* "FILE:LINE" or "command line" */
} kc_settings_kafka;

typedef struct kc_settings {
    char *file;            /* the file read, NULL if none */
    char *broker;          /* bootstrap.servers; NULL = the embedded broker */
    char *node_config;     /* path of NODE.config, NULL if not set */
    char *node_id;
    kc_log_level log_level;
    char *lua_path;        /* extra package.path templates, ';'-separated */
    char *lua_cpath;       /* extra package.cpath templates */
    char *scripts_dir;     /* where `kafkacrypto TOOL` finds TOOL.lua */
    char **policies;       /* policy files, in order */
    size_t npolicies;
    char *exchange_variant;  /* key-exchange variant file for nodes (kc_variant.h); NULL: none */
    char *metrics_listen;    /* HOST:PORT of every node's metrics page (kc_metrics.h); NULL: none */
    kc_settings_kafka *kafka;  /* Kafka options for every client, in order */
    size_t nkafka, kafka_cap;
    kc_tunables tunables;
} kc_settings;

void kc_settings_init(kc_settings *s);
void kc_settings_free(kc_settings *s);

/* Reads a libconfig file into s (settings it does not mention keep their
 * values). */
kc_status kc_settings_load(kc_settings *s, const char *path, kc_err *err);

/* Sets one setting from text, as `--set NAME=VALUE` does. NAME is the
 * setting's name in the file ("broker", "log_level", "policies",
 * "tunables.crypto_sub_interval", "kafka.security_protocol", "rdkafka"
 * with VALUE "prop=value"). List settings take comma-separated values and
 * replace the list, except kafka/rdkafka options which add one option.
 * Then call kc_settings_check. */
kc_status kc_settings_set(kc_settings *s, const char *name, const char *value,
                          const char *origin, kc_err *err);

/* Checks what holds only for the settings as a whole (tunable suffixes
 * start with the separator, ...); call after the last kc_settings_set. */
kc_status kc_settings_check(const kc_settings *s, kc_err *err);

/* Adds the Kafka options of the settings (broker first) to the
 * configuration of a client of kind `use`; later options win. */
kc_status kc_settings_apply_kafka(const kc_settings *s, kc_kafka_use use, kc_kafka_config *conf,
                                  kc_err *err);

/* Lua search templates from a ';'-separated list: entries without '?' are
 * directories, meaning DIR/?.lua;DIR/?/init.lua (DIR/?.so for cpath).
 * Relative entries are resolved against dir (if not NULL). malloc'd. */
char *kc_settings_lua_search_path(const char *dir, const char *text, int cpath);

/* The names a file may use at top level, for messages and the sample. */
extern const char *const kc_settings_names[];

#endif
