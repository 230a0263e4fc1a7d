#include "kc_seal.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

#define NONCE_BYTES crypto_secretbox_NONCEBYTES
#define MAC_BYTES crypto_secretbox_MACBYTES
#define PREFIX_BYTES 4

static kc_status check_recipient(const kc_key *r, kc_err *err)
{
    bool kem = r->kind == KC_KEM_PK;
    if (!kem && !(r->kind == KC_SIGN_PK && r->version == 1))
        return kc_err_set(err, KC_ERR_INVALID,
                          "sealed box: the recipient must be a key-exchange public key");
    if (kem && (r->version == 2 || r->version == 5))
        return kc_err_set(err, KC_ERR_UNSUPPORTED,
                          "sealed box: recipient key version %d needs %s, which this build lacks",
                          r->version, r->version == 2 ? "sntrup761" : "ML-KEM-1024");
    if (r->version != 1 || r->x_len != KC_KEM_BYTES)
        return kc_err_set(err, KC_ERR_INVALID,
                          "sealed box: cannot seal to a version %d key (only offers of "
                          "versions 1, 2 and 5 can receive)", r->version);
    return KC_OK;
}

/* SHA256(prefix || R || E || nonce || shared), the secretbox key of both sides */
static void box_key(uint8_t ss[32], const uint8_t prefix[PREFIX_BYTES], const uint8_t r[32],
                    const uint8_t *e, size_t elen, const uint8_t nonce[NONCE_BYTES],
                    const uint8_t shared[32])
{
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, prefix, PREFIX_BYTES);
    crypto_hash_sha256_update(&h, r, 32);
    crypto_hash_sha256_update(&h, e, elen);
    crypto_hash_sha256_update(&h, nonce, NONCE_BYTES);
    crypto_hash_sha256_update(&h, shared, 32);
    crypto_hash_sha256_final(&h, ss);
    sodium_memzero(&h, sizeof h);
}

kc_status kc_seal_with(const kc_key *recipient, const uint8_t esk[32], const uint8_t nonce[24],
                       const uint8_t *m, size_t n, kc_buf *out, kc_err *err)
{
    kc_buf_reset(out);
    kc_status st = check_recipient(recipient, err);
    if (st != KC_OK)
        return st;
    if (n > crypto_secretbox_MESSAGEBYTES_MAX || n > SIZE_MAX - KC_SEAL_OVERHEAD)
        return kc_err_set(err, KC_ERR_INVALID, "sealed box: message of %zu bytes is too long", n);
    uint8_t epk[32], shared[32], ss[32];
    const uint8_t prefix[PREFIX_BYTES] = {0, 32, 0, NONCE_BYTES};
    if (crypto_scalarmult_base(epk, esk) != 0 ||
        crypto_scalarmult(shared, esk, recipient->x) != 0) {
        sodium_memzero(shared, sizeof shared);
        return kc_err_set(err, KC_ERR_CRYPTO,
                          "sealed box: X25519 with the recipient key gave an all-zero result "
                          "(low-order point)");
    }
    box_key(ss, prefix, recipient->x, epk, sizeof epk, nonce, shared);
    sodium_memzero(shared, sizeof shared);
    st = kc_buf_reserve(out, KC_SEAL_OVERHEAD + n);
    if (st == KC_OK) {
        uint8_t *p = out->data;
        memcpy(p, prefix, PREFIX_BYTES);
        memcpy(p + PREFIX_BYTES, epk, 32);
        memcpy(p + PREFIX_BYTES + 32, nonce, NONCE_BYTES);
        crypto_secretbox_easy(p + PREFIX_BYTES + 32 + NONCE_BYTES, m, n, nonce, ss);
        out->len = KC_SEAL_OVERHEAD + n;
    } else {
        kc_err_set(err, st, "sealed box: out of memory");
    }
    sodium_memzero(ss, sizeof ss);
    return st;
}

kc_status kc_seal(const kc_key *recipient, const uint8_t *m, size_t n, kc_buf *out,
                  kc_err *err)
{
    kc_status st = check_recipient(recipient, err);
    if (st != KC_OK) {
        kc_buf_reset(out);
        return st;
    }
    uint8_t esk[32], nonce[NONCE_BYTES];
    /* upstream's order: the ephemeral key first, then the nonce */
    randombytes_buf(esk, sizeof esk);
    randombytes_buf(nonce, sizeof nonce);
    st = kc_seal_with(recipient, esk, nonce, m, n, out, err);
    sodium_memzero(esk, sizeof esk);
    return st;
}

/* The kafkacrypto format; `why` receives the reason it does not open. */
static kc_status open_custom(const kc_key *sk, const uint8_t pk[32], const uint8_t *c, size_t n,
                             kc_buf *out, kc_err *why)
{
    if (n < PREFIX_BYTES)
        return kc_err_set(why, KC_ERR_CRYPTO, "%zu bytes cannot hold the 4-byte header", n);
    size_t elen = (size_t)c[0] << 8 | c[1], nlen = (size_t)c[2] << 8 | c[3];
    if (elen + nlen > n - PREFIX_BYTES)
        return kc_err_set(why, KC_ERR_CRYPTO,
                          "header declares %zu + %zu bytes of key and nonce, only %zu follow",
                          elen, nlen, n - PREFIX_BYTES);
    const uint8_t *e = c + PREFIX_BYTES, *nonce = e + elen, *box = nonce + nlen;
    size_t boxlen = n - PREFIX_BYTES - elen - nlen;
    kc_key epk;
    kc_err kerr;
    if (kc_key_from_bytes(&epk, KC_KEM_PK, e, elen, &kerr) != KC_OK)
        return kc_err_set(why, KC_ERR_CRYPTO, "ephemeral key: %s", kerr.msg);
    int ev = epk.version;
    kc_key_clear(&epk);
    /* a version-1 secret completes only a version-1 key, whose bytes() are e itself */
    if (ev != 1)
        return kc_err_set(why, KC_ERR_CRYPTO,
                          "ephemeral key of version %d does not pair with a version 1 key", ev);
    if (nlen != NONCE_BYTES)
        return kc_err_set(why, KC_ERR_CRYPTO, "nonce of %zu bytes, expected %d", nlen,
                          NONCE_BYTES);
    if (boxlen < MAC_BYTES)
        return kc_err_set(why, KC_ERR_CRYPTO, "ciphertext of %zu bytes is shorter than its MAC",
                          boxlen);
    uint8_t shared[32], ss[32];
    if (crypto_scalarmult(shared, sk->x, e) != 0) {
        sodium_memzero(shared, sizeof shared);
        return kc_err_set(why, KC_ERR_CRYPTO,
                          "X25519 with the ephemeral key gave an all-zero result");
    }
    box_key(ss, c, pk, e, elen, nonce, shared);
    sodium_memzero(shared, sizeof shared);
    kc_status st = kc_buf_reserve(out, boxlen - MAC_BYTES + 1);
    if (st == KC_OK) {
        if (crypto_secretbox_open_easy(out->data, box, boxlen, nonce, ss) == 0)
            out->len = boxlen - MAC_BYTES;
        else
            st = kc_err_set(why, KC_ERR_CRYPTO, "MAC check failed");
    } else {
        kc_err_set(why, st, "out of memory");
    }
    sodium_memzero(ss, sizeof ss);
    return st;
}

kc_status kc_seal_open(const kc_key *recipient_sk, const uint8_t *c, size_t n, kc_buf *out,
                       kc_err *err)
{
    kc_buf_reset(out);
    if (recipient_sk->kind != KC_KEM_SK)
        return kc_err_set(err, KC_ERR_INVALID,
                          "sealed box: opening needs a key-exchange secret key");
    if (recipient_sk->version == 2 || recipient_sk->version == 5)
        return kc_err_set(err, KC_ERR_UNSUPPORTED,
                          "sealed box: key version %d needs %s, which this build lacks",
                          recipient_sk->version,
                          recipient_sk->version == 2 ? "sntrup761" : "ML-KEM-1024");
    if (recipient_sk->version != 1 || recipient_sk->x_len != KC_KEM_BYTES)
        return kc_err_set(err, KC_ERR_INVALID,
                          "sealed box: cannot open with a version %d key", recipient_sk->version);
    uint8_t pk[32];
    crypto_scalarmult_base(pk, recipient_sk->x);
    kc_err why;
    kc_err_clear(&why);
    kc_status st = open_custom(recipient_sk, pk, c, n, out, &why);
    if (st == KC_OK || st == KC_ERR_NOMEM)
        return st == KC_OK ? KC_OK : kc_err_set(err, st, "sealed box: out of memory");
    /* upstream falls back to a standard libsodium sealed box for version 1 */
    if (n < crypto_box_SEALBYTES)
        return kc_err_set(err, KC_ERR_CRYPTO,
                          "sealed box of %zu bytes: not a kafkacrypto sealed box (%s) and "
                          "shorter than a libsodium sealed box", n, why.msg);
    st = kc_buf_reserve(out, n - crypto_box_SEALBYTES + 1);
    if (st != KC_OK)
        return kc_err_set(err, st, "sealed box: out of memory");
    if (crypto_box_seal_open(out->data, c, n, pk, recipient_sk->x) != 0)
        return kc_err_set(err, KC_ERR_CRYPTO,
                          "sealed box of %zu bytes: neither a kafkacrypto sealed box for this "
                          "key (%s) nor a libsodium sealed box for this key", n, why.msg);
    out->len = n - crypto_box_SEALBYTES;
    return KC_OK;
}
