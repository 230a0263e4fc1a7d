/* kc_keygen.h — upstream's KeyGenerator (spec §3.1).
 *
 * A 32-byte secret, a 16-byte default context and a 16-byte little-endian
 * salt counter. Each successful generation is
 *     out = BLAKE2b(msg; key = secret, salt, personal = ctx, outlen = keysize + noncesize)
 *     key = out[0 : keysize], nonce = out[outlen - noncesize :]
 * and increments the counter, also when an explicit salt was given. Short
 * salts and contexts are zero-padded to 16 bytes; longer ones are errors.
 *
 * kc_keygen_next() is the data path (no allocation, no failure); the
 * kc_any-taking functions reproduce upstream's dynamic-typing rules for
 * parsers and bindings. The struct holds a secret: kc_keygen_clear() wipes
 * it, and long-lived instances belong in kc_secmem (or sodium_malloc'd) memory. */
#ifndef KC_KEYGEN_H
#define KC_KEYGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_any.h"
#include "kc_err.h"

#define KC_KEYGEN_SECRETBYTES 32
#define KC_KEYGEN_KEYBYTES 32
#define KC_KEYGEN_NONCEBYTES 24
#define KC_KEYGEN_SALTBYTES 16
#define KC_KEYGEN_CTXBYTES 16
#define KC_KEYGEN_OUTMAX 64  /* BLAKE2b's largest output */

typedef struct kc_keygen {
    uint8_t secret[KC_KEYGEN_SECRETBYTES];
    uint8_t ctx[KC_KEYGEN_CTXBYTES];
    uint8_t salt[KC_KEYGEN_SALTBYTES];  /* the counter */
} kc_keygen;

/* The protocol's contexts, each zero-padded to 16 bytes. */
extern const uint8_t kc_keygen_ctx_key[KC_KEYGEN_CTXBYTES];       /* "key" */
extern const uint8_t kc_keygen_ctx_value[KC_KEYGEN_CTXBYTES];     /* "value" */
extern const uint8_t kc_keygen_ctx_default[KC_KEYGEN_CTXBYTES];   /* "generator" */
extern const uint8_t kc_keygen_ctx_ratchet[KC_KEYGEN_CTXBYTES];   /* "ratchet" */

/* secret: 32 bytes, or NULL for upstream's default of 32 zero bytes.
 * ctx: up to 16 bytes (zero-padded), or NULL for "generator". Upstream
 * accepts a longer ctx here and fails at the first generation; we refuse it
 * at once. The counter starts at zero. */
kc_status kc_keygen_init(kc_keygen *kg, const uint8_t *secret, size_t secret_len,
                         const uint8_t *ctx, size_t ctx_len, kc_err *err);
/* Upstream's constructor on dynamically typed arguments: the secret must be
 * bytes ("Secret is malformed!"), the ctx bytes or absent ("Context is not
 * bytes!"). */
kc_status kc_keygen_init_any(kc_keygen *kg, const kc_any *secret, const kc_any *ctx,
                             kc_err *err);

/* New secret (32 bytes, different from the current one, compared in
 * constant time), counter back to zero. */
kc_status kc_keygen_rekey(kc_keygen *kg, const uint8_t *secret, size_t secret_len,
                          kc_err *err);

/* Data path: 32-byte key and 24-byte nonce from the counter salt and the
 * default ctx; salt_used (may be NULL) receives the counter value used. */
void kc_keygen_next(kc_keygen *kg, uint8_t salt_used[KC_KEYGEN_SALTBYTES],
                    uint8_t key[KC_KEYGEN_KEYBYTES], uint8_t nonce[KC_KEYGEN_NONCEBYTES]);

/* Receive path: like kc_keygen_next but with an explicit salt (zero-padded;
 * more than 16 bytes is KC_ERR_INVALID and leaves the counter alone), or
 * the counter when salt is NULL. */
kc_status kc_keygen_at(kc_keygen *kg, const uint8_t *salt, size_t salt_len,
                       uint8_t key[KC_KEYGEN_KEYBYTES], uint8_t nonce[KC_KEYGEN_NONCEBYTES],
                       kc_err *err);

/* Moves the counter one step, as a generation does (for callers that
 * derive from a copy outside a lock). */
void kc_keygen_advance(kc_keygen *kg);

/* The general form, with upstream's argument rules: msg must be bytes
 * (NONE = empty); ctx and salt may be bytes or text (UTF-8), anything else
 * selects the default ctx / the counter; 1 <= keysize + noncesize <= 64.
 * key receives keysize bytes; nonce receives noncesize bytes, or — upstream's
 * quirk for noncesize 0 (out[-0:]) — the whole keysize-byte output. */
kc_status kc_keygen_generate(kc_keygen *kg, const kc_any *msg, const kc_any *ctx,
                             const kc_any *salt, size_t keysize, size_t noncesize,
                             uint8_t *key, uint8_t *nonce, kc_err *err);

/* The counter value the next generation will use. */
static inline const uint8_t *kc_keygen_salt(const kc_keygen *kg)
{
    return kg->salt;
}

void kc_keygen_clear(kc_keygen *kg);

#endif
