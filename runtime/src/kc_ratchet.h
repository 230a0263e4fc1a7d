/* kc_ratchet.h — upstream's Ratchet (spec §3.2–§3.4, §10.8) behind a
 * backend interface (kc_ratchet_ops in kafkacrypto.h).
 *
 * The file backend keeps `NODE.seed` = msgpack [int keyidx, bin(secret32)],
 * which always holds the NEXT unused pair: opening and every increment read
 * (k, s), make it current, and first durably rewrite the file with
 * (k + 1, B2B(""; key = s, salt = 0^16, personal = "ratchet", outlen 32)).
 * The rewrite is one pwrite at offset 0 + ftruncate + fsync; a kill at any
 * instant leaves the old or the new content. (When the new encoding is
 * shorter — a legacy file packed with str16 or extra elements — an in-place
 * write would leave a mixed file for an instant, so that one rewrite goes
 * through a locked temporary file and rename instead.) The file is locked
 * with an fcntl write lock (open-file-description lock where available, so
 * that two openers in one process also conflict): one seed, one user. */
#ifndef KC_RATCHET_H
#define KC_RATCHET_H

#include <stddef.h>
#include <stdint.h>

#include "kafkacrypto.h"
#include "kc_keygen.h"

#define KC_SEED_MAX_BYTES 4096

/* §3.3 with the per-root secret turned into the key and value generators
 * (ctx "key" / "value"); any of ki, secret, kg, vg may be NULL. */
kc_status kc_ratchet_get_key_value_generators(kc_ratchet *r, const uint8_t *root,
                                              size_t root_len, const uint8_t *node,
                                              size_t node_len, kc_keyidx *ki,
                                              uint8_t secret[KC_SECRET_BYTES],
                                              kc_keygen *kg, kc_keygen *vg, kc_err *err);

/* The computations of §3.2/§3.3 for backends that hold the secret in
 * memory. `gen` is keyed with the current secret (ctx irrelevant). */
void kc_ratchet_next_secret(const uint8_t secret[KC_SECRET_BYTES],
                            uint8_t next[KC_SECRET_BYTES]);
kc_status kc_ratchet_derive_root(kc_keygen *gen, uint64_t index, const uint8_t *root,
                                 size_t root_len, const uint8_t *node, size_t node_len,
                                 kc_keyidx *ki, uint8_t secret[KC_SECRET_BYTES],
                                 kc_err *err);

/* Parses a `.seed` file's bytes: [int keyidx, bytes(32) secret, ...extras]
 * (str accepted for the secret, extra elements ignored). keyidx must be
 * 0 .. 2^64-2 so that it can advance. Errors name `path` and the field. */
kc_status kc_seed_parse(const uint8_t *p, size_t n, const char *path, uint64_t *index,
                        uint8_t secret[KC_SECRET_BYTES], kc_err *err);
/* msgpack [index, bin(secret)], exactly as upstream writes it. */
kc_status kc_seed_encode(uint64_t index, const uint8_t secret[KC_SECRET_BYTES],
                         kc_buf *out);

#endif
