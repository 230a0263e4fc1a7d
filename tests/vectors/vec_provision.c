/* provision.json: PasswordROT, PasswordProvisioner (scrypt) and the chain,
 * allowlist entry and maxage tools/simple-provision.py writes, and what
 * process_chain makes of that chain. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_chain.h"
#include "kc_mp.h"
#include "kc_provision.h"
#include "vec.h"

static void check_u64(vec_ctx *ctx, const char *name, json_t *want, unsigned long long got)
{
    if (json_is_integer(want) && (unsigned long long)json_integer_value(want) == got)
        vec_pass(ctx, name);
    else
        vec_fail(ctx, name, "got %llu, want %lld", got, (long long)json_integer_value(want));
}

static void password_rot(vec_ctx *ctx, const char *vname, json_t *v)
{
    const char *pw = vec_req_str(ctx, v, "password");
    char name[200];
    kc_password_key rot;
    kc_err err;
    snprintf(name, sizeof name, "%.120s: derivation", vname);
    if (kc_password_rot(pw, strlen(pw), KC_KEYTYPE_ED25519, &rot, &err) != KC_OK) {
        vec_fail(ctx, name, "%s", err.msg);
        return;
    }
    snprintf(name, sizeof name, "%.120s: salt", vname);
    vec_check_bytes(ctx, name, "salt", rot.salt, sizeof rot.salt, json_object_get(v, "salt"));
    snprintf(name, sizeof name, "%.120s: seed", vname);
    vec_check_bytes(ctx, name, "seed", rot.sk.x, 32, json_object_get(v, "seed"));
    snprintf(name, sizeof name, "%.120s: pk", vname);
    vec_check_bytes(ctx, name, "pk", rot.pk.x, rot.pk.x_len, json_object_get(v, "pk"));
    snprintf(name, sizeof name, "%.120s: sk", vname);
    vec_check_bytes(ctx, name, "sk", rot.sk.x, rot.sk.x_len, json_object_get(v, "sk"));
    kc_buf entry = KC_BUF_INIT;
    snprintf(name, sizeof name, "%.120s: allowlist entry", vname);
    if (kc_rot_allowlist_entry(&rot.pk, &entry, NULL) != KC_OK)
        vec_fail(ctx, name, "cannot build the entry");
    else
        vec_check_bytes(ctx, name, "allowlist entry", entry.data, entry.len,
                        json_object_get(v, "allowlist_entry"));
    snprintf(name, sizeof name, "%.120s: opslimit", vname);
    check_u64(ctx, name, json_object_get(v, "opslimit"), KC_PWHASH_OPSLIMIT);
    snprintf(name, sizeof name, "%.120s: memlimit", vname);
    check_u64(ctx, name, json_object_get(v, "memlimit"), KC_PWHASH_MEMLIMIT);
    kc_buf_free(&entry);
    kc_password_key_clear(&rot);
}

static void password_provisioner(vec_ctx *ctx, const char *vname, json_t *v)
{
    const char *pw = vec_req_str(ctx, v, "password");
    kc_buf rot = vec_req_bytes(ctx, v, "rot_pk");
    kc_password_key prov[KC_PROVISIONER_COUNT];
    kc_err err;
    char name[200];
    snprintf(name, sizeof name, "%.120s: derivation", vname);
    if (kc_password_provisioners(pw, strlen(pw), rot.data, rot.len, KC_KEYTYPE_ED25519, prov,
                                 &err) != KC_OK) {
        vec_fail(ctx, name, "%s", err.msg);
        kc_buf_free(&rot);
        return;
    }
    json_t *keys = json_object_get(v, "keys");
    for (int p = 0; p < KC_PROVISIONER_COUNT; p++) {
        const char *pn = kc_provisioner_name((kc_provisioner)p);
        json_t *k = json_object_get(keys, pn);
        snprintf(name, sizeof name, "%.120s: %s salt", vname, pn);
        vec_check_bytes(ctx, name, "salt", prov[p].salt, 32, json_object_get(k, "salt"));
        snprintf(name, sizeof name, "%.120s: %s seed", vname, pn);
        vec_check_bytes(ctx, name, "seed", prov[p].sk.x, 32, json_object_get(k, "seed"));
        snprintf(name, sizeof name, "%.120s: %s pk", vname, pn);
        vec_check_bytes(ctx, name, "pk", prov[p].pk.x, prov[p].pk.x_len, json_object_get(k, "pk"));
        kc_password_key_clear(&prov[p]);
    }
    kc_buf_free(&rot);
}

/* The answers simple-provision.py was given, in its order of questions. */
typedef struct answers {
    kc_role role;
    char *roots[16];
    size_t nroots;
    int pathlen;
} answers;

static bool read_answers(json_t *inputs, answers *a)
{
    size_t i = 1; /* [0] is the key type: "" = Ed25519 */
    memset(a, 0, sizeof *a);
    i++;          /* node ID */
    const char *choice = json_string_value(json_array_get(inputs, i++));
    if (!choice)
        return false;
    bool limited = false;
    int c = atoi(choice);
    if (c == 3 || c == 4) {
        const char *l = json_string_value(json_array_get(inputs, i++));
        limited = l && tolower((unsigned char)l[0]) == 'y';
    }
    static const kc_role by_choice[5][2] = {
        {0, 0}, {KC_ROLE_CONTROLLER, KC_ROLE_CONTROLLER}, {KC_ROLE_PRODUCER, KC_ROLE_PRODUCER},
        {KC_ROLE_CONSUMER, KC_ROLE_CONSUMER_LIMITED}, {KC_ROLE_PRODCON, KC_ROLE_PRODCON_LIMITED}};
    if (c < 1 || c > 4)
        return false;
    a->role = by_choice[c][limited];
    /* roots: each word cut at its first '.', duplicates dropped */
    const char *topics = json_string_value(json_array_get(inputs, i++));
    char *copy = strdup(topics ? topics : ""), *save = NULL;
    for (char *w = strtok_r(copy, " \t", &save); w && a->nroots < 16;
         w = strtok_r(NULL, " \t", &save)) {
        char *dot = strchr(w, '.');
        if (dot)
            *dot = 0;
        bool seen = false;
        for (size_t k = 0; k < a->nroots; k++)
            seen |= strcmp(a->roots[k], w) == 0;
        if (!seen)
            a->roots[a->nroots++] = strdup(w);
    }
    free(copy);
    if (a->nroots == 0) {
        i++; /* "allow all topics?" — yes */
        a->roots[a->nroots++] = strdup("^.*$");
    }
    const char *pl = json_string_value(json_array_get(inputs, i));
    a->pathlen = pl && *pl ? atoi(pl) : 1;
    return true;
}

/* msgpack of a decoded view (str -> str, {"bin": hex} -> bin), to compare
 * a poison the vectors show only decoded. */
static bool pack_json(msgpack_packer *pk, json_t *v)
{
    kc_buf b = KC_BUF_INIT;
    bool ok = true;
    if (json_is_integer(v)) {
        msgpack_pack_int64(pk, json_integer_value(v));
    } else if (json_is_string(v)) {
        kc_mp_pack_text(pk, json_string_value(v));
    } else if (json_is_array(v)) {
        msgpack_pack_array(pk, (uint32_t)json_array_size(v));
        for (size_t i = 0; i < json_array_size(v) && ok; i++)
            ok = pack_json(pk, json_array_get(v, i));
    } else if (vec_bytes(v, &b)) {
        kc_mp_pack_bin(pk, b.data, b.len);
    } else {
        ok = false;
    }
    kc_buf_free(&b);
    return ok;
}

/* process_chain(chain0, None, None, allowlist=[rot0]) at the tool's pinned
 * time: expiry, accumulated poison and key. */
static void check_process_chain(vec_ctx *ctx, const char *vname, const kc_buf *chain,
                                const kc_buf *rot_entry, double checktime, json_t *want)
{
    char name[200];
    snprintf(name, sizeof name, "%.120s: process_chain of chain0", vname);
    kc_bytes entry = {rot_entry->data, rot_entry->len};
    kc_chain_list allow = {&entry, 1};
    kc_chain_result r;
    kc_err err;
    if (kc_chain_process(chain->data, chain->len, NULL, NULL, &allow, NULL, checktime, &r,
                         &err) != KC_OK) {
        vec_fail(ctx, name, "%s", err.msg);
        return;
    }
    kc_mp_out poison;
    kc_mp_out_init(&poison);
    bool packed = pack_json(&poison.pk, json_object_get(want, "poison_decoded"));
    if (r.max_age != json_number_value(json_object_get(want, "max_age")))
        vec_fail(ctx, name, "max_age %.2f", r.max_age);
    else if (!packed || poison.buf.len != r.poison.len ||
             memcmp(poison.buf.data, r.poison.data, r.poison.len) != 0)
        vec_fail(ctx, name, "accumulated poison differs");
    else if (r.key.is_list || r.key.n != 1)
        vec_fail(ctx, name, "expected a single leaf key");
    else
        vec_check_bytes(ctx, name, "key", r.key.keys[0].x, r.key.keys[0].x_len,
                        json_object_get(want, "key"));
    kc_mp_out_free(&poison);
    kc_chain_result_free(&r);
}

static void simple_provision(vec_ctx *ctx, const char *vname, json_t *v)
{
    const char *rot_pw = vec_req_str(ctx, v, "rot_password");
    const char *prov_pw = vec_req_str(ctx, v, "prov_password");
    json_t *written = json_object_get(v, "written");
    json_t *items = json_object_get(v, "chain0_items");
    char name[200];
    answers a;
    kc_password_key rot, prov[KC_PROVISIONER_COUNT];
    kc_err err;
    snprintf(name, sizeof name, "%.120s: derivations", vname);
    if (!read_answers(json_object_get(v, "inputs"), &a)) {
        vec_fail(ctx, name, "cannot read the scripted answers");
        return;
    }
    if (kc_password_rot(rot_pw, strlen(rot_pw), KC_KEYTYPE_ED25519, &rot, &err) != KC_OK ||
        kc_password_provisioners(prov_pw, strlen(prov_pw), rot.pk.x, rot.pk.x_len,
                                 KC_KEYTYPE_ED25519, prov, &err) != KC_OK) {
        vec_fail(ctx, name, "%s", err.msg);
        return;
    }
    kc_buf node_pk_bytes = vec_req_bytes(ctx, v, "node_pk");
    kc_key node_pk;
    kc_buf entry = KC_BUF_INIT, pcert = KC_BUF_INIT, ncert = KC_BUF_INIT;
    kc_buf psigned = KC_BUF_INIT, nsigned = KC_BUF_INIT, chain = KC_BUF_INIT;
    kc_provisioner signer = kc_role_provisioner(a.role);
    double max_age = json_number_value(json_object_get(v, "fixed_time")) +
                     KC_SIMPLE_PROVISION_LIFETIME;
    bool ok = kc_key_from_bytes(&node_pk, KC_SIGN_PK, node_pk_bytes.data, node_pk_bytes.len,
                                &err) == KC_OK &&
              kc_rot_allowlist_entry(&rot.pk, &entry, &err) == KC_OK &&
              kc_provisioner_cert(signer, &prov[signer].pk, &pcert, &err) == KC_OK &&
              kc_cert_sign(&rot.sk, pcert.data, pcert.len, &psigned, &err) == KC_OK &&
              kc_node_cert(a.role, max_age, (const char *const *)a.roots, a.nroots, a.pathlen,
                           &node_pk, &ncert, &err) == KC_OK &&
              kc_cert_sign(&prov[signer].sk, ncert.data, ncert.len, &nsigned, &err) == KC_OK &&
              kc_chain_append(NULL, 0, psigned.data, psigned.len, &chain, &err) == KC_OK &&
              kc_chain_append(chain.data, chain.len, nsigned.data, nsigned.len, &chain, &err) ==
                  KC_OK;
    if (!ok) {
        vec_fail(ctx, name, "building the certificates failed: %s", err.msg);
    } else {
        snprintf(name, sizeof name, "%.120s: ROT-signed provisioner certificate", vname);
        vec_check_bytes(ctx, name, "chain item 0", psigned.data, psigned.len,
                        json_object_get(json_array_get(items, 0), "signed"));
        snprintf(name, sizeof name, "%.120s: provisioner-signed node certificate", vname);
        vec_check_bytes(ctx, name, "chain item 1", nsigned.data, nsigned.len,
                        json_object_get(json_array_get(items, 1), "signed"));
        snprintf(name, sizeof name, "%.120s: chains.chain0", vname);
        vec_check_bytes(ctx, name, "chain0", chain.data, chain.len,
                        json_object_get(json_object_get(written, "chains"), "chain0"));
        snprintf(name, sizeof name, "%.120s: allowlist.rot0", vname);
        vec_check_bytes(ctx, name, "rot0", entry.data, entry.len,
                        json_object_get(json_object_get(written, "allowlist"), "rot0"));
        snprintf(name, sizeof name, "%.120s: crypto.maxage", vname);
        check_u64(ctx, name, json_object_get(json_object_get(written, "crypto"), "maxage"),
                  KC_SIMPLE_PROVISION_LIFETIME);
        check_process_chain(ctx, vname, &chain, &entry,
                            json_number_value(json_object_get(v, "fixed_time")),
                            json_object_get(v, "chain0_process_chain"));
    }
    for (size_t k = 0; k < a.nroots; k++)
        free(a.roots[k]);
    kc_buf_free(&node_pk_bytes);
    kc_buf_free(&entry);
    kc_buf_free(&pcert);
    kc_buf_free(&ncert);
    kc_buf_free(&psigned);
    kc_buf_free(&nsigned);
    kc_buf_free(&chain);
    kc_password_key_clear(&rot);
    for (int p = 0; p < KC_PROVISIONER_COUNT; p++)
        kc_password_key_clear(&prov[p]);
}

void vec_area_provision(vec_ctx *ctx, json_t *root)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "vectors"), i, v) {
        char buf[64];
        const char *vname = vec_name(v, "provision", i, buf, sizeof buf);
        const char *type = json_string_value(json_object_get(v, "type"));
        char name[200];
        snprintf(name, sizeof name, "%.120s (%s)", vname, type ? type : "?");
        if (type && strcmp(type, "PasswordROT") == 0)
            password_rot(ctx, name, v);
        else if (type && strcmp(type, "PasswordProvisioner") == 0)
            password_provisioner(ctx, name, v);
        else if (type && strcmp(type, "simple_provision") == 0)
            simple_provision(ctx, name, v);
        else
            vec_fail(ctx, name, "unknown vector type");
    }
}
