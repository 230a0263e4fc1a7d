/* kc_seal.h — upstream's kafkacrypto sealed box (spec §5.8).
 *
 * Used for escrow values: a message sealed to a key-exchange public key
 * that only the holder of the matching secret key can open.
 *
 *   sealed = len(E) (2, BE) || len(nonce) (2, BE) || E || nonce
 *            || secretbox(msg, nonce, ss)
 *   ss     = SHA256(prefix(4) || bytes(R) || E || nonce || X25519(esk, R))
 *
 * where R is the recipient's public key and E = X25519 base(esk) for a
 * fresh esk. For version-1 recipients the prefix is always 00 20 00 18.
 * Opening with a version-1 key falls back to libsodium's crypto_box_seal_open
 * when the custom format fails, so standard sealed boxes (the ratchet's
 * escrow, §3.4) open with the same call. Post-quantum recipients (versions
 * 2 and 5) need algorithms this build lacks: KC_ERR_UNSUPPORTED. */
#ifndef KC_SEAL_H
#define KC_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_err.h"
#include "kc_keys.h"

/* prefix(4) + E(32) + nonce(24) + MAC(16) for a version-1 recipient */
#define KC_SEAL_OVERHEAD 76

/* Seals m to `recipient` (a key-exchange public key, or a version-1 signing
 * public key, which upstream treats as the same 32 bytes). Draws esk
 * (32 bytes) and then the nonce (24 bytes) from randombytes, as upstream.
 * out's content is replaced. */
kc_status kc_seal(const kc_key *recipient, const uint8_t *m, size_t n, kc_buf *out,
                  kc_err *err);

/* kc_seal with caller-chosen esk and nonce: reproduces upstream's bytes in
 * tests. Never reuse an (esk, nonce) pair outside tests. */
kc_status kc_seal_with(const kc_key *recipient, const uint8_t esk[32], const uint8_t nonce[24],
                       const uint8_t *m, size_t n, kc_buf *out, kc_err *err);

/* Opens a kafkacrypto sealed box, or a libsodium sealed box, with a
 * version-1 key-exchange secret key. Any failure is KC_ERR_CRYPTO and out is
 * left empty; the message says why the custom format failed. */
KC_MUST_CHECK kc_status kc_seal_open(const kc_key *recipient_sk, const uint8_t *c, size_t n, kc_buf *out,
                       kc_err *err);

#endif
