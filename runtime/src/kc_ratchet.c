/* The backend-independent part of the ratchet and the §3.2/§3.3 math. */
#include "kc_ratchet.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "kc_keyidx.h"
#include "kc_mp.h"

struct kc_ratchet {
    const kc_ratchet_ops *ops;
    void *self;
    pthread_mutex_t lock;
};

kc_status kc_ratchet_new(const kc_ratchet_ops *ops, void *self, kc_ratchet **out,
                         kc_err *err)
{
    *out = NULL;
    if (!ops || !ops->increment || !ops->derive)
        return kc_err_set(err, KC_ERR_INVALID,
                          "ratchet backend: increment and derive are required");
    kc_ratchet *r = calloc(1, sizeof *r);
    if (!r)
        return kc_err_set(err, KC_ERR_NOMEM, "ratchet: out of memory");
    r->ops = ops;
    r->self = self;
    pthread_mutex_init(&r->lock, NULL);
    *out = r;
    return KC_OK;
}

kc_status kc_ratchet_increment(kc_ratchet *r, kc_err *err)
{
    if (!r)
        return kc_err_set(err, KC_ERR_INVALID, "ratchet: NULL");
    pthread_mutex_lock(&r->lock);
    kc_status st = r->ops->increment(r->self, err);
    pthread_mutex_unlock(&r->lock);
    return st;
}

kc_status kc_ratchet_derive(kc_ratchet *r, const uint8_t *root, size_t root_len,
                            const uint8_t *node, size_t node_len, kc_keyidx *ki,
                            uint8_t secret[KC_SECRET_BYTES], kc_err *err)
{
    if (!r || (!root && root_len))
        return kc_err_set(err, KC_ERR_INVALID, "ratchet: bad arguments to derive");
    pthread_mutex_lock(&r->lock);
    kc_status st = r->ops->derive(r->self, root ? root : (const uint8_t *)"", root_len,
                                  node, node_len, ki, secret, err);
    pthread_mutex_unlock(&r->lock);
    return st;
}

void kc_ratchet_close(kc_ratchet *r)
{
    if (!r)
        return;
    if (r->ops->close)
        r->ops->close(r->self);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

kc_status kc_ratchet_get_key_value_generators(kc_ratchet *r, const uint8_t *root,
                                              size_t root_len, const uint8_t *node,
                                              size_t node_len, kc_keyidx *ki,
                                              uint8_t secret[KC_SECRET_BYTES],
                                              kc_keygen *kg, kc_keygen *vg, kc_err *err)
{
    uint8_t s[KC_SECRET_BYTES];
    kc_keyidx k;
    kc_status st = kc_ratchet_derive(r, root, root_len, node, node_len, &k, s, err);
    if (st == KC_OK && kg)
        st = kc_keygen_init(kg, s, sizeof s, kc_keygen_ctx_key, 16, err);
    if (st == KC_OK && vg)
        st = kc_keygen_init(vg, s, sizeof s, kc_keygen_ctx_value, 16, err);
    if (st == KC_OK) {
        if (ki)
            *ki = k;
        if (secret)
            memcpy(secret, s, sizeof s);
    }
    sodium_memzero(s, sizeof s);
    return st;
}

void kc_ratchet_next_secret(const uint8_t secret[KC_SECRET_BYTES],
                            uint8_t next[KC_SECRET_BYTES])
{
    /* Upstream: rekey (counter := 0), then generate with the ratchet ctx,
     * keysize 32, noncesize 0 — i.e. B2B(""; s, 0^16, "ratchet", 32). */
    uint8_t zero_salt[KC_KEYGEN_SALTBYTES] = {0};
    crypto_generichash_blake2b_salt_personal(next, KC_SECRET_BYTES, NULL, 0, secret,
                                             KC_SECRET_BYTES, zero_salt,
                                             kc_keygen_ctx_ratchet);
}

kc_status kc_ratchet_derive_root(kc_keygen *gen, uint64_t index, const uint8_t *root,
                                 size_t root_len, const uint8_t *node, size_t node_len,
                                 kc_keyidx *ki, uint8_t secret[KC_SECRET_BYTES],
                                 kc_err *err)
{
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, root, root_len);
    kc_any salt = kc_any_bytes(h, 16), ctx = kc_any_bytes(h + 16, 16);
    uint8_t scratch[KC_SECRET_BYTES];
    kc_status st = kc_keygen_generate(gen, NULL, &ctx, &salt, KC_SECRET_BYTES, 0, secret,
                                      scratch, err);
    sodium_memzero(scratch, sizeof scratch);
    if (st != KC_OK)
        return st;
    if (!node) {
        kc_keyidx_from_uint(ki, index);
        return KC_OK;
    }
    uint8_t be[16] = {0};
    for (int i = 0; i < 8; i++)
        be[15 - i] = (uint8_t)(index >> (8 * i));
    crypto_generichash_state state;
    uint8_t out[crypto_generichash_BYTES];
    crypto_generichash_init(&state, NULL, 0, sizeof out);
    crypto_generichash_update(&state, node, node_len);
    crypto_generichash_update(&state, be, sizeof be);
    crypto_generichash_final(&state, out, sizeof out);
    kc_keyidx_from_bytes(ki, out, sizeof out);
    return KC_OK;
}

/* ---- the .seed format ------------------------------------------------- */

/* Only the type: a seed file's values may be secret material. */
static const char *type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_STR: return "a str";
    case MSGPACK_OBJECT_BIN: return "a bin";
    case MSGPACK_OBJECT_ARRAY: return o->via.array.size < 2 ? "a shorter array" : "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    default: return "an ext value";
    }
}

kc_status kc_seed_parse(const uint8_t *p, size_t n, const char *path, uint64_t *index,
                        uint8_t secret[KC_SECRET_BYTES], kc_err *err)
{
    char what[600];
    snprintf(what, sizeof what, "file %s", path);
    if (n == 0)
        return kc_err_set(err, KC_ERR_INVALID,
                          "file %s: empty, expected msgpack [keyidx, secret]", path);
    kc_mp_doc doc;
    kc_status st = kc_mp_decode(&doc, p, n, what, err);
    if (st != KC_OK)
        return st;
    const msgpack_object *o = kc_mp_root(&doc);
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2) {
        st = kc_err_set(err, KC_ERR_INVALID,
                        "file %s: expected a msgpack array [keyidx, secret], got %s", path,
                        type_name(o));
        goto out;
    }
    const msgpack_object *k = &o->via.array.ptr[0], *s = &o->via.array.ptr[1];
    if (k->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        st = kc_err_set(err, KC_ERR_INVALID,
                        "file %s: field keyidx: expected a non-negative integer, got %lld",
                        path, (long long)k->via.i64);
        goto out;
    }
    if (k->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        st = kc_err_set(err, KC_ERR_INVALID,
                        "file %s: field keyidx: expected an integer, got %s", path,
                        type_name(k));
        goto out;
    }
    if (k->via.u64 == UINT64_MAX) {
        st = kc_err_set(err, KC_ERR_INVALID,
                        "file %s: field keyidx: %llu is the largest msgpack integer, the "
                        "ratchet cannot advance past it", path,
                        (unsigned long long)k->via.u64);
        goto out;
    }
    const uint8_t *sp;
    size_t sn;
    if (!kc_mp_bytes(s, &sp, &sn)) {
        /* Never describe the value: it may be secret material. */
        st = kc_err_set(err, KC_ERR_INVALID,
                        "file %s: field secret: expected %d bytes (bin or str), got %s",
                        path, KC_SECRET_BYTES, type_name(s));
        goto out;
    }
    if (sn != KC_SECRET_BYTES) {
        st = kc_err_set(err, KC_ERR_INVALID,
                        "file %s: field secret: expected %d bytes, got %zu", path,
                        KC_SECRET_BYTES, sn);
        goto out;
    }
    *index = k->via.u64;
    memcpy(secret, sp, KC_SECRET_BYTES);
out:
    kc_mp_doc_free(&doc);
    return st;
}

kc_status kc_seed_encode(uint64_t index, const uint8_t secret[KC_SECRET_BYTES],
                         kc_buf *out)
{
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, 2);
    msgpack_pack_uint64(&mo.pk, index);
    kc_mp_pack_bin(&mo.pk, secret, KC_SECRET_BYTES);
    kc_status st = kc_mp_out_status(&mo);
    if (st == KC_OK)
        st = kc_buf_set(out, mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);
    return st;
}
