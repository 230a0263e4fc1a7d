#include "kc_cryptokey.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define NONCE_BYTES crypto_secretbox_NONCEBYTES
#define WRAP_OVERHEAD (NONCE_BYTES + crypto_secretbox_MACBYTES)

struct kc_cryptokey {
    const kc_cryptokey_ops *ops;
    void *self;
};

kc_status kc_cryptokey_new(kc_cryptokey **out, const kc_cryptokey_ops *ops, void *self,
                           kc_err *err)
{
    *out = NULL;
    if (!ops || !ops->num_spk || !ops->spk || !ops->sign || !ops->get_epks || !ops->use_epks ||
        !ops->wrap || !ops->unwrap || !ops->ephemeral_versions || !ops->legacy || !ops->close) {
        if (ops && ops->close)
            ops->close(self);
        return kc_err_set(err, KC_ERR_INVALID, "cryptokey backend %s: incomplete operations table",
                          ops && ops->name ? ops->name : "?");
    }
    kc_cryptokey *ck = malloc(sizeof *ck);
    if (!ck) {
        ops->close(self);
        return kc_err_set(err, KC_ERR_NOMEM, "cryptokey: out of memory");
    }
    ck->ops = ops;
    ck->self = self;
    *out = ck;
    return KC_OK;
}

void kc_cryptokey_close(kc_cryptokey *ck)
{
    if (!ck)
        return;
    ck->ops->close(ck->self);
    free(ck);
}

size_t kc_cryptokey_num_spk(const kc_cryptokey *ck)
{
    return ck ? ck->ops->num_spk(ck->self) : 0;
}

static kc_status check_idx(kc_cryptokey *ck, size_t idx, kc_err *err)
{
    size_t n = ck->ops->num_spk(ck->self);
    if (idx >= n)
        return kc_err_set(err, KC_ERR_NOTFOUND,
                          "cryptokey: no signing key idx=%zu (%zu enabled)", idx, n);
    return KC_OK;
}

kc_status kc_cryptokey_get_spk(kc_cryptokey *ck, size_t idx, kc_key *out, kc_err *err)
{
    memset(out, 0, sizeof *out);
    kc_status st = check_idx(ck, idx, err);
    if (st != KC_OK)
        return st;
    st = ck->ops->spk(ck->self, idx, out);
    return st == KC_OK ? KC_OK
                       : kc_err_set(err, st, "cryptokey: public key idx=%zu: %s", idx,
                                    kc_status_str(st));
}

kc_status kc_cryptokey_get_id_spk(kc_cryptokey *ck, kc_buf *out, kc_err *err)
{
    kc_buf_reset(out);
    kc_buf one = KC_BUF_INIT;
    kc_status st = KC_OK;
    size_t n = ck->ops->num_spk(ck->self);
    for (size_t i = 0; i < n && st == KC_OK; i++) {
        kc_key k;
        st = kc_cryptokey_get_spk(ck, i, &k, err);
        if (st == KC_OK) {
            st = kc_key_bytes(&k, &one);
            if (st == KC_OK)
                st = kc_buf_append(out, one.data, one.len);
            if (st != KC_OK)
                kc_err_set(err, st, "cryptokey: id_spk: out of memory");
        }
        kc_key_clear(&k);
    }
    kc_buf_free(&one);
    if (st != KC_OK)
        kc_buf_reset(out);
    return st;
}

kc_status kc_cryptokey_sign(kc_cryptokey *ck, size_t idx, const uint8_t *m, size_t n,
                            kc_buf *out, kc_err *err)
{
    kc_buf_reset(out);
    if (n && !m)
        return kc_err_set(err, KC_ERR_INVALID, "cryptokey: sign: no message");
    kc_status st = check_idx(ck, idx, err);
    if (st != KC_OK)
        return st;
    return ck->ops->sign(ck->self, idx, m, n, out, err);
}

kc_status kc_cryptokey_get_epks(kc_cryptokey *ck, const char *topic, const char *usage,
                                kc_epks *out, kc_err *err)
{
    memset(out, 0, sizeof *out);
    if (!topic || !usage)
        return kc_err_set(err, KC_ERR_INVALID, "get_epks: topic and usage are required");
    return ck->ops->get_epks(ck->self, topic, usage, out, err);
}

kc_status kc_cryptokey_use_epks(kc_cryptokey *ck, const char *topic, const char *usage,
                                const kc_key *peers, size_t npeers, bool clear,
                                kc_kem_results *out, kc_err *err)
{
    memset(out, 0, sizeof *out);
    if (!topic || !usage || (npeers && !peers))
        return kc_err_set(err, KC_ERR_INVALID, "use_epks: topic, usage and peer keys are required");
    return ck->ops->use_epks(ck->self, topic, usage, peers, npeers, clear, out, err);
}

kc_status kc_cryptokey_wrap_opaque(kc_cryptokey *ck, const uint8_t *p, size_t n, kc_buf *out,
                                   kc_err *err)
{
    kc_buf_reset(out);
    if (n && !p)
        return kc_err_set(err, KC_ERR_INVALID, "wrap_opaque: no value");
    return ck->ops->wrap(ck->self, p, n, out, err);
}

kc_status kc_cryptokey_unwrap_opaque(kc_cryptokey *ck, const uint8_t *c, size_t n, kc_buf *out)
{
    kc_buf_reset(out);
    if (!c && n)
        return KC_ERR_CRYPTO;
    return ck->ops->unwrap(ck->self, c, n, out);
}

kc_status kc_cryptokey_secretbox_wrap(const uint8_t *ek, const uint8_t *p, size_t n, kc_buf *out,
                                      kc_err *err)
{
    if (n > crypto_secretbox_MESSAGEBYTES_MAX || n > SIZE_MAX - WRAP_OVERHEAD)
        return kc_err_set(err, KC_ERR_INVALID, "wrap_opaque: value of %zu bytes is too long", n);
    if (kc_buf_reserve(out, WRAP_OVERHEAD + n) != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "wrap_opaque: out of memory");
    randombytes_buf(out->data, NONCE_BYTES);
    crypto_secretbox_easy(out->data + NONCE_BYTES, p, n, out->data, ek);
    out->len = WRAP_OVERHEAD + n;
    return KC_OK;
}

kc_status kc_cryptokey_secretbox_unwrap(const uint8_t *ek, const uint8_t *c, size_t n,
                                        kc_buf *out)
{
    if (n < WRAP_OVERHEAD)
        return KC_ERR_CRYPTO;
    if (kc_buf_reserve(out, n - WRAP_OVERHEAD + 1) != KC_OK)
        return KC_ERR_NOMEM;
    if (crypto_secretbox_open_easy(out->data, c + NONCE_BYTES, n - NONCE_BYTES, c, ek) != 0)
        return KC_ERR_CRYPTO;
    out->len = n - WRAP_OVERHEAD;
    return KC_OK;
}

size_t kc_cryptokey_ephemeral_versions(kc_cryptokey *ck, int *out, size_t cap)
{
    return ck->ops->ephemeral_versions(ck->self, out, cap);
}

bool kc_cryptokey_legacy(kc_cryptokey *ck)
{
    return ck->ops->legacy(ck->self);
}

/* ---- the byte-level calls of kafkacrypto.h ------------------------------- */

/* Copies a result into the caller's buffer; wipes buf either way. */
static kc_status no_handle(kc_err *err)
{
    return kc_err_set(err, KC_ERR_INVALID, "cryptokey: no handle");
}

static kc_status give(kc_status st, kc_buf *buf, uint8_t *out, size_t cap, size_t *len,
                      kc_err *err)
{
    if (st == KC_OK) {
        if (len)
            *len = buf->len;
        if (buf->len > cap || (buf->len && !out))
            st = kc_err_set(err, KC_ERR_INVALID, "cryptokey: result of %zu bytes does not fit "
                            "the %zu-byte buffer", buf->len, out ? cap : 0);
        else if (buf->len)
            memcpy(out, buf->data, buf->len);
    }
    kc_buf_free(buf);
    return st;
}

kc_status kc_cryptokey_spk(kc_cryptokey *ck, size_t idx, uint8_t *out, size_t cap, size_t *len,
                           kc_err *err)
{
    if (!ck)
        return no_handle(err);
    kc_key k;
    kc_buf b = KC_BUF_INIT;
    kc_status st = kc_cryptokey_get_spk(ck, idx, &k, err);
    if (st == KC_OK && (st = kc_key_bytes(&k, &b)) != KC_OK)
        kc_err_set(err, st, "cryptokey: out of memory");
    kc_key_clear(&k);
    return give(st, &b, out, cap, len, err);
}

kc_status kc_cryptokey_id_spk(kc_cryptokey *ck, uint8_t *out, size_t cap, size_t *len,
                              kc_err *err)
{
    if (!ck)
        return no_handle(err);
    kc_buf b = KC_BUF_INIT;
    return give(kc_cryptokey_get_id_spk(ck, &b, err), &b, out, cap, len, err);
}

kc_status kc_cryptokey_sign_spk(kc_cryptokey *ck, size_t idx, const uint8_t *m, size_t n,
                                uint8_t *out, size_t cap, size_t *len, kc_err *err)
{
    if (!ck)
        return no_handle(err);
    kc_buf b = KC_BUF_INIT;
    return give(kc_cryptokey_sign(ck, idx, m, n, &b, err), &b, out, cap, len, err);
}

kc_status kc_cryptokey_wrap(kc_cryptokey *ck, const uint8_t *p, size_t n, uint8_t *out,
                            size_t cap, size_t *len, kc_err *err)
{
    if (!ck)
        return no_handle(err);
    kc_buf b = KC_BUF_INIT;
    return give(kc_cryptokey_wrap_opaque(ck, p, n, &b, err), &b, out, cap, len, err);
}

kc_status kc_cryptokey_unwrap(kc_cryptokey *ck, const uint8_t *c, size_t n, uint8_t *out,
                              size_t cap, size_t *len, kc_err *err)
{
    if (!ck)
        return no_handle(err);
    kc_buf b = KC_BUF_INIT;
    kc_status st = kc_cryptokey_unwrap_opaque(ck, c, n, &b);
    if (st == KC_ERR_CRYPTO)
        kc_err_set(err, st, "cryptokey: value of %zu bytes was not wrapped with this key", n);
    return give(st, &b, out, cap, len, err);
}
