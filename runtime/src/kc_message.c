#include "kc_message.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "kc_keyidx.h"
#include "kc_mp.h"
#include "kc_serde.h"

/* ---- wire ------------------------------------------------------------------ */

/* What msgpack-python 1.0 (raw=True, strict_map_key=True) refuses beyond
 * what msgpack-c refuses: map keys other than str/bin, and timestamp
 * extensions (type -1) it cannot turn into a Timestamp. */
static bool python_accepts(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (!python_accepts(&o->via.array.ptr[i]))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++)
            if (!kc_mp_is_bytes(&o->via.map.ptr[i].key) ||
                !python_accepts(&o->via.map.ptr[i].val))
                return false;
        return true;
    case MSGPACK_OBJECT_EXT: {
        if (o->via.ext.type != -1)
            return true;
        const uint8_t *p = (const uint8_t *)o->via.ext.ptr;
        uint64_t nsec;
        switch (o->via.ext.size) {
        case 4: return true;
        case 8:
            nsec = ((uint64_t)p[0] << 22) | ((uint64_t)p[1] << 14) | ((uint64_t)p[2] << 6) |
                   (p[3] >> 2);
            return nsec < 1000000000u;
        case 12:
            nsec = ((uint64_t)p[0] << 24) | ((uint64_t)p[1] << 16) | ((uint64_t)p[2] << 8) | p[3];
            return nsec < 1000000000u;
        default: return false;
        }
    }
    default:
        return true;
    }
}

/* ---- the fast path: the one shape producers emit ------------------------- */

static uint64_t be_uint(const uint8_t *p, size_t k)
{
    uint64_t v = 0;
    for (size_t i = 0; i < k; i++)
        v = (v << 8) | p[i];
    return v;
}

/* A msgpack str or bin at p[*pos]. */
static bool fast_bytes(const uint8_t *p, size_t n, size_t *pos, const uint8_t **out, size_t *len)
{
    if (*pos >= n)
        return false;
    uint8_t t = p[*pos];
    size_t hdr;
    if ((t & 0xe0) == 0xa0)
        hdr = 1;
    else if (t == 0xc4 || t == 0xd9)
        hdr = 2;
    else if (t == 0xc5 || t == 0xda)
        hdr = 3;
    else if (t == 0xc6 || t == 0xdb)
        hdr = 5;
    else
        return false;
    if (n - *pos < hdr)
        return false;
    uint64_t l = hdr == 1 ? (uint64_t)(t & 0x1f) : be_uint(p + *pos + 1, hdr - 1);
    if (n - *pos - hdr < l)
        return false;
    *out = p + *pos + hdr;
    *len = (size_t)l;
    *pos += hdr + (size_t)l;
    return true;
}

/* A msgpack integer at p[*pos], as msgpack-c types it (non-negative values
 * of the signed forms are positive integers). */
static bool fast_int(const uint8_t *p, size_t n, size_t *pos, kc_keyidx *ki)
{
    if (*pos >= n)
        return false;
    uint8_t t = p[*pos];
    if (t <= 0x7f || t >= 0xe0) {
        kc_keyidx_from_int(ki, (int8_t)t);
        *pos += 1;
        return true;
    }
    size_t k;
    bool is_signed = t >= 0xd0;
    if (t >= 0xcc && t <= 0xcf)
        k = (size_t)1 << (t - 0xcc);
    else if (t >= 0xd0 && t <= 0xd3)
        k = (size_t)1 << (t - 0xd0);
    else
        return false;
    if (n - *pos - 1 < k)
        return false;
    uint64_t v = be_uint(p + *pos + 1, k);
    if (is_signed && k < 8 && (v >> (8 * k - 1)))
        v |= ~(uint64_t)0 << (8 * k);  /* sign-extend */
    if (is_signed)
        kc_keyidx_from_int(ki, (int64_t)v);
    else
        kc_keyidx_from_uint(ki, v);
    *pos += 1 + k;
    return true;
}

/* fixarray(3) of (int or bytes, bytes, bytes) and nothing after: decoded
 * directly, without msgpack-c's allocation and generality. Any other input
 * takes the general path, which agrees with this one wherever both apply
 * (fuzz_deserialize compares them). */
static bool parse_common(const uint8_t *body, size_t bn, kc_wire *w)
{
    if (bn < 1 || body[0] != 0x93)
        return false;
    size_t pos = 1;
    const uint8_t *kp;
    size_t kl;
    if (fast_bytes(body, bn, &pos, &kp, &kl)) {
        kc_keyidx_from_bytes(&w->ki, kp, kl);
    } else if (!fast_int(body, bn, &pos, &w->ki)) {
        return false;
    }
    w->ki_usable = w->ki.type != KC_KEYIDX_OTHER;
    const uint8_t *sp;
    size_t sl;
    if (!fast_bytes(body, bn, &pos, &sp, &sl) || !fast_bytes(body, bn, &pos, &w->ct, &w->ct_len))
        return false;
    w->salt = kc_any_bytes(sp, sl);
    w->ct_is_bytes = true;
    return pos == bn;
}

kc_status kc_wire_parse(const uint8_t *p, size_t n, msgpack_zone *zone, kc_wire *w,
                        kc_err *err)
{
    if (n >= 1 && p[0] == KC_WIRE_MARKER && parse_common(p + 1, n - 1, w))
        return KC_OK;
    return kc_wire_parse_msgpack(p, n, zone, w, err);
}

kc_status kc_wire_parse_msgpack(const uint8_t *p, size_t n, msgpack_zone *zone, kc_wire *w,
                                kc_err *err)
{
    if (n < 1 || p[0] != KC_WIRE_MARKER)
        return kc_err_set(err, KC_ERR_INVALID, "not a kafkacrypto message: %s",
                          n < 1 ? "empty" : "first byte is not 0x01");
    const uint8_t *body = p + 1;
    size_t bn = n - 1;
    /* The guard refuses truncated input and declared sizes the input cannot
     * hold, before msgpack-c allocates for them. */
    if (bn == 0 || !kc_mp_sizes_plausible(body, bn))
        return kc_err_set(err, KC_ERR_INVALID,
                          "not a kafkacrypto message: truncated or malformed msgpack");
    msgpack_zone_clear(zone);
    msgpack_object o;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack((const char *)body, bn, &off, zone, &o);
    if (r != MSGPACK_UNPACK_SUCCESS || off != bn)
        return kc_err_set(err, KC_ERR_INVALID, "not a kafkacrypto message: %s",
                          r == MSGPACK_UNPACK_EXTRA_BYTES ? "bytes after the msgpack object"
                                                          : "malformed or too deeply nested msgpack");
    if (!python_accepts(&o))
        return kc_err_set(err, KC_ERR_INVALID,
                          "not a kafkacrypto message: msgpack that upstream cannot decode");
    memset(w, 0, sizeof *w);
    if (o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 3) {
        const msgpack_object *e = o.via.array.ptr;
        w->ki_usable = kc_keyidx_from_mp(&w->ki, &e[0]) && w->ki.type != KC_KEYIDX_OTHER;
        const uint8_t *sp;
        size_t sn;
        w->salt = kc_mp_bytes(&e[1], &sp, &sn) ? kc_any_bytes(sp, sn) : kc_any_other();
        w->ct_is_bytes = kc_mp_bytes(&e[2], &w->ct, &w->ct_len);
        return KC_OK;
    }
    if (kc_mp_is_bytes(&o) && kc_mp_pylen(&o) == 3) {
        /* Indexing bytes gives integers: ki = first byte, the salt is not
         * bytes (counter), the box is not bytes (fails later). */
        const uint8_t *bp;
        size_t bl;
        kc_mp_bytes(&o, &bp, &bl);
        kc_keyidx_from_uint(&w->ki, bp[0]);
        w->ki_usable = true;
        w->salt = kc_any_other();
        return KC_OK;
    }
    if (o.type == MSGPACK_OBJECT_MAP && o.via.map.size == 3)
        return kc_err_set(err, KC_ERR_INVALID,
                          "not a kafkacrypto message: a map of 3 entries (spec B6)");
    return kc_err_set(err, KC_ERR_INVALID,
                      "not a kafkacrypto message: expected a msgpack array of 3 elements");
}

static int buf_write(void *data, const char *p, size_t n)
{
    return kc_buf_append(data, p, n) == KC_OK ? 0 : -1;
}

kc_status kc_wire_seal(kc_buf *out, const kc_keyidx *ki, const uint8_t salt[KC_KEYGEN_SALTBYTES],
                       const uint8_t key[KC_KEYGEN_KEYBYTES],
                       const uint8_t nonce[KC_KEYGEN_NONCEBYTES], const uint8_t *pt, size_t len,
                       kc_err *err)
{
    out->len = 0;  /* the previous content was ciphertext: nothing to wipe */
    if (len > UINT32_MAX - crypto_secretbox_MACBYTES)
        return kc_err_set(err, KC_ERR_INVALID,
                          "value of %zu bytes: larger than a msgpack bin can hold", len);
    size_t boxlen = len + crypto_secretbox_MACBYTES;
    /* marker, array, ki (<= 2 + 64), salt (2 + 16), bin32 header, box */
    if (kc_buf_reserve(out, 1 + 1 + 2 + KC_KEYIDX_MAX_BYTES + 2 + KC_KEYGEN_SALTBYTES + 5 +
                                boxlen) != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory for a %zu-byte message", len);
    out->data[out->len++] = KC_WIRE_MARKER;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    /* Space is reserved: these appends cannot fail. */
    msgpack_pack_array(&pk, 3);
    kc_keyidx_pack(&pk, ki);
    msgpack_pack_bin_with_body(&pk, salt, KC_KEYGEN_SALTBYTES);
    msgpack_pack_bin(&pk, boxlen);
    crypto_secretbox_easy(out->data + out->len, pt, len, nonce, key);
    out->len += boxlen;
    return KC_OK;
}

bool kc_wire_open(const uint8_t *ct, size_t ct_len, const uint8_t key[KC_KEYGEN_KEYBYTES],
                  const uint8_t nonce[KC_KEYGEN_NONCEBYTES], kc_buf *out)
{
    kc_buf_reset(out);
    if (ct_len < crypto_secretbox_MACBYTES)
        return false;
    size_t mlen = ct_len - crypto_secretbox_MACBYTES;
    if (kc_buf_reserve(out, mlen ? mlen : 1) != KC_OK)
        return false;
    if (crypto_secretbox_open_easy(out->data, ct, ct_len, nonce, key) != 0)
        return false;
    out->len = mlen;
    return true;
}

/* ---- the message object ---------------------------------------------------- */

void kc_message_init(kc_message *m)
{
    memset(m, 0, sizeof *m);
    m->null = true;
    m->kind = KC_KIND_VALUE;
}

static void drop_deser(kc_message *m)
{
    if (m->deser) {
        kc_serde_unref(m->deser);
        m->deser = NULL;
    }
    m->topic.len = 0;
}

void kc_message_clear(kc_message *m)
{
    drop_deser(m);
    kc_buf_free(&m->bytes);
    kc_buf_free(&m->topic);
    if (m->zone_live)
        msgpack_zone_destroy(&m->zone);
    kc_message_init(m);
}

kc_message *kc_message_new(void)
{
    kc_message *m = malloc(sizeof *m);
    if (m)
        kc_message_init(m);
    return m;
}

void kc_message_free(kc_message *m)
{
    if (!m)
        return;
    kc_message_clear(m);
    free(m);
}

void kc_message_move(kc_message *to, kc_message *from)
{
    msgpack_zone zone = to->zone;
    bool live = to->zone_live;
    drop_deser(to);
    kc_buf_free(&to->bytes);
    kc_buf_free(&to->topic);
    *to = *from;
    to->zone = zone;
    to->zone_live = live;
    zone = from->zone;
    live = from->zone_live;
    kc_message_init(from);
    from->zone = zone;
    from->zone_live = live;
}

msgpack_zone *kc_message_zone(kc_message *m)
{
    if (!m->zone_live) {
        if (!msgpack_zone_init(&m->zone, 512))
            return NULL;
        m->zone_live = true;
    }
    return &m->zone;
}

void kc_message_set_null(kc_message *m)
{
    drop_deser(m);
    kc_buf_reset(&m->bytes);
    m->null = true;
    m->cleartext = false;
    m->decryptable = false;
}

void kc_message_mark_cleartext(kc_message *m)
{
    drop_deser(m);
    m->null = false;
    m->cleartext = true;
    m->decryptable = true;
}

kc_status kc_message_set_cleartext(kc_message *m, const uint8_t *p, size_t n, kc_err *err)
{
    if (!m || (!p && n))
        return kc_err_set(err, KC_ERR_INVALID, "message: bad arguments");
    if (kc_buf_set(&m->bytes, p, n) != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "message: out of memory");
    kc_message_mark_cleartext(m);
    return KC_OK;
}

kc_status kc_message_set_encrypted(kc_message *m, const uint8_t *raw, size_t n,
                                   kc_serde *deser, kc_kind kind, const char *topic,
                                   size_t topic_len, bool decryptable)
{
    drop_deser(m);
    m->null = false;
    m->cleartext = false;
    m->kind = kind;
    if (kc_buf_set(&m->bytes, raw, n) != KC_OK)
        return KC_ERR_NOMEM;
    if (n == 0 || !deser || !topic) {
        m->decryptable = false;
        return KC_OK;
    }
    if (kc_buf_set(&m->topic, topic, topic_len) != KC_OK ||
        kc_buf_append_byte(&m->topic, 0) != KC_OK)
        return KC_ERR_NOMEM;
    m->topic.len--;  /* keep the NUL out of the length */
    m->decryptable = decryptable;
    if (decryptable)
        m->deser = kc_serde_ref(deser);
    return KC_OK;
}

bool kc_message_is_null(const kc_message *m)
{
    return m->null;
}

bool kc_message_is_possibly_decryptable(const kc_message *m)
{
    return m->decryptable;
}

bool kc_message_is_cleartext(kc_message *m, bool retry)
{
    if (m->cleartext || m->null || !retry || !m->deser || !m->decryptable)
        return m->cleartext;
    /* Deserialize our own raw bytes into a scratch object; upstream
     * swallows any error of the retry. */
    kc_message tmp;
    kc_message_init(&tmp);
    if (kc_serde_deserialize(m->deser, m->kind, (const char *)m->topic.data, m->bytes.data,
                             m->bytes.len, &tmp, NULL) == KC_OK) {
        if (tmp.cleartext) {
            kc_buf swap = m->bytes;
            m->bytes = tmp.bytes;
            tmp.bytes = swap;
            kc_message_mark_cleartext(m);
        } else {
            m->decryptable = tmp.decryptable;
        }
    }
    kc_message_clear(&tmp);
    return m->cleartext;
}

kc_status kc_message_get(kc_message *m, bool retry, const uint8_t **p, size_t *n,
                         kc_err *err)
{
    if (!kc_message_is_cleartext(m, retry))
        return kc_err_set(err, KC_ERR_STATE, "Message not decrypted!");
    *p = m->bytes.data ? m->bytes.data : (const uint8_t *)"";
    *n = m->bytes.len;
    return KC_OK;
}

void kc_message_bytes(const kc_message *m, const uint8_t **p, size_t *n)
{
    *p = m->bytes.data ? m->bytes.data : (const uint8_t *)"";
    *n = m->bytes.len;
}

const char *kc_message_topic(const kc_message *m)
{
    return m->topic.len ? (const char *)m->topic.data : "";
}

kc_kind kc_message_kind(const kc_message *m)
{
    return m->kind;
}
