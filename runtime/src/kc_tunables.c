#include "kc_tunables.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    kc_tunable_type type;
    size_t offset;
} table[KC_T_COUNT] = {
#define T(id, field, type) [id] = {#field, type, offsetof(kc_tunables, field)}
    T(KC_T_TOPIC_SEPARATOR, topic_separator, KC_TT_STRING),
    T(KC_T_TOPIC_SUFFIX_SUBS, topic_suffix_subs, KC_TT_STRING),
    T(KC_T_TOPIC_SUFFIX_KEYS, topic_suffix_keys, KC_TT_STRING),
    T(KC_T_TOPIC_SUFFIX_REQS, topic_suffix_reqs, KC_TT_STRING),
    T(KC_T_CRYPTO_MAX_PGEN_AGE, crypto_max_pgen_age, KC_TT_NUMBER),
    T(KC_T_CRYPTO_SUB_INTERVAL, crypto_sub_interval, KC_TT_NUMBER),
    T(KC_T_CRYPTO_RATCHET_INTERVAL, crypto_ratchet_interval, KC_TT_NUMBER),
    T(KC_T_MGMT_TOPIC_CHAINS, mgmt_topic_chains, KC_TT_STRING),
    T(KC_T_MGMT_TOPIC_ALLOWLIST, mgmt_topic_allowlist, KC_TT_STRING),
    T(KC_T_MGMT_TOPIC_DENYLIST, mgmt_topic_denylist, KC_TT_STRING),
    T(KC_T_MGMT_FLUSH_TIME, mgmt_flush_time, KC_TT_NUMBER),
    T(KC_T_MGMT_POLL_INTERVAL, mgmt_poll_interval, KC_TT_NUMBER),
    T(KC_T_MGMT_POLL_RECORDS, mgmt_poll_records, KC_TT_INTEGER),
    T(KC_T_MGMT_SUBSCRIBE_INTERVAL, mgmt_subscribe_interval, KC_TT_NUMBER),
    T(KC_T_MGMT_LONG_KEYINDEX, mgmt_long_keyindex, KC_TT_BOOL),
    T(KC_T_DESER_INITIAL_WAIT_INTERVALS, deser_initial_wait_intervals, KC_TT_INTEGER),
#undef T
};

void kc_tunables_init(kc_tunables *t)
{
    memset(t, 0, sizeof *t);
    strcpy(t->topic_separator, ".");
    strcpy(t->topic_suffix_subs, ".subs");
    strcpy(t->topic_suffix_keys, ".keys");
    strcpy(t->topic_suffix_reqs, ".reqs");
    t->crypto_max_pgen_age = 604800;
    t->crypto_sub_interval = 60;
    t->crypto_ratchet_interval = 86400;
    strcpy(t->mgmt_topic_chains, "chains");
    strcpy(t->mgmt_topic_allowlist, "allowlist");
    strcpy(t->mgmt_topic_denylist, "denylist");
    t->mgmt_flush_time = 2;
    t->mgmt_poll_interval = 500;
    t->mgmt_poll_records = 8;
    t->mgmt_subscribe_interval = 300;
    t->mgmt_long_keyindex = true;
    t->deser_initial_wait_intervals = 10;
}

int kc_tunable_lookup(const char *name, kc_tunable_id *id, kc_tunable_type *type)
{
    for (int i = 0; i < KC_T_COUNT; i++)
        if (strcmp(name, table[i].name) == 0) {
            if (id)
                *id = (kc_tunable_id)i;
            if (type)
                *type = table[i].type;
            return 0;
        }
    return -1;
}

const char *kc_tunable_name(kc_tunable_id id)
{
    return (unsigned)id < KC_T_COUNT ? table[id].name : "?";
}

static kc_status store_number(kc_tunables *t, kc_tunable_id id, double v, const char *origin,
                              kc_err *err)
{
    void *field = (char *)t + table[id].offset;
    if (!isfinite(v) || v < 0 || v > 1e15)
        return kc_err_set(err, KC_ERR_INVALID, "%s: %s: expected a non-negative number",
                          origin, table[id].name);
    if (table[id].type == KC_TT_INTEGER) {
        if (v != floor(v))
            return kc_err_set(err, KC_ERR_INVALID, "%s: %s: expected a whole number",
                              origin, table[id].name);
        if (id == KC_T_MGMT_POLL_RECORDS && v < 1)
            return kc_err_set(err, KC_ERR_INVALID, "%s: %s: expected at least 1",
                              origin, table[id].name);
        *(long *)field = (long)v;
    } else {
        *(double *)field = v;
    }
    return KC_OK;
}

kc_status kc_tunables_set_number(kc_tunables *t, const char *name, double value,
                                 kc_source source, const char *origin, kc_err *err)
{
    kc_tunable_id id;
    kc_tunable_type type;
    if (kc_tunable_lookup(name, &id, &type) != 0)
        return kc_err_set(err, KC_ERR_NOTFOUND, "%s: unknown tunable '%s'", origin, name);
    if (type != KC_TT_NUMBER && type != KC_TT_INTEGER)
        return kc_err_set(err, KC_ERR_INVALID, "%s: %s: expected %s, got a number", origin,
                          name, type == KC_TT_BOOL ? "a boolean" : "a string");
    if (source < t->source[id])
        return KC_OK;
    kc_status st = store_number(t, id, value, origin, err);
    if (st == KC_OK)
        t->source[id] = source;
    return st;
}

kc_status kc_tunables_set(kc_tunables *t, const char *name, const char *text,
                          kc_source source, const char *origin, kc_err *err)
{
    kc_tunable_id id;
    kc_tunable_type type;
    if (!origin)
        origin = "tunables";
    if (kc_tunable_lookup(name, &id, &type) != 0)
        return kc_err_set(err, KC_ERR_NOTFOUND, "%s: unknown tunable '%s'", origin, name);
    if (source < t->source[id])
        return KC_OK;
    void *field = (char *)t + table[id].offset;
    kc_status st = KC_OK;
    switch (type) {
    case KC_TT_STRING:
        if (strlen(text) > KC_TOPIC_NAME_MAX)
            return kc_err_set(err, KC_ERR_INVALID, "%s: %s: longer than %d characters",
                              origin, name, KC_TOPIC_NAME_MAX);
        strcpy(field, text);
        break;
    case KC_TT_BOOL:
        if (!strcmp(text, "True") || !strcmp(text, "true") || !strcmp(text, "1"))
            *(bool *)field = true;
        else if (!strcmp(text, "False") || !strcmp(text, "false") || !strcmp(text, "0"))
            *(bool *)field = false;
        else
            return kc_err_set(err, KC_ERR_INVALID, "%s: %s: expected True or False, got '%s'",
                              origin, name, text);
        break;
    case KC_TT_NUMBER:
    case KC_TT_INTEGER: {
        char *end;
        double v = strtod(text, &end);
        if (end == text || *end != '\0')
            return kc_err_set(err, KC_ERR_INVALID, "%s: %s: expected a number, got '%s'",
                              origin, name, text);
        st = store_number(t, id, v, origin, err);
        break;
    }
    }
    if (st == KC_OK)
        t->source[id] = source;
    return st;
}

static int topic_chars_valid(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

int kc_topic_name_valid(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= KC_TOPIC_NAME_MAX && topic_chars_valid(name) &&
           strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

kc_status kc_tunables_check(const kc_tunables *t, kc_tunable_id *bad, kc_err *err)
{
    kc_tunable_id id = KC_T_TOPIC_SEPARATOR;
    if (!t->topic_separator[0] || !topic_chars_valid(t->topic_separator)) {
        kc_err_set(err, KC_ERR_INVALID, "topic_separator: expected one or more of the "
                   "characters of topic names (A-Z a-z 0-9 . _ -), got '%s'", t->topic_separator);
        goto fail;
    }
    const kc_tunable_id suffixes[] = {KC_T_TOPIC_SUFFIX_SUBS, KC_T_TOPIC_SUFFIX_KEYS,
                                      KC_T_TOPIC_SUFFIX_REQS};
    for (size_t i = 0; i < 3; i++) {
        const char *s = (const char *)t + table[id = suffixes[i]].offset;
        if (strncmp(s, t->topic_separator, strlen(t->topic_separator)) != 0 ||
            strlen(s) == strlen(t->topic_separator) || !topic_chars_valid(s)) {
            kc_err_set(err, KC_ERR_INVALID, "%s: expected the separator '%s' followed by "
                       "topic-name characters, got '%s'", table[id].name, t->topic_separator, s);
            goto fail;
        }
    }
    const kc_tunable_id topics[] = {KC_T_MGMT_TOPIC_CHAINS, KC_T_MGMT_TOPIC_ALLOWLIST,
                                    KC_T_MGMT_TOPIC_DENYLIST};
    for (size_t i = 0; i < 3; i++) {
        const char *s = (const char *)t + table[id = topics[i]].offset;
        if (!kc_topic_name_valid(s)) {
            kc_err_set(err, KC_ERR_INVALID, "%s: '%s' is not a valid Kafka topic name",
                       table[id].name, s);
            goto fail;
        }
    }
    return KC_OK;
fail:
    if (bad)
        *bad = id;
    return KC_ERR_INVALID;
}

void kc_tunables_format(const kc_tunables *t, kc_tunable_id id, char *out, size_t size)
{
    if ((unsigned)id >= KC_T_COUNT) {
        snprintf(out, size, "?");
        return;
    }
    const void *field = (const char *)t + table[id].offset;
    switch (table[id].type) {
    case KC_TT_STRING:
        snprintf(out, size, "%s", (const char *)field);
        break;
    case KC_TT_BOOL:
        snprintf(out, size, "%s", *(const bool *)field ? "True" : "False");
        break;
    case KC_TT_INTEGER:
        snprintf(out, size, "%ld", *(const long *)field);
        break;
    case KC_TT_NUMBER: {
        double v = *(const double *)field;
        if (v == floor(v) && fabs(v) < 1e15) {
            snprintf(out, size, "%.0f", v);
            break;
        }
        for (int prec = 1; prec <= 17; prec++) {   /* shortest text that reads back */
            snprintf(out, size, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
        break;
    }
    }
}
