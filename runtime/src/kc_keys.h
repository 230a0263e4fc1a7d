/* kc_keys.h — signing and key-agreement keys in upstream's versions.
 *
 *   sign  v1  Ed25519                      (pk 32, sk 64 = seed || pk)
 *   sign  v4  Ed25519 + SLH-DSA-SHAKE-128f (recognised; cannot sign/verify)
 *   kem   v1  X25519                       (pk 32, sk 32)
 *   kem   v2/3, v5/6  X25519 + sntrup761 / ML-KEM-1024 (recognised, skipped)
 *
 * Two encodings exist (spec §2.4): inside a msgpack structure a v1 key is a
 * bin of its raw bytes and any other version the array [v, keys]
 * (kc_key_pack); as a standalone byte string (Kafka keys, hashes) a v1 key
 * is its raw bytes and any other version the msgpack of [v, keys]
 * (kc_key_bytes).
 *
 * Status convention of the constructors: KC_ERR_UNSUPPORTED means "a known
 * post-quantum secret that this classical build cannot use" (skip it with a
 * warning); KC_ERR_INVALID means malformed or unknown (reject it). */
#ifndef KC_KEYS_H
#define KC_KEYS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_buf.h"
#include "kc_err.h"

typedef enum kc_key_kind {
    KC_SIGN_PK = 1,
    KC_SIGN_SK = 2,
    KC_KEM_PK = 3,
    KC_KEM_SK = 4
} kc_key_kind;

#define KC_SIGN_PK_BYTES 32
#define KC_SIGN_SK_BYTES 64
#define KC_SIGNATURE_BYTES 64
#define KC_KEM_BYTES 32

typedef struct kc_key {
    kc_key_kind kind;
    int version;
    uint8_t x[64];   /* classical part: Ed25519 pk/sk, X25519 pk/sk */
    size_t x_len;
    uint8_t *pq;     /* post-quantum part as received (heap); NULL for v1 */
    size_t pq_len;
} kc_key;

/* Wipes secret bytes and frees the post-quantum part. */
void kc_key_clear(kc_key *k);
kc_status kc_key_copy(kc_key *dst, const kc_key *src);

/* From a decoded msgpack value, as found inside certificates (raw=True:
 * str and bin both count as bytes): a byte string (32 bytes: v1 public or
 * KEM key; 64: v1 signing secret; other lengths: msgpack of [v, keys]) or
 * an array [v, keys]. */
kc_status kc_key_from_object(kc_key *out, kc_key_kind kind, const msgpack_object *o,
                             kc_err *err);
/* From bytes() form (upstream's constructor on a byte string): raw v1 key
 * bytes, or the msgpack of [v, keys] whose byte strings must be bin. */
kc_status kc_key_from_bytes(kc_key *out, kc_key_kind kind, const uint8_t *p, size_t n,
                            kc_err *err);

kc_status kc_sign_keypair_from_seed(kc_key *pk, kc_key *sk, const uint8_t seed[32]);
kc_status kc_sign_keypair_new(kc_key *pk, kc_key *sk);
/* A fresh ephemeral X25519 pair (version 1 only in this build). */
kc_status kc_kem_keypair_new(kc_key *pk, kc_key *sk, int version);
/* The public key of a secret key (sign v1, kem v1). */
kc_status kc_key_public(kc_key *pk, const kc_key *sk);

/* Upstream's KEMPublicKey(pk) of a public key: a key-exchange public key
 * is copied; a version-1 signing public key becomes the X25519 key with the
 * same 32 bytes (upstream allows this conversion for v1 only); anything
 * else is KC_ERR_INVALID. */
kc_status kc_key_to_kem_pk(kc_key *out, const kc_key *pk);

/* msgpack_pack() form: bin(raw) for v1, [v, keys] otherwise. */
void kc_key_pack(msgpack_packer *pk, const kc_key *k);
/* bytes() form, replacing out's content. */
kc_status kc_key_bytes(const kc_key *k, kc_buf *out);

/* Same kind (sign vs kem, public vs secret), version and bytes; the byte
 * comparison is constant-time. */
bool kc_key_equal(const kc_key *a, const kc_key *b);
/* Upstream's same_type for signing keys: both signing keys of one version. */
bool kc_key_same_type(const kc_key *a, const kc_key *b);
/* The secret-key version that completes a KEM public key: 6->5, 3->2. */
int kc_kem_esk_version(const kc_key *pk);

/* upstream's str() of a public key for logs: "(Ed25519, <hex>)",
 * "(Curve25519-pk, <hex>)", "(Curve25519-ML-KEM-1024-pk, [<hex>,<hex>])".
 * Secret keys are named but never shown. Truncated to cap; returns out. */
char *kc_key_describe(const kc_key *k, char *out, size_t cap);

/* ---- get_pks: every public-key field of a certificate ----------------- */

/* One key, or a list of keys (a certificate may certify several). */
typedef struct kc_pks {
    bool is_list;
    size_t n;
    kc_key *keys;
} kc_pks;

/* Upstream's get_pks (spec §5.2): [int, ...] is one versioned key (sign,
 * else kem); another array is a list of keys; a byte string of 32 bytes is
 * an Ed25519 key; of other lengths, the msgpack of [v, keys]. Nested lists
 * of lists are refused. */
kc_status kc_get_pks(kc_pks *out, const msgpack_object *o, kc_err *err);
void kc_pks_clear(kc_pks *pks);
kc_status kc_pks_copy(kc_pks *dst, const kc_pks *src);
/* Packs a single key as kc_key_pack, a list as an array of them. */
void kc_pks_pack(msgpack_packer *pk, const kc_pks *pks);

/* ---- operations --------------------------------------------------------- */

/* Combined-mode signature: out = signature(64) || m. */
kc_status kc_sign(const kc_key *sk, const uint8_t *m, size_t n, kc_buf *out);
/* Verifies a combined-mode signed message; on success m and mlen point into
 * sm after the signature. Version 4 keys give KC_ERR_UNSUPPORTED. */
KC_MUST_CHECK kc_status kc_sign_open(const kc_key *pk, const uint8_t *sm, size_t n,
                       const uint8_t **m, size_t *mlen, kc_err *err);
/* X25519 between our ephemeral secret and a peer public key (both v1).
 * An all-zero result (low-order point) is KC_ERR_CRYPTO. */
kc_status kc_kem_complete(const kc_key *esk, const kc_key *peer, uint8_t shared[32]);

#endif
