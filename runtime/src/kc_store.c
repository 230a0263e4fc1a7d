#include "kc_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kc_array.h"
#include "kc_chain.h"
#include "kc_file.h"
#include "kc_log.h"
#include "kc_unicode.h"

static const char *const upstream_ca_files[] = {
    "/etc/pki/tls/cert.pem",                  /* RHEL/CentOS */
    "/usr/lib/ssl/certs/ca-certificates.crt", /* Debian/Ubuntu */
    NULL};

/* ---- the locked file ------------------------------------------------------------------ */
/* kc_file does the locking and atomic replacing (see kc_file.h). */

/* Replaces the store's file with content, keeping the lock throughout: the
 * new file is locked before it takes the old one's name. */
static kc_status replace_file(kc_store *s, const kc_buf *content, kc_err *err)
{
    kc_status st = kc_file_replace_locked(s->path, content->data, content->len, &s->fd, err);
    if (st != KC_OK)
        return st;
    return kc_buf_set(&s->content, content->data, content->len);
}

/* ---- names and values --------------------------------------------------------------- */

static bool text_ok(const char *t)
{
    return kc_utf8_valid((const uint8_t *)t, strlen(t)) && !strpbrk(t, "\r\n");
}

char *kc_store_section_name(const kc_store *s, const char *section)
{
    size_t n = strlen(s->node_id) + (section ? strlen(section) + 1 : 0) + 1;
    char *name = malloc(n);
    if (name)
        snprintf(name, n, section ? "%s-%s" : "%s", s->node_id, section);
    return name;
}

/* What upstream would write for an option name: str_encode(name, iskey),
 * refusing names the INI format would read back differently. */
static kc_status encode_key(const kc_value *name, kc_buf *key, kc_err *err)
{
    kc_buf_reset(key);
    kc_status st = kc_value_encode(name, true, key, err);
    if (st != KC_OK)
        return st;
    const uint8_t *k = key->data;
    size_t n = key->len, s, e;
    const char *why = NULL;
    if (n == 0)
        why = "it is empty";
    else if (k[0] == ';' || k[0] == '[')
        why = "it starts with ';' or '['";
    else if (memchr(k, ':', n) || memchr(k, '\n', n) || memchr(k, '\r', n))
        why = "it contains ':' or a line break";
    else if (kc_uc_strip(k, n, &s, &e), s != 0 || e != n)
        why = "it starts or ends with whitespace";
    if (why)
        return kc_err_set(err, KC_ERR_INVALID, "option name '%.*s' cannot be stored: %s",
                          (int)(n > 80 ? 80 : n), (const char *)k, why);
    return KC_OK;
}

static kc_status encode_value(const kc_value *v, kc_buf *text, const char *what, kc_err *err)
{
    kc_buf_reset(text);
    kc_status st = kc_value_encode(v, false, text, err);
    if (st != KC_OK)
        return st;
    if (text->len && memchr(text->data, '\r', text->len))
        return kc_err_set(err, KC_ERR_INVALID,
                          "%s: the value contains a carriage return, which the config file "
                          "cannot hold", what);
    if (!kc_ini_value_settable(text->data, text->len))
        return kc_err_set(err, KC_ERR_INVALID,
                          "%s: the value contains a '%%' that is neither '%%%%' nor part of "
                          "'%%(name)s' (write '%%%%' for a percent sign)", what);
    return KC_OK;
}

/* One store_value on an in-memory ini: section by full name, value NULL or
 * NONE deletes. */
static kc_status ini_store(kc_ini *ini, const char *secname, const kc_value *name,
                           const kc_value *value, kc_err *err)
{
    kc_buf key = KC_BUF_INIT, text = KC_BUF_INIT;
    kc_ini_section *sec;
    kc_status st = kc_ini_section_add(ini, (const uint8_t *)secname, strlen(secname), &sec);
    if (st == KC_OK)
        st = encode_key(name, &key, err);
    if (st == KC_OK && value && value->type != KC_VALUE_NONE) {
        char what[200];
        snprintf(what, sizeof what, "option '%.*s'", (int)(key.len > 80 ? 80 : key.len),
                 (const char *)key.data);
        st = encode_value(value, &text, what, err);
        if (st == KC_OK)
            st = kc_ini_option_set(sec, key.data, key.len, text.data, text.len);
    } else if (st == KC_OK) {
        kc_ini_option_remove(sec, key.data, key.len);
    }
    kc_buf_free(&key);
    kc_buf_free(&text);
    return st;
}

/* Makes `next` the store's state, rewriting the file unless the bytes are
 * unchanged. next is consumed either way. */
static kc_status commit(kc_store *s, kc_ini *next, kc_err *err)
{
    kc_buf content = KC_BUF_INIT;
    kc_status st = kc_ini_write(next, &content);
    if (st != KC_OK)
        kc_err_set(err, st, "file %s: out of memory", s->path);
    else if (content.len != s->content.len ||
             (content.len && memcmp(content.data, s->content.data, content.len) != 0))
        st = replace_file(s, &content, err);
    kc_buf_free(&content);
    if (st != KC_OK) {
        kc_ini_free(next);
        return st;
    }
    kc_ini_free(&s->ini);
    s->ini = *next;
    return KC_OK;
}

/* ConfigParser.get + str_decode. */
static kc_status get_decoded(const kc_store *s, const kc_ini_section *sec, const uint8_t *name,
                             size_t n, kc_value *out, kc_err *err)
{
    kc_buf text = KC_BUF_INIT;
    kc_status st = kc_ini_get(&s->ini, sec, name, n, &text, err);
    if (st == KC_OK)
        st = kc_value_decode(text.data, text.len, false, out);
    else if (st == KC_ERR_INVALID)
        kc_err_prefix(err, "file %s: ", s->path);
    kc_buf_free(&text);
    return st;
}

/* ---- opening --------------------------------------------------------------------------- */

/* The content upstream's __init_cryptostore (and, for kafka, its
 * __init_kafkacryptostore) give a new file, in upstream's order. */
static kc_status init_new_file(const kc_store *s, kc_ini *ini, const kc_store_options *opts,
                               kc_err *err)
{
    kc_buf entry = KC_BUF_INIT;
    kc_status st = kc_chain_temporary_rot_entry(&entry);
    kc_value yes = kc_value_bool(true), temporary = kc_value_bytes(entry.data, entry.len);
    kc_value empty = kc_value_text(""), ssl = kc_value_text("SSL");
    const struct {
        const char *section; /* NULL: the node section */
        const char *name;    /* NULL: just create the section */
        const kc_value *value;
    } steps[] = {
        {NULL, "MGMT_LONG_KEYINDEX", &yes},
        {"allowlist", opts->trust_temporary_rot ? "temporary" : NULL, &temporary},
        {"denylist", NULL, NULL},
        {"crypto", NULL, NULL},
        /* KafkaCryptoStore only */
        {"kafka", "bootstrap_servers", &empty},
        {"kafka", "security_protocol", &ssl},
        {"kafka-consumer", NULL, NULL},
        {"kafka-producer", NULL, NULL},
        {"kafka-crypto", NULL, NULL},
        {"kafka-crypto-consumer", NULL, NULL},
        {"kafka-crypto-producer", NULL, NULL},
    };
    size_t nsteps = opts->kafka ? sizeof steps / sizeof steps[0] : 4;
    for (size_t i = 0; i < nsteps && st == KC_OK; i++) {
        char *secname = kc_store_section_name(s, steps[i].section);
        kc_ini_section *sec;
        if (!secname)
            st = KC_ERR_NOMEM;
        else if (steps[i].name) {
            kc_value name = kc_value_text(steps[i].name);
            st = ini_store(ini, secname, &name, steps[i].value, err);
        } else {
            st = kc_ini_section_add(ini, (const uint8_t *)secname, strlen(secname), &sec);
        }
        free(secname);
    }
    kc_buf_free(&entry);
    return st;
}

/* Opens and locks path, or creates it with the content init_new_file gives
 * when it is missing and node_id is set. *created tells which. */
static kc_status open_locked(kc_store *s, const char *node_id, const kc_store_options *opts,
                             bool *created, kc_err *err)
{
    *created = false;
    for (int attempt = 0; attempt < 16; attempt++) {
        kc_status st = kc_file_open_locked(s->path, 0, &s->fd, err);
        if (st == KC_ERR_NOTFOUND && node_id) {
            kc_ini ini;
            kc_ini_init(&ini);
            kc_value id = kc_value_text(node_id), key = kc_value_text("node_id");
            st = ini_store(&ini, "DEFAULT", &key, &id, err);
            if (st == KC_OK)
                st = init_new_file(s, &ini, opts, err);
            kc_buf content = KC_BUF_INIT;
            if (st == KC_OK)
                st = kc_ini_write(&ini, &content);
            if (st == KC_OK)
                st = kc_file_create(s->path, content.data, content.len, 0600, &s->fd, err);
            if (st == KC_OK) {
                kc_log(KC_LOG_WARNING, KC_STORE_LOGGER,
                       "Initializing new CryptoStore file=%s, nodeID=%s.", s->path, node_id);
                if (opts->trust_temporary_rot)
                    kc_log(KC_LOG_WARNING, KC_STORE_LOGGER,
                           "  Including a default/temporary root of trust. Once proper access is "
                           "provisioned, this root of trust should be removed or distrusted.");
                else
                    kc_log(KC_LOG_WARNING, KC_STORE_LOGGER,
                           "  No root of trust included: provision this node before it can "
                           "exchange keys.");
                kc_log(KC_LOG_WARNING, KC_STORE_LOGGER, "  CryptoStore Initialized.");
                s->ini = ini;
                kc_buf_free(&s->content);
                s->content = content;
                *created = true;
                return KC_OK;
            }
            kc_ini_free(&ini);
            kc_buf_free(&content);
            if (st == KC_ERR_STATE)
                continue; /* created by someone else meanwhile: open theirs */
            return st == KC_ERR_NOMEM ? kc_err_set(err, st, "file %s: out of memory", s->path)
                                      : st;
        }
        if (st == KC_ERR_NOTFOUND)
            kc_err_set(err, st, "file %s: cannot open: %s (give a node ID to create it)", s->path,
                       strerror(ENOENT));
        return st;
    }
    return kc_err_set(err, KC_ERR_BUSY, "file %s: keeps appearing and disappearing while opening",
                      s->path);
}

/* The node_id rules of upstream's CryptoStore.__init__. */
static kc_status adopt_node_id(kc_store *s, const char *node_id, kc_err *err)
{
    kc_buf file_id = KC_BUF_INIT;
    kc_status st = kc_ini_get(&s->ini, &s->ini.defaults, (const uint8_t *)"node_id", 7,
                              &file_id, err);
    if (st == KC_ERR_NOTFOUND)
        st = KC_OK;
    else if (st != KC_OK) {
        kc_err_prefix(err, "file %s: ", s->path);
        kc_buf_free(&file_id);
        return st;
    }
    if (!node_id) {
        if (file_id.len == 0 || memchr(file_id.data, 0, file_id.len))
            st = kc_err_set(err, KC_ERR_INVALID,
                            "file %s: no node_id in [DEFAULT] and no node ID given", s->path);
        else if (!(s->node_id = strndup((const char *)file_id.data, file_id.len)))
            st = KC_ERR_NOMEM;
        kc_buf_free(&file_id);
        return st;
    }
    if (file_id.len > 0 &&
        (file_id.len != strlen(node_id) || memcmp(file_id.data, node_id, file_id.len) != 0)) {
        st = kc_err_set(err, KC_ERR_INVALID,
                        "Node ID mismatch in file %s: it belongs to node '%.*s', not '%s'",
                        s->path, (int)(file_id.len > 100 ? 100 : file_id.len),
                        (const char *)file_id.data, node_id);
        kc_buf_free(&file_id);
        return st;
    }
    kc_buf_free(&file_id);
    /* upstream writes node_id on every start that names the node */
    kc_ini next;
    kc_value id = kc_value_text(node_id), key = kc_value_text("node_id");
    if ((st = kc_ini_clone(&next, &s->ini)) != KC_OK)
        return kc_err_set(err, st, "file %s: out of memory", s->path);
    if ((st = ini_store(&next, "DEFAULT", &key, &id, err)) != KC_OK) {
        kc_ini_free(&next);
        return kc_err_prefix(err, "file %s: node_id: ", s->path);
    }
    return commit(s, &next, err);
}

static kc_status load_keyed_locked(kc_store *s, const char *section, const kc_value *name,
                                   kc_value *out, kc_err *err);
static kc_status store_values_locked(kc_store *s, const char *section, size_t n,
                                     const kc_value *names, const kc_value *values, kc_err *err);

/* Python's logging._checkLevel on a typed value. */
static bool python_level(const kc_value *v, kc_log_level *out)
{
    static const struct { const char *name; int level; } names[] = {
        {"CRITICAL", 50}, {"FATAL", 50}, {"ERROR", 40}, {"WARN", 30},
        {"WARNING", 30},  {"INFO", 20},  {"DEBUG", 10}, {"NOTSET", 0}};
    if (v->type == KC_VALUE_INT || v->type == KC_VALUE_BOOL) {
        if (v->i < 0 || v->i > 1000)
            return false;
        *out = (kc_log_level)v->i;
        return true;
    }
    if (v->type != KC_VALUE_TEXT)
        return false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == v->len && memcmp(names[i].name, v->data, v->len) == 0) {
            *out = (kc_log_level)names[i].level;
            return true;
        }
    return false;
}

/* What KafkaCryptoStore.__init__ does after CryptoStore's part. */
static kc_status kafka_open_steps(kc_store *s, const kc_store_options *opts, kc_err *err)
{
    kc_value v = kc_value_none(), name = kc_value_text("log_level");
    kc_status st;
    if (!opts->keep_log_level) {
        kc_log_level level = KC_LOG_WARNING;
        st = load_keyed_locked(s, "crypto", &name, &v, err);
        if (st == KC_OK && !python_level(&v, &level))
            kc_log(KC_LOG_WARNING, KC_STORE_LOGGER,
                   "log_level in [%s-crypto] of %s is not a logging level; using WARNING",
                   s->node_id, s->path);
        else if (st != KC_OK && st != KC_ERR_NOTFOUND)
            return st;
        kc_value_clear(&v);
        kc_log_set_level(level);
    }
    name = kc_value_text("ssl_cafile");
    st = load_keyed_locked(s, "kafka", &name, &v, err);
    if (st != KC_OK && st != KC_ERR_NOTFOUND)
        return st;
    bool unset = st == KC_ERR_NOTFOUND || v.type == KC_VALUE_NONE ||
                 ((v.type == KC_VALUE_TEXT || v.type == KC_VALUE_BYTES) && v.len == 0);
    kc_value_clear(&v);
    if (!unset)
        return KC_OK;
    kc_log(KC_LOG_WARNING, KC_STORE_LOGGER, "  Looking for system CA list.");
    const char *const *files = opts->ca_files ? opts->ca_files : upstream_ca_files;
    const char *found = "";
    for (size_t i = 0; files[i]; i++)
        if (kc_file_exists(files[i])) {
            found = files[i];
            break;
        }
    if (!*found)
        kc_log(KC_LOG_WARNING, KC_STORE_LOGGER,
               "    No system-wide CA list found. Update ssl_cafile in %s to point to a list of "
               "CAs that should be trusted for SSL/TLS endpoints.", s->path);
    kc_value ca = kc_value_text(found);
    return store_values_locked(s, "kafka", 1, &name, &ca, err);
}

kc_status kc_store_open(kc_store **out, const char *path, const char *node_id,
                        const kc_store_options *opts, kc_err *err)
{
    static const kc_store_options plain = {0};
    if (!opts)
        opts = &plain;
    *out = NULL;
    if (kc_init() != 0)
        return kc_err_set(err, KC_ERR_CRYPTO, "libsodium failed to initialise");
    if (node_id && !*node_id)
        node_id = NULL;
    if (node_id && (!text_ok(node_id) ||
                    !kc_ini_value_settable((const uint8_t *)node_id, strlen(node_id))))
        return kc_err_set(err, KC_ERR_INVALID,
                          "node ID '%.100s': expected UTF-8 text without line breaks or a lone '%%'",
                          node_id);
    if (!path && !node_id)
        return kc_err_set(err, KC_ERR_INVALID, "no config file and no node ID given");
    kc_store *s = calloc(1, sizeof *s);
    if (!s)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    s->fd = -1;
    kc_ini_init(&s->ini);
    pthread_mutex_init(&s->mu, NULL);
    if (path) {
        s->path = strdup(path);
    } else if ((s->path = malloc(strlen(node_id) + 8))) {
        strcpy(s->path, node_id);
        strcat(s->path, ".config");
    }
    bool created = false;
    kc_status st = s->path && (!node_id || (s->node_id = strdup(node_id)))
                       ? open_locked(s, node_id, opts, &created, err)
                       : kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    if (st == KC_OK && !created) {
        st = kc_file_read_fd(s->fd, s->path, KC_STORE_MAX_FILE, &s->content, err);
        if (st == KC_OK)
            st = kc_ini_parse(&s->ini, s->content.data, s->content.len, s->path, err);
        if (st == KC_OK)
            st = adopt_node_id(s, node_id, err);
    }
    if (st == KC_OK && opts->kafka)
        st = kafka_open_steps(s, opts, err);
    if (st != KC_OK) {
        kc_store_close(s);
        return st;
    }
    *out = s;
    return KC_OK;
}

void kc_store_close(kc_store *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd); /* and with it the lock */
    kc_ini_free(&s->ini);
    kc_buf_free(&s->content);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s->node_id);
    free(s);
}

const char *kc_store_node_id(const kc_store *s)
{
    return s->node_id;
}

const char *kc_store_path(const kc_store *s)
{
    return s->path;
}

/* ---- load_value / store_value ---------------------------------------------------------- */

/* The full name of an API section ("<node>-<section>"), or NULL with *st
 * and err set. */
static char *full_section_name(const kc_store *s, const char *section, kc_status *st,
                               kc_err *err)
{
    if (section && !text_ok(section)) {
        *st = kc_err_set(err, KC_ERR_INVALID,
                         "file %s: section name '%.80s': expected UTF-8 text without line breaks",
                         s->path, section);
        return NULL;
    }
    char *name = kc_store_section_name(s, section);
    *st = name ? KC_OK : kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    return name;
}

static kc_status load_keyed_locked(kc_store *s, const char *section, const kc_value *name,
                                   kc_value *out, kc_err *err)
{
    kc_value_clear(out);
    kc_status st;
    char *secname = full_section_name(s, section, &st, err);
    if (!secname)
        return st;
    kc_buf key = KC_BUF_INIT;
    st = kc_value_encode(name, true, &key, err);
    if (st == KC_OK) {
        const kc_ini_section *sec =
            kc_ini_section_find(&s->ini, (const uint8_t *)secname, strlen(secname));
        if (sec && kc_ini_has_option(&s->ini, sec, key.data, key.len))
            st = get_decoded(s, sec, key.data, key.len, out, err);
        else if (kc_ini_option_find(&s->ini.defaults, key.data, key.len))
            st = get_decoded(s, &s->ini.defaults, key.data, key.len, out, err);
        else
            st = kc_err_set(err, KC_ERR_NOTFOUND, "file %s: no option '%.*s' in [%s] or [DEFAULT]",
                            s->path, (int)(key.len > 80 ? 80 : key.len), (const char *)key.data,
                            secname);
    }
    free(secname);
    kc_buf_free(&key);
    return st;
}

kc_status kc_store_load_keyed(kc_store *s, const char *section, const kc_value *name,
                              kc_value *out, kc_err *err)
{
    pthread_mutex_lock(&s->mu);
    kc_status st = load_keyed_locked(s, section, name, out, err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

kc_status kc_store_load_value(kc_store *s, const char *section, const char *name,
                              kc_value *out, kc_err *err)
{
    kc_value n = kc_value_text(name);
    return kc_store_load_keyed(s, section, &n, out, err);
}

static kc_status store_values_locked(kc_store *s, const char *section, size_t n,
                                     const kc_value *names, const kc_value *values, kc_err *err)
{
    if (n == 0)
        return KC_OK;
    kc_status st;
    char *secname = full_section_name(s, section, &st, err);
    if (!secname)
        return st;
    kc_ini next;
    st = kc_ini_clone(&next, &s->ini);
    for (size_t i = 0; i < n && st == KC_OK; i++)
        if ((st = ini_store(&next, secname, &names[i], values ? &values[i] : NULL, err)) != KC_OK)
            kc_err_prefix(err, "file %s: section [%s]: ", s->path, secname);
    free(secname);
    if (st == KC_ERR_NOMEM)
        kc_err_set(err, st, "file %s: out of memory", s->path);
    if (st != KC_OK) {
        kc_ini_free(&next);
        return st;
    }
    return commit(s, &next, err);
}

kc_status kc_store_store_values(kc_store *s, const char *section, size_t n,
                                const kc_value *names, const kc_value *values, kc_err *err)
{
    pthread_mutex_lock(&s->mu);
    kc_status st = store_values_locked(s, section, n, names, values, err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

kc_status kc_store_store_keyed(kc_store *s, const char *section, const kc_value *name,
                               const kc_value *value, kc_err *err)
{
    kc_value none = kc_value_none();
    return kc_store_store_values(s, section, 1, name, value ? value : &none, err);
}

kc_status kc_store_store_value(kc_store *s, const char *section, const char *name,
                               const kc_value *value, kc_err *err)
{
    kc_value n = kc_value_text(name);
    return kc_store_store_keyed(s, section, &n, value, err);
}

/* ---- load_section ------------------------------------------------------------------------ */

static long section_index(const kc_section *sec, const kc_value *key)
{
    for (size_t i = 0; i < sec->n; i++)
        if (kc_value_equal(&sec->items[i].key, key))
            return (long)i;
    return -1;
}

kc_status kc_section_set(kc_section *sec, const kc_value *key, const kc_value *value)
{
    long i = section_index(sec, key);
    if (i >= 0)
        return kc_value_copy(&sec->items[i].value, value);
    /* kc_section is public and has no capacity: grown one at a time. */
    if (kc_array_resize(&sec->items, sec->n + 1, sizeof *sec->items) != KC_OK)
        return KC_ERR_NOMEM;
    kc_entry *e = &sec->items[sec->n];
    e->key = kc_value_none();
    e->value = kc_value_none();
    kc_status st = kc_value_copy(&e->key, key);
    if (st == KC_OK)
        st = kc_value_copy(&e->value, value);
    if (st != KC_OK) {
        kc_value_clear(&e->key);
        kc_value_clear(&e->value);
        return st;
    }
    sec->n++;
    return KC_OK;
}

bool kc_section_pop(kc_section *sec, const kc_value *key)
{
    long i = section_index(sec, key);
    if (i < 0)
        return false;
    kc_value_clear(&sec->items[i].key);
    kc_value_clear(&sec->items[i].value);
    memmove(&sec->items[i], &sec->items[i + 1], (sec->n - (size_t)i - 1) * sizeof *sec->items);
    sec->n--;
    return true;
}

/* rv[str_decode(name, iskey)] = str_decode(get(section, name)) for every
 * option of the list. */
static kc_status decode_options(kc_store *s, const kc_ini_section *sec,
                                const kc_ini_option **opts, size_t n, kc_section *rv,
                                kc_err *err)
{
    kc_status st = KC_OK;
    for (size_t i = 0; i < n && st == KC_OK; i++) {
        kc_value k = kc_value_none(), v = kc_value_none();
        st = kc_value_decode(opts[i]->name, opts[i]->name_len, true, &k);
        if (st == KC_OK)
            st = get_decoded(s, sec, opts[i]->name, opts[i]->name_len, &v, err);
        if (st == KC_OK)
            st = kc_section_set(rv, &k, &v);
        kc_value_clear(&k);
        kc_value_clear(&v);
    }
    return st;
}

static kc_status load_section_locked(kc_store *s, const char *section, bool defaults,
                                     kc_section *out, kc_err *err)
{
    out->items = NULL;
    out->n = 0;
    kc_status st;
    char *secname = full_section_name(s, section, &st, err);
    if (!secname)
        return st;
    const kc_ini_section *sec =
        kc_ini_section_find(&s->ini, (const uint8_t *)secname, strlen(secname));
    if (!sec && !defaults) {
        st = kc_err_set(err, KC_ERR_NOTFOUND, "file %s: no section [%s]", s->path, secname);
        free(secname);
        return st;
    }
    free(secname);
    if (!sec)
        sec = &s->ini.defaults;
    const kc_ini_option **opts = NULL;
    size_t n = 0;
    st = kc_ini_options(&s->ini, sec, &opts, &n);
    if (st == KC_OK)
        st = decode_options(s, sec, opts, n, out, err);
    free(opts);
    /* defaults=False: drop what merely repeats [DEFAULT] */
    const kc_ini_section *d = &s->ini.defaults;
    for (size_t i = 0; i < d->n && st == KC_OK && !defaults; i++) {
        kc_value k = kc_value_none(), dv = kc_value_none();
        st = kc_value_decode(d->opts[i].name, d->opts[i].name_len, true, &k);
        long at = st == KC_OK ? section_index(out, &k) : -1;
        if (at >= 0)
            st = get_decoded(s, d, d->opts[i].name, d->opts[i].name_len, &dv, err);
        if (at >= 0 && st == KC_OK && kc_value_equal(&dv, &out->items[at].value))
            kc_section_pop(out, &k);
        kc_value_clear(&k);
        kc_value_clear(&dv);
    }
    if (st == KC_ERR_NOMEM)
        kc_err_set(err, st, "file %s: out of memory", s->path);
    if (st != KC_OK)
        kc_section_clear(out);
    return st;
}

kc_status kc_store_load_section(kc_store *s, const char *section, bool defaults,
                                kc_section *out, kc_err *err)
{
    pthread_mutex_lock(&s->mu);
    kc_status st = load_section_locked(s, section, defaults, out, err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* ---- file# options and legacy migrations --------------------------------------------------- */

bool kc_store_file_ref(const kc_value *v, const char **path, size_t *len)
{
    if (v->type != KC_VALUE_TEXT)
        return false;
    size_t skip = v->len >= 5 && memcmp(v->data, "file#", 5) == 0 ? 5 : 0;
    *path = (const char *)v->data + skip;
    *len = v->len - skip;
    return true;
}

/* A relative path names a file in the config file's directory (spec D1: not
 * the working directory, so a node started from anywhere finds its own
 * files and a node directory can be moved). The directory is the config
 * path's as given, without following symbolic links. */
static char *resolve_path(const kc_store *s, const char *p, size_t len)
{
    const char *slash = strrchr(s->path, '/');
    size_t dir = p[0] == '/' || !slash ? 0 : (size_t)(slash - s->path) + 1;
    char *out = malloc(dir + len + 1);
    if (out) {
        memcpy(out, s->path, dir);
        memcpy(out + dir, p, len);
        out[dir + len] = 0;
    }
    return out;
}

/* The node holds a chain: [<node>-chains] has an option of its own, or the
 * legacy crypto.chain is still there. Lock held. */
static bool provisioned_locked(kc_store *s)
{
    char *chains = kc_store_section_name(s, "chains"), *crypto = kc_store_section_name(s, "crypto");
    const kc_ini_section *c = chains ? kc_ini_section_find(&s->ini, (const uint8_t *)chains,
                                                           strlen(chains)) : NULL;
    const kc_ini_section *k = crypto ? kc_ini_section_find(&s->ini, (const uint8_t *)crypto,
                                                           strlen(crypto)) : NULL;
    bool yes = (c && c->n > 0) || (k && kc_ini_option_find(k, (const uint8_t *)"chain", 5));
    free(chains);
    free(crypto);
    return yes;
}

bool kc_store_is_provisioned(kc_store *s)
{
    pthread_mutex_lock(&s->mu);
    bool yes = provisioned_locked(s);
    pthread_mutex_unlock(&s->mu);
    return yes;
}

/* The file option `name`: *path resolved (NULL when the option is
 * missing), *ref the text to store as its default. Lock held. */
static kc_status file_path_locked(kc_store *s, const char *name, const char *default_suffix,
                                  char **path, char **ref, kc_err *err)
{
    *path = *ref = NULL;
    kc_value v = kc_value_none(), n = kc_value_text(name);
    kc_status st = load_keyed_locked(s, NULL, &n, &v, err);
    const char *p;
    size_t len;
    if (st == KC_OK && v.type != KC_VALUE_NONE) {
        if (!kc_store_file_ref(&v, &p, &len) || len == 0 || memchr(p, 0, len))
            st = kc_err_set(err, KC_ERR_INVALID,
                            "file %s: option '%s' of [%s]: expected 'file#<path>'", s->path,
                            name, s->node_id);
        else if (!(*path = resolve_path(s, p, len)))
            st = kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    } else if (st == KC_OK || st == KC_ERR_NOTFOUND) {
        /* missing (or an unreadable base64 value, which upstream also
         * treats as missing): the default, relative as upstream's tools write it */
        size_t k = strlen(s->node_id) + strlen(default_suffix) + 6;
        st = (*ref = malloc(k)) ? KC_OK : kc_err_set(err, KC_ERR_NOMEM, "out of memory");
        if (st == KC_OK)
            snprintf(*ref, k, "file#%s%s", s->node_id, default_suffix);
    }
    kc_value_clear(&v);
    return st;
}

kc_status kc_store_file_path(kc_store *s, const char *name, const char *default_suffix,
                             char **path, kc_err *err)
{
    pthread_mutex_lock(&s->mu);
    char *ref;
    kc_status st = file_path_locked(s, name, default_suffix, path, &ref, err);
    if (st == KC_OK && !*path && !(*path = resolve_path(s, ref + 5, strlen(ref + 5))))
        st = kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    free(ref);
    pthread_mutex_unlock(&s->mu);
    return st;
}

kc_status kc_store_node_files(kc_store *s, size_t n, const kc_store_file *files, char **paths,
                              kc_err *err)
{
    for (size_t i = 0; i < n; i++)
        paths[i] = NULL;
    pthread_mutex_lock(&s->mu);
    bool provisioned = provisioned_locked(s);
    char *refs[KC_STORE_MAX_FILES] = {0};
    kc_value names[KC_STORE_MAX_FILES], values[KC_STORE_MAX_FILES];
    size_t nstore = 0;
    if (n > KC_STORE_MAX_FILES) {
        pthread_mutex_unlock(&s->mu);
        return kc_err_set(err, KC_ERR_INVALID, "file %s: more than %d node files asked for",
                          s->path, KC_STORE_MAX_FILES);
    }
    kc_status st = KC_OK;
    for (size_t i = 0; i < n && st == KC_OK; i++) {
        st = file_path_locked(s, files[i].name, files[i].default_suffix, &paths[i], &refs[i], err);
        if (st == KC_OK && !paths[i] &&
            !(paths[i] = resolve_path(s, refs[i] + 5, strlen(refs[i] + 5))))
            st = kc_err_set(err, KC_ERR_NOMEM, "out of memory");
        /* A provisioned node's chain certifies the key in its .crypto: a new
         * file would be a new identity that no chain vouches for, and would
         * leave every key the node handed out unservable. A .seed counts once
         * the config names it (controller and chain-server provisioning name
         * none, as upstream's). */
        bool required = provisioned && (!refs[i] || !files[i].optional_unnamed);
        struct stat sb;
        if (st == KC_OK && required && stat(paths[i], &sb) != 0 && errno != ENOENT)
            st = kc_err_set(err, KC_ERR_IO, "file %s: cannot check the node's %s file %s: %s",
                            s->path, files[i].default_suffix, paths[i], strerror(errno));
        else if (st == KC_OK && required && !kc_file_exists(paths[i]))
            st = kc_err_set(err, KC_ERR_NOTFOUND,
                            "file %s: node %s is provisioned (it holds a chain) but its %s file "
                            "%s (option '%s' of [%s]) is missing; refusing to create a new "
                            "identity. Restore the file from a backup (relative file# paths "
                            "are in the directory of the config file), or provision the node "
                            "again", s->path, s->node_id, files[i].default_suffix, paths[i],
                            files[i].name, s->node_id);
        if (st == KC_OK && refs[i]) {
            names[nstore] = kc_value_text(files[i].name);
            values[nstore++] = kc_value_text(refs[i]);
        }
    }
    /* defaults remembered in one rewrite, only once every file is known good */
    if (st == KC_OK && nstore)
        st = store_values_locked(s, NULL, nstore, names, values, err);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        free(refs[i]);
        if (st != KC_OK) {
            free(paths[i]);
            paths[i] = NULL;
        }
    }
    return st;
}

kc_status kc_store_file_option(kc_store *s, const char *name, const char *default_suffix,
                               char **path, kc_err *err)
{
    kc_store_file f = {name, default_suffix, false};
    return kc_store_node_files(s, 1, &f, path, err);
}

/* Moves crypto.<from> to <section>.<to> unless skip says otherwise;
 * *found receives the value (NONE if absent). */
static kc_status move_value(kc_store *s, const char *from, const char *section, const char *to,
                            const kc_value *unless_equal, kc_value *found, kc_err *err)
{
    kc_value name = kc_value_text(from), none = kc_value_none();
    kc_status st = load_keyed_locked(s, "crypto", &name, found, err);
    if (st == KC_ERR_NOTFOUND)
        return KC_OK;
    if (st != KC_OK || found->type == KC_VALUE_NONE)
        return st;
    if (!unless_equal || !kc_value_equal(unless_equal, found)) {
        kc_value dest = kc_value_text(to);
        if ((st = store_values_locked(s, section, 1, &dest, found, err)) != KC_OK)
            return st;
    }
    return store_values_locked(s, "crypto", 1, &name, &none, err);
}

kc_status kc_store_migrate_legacy(kc_store *s, kc_err *err)
{
    pthread_mutex_lock(&s->mu);
    kc_value rot = kc_value_none(), chainrot = kc_value_none(), chain = kc_value_none();
    kc_status st = move_value(s, "rot", "allowlist", "rot", NULL, &rot, err);
    if (st == KC_OK)
        st = move_value(s, "chainrot", "allowlist", "chainrot", &rot, &chainrot, err);
    if (st == KC_OK)
        st = move_value(s, "chain", "chains", "chain0", NULL, &chain, err);
    kc_value_clear(&rot);
    kc_value_clear(&chainrot);
    kc_value_clear(&chain);
    pthread_mutex_unlock(&s->mu);
    return st;
}

kc_status kc_store_migrate_provisioners(kc_store *s, kc_err *err)
{
    pthread_mutex_lock(&s->mu);
    kc_section provs;
    kc_status st = load_section_locked(s, "provisioners", false, &provs, err);
    if (st == KC_ERR_NOTFOUND) {
        pthread_mutex_unlock(&s->mu);
        return KC_OK;
    }
    kc_value none = kc_value_none();
    for (size_t i = 0; i < provs.n && st == KC_OK; i++) {
        const kc_value *v = &provs.items[i].value;
        if (v->type != KC_VALUE_BYTES) {
            char *k = NULL;
            kc_value_to_text(&provs.items[i].key, &k, NULL);
            kc_log(KC_LOG_WARNING, KC_STORE_LOGGER,
                   "Legacy provisioner %s in %s is not a base64# value; left in place",
                   k ? k : "?", s->path);
            free(k);
            continue;
        }
        uint8_t digest[32];
        crypto_hash_sha256(digest, v->data, v->len);
        kc_value key = kc_value_bytes(digest, sizeof digest);
        st = store_values_locked(s, "allowlist", 1, &key, v, err);
        if (st == KC_OK)
            st = store_values_locked(s, "provisioners", 1, &provs.items[i].key, &none, err);
    }
    kc_section_clear(&provs);
    pthread_mutex_unlock(&s->mu);
    return st;
}
