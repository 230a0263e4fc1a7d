/* kc_cryptokey.h — a node's identity keys behind a backend interface
 * (spec §5.6, §10.4, §10.7; upstream's CryptoKey).
 *
 * Callers see public keys, signatures, the shared inputs of completed key
 * agreements and opaque wrap/unwrap — never a secret key. The secrets live
 * in a backend: the default one is the `.crypto` file
 * (kc_cryptokey_file.h); a hardware-backed one (kc_cryptokey_pkcs11.h) fills in a
 * kc_cryptokey_ops table and calls kc_cryptokey_new, and its callers do not
 * change: every call below and in kafkacrypto.h works on any backend. */
#ifndef KC_CRYPTOKEY_H
#define KC_CRYPTOKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafkacrypto.h"
#include "kc_buf.h"
#include "kc_ephemeral.h"
#include "kc_err.h"
#include "kc_keys.h"

/* What a backend implements. `self` is its own state. The front-end has
 * already checked arguments (idx < num_spk, non-NULL pointers). */
typedef struct kc_cryptokey_ops {
    const char *name;  /* "file", ... for messages */
    size_t (*num_spk)(void *self);
    kc_status (*spk)(void *self, size_t idx, kc_key *out);
    kc_status (*sign)(void *self, size_t idx, const uint8_t *m, size_t n, kc_buf *out,
                      kc_err *err);
    kc_status (*get_epks)(void *self, const char *topic, const char *usage, kc_epks *out,
                          kc_err *err);
    kc_status (*use_epks)(void *self, const char *topic, const char *usage,
                          const kc_key *peers, size_t npeers, bool clear,
                          kc_kem_results *out, kc_err *err);
    kc_status (*wrap)(void *self, const uint8_t *p, size_t n, kc_buf *out, kc_err *err);
    /* KC_ERR_CRYPTO for anything that does not open (upstream's None) */
    kc_status (*unwrap)(void *self, const uint8_t *c, size_t n, kc_buf *out);
    /* usable ephemeral versions in preference order; returns how many */
    size_t (*ephemeral_versions)(void *self, int *out, size_t cap);
    bool (*legacy)(void *self);
    void (*close)(void *self);  /* wipes and frees self */
} kc_cryptokey_ops;

/* Wraps a backend; the handle owns it from now on. On any failure (an
 * incomplete table, no memory) the backend is closed if it can be. */
kc_status kc_cryptokey_new(kc_cryptokey **out, const kc_cryptokey_ops *ops, void *self,
                           kc_err *err);

/* kc_cryptokey_open (the file backend), _close and _num_spk, and the
 * byte-level _spk, _id_spk, _sign_spk, _wrap and _unwrap: kafkacrypto.h. */

/* Enabled signing public key idx. */
kc_status kc_cryptokey_get_spk(kc_cryptokey *ck, size_t idx, kc_key *out, kc_err *err);
/* get_id_spk (§3.3): bytes() of every enabled public key, concatenated. */
kc_status kc_cryptokey_get_id_spk(kc_cryptokey *ck, kc_buf *out, kc_err *err);
/* Combined-mode signature with key idx: signature(64) || m. */
kc_status kc_cryptokey_sign(kc_cryptokey *ck, size_t idx, const uint8_t *m, size_t n,
                            kc_buf *out, kc_err *err);

/* The ephemeral key service, as kc_ephemeral_get_epks/use_epks. */
kc_status kc_cryptokey_get_epks(kc_cryptokey *ck, const char *topic, const char *usage,
                                kc_epks *out, kc_err *err);
kc_status kc_cryptokey_use_epks(kc_cryptokey *ck, const char *topic, const char *usage,
                                const kc_key *peers, size_t npeers, bool clear,
                                kc_kem_results *out, kc_err *err);

/* Opaque values (§10.4): nonce(24) || secretbox(p, nonce, ek). */
kc_status kc_cryptokey_wrap_opaque(kc_cryptokey *ck, const uint8_t *p, size_t n, kc_buf *out,
                                   kc_err *err);
/* KC_ERR_CRYPTO (upstream: None) on any failure; out is then empty. */
KC_MUST_CHECK kc_status kc_cryptokey_unwrap_opaque(kc_cryptokey *ck, const uint8_t *c, size_t n,
                                     kc_buf *out);

/* For backends: the opaque-value format with a 32-byte key ek (the caller
 * keeps ek readable for the call). */
kc_status kc_cryptokey_secretbox_wrap(const uint8_t *ek, const uint8_t *p, size_t n, kc_buf *out,
                                      kc_err *err);
kc_status kc_cryptokey_secretbox_unwrap(const uint8_t *ek, const uint8_t *c, size_t n,
                                        kc_buf *out);

/* Usable ephemeral versions (at most cap written); returns the count. */
size_t kc_cryptokey_ephemeral_versions(kc_cryptokey *ck, int *out, size_t cap);
/* The legacy flag: get_epks also offers a bare version-1 key (§7.7). */
bool kc_cryptokey_legacy(kc_cryptokey *ck);

#endif
