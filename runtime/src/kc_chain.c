#include "kc_chain.h"

#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kc_hex.h"
#include "kc_log.h"
#include "kc_regex.h"

#define WHY_MAX 320

/* ---- small helpers ------------------------------------------------------------- */

static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1fu, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0fu, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* snprintf for messages that may be cut short (they end in "..."). */
static void whyf(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void whyf(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k >= whylen && whylen > 4)
        memcpy(why + whylen - 4, "...", 4);
}

static bool bytes_eq(const kc_bytes *a, const kc_bytes *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

static bool bytes_is(const kc_bytes *a, const char *s)
{
    kc_bytes b = {(const uint8_t *)s, strlen(s)};
    return bytes_eq(a, &b);
}

#define TAG_MAX 16

/* First 4 bytes of a key in hex (and its version when not 1): enough for
 * an operator to tell keys apart. */
static const char *key_tag(const kc_key *k, char out[TAG_MAX])
{
    kc_hex(k->x, k->x_len < 4 ? k->x_len : 4, out);
    if (k->version != 1)
        snprintf(out + strlen(out), TAG_MAX - strlen(out), "(v%d)", k->version % 100);
    return out;
}

static const char *pks_tag(const kc_pks *p, char out[TAG_MAX])
{
    if (p->n == 1 && !p->is_list && p->keys[0].kind == KC_SIGN_PK)
        return key_tag(&p->keys[0], out);
    snprintf(out, TAG_MAX, "%s", p->is_list ? "a key list" : "a kem key");
    return out;
}

/* "2026-01-01T00:00:00Z" (fraction shown when present), "never" for 0. */
static const char *fmt_time(double t, char out[48])
{
    if (t == 0) {
        snprintf(out, 48, "never");
        return out;
    }
    if (!isfinite(t) || t < -62135596800.0 || t > 253402300799.0) {
        snprintf(out, 48, "%.17g", t);
        return out;
    }
    double whole = floor(t);
    time_t secs = (time_t)whole;
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t k = strftime(out, 48, "%Y-%m-%dT%H:%M:%S", &tm);
    long ms = lround((t - whole) * 1000.0);
    if (ms >= 1000)
        ms = 999;
    if (ms > 0)
        snprintf(out + k, 48 - k, ".%03ldZ", ms);
    else
        snprintf(out + k, 48 - k, "Z");
    return out;
}

/* Appends text, escaping what a log line should not carry (control
 * characters, quotes, and every non-ASCII byte unless the text is UTF-8). */
static void put_text(kc_buf *b, const kc_bytes *s, size_t max)
{
    size_t n = s->n < max ? s->n : max;
    bool utf8 = utf8_valid(s->p, s->n);
    while (utf8 && n < s->n && n > 0 && (s->p[n] & 0xc0) == 0x80)
        n--; /* cut between characters */
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s->p[i];
        if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\' || (c >= 0x80 && !utf8)) {
            char e[5];
            snprintf(e, sizeof e, "\\x%02x", c);
            kc_buf_append(b, e, 4);
        } else {
            kc_buf_append_byte(b, c);
        }
    }
    if (n < s->n)
        kc_buf_append(b, "...", 3);
}

static void put_fmt(kc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(kc_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0)
        kc_buf_append(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* NUL-terminated copy of a buffer's text (for messages). */
static const char *buf_str(kc_buf *b)
{
    if (kc_buf_append_byte(b, 0) != KC_OK)
        return "";
    b->len--;
    return (const char *)b->data;
}

/* Hands a packer's bytes to out (replacing its content) and frees it. */
static kc_status mp_out_take(kc_mp_out *mo, kc_buf *out)
{
    kc_status st = kc_mp_out_status(mo);
    if (st == KC_OK) {
        kc_buf_free(out);
        *out = mo->buf;
        mo->buf = (kc_buf)KC_BUF_INIT;
    }
    kc_mp_out_free(mo);
    return st;
}

/* ---- numbers compared as Python compares int and float ------------------------------ */

static bool num_ok(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
           o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64;
}

static bool num_is_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

static double num_d(const msgpack_object *o)
{
    double d = 0;
    kc_mp_number(o, &d);
    return d;
}

static bool num_lt(const msgpack_object *a, const msgpack_object *b)
{
    if (num_is_int(a) && num_is_int(b)) {
        bool an = a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        bool bn = b->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        if (an != bn)
            return an;
        return an ? a->via.i64 < b->via.i64 : a->via.u64 < b->via.u64;
    }
    return num_d(a) < num_d(b);
}

static bool num_is_zero(const msgpack_object *o) { return num_d(o) == 0; }
static bool num_gt_zero(const msgpack_object *o) { return num_d(o) > 0; }

static void pack_num(msgpack_packer *pk, const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        msgpack_pack_uint64(pk, o->via.u64);
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        msgpack_pack_int64(pk, o->via.i64);
    else
        msgpack_pack_double(pk, o->via.f64);
}

/* How upstream re-packs a value it decoded with raw=True: str becomes bin,
 * float32 becomes float64, integers take their smallest form. */
static void repack(msgpack_packer *pk, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: msgpack_pack_nil(pk); break;
    case MSGPACK_OBJECT_BOOLEAN:
        if (o->via.boolean)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: pack_num(pk, o); break;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: {
        const uint8_t *p;
        size_t n;
        kc_mp_bytes(o, &p, &n);
        kc_mp_pack_bin(pk, p, n);
        break;
    }
    case MSGPACK_OBJECT_ARRAY:
        msgpack_pack_array(pk, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            repack(pk, &o->via.array.ptr[i]);
        break;
    case MSGPACK_OBJECT_MAP:
        msgpack_pack_map(pk, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            repack(pk, &o->via.map.ptr[i].key);
            repack(pk, &o->via.map.ptr[i].val);
        }
        break;
    case MSGPACK_OBJECT_EXT:
        msgpack_pack_ext_with_body(pk, o->via.ext.ptr, o->via.ext.size, o->via.ext.type);
        break;
    }
}

/* ---- poisons ----------------------------------------------------------------------- */

typedef enum pname { P_TOPICS, P_USAGES, P_PATHLEN } pname;
static const char *const pnames[] = {"topics", "usages", "pathlen"};

/* A list of strings; `none` is Python's None (no restriction). */
typedef struct strlist {
    bool none;
    size_t n;
    const kc_bytes *v;
} strlist;

typedef struct pentry {
    pname name;
    strlist list;      /* topics, usages */
    bool pathlen_none; /* pathlen: None */
    int64_t pathlen;
} pentry;

typedef struct parsed_poison {
    kc_mp_doc doc;
    size_t n;
    pentry e[KC_POISON_MAX_ENTRIES];
    kc_bytes *pool;
} parsed_poison;

static void poison_free(parsed_poison *p)
{
    kc_mp_doc_free(&p->doc);
    free(p->pool);
    p->pool = NULL;
}

/* Decodes and checks a packed poison: an array of [name, value, ...] with
 * a known name; lists of UTF-8 strings or None; pathlen an integer or None. */
static kc_status poison_parse(parsed_poison *out, const kc_bytes *packed, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    kc_err e;
    if (kc_mp_decode(&out->doc, packed->p, packed->n, "poison", &e) != KC_OK) {
        whyf(why, whylen, "%s", e.msg);
        return KC_ERR_INVALID;
    }
    const msgpack_object *root = kc_mp_root(&out->doc);
    kc_status st = KC_ERR_INVALID;
    if (root->type != MSGPACK_OBJECT_ARRAY) {
        whyf(why, whylen, "poison is not a list of [name, value] entries");
        goto bad;
    }
    if (root->via.array.size > KC_POISON_MAX_ENTRIES) {
        whyf(why, whylen, "poison has %u entries, more than the limit of %d",
             root->via.array.size, KC_POISON_MAX_ENTRIES);
        goto bad;
    }
    size_t total = 0;
    for (uint32_t i = 0; i < root->via.array.size; i++) {
        const msgpack_object *ent = &root->via.array.ptr[i];
        if (ent->type == MSGPACK_OBJECT_ARRAY && ent->via.array.size >= 2 &&
            ent->via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY)
            total += ent->via.array.ptr[1].via.array.size;
    }
    out->pool = calloc(total ? total : 1, sizeof(kc_bytes));
    if (!out->pool) {
        whyf(why, whylen, "out of memory");
        st = KC_ERR_NOMEM;
        goto bad;
    }
    size_t used = 0;
    for (uint32_t i = 0; i < root->via.array.size; i++) {
        const msgpack_object *ent = &root->via.array.ptr[i];
        pentry *pe = &out->e[i];
        kc_bytes name;
        if (ent->type != MSGPACK_OBJECT_ARRAY || ent->via.array.size < 2 ||
            !kc_mp_bytes(&ent->via.array.ptr[0], &name.p, &name.n)) {
            whyf(why, whylen, "poison entry %u is not [name, value]", i + 1);
            goto bad;
        }
        if (bytes_is(&name, "topics"))
            pe->name = P_TOPICS;
        else if (bytes_is(&name, "usages"))
            pe->name = P_USAGES;
        else if (bytes_is(&name, "pathlen"))
            pe->name = P_PATHLEN;
        else {
            kc_buf shown = KC_BUF_INIT;
            put_text(&shown, &name, 40);
            whyf(why, whylen, "unknown poison entry '%s' (only topics, usages, pathlen exist)",
                 buf_str(&shown));
            kc_buf_free(&shown);
            goto bad;
        }
        const msgpack_object *v = &ent->via.array.ptr[1];
        if (pe->name == P_PATHLEN) {
            if (v->type == MSGPACK_OBJECT_NIL) {
                pe->pathlen_none = true;
            } else if (!kc_mp_int(v, &pe->pathlen)) {
                whyf(why, whylen, "poison entry %u: pathlen is not an integer", i + 1);
                goto bad;
            }
            continue;
        }
        if (v->type == MSGPACK_OBJECT_NIL) {
            pe->list.none = true;
            continue;
        }
        if (v->type != MSGPACK_OBJECT_ARRAY) {
            whyf(why, whylen, "poison entry %u: %s is not a list of strings", i + 1,
                 pnames[pe->name]);
            goto bad;
        }
        if (v->via.array.size > KC_POISON_MAX_VALUES) {
            whyf(why, whylen, "poison entry %u: %u %s, more than the limit of %d", i + 1,
                 v->via.array.size, pnames[pe->name], KC_POISON_MAX_VALUES);
            goto bad;
        }
        pe->list.v = out->pool + used;
        for (uint32_t k = 0; k < v->via.array.size; k++) {
            kc_bytes *s = &out->pool[used + k];
            if (!kc_mp_bytes(&v->via.array.ptr[k], &s->p, &s->n)) {
                whyf(why, whylen, "poison entry %u: %s value %u is not a string", i + 1,
                     pnames[pe->name], k + 1);
                goto bad;
            }
            if (s->n > KC_POISON_MAX_VALUE_LEN || !utf8_valid(s->p, s->n)) {
                whyf(why, whylen, "poison entry %u: %s value %u is %s", i + 1,
                     pnames[pe->name], k + 1,
                     s->n > KC_POISON_MAX_VALUE_LEN ? "too long" : "not valid UTF-8");
                goto bad;
            }
        }
        pe->list.n = v->via.array.size;
        used += v->via.array.size;
    }
    out->n = root->via.array.size;
    return KC_OK;
bad:
    poison_free(out);
    return st;
}

static void pack_strlist(msgpack_packer *pk, const strlist *l)
{
    msgpack_pack_array(pk, l->n);
    for (size_t i = 0; i < l->n; i++)
        kc_mp_pack_bin(pk, l->v[i].p, l->v[i].n);
}

/* The accumulated poison as upstream re-packs it: names str, strings bin. */
static kc_status poison_pack(const strlist *topics, const strlist *usages, bool has_pathlen,
                             int64_t pathlen, kc_buf *out)
{
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, (size_t)!topics->none + !usages->none + has_pathlen);
    if (!topics->none) {
        msgpack_pack_array(&mo.pk, 2);
        kc_mp_pack_text(&mo.pk, "topics");
        pack_strlist(&mo.pk, topics);
    }
    if (!usages->none) {
        msgpack_pack_array(&mo.pk, 2);
        kc_mp_pack_text(&mo.pk, "usages");
        pack_strlist(&mo.pk, usages);
    }
    if (has_pathlen) {
        msgpack_pack_array(&mo.pk, 2);
        kc_mp_pack_text(&mo.pk, "pathlen");
        msgpack_pack_int64(&mo.pk, pathlen);
    }
    return mp_out_take(&mo, out);
}

static void put_strlist(kc_buf *b, const strlist *l)
{
    if (l->none) {
        kc_buf_append(b, "None", 4);
        return;
    }
    kc_buf_append_byte(b, '[');
    for (size_t i = 0; i < l->n && i < 16; i++) {
        if (i)
            kc_buf_append(b, ", ", 2);
        kc_buf_append_byte(b, '\'');
        put_text(b, &l->v[i], 64);
        kc_buf_append_byte(b, '\'');
    }
    if (l->n > 16)
        put_fmt(b, ", ... (%zu in all)", l->n);
    kc_buf_append_byte(b, ']');
}

/* "[topics: ['a'], usages: ['b'], pathlen: 1]" */
static void put_poison(kc_buf *b, const kc_bytes *packed)
{
    parsed_poison p;
    char why[WHY_MAX];
    if (poison_parse(&p, packed, why, sizeof why) != KC_OK) {
        put_fmt(b, "<unreadable poison: %s>", why);
        return;
    }
    kc_buf_append_byte(b, '[');
    for (size_t i = 0; i < p.n; i++) {
        if (i)
            kc_buf_append(b, ", ", 2);
        put_fmt(b, "%s: ", pnames[p.e[i].name]);
        if (p.e[i].name != P_PATHLEN)
            put_strlist(b, &p.e[i].list);
        else if (p.e[i].pathlen_none)
            kc_buf_append(b, "None", 4);
        else
            put_fmt(b, "%lld", (long long)p.e[i].pathlen);
    }
    kc_buf_append_byte(b, ']');
    poison_free(&p);
}

kc_status kc_poison_build(const kc_poison_entry *entries, size_t n, kc_buf *out, kc_err *err)
{
    if (n > KC_POISON_MAX_ENTRIES)
        return kc_err_set(err, KC_ERR_INVALID, "poison: %zu entries, more than the limit of %d",
                          n, KC_POISON_MAX_ENTRIES);
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, n);
    kc_status st = KC_OK;
    for (size_t i = 0; i < n && st == KC_OK; i++) {
        const kc_poison_entry *e = &entries[i];
        bool is_list = e->name && (!strcmp(e->name, "topics") || !strcmp(e->name, "usages"));
        if (!is_list && !(e->name && !strcmp(e->name, "pathlen"))) {
            st = kc_err_set(err, KC_ERR_INVALID, "poison entry %zu: unknown name '%s'", i + 1,
                            e->name ? e->name : "(null)");
            break;
        }
        msgpack_pack_array(&mo.pk, 2);
        kc_mp_pack_text(&mo.pk, e->name);
        if (!is_list) {
            msgpack_pack_int64(&mo.pk, e->pathlen);
            continue;
        }
        if (e->n_values > KC_POISON_MAX_VALUES) {
            st = kc_err_set(err, KC_ERR_INVALID, "poison entry %zu: %zu %s, more than %d", i + 1,
                            e->n_values, e->name, KC_POISON_MAX_VALUES);
            break;
        }
        msgpack_pack_array(&mo.pk, e->n_values);
        for (size_t k = 0; k < e->n_values; k++) {
            const char *s = e->values[k];
            if (!s || !utf8_valid((const uint8_t *)s, strlen(s))) {
                st = kc_err_set(err, KC_ERR_INVALID, "poison entry %zu: %s value %zu is %s",
                                i + 1, e->name, k + 1, s ? "not valid UTF-8" : "missing");
                break;
            }
            kc_mp_pack_text(&mo.pk, s);
        }
    }
    if (st != KC_OK) {
        kc_mp_out_free(&mo);
        return st;
    }
    return mp_out_take(&mo, out);
}

/* ---- certificates ---------------------------------------------------------------------- */

/* [max_age, poison, key, ...] fields other than the key. */
static kc_status cert_fields(const msgpack_object *o, msgpack_object *age, kc_bytes *poison,
                             char *why, size_t whylen)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3) {
        whyf(why, whylen, "not a certificate [max_age, poison, key, ...]");
        return KC_ERR_INVALID;
    }
    if (!num_ok(&o->via.array.ptr[0])) {
        whyf(why, whylen, "max_age is not a number");
        return KC_ERR_INVALID;
    }
    if (!kc_mp_bytes(&o->via.array.ptr[1], &poison->p, &poison->n)) {
        whyf(why, whylen, "poison is not a byte string");
        return KC_ERR_INVALID;
    }
    *age = o->via.array.ptr[0];
    return KC_OK;
}

static kc_status key_field(const msgpack_object *o, kc_pks *key, char *why, size_t whylen)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3) {
        whyf(why, whylen, "not a certificate [max_age, poison, key, ...]");
        return KC_ERR_INVALID;
    }
    kc_err e;
    kc_err_clear(&e);
    kc_status st = kc_get_pks(key, &o->via.array.ptr[2], &e);
    if (st != KC_OK)
        whyf(why, whylen, "certified key: %s", e.msg[0] ? e.msg : kc_status_str(st));
    return st;
}

kc_status kc_cert_parse(kc_cert *c, const uint8_t *p, size_t n, kc_err *err)
{
    memset(c, 0, sizeof *c);
    kc_status st = kc_mp_decode(&c->doc, p, n, "certificate", err);
    if (st != KC_OK)
        return st;
    const msgpack_object *o = kc_mp_root(&c->doc);
    char why[WHY_MAX];
    if ((st = cert_fields(o, &c->max_age, &c->poison, why, sizeof why)) != KC_OK ||
        (st = key_field(o, &c->key, why, sizeof why)) != KC_OK) {
        kc_mp_doc_free(&c->doc);
        return kc_err_set(err, st, "certificate: %s", why);
    }
    c->extra = o->via.array.ptr + 3;
    c->n_extra = o->via.array.size - 3;
    return KC_OK;
}

void kc_cert_free(kc_cert *c)
{
    if (!c)
        return;
    kc_pks_clear(&c->key);
    kc_mp_doc_free(&c->doc);
    memset(c, 0, sizeof *c);
}

double kc_cert_max_age(const kc_cert *c)
{
    return num_d(&c->max_age);
}

kc_status kc_cert_build(double max_age, const uint8_t *poison, size_t poison_len,
                        const kc_pks *key, const kc_bytes *extra, size_t n_extra,
                        kc_buf *out, kc_err *err)
{
    if (!key || key->n == 0)
        return kc_err_set(err, KC_ERR_INVALID, "certificate: no key to certify");
    kc_mp_doc check;
    if (kc_mp_decode(&check, poison, poison_len, "certificate poison", err) != KC_OK)
        return KC_ERR_INVALID;
    kc_mp_doc_free(&check);
    for (size_t i = 0; i < n_extra; i++) {
        if (kc_mp_decode(&check, extra[i].p, extra[i].n, "certificate extra", err) != KC_OK)
            return kc_err_prefix(err, "extra %zu: ", i + 1);
        kc_mp_doc_free(&check);
    }
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, 3 + n_extra);
    if (max_age == 0)
        msgpack_pack_int(&mo.pk, 0);
    else
        msgpack_pack_double(&mo.pk, max_age);
    kc_mp_pack_bin(&mo.pk, poison, poison_len);
    kc_pks_pack(&mo.pk, key);
    for (size_t i = 0; i < n_extra && !mo.failed; i++) /* already packed objects */
        mo.failed = kc_buf_append(&mo.buf, extra[i].p, extra[i].n) != KC_OK;
    kc_status st = mp_out_take(&mo, out);
    return st == KC_OK ? KC_OK : kc_err_set(err, st, "certificate: out of memory");
}

kc_status kc_chain_entry_build(double max_age, const uint8_t *poison, size_t poison_len,
                               const kc_key *key, kc_buf *out, kc_err *err)
{
    kc_pks one = {false, 1, (kc_key *)key};
    return kc_cert_build(max_age, poison, poison_len, &one, NULL, 0, out, err);
}

kc_status kc_cert_sign(const kc_key *sk, const uint8_t *cert, size_t n, kc_buf *item,
                       kc_err *err)
{
    kc_status st = kc_sign(sk, cert, n, item);
    if (st == KC_ERR_UNSUPPORTED)
        return kc_err_set(err, st, "signing key version %d cannot sign in this build",
                          sk->version);
    if (st != KC_OK)
        return kc_err_set(err, st, "cannot sign certificate: %s", kc_status_str(st));
    return KC_OK;
}

/* ---- chains ----------------------------------------------------------------------------- */

kc_status kc_chain_parse(kc_chain_items *items, const uint8_t *chain, size_t n, kc_err *err)
{
    memset(items, 0, sizeof *items);
    kc_status st = kc_mp_decode(&items->doc, chain, n, "chain", err);
    if (st != KC_OK)
        return st;
    const msgpack_object *o = kc_mp_root(&items->doc);
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        st = kc_err_set(err, KC_ERR_INVALID, "chain: not a list of signed items");
    } else if (o->via.array.size > KC_CHAIN_MAX_ITEMS) {
        st = kc_err_set(err, KC_ERR_INVALID, "chain: %u items, more than the limit of %d",
                        o->via.array.size, KC_CHAIN_MAX_ITEMS);
    } else {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (!kc_mp_bytes(&o->via.array.ptr[i], &items->item[i].p, &items->item[i].n)) {
                st = kc_err_set(err, KC_ERR_INVALID, "chain item %u: not a byte string", i + 1);
                break;
            }
        }
        items->n = o->via.array.size;
    }
    if (st != KC_OK)
        kc_chain_items_free(items);
    return st;
}

void kc_chain_items_free(kc_chain_items *items)
{
    if (!items)
        return;
    kc_mp_doc_free(&items->doc);
    items->n = 0;
}

kc_status kc_chain_build(const kc_bytes *items, size_t n, kc_buf *out, kc_err *err)
{
    if (n > KC_CHAIN_MAX_ITEMS)
        return kc_err_set(err, KC_ERR_INVALID, "chain: %zu items, more than the limit of %d", n,
                          KC_CHAIN_MAX_ITEMS);
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, n);
    for (size_t i = 0; i < n; i++)
        kc_mp_pack_bin(&mo.pk, items[i].p, items[i].n);
    kc_status st = mp_out_take(&mo, out);
    return st == KC_OK ? KC_OK : kc_err_set(err, st, "chain: out of memory");
}

kc_status kc_chain_append(const uint8_t *chain, size_t n, const uint8_t *item,
                          size_t item_len, kc_buf *out, kc_err *err)
{
    kc_chain_items items;
    memset(&items, 0, sizeof items);
    if (n > 0 && kc_chain_parse(&items, chain, n, err) != KC_OK)
        return KC_ERR_INVALID;
    kc_status st;
    if (items.n >= KC_CHAIN_MAX_ITEMS) {
        st = kc_err_set(err, KC_ERR_INVALID, "chain: already %zu items, the limit", items.n);
    } else {
        kc_bytes all[KC_CHAIN_MAX_ITEMS];
        memcpy(all, items.item, items.n * sizeof(kc_bytes));
        all[items.n] = (kc_bytes){item, item_len};
        kc_buf tmp = KC_BUF_INIT; /* out may alias chain */
        st = kc_chain_build(all, items.n + 1, &tmp, err);
        if (st == KC_OK)
            st = kc_buf_set(out, tmp.data, tmp.len);
        kc_buf_free(&tmp);
    }
    kc_chain_items_free(&items);
    return st;
}

/* The certificate inside a signed item, without verifying: after a v1
 * signature, after a v4 one, or unsigned (a self-signed pair's first item). */
static kc_status item_cert_unverified(const kc_bytes *item, kc_cert *c)
{
    static const size_t offsets[] = {KC_SIGNATURE_BYTES, 17088 + KC_SIGNATURE_BYTES, 0};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++)
        if (item->n > offsets[i] &&
            kc_cert_parse(c, item->p + offsets[i], item->n - offsets[i], NULL) == KC_OK)
            return KC_OK;
    return KC_ERR_INVALID;
}

static void put_cert(kc_buf *b, const msgpack_object *age, const kc_bytes *poison,
                     const kc_pks *key)
{
    char desc[200], t[48];
    kc_buf_append(b, "[Key: ", 6);
    for (size_t i = 0; i < key->n; i++) {
        if (i)
            kc_buf_append(b, " ", 1);
        put_fmt(b, "%s", kc_key_describe(&key->keys[i], desc, sizeof desc));
    }
    put_fmt(b, ", Expires: %s, Poison: ", fmt_time(num_d(age), t));
    put_poison(b, poison);
    kc_buf_append(b, "]", 1);
}

kc_status kc_chain_describe(const uint8_t *chain, size_t n, kc_buf *out)
{
    kc_buf_reset(out);
    kc_chain_items items;
    kc_err e;
    if (kc_chain_parse(&items, chain, n, &e) != KC_OK) {
        put_fmt(out, "<%s>", e.msg);
        buf_str(out);
        return KC_OK;
    }
    for (size_t i = 0; i < items.n; i++) {
        kc_cert c;
        if (i)
            kc_buf_append(out, " ", 1);
        if (item_cert_unverified(&items.item[i], &c) != KC_OK) {
            put_fmt(out, "[item %zu: unreadable, %zu bytes]", i + 1, items.item[i].n);
            continue;
        }
        put_cert(out, &c.max_age, &c.poison, &c.key);
        kc_cert_free(&c);
    }
    kc_chain_items_free(&items);
    buf_str(out);
    return KC_OK;
}

kc_status kc_chain_min_expiry(const uint8_t *chain, size_t n, double *out, kc_err *err)
{
    kc_chain_items items;
    if (kc_chain_parse(&items, chain, n, err) != KC_OK)
        return KC_ERR_INVALID;
    double m = 0;
    kc_status st = KC_OK;
    for (size_t i = 0; i < items.n; i++) {
        kc_cert c;
        if (item_cert_unverified(&items.item[i], &c) != KC_OK) {
            st = kc_err_set(err, KC_ERR_INVALID, "chain item %zu: no readable certificate", i + 1);
            break;
        }
        double a = kc_cert_max_age(&c);
        if (a > 0 && (m == 0 || a < m))
            m = a;
        kc_cert_free(&c);
    }
    kc_chain_items_free(&items);
    if (st == KC_OK)
        *out = m;
    return st;
}

bool kc_chain_expiry_not_earlier(double new_max_age, double current_max_age)
{
    if (new_max_age == 0)
        return true;
    if (current_max_age == 0)
        return false;
    return new_max_age >= current_max_age;
}

/* ---- the temporary ROT --------------------------------------------------------------------- */

const uint8_t kc_chain_temporary_rot_seed[32] = {
    0x4c, 0x19, 0x4f, 0x7d, 0xe9, 0x7c, 0x67, 0x62, 0x6c, 0xc4, 0x3f, 0xbd, 0xaf, 0x93, 0xdf, 0xfb,
    0xc4, 0x73, 0x53, 0x52, 0xb3, 0x73, 0x70, 0x07, 0x26, 0x97, 0xd4, 0x42, 0x54, 0xe1, 0xbc, 0x6c};

kc_status kc_chain_temporary_rot_keys(kc_key *pk, kc_key *sk)
{
    if (sodium_init() < 0)
        return KC_ERR_CRYPTO;
    return kc_sign_keypair_from_seed(pk, sk, kc_chain_temporary_rot_seed);
}

kc_status kc_chain_temporary_rot_entry(kc_buf *out)
{
    kc_key pk, sk;
    kc_status st = kc_chain_temporary_rot_keys(&pk, &sk);
    kc_key_clear(&sk);
    kc_buf poison = KC_BUF_INIT;
    kc_poison_entry pathlen2 = {.name = "pathlen", .pathlen = 2};
    if (st == KC_OK)
        st = kc_poison_build(&pathlen2, 1, &poison, NULL);
    if (st == KC_OK)
        st = kc_chain_entry_build(0, poison.data, poison.len, &pk, out, NULL);
    kc_buf_free(&poison);
    kc_key_clear(&pk);
    return st;
}

bool kc_chain_entry_is_temporary_rot(const uint8_t *entry, size_t n)
{
    kc_cert c;
    if (kc_cert_parse(&c, entry, n, NULL) != KC_OK)
        return false;
    kc_key pk, sk;
    bool same = false;
    if (kc_chain_temporary_rot_keys(&pk, &sk) == KC_OK)
        same = !c.key.is_list && kc_key_equal(&c.key.keys[0], &pk);
    kc_key_clear(&sk);
    kc_key_clear(&pk);
    kc_cert_free(&c);
    return same;
}

kc_status kc_chain_sign_with_key(void *sk, const uint8_t *m, size_t n, kc_buf *out,
                                 kc_err *err)
{
    kc_status st = kc_sign(sk, m, n, out);
    return st == KC_OK ? st : kc_err_set(err, st, "signing failed: %s", kc_status_str(st));
}

kc_status kc_chain_temporary(kc_sign_fn sign, void *sign_ctx, const kc_key *spk,
                             const char *root, kc_temporary_kind kind, double now,
                             double maxage, kc_buf *chain, kc_buf *provision, kc_err *err)
{
    static const char *const request[] = {"key-encrypt-request", "key-encrypt-subscribe"};
    static const char *const reply[] = {"key-encrypt"};
    if (!root || !sign || !spk || spk->kind != KC_SIGN_PK)
        return kc_err_set(err, KC_ERR_INVALID, "temporary chain: a signing key pair and a root "
                          "topic are required");
    kc_poison_entry pe[3] = {
        {.name = "topics", .values = &root, .n_values = 1},
        {.name = "usages", .values = kind == KC_TEMPORARY_REQUEST ? request : reply,
         .n_values = kind == KC_TEMPORARY_REQUEST ? 2 : 1},
        {.name = "pathlen", .pathlen = 1}};
    kc_buf poison = KC_BUF_INIT, cert = KC_BUF_INIT, item = KC_BUF_INIT, entry = KC_BUF_INIT;
    kc_key tpk, tsk;
    kc_pks leaf = {false, 1, (kc_key *)spk};
    kc_status st = kc_chain_temporary_rot_keys(&tpk, &tsk);
    if (st == KC_OK)
        st = kc_poison_build(pe, 3, &poison, err);
    if (st == KC_OK)
        st = kc_cert_build(now + maxage, poison.data, poison.len, &leaf, NULL, 0, &cert, err);
    if (st == KC_OK)
        st = kc_cert_sign(&tsk, cert.data, cert.len, &item, err);
    if (st == KC_OK)
        st = kc_chain_build(&(kc_bytes){item.data, item.len}, 1, chain, err);
    if (st == KC_OK && provision) {
        static const uint8_t empty_poison[] = {0x90};
        st = kc_chain_entry_build(0, empty_poison, 1, spk, &entry, err);
        if (st == KC_OK)
            st = sign(sign_ctx, cert.data, cert.len, &item, err);
        if (st == KC_OK) {
            kc_bytes both[2] = {{entry.data, entry.len}, {item.data, item.len}};
            st = kc_chain_build(both, 2, provision, err);
        }
    }
    kc_key_clear(&tsk);
    kc_key_clear(&tpk);
    kc_buf_free(&poison);
    kc_buf_free(&cert);
    kc_buf_free(&item);
    kc_buf_free(&entry);
    return st;
}

/* ---- the decision: context, lists, multimatch ------------------------------------------------ */

/* A list entry, parsed the first time a lookup reaches it. */
typedef struct lentry {
    bool tried;
    kc_status st;
    char why[WHY_MAX];
    kc_mp_doc doc;
    const msgpack_object *o;
    kc_pks key;
} lentry;

typedef struct plist {
    const kc_chain_list *l;
    lentry *e;
    const char *name;
} plist;

typedef struct ctx {
    plist allow, deny;
    size_t regex_evals;
    bool over_budget;
} ctx;

static lentry *plist_get(plist *pl, size_t i)
{
    lentry *e = &pl->e[i];
    if (e->tried)
        return e;
    e->tried = true;
    kc_err err;
    kc_err_clear(&err);
    e->st = kc_mp_decode(&e->doc, pl->l->entries[i].p, pl->l->entries[i].n, "entry", &err);
    if (e->st != KC_OK) {
        whyf(e->why, sizeof e->why, "%s", err.msg);
        return e;
    }
    e->o = kc_mp_root(&e->doc);
    e->st = key_field(e->o, &e->key, e->why, sizeof e->why);
    return e;
}

static void plist_free(plist *pl)
{
    if (!pl->e)
        return;
    for (size_t i = 0; i < pl->l->n; i++) {
        kc_pks_clear(&pl->e[i].key);
        kc_mp_doc_free(&pl->e[i].doc);
    }
    free(pl->e);
    pl->e = NULL;
}

static kc_status plist_init(plist *pl, const kc_chain_list *l, const char *name)
{
    pl->l = l;
    pl->name = name;
    pl->e = NULL;
    if (!l || l->n == 0)
        return KC_OK;
    pl->e = calloc(l->n, sizeof(lentry));
    return pl->e ? KC_OK : KC_ERR_NOMEM;
}

static bool single_sign(const kc_pks *k)
{
    return !k->is_list && k->n == 1 && k->keys[0].kind == KC_SIGN_PK;
}

/* key_in_list: index of the first entry certifying k, -1 if none. */
static kc_status find_key(plist *pl, const kc_key *k, long *idx, char *why, size_t whylen)
{
    *idx = -1;
    if (!pl->l || !k)
        return KC_OK;
    for (size_t i = 0; i < pl->l->n; i++) {
        lentry *e = plist_get(pl, i);
        if (e->st != KC_OK) {
            whyf(why, whylen, "%s entry %zu is malformed: %s", pl->name, i + 1, e->why);
            return e->st;
        }
        if (single_sign(&e->key) && kc_key_equal(&e->key.keys[0], k)) {
            *idx = (long)i;
            return KC_OK;
        }
    }
    return KC_OK;
}

/* multimatch on bytes: 1 match, 0 none, -1 regex budget exhausted. */
static int mm(ctx *cx, const kc_bytes *w, const strlist *choices)
{
    if (!w)
        return 1;
    if (choices->none)
        return 0;
    bool w_literal = w->n == 0 || w->p[0] != '^';
    for (size_t i = 0; i < choices->n; i++) {
        const kc_bytes *c = &choices->v[i];
        if (bytes_is(c, "^.*$"))
            return 1;
        if (w_literal && c->n > 0 && c->p[0] == '^') {
            if (++cx->regex_evals > KC_CHAIN_MAX_REGEX) {
                cx->over_budget = true;
                return -1;
            }
            if (kc_regex_match(c->p, c->n, w->p, w->n))
                return 1;
        } else if (bytes_eq(w, c)) {
            return 1;
        }
    }
    return 0;
}

/* intersect_multimatch(set1, set2) into scratch (which must not be set1). */
static int intersect_mm(ctx *cx, const strlist *set1, const strlist *set2, kc_bytes *scratch,
                        strlist *out)
{
    if (set1->none) {
        *out = *set2;
        return 0;
    }
    if (set2->none) {
        *out = *set1;
        return 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < set2->n; i++) {
        int r = mm(cx, &set2->v[i], set1);
        if (r < 0)
            return -1;
        if (r)
            scratch[k++] = set2->v[i];
    }
    *out = (strlist){false, k, scratch};
    return 0;
}

bool kc_multimatch(const kc_bytes *wanted, const kc_bytes *choices, size_t n_choices,
                   bool choices_none)
{
    ctx cx = {0};
    strlist l = {choices_none, n_choices, choices};
    return mm(&cx, wanted, &l) == 1;
}

/* ---- intersect_certs ---------------------------------------------------------------------------- */

/* The accumulated certificate ("pk" upstream). */
typedef struct acc {
    msgpack_object age;
    char age_src[64];
    char pathlen_src[96]; /* which certificate set the accumulated pathlen */
    kc_buf poison;
    kc_pks key;
    const msgpack_object *extra;
    size_t n_extra;
} acc;

/* What intersect_certs reads from its second argument. */
typedef struct certv {
    msgpack_object age;
    kc_bytes poison;
    const kc_pks *key;
    const msgpack_object *extra;
    size_t n_extra;
    const char *label;
} certv;

static void acc_free(acc *a)
{
    kc_buf_free(&a->poison);
    kc_pks_clear(&a->key);
}

static const kc_bytes key_allowlist = {(const uint8_t *)"key-allowlist", 13};
static const kc_bytes key_denylist = {(const uint8_t *)"key-denylist", 12};

static int64_t plus_offset(int64_t p, int offset)
{
    return (offset < 0 && p == INT64_MIN) ? p : p + offset;
}

#define BUDGET_MSG "more than %d regex evaluations in one chain"

static kc_status intersect(ctx *cx, acc *a, const certv *c2, bool same_pk, char *why,
                           size_t whylen)
{
    if (num_gt_zero(&c2->age) && (num_lt(&c2->age, &a->age) || num_is_zero(&a->age))) {
        a->age = c2->age;
        snprintf(a->age_src, sizeof a->age_src, "%s", c2->label);
    }
    parsed_poison p[2];
    kc_bytes c1_poison = {a->poison.data, a->poison.len};
    char pwhy[WHY_MAX];
    if (poison_parse(&p[0], &c1_poison, pwhy, sizeof pwhy) != KC_OK) {
        whyf(why, whylen, "accumulated poison: %s", pwhy);
        return KC_ERR_INVALID;
    }
    if (poison_parse(&p[1], &c2->poison, pwhy, sizeof pwhy) != KC_OK) {
        poison_free(&p[0]);
        whyf(why, whylen, "poison of %s: %s", c2->label, pwhy);
        return KC_ERR_INVALID;
    }
    kc_bytes scratch[4][KC_POISON_MAX_VALUES];
    int flip[2] = {0, 0};
    strlist lists[2] = {{true, 0, NULL}, {true, 0, NULL}}; /* topics, usages */
    bool has_pathlen = false;
    int64_t pathlen = 0;
    kc_status st = KC_OK;
    char src[96] = "";
    for (int k = 0; k < 2 && st == KC_OK; k++) {
        int offset = (k == 0 && !same_pk) ? -1 : 0;
        bool p_set = false, implicit = false;
        int64_t pv = 0;
        for (size_t i = 0; i < p[k].n; i++) {
            pentry *e = &p[k].e[i];
            if (e->name == P_PATHLEN) {
                p_set = !e->pathlen_none;
                pv = e->pathlen;
                implicit = false;
                continue;
            }
            int li = e->name == P_TOPICS ? 0 : 1;
            if (e->name == P_USAGES && !p_set) {
                int r = mm(cx, &key_allowlist, &e->list);
                if (r == 0)
                    r = mm(cx, &key_denylist, &e->list);
                if (r > 0) { /* key-allowlist/denylist imply pathlen 0 */
                    p_set = true;
                    implicit = true;
                    pv = 0;
                }
            }
            kc_bytes *out = scratch[li * 2 + flip[li]];
            if (cx->over_budget || intersect_mm(cx, &lists[li], &e->list, out, &lists[li]) < 0) {
                whyf(why, whylen, BUDGET_MSG, KC_CHAIN_MAX_REGEX);
                st = KC_ERR_DENIED;
                break;
            }
            if (lists[li].v == out)
                flip[li] ^= 1;
        }
        if (p_set) {
            int64_t v = plus_offset(pv, offset);
            if (!has_pathlen || v < pathlen) {
                pathlen = v;
                has_pathlen = true;
                if (k == 0)
                    snprintf(src, sizeof src, "%s", a->pathlen_src);
                else
                    snprintf(src, sizeof src, "%s%s", c2->label,
                             implicit ? " (its key-allowlist/key-denylist usage implies pathlen 0)"
                                      : "");
            }
        }
    }
    kc_buf packed = KC_BUF_INIT;
    kc_pks key;
    memset(&key, 0, sizeof key);
    if (st == KC_OK && (poison_pack(&lists[0], &lists[1], has_pathlen, pathlen, &packed) != KC_OK ||
                        kc_pks_copy(&key, c2->key) != KC_OK)) {
        whyf(why, whylen, "out of memory");
        st = KC_ERR_NOMEM;
    }
    poison_free(&p[0]);
    poison_free(&p[1]);
    if (st != KC_OK) {
        kc_buf_free(&packed);
        kc_pks_clear(&key);
        return st;
    }
    kc_buf_free(&a->poison);
    a->poison = packed;
    memcpy(a->pathlen_src, src, sizeof src);
    kc_pks_clear(&a->key);
    a->key = key;
    a->extra = c2->extra;
    a->n_extra = c2->n_extra;
    return KC_OK;
}

/* validate_poison over a packed poison: 1 valid, 0 not, -1 budget/parse error.
 * `first` receives the entry that decided (for messages). */
static int validate(ctx *cx, pname name, const kc_bytes *value, int64_t value_pathlen,
                    const kc_bytes *packed, const pentry **first, parsed_poison *p, char *why,
                    size_t whylen)
{
    *first = NULL;
    if (poison_parse(p, packed, why, whylen) != KC_OK)
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        if (p->e[i].name != name)
            continue;
        *first = &p->e[i];
        if (name == P_PATHLEN)
            return !p->e[i].pathlen_none && value_pathlen <= p->e[i].pathlen;
        int r = mm(cx, value, &p->e[i].list);
        if (r < 0)
            whyf(why, whylen, BUDGET_MSG, KC_CHAIN_MAX_REGEX);
        return r;
    }
    return name == P_PATHLEN;
}

kc_status kc_validate_poison(const char *name, const char *value, int64_t value_pathlen,
                             const uint8_t *packed, size_t packed_len, bool *ok, kc_err *err)
{
    *ok = false;
    pname pn;
    if (!name || !strcmp(name, "topics"))
        pn = P_TOPICS;
    else if (!strcmp(name, "usages"))
        pn = P_USAGES;
    else if (!strcmp(name, "pathlen"))
        pn = P_PATHLEN;
    else
        return kc_err_set(err, KC_ERR_INVALID, "validate_poison: unknown name '%s'", name);
    if (!name || (pn != P_PATHLEN && !value)) {
        *ok = true;
        return KC_OK;
    }
    ctx cx = {0};
    parsed_poison p;
    const pentry *first;
    char why[WHY_MAX];
    kc_bytes v = {(const uint8_t *)(value ? value : ""), value ? strlen(value) : 0};
    kc_bytes pb = {packed, packed_len};
    int r = validate(&cx, pn, &v, value_pathlen, &pb, &first, &p, why, sizeof why);
    poison_free(&p);
    if (r < 0)
        return kc_err_set(err, KC_ERR_INVALID, "%s", why);
    *ok = r == 1;
    return KC_OK;
}

kc_status kc_key_in_list(const kc_key *k, const kc_chain_list *list, long *index, kc_err *err)
{
    plist pl;
    char why[WHY_MAX];
    if (plist_init(&pl, list, "list") != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    kc_status st = find_key(&pl, k, index, why, sizeof why);
    plist_free(&pl);
    return st == KC_OK ? KC_OK : kc_err_set(err, st, "%s", why);
}

/* ---- process_chain ---------------------------------------------------------------------------------- */

/* One root of trust tried: its outcome and how far it got. */
typedef struct attempt {
    kc_status st;
    int progress;
    char why[KC_ERR_MSG_MAX];
    acc a;
    kc_pks spks;
    kc_buf printable;
    kc_cert certs[KC_CHAIN_MAX_ITEMS + 1];
    size_t ncerts;
} attempt;

static void attempt_free(attempt *t)
{
    acc_free(&t->a);
    kc_pks_clear(&t->spks);
    kc_buf_free(&t->printable);
    for (size_t i = 0; i < t->ncerts; i++)
        kc_cert_free(&t->certs[i]);
    t->ncerts = 0;
}

static kc_status fail(attempt *t, kc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kc_status fail(attempt *t, kc_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->why, sizeof t->why, fmt, ap);
    va_end(ap);
    t->st = st;
    return st;
}

static kc_status spks_add(kc_pks *spks, const kc_key *k)
{
    kc_key *nk = realloc(spks->keys, (spks->n + 1) * sizeof(kc_key));
    if (!nk)
        return KC_ERR_NOMEM;
    spks->keys = nk;
    spks->is_list = true;
    if (kc_key_copy(&spks->keys[spks->n], k) != KC_OK)
        return KC_ERR_NOMEM;
    spks->n++;
    return KC_OK;
}

static void printable_step(attempt *t)
{
    if (t->printable.len)
        kc_buf_append(&t->printable, " ", 1);
    kc_bytes pb = {t->a.poison.data, t->a.poison.len};
    put_cert(&t->printable, &t->a.age, &pb, &t->a.key);
}

static kc_status acc_start(attempt *t, const msgpack_object *age, const kc_bytes *poison,
                           const kc_pks *key, const char *label)
{
    t->a.age = *age;
    snprintf(t->a.age_src, sizeof t->a.age_src, "%s", label);
    snprintf(t->a.pathlen_src, sizeof t->a.pathlen_src, "%s", label);
    if (kc_buf_set(&t->a.poison, poison->p, poison->n) != KC_OK ||
        kc_pks_copy(&t->a.key, key) != KC_OK)
        return fail(t, KC_ERR_NOMEM, "out of memory");
    return KC_OK;
}

/* Leaf rules, expiry, topic, usage and pathlen (the end of upstream's loop). */
static kc_status final_checks(ctx *cx, attempt *t, bool denied, const char *denied_why,
                              const kc_bytes *topic, const kc_bytes *usage, double checktime)
{
    char why[WHY_MAX], tag[TAG_MAX];
    long ai, di;
    kc_pks *leaf = &t->a.key;
    if (single_sign(leaf)) {
        if (find_key(&cx->allow, &leaf->keys[0], &ai, why, sizeof why) != KC_OK ||
            find_key(&cx->deny, &leaf->keys[0], &di, why, sizeof why) != KC_OK)
            return fail(t, KC_ERR_INVALID, "%s", why);
        if (ai >= 0)
            denied = false;
        if (di >= 0)
            return fail(t, KC_ERR_DENIED, "leaf key %s is denylisted (denylist entry %ld)",
                        key_tag(&leaf->keys[0], tag), di + 1);
    } else if (leaf->is_list) {
        size_t kept = 0, dropped = 0;
        for (size_t i = 0; i < leaf->n; i++) {
            kc_key *k = &leaf->keys[i];
            di = -1;
            if (k->kind == KC_SIGN_PK) {
                if (find_key(&cx->allow, k, &ai, why, sizeof why) != KC_OK ||
                    find_key(&cx->deny, k, &di, why, sizeof why) != KC_OK)
                    return fail(t, KC_ERR_INVALID, "%s", why);
                if (ai >= 0)
                    denied = false;
            }
            if (di >= 0) {
                kc_key_clear(k);
                dropped++;
                continue;
            }
            if (kept != i)
                leaf->keys[kept] = *k;
            kept++;
        }
        leaf->n = kept;
        if (kept == 0)
            return fail(t, KC_ERR_DENIED, "every one of the %zu leaf keys is denylisted", dropped);
    }
    if (denied)
        return fail(t, KC_ERR_DENIED, "%s", denied_why);
    t->progress++;

    double age = num_d(&t->a.age);
    if (age != 0 && age < checktime) {
        char at[48], now[48];
        return fail(t, KC_ERR_EXPIRED, "%s: expired at %s (checked at %s)", t->a.age_src,
                    fmt_time(age, at), fmt_time(checktime, now));
    }
    kc_bytes pb = {t->a.poison.data, t->a.poison.len};
    static const struct {
        pname name;
        const char *what;
    } checks[2] = {{P_TOPICS, "topic"}, {P_USAGES, "usage"}};
    for (int i = 0; i < 2; i++) {
        const kc_bytes *value = i == 0 ? topic : usage;
        if (!value)
            continue;
        parsed_poison p;
        const pentry *first;
        int r = validate(cx, checks[i].name, value, 0, &pb, &first, &p, why, sizeof why);
        if (r != 1) {
            kc_buf msg = KC_BUF_INIT;
            put_fmt(&msg, "%s '", checks[i].what);
            put_text(&msg, value, 80);
            if (r < 0)
                put_fmt(&msg, "' cannot be checked: %s", why);
            else if (!first)
                put_fmt(&msg, "' requested, but the chain grants no %ss (no '%s' restriction "
                        "anywhere in it)", checks[i].what, pnames[checks[i].name]);
            else {
                put_fmt(&msg, "' not in allowed %ss ", checks[i].what);
                put_strlist(&msg, &first->list);
            }
            fail(t, r < 0 ? KC_ERR_INVALID : KC_ERR_DENIED, "%s", buf_str(&msg));
            kc_buf_free(&msg);
            poison_free(&p);
            return t->st;
        }
        poison_free(&p);
    }
    parsed_poison p;
    const pentry *first;
    int r = validate(cx, P_PATHLEN, NULL, 0, &pb, &first, &p, why, sizeof why);
    if (r != 1) {
        if (r < 0)
            fail(t, KC_ERR_INVALID, "%s", why);
        else
            fail(t, KC_ERR_DENIED, "pathlen exceeded: the chain goes %lld certificate level(s) "
                 "deeper than %s allows", -(long long)first->pathlen, t->a.pathlen_src);
    }
    poison_free(&p);
    return r == 1 ? KC_OK : t->st;
}

/* One root of trust: upstream's loop body for one allowlist entry. */
static kc_status try_rot(ctx *cx, size_t ri, const kc_chain_items *items, const kc_bytes *topic,
                         const kc_bytes *usage, double checktime, attempt *t)
{
    char why[WHY_MAX], tag[TAG_MAX], label[64], denied_why[WHY_MAX] = "";
    lentry *rot = plist_get(&cx->allow, ri);
    certv cv;
    if (rot->st != KC_OK)
        return fail(t, rot->st, "the entry is malformed: %s", rot->why);
    if (cert_fields(rot->o, &cv.age, &cv.poison, why, sizeof why) != KC_OK)
        return fail(t, KC_ERR_INVALID, "the entry is malformed: %s", why);
    snprintf(label, sizeof label, "allowlist entry %zu", ri + 1);
    if (acc_start(t, &cv.age, &cv.poison, &rot->key, label) != KC_OK)
        return t->st;
    t->a.extra = rot->o->via.array.ptr + 3;
    t->a.n_extra = rot->o->via.array.size - 3;
    printable_step(t);
    if (single_sign(&t->a.key) && spks_add(&t->spks, &t->a.key.keys[0]) != KC_OK)
        return fail(t, KC_ERR_NOMEM, "out of memory");

    bool denied = false;
    for (size_t j = 0; j < items->n; j++) {
        if (!single_sign(&t->a.key))
            return fail(t, KC_ERR_INVALID, "chain item %zu: the key that should sign it (%s) is "
                        "not a single signing key", j + 1, j ? "certified by the item before"
                                                             : "the root's");
        const kc_key *signer = &t->a.key.keys[0];
        key_tag(signer, tag);
        long di, ai;
        if (find_key(&cx->deny, signer, &di, why, sizeof why) != KC_OK)
            return fail(t, KC_ERR_INVALID, "chain item %zu (signed by %s): %s", j + 1, tag, why);
        if (di >= 0) {
            char desc[200];
            denied = true;
            whyf(denied_why, sizeof denied_why, "signing key %s of chain item %zu is "
                 "denylisted (denylist entry %ld) and no allowlisted key follows it", tag,
                 j + 1, di + 1);
            kc_log(KC_LOG_WARNING, "root", "Chain uses denylisted signing key %s.",
                   kc_key_describe(signer, desc, sizeof desc));
        } else {
            if (find_key(&cx->allow, signer, &ai, why, sizeof why) != KC_OK)
                return fail(t, KC_ERR_INVALID, "chain item %zu (signed by %s): %s", j + 1, tag, why);
            if (ai >= 0) {
                lentry *ae = plist_get(&cx->allow, (size_t)ai);
                certv av;
                denied = false;
                snprintf(label, sizeof label, "allowlist entry %ld", ai + 1);
                if (cert_fields(ae->o, &av.age, &av.poison, why, sizeof why) != KC_OK)
                    return fail(t, KC_ERR_INVALID, "chain item %zu (signed by %s): allowlist "
                                "entry %ld for its signer is malformed: %s", j + 1, tag, ai + 1, why);
                av.key = &ae->key;
                av.extra = ae->o->via.array.ptr + 3;
                av.n_extra = ae->o->via.array.size - 3;
                av.label = label;
                kc_status st = intersect(cx, &t->a, &av, true, why, sizeof why);
                if (st != KC_OK)
                    return fail(t, st, "chain item %zu (signed by %s): %s", j + 1, tag, why);
                signer = &t->a.key.keys[0];
            }
        }
        const uint8_t *m;
        size_t mlen;
        kc_err e;
        kc_err_clear(&e);
        kc_status st = kc_sign_open(signer, items->item[j].p, items->item[j].n, &m, &mlen, &e);
        if (st != KC_OK)
            return fail(t, st, "chain item %zu (signed by %s): %s", j + 1, tag,
                        st == KC_ERR_CRYPTO ? "signature does not verify (tampered, or signed "
                                              "by another key)" : e.msg);
        kc_cert *c = &t->certs[t->ncerts];
        if ((st = kc_cert_parse(c, m, mlen, &e)) != KC_OK)
            return fail(t, st, "chain item %zu (signed by %s): %s", j + 1, tag, e.msg);
        t->ncerts++;
        snprintf(label, sizeof label, "chain item %zu", j + 1);
        certv ccv = {c->max_age, c->poison, &c->key, c->extra, c->n_extra, label};
        if ((st = intersect(cx, &t->a, &ccv, false, why, sizeof why)) != KC_OK)
            return fail(t, st, "chain item %zu (signed by %s): %s", j + 1, tag, why);
        t->progress++;
        printable_step(t);
        if (single_sign(&t->a.key) && spks_add(&t->spks, &t->a.key.keys[0]) != KC_OK)
            return fail(t, KC_ERR_NOMEM, "out of memory");
    }
    return final_checks(cx, t, denied, denied_why, topic, usage, checktime);
}

/* §6.9: a key may revoke itself: [unsigned cert of k, cert signed by k]. */
static kc_status try_self_signed(ctx *cx, const kc_chain_items *items, const kc_bytes *usage,
                                 attempt *t, bool *looked_like_one)
{
    *looked_like_one = false;
    if (items->n != 2)
        return fail(t, KC_ERR_DENIED, "not a self-signed pair");
    kc_cert *e = &t->certs[t->ncerts];
    if (kc_cert_parse(e, items->item[0].p, items->item[0].n, NULL) != KC_OK)
        return fail(t, KC_ERR_DENIED, "not a self-signed pair");
    t->ncerts++;
    *looked_like_one = true;
    if (!single_sign(&e->key))
        return fail(t, KC_ERR_INVALID, "item 1 does not certify a single signing key");
    const uint8_t *m;
    size_t mlen;
    kc_err err;
    kc_err_clear(&err);
    kc_status st = kc_sign_open(&e->key.keys[0], items->item[1].p, items->item[1].n, &m, &mlen,
                                &err);
    if (st != KC_OK)
        return fail(t, st, "item 2 is not signed by the key of item 1: %s", err.msg);
    kc_cert *c = &t->certs[t->ncerts];
    if ((st = kc_cert_parse(c, m, mlen, &err)) != KC_OK)
        return fail(t, st, "item 2: %s", err.msg);
    t->ncerts++;
    if (acc_start(t, &e->max_age, &e->poison, &e->key, "chain item 1") != KC_OK)
        return t->st;
    char why[WHY_MAX];
    certv cv = {c->max_age, c->poison, &c->key, c->extra, c->n_extra, "chain item 2"};
    if ((st = intersect(cx, &t->a, &cv, false, why, sizeof why)) != KC_OK)
        return fail(t, st, "%s", why);
    printable_step(t);
    if (!single_sign(&t->a.key) || !kc_key_equal(&t->a.key.keys[0], &e->key.keys[0]))
        return fail(t, KC_ERR_DENIED, "item 2 certifies a key other than its signer");
    static const kc_bytes only[] = {{(const uint8_t *)"key-denylist", 12}};
    strlist denylist_usage = {false, 1, only};
    if (usage && mm(cx, usage, &denylist_usage) != 1)
        return fail(t, KC_ERR_DENIED, "a self-signed pair is only valid for usage "
                    "'key-denylist'");
    kc_bytes pb = {t->a.poison.data, t->a.poison.len};
    const pentry *first;
    parsed_poison p;
    int r = validate(cx, P_USAGES, &key_denylist, 0, &pb, &first, &p, why, sizeof why);
    poison_free(&p);
    if (r != 1)
        return fail(t, KC_ERR_DENIED, "its usages do not include 'key-denylist'");
    r = validate(cx, P_PATHLEN, NULL, 0, &pb, &first, &p, why, sizeof why);
    poison_free(&p);
    if (r != 1)
        return fail(t, KC_ERR_DENIED, "pathlen exceeded");
    if (spks_add(&t->spks, &c->key.keys[0]) != KC_OK)
        return fail(t, KC_ERR_NOMEM, "out of memory");
    return KC_OK;
}

void kc_chain_result_free(kc_chain_result *r)
{
    if (!r)
        return;
    kc_buf_free(&r->poison);
    kc_pks_clear(&r->key);
    kc_mp_doc_free(&r->extra_doc);
    kc_buf_free(&r->extra);
    kc_buf_free(&r->packed);
    kc_pks_clear(&r->spks);
    kc_buf_free(&r->printable);
    kc_buf_free(&r->report);
    memset(r, 0, sizeof *r);
}

/* Moves an accepted attempt into the caller's result. */
static kc_status finish(attempt *t, size_t rot_index, bool self_signed, kc_chain_result *out)
{
    if (!out)
        return KC_OK;
    kc_mp_out ex, all;
    kc_mp_out_init(&ex);
    kc_mp_out_init(&all);
    msgpack_pack_array(&ex.pk, t->a.n_extra);
    msgpack_pack_array(&all.pk, 3 + t->a.n_extra);
    pack_num(&all.pk, &t->a.age);
    kc_mp_pack_bin(&all.pk, t->a.poison.data, t->a.poison.len);
    kc_pks_pack(&all.pk, &t->a.key);
    for (size_t i = 0; i < t->a.n_extra; i++) {
        repack(&ex.pk, &t->a.extra[i]);
        repack(&all.pk, &t->a.extra[i]);
    }
    kc_status st = mp_out_take(&ex, &out->extra);
    if (mp_out_take(&all, &out->packed) != KC_OK)
        st = KC_ERR_NOMEM;
    if (st == KC_OK)
        st = kc_mp_decode(&out->extra_doc, out->extra.data, out->extra.len, "extra", NULL);
    if (st != KC_OK) {
        kc_chain_result_free(out);
        return KC_ERR_NOMEM;
    }
    out->extras = kc_mp_root(&out->extra_doc)->via.array.ptr;
    out->n_extra = t->a.n_extra;
    out->max_age = num_d(&t->a.age);
    out->max_age_is_int = num_is_int(&t->a.age);
    out->poison = t->a.poison;
    t->a.poison = (kc_buf)KC_BUF_INIT;
    out->key = t->a.key;
    memset(&t->a.key, 0, sizeof t->a.key);
    out->spks = t->spks;
    memset(&t->spks, 0, sizeof t->spks);
    out->printable = t->printable;
    t->printable = (kc_buf)KC_BUF_INIT;
    buf_str(&out->printable);
    out->rot_index = rot_index;
    out->self_signed = self_signed;
    return KC_OK;
}

static kc_status check_text(const char *what, const char *s, kc_bytes *out, kc_err *err)
{
    if (!s)
        return KC_OK;
    *out = (kc_bytes){(const uint8_t *)s, strlen(s)};
    if (!utf8_valid(out->p, out->n))
        return kc_err_set(err, KC_ERR_INVALID, "%s to check is not valid UTF-8", what);
    return KC_OK;
}

kc_status kc_chain_process(const uint8_t *chain, size_t n, const char *topic,
                           const char *usage, const kc_chain_list *allowlist,
                           const kc_chain_list *denylist, double checktime,
                           kc_chain_result *out, kc_err *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!allowlist)
        return kc_err_set(err, KC_ERR_DENIED, "chain not trusted: no roots of trust configured "
                          "(no allowlist)");
    kc_bytes topic_b, usage_b;
    if (check_text("topic", topic, &topic_b, err) != KC_OK ||
        check_text("usage", usage, &usage_b, err) != KC_OK)
        return KC_ERR_INVALID;
    const kc_bytes *tp = topic ? &topic_b : NULL, *up = usage ? &usage_b : NULL;
    kc_chain_items items;
    kc_status st = kc_chain_parse(&items, chain, n, err);
    if (st != KC_OK)
        return st;
    if (items.n == 0) {
        kc_chain_items_free(&items);
        return kc_err_set(err, KC_ERR_INVALID, "chain has no items: at least one certificate "
                          "signed by a root of trust is needed");
    }
    ctx cx = {0};
    attempt *t = calloc(1, sizeof *t), *best = calloc(1, sizeof *best);
    kc_buf report = KC_BUF_INIT;
    if (!t || !best || plist_init(&cx.allow, allowlist, "allowlist") != KC_OK ||
        plist_init(&cx.deny, denylist, "denylist") != KC_OK) {
        st = kc_err_set(err, KC_ERR_NOMEM, "out of memory validating a chain");
        goto done;
    }
    size_t best_index = 0;
    best->progress = -1;
    for (size_t i = 0; i < allowlist->n; i++) {
        memset(t, 0, sizeof *t);
        st = try_rot(&cx, i, &items, tp, up, checktime, t);
        if (st == KC_OK) {
            st = finish(t, i, false, out);
            attempt_free(t);
            goto done;
        }
        lentry *rot = plist_get(&cx.allow, i);
        char tag[TAG_MAX] = "?";
        if (rot->st == KC_OK)
            pks_tag(&rot->key, tag);
        put_fmt(&report, "allowlist entry %zu (rot %s): %s\n", i + 1, tag, t->why);
        if (t->progress > best->progress) {
            best->progress = t->progress;
            best->st = t->st;
            whyf(best->why, sizeof best->why, "allowlist entry %zu (rot %s): %s", i + 1, tag,
                 t->why);
            best_index = i;
        }
        attempt_free(t);
    }
    memset(t, 0, sizeof *t);
    bool self_like = false;
    st = try_self_signed(&cx, &items, up, t, &self_like);
    if (st == KC_OK) {
        st = finish(t, SIZE_MAX, true, out);
        attempt_free(t);
        goto done;
    }
    if (self_like) {
        /* an unsigned first item: the pair is what the sender meant */
        put_fmt(&report, "self-signed denylist pair: %s\n", t->why);
        best->st = t->st;
        whyf(best->why, sizeof best->why, "self-signed denylist pair: %s", t->why);
        best_index = allowlist->n;
    }
    attempt_free(t);

    kc_buf summary = KC_BUF_INIT;
    if (self_like) {
        st = best->st;
        put_fmt(&summary, "chain not trusted (%zu roots of trust tried): %s", allowlist->n,
                best->why);
    } else if (allowlist->n == 0) {
        st = KC_ERR_DENIED;
        put_fmt(&summary, "chain not trusted: the allowlist is empty");
    } else {
        st = best->st;
        put_fmt(&summary, "chain not trusted by any of the %zu roots of trust: %s", allowlist->n,
                best->why);
    }
    /* the other reasons, in order, after the most relevant one */
    for (size_t pos = 0, line = 0; pos < report.len; line++) {
        const uint8_t *start = report.data + pos, *nl = memchr(start, '\n', report.len - pos);
        size_t len = (size_t)(nl - start); /* every line ends with a newline */
        if (line != best_index)
            put_fmt(&summary, "; also %.*s", (int)len, (const char *)start);
        pos += len + 1;
    }
    kc_err_set(err, st, "%s", buf_str(&summary));
    kc_buf_free(&summary);
    if (out) {
        out->report = report;
        report = (kc_buf)KC_BUF_INIT;
        buf_str(&out->report);
    }
done:
    kc_buf_free(&report);
    plist_free(&cx.allow);
    plist_free(&cx.deny);
    free(t);
    free(best);
    kc_chain_items_free(&items);
    return st;
}
