#include "kc_settings.h"

#include <fcntl.h>
#include <libconfig.h>
#include <librdkafka/rdkafka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kc_array.h"
#include "kc_file.h"

const char *const kc_settings_names[] = {
    "broker", "node_config", "node_id", "log_level", "lua_path", "lua_cpath",
    "scripts_dir", "policies", "exchange_variant", "metrics_listen", "kafka", "rdkafka", "tunables", NULL,
};

void kc_settings_init(kc_settings *s)
{
    memset(s, 0, sizeof *s);
    s->log_level = KC_LOG_WARNING;
    kc_tunables_init(&s->tunables);
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void free_kafka(kc_settings_kafka *k)
{
    free(k->name);
    if (k->value)
        sodium_memzero(k->value, strlen(k->value));   /* may be a password */
    free(k->value);
    free(k->origin);
}

void kc_settings_free(kc_settings *s)
{
    free(s->file);
    free(s->broker);
    free(s->node_config);
    free(s->node_id);
    free(s->lua_path);
    free(s->lua_cpath);
    free(s->scripts_dir);
    free(s->exchange_variant);
    free(s->metrics_listen);
    free_list(s->policies, s->npolicies);
    for (size_t i = 0; i < s->nkafka; i++)
        free_kafka(&s->kafka[i]);
    free(s->kafka);
    kc_settings_init(s);
}

/* ---- helpers --------------------------------------------------------------- */

/* `dir` + "/" + path, unless path is absolute or dir is NULL. */
static char *resolve(const char *dir, const char *path)
{
    if (!dir || path[0] == '/')
        return strdup(path);
    size_t n = strlen(dir) + strlen(path) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", dir, path);
    return out;
}

static kc_status replace_string(char **field, char *value, const char *origin, kc_err *err)
{
    if (!value)
        return kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", origin);
    free(*field);
    *field = value;
    return KC_OK;
}

char *kc_settings_lua_search_path(const char *dir, const char *text, int cpath)
{
    size_t cap = 2 * strlen(text) + 64, len = 0;
    char *out = malloc(cap);
    char *copy = strdup(text);
    if (!out || !copy) {
        free(out);
        free(copy);
        return NULL;
    }
    out[0] = '\0';
    char *save = NULL;
    for (char *e = strtok_r(copy, ";", &save); e; e = strtok_r(NULL, ";", &save)) {
        char *full = resolve(dir, e);
        if (!full || kc_array_reserve(&out, &cap, len + 3 * strlen(full) + 32, 1) != KC_OK) {
            free(full);
            free(out);
            free(copy);
            return NULL;
        }
        if (strchr(full, '?'))
            len += (size_t)sprintf(out + len, "%s;", full);
        else if (cpath)
            len += (size_t)sprintf(out + len, "%s/?.so;", full);
        else
            len += (size_t)sprintf(out + len, "%s/?.lua;%s/?/init.lua;", full, full);
        free(full);
    }
    free(copy);
    return out;
}

static kc_status add_kafka(kc_settings *s, const char *name, const char *value,
                           const char *origin, kc_err *err)
{
    /* Catch misspelt options now, with the file and line, rather than when
     * a client is created; ignored and empty ones warn when used. */
    const kc_kafka_use uses[] = {KC_KAFKA_PRODUCER, KC_KAFKA_CONSUMER};
    kc_status st = KC_OK;
    for (size_t u = 0; u < 2 && st == KC_OK; u++) {
        if (!*value || kc_kafka_option_kind(name, uses[u], NULL) == KC_KOPT_IGNORED)
            continue;
        kc_kafka_config probe;
        kc_kafka_config_init(&probe);
        st = kc_kafka_config_set(&probe, uses[u], name, value, origin, err);
        rd_kafka_conf_t *rc = rd_kafka_conf_new();
        char errstr[256];
        for (size_t i = 0; st == KC_OK && i < probe.n; i++)
            if (rd_kafka_conf_set(rc, probe.props[i].name, probe.props[i].value, errstr,
                                  sizeof errstr) != RD_KAFKA_CONF_OK)
                st = kc_err_set(err, KC_ERR_INVALID, "%s: kafka option %s: %s", origin, name,
                                errstr);
        rd_kafka_conf_destroy(rc);
        kc_kafka_config_clear(&probe);
    }
    if (st != KC_OK)
        return st;
    if (KC_ARRAY_GROW(s->kafka, s->nkafka, s->kafka_cap) != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", origin);
    kc_settings_kafka *k = &s->kafka[s->nkafka];
    k->name = strdup(name);
    k->value = strdup(value);
    k->origin = strdup(origin);
    if (!k->name || !k->value || !k->origin) {
        free_kafka(k);
        return kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", origin);
    }
    s->nkafka++;
    return KC_OK;
}

static kc_status set_log_level(kc_settings *s, const char *text, const char *origin,
                               kc_err *err)
{
    kc_log_level lv;
    if (kc_log_level_parse(text, &lv) != 0)
        return kc_err_set(err, KC_ERR_INVALID, "%s: setting log_level: expected DEBUG, INFO, "
                          "WARNING, ERROR or CRITICAL, got '%s'", origin, text);
    s->log_level = lv;
    return KC_OK;
}

/* "prop=value" of an rdkafka entry */
static kc_status add_rdkafka(kc_settings *s, const char *entry, const char *origin, kc_err *err)
{
    const char *eq = strchr(entry, '=');
    if (!eq || eq == entry)
        return kc_err_set(err, KC_ERR_INVALID, "%s: setting rdkafka: expected \"property=value\", "
                          "got '%.60s'", origin, entry);
    char *name = strndup(entry, (size_t)(eq - entry));
    if (!name)
        return kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", origin);
    kc_status st = add_kafka(s, name, eq + 1, origin, err);
    free(name);
    return st;
}

/* ---- from text (command line) -------------------------------------------- */

static kc_status set_list(char ***list, size_t *n, const char *text, const char *dir,
                          const char *origin, kc_err *err)
{
    char *copy = strdup(text);
    if (!copy)
        return kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", origin);
    free_list(*list, *n);
    *list = NULL;
    *n = 0;
    char *save = NULL;
    size_t cap = 0; /* the list is built afresh here */
    for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        char *item = KC_ARRAY_GROW(*list, *n, cap) == KC_OK ? resolve(dir, e) : NULL;
        if (!item) {
            free(copy);
            return kc_err_set(err, KC_ERR_NOMEM, "%s: out of memory", origin);
        }
        (*list)[(*n)++] = item;
    }
    free(copy);
    return KC_OK;
}

/* Sets a tunable; errors read "AT: setting 'tunables.NAME': what". */
static kc_status set_tunable(kc_settings *s, const char *name, const char *text,
                             kc_source source, const char *at, kc_err *err)
{
    kc_err inner;
    kc_status st = kc_tunables_set(&s->tunables, name, text, source, "", &inner);
    if (st != KC_OK) {
        /* inner reads ": NAME: what" or ": unknown tunable 'NAME'" */
        const char *what = strstr(inner.msg, name);
        what = what && what[strlen(name)] == ':' ? what + strlen(name) + 2 : "unknown setting";
        return kc_err_set(err, st, "%s: setting 'tunables.%s': %s", at, name, what);
    }
    return KC_OK;
}

/* The tunables as a whole (suffixes agree with the separator, ...). A
 * default suffix clashing with a configured separator is blamed on the
 * separator's setting. at_file names the file's setting (e.g. FILE:LINE). */
static kc_tunable_id blamed(const kc_tunables *t, kc_tunable_id bad)
{
    return t->source[bad] == KC_SOURCE_DEFAULT ? KC_T_TOPIC_SEPARATOR : bad;
}

static kc_status check_tunables(const kc_settings *s, const char *at_file, kc_err *err)
{
    kc_err inner;
    kc_tunable_id bad;
    if (kc_tunables_check(&s->tunables, &bad, &inner) == KC_OK)
        return KC_OK;
    kc_source src = s->tunables.source[blamed(&s->tunables, bad)];
    const char *at = src == KC_SOURCE_COMMAND_LINE ? "command line"
                     : src == KC_SOURCE_SETTINGS     ? at_file
                                                     : "default";
    const char *what = strchr(inner.msg, ':');
    return kc_err_set(err, KC_ERR_INVALID, "%s: setting 'tunables.%s'%s%s", at,
                      kc_tunable_name(bad), what ? what : inner.msg,
                      s->tunables.source[bad] == KC_SOURCE_DEFAULT ? " (the default)" : "");
}

kc_status kc_settings_check(const kc_settings *s, kc_err *err)
{
    return check_tunables(s, s->file ? s->file : "settings", err);
}

/* Sets a setting from text; dir is where relative paths are anchored. */
static kc_status set_text(kc_settings *s, const char *name, const char *value, const char *dir,
                          kc_source source, const char *origin, kc_err *err)
{
    if (strncmp(name, "tunables.", 9) == 0)
        return set_tunable(s, name + 9, value, source, origin, err);
    if (strncmp(name, "kafka.", 6) == 0)
        return add_kafka(s, name + 6, value, origin, err);
    if (strcmp(name, "rdkafka") == 0)
        return add_rdkafka(s, value, origin, err);
    if (strcmp(name, "broker") == 0)
        return replace_string(&s->broker, strdup(value), origin, err);
    if (strcmp(name, "node_id") == 0)
        return replace_string(&s->node_id, strdup(value), origin, err);
    if (strcmp(name, "node_config") == 0)
        return replace_string(&s->node_config, resolve(dir, value), origin, err);
    if (strcmp(name, "scripts_dir") == 0)
        return replace_string(&s->scripts_dir, resolve(dir, value), origin, err);
    if (strcmp(name, "metrics_listen") == 0)
        return replace_string(&s->metrics_listen, strdup(value), origin, err);
    if (strcmp(name, "exchange_variant") == 0)
        return replace_string(&s->exchange_variant, resolve(dir, value), origin, err);
    if (strcmp(name, "lua_path") == 0)
        return replace_string(&s->lua_path, kc_settings_lua_search_path(dir, value, 0), origin,
                              err);
    if (strcmp(name, "lua_cpath") == 0)
        return replace_string(&s->lua_cpath, kc_settings_lua_search_path(dir, value, 1), origin,
                              err);
    if (strcmp(name, "log_level") == 0)
        return set_log_level(s, value, origin, err);
    if (strcmp(name, "policies") == 0)
        return set_list(&s->policies, &s->npolicies, value, dir, origin, err);
    return kc_err_set(err, KC_ERR_NOTFOUND, "%s: unknown setting '%s'", origin, name);
}

kc_status kc_settings_set(kc_settings *s, const char *name, const char *value,
                          const char *origin, kc_err *err)
{
    if (!origin)
        origin = "command line";
    return set_text(s, name, value, NULL, KC_SOURCE_COMMAND_LINE, origin, err);
}

/* ---- from the file ----------------------------------------------------------- */

typedef struct loader {
    kc_settings *s;
    const char *path;
    char *dir;
    kc_err *err;
} loader;

static const char *where(const loader *ld, const config_setting_t *st, char *buf, size_t n)
{
    const char *file = config_setting_source_file(st);
    snprintf(buf, n, "%s:%u", file ? file : ld->path, config_setting_source_line(st));
    return buf;
}

/* A scalar as text; numbers as Python prints them. */
static int scalar_text(const config_setting_t *st, char *out, size_t n)
{
    switch (config_setting_type(st)) {
    case CONFIG_TYPE_STRING:
        snprintf(out, n, "%s", config_setting_get_string(st));
        return 1;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        snprintf(out, n, "%lld", config_setting_get_int64(st));
        return 1;
    case CONFIG_TYPE_FLOAT:
        snprintf(out, n, "%.17g", config_setting_get_float(st));
        return 1;
    case CONFIG_TYPE_BOOL:
        snprintf(out, n, "%s", config_setting_get_bool(st) ? "True" : "False");
        return 1;
    default:
        return 0;
    }
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP: return "a group { ... }";
    case CONFIG_TYPE_ARRAY: return "an array [ ... ]";
    case CONFIG_TYPE_LIST: return "a list ( ... )";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "a boolean";
    default: return "a number";
    }
}

static kc_status wrong_type(loader *ld, const config_setting_t *st, const char *name,
                            const char *expected)
{
    char at[600];
    return kc_err_set(ld->err, KC_ERR_INVALID, "%s: setting '%s': expected %s, got %s",
                      where(ld, st, at, sizeof at), name, expected,
                      type_name(config_setting_type(st)));
}

static kc_status load_tunables(loader *ld, const config_setting_t *group)
{
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *st = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(st);
        char at[600], full[300], text[512];
        where(ld, st, at, sizeof at);
        snprintf(full, sizeof full, "tunables.%s", name);
        kc_tunable_type type;
        if (kc_tunable_lookup(name, NULL, &type) != 0)
            return kc_err_set(ld->err, KC_ERR_NOTFOUND, "%s: unknown setting '%s' (see the "
                              "tunables of the sample kafkacrypto.cfg)", at, full);
        int t = config_setting_type(st);
        if (type == KC_TT_STRING && t != CONFIG_TYPE_STRING)
            return wrong_type(ld, st, full, "a string");
        if (type == KC_TT_BOOL && t != CONFIG_TYPE_BOOL)
            return wrong_type(ld, st, full, "true or false");
        if ((type == KC_TT_NUMBER || type == KC_TT_INTEGER) && !config_setting_is_number(st))
            return wrong_type(ld, st, full, "a number");
        scalar_text(st, text, sizeof text);
        kc_status rc = set_tunable(ld->s, name, text, KC_SOURCE_SETTINGS, at, ld->err);
        if (rc != KC_OK)
            return rc;
    }
    /* Name the line of the offending tunable when this group set it. */
    kc_tunable_id bad;
    char at[600];
    const config_setting_t *st = NULL;
    if (kc_tunables_check(&ld->s->tunables, &bad, NULL) != KC_OK)
        st = config_setting_get_member(group, kc_tunable_name(blamed(&ld->s->tunables, bad)));
    return check_tunables(ld->s, st ? where(ld, st, at, sizeof at) : ld->path, ld->err);
}

static kc_status load_kafka(loader *ld, const config_setting_t *group)
{
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *st = config_setting_get_elem(group, (unsigned)i);
        char at[600], text[4096], full[300];
        snprintf(full, sizeof full, "kafka.%s", config_setting_name(st));
        if (!scalar_text(st, text, sizeof text))
            return wrong_type(ld, st, full, "a string, number or boolean");
        kc_status rc = add_kafka(ld->s, config_setting_name(st), text,
                                 where(ld, st, at, sizeof at), ld->err);
        sodium_memzero(text, sizeof text);
        if (rc != KC_OK)
            return rc;
    }
    return KC_OK;
}

/* A string, or an array/list of strings joined by `sep` into one text. */
static kc_status strings(loader *ld, const config_setting_t *st, const char *name,
                         const char *sep, char **out)
{
    if (config_setting_type(st) == CONFIG_TYPE_STRING) {
        *out = strdup(config_setting_get_string(st));
        return *out ? KC_OK : kc_err_set(ld->err, KC_ERR_NOMEM, "out of memory");
    }
    if (config_setting_type(st) != CONFIG_TYPE_ARRAY && config_setting_type(st) != CONFIG_TYPE_LIST)
        return wrong_type(ld, st, name, "a string or an array of strings");
    size_t len = 1;
    for (int i = 0; i < config_setting_length(st); i++) {
        const config_setting_t *e = config_setting_get_elem(st, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return wrong_type(ld, e, name, "strings only");
        len += strlen(config_setting_get_string(e)) + 1;
    }
    char *text = calloc(1, len);
    if (!text)
        return kc_err_set(ld->err, KC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < config_setting_length(st); i++) {
        if (i)
            strcat(text, sep);
        strcat(text, config_setting_get_string(config_setting_get_elem(st, (unsigned)i)));
    }
    *out = text;
    return KC_OK;
}

static kc_status load_setting(loader *ld, const config_setting_t *st)
{
    const char *name = config_setting_name(st);
    char at[600];
    where(ld, st, at, sizeof at);
    if (strcmp(name, "tunables") == 0 || strcmp(name, "kafka") == 0) {
        if (!config_setting_is_group(st))
            return wrong_type(ld, st, name, "a group { name = value; ... }");
        return name[0] == 't' ? load_tunables(ld, st) : load_kafka(ld, st);
    }
    if (strcmp(name, "rdkafka") == 0) {
        if (!config_setting_is_array(st) && !config_setting_is_list(st))
            return wrong_type(ld, st, name, "an array of \"property=value\" strings");
        for (int i = 0; i < config_setting_length(st); i++) {
            const config_setting_t *e = config_setting_get_elem(st, (unsigned)i);
            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                return wrong_type(ld, e, name, "\"property=value\" strings");
            kc_status rc = add_rdkafka(ld->s, config_setting_get_string(e),
                                       where(ld, e, at, sizeof at), ld->err);
            if (rc != KC_OK)
                return rc;
        }
        return KC_OK;
    }
    if (strcmp(name, "log_level") == 0 && config_setting_is_number(st)) {
        char text[32];
        scalar_text(st, text, sizeof text);
        return set_log_level(ld->s, text, at, ld->err);
    }
    int is_list = strcmp(name, "policies") == 0 || strcmp(name, "broker") == 0 ||
                  strcmp(name, "lua_path") == 0 || strcmp(name, "lua_cpath") == 0;
    char *text = NULL;
    kc_status rc;
    if (is_list)
        rc = strings(ld, st, name, strcmp(name, "policies") == 0 || strcmp(name, "broker") == 0
                                       ? "," : ";", &text);
    else if (config_setting_type(st) != CONFIG_TYPE_STRING)
        return wrong_type(ld, st, name, "a string");
    else
        rc = (text = strdup(config_setting_get_string(st))) ? KC_OK
                                                           : kc_err_set(ld->err, KC_ERR_NOMEM,
                                                                        "out of memory");
    if (rc == KC_OK) {
        char origin[700];
        snprintf(origin, sizeof origin, "%s", at);
        rc = set_text(ld->s, name, text, ld->dir, KC_SOURCE_SETTINGS, origin, ld->err);
        if (rc == KC_ERR_NOTFOUND) {
            size_t n = 0;
            char known[400] = "";
            for (const char *const *k = kc_settings_names; *k; k++)
                n += (size_t)snprintf(known + n, n < sizeof known ? sizeof known - n : 0, "%s%s",
                                      k == kc_settings_names ? "" : ", ", *k);
            rc = kc_err_set(ld->err, KC_ERR_NOTFOUND, "%s: unknown setting '%s' (known: %s)", at,
                            name, known);
        }
    }
    free(text);
    return rc;
}

kc_status kc_settings_load(kc_settings *s, const char *path, kc_err *err)
{
    config_t cfg;
    config_init(&cfg);
    loader ld = {s, path, NULL, err};
    const char *slash = strrchr(path, '/');
    ld.dir = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : strdup(".");
    if (!ld.dir) {
        config_destroy(&cfg);
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    }
    config_set_include_dir(&cfg, ld.dir);
    kc_status st = KC_OK;
    int fd = -1;
    kc_err why = {0};
    kc_status ost = kc_file_open(path, O_RDONLY, &fd, &why);
    FILE *f = ost == KC_OK ? fdopen(fd, "r") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        st = ost == KC_ERR_INVALID
                 ? kc_err_set(err, KC_ERR_INVALID, "settings file %s: not a regular file", path)
                 : kc_err_set(err, KC_ERR_NOTFOUND, "settings file %s: cannot open", path);
    } else if (!config_read(&cfg, f)) {
        const char *file = config_error_file(&cfg);
        st = kc_err_set(err, KC_ERR_INVALID, "%s:%d: %s", file ? file : path,
                        config_error_line(&cfg), config_error_text(&cfg));
    } else {
        const config_setting_t *root = config_root_setting(&cfg);
        for (int i = 0; st == KC_OK && i < config_setting_length(root); i++)
            st = load_setting(&ld, config_setting_get_elem(root, (unsigned)i));
    }
    if (f)
        fclose(f);
    if (st == KC_OK)
        st = replace_string(&s->file, strdup(path), path, err);
    free(ld.dir);
    config_destroy(&cfg);
    return st;
}

kc_status kc_settings_apply_kafka(const kc_settings *s, kc_kafka_use use, kc_kafka_config *conf,
                                  kc_err *err)
{
    if (s->broker) {
        kc_status st = kc_kafka_config_set(conf, use, "bootstrap.servers", s->broker, "broker",
                                           err);
        if (st != KC_OK)
            return st;
    }
    for (size_t i = 0; i < s->nkafka; i++) {
        kc_status st = kc_kafka_config_set(conf, use, s->kafka[i].name, s->kafka[i].value,
                                         s->kafka[i].origin, err);
        if (st != KC_OK)
            return st;
    }
    return KC_OK;
}
