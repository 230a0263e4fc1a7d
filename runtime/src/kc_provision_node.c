#include "kc_provision_node.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafkacrypto.h"
#include "kc_chain.h"
#include "kc_cryptokey.h"
#include "kc_cryptokey_pkcs11.h"
#include "kc_file.h"
#include "kc_mp.h"
#include "kc_store.h"

#define MAX_TOPICS 64

static char *path_in(const char *dir, const char *node, const char *suffix)
{
    size_t n = (dir ? strlen(dir) + 1 : 0) + strlen(node) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s%s", dir ? dir : "", dir ? "/" : "", node, suffix);
    return p;
}

/* The roots of the given topics, deduplicated, in order. */
static size_t roots_of(const kc_provision_request *r, char roots[][KC_POISON_MAX_VALUE_LEN + 1],
                       const char **out)
{
    size_t k = 0;
    for (size_t i = 0; i < r->ntopics && k < MAX_TOPICS; i++) {
        const char *t = r->topics[i];
        size_t n = strcspn(t, ".");
        if (n == 0 || n > KC_POISON_MAX_VALUE_LEN)
            continue;
        snprintf(roots[k], KC_POISON_MAX_VALUE_LEN + 1, "%.*s", (int)n, t);
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(roots[j], roots[k]) == 0;
        if (!seen) {
            out[k] = roots[k];
            k++;
        }
    }
    if (k == 0)
        out[k++] = "^.*$";
    return k;
}

/* A new .seed holds [0, 32 random bytes]; an existing one is kept. */
static kc_status write_seed(const char *path, kc_err *err)
{
    if (kc_file_exists(path))
        return KC_OK;
    uint8_t rb[32];
    randombytes_buf(rb, sizeof rb);
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, 2);
    msgpack_pack_int(&mo.pk, 0);
    kc_mp_pack_bin(&mo.pk, rb, sizeof rb);
    sodium_memzero(rb, sizeof rb);
    kc_status st = kc_mp_out_status(&mo);
    if (st == KC_OK)
        st = kc_file_create(path, mo.buf.data, mo.buf.len, 0600, NULL, err);
    kc_mp_out_free(&mo);
    return st == KC_ERR_STATE ? KC_OK : st; /* appeared meanwhile: kept */
}

/* Text as the config file must hold it: its values are '%'-interpolated
 * (a URI's %-encoding would not survive), so '%' is written '%%'. */
static char *config_text(const char *t)
{
    size_t n = strlen(t), pct = 0;
    for (size_t i = 0; i < n; i++)
        pct += t[i] == '%';
    char *out = malloc(n + pct + 1), *o = out;
    for (size_t i = 0; out && i <= n; i++) {
        *o++ = t[i];
        if (t[i] == '%')
            *o++ = '%';
    }
    return out;
}

kc_status kc_provision_node(const kc_provision_request *r, kc_err *err)
{
    if (!r->node_id || !*r->node_id || strchr(r->node_id, '/'))
        return kc_err_set(err, KC_ERR_INVALID, "provision: a node ID without '/' is required");
    if (!r->rot_password || strlen(r->rot_password) < 12)
        return kc_err_set(err, KC_ERR_INVALID, "provision: the root of trust password needs 12 "
                          "or more characters");
    if (!r->prov_password || strlen(r->prov_password) < 6)
        return kc_err_set(err, KC_ERR_INVALID, "provision: the provisioning password needs 6 "
                          "or more characters");
    double now = r->now > 0 ? r->now : (double)time(NULL);
    double lifetime = r->lifetime > 0 ? r->lifetime : KC_SIMPLE_PROVISION_LIFETIME;
    kc_password_key rot, provs[KC_PROVISIONER_COUNT];
    memset(&rot, 0, sizeof rot);
    memset(provs, 0, sizeof provs);
    kc_buf pcert = KC_BUF_INIT, ncert = KC_BUF_INIT, item1 = KC_BUF_INIT, item2 = KC_BUF_INIT;
    kc_buf chain = KC_BUF_INIT, entry = KC_BUF_INIT, id = KC_BUF_INIT;
    kc_cryptokey *ck = NULL;
    kc_store *s = NULL;
    kc_key spk = {0};
    char *cfg = path_in(r->dir, r->node_id, ".config");
    char *paths[2] = {NULL, NULL};
    char roots[MAX_TOPICS][KC_POISON_MAX_VALUE_LEN + 1];
    const char *topics[MAX_TOPICS];
    size_t ntopics = roots_of(r, roots, topics);
    kc_provisioner which = kc_role_provisioner(r->role);
    kc_status st = cfg ? KC_OK : kc_err_set(err, KC_ERR_NOMEM, "out of memory");

    if (st == KC_OK)
        st = kc_password_rot(r->rot_password, strlen(r->rot_password), KC_KEYTYPE_ED25519, &rot,
                             err);
    if (st == KC_OK) {
        kc_buf rotb = KC_BUF_INIT;
        st = kc_key_bytes(&rot.pk, &rotb);
        if (st == KC_OK)
            st = kc_password_provisioners(r->prov_password, strlen(r->prov_password), rotb.data,
                                          rotb.len, KC_KEYTYPE_ED25519, provs, err);
        kc_buf_free(&rotb);
    }
    /* the provisioner certificate, signed by the root; it must validate */
    if (st == KC_OK)
        st = kc_provisioner_cert(which, &provs[which].pk, &pcert, err);
    if (st == KC_OK)
        st = kc_cert_sign(&rot.sk, pcert.data, pcert.len, &item1, err);
    if (st == KC_OK)
        st = kc_rot_allowlist_entry(&rot.pk, &entry, err);
    if (st == KC_OK) {
        kc_bytes one = {item1.data, item1.len}, allow = {entry.data, entry.len};
        kc_chain_list list = {&allow, 1};
        kc_chain_result res = {0};
        st = kc_chain_build(&one, 1, &chain, err);
        if (st == KC_OK &&
            (kc_chain_process(chain.data, chain.len, NULL, NULL, &list, NULL, now, &res, NULL) !=
                 KC_OK ||
             res.key.is_list || !kc_key_equal(&res.key.keys[0], &provs[which].pk)))
            st = kc_err_set(err, KC_ERR_CRYPTO, "Malformed chain for %s. Did you enter your "
                            "passwords correctly?", kc_provisioner_name(which));
        kc_chain_result_free(&res);
    }
    /* a key in a token is opened before anything is written, so a token
     * error changes nothing on disk */
    if (st == KC_OK && r->pkcs11)
        st = kc_cryptokey_pkcs11_open(&ck, r->pkcs11, r->pkcs11_create, err);
    /* The files the config names (so the chain certifies the key the node
     * will use), else <node_id>.crypto/.seed beside the config. Unlike a
     * node, provisioning may create them: it is how a node whose files
     * were lost is given a new identity. */
    kc_store_options so = {.kafka = true, .keep_log_level = true};
    if (st == KC_OK)
        st = kc_store_open(&s, cfg, r->node_id, &so, err);
    if (st == KC_OK && !r->pkcs11)
        st = kc_store_file_path(s, "cryptokey", ".crypto", &paths[0], err);
    if (st == KC_OK)
        st = kc_store_file_path(s, "ratchet", ".seed", &paths[1], err);
    /* else the node's key: the first Ed25519 key of its .crypto (added if none) */
    if (st == KC_OK && !r->pkcs11) {
        int one = KC_KEYTYPE_ED25519;
        st = kc_cryptokey_open(&ck, paths[0], &one, 1, err);
    }
    if (st == KC_OK)
        st = kc_cryptokey_get_spk(ck, 0, &spk, err);
    if (st == KC_OK)
        st = write_seed(paths[1], err);
    if (st == KC_OK)
        st = kc_node_cert(r->role, now + lifetime, topics, ntopics, r->pathlen, &spk, &ncert, err);
    if (st == KC_OK)
        st = kc_cert_sign(&provs[which].sk, ncert.data, ncert.len, &item2, err);
    if (st == KC_OK)
        st = kc_chain_append(chain.data, chain.len, item2.data, item2.len, &id, err);

    /* the config, in the tool's order of stores */
    if (st == KC_OK) {
        kc_value maxage = kc_value_int((int64_t)lifetime), ch = kc_value_bytes(id.data, id.len);
        kc_value rotv = kc_value_bytes(entry.data, entry.len), yes = kc_value_bool(true);
        kc_value existing = kc_value_none();
        st = kc_store_store_value(s, "crypto", "maxage", &maxage, err);
        if (st == KC_OK)
            st = kc_store_store_value(s, "chains", "chain0", &ch, err);
        if (st == KC_OK)
            st = kc_store_store_value(s, "allowlist", "rot0", &rotv, err);
        if (st == KC_OK &&
            kc_store_load_value(s, "allowlist", "temporary", &existing, NULL) == KC_OK)
            st = kc_store_store_value(s, "allowlist", "temporary", NULL, err);
        kc_value_clear(&existing);
        if (st == KC_OK && r->pkcs11) { /* the chain certifies the token's key */
            char *esc = config_text(r->pkcs11);
            kc_value v = kc_value_text(esc ? esc : "");
            st = esc ? kc_store_store_value(s, NULL, "cryptokey", &v, err)
                     : kc_err_set(err, KC_ERR_NOMEM, "out of memory");
            free(esc);
        }
        /* relative references, as upstream's tool writes them: the node
         * directory can be moved (spec D1) */
        static const kc_store_file files[2] = {{"cryptokey", ".crypto", false},
                                               {"ratchet", ".seed", false}};
        size_t skip = r->pkcs11 ? 1 : 0;   /* a token key has no file */
        char *named[2] = {NULL, NULL};
        if (st == KC_OK)
            st = kc_store_node_files(s, 2 - skip, files + skip, named, err);
        free(named[0]);
        free(named[1]);
        if (st == KC_OK && (r->role == KC_ROLE_PRODUCER || r->role == KC_ROLE_PRODCON ||
                            r->role == KC_ROLE_PRODCON_LIMITED))
            st = kc_store_store_value(s, NULL, "mgmt_long_keyindex", &yes, err);
    }
    kc_store_close(s);
    kc_cryptokey_close(ck);
    kc_key_clear(&spk);
    kc_password_key_clear(&rot);
    for (int i = 0; i < KC_PROVISIONER_COUNT; i++)
        kc_password_key_clear(&provs[i]);
    kc_buf *bufs[] = {&pcert, &ncert, &item1, &item2, &chain, &entry, &id};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        kc_buf_free(bufs[i]);
    free(cfg);
    free(paths[0]);
    free(paths[1]);
    return st;
}
