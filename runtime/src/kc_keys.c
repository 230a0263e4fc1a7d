#include "kc_keys.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_hex.h"
#include "kc_mp.h"

static const char *kind_name(kc_key_kind kind)
{
    switch (kind) {
    case KC_SIGN_PK: return "signing public key";
    case KC_SIGN_SK: return "signing secret key";
    case KC_KEM_PK: return "key-exchange public key";
    case KC_KEM_SK: return "key-exchange secret key";
    }
    return "key";
}

static bool is_sign(kc_key_kind kind) { return kind == KC_SIGN_PK || kind == KC_SIGN_SK; }
static bool is_secret(kc_key_kind kind) { return kind == KC_SIGN_SK || kind == KC_KEM_SK; }

static size_t v1_len(kc_key_kind kind)
{
    return kind == KC_SIGN_SK ? KC_SIGN_SK_BYTES : 32;
}

static bool version_known(kc_key_kind kind, int64_t v)
{
    if (is_sign(kind))
        return v == 1 || v == 4;
    return v == 1 || v == 2 || v == 3 || v == 5 || v == 6;
}

void kc_key_clear(kc_key *k)
{
    if (!k)
        return;
    if (k->pq) {
        sodium_memzero(k->pq, k->pq_len);
        free(k->pq);
    }
    sodium_memzero(k, sizeof *k);
}

kc_status kc_key_copy(kc_key *dst, const kc_key *src)
{
    *dst = *src;
    if (src->pq) {
        dst->pq = malloc(src->pq_len);
        if (!dst->pq) {
            sodium_memzero(dst, sizeof *dst);
            return KC_ERR_NOMEM;
        }
        memcpy(dst->pq, src->pq, src->pq_len);
    }
    return KC_OK;
}

static kc_status set_v1(kc_key *out, kc_key_kind kind, const uint8_t *p, size_t n, kc_err *err)
{
    if (n != v1_len(kind))
        return kc_err_set(err, KC_ERR_INVALID, "%s version 1: %zu bytes, expected %zu",
                          kind_name(kind), n, v1_len(kind));
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->version = 1;
    memcpy(out->x, p, n);
    out->x_len = n;
    return KC_OK;
}

/* byte string accessor honouring raw=False (bin only) when strict */
static bool get_bytes(const msgpack_object *o, bool bin_only, const uint8_t **p, size_t *n)
{
    if (bin_only && o->type != MSGPACK_OBJECT_BIN)
        return false;
    return kc_mp_bytes(o, p, n);
}

/* [v, keys] */
static kc_status from_list(kc_key *out, kc_key_kind kind, const msgpack_object *o,
                           bool bin_only, kc_err *err)
{
    int64_t v;
    if (o->via.array.size != 2 || !kc_mp_int(&o->via.array.ptr[0], &v))
        return kc_err_set(err, KC_ERR_INVALID, "%s: expected [version, keys]", kind_name(kind));
    if (!version_known(kind, v))
        return kc_err_set(err, KC_ERR_INVALID, "%s: unknown version %lld", kind_name(kind),
                          (long long)v);
    const msgpack_object *keys = &o->via.array.ptr[1];
    const uint8_t *p;
    size_t n;
    if (v == 1) {
        if (!get_bytes(keys, bin_only, &p, &n))
            return kc_err_set(err, KC_ERR_INVALID, "%s version 1: key is not a byte string",
                              kind_name(kind));
        return set_v1(out, kind, p, n, err);
    }
    if (is_secret(kind))
        return kc_err_set(err, KC_ERR_UNSUPPORTED,
                          "%s version %lld needs post-quantum algorithms this build lacks",
                          kind_name(kind), (long long)v);
    const uint8_t *xp, *qp;
    size_t xn, qn;
    if (keys->type != MSGPACK_OBJECT_ARRAY || keys->via.array.size != 2 ||
        !get_bytes(&keys->via.array.ptr[0], bin_only, &xp, &xn) ||
        !get_bytes(&keys->via.array.ptr[1], bin_only, &qp, &qn) || xn != 32 || qn == 0)
        return kc_err_set(err, KC_ERR_INVALID,
                          "%s version %lld: expected [32-byte classical key, post-quantum key]",
                          kind_name(kind), (long long)v);
    memset(out, 0, sizeof *out);
    out->pq = malloc(qn);
    if (!out->pq)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    memcpy(out->pq, qp, qn);
    out->pq_len = qn;
    memcpy(out->x, xp, 32);
    out->x_len = 32;
    out->kind = kind;
    out->version = (int)v;
    return KC_OK;
}

kc_status kc_key_from_bytes(kc_key *out, kc_key_kind kind, const uint8_t *p, size_t n,
                            kc_err *err)
{
    memset(out, 0, sizeof *out);
    if (n == v1_len(kind))
        return set_v1(out, kind, p, n, err);
    kc_mp_doc doc;
    kc_status st = kc_mp_decode(&doc, p, n, kind_name(kind), err);
    if (st != KC_OK)
        return st;
    const msgpack_object *o = kc_mp_root(&doc);
    if (o->type != MSGPACK_OBJECT_ARRAY)
        st = kc_err_set(err, KC_ERR_INVALID, "%s: %zu bytes that are neither a raw key nor "
                        "[version, keys]", kind_name(kind), n);
    else
        st = from_list(out, kind, o, true, err);
    kc_mp_doc_free(&doc);
    return st;
}

kc_status kc_key_from_object(kc_key *out, kc_key_kind kind, const msgpack_object *o,
                             kc_err *err)
{
    memset(out, 0, sizeof *out);
    const uint8_t *p;
    size_t n;
    if (o->type == MSGPACK_OBJECT_ARRAY)
        return from_list(out, kind, o, false, err);
    if (kc_mp_bytes(o, &p, &n))
        return kc_key_from_bytes(out, kind, p, n, err);
    return kc_err_set(err, KC_ERR_INVALID, "%s: neither a byte string nor [version, keys]",
                      kind_name(kind));
}

kc_status kc_sign_keypair_from_seed(kc_key *pk, kc_key *sk, const uint8_t seed[32])
{
    memset(pk, 0, sizeof *pk);
    memset(sk, 0, sizeof *sk);
    if (crypto_sign_seed_keypair(pk->x, sk->x, seed) != 0)
        return KC_ERR_CRYPTO;
    pk->kind = KC_SIGN_PK;
    sk->kind = KC_SIGN_SK;
    pk->version = sk->version = 1;
    pk->x_len = 32;
    sk->x_len = 64;
    return KC_OK;
}

kc_status kc_sign_keypair_new(kc_key *pk, kc_key *sk)
{
    uint8_t seed[32];
    randombytes_buf(seed, sizeof seed);
    kc_status st = kc_sign_keypair_from_seed(pk, sk, seed);
    sodium_memzero(seed, sizeof seed);
    return st;
}

kc_status kc_kem_keypair_new(kc_key *pk, kc_key *sk, int version)
{
    if (version != 1)
        return KC_ERR_UNSUPPORTED;
    memset(pk, 0, sizeof *pk);
    memset(sk, 0, sizeof *sk);
    randombytes_buf(sk->x, 32);
    sk->kind = KC_KEM_SK;
    sk->version = 1;
    sk->x_len = 32;
    return kc_key_public(pk, sk);
}

kc_status kc_key_public(kc_key *pk, const kc_key *sk)
{
    memset(pk, 0, sizeof *pk);
    if (sk->version != 1)
        return KC_ERR_UNSUPPORTED;
    if (sk->kind == KC_SIGN_SK) {
        crypto_sign_ed25519_sk_to_pk(pk->x, sk->x);
        pk->kind = KC_SIGN_PK;
    } else if (sk->kind == KC_KEM_SK) {
        if (crypto_scalarmult_base(pk->x, sk->x) != 0)
            return KC_ERR_CRYPTO;
        pk->kind = KC_KEM_PK;
    } else {
        return KC_ERR_INVALID;
    }
    pk->version = 1;
    pk->x_len = 32;
    return KC_OK;
}

kc_status kc_key_to_kem_pk(kc_key *out, const kc_key *pk)
{
    if (pk->kind == KC_KEM_PK)
        return kc_key_copy(out, pk);
    memset(out, 0, sizeof *out);
    if (pk->kind != KC_SIGN_PK || pk->version != 1)
        return KC_ERR_INVALID;
    *out = *pk;
    out->kind = KC_KEM_PK;
    return KC_OK;
}

void kc_key_pack(msgpack_packer *pk, const kc_key *k)
{
    if (k->version == 1) {
        kc_mp_pack_bin(pk, k->x, k->x_len);
        return;
    }
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, k->version);
    msgpack_pack_array(pk, 2);
    kc_mp_pack_bin(pk, k->x, k->x_len);
    kc_mp_pack_bin(pk, k->pq, k->pq_len);
}

kc_status kc_key_bytes(const kc_key *k, kc_buf *out)
{
    if (k->version == 1)
        return kc_buf_set(out, k->x, k->x_len);
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    kc_key_pack(&mo.pk, k);
    kc_status st = kc_mp_out_status(&mo);
    if (st == KC_OK)
        st = kc_buf_set(out, mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);
    return st;
}

bool kc_key_equal(const kc_key *a, const kc_key *b)
{
    if (a->kind != b->kind || a->version != b->version || a->x_len != b->x_len ||
        a->pq_len != b->pq_len)
        return false;
    bool same = sodium_memcmp(a->x, b->x, a->x_len) == 0;
    if (a->pq_len)
        same = (sodium_memcmp(a->pq, b->pq, a->pq_len) == 0) & same;
    return same;
}

bool kc_key_same_type(const kc_key *a, const kc_key *b)
{
    return is_sign(a->kind) && is_sign(b->kind) && a->version == b->version;
}

int kc_kem_esk_version(const kc_key *pk)
{
    if (pk->version == 6)
        return 5;
    if (pk->version == 3)
        return 2;
    return pk->version;
}

/* Appends text to out[0..cap) without overflowing; *len tracks the length. */
static void put_text(char *out, size_t cap, size_t *len, const char *s)
{
    while (*s && *len + 1 < cap)
        out[(*len)++] = *s++;
    out[*len] = '\0';
}

static void put_hex(char *out, size_t cap, size_t *len, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n && *len + 2 < cap; i++) {
        out[(*len)++] = digits[p[i] >> 4];
        out[(*len)++] = digits[p[i] & 15];
    }
    out[*len] = '\0';
}

char *kc_key_describe(const kc_key *k, char *out, size_t cap)
{
    /* upstream's __str__ names, e.g. "(Ed25519, <hex>)", "(Curve25519-pk, <hex>)",
     * "(Curve25519-ML-KEM-1024-pk, [<hex>,<hex>])" */
    static const char *const sign_names[] = {[1] = "Ed25519", [4] = "Ed25519-SLH-DSA-SHAKE-128f"};
    static const char *const kem_names[] = {
        [1] = "Curve25519-pk", [2] = "Curve25519-sntrup761-pk", [3] = "Curve25519-sntrup761-ct",
        [5] = "Curve25519-ML-KEM-1024-pk", [6] = "Curve25519-ML-KEM-1024-ct"};
    if (cap == 0)
        return out;
    if (is_secret(k->kind)) {
        /* upstream prints secret bytes here; we never do (and only hold v1 secrets) */
        snprintf(out, cap, "(%s-Secret, <not shown>)", is_sign(k->kind) ? "Ed25519" : "Curve25519");
        return out;
    }
    size_t len = 0;
    out[0] = '\0';
    const char *name = NULL;
    if (k->version >= 1 && k->version <= 6)
        name = is_sign(k->kind) ? (k->version <= 4 ? sign_names[k->version] : NULL)
                                : kem_names[k->version];
    if (!name) {
        put_text(out, cap, &len, "(Unparsable)");
        return out;
    }
    put_text(out, cap, &len, "(");
    put_text(out, cap, &len, name);
    put_text(out, cap, &len, k->pq ? ", [" : ", ");
    put_hex(out, cap, &len, k->x, k->x_len);
    if (k->pq) {
        put_text(out, cap, &len, ",");
        put_hex(out, cap, &len, k->pq, k->pq_len);
        put_text(out, cap, &len, "]");
    }
    put_text(out, cap, &len, ")");
    return out;
}

/* ---- get_pks ------------------------------------------------------------- */

static kc_status single_pk(kc_key *out, const msgpack_object *o, kc_err *err)
{
    const uint8_t *p;
    size_t n;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        kc_status st = from_list(out, KC_SIGN_PK, o, false, NULL);
        if (st == KC_ERR_INVALID)
            st = from_list(out, KC_KEM_PK, o, false, err);
        return st;
    }
    if (kc_mp_bytes(o, &p, &n)) {
        if (n == 32)
            return set_v1(out, KC_SIGN_PK, p, n, err);
        kc_status st = kc_key_from_bytes(out, KC_SIGN_PK, p, n, NULL);
        if (st == KC_ERR_INVALID)
            st = kc_key_from_bytes(out, KC_KEM_PK, p, n, err);
        return st;
    }
    return kc_err_set(err, KC_ERR_INVALID, "public key: neither a byte string nor a list");
}

static bool is_versioned(const msgpack_object *o)
{
    int64_t v;
    return o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 0 &&
           kc_mp_int(&o->via.array.ptr[0], &v);
}

kc_status kc_get_pks(kc_pks *out, const msgpack_object *o, kc_err *err)
{
    memset(out, 0, sizeof *out);
    if (o->type != MSGPACK_OBJECT_ARRAY || is_versioned(o)) {
        out->keys = calloc(1, sizeof(kc_key));
        if (!out->keys)
            return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
        kc_status st = single_pk(&out->keys[0], o, err);
        if (st != KC_OK) {
            free(out->keys);
            out->keys = NULL;
            return st;
        }
        out->n = 1;
        return KC_OK;
    }
    if (o->via.array.size == 0)
        return kc_err_set(err, KC_ERR_INVALID, "public key: empty list");
    out->is_list = true;
    out->keys = calloc(o->via.array.size, sizeof(kc_key));
    if (!out->keys)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        kc_status st;
        if (e->type == MSGPACK_OBJECT_ARRAY && !is_versioned(e))
            st = kc_err_set(err, KC_ERR_INVALID, "public key list: nested list at entry %u", i);
        else
            st = single_pk(&out->keys[i], e, err);
        if (st != KC_OK) {
            kc_pks_clear(out);
            return err ? kc_err_prefix(err, "public key list entry %u: ", i) : st;
        }
        out->n++;
    }
    return KC_OK;
}

void kc_pks_clear(kc_pks *pks)
{
    if (!pks)
        return;
    for (size_t i = 0; i < pks->n; i++)
        kc_key_clear(&pks->keys[i]);
    free(pks->keys);
    memset(pks, 0, sizeof *pks);
}

kc_status kc_pks_copy(kc_pks *dst, const kc_pks *src)
{
    memset(dst, 0, sizeof *dst);
    dst->is_list = src->is_list;
    if (src->n == 0)
        return KC_OK;
    dst->keys = calloc(src->n, sizeof(kc_key));
    if (!dst->keys)
        return KC_ERR_NOMEM;
    for (size_t i = 0; i < src->n; i++) {
        if (kc_key_copy(&dst->keys[i], &src->keys[i]) != KC_OK) {
            kc_pks_clear(dst);
            return KC_ERR_NOMEM;
        }
        dst->n++;
    }
    return KC_OK;
}

void kc_pks_pack(msgpack_packer *pk, const kc_pks *pks)
{
    if (!pks->is_list) {
        kc_key_pack(pk, &pks->keys[0]);
        return;
    }
    msgpack_pack_array(pk, pks->n);
    for (size_t i = 0; i < pks->n; i++)
        kc_key_pack(pk, &pks->keys[i]);
}

/* ---- operations ------------------------------------------------------------ */

kc_status kc_sign(const kc_key *sk, const uint8_t *m, size_t n, kc_buf *out)
{
    if (sk->kind != KC_SIGN_SK || sk->version != 1)
        return sk->kind == KC_SIGN_SK ? KC_ERR_UNSUPPORTED : KC_ERR_INVALID;
    kc_buf_reset(out);
    kc_status st = kc_buf_reserve(out, KC_SIGNATURE_BYTES + n);
    if (st != KC_OK)
        return st;
    crypto_sign_detached(out->data, NULL, m, n, sk->x);
    if (n)
        memcpy(out->data + KC_SIGNATURE_BYTES, m, n);
    out->len = KC_SIGNATURE_BYTES + n;
    return KC_OK;
}

kc_status kc_sign_open(const kc_key *pk, const uint8_t *sm, size_t n,
                       const uint8_t **m, size_t *mlen, kc_err *err)
{
    if (pk->kind != KC_SIGN_PK)
        return kc_err_set(err, KC_ERR_INVALID, "not a signing public key");
    if (pk->version != 1)
        return kc_err_set(err, KC_ERR_UNSUPPORTED,
                          "signature version %d needs SLH-DSA, which this build lacks",
                          pk->version);
    if (n < KC_SIGNATURE_BYTES)
        return kc_err_set(err, KC_ERR_CRYPTO, "signed item of %zu bytes is shorter than a signature",
                          n);
    if (crypto_sign_verify_detached(sm, sm + KC_SIGNATURE_BYTES, n - KC_SIGNATURE_BYTES,
                                    pk->x) != 0)
        return kc_err_set(err, KC_ERR_CRYPTO, "signature does not verify");
    *m = sm + KC_SIGNATURE_BYTES;
    *mlen = n - KC_SIGNATURE_BYTES;
    return KC_OK;
}

kc_status kc_kem_complete(const kc_key *esk, const kc_key *peer, uint8_t shared[32])
{
    if (esk->kind != KC_KEM_SK || peer->version != 1 || esk->version != 1 || peer->x_len != 32)
        return KC_ERR_UNSUPPORTED;
    if (crypto_scalarmult(shared, esk->x, peer->x) != 0) {
        sodium_memzero(shared, 32);
        return KC_ERR_CRYPTO;
    }
    return KC_OK;
}
