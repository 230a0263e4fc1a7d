/* kc_chain_temporary.c — upstream's public "temporary" root of trust and the
 * chains it signs for unprovisioned nodes (spec §6.11; kc_chain.h). */
#include "kc_chain.h"

#include <sodium.h>

const uint8_t kc_chain_temporary_rot_seed[32] = {
    0x4c, 0x19, 0x4f, 0x7d, 0xe9, 0x7c, 0x67, 0x62, 0x6c, 0xc4, 0x3f, 0xbd, 0xaf, 0x93, 0xdf, 0xfb,
    0xc4, 0x73, 0x53, 0x52, 0xb3, 0x73, 0x70, 0x07, 0x26, 0x97, 0xd4, 0x42, 0x54, 0xe1, 0xbc, 0x6c};

kc_status kc_chain_temporary_rot_keys(kc_key *pk, kc_key *sk)
{
    if (sodium_init() < 0)
        return KC_ERR_CRYPTO;
    return kc_sign_keypair_from_seed(pk, sk, kc_chain_temporary_rot_seed);
}

kc_status kc_chain_temporary_rot_entry(kc_buf *out)
{
    kc_key pk, sk;
    kc_status st = kc_chain_temporary_rot_keys(&pk, &sk);
    kc_key_clear(&sk);
    kc_buf poison = KC_BUF_INIT;
    kc_poison_entry pathlen2 = {.name = "pathlen", .pathlen = 2};
    if (st == KC_OK)
        st = kc_poison_build(&pathlen2, 1, &poison, NULL);
    if (st == KC_OK)
        st = kc_chain_entry_build(0, poison.data, poison.len, &pk, out, NULL);
    kc_buf_free(&poison);
    kc_key_clear(&pk);
    return st;
}

bool kc_chain_entry_is_temporary_rot(const uint8_t *entry, size_t n)
{
    kc_cert c;
    if (kc_cert_parse(&c, entry, n, NULL) != KC_OK)
        return false;
    kc_key pk, sk;
    bool same = false;
    if (kc_chain_temporary_rot_keys(&pk, &sk) == KC_OK)
        same = !c.key.is_list && kc_key_equal(&c.key.keys[0], &pk);
    kc_key_clear(&sk);
    kc_key_clear(&pk);
    kc_cert_free(&c);
    return same;
}

kc_status kc_chain_sign_with_key(void *sk, const uint8_t *m, size_t n, kc_buf *out,
                                 kc_err *err)
{
    kc_status st = kc_sign(sk, m, n, out);
    return st == KC_OK ? st : kc_err_set(err, st, "signing failed: %s", kc_status_str(st));
}

kc_status kc_chain_temporary(kc_sign_fn sign, void *sign_ctx, const kc_key *spk,
                             const char *root, kc_temporary_kind kind, double now,
                             double maxage, kc_buf *chain, kc_buf *provision, kc_err *err)
{
    static const char *const request[] = {"key-encrypt-request", "key-encrypt-subscribe"};
    static const char *const reply[] = {"key-encrypt"};
    if (!root || !sign || !spk || spk->kind != KC_SIGN_PK)
        return kc_err_set(err, KC_ERR_INVALID, "temporary chain: a signing key pair and a root "
                          "topic are required");
    kc_poison_entry pe[3] = {
        {.name = "topics", .values = &root, .n_values = 1},
        {.name = "usages", .values = kind == KC_TEMPORARY_REQUEST ? request : reply,
         .n_values = kind == KC_TEMPORARY_REQUEST ? 2 : 1},
        {.name = "pathlen", .pathlen = 1}};
    kc_buf poison = KC_BUF_INIT, cert = KC_BUF_INIT, item = KC_BUF_INIT, entry = KC_BUF_INIT;
    kc_key tpk, tsk;
    kc_pks leaf = {false, 1, (kc_key *)spk};
    kc_status st = kc_chain_temporary_rot_keys(&tpk, &tsk);
    if (st == KC_OK)
        st = kc_poison_build(pe, 3, &poison, err);
    if (st == KC_OK)
        st = kc_cert_build(now + maxage, poison.data, poison.len, &leaf, NULL, 0, &cert, err);
    if (st == KC_OK)
        st = kc_cert_sign(&tsk, cert.data, cert.len, &item, err);
    if (st == KC_OK)
        st = kc_chain_build(&(kc_bytes){item.data, item.len}, 1, chain, err);
    if (st == KC_OK && provision) {
        static const uint8_t empty_poison[] = {0x90};
        st = kc_chain_entry_build(0, empty_poison, 1, spk, &entry, err);
        if (st == KC_OK)
            st = sign(sign_ctx, cert.data, cert.len, &item, err);
        if (st == KC_OK) {
            kc_bytes both[2] = {{entry.data, entry.len}, {item.data, item.len}};
            st = kc_chain_build(both, 2, provision, err);
        }
    }
    kc_key_clear(&tsk);
    kc_key_clear(&tpk);
    kc_buf_free(&poison);
    kc_buf_free(&cert);
    kc_buf_free(&item);
    kc_buf_free(&entry);
    return st;
}
