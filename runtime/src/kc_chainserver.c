#include "kc_chainserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafkacrypto.h"
#include "kc_chain.h"
#include "kc_cryptokey.h"
#include "kc_cryptokey_ref.h"
#include "kc_hex.h"
#include "kc_log.h"
#include "kc_mp.h"

#define LOGGER "kafkacrypto.chainserver"

struct kc_chainserver {
    kc_store *store;
    kc_cryptokey *ck;
    size_t nspk;
    kc_key *spk;
    kc_buf *chain;            /* our chain per signing key (may be empty) */
    kc_section allow_sec;     /* owns the allowlist bytes */
    kc_bytes *allow;
    size_t nallow;
    kc_grant_fn issue;        /* NULL: issue the proposal */
    void *issue_ctx;
    kc_chainserver_settings set;
};

static double number_option(kc_store *s, const char *name, double dflt)
{
    kc_value v = kc_value_none();
    double out = dflt;
    if (kc_store_load_value(s, NULL, name, &v, NULL) == KC_OK) {
        if (v.type == KC_VALUE_INT)
            out = (double)v.i;
        else if (v.type == KC_VALUE_FLOAT)
            out = v.f;
    }
    kc_value_clear(&v);
    return out;
}

/* Byte values of a section, in file order (they stay owned by sec). */
static kc_status section_bytes(kc_chainserver *cs, const char *name, kc_section *sec,
                               kc_bytes **out, size_t *n, kc_err *err)
{
    *out = NULL;
    *n = 0;
    kc_err why;
    kc_status st = kc_store_load_section(cs->store, name, false, sec, &why);
    if (st == KC_ERR_NOTFOUND)
        return KC_OK;
    if (st != KC_OK)
        return kc_err_set(err, st, "%s", why.msg);
    *out = calloc(sec->n ? sec->n : 1, sizeof **out);
    if (!*out)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sec->n; i++)
        if (sec->items[i].value.type == KC_VALUE_BYTES)
            (*out)[(*n)++] = (kc_bytes){sec->items[i].value.data, sec->items[i].value.len};
    return KC_OK;
}

static kc_chain_list allowlist(const kc_chainserver *cs)
{
    return (kc_chain_list){cs->allow, cs->nallow};
}

/* Start-up check of §8.2: each stored chain validates and certifies spk_idx. */
static kc_status load_chains(kc_chainserver *cs, kc_err *err)
{
    kc_section sec = {0};
    kc_bytes *c = NULL;
    size_t nc;
    kc_status st = section_bytes(cs, "chains", &sec, &c, &nc, err);
    kc_chain_list allow = allowlist(cs);
    for (size_t i = 0; st == KC_OK && i < nc && i < cs->nspk; i++) {
        kc_chain_result res = {0};
        kc_err why;
        st = kc_chain_process(c[i].p, c[i].n, NULL, NULL, &allow, NULL, (double)time(NULL), &res,
                              &why);
        if (st == KC_OK && !(!res.key.is_list && res.key.n == 1 &&
                             kc_key_equal(&res.key.keys[0], &cs->spk[i])))
            st = KC_ERR_INVALID;
        if (st != KC_OK)
            kc_err_set(err, st, "file %s: Chain for idx=%zu does not match public key: %s",
                       kc_store_path(cs->store), i,
                       why.code != KC_OK && why.msg[0] ? why.msg : "it certifies another key");
        else
            st = kc_buf_set(&cs->chain[i], c[i].p, c[i].n);
        kc_chain_result_free(&res);
    }
    free(c);
    kc_section_clear(&sec);
    return st;
}

kc_status kc_chainserver_open(kc_chainserver **out, const char *config_path,
                              kc_grant_fn issue, void *issue_ctx, kc_err *err)
{
    *out = NULL;
    if (kc_init() != 0)
        return kc_err_set(err, KC_ERR_CRYPTO, "libsodium failed to initialise");
    kc_chainserver *cs = calloc(1, sizeof *cs);
    if (!cs)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    kc_store_options so = {.kafka = true, .keep_log_level = true};
    kc_status st = kc_store_open(&cs->store, config_path, NULL, &so, err);
    if (st == KC_OK)
        st = kc_cryptokey_open_config(&cs->ck, cs->store, NULL, 0, err);
    if (st == KC_OK) {
        cs->nspk = kc_cryptokey_num_spk(cs->ck);
        cs->spk = calloc(cs->nspk ? cs->nspk : 1, sizeof *cs->spk);
        cs->chain = calloc(cs->nspk ? cs->nspk : 1, sizeof *cs->chain);
        if (!cs->spk || !cs->chain)
            st = kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; st == KC_OK && i < cs->nspk; i++)
        st = kc_cryptokey_get_spk(cs->ck, i, &cs->spk[i], err);
    if (st == KC_OK)
        st = section_bytes(cs, "allowlist", &cs->allow_sec, &cs->allow, &cs->nallow, err);
    if (st == KC_OK)
        st = load_chains(cs, err);
    cs->issue = issue;
    cs->issue_ctx = issue_ctx;
    if (st == KC_OK) {
        cs->set.interval_secs = number_option(cs->store, "interval_secs", 300);
        cs->set.lifetime = number_option(cs->store, "lifetime", 604800);
        cs->set.refresh_fraction = number_option(cs->store, "refresh_fraction", 0.143);
        cs->set.flush_time = number_option(cs->store, "flush_time", 2.0);
        if (!(cs->set.interval_secs > 0) || !(cs->set.lifetime > 0))
            st = kc_err_set(err, KC_ERR_INVALID, "file %s: interval_secs and lifetime must be "
                            "positive", config_path);
    }
    if (st != KC_OK) {
        kc_chainserver_close(cs);
        return st;
    }
    *out = cs;
    return KC_OK;
}

void kc_chainserver_close(kc_chainserver *cs)
{
    if (!cs)
        return;
    for (size_t i = 0; i < cs->nspk; i++) {
        kc_key_clear(&cs->spk[i]);
        kc_buf_free(&cs->chain[i]);
    }
    free(cs->spk);
    free(cs->chain);
    free(cs->allow);
    kc_section_clear(&cs->allow_sec);
    kc_cryptokey_close(cs->ck);
    kc_store_close(cs->store);
    free(cs);
}

const kc_chainserver_settings *kc_chainserver_settings_of(const kc_chainserver *cs)
{
    return &cs->set;
}

/* ---- entries -------------------------------------------------------------------------- */

void kc_chainkeys_free(kc_chainkey *k, size_t n)
{
    for (size_t i = 0; k && i < n; i++)
        free(k[i].name);
    free(k);
}

static char *entry_name(const kc_value *key)
{
    char *text = NULL;
    return kc_value_to_text(key, &text, NULL) == KC_OK ? text : NULL;
}

/* The unsigned certificate of entry `name` (owned by sec). */
static kc_status find_entry(kc_chainserver *cs, const char *name, kc_section *sec,
                            const kc_value **cert, kc_err *err)
{
    kc_err why;
    kc_status st = kc_store_load_section(cs->store, "chainkeys", false, sec, &why);
    if (st != KC_OK)
        return kc_err_set(err, st, "file %s: section chainkeys: %s", kc_store_path(cs->store),
                          why.msg);
    for (size_t i = 0; i < sec->n; i++) {
        char *n = entry_name(&sec->items[i].key);
        bool same = n && strcmp(n, name) == 0;
        free(n);
        if (same) {
            *cert = &sec->items[i].value;
            if ((*cert)->type != KC_VALUE_BYTES)
                return kc_err_set(err, KC_ERR_INVALID, "file %s: chainkeys %s: expected bytes "
                                  "(an unsigned certificate)", kc_store_path(cs->store), name);
            return KC_OK;
        }
    }
    return kc_err_set(err, KC_ERR_NOTFOUND, "file %s: chainkeys has no entry %s",
                      kc_store_path(cs->store), name);
}

static kc_status parse_single_key_cert(const kc_value *v, const char *name, kc_cert *c,
                                       kc_err *err)
{
    kc_status st = kc_cert_parse(c, v->data, v->len, err);
    if (st != KC_OK)
        return kc_err_prefix(err, "chainkeys %s: ", name);
    if (c->key.is_list || c->key.n != 1 || c->key.keys[0].kind != KC_SIGN_PK) {
        kc_cert_free(c);
        return kc_err_set(err, KC_ERR_INVALID, "chainkeys %s: expected one signing public key",
                          name);
    }
    return KC_OK;
}

kc_status kc_chainserver_entries(kc_chainserver *cs, kc_chainkey **out, size_t *n, kc_err *err)
{
    *out = NULL;
    *n = 0;
    kc_section sec = {0};
    kc_err why;
    kc_status st = kc_store_load_section(cs->store, "chainkeys", false, &sec, &why);
    if (st != KC_OK)
        return kc_err_set(err, st, "file %s: section chainkeys: %s", kc_store_path(cs->store),
                          why.msg);
    kc_chainkey *k = calloc(sec.n ? sec.n : 1, sizeof *k);
    if (!k) {
        kc_section_clear(&sec);
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < sec.n; i++) {
        char *name = entry_name(&sec.items[i].key);
        kc_cert c;
        kc_err bad;
        if (!name || sec.items[i].value.type != KC_VALUE_BYTES ||
            parse_single_key_cert(&sec.items[i].value, name, &c, &bad) != KC_OK) {
            kc_log(KC_LOG_WARNING, LOGGER, "file %s: chainkeys entry %s is not an unsigned "
                   "certificate; skipped", kc_store_path(cs->store), name ? name : "?");
            free(name);
            continue;
        }
        kc_buf b = KC_BUF_INIT;
        k[*n].name = name;
        k[*n].max_age = kc_cert_max_age(&c);
        if (kc_key_bytes(&c.key.keys[0], &b) == KC_OK && 2 * b.len < sizeof k[*n].key_hex)
            kc_hex(b.data, b.len, k[*n].key_hex);
        kc_buf_free(&b);
        kc_cert_free(&c);
        (*n)++;
    }
    kc_section_clear(&sec);
    *out = k;
    return KC_OK;
}

kc_status kc_chainserver_store(kc_chainserver *cs, const char *name, const uint8_t *cert,
                               size_t n, kc_err *err)
{
    kc_value v = kc_value_bytes(cert, n);
    return kc_store_store_value(cs->store, "chainkeys", name, &v, err);
}

/* ---- renewal -------------------------------------------------------------------------------- */

/* The rights of a packed poison as a grant (topics, usages, pathlen). */
static kc_status grant_of_poison(const kc_bytes *poison, kc_policy_grant *g, kc_err *err)
{
    kc_mp_doc doc;
    kc_status st = kc_mp_decode(&doc, poison->p, poison->n, "poison", err);
    if (st != KC_OK)
        return st;
    const msgpack_object *o = kc_mp_root(&doc);
    for (uint32_t i = 0; st == KC_OK && kc_mp_is_array(o) && i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (!kc_mp_is_array(e) || e->via.array.size != 2)
            continue;
        const msgpack_object *name = &e->via.array.ptr[0], *v = &e->via.array.ptr[1];
        bool topics = kc_mp_text_eq(name, "topics");
        if (kc_mp_text_eq(name, "pathlen")) {
            kc_mp_int(v, &g->pathlen);
        } else if ((topics || kc_mp_text_eq(name, "usages")) && kc_mp_is_array(v)) {
            char **list = topics ? g->topics : g->usages;
            size_t *n = topics ? &g->n_topics : &g->n_usages;
            *(topics ? &g->has_topics : &g->has_usages) = true;
            for (uint32_t j = 0; j < v->via.array.size && *n < KC_POLICY_MAX_GRANT; j++) {
                const uint8_t *p;
                size_t len;
                if (!kc_mp_bytes(&v->via.array.ptr[j], &p, &len))
                    continue;
                if (!(list[*n] = strndup((const char *)p, len)))
                    st = kc_err_set(err, KC_ERR_NOMEM, "out of memory");
                else
                    (*n)++;
            }
        }
    }
    kc_mp_doc_free(&doc);
    return st;
}

static bool same_list(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static bool same_rights(const kc_policy_grant *a, const kc_policy_grant *b)
{
    return a->has_topics == b->has_topics && a->has_usages == b->has_usages &&
           a->pathlen == b->pathlen && same_list(a->topics, a->n_topics, b->topics, b->n_topics) &&
           same_list(a->usages, a->n_usages, b->usages, b->n_usages);
}

/* usages, topics, pathlen: the order provisioning tools write them in. */
static kc_status poison_of_grant(const kc_policy_grant *g, kc_buf *out, kc_err *err)
{
    kc_poison_entry e[3];
    size_t n = 0;
    if (g->has_usages)
        e[n++] = (kc_poison_entry){"usages", (const char *const *)g->usages, g->n_usages, 0};
    if (g->has_topics)
        e[n++] = (kc_poison_entry){"topics", (const char *const *)g->topics, g->n_topics, 0};
    if (g->pathlen >= 0)
        e[n++] = (kc_poison_entry){"pathlen", NULL, 0, g->pathlen};
    return kc_poison_build(e, n, out, err);
}

kc_status kc_chainserver_renew(kc_chainserver *cs, const char *name, double now, kc_buf *chain,
                               kc_buf *key, kc_buf *cert, kc_err *err)
{
    kc_section sec = {0};
    const kc_value *v = NULL;
    kc_cert c;
    kc_policy_grant proposal, grant;
    kc_buf poison = KC_BUF_INIT, item = KC_BUF_INIT;
    kc_chain_result res = {0};
    memset(&proposal, 0, sizeof proposal);
    memset(&grant, 0, sizeof grant);
    proposal.pathlen = grant.pathlen = -1;
    kc_status st = find_entry(cs, name, &sec, &v, err);
    if (st != KC_OK) {
        kc_section_clear(&sec);
        return st;
    }
    if ((st = parse_single_key_cert(v, name, &c, err)) != KC_OK) {
        kc_section_clear(&sec);
        return st;
    }
    const kc_key *nodekey = &c.key.keys[0];
    size_t idx = cs->nspk;
    for (size_t i = 0; i < cs->nspk && idx == cs->nspk; i++)
        if (kc_key_same_type(&cs->spk[i], nodekey))
            idx = i;
    if (idx == cs->nspk)
        st = kc_err_set(err, KC_ERR_INVALID, "chainkeys %s: no signing key of ours has the type "
                        "of its key", name);
    if (st == KC_OK)
        st = grant_of_poison(&c.poison, &proposal, err);
    if (st == KC_OK) {
        proposal.lifetime = cs->set.lifetime;
        st = grant_of_poison(&c.poison, &grant, err);
        grant.lifetime = cs->set.lifetime;
    }
    if (st == KC_OK) {
        kc_policy_request r = {NULL, NULL, NULL, now, NULL, name, nodekey};
        st = cs->issue ? cs->issue(cs->issue_ctx, &r, &grant, err) : KC_OK;
    }
    if (st == KC_OK) {
        if (same_rights(&grant, &proposal))
            st = kc_buf_set(&poison, c.poison.p, c.poison.n);
        else
            st = poison_of_grant(&grant, &poison, err);
    }
    if (st == KC_OK)
        st = kc_cert_build(now + grant.lifetime, poison.data, poison.len, &c.key, NULL, 0, cert,
                           err);
    if (st == KC_OK)
        st = kc_cryptokey_sign(cs->ck, idx, cert->data, cert->len, &item, err);
    if (st == KC_OK)
        st = kc_chain_append(cs->chain[idx].data, cs->chain[idx].len, item.data, item.len, chain,
                             err);
    if (st == KC_OK) {
        kc_chain_list allow = allowlist(cs);
        st = kc_chain_process(chain->data, chain->len, NULL, NULL, &allow, NULL, now, &res, err);
        if (st != KC_OK)
            kc_err_prefix(err, "chainkeys %s: the re-issued chain does not validate: ", name);
    }
    if (st == KC_OK)
        st = kc_key_bytes(nodekey, key);
    kc_chain_result_free(&res);
    kc_buf_free(&poison);
    kc_buf_free(&item);
    kc_policy_grant_clear(&proposal);
    kc_policy_grant_clear(&grant);
    kc_cert_free(&c);
    kc_section_clear(&sec);
    if (st != KC_OK) {
        kc_buf_free(chain);
        kc_buf_free(cert);
    }
    return st;
}
