/* Shared by the key-exchange fuzz targets: a consumer and a producer
 * provisioned under a test root, deterministic randomness, and a signer
 * that turns fuzzed leaf bytes into a correctly signed message so that the
 * code after signature verification is reached. */
#ifndef FUZZ_EXCHANGE_FIXTURE_H
#define FUZZ_EXCHANGE_FIXTURE_H

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_cryptokey_file.h"
#include "kc_exchange.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_provision.h"

/* ChaCha20 keystream with a fixed key: the same "random" bytes every run. */
static uint64_t fx_counter;
static const char *fx_rng_name(void) { return "fuzz"; }
static uint32_t fx_rng_random(void)
{
    uint32_t v;
    uint8_t nonce[8] = {0}, key[32] = {42};
    memcpy(nonce, &fx_counter, sizeof fx_counter);
    fx_counter++;
    crypto_stream_chacha20((uint8_t *)&v, sizeof v, nonce, key);
    return v;
}
static void fx_rng_buf(void *p, size_t n)
{
    uint8_t nonce[8] = {0}, key[32] = {42};
    memcpy(nonce, &fx_counter, sizeof fx_counter);
    fx_counter++;
    crypto_stream_chacha20(p, n, nonce, key);
}
static struct randombytes_implementation fx_rng = {fx_rng_name, fx_rng_random, NULL, NULL,
                                                   fx_rng_buf, NULL};

typedef struct fx_node {
    kc_key pk, sk;
    kc_buf chain;
    kc_cryptokey *ck;
    kc_exchange *x;
} fx_node;

static kc_key fx_rot_pk, fx_rot_sk, fx_prov_pk, fx_prov_sk;
static kc_buf fx_rot_entry;
static double fx_now = 1800000000.0;
static double fx_clock(void *ctx) { (void)ctx; return fx_now; }

static void fx_seeded(kc_key *pk, kc_key *sk, const char *label)
{
    uint8_t seed[32];
    crypto_hash_sha256(seed, (const uint8_t *)label, strlen(label));
    if (kc_sign_keypair_from_seed(pk, sk, seed) != KC_OK)
        abort();
}

static void fx_node_make(fx_node *n, const char *label, kc_role role)
{
    fx_seeded(&n->pk, &n->sk, label);
    kc_buf pc = KC_BUF_INIT, nc = KC_BUF_INIT, i1 = KC_BUF_INIT, i2 = KC_BUF_INIT;
    const char *root = "sensor";
    if (kc_provisioner_cert(KC_PROVISIONER_PRODCON, &fx_prov_pk, &pc, NULL) != KC_OK ||
        kc_node_cert(role, fx_now + 86400, &root, 1, -1, &n->pk, &nc, NULL) != KC_OK ||
        kc_cert_sign(&fx_rot_sk, pc.data, pc.len, &i1, NULL) != KC_OK ||
        kc_cert_sign(&fx_prov_sk, nc.data, nc.len, &i2, NULL) != KC_OK)
        abort();
    kc_bytes items[2] = {{i1.data, i1.len}, {i2.data, i2.len}};
    n->chain = (kc_buf)KC_BUF_INIT;
    if (kc_chain_build(items, 2, &n->chain, NULL) != KC_OK)
        abort();
    uint8_t file[5 + 64 + 2 + 32 + 3] = {0x95, 0x02, 0x91, 0xc4, 0x40};
    memcpy(file + 5, n->sk.x, 64);
    file[69] = 0xc4;
    file[70] = 0x20;
    file[103] = 0xc2;
    file[104] = 0x91;
    file[105] = 0x01;
    kc_exchange_config c;
    kc_exchange_config_init(&c);
    kc_bytes allow = {fx_rot_entry.data, fx_rot_entry.len};
    c.allowlist = &allow;
    c.n_allowlist = 1;
    c.now_fn = fx_clock;
    if (kc_cryptokey_open_bytes(&n->ck, file, sizeof file, label, NULL, 0, NULL) != KC_OK)
        abort();
    c.cryptokey = n->ck;
    if (kc_exchange_new(&c, &n->x, NULL) != KC_OK ||
        kc_exchange_update_own_chain(n->x, n->chain.data, n->chain.len, NULL, NULL) != KC_OK)
        abort();
    kc_buf_free(&pc);
    kc_buf_free(&nc);
    kc_buf_free(&i1);
    kc_buf_free(&i2);
}

static void fx_init(void)
{
    randombytes_set_implementation(&fx_rng);
    if (kc_init() != 0)
        abort();
    kc_log_set_level(KC_LOG_CRITICAL);
    fx_seeded(&fx_rot_pk, &fx_rot_sk, "fuzz rot");
    fx_seeded(&fx_prov_pk, &fx_prov_sk, "fuzz provisioner");
    if (kc_rot_allowlist_entry(&fx_rot_pk, &fx_rot_entry, NULL) != KC_OK)
        abort();
}

/* Input byte 0 chooses the form: odd = the rest is a whole message; even =
 * the rest is a leaf certificate that `n` signs and puts after its chain. */
static kc_buf fx_message(const fx_node *n, const uint8_t *data, size_t size)
{
    kc_buf out = KC_BUF_INIT, item = KC_BUF_INIT;
    if (size == 0)
        return out;
    if (data[0] & 1) {
        kc_buf_set(&out, data + 1, size - 1);
    } else if (kc_sign(&n->sk, data + 1, size - 1, &item) == KC_OK) {
        kc_chain_append(n->chain.data, n->chain.len, item.data, item.len, &out, NULL);
    }
    kc_buf_free(&item);
    return out;
}

/* With FUZZ_WRITE_SEEDS=DIR set, the targets write their seed inputs
 * (a real message whole, and its leaf for re-signing) there and exit:
 * that is how tests/fuzz/corpus/ was made, reproducibly. */
static void fx_write_seeds(const kc_buf *msg)
{
    const char *dir = getenv("FUZZ_WRITE_SEEDS");
    kc_chain_items items;
    if (!dir || kc_chain_parse(&items, msg->data, msg->len, NULL) != KC_OK)
        return;
    kc_bytes leaf = items.item[items.n - 1];
    const struct { const char *name; uint8_t form; const uint8_t *p; size_t n; } seeds[] = {
        {"whole", 1, msg->data, msg->len},
        {"leaf", 0, leaf.p + 64, leaf.n - 64},
    };
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, seeds[i].name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(&seeds[i].form, 1, 1, f) != 1 ||
            fwrite(seeds[i].p, 1, seeds[i].n, f) != seeds[i].n || fclose(f) != 0)
            abort();
    }
    kc_chain_items_free(&items);
    exit(0);
}

#endif
