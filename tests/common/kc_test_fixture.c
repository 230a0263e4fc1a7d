#include "kc_test_fixture.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_chain.h"
#include "kc_cryptokey_file.h"
#include "kc_mp.h"
#include "kc_provision_node.h"
#include "kc_ratchet.h"
#include "kc_store.h"
#include "kc_test.h"

static void must(kc_status st, const char *what, const kc_err *err)
{
    if (st != KC_OK) {
        fprintf(stderr, "test fixture: %s: %s\n", what, err && err->msg[0] ? err->msg : "failed");
        abort();
    }
}

void tc_seeded(kc_key *pk, kc_key *sk, const char *label)
{
    uint8_t seed[32];
    crypto_hash_sha256(seed, (const uint8_t *)label, strlen(label));
    must(kc_sign_keypair_from_seed(pk, sk, seed), label, NULL);
    sodium_memzero(seed, sizeof seed);
}

void tc_pki_init(tc_pki *pki, const char *rot_label, const char *prov_label)
{
    memset(pki, 0, sizeof *pki);
    tc_seeded(&pki->rot_pk, &pki->rot_sk, rot_label);
    tc_seeded(&pki->prov_pk, &pki->prov_sk, prov_label);
    must(kc_rot_allowlist_entry(&pki->rot_pk, &pki->rot_entry, NULL), "allowlist entry", NULL);
}

void tc_pki_clear(tc_pki *pki)
{
    kc_key *keys[] = {&pki->rot_pk, &pki->rot_sk, &pki->prov_pk, &pki->prov_sk};
    for (size_t i = 0; i < 4; i++)
        kc_key_clear(keys[i]);
    kc_buf_free(&pki->rot_entry);
}

kc_buf tc_chain(const tc_pki *pki, kc_role role, double max_age, const char *root,
                const kc_key *pk)
{
    kc_buf pc = KC_BUF_INIT, nc = KC_BUF_INIT, i1 = KC_BUF_INIT, i2 = KC_BUF_INIT, out = KC_BUF_INIT;
    kc_err err = {0};
    must(kc_provisioner_cert(KC_PROVISIONER_PRODCON, &pki->prov_pk, &pc, &err), "provisioner cert",
         &err);
    must(kc_node_cert(role, max_age, &root, root ? 1 : 0, -1, pk, &nc, &err), "node cert", &err);
    must(kc_cert_sign(&pki->rot_sk, pc.data, pc.len, &i1, &err), "sign by the root", &err);
    must(kc_cert_sign(&pki->prov_sk, nc.data, nc.len, &i2, &err), "sign by the provisioner",
         &err);
    kc_bytes items[2] = {{i1.data, i1.len}, {i2.data, i2.len}};
    must(kc_chain_build(items, 2, &out, &err), "chain", &err);
    kc_buf *bufs[] = {&pc, &nc, &i1, &i2};
    for (size_t i = 0; i < 4; i++)
        kc_buf_free(bufs[i]);
    return out;
}

/* mp([2, [bin(sk)...], bin(ek), legacy, [1]]): a version-2 cryptokey file. */
static void open_memory_cryptokey(tc_party *p, const char *label, bool legacy)
{
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, 5);
    msgpack_pack_int(&mo.pk, 2);
    msgpack_pack_array(&mo.pk, p->nkeys);
    for (size_t i = 0; i < p->nkeys; i++) {
        char l[128];
        snprintf(l, sizeof l, "%s/%zu", label, i);
        tc_seeded(&p->pk[i], &p->sk[i], l);
        kc_mp_pack_bin(&mo.pk, p->sk[i].x, 64);
    }
    uint8_t ek[32] = {1};
    kc_mp_pack_bin(&mo.pk, ek, 32);
    if (legacy)
        msgpack_pack_true(&mo.pk);
    else
        msgpack_pack_false(&mo.pk);
    msgpack_pack_array(&mo.pk, 1);
    msgpack_pack_int(&mo.pk, 1);
    kc_err err = {0};
    must(kc_cryptokey_open_bytes(&p->ck, mo.buf.data, mo.buf.len, label, NULL, 0, &err), label,
         &err);
    kc_mp_out_free(&mo);
}

/* The file's first Ed25519 key, made if the file has none. */
static void open_file_cryptokey(tc_party *p, const char *path)
{
    kc_err err = {0};
    int one = 1;
    must(kc_cryptokey_open(&p->ck, path, NULL, 0, &err), path, &err);
    if (kc_cryptokey_num_spk(p->ck) == 0) {
        kc_cryptokey_close(p->ck);
        must(kc_cryptokey_open(&p->ck, path, &one, 1, &err), path, &err);
    }
    p->nkeys = 1;
    must(kc_cryptokey_get_spk(p->ck, 0, &p->pk[0], &err), path, &err);
}

void tc_party_make(tc_party *p, const tc_pki *pki, const char *label, const tc_party_options *o)
{
    memset(p, 0, sizeof *p);
    p->nkeys = o->nkeys ? o->nkeys : 1;
    if (p->nkeys > TC_PARTY_KEYS)
        must(KC_ERR_INVALID, "tc_party_make: too many keys", NULL);
    if (o->file)
        open_file_cryptokey(p, o->file);
    else
        open_memory_cryptokey(p, label, o->legacy);
    kc_exchange_config c;
    kc_exchange_config_init(&c);
    kc_bytes allow = {pki->rot_entry.data, pki->rot_entry.len};
    c.cryptokey = p->ck;
    c.allowlist = &allow;
    c.n_allowlist = 1;
    c.denylist = o->deny;
    c.n_denylist = o->ndeny;
    if (o->now_fn)
        c.now_fn = o->now_fn;
    kc_err err = {0};
    must(kc_exchange_new(&c, &p->x, &err), label, &err);
    for (size_t i = 0; o->role >= 0 && i < p->nkeys; i++) {
        kc_buf chain = tc_chain(pki, (kc_role)o->role, o->max_age, o->root, &p->pk[i]);
        size_t idx = 99;
        must(kc_exchange_update_own_chain(p->x, chain.data, chain.len, &idx, &err), label, &err);
        if (idx != i)
            must(KC_ERR_INVALID, "own chain not stored at its key's index", NULL);
        kc_buf_free(&chain);
    }
}

void tc_party_free(tc_party *p)
{
    kc_exchange_free(p->x);
    kc_cryptokey_close(p->ck);
    for (size_t i = 0; i < TC_PARTY_KEYS; i++) {
        kc_key_clear(&p->pk[i]);
        kc_key_clear(&p->sk[i]);
    }
    p->x = NULL;
    p->ck = NULL;
}

static char *node_file(const char *dir, const char *node, const char *suffix)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s", node, suffix);
    return tc_path(dir, name);
}

static void store_value(kc_store *s, const char *section, const char *name, kc_value v)
{
    kc_err err = {0};
    must(kc_store_store_value(s, section, name, &v, &err), name, &err);
}

char *tc_node_dir(const char *dir, const char *node, kc_role role, const char *root,
                  const tc_pki *trust, const tc_pki *signer)
{
    char *config = node_file(dir, node, ".config"), *crypto = node_file(dir, node, ".crypto");
    char *seed = node_file(dir, node, ".seed");
    kc_err err = {0};
    kc_store *s;
    kc_store_options so = {.kafka = true, .keep_log_level = true};
    must(kc_store_open(&s, config, node, &so, &err), config, &err);
    tc_party p = {0};
    open_file_cryptokey(&p, crypto);
    kc_buf chain = tc_chain(signer, role, 0, root, &p.pk[0]);
    store_value(s, "allowlist", "rot0", kc_value_bytes(trust->rot_entry.data, trust->rot_entry.len));
    store_value(s, "chains", "chain0", kc_value_bytes(chain.data, chain.len));
    char ref[4200];
    snprintf(ref, sizeof ref, "file#%s", crypto);
    store_value(s, NULL, "cryptokey", kc_value_text(ref));
    kc_ratchet *rt; /* a provisioned node's seed must exist (spec D1) */
    must(kc_ratchet_open_file(seed, NULL, &rt, &err), seed, &err);
    kc_ratchet_close(rt);
    snprintf(ref, sizeof ref, "file#%s", seed);
    store_value(s, NULL, "ratchet", kc_value_text(ref));
    store_value(s, NULL, "crypto_sub_interval", kc_value_int(1));
    kc_store_close(s);
    kc_cryptokey_close(p.ck);
    kc_key_clear(&p.pk[0]);
    kc_buf_free(&chain);
    free(crypto);
    free(seed);
    return config;
}

char *tc_provision(const char *dir, const char *node, kc_role role, const char *rot_password,
                   int pathlen)
{
    kc_provision_request r = {.dir = dir, .node_id = node, .role = role,
                              .rot_password = rot_password,
                              .prov_password = "provisioning password", .pathlen = pathlen};
    kc_err err = {0};
    must(kc_provision_node(&r, &err), node, &err);
    return node_file(dir, node, ".config");
}
