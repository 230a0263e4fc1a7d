/* kc_chain_util.c — message helpers and Python-like number handling for the
 * trust layer (kc_chain_impl.h). */
#include "kc_chain_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kc_hex.h"
#include "kc_unicode.h"

/* snprintf for messages that may be cut short (they end in "..."). */
void kc_whyf(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k >= whylen && whylen > 4)
        memcpy(why + whylen - 4, "...", 4);
}

bool kc_bytes_eq(const kc_bytes *a, const kc_bytes *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

bool kc_bytes_is(const kc_bytes *a, const char *s)
{
    kc_bytes b = {(const uint8_t *)s, strlen(s)};
    return kc_bytes_eq(a, &b);
}

/* First 4 bytes of a key in hex (and its version when not 1): enough for
 * an operator to tell keys apart. */
const char *kc_key_tag(const kc_key *k, char out[KC_TAG_MAX])
{
    kc_hex(k->x, k->x_len < 4 ? k->x_len : 4, out);
    if (k->version != 1)
        snprintf(out + strlen(out), KC_TAG_MAX - strlen(out), "(v%d)", k->version % 100);
    return out;
}

const char *kc_pks_tag(const kc_pks *p, char out[KC_TAG_MAX])
{
    if (p->n == 1 && !p->is_list && p->keys[0].kind == KC_SIGN_PK)
        return kc_key_tag(&p->keys[0], out);
    snprintf(out, KC_TAG_MAX, "%s", p->is_list ? "a key list" : "a kem key");
    return out;
}

/* "2026-01-01T00:00:00Z" (fraction shown when present), "never" for 0. */
const char *kc_time_str(double t, char out[48])
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
void kc_put_text(kc_buf *b, const kc_bytes *s, size_t max)
{
    size_t n = s->n < max ? s->n : max;
    bool utf8 = kc_utf8_valid(s->p, s->n);
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

void kc_put_fmt(kc_buf *b, const char *fmt, ...)
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
const char *kc_buf_str(kc_buf *b)
{
    if (kc_buf_append_byte(b, 0) != KC_OK)
        return "";
    b->len--;
    return (const char *)b->data;
}

/* Hands a packer's bytes to out (replacing its content) and frees it. */
kc_status kc_mp_out_take(kc_mp_out *mo, kc_buf *out)
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

bool kc_num_ok(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
           o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64;
}

bool kc_num_is_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

double kc_num_d(const msgpack_object *o)
{
    double d = 0;
    kc_mp_number(o, &d);
    return d;
}

bool kc_num_lt(const msgpack_object *a, const msgpack_object *b)
{
    if (kc_num_is_int(a) && kc_num_is_int(b)) {
        bool an = a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        bool bn = b->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        if (an != bn)
            return an;
        return an ? a->via.i64 < b->via.i64 : a->via.u64 < b->via.u64;
    }
    return kc_num_d(a) < kc_num_d(b);
}

bool kc_num_is_zero(const msgpack_object *o) { return kc_num_d(o) == 0; }
bool kc_num_gt_zero(const msgpack_object *o) { return kc_num_d(o) > 0; }

void kc_pack_num(msgpack_packer *pk, const msgpack_object *o)
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
void kc_repack(msgpack_packer *pk, const msgpack_object *o)
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
    case MSGPACK_OBJECT_FLOAT64: kc_pack_num(pk, o); break;
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
            kc_repack(pk, &o->via.array.ptr[i]);
        break;
    case MSGPACK_OBJECT_MAP:
        msgpack_pack_map(pk, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            kc_repack(pk, &o->via.map.ptr[i].key);
            kc_repack(pk, &o->via.map.ptr[i].val);
        }
        break;
    case MSGPACK_OBJECT_EXT:
        msgpack_pack_ext_with_body(pk, o->via.ext.ptr, o->via.ext.size, o->via.ext.type);
        break;
    }
}
