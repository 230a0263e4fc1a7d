/* kc_tunables.h — the protocol tunables of spec §7.2 (upstream's DEFAULTS).
 *
 * Each value may come from several places; the one set from the most
 * specific source wins, whatever the order in which the sources are read:
 *   command line  >  kafkacrypto.cfg  >  node config  >  built-in default.
 * (The runtime settings are what an operator sets for this run, so they
 * beat the node config that upstream tools write and share; values that
 * every node of a deployment must agree on — separator, suffixes, topic
 * names, long key indices — are best left in the node config.)
 *
 * Names are upstream's, lower-cased, as they appear in a node config. */
#ifndef KC_TUNABLES_H
#define KC_TUNABLES_H

#include <stdbool.h>
#include <stddef.h>

#include "kc_err.h"

typedef enum kc_source {
    KC_SOURCE_DEFAULT = 0,
    KC_SOURCE_NODE_CONFIG,
    KC_SOURCE_SETTINGS,
    KC_SOURCE_COMMAND_LINE
} kc_source;

#define KC_TOPIC_NAME_MAX 249  /* Kafka's limit */

typedef enum kc_tunable_id {
    KC_T_TOPIC_SEPARATOR,
    KC_T_TOPIC_SUFFIX_SUBS,
    KC_T_TOPIC_SUFFIX_KEYS,
    KC_T_TOPIC_SUFFIX_REQS,
    KC_T_CRYPTO_MAX_PGEN_AGE,
    KC_T_CRYPTO_SUB_INTERVAL,
    KC_T_CRYPTO_RATCHET_INTERVAL,
    KC_T_MGMT_TOPIC_CHAINS,
    KC_T_MGMT_TOPIC_ALLOWLIST,
    KC_T_MGMT_TOPIC_DENYLIST,
    KC_T_MGMT_FLUSH_TIME,
    KC_T_MGMT_POLL_INTERVAL,
    KC_T_MGMT_POLL_RECORDS,
    KC_T_MGMT_SUBSCRIBE_INTERVAL,
    KC_T_MGMT_LONG_KEYINDEX,
    KC_T_DESER_INITIAL_WAIT_INTERVALS,
    KC_T_COUNT
} kc_tunable_id;

typedef struct kc_tunables {
    char topic_separator[KC_TOPIC_NAME_MAX + 1];
    char topic_suffix_subs[KC_TOPIC_NAME_MAX + 1];
    char topic_suffix_keys[KC_TOPIC_NAME_MAX + 1];
    char topic_suffix_reqs[KC_TOPIC_NAME_MAX + 1];
    double crypto_max_pgen_age;       /* s */
    double crypto_sub_interval;       /* s */
    double crypto_ratchet_interval;   /* s */
    char mgmt_topic_chains[KC_TOPIC_NAME_MAX + 1];
    char mgmt_topic_allowlist[KC_TOPIC_NAME_MAX + 1];
    char mgmt_topic_denylist[KC_TOPIC_NAME_MAX + 1];
    double mgmt_flush_time;           /* s */
    double mgmt_poll_interval;        /* ms */
    long mgmt_poll_records;
    double mgmt_subscribe_interval;   /* s */
    bool mgmt_long_keyindex;
    long deser_initial_wait_intervals;
    kc_source source[KC_T_COUNT];     /* where each value came from */
} kc_tunables;

typedef enum kc_tunable_type {
    KC_TT_STRING, KC_TT_NUMBER, KC_TT_INTEGER, KC_TT_BOOL
} kc_tunable_type;

/* Fills in upstream's defaults (source KC_SOURCE_DEFAULT). */
void kc_tunables_init(kc_tunables *t);

/* Looks a tunable up by its lower-case name, e.g. crypto_sub_interval;
 * returns 0 and fills *id and *type if it exists. */
int kc_tunable_lookup(const char *name, kc_tunable_id *id, kc_tunable_type *type);
const char *kc_tunable_name(kc_tunable_id id);

/* Sets a tunable from text ("60", "0.5", "True", ".subs") if `source` is at
 * least as specific as the value's current source; otherwise leaves it and
 * returns KC_OK. Booleans follow upstream's `== True`: True/true/1 are true,
 * False/false/0 false, anything else is an error. Errors name `origin`
 * (e.g. "kafkacrypto.cfg:12") and the tunable. */
kc_status kc_tunables_set(kc_tunables *t, const char *name, const char *text,
                          kc_source source, const char *origin, kc_err *err);
kc_status kc_tunables_set_number(kc_tunables *t, const char *name, double value,
                                 kc_source source, const char *origin, kc_err *err);

/* Checks the whole set: the separator and suffixes use only topic-name
 * characters, suffixes start with the separator, management topic names are
 * legal topic names. *bad (may be NULL) receives the offending tunable. */
kc_status kc_tunables_check(const kc_tunables *t, kc_tunable_id *bad, kc_err *err);

/* The value as text (numbers in shortest form, booleans True/False). */
void kc_tunables_format(const kc_tunables *t, kc_tunable_id id, char *out, size_t size);

/* 1 if `name` is a legal Kafka topic name (1..249 of [A-Za-z0-9._-], not
 * "." or ".."). */
int kc_topic_name_valid(const char *name);

#endif
