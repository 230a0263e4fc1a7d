#include "kc_keygen.h"

#include <sodium.h>
#include <string.h>

const uint8_t kc_keygen_ctx_key[KC_KEYGEN_CTXBYTES] = "key";
const uint8_t kc_keygen_ctx_value[KC_KEYGEN_CTXBYTES] = "value";
const uint8_t kc_keygen_ctx_default[KC_KEYGEN_CTXBYTES] = "generator";
const uint8_t kc_keygen_ctx_ratchet[KC_KEYGEN_CTXBYTES] = "ratchet";

/* Upstream's messages, so that its error cases read the same here. */
#define MSG_SECRET "Secret is malformed!"
#define MSG_CTX "Context is not bytes!"
#define MSG_MSG "Message is not bytes!"

static void counter_increment(uint8_t salt[KC_KEYGEN_SALTBYTES])
{
    for (size_t i = 0; i < KC_KEYGEN_SALTBYTES; i++)
        if (++salt[i] != 0)
            break;
}

/* pysodium's pad_buf: right-pad with zeros, refuse longer inputs. */
static kc_status pad16(uint8_t out[16], const uint8_t *p, size_t n, const char *name,
                       kc_err *err)
{
    if (n > 16)
        return kc_err_set(err, KC_ERR_INVALID,
                          "Cannot pad %s (len: %zu - expected 16 or less)", name, n);
    memset(out, 0, 16);
    if (n)
        memcpy(out, p, n);
    return KC_OK;
}

kc_status kc_keygen_init(kc_keygen *kg, const uint8_t *secret, size_t secret_len,
                         const uint8_t *ctx, size_t ctx_len, kc_err *err)
{
    if (secret && secret_len != KC_KEYGEN_SECRETBYTES)
        return kc_err_set(err, KC_ERR_INVALID, MSG_SECRET " (expected %d bytes, got %zu)",
                          KC_KEYGEN_SECRETBYTES, secret_len);
    uint8_t c[16] = {0};
    if (!ctx)
        memcpy(c, kc_keygen_ctx_default, 16);
    else if (pad16(c, ctx, ctx_len, "personal", err) != KC_OK)
        return KC_ERR_INVALID;
    memcpy(kg->ctx, c, 16);
    if (secret)
        memcpy(kg->secret, secret, KC_KEYGEN_SECRETBYTES);
    else
        memset(kg->secret, 0, KC_KEYGEN_SECRETBYTES);
    memset(kg->salt, 0, KC_KEYGEN_SALTBYTES);
    return KC_OK;
}

kc_status kc_keygen_init_any(kc_keygen *kg, const kc_any *secret, const kc_any *ctx,
                             kc_err *err)
{
    if (ctx && ctx->type != KC_ANY_NONE && ctx->type != KC_ANY_BYTES)
        return kc_err_set(err, KC_ERR_INVALID, MSG_CTX);
    if (secret && secret->type != KC_ANY_NONE && secret->type != KC_ANY_BYTES)
        return kc_err_set(err, KC_ERR_INVALID, MSG_SECRET " (expected 32 bytes, got a non-bytes value)");
    bool has_secret = secret && secret->type == KC_ANY_BYTES;
    bool has_ctx = ctx && ctx->type == KC_ANY_BYTES;
    return kc_keygen_init(kg, has_secret ? (secret->p ? secret->p : (const uint8_t *)"") : NULL,
                          has_secret ? secret->len : 0,
                          has_ctx ? (ctx->p ? ctx->p : (const uint8_t *)"") : NULL,
                          has_ctx ? ctx->len : 0, err);
}

kc_status kc_keygen_rekey(kc_keygen *kg, const uint8_t *secret, size_t secret_len,
                          kc_err *err)
{
    if (!secret || secret_len != KC_KEYGEN_SECRETBYTES)
        return kc_err_set(err, KC_ERR_INVALID, MSG_SECRET " (expected %d bytes, got %zu)",
                          KC_KEYGEN_SECRETBYTES, secret ? secret_len : 0);
    if (sodium_memcmp(secret, kg->secret, KC_KEYGEN_SECRETBYTES) == 0)
        return kc_err_set(err, KC_ERR_INVALID, MSG_SECRET " (equal to the current secret)");
    memcpy(kg->secret, secret, KC_KEYGEN_SECRETBYTES);
    memset(kg->salt, 0, KC_KEYGEN_SALTBYTES);
    return KC_OK;
}

void kc_keygen_next(kc_keygen *kg, uint8_t salt_used[KC_KEYGEN_SALTBYTES],
                    uint8_t key[KC_KEYGEN_KEYBYTES], uint8_t nonce[KC_KEYGEN_NONCEBYTES])
{
    uint8_t out[KC_KEYGEN_KEYBYTES + KC_KEYGEN_NONCEBYTES];
    /* Cannot fail: every length is within BLAKE2b's limits. */
    crypto_generichash_blake2b_salt_personal(out, sizeof out, NULL, 0, kg->secret,
                                             KC_KEYGEN_SECRETBYTES, kg->salt, kg->ctx);
    if (salt_used)
        memcpy(salt_used, kg->salt, KC_KEYGEN_SALTBYTES);
    counter_increment(kg->salt);
    memcpy(key, out, KC_KEYGEN_KEYBYTES);
    memcpy(nonce, out + KC_KEYGEN_KEYBYTES, KC_KEYGEN_NONCEBYTES);
    sodium_memzero(out, sizeof out);
}

void kc_keygen_advance(kc_keygen *kg)
{
    counter_increment(kg->salt);
}

kc_status kc_keygen_at(kc_keygen *kg, const uint8_t *salt, size_t salt_len,
                       uint8_t key[KC_KEYGEN_KEYBYTES], uint8_t nonce[KC_KEYGEN_NONCEBYTES],
                       kc_err *err)
{
    if (!salt) {
        kc_keygen_next(kg, NULL, key, nonce);
        return KC_OK;
    }
    uint8_t s[16];
    if (pad16(s, salt, salt_len, "salt", err) != KC_OK)
        return KC_ERR_INVALID;
    uint8_t out[KC_KEYGEN_KEYBYTES + KC_KEYGEN_NONCEBYTES];
    crypto_generichash_blake2b_salt_personal(out, sizeof out, NULL, 0, kg->secret,
                                             KC_KEYGEN_SECRETBYTES, s, kg->ctx);
    counter_increment(kg->salt);
    memcpy(key, out, KC_KEYGEN_KEYBYTES);
    memcpy(nonce, out + KC_KEYGEN_KEYBYTES, KC_KEYGEN_NONCEBYTES);
    sodium_memzero(out, sizeof out);
    return KC_OK;
}

kc_status kc_keygen_generate(kc_keygen *kg, const kc_any *msg, const kc_any *ctx,
                             const kc_any *salt, size_t keysize, size_t noncesize,
                             uint8_t *key, uint8_t *nonce, kc_err *err)
{
    const uint8_t *m = NULL;
    size_t mlen = 0;
    if (msg && msg->type != KC_ANY_NONE) {
        if (msg->type != KC_ANY_BYTES)
            return kc_err_set(err, KC_ERR_INVALID, MSG_MSG);
        m = msg->p;
        mlen = msg->len;
    }
    /* Bytes or text are used; any other type falls back to the default
     * (upstream's rule 5: a non-bytes salt from a message means "counter"). */
    uint8_t s[16], c[16];
    if (salt && kc_any_is_bytes_like(salt)) {
        if (pad16(s, salt->p, salt->len, "salt", err) != KC_OK)
            return KC_ERR_INVALID;
    } else {
        memcpy(s, kg->salt, 16);
    }
    if (ctx && kc_any_is_bytes_like(ctx)) {
        if (pad16(c, ctx->p, ctx->len, "personal", err) != KC_OK)
            return KC_ERR_INVALID;
    } else {
        memcpy(c, kg->ctx, 16);
    }
    size_t outlen = keysize + noncesize;
    if (keysize > KC_KEYGEN_OUTMAX || outlen == 0 || outlen > KC_KEYGEN_OUTMAX)
        return kc_err_set(err, KC_ERR_INVALID,
                          "keysize + noncesize = %zu: BLAKE2b needs 1 to %d bytes",
                          keysize + noncesize, KC_KEYGEN_OUTMAX);
    uint8_t out[KC_KEYGEN_OUTMAX];
    if (crypto_generichash_blake2b_salt_personal(out, outlen, m, mlen, kg->secret,
                                                 KC_KEYGEN_SECRETBYTES, s, c) != 0)
        return kc_err_set(err, KC_ERR_CRYPTO, "BLAKE2b derivation failed");
    counter_increment(kg->salt);
    memcpy(key, out, keysize);
    if (noncesize)
        memcpy(nonce, out + keysize, noncesize);
    else
        memcpy(nonce, out, outlen);
    sodium_memzero(out, sizeof out);
    return KC_OK;
}

void kc_keygen_clear(kc_keygen *kg)
{
    if (kg)
        sodium_memzero(kg, sizeof *kg);
}
