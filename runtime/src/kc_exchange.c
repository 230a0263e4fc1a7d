#include "kc_exchange.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_array.h"
#include "kc_clock.h"
#include "kc_hex.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_mp.h"

#define LOGGER KC_EXCHANGE_LOGGER
#define RANDOM_BYTES 32
#define NONCE_BYTES crypto_secretbox_NONCEBYTES

static const char *const request_usages[] = {"key-encrypt-request", "key-encrypt-subscribe"};
static const char *const reply_usages[] = {"key-encrypt"};
static const char *const list_usage[] = {"key-allowlist", "key-denylist"};
static const char *const list_name[] = {"allowlist", "denylist"};

/* An allowlist or denylist: owned copies of the entries, in order. */
typedef struct trustlist {
    kc_bytes *e;
    size_t n, cap;
} trustlist;

/* random0 values of our outstanding requests for one root (§7.6). */
typedef struct randoms {
    char *root;
    uint8_t r[KC_EXCHANGE_MAX_RANDOMS][RANDOM_BYTES];
    size_t n;
} randoms;

struct kc_exchange {
    pthread_mutex_t mu;
    kc_cryptokey *ck;
    size_t nspk;
    kc_key *spk;          /* enabled signing public keys */
    kc_buf *chain;        /* own chain per key; empty: none */
    double *chain_expiry; /* its accumulated max_age (0 = never) */
    bool *direct;         /* §7.9 */
    trustlist list[2];    /* KC_LIST_ALLOW, KC_LIST_DENY */
    bool topic_on[2];
    randoms *rnd;
    size_t nrnd, rnd_cap;
    double maxage;
    double (*now_fn)(void *ctx);
    void *now_ctx;
    kc_exchange_check_fn check;
    void *check_ctx;
};

/* ---- small helpers ------------------------------------------------------------------ */

void kc_exchange_set_check(kc_exchange *x, kc_exchange_check_fn fn, void *ctx)
{
    pthread_mutex_lock(&x->mu);
    x->check = fn;
    x->check_ctx = ctx;
    pthread_mutex_unlock(&x->mu);
}

static kc_status policy_check(kc_exchange *x, const char *root, const char *usage, double t,
                              const kc_chain_result *res, kc_err *err)
{
    return x->check ? x->check(x->check_ctx, root, usage, t, res, err) : KC_OK;
}

static double now(const kc_exchange *x)
{
    return x->now_fn(x->now_ctx);
}

static kc_chain_list view(const trustlist *t)
{
    return (kc_chain_list){t->e, t->n};
}

static kc_status trustlist_add(trustlist *t, const uint8_t *p, size_t n)
{
    if (KC_ARRAY_GROW(t->e, t->n, t->cap) != KC_OK)
        return KC_ERR_NOMEM;
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        return KC_ERR_NOMEM;
    memcpy(copy, p, n);
    t->e[t->n++] = (kc_bytes){copy, n};
    return KC_OK;
}

static void trustlist_free(trustlist *t)
{
    for (size_t i = 0; i < t->n; i++)
        free((void *)t->e[i].p);
    free(t->e);
    memset(t, 0, sizeof *t);
}

static randoms *randoms_of(kc_exchange *x, const char *root, bool create)
{
    for (size_t i = 0; i < x->nrnd; i++)
        if (strcmp(x->rnd[i].root, root) == 0)
            return &x->rnd[i];
    if (!create)
        return NULL;
    if (KC_ARRAY_GROW(x->rnd, x->nrnd, x->rnd_cap) != KC_OK)
        return NULL;
    randoms *r = &x->rnd[x->nrnd];
    memset(r, 0, sizeof *r);
    if (!(r->root = strdup(root)))
        return NULL;
    x->nrnd++;
    return r;
}

/* Remembers a random0; the oldest goes when a root has too many. */
static kc_status randoms_add(kc_exchange *x, const char *root, const uint8_t r0[RANDOM_BYTES])
{
    randoms *r = randoms_of(x, root, true);
    if (!r)
        return KC_ERR_NOMEM;
    if (r->n == KC_EXCHANGE_MAX_RANDOMS) {
        memmove(r->r[0], r->r[1], (r->n - 1) * RANDOM_BYTES);
        r->n--;
    }
    memcpy(r->r[r->n++], r0, RANDOM_BYTES);
    return KC_OK;
}

static long randoms_find(kc_exchange *x, const char *root, const uint8_t *r0, size_t n)
{
    randoms *r = randoms_of(x, root, false);
    if (!r || n != RANDOM_BYTES)
        return -1;
    for (size_t i = 0; i < r->n; i++)
        if (memcmp(r->r[i], r0, RANDOM_BYTES) == 0)
            return (long)i;
    return -1;
}

static void randoms_remove(kc_exchange *x, const char *root, long i)
{
    randoms *r = randoms_of(x, root, false);
    memmove(r->r[i], r->r[i + 1], (r->n - (size_t)i - 1) * RANDOM_BYTES);
    r->n--;
}

/* mp([["topics",[root]],["usages",[...]]]) */
static kc_status leaf_poison(const char *root, const char *const *usages, size_t n, kc_buf *out,
                             kc_err *err)
{
    kc_poison_entry pe[2] = {{.name = "topics", .values = &root, .n_values = 1},
                             {.name = "usages", .values = usages, .n_values = n}};
    return kc_poison_build(pe, 2, out, err);
}

static kc_status pack_bin(const uint8_t *p, size_t n, kc_buf *out)
{
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    kc_mp_pack_bin(&mo.pk, p, n);
    kc_status st = kc_mp_out_status(&mo);
    if (st == KC_OK)
        st = kc_buf_set(out, mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);
    return st;
}

/* Signs with enabled key idx of the cryptokey (a kc_sign_fn). */
typedef struct signer {
    kc_cryptokey *ck;
    size_t idx;
} signer;

static kc_status sign_with_cryptokey(void *ctx, const uint8_t *m, size_t n, kc_buf *out,
                                     kc_err *err)
{
    signer *s = ctx;
    return kc_cryptokey_sign(s->ck, s->idx, m, n, out, err);
}

static void describe_chain_reason(const kc_err *err, const char *what, const char *root)
{
    kc_log(KC_LOG_INFO, LOGGER, "Refused %s for root=%s: %s", what, root ? root : "-",
           err->msg);
}

/* ---- messages -------------------------------------------------------------------------- */

void kc_exchange_msgs_clear(kc_exchange_msgs *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        kc_buf_free(&m->items[i].value);
    free(m->items);
    *m = (kc_exchange_msgs){0};
}

static kc_status msgs_add(kc_exchange_msgs *m, kc_buf *value, bool direct)
{
    if (KC_ARRAY_GROW(m->items, m->n, m->cap) != KC_OK)
        return KC_ERR_NOMEM;
    m->items[m->n].value = *value;
    m->items[m->n].direct = direct;
    *value = (kc_buf)KC_BUF_INIT;
    m->n++;
    return KC_OK;
}

kc_status kc_exchange_keys_add(kc_exchange_keys *k, const kc_keyidx *ki,
                               const uint8_t secret[KC_SECRET_BYTES])
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 4;
        kc_exchange_key *items = sodium_allocarray(cap, sizeof *items);
        if (!items)
            return KC_ERR_NOMEM;
        if (k->items) {
            memcpy(items, k->items, k->n * sizeof *items);
            sodium_free(k->items); /* wipes */
        }
        k->items = items;
        k->cap = cap;
    }
    k->items[k->n].ki = *ki;
    memcpy(k->items[k->n].secret, secret, KC_SECRET_BYTES);
    k->n++;
    return KC_OK;
}

void kc_exchange_keys_clear(kc_exchange_keys *k)
{
    if (!k)
        return;
    if (k->items)
        sodium_free(k->items);
    memset(k, 0, sizeof *k);
}

kc_status kc_exchange_keys_select(const kc_exchange_keys *held, const kc_keyidx *wanted,
                                  size_t n_wanted, kc_exchange_keys *out)
{
    for (size_t i = 0; i < held->n; i++)
        for (size_t j = 0; j < n_wanted; j++)
            if (kc_keyidx_equal(&held->items[i].ki, &wanted[j])) {
                kc_status st = kc_exchange_keys_add(out, &held->items[i].ki,
                                                    held->items[i].secret);
                if (st != KC_OK)
                    return st;
                break;
            }
    return KC_OK;
}

kc_status kc_exchange_msgkey_build(const kc_keyidx *kis, size_t n, kc_buf *out)
{
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, n);
    for (size_t i = 0; i < n; i++)
        kc_keyidx_pack(&mo.pk, &kis[i]);
    kc_status st = kc_mp_out_status(&mo);
    if (st == KC_OK)
        st = kc_buf_set(out, mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);
    return st;
}

kc_status kc_exchange_msgkey_parse(const uint8_t *p, size_t n, kc_keyidx **kis,
                                   size_t *count, kc_err *err)
{
    *kis = NULL;
    *count = 0;
    kc_mp_doc doc;
    kc_status st = kc_mp_decode(&doc, p, n, "key-exchange message key", err);
    if (st != KC_OK)
        return st;
    const msgpack_object *o = kc_mp_root(&doc);
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > KC_EXCHANGE_MAX_KEYS) {
        kc_mp_doc_free(&doc);
        return kc_err_set(err, KC_ERR_INVALID, "key-exchange message key: expected a list of "
                          "at most %d key indices", KC_EXCHANGE_MAX_KEYS);
    }
    *kis = calloc(o->via.array.size ? o->via.array.size : 1, sizeof **kis);
    if (!*kis) {
        kc_mp_doc_free(&doc);
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    }
    for (uint32_t i = 0; i < o->via.array.size; i++)
        kc_keyidx_from_mp(&(*kis)[i], &o->via.array.ptr[i]);
    *count = o->via.array.size;
    kc_mp_doc_free(&doc);
    return KC_OK;
}

/* The chain to put before a leaf signed with key idx: our own, or the
 * temporary one of §6.11 (then idx sends direct requests, and the operator
 * is told what to provision). */
static kc_status chain_prefix(kc_exchange *x, size_t idx, const char *root,
                              kc_temporary_kind kind, double t, kc_buf *prefix, kc_err *err)
{
    if (x->chain[idx].len)
        return kc_buf_set(prefix, x->chain[idx].data, x->chain[idx].len);
    kc_buf provision = KC_BUF_INIT, hex = KC_BUF_INIT;
    signer s = {x->ck, idx};
    kc_status st = kc_chain_temporary(sign_with_cryptokey, &s, &x->spk[idx], root, kind, t,
                                      x->maxage, prefix, &provision, err);
    if (st == KC_OK && kc_hex_append(&hex, provision.data, provision.len) == KC_OK &&
        kc_buf_append_byte(&hex, 0) == KC_OK) {
        if (kind == KC_TEMPORARY_REQUEST)
            kc_log(KC_LOG_WARNING, LOGGER, "Current signing chain is empty. Use %s to provision "
                   "access and then remove temporary root of trust from allowedlist.",
                   (const char *)hex.data);
        else
            kc_log(KC_LOG_WARNING, LOGGER, "Current signing chain for idx=%zu is empty. Use %s "
                   "to provision access and then remove temporary root of trust from "
                   "allowedlist.", idx, (const char *)hex.data);
    }
    if (st == KC_OK && kind == KC_TEMPORARY_REQUEST)
        x->direct[idx] = true;
    kc_buf_free(&provision);
    kc_buf_free(&hex);
    return st;
}

/* Signs `leaf` with every enabled key (of matchpk's type, if given) and
 * appends each chain to out. */
static kc_status sign_leaf(kc_exchange *x, const char *root, kc_temporary_kind kind,
                           const uint8_t *leaf, size_t leaf_len, const kc_key *matchpk,
                           double t, kc_exchange_msgs *out, kc_err *err)
{
    kc_buf item = KC_BUF_INIT, prefix = KC_BUF_INIT, value = KC_BUF_INIT;
    kc_status st = KC_OK;
    for (size_t idx = 0; idx < x->nspk && st == KC_OK; idx++) {
        if (matchpk && !kc_key_same_type(&x->spk[idx], matchpk))
            continue;
        st = kc_cryptokey_sign(x->ck, idx, leaf, leaf_len, &item, err);
        if (st == KC_OK)
            st = chain_prefix(x, idx, root, kind, t, &prefix, err);
        if (st == KC_OK)
            st = kc_chain_append(prefix.data, prefix.len, item.data, item.len, &value, err);
        if (st == KC_OK)
            st = msgs_add(out, &value, x->direct[idx]);
    }
    kc_buf_free(&item);
    kc_buf_free(&prefix);
    kc_buf_free(&value);
    return st;
}

/* Requests (§7.3) for the given offered-key entries. */
static kc_status sign_requests(kc_exchange *x, const char *root, const kc_pks *entries,
                               size_t nentries, const uint8_t *random0, size_t random0_len,
                               const kc_key *matchpk, kc_exchange_msgs *out, kc_err *err)
{
    double t = now(x);
    kc_buf poison = KC_BUF_INIT, r0 = KC_BUF_INIT, leaf = KC_BUF_INIT;
    kc_status st = leaf_poison(root, request_usages, 2, &poison, err);
    if (st == KC_OK)
        st = pack_bin(random0, random0_len, &r0);
    for (size_t i = 0; i < nentries && st == KC_OK; i++) {
        kc_bytes extra = {r0.data, r0.len};
        st = kc_cert_build(t + x->maxage, poison.data, poison.len, &entries[i], &extra, 1, &leaf,
                           err);
        if (st == KC_OK)
            st = sign_leaf(x, root, KC_TEMPORARY_REQUEST, leaf.data, leaf.len, matchpk, t, out,
                           err);
    }
    kc_buf_free(&poison);
    kc_buf_free(&r0);
    kc_buf_free(&leaf);
    return st;
}

kc_status kc_exchange_signed_epks(kc_exchange *x, const char *root, kc_exchange_msgs *out,
                                  kc_err *err)
{
    kc_err local;
    if (!err) /* the log lines still give the reason */
        err = &local;
    kc_epks epks = {0};
    uint8_t random0[RANDOM_BYTES];
    pthread_mutex_lock(&x->mu);
    kc_status st = kc_cryptokey_get_epks(x->ck, root, "decrypt_keys", &epks, err);
    if (st == KC_OK) {
        randombytes_buf(random0, sizeof random0);
        kc_pks entries[2] = {{true, epks.n, epks.keys}, {false, 1, &epks.legacy}};
        st = sign_requests(x, root, entries, epks.has_legacy ? 2 : 1, random0, sizeof random0,
                           NULL, out, err);
    }
    if (st == KC_OK)
        st = randoms_add(x, root, random0);
    pthread_mutex_unlock(&x->mu);
    kc_epks_clear(&epks);
    if (st != KC_OK) {
        kc_exchange_msgs_clear(out);
        kc_log(KC_LOG_WARNING, LOGGER, "Failed to build key requests for root=%s: %s", root,
               err->msg);
    }
    return st;
}

/* The first signing key met (the ROT) as the type to match, if any of ours
 * is of that type (§7.8). */
static const kc_key *matching_type(const kc_exchange *x, const kc_chain_result *res)
{
    if (res->spks.n == 0)
        return NULL;
    for (size_t i = 0; i < x->nspk; i++)
        if (kc_key_same_type(&x->spk[i], &res->spks.keys[0]))
            return &res->spks.keys[0];
    return NULL;
}

/* leaf element 3 of a request: bin(random0) */
static bool request_random0(const kc_chain_result *res, const uint8_t **p, size_t *n)
{
    return res->n_extra >= 1 && kc_mp_bytes(&res->extras[0], p, n) && *n == RANDOM_BYTES;
}

kc_status kc_exchange_encrypt_keys(kc_exchange *x, const char *root,
                                   const kc_exchange_keys *keys, const uint8_t *request,
                                   size_t n, kc_exchange_msgs *out, kc_err *err)
{
    kc_err local;
    if (!err) /* the log lines still give the reason */
        err = &local;
    kc_chain_result res = {0};
    kc_epks epks = {0};
    kc_kem_results kem = {0};
    kc_buf poison = KC_BUF_INIT, box = KC_BUF_INIT, leaf = KC_BUF_INIT;
    kc_buf randoms_pk = KC_BUF_INIT, box_pk = KC_BUF_INIT;
    const uint8_t *random0;
    size_t random0_len;
    uint8_t random1[RANDOM_BYTES], ss[crypto_hash_sha256_BYTES];
    if (keys->n == 0 || keys->n > KC_EXCHANGE_MAX_KEYS)
        return kc_err_set(err, KC_ERR_INVALID, "encrypt_keys: %zu keys to send", keys->n);
    pthread_mutex_lock(&x->mu);
    double t = now(x);
    kc_chain_list allow = view(&x->list[KC_LIST_ALLOW]), deny = view(&x->list[KC_LIST_DENY]);
    kc_status st = kc_chain_process(request, n, root, "key-encrypt-request", &allow, &deny, t,
                                    &res, err);
    if (st != KC_OK) {
        describe_chain_reason(err, "key request", root);
        goto done;
    }
    if (!request_random0(&res, &random0, &random0_len)) {
        st = kc_err_set(err, KC_ERR_INVALID, "key request for root=%s: leaf element 3 is not a "
                        "32-byte random0", root);
        kc_log(KC_LOG_INFO, LOGGER, "%s", err->msg);
        goto done;
    }
    if ((st = policy_check(x, root, "key-encrypt-request", t, &res, err)) != KC_OK)
        goto done;
    const kc_key *matchpk = matching_type(x, &res);
    st = kc_cryptokey_get_epks(x->ck, root, "encrypt_keys", &epks, err);
    if (st == KC_OK)
        st = kc_cryptokey_use_epks(x->ck, root, "encrypt_keys", res.key.keys, res.key.n, true,
                                   &kem, err);
    if (st == KC_OK && kem.n == 0) {
        kc_log(KC_LOG_INFO, LOGGER, "No compatible key exchange versions found.");
        st = kc_err_set(err, KC_ERR_NOTFOUND, "key request for root=%s: no offered key "
                        "exchange version is usable", root);
    }
    if (st != KC_OK)
        goto done;

    randombytes_buf(random1, sizeof random1);
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)root, strlen(root));
    crypto_hash_sha256_update(&h, random0, random0_len);
    crypto_hash_sha256_update(&h, random1, sizeof random1);
    crypto_hash_sha256_update(&h, kem.items[0].secret, kem.items[0].len);
    crypto_hash_sha256_final(&h, ss);

    /* inner = mp([ki_0, bin(S_0), ...]); box = nonce || secretbox(inner) */
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, 2 * keys->n);
    for (size_t i = 0; i < keys->n; i++) {
        kc_keyidx_pack(&mo.pk, &keys->items[i].ki);
        kc_mp_pack_bin(&mo.pk, keys->items[i].secret, KC_SECRET_BYTES);
    }
    st = kc_mp_out_status(&mo);
    if (st == KC_OK)
        st = kc_buf_reserve(&box, NONCE_BYTES + crypto_secretbox_MACBYTES + mo.buf.len);
    if (st == KC_OK) {
        randombytes_buf(box.data, NONCE_BYTES);
        crypto_secretbox_easy(box.data + NONCE_BYTES, mo.buf.data, mo.buf.len, box.data, ss);
        box.len = NONCE_BYTES + crypto_secretbox_MACBYTES + mo.buf.len;
    }
    kc_mp_out_free(&mo);

    /* leaf = [max_age, poison, [epk], [random0, random1], box] */
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, 2);
    kc_mp_pack_bin(&mo.pk, random0, random0_len);
    kc_mp_pack_bin(&mo.pk, random1, sizeof random1);
    if (st == KC_OK)
        st = kc_mp_out_status(&mo);
    if (st == KC_OK)
        st = kc_buf_set(&randoms_pk, mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);
    if (st == KC_OK)
        st = pack_bin(box.data, box.len, &box_pk);
    if (st == KC_OK)
        st = leaf_poison(root, reply_usages, 1, &poison, err);
    if (st == KC_OK) {
        kc_pks epk = {true, 1, &kem.items[0].ours};
        kc_bytes extra[2] = {{randoms_pk.data, randoms_pk.len}, {box_pk.data, box_pk.len}};
        st = kc_cert_build(t + x->maxage, poison.data, poison.len, &epk, extra, 2, &leaf, err);
    }
    if (st == KC_OK)
        st = sign_leaf(x, root, KC_TEMPORARY_REPLY, leaf.data, leaf.len, matchpk, t, out, err);
done:
    pthread_mutex_unlock(&x->mu);
    sodium_memzero(ss, sizeof ss);
    kc_chain_result_free(&res);
    kc_epks_clear(&epks);
    kc_kem_results_clear(&kem);
    kc_buf_free(&poison);
    kc_buf_free(&box);
    kc_buf_free(&leaf);
    kc_buf_free(&randoms_pk);
    kc_buf_free(&box_pk);
    if (st != KC_OK)
        kc_exchange_msgs_clear(out);
    return st;
}

/* Opens the box with one candidate secret and reads the (ki, secret) pairs.
 * false if it does not open or fails the pairing check (upstream's dict:
 * at least one pair, no index twice, nothing left over). */
static bool open_box(const char *root, const uint8_t *random0, const uint8_t *random1,
                     const kc_kem_shared *cand, const uint8_t *box, size_t box_len,
                     kc_exchange_keys *out)
{
    uint8_t ss[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)root, strlen(root));
    crypto_hash_sha256_update(&h, random0, RANDOM_BYTES);
    crypto_hash_sha256_update(&h, random1, RANDOM_BYTES);
    crypto_hash_sha256_update(&h, cand->secret, cand->len);
    crypto_hash_sha256_final(&h, ss);
    size_t mlen = box_len - NONCE_BYTES - crypto_secretbox_MACBYTES;
    uint8_t *plain = sodium_malloc(mlen ? mlen : 1);
    bool ok = plain && crypto_secretbox_open_easy(plain, box + NONCE_BYTES, box_len - NONCE_BYTES,
                                                  box, ss) == 0;
    sodium_memzero(ss, sizeof ss);
    kc_mp_doc doc = {0};
    ok = ok && kc_mp_decode(&doc, plain, mlen, "key reply box", NULL) == KC_OK;
    const msgpack_object *o = ok ? kc_mp_root(&doc) : NULL;
    ok = ok && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size >= 2 &&
         o->via.array.size % 2 == 0 && o->via.array.size <= 2 * KC_EXCHANGE_MAX_KEYS;
    for (uint32_t i = 0; ok && i < o->via.array.size; i += 2) {
        kc_keyidx ki;
        ok = kc_keyidx_from_mp(&ki, &o->via.array.ptr[i]) && ki.type != KC_KEYIDX_OTHER;
        for (uint32_t j = 0; ok && j < i; j += 2) { /* a dict keeps one of duplicates */
            kc_keyidx prev;
            kc_keyidx_from_mp(&prev, &o->via.array.ptr[j]);
            ok = !kc_keyidx_equal(&ki, &prev);
        }
    }
    for (uint32_t i = 0; ok && i < o->via.array.size; i += 2) {
        kc_keyidx ki;
        const uint8_t *s;
        size_t sl;
        kc_keyidx_from_mp(&ki, &o->via.array.ptr[i]);
        if (!kc_mp_bytes(&o->via.array.ptr[i + 1], &s, &sl) || sl != KC_SECRET_BYTES) {
            char d[140];
            kc_log(KC_LOG_WARNING, LOGGER, "Ignoring key index %s for root=%s: its key is not "
                   "32 bytes", kc_keyidx_describe(&ki, d, sizeof d), root);
            continue;
        }
        ok = kc_exchange_keys_add(out, &ki, s) == KC_OK;
    }
    if (doc.live)
        kc_mp_doc_free(&doc);
    if (plain) {
        sodium_memzero(plain, mlen ? mlen : 1);
        sodium_free(plain);
    }
    if (!ok)
        kc_exchange_keys_clear(out);
    return ok;
}

static kc_status unknown_random0(const char *root, const uint8_t *random0, size_t r0n,
                                 kc_err *err)
{
    char hex[2 * RANDOM_BYTES + 1];
    kc_hex(random0, r0n < RANDOM_BYTES ? r0n : RANDOM_BYTES, hex);
    kc_log(KC_LOG_INFO, LOGGER, "unknown (or already used) random0 value in decrypt_keys: %s",
           hex);
    return kc_err_set(err, KC_ERR_NOTFOUND, "key reply for root=%s answers no outstanding "
                      "request of ours", root);
}

/* Every consumer of a root reads every reply on <root>.keys, most of them
 * answers to other consumers. Their random0, read before the chain is
 * verified, tells them apart for a msgpack parse instead of a chain's
 * signatures, which made verification the bound of a key exchange with
 * many consumers. A reply that passes is verified in full (and its
 * random0 looked up again from the verified leaf); one whose leaf cannot
 * be read goes the full way too, for the reason to be reported. */
static bool answers_another_request(kc_exchange *x, const char *root, const uint8_t *reply,
                                    size_t n, kc_err *err, kc_status *st)
{
    kc_cert leaf;
    if (kc_chain_leaf_unverified(reply, n, &leaf) != KC_OK)
        return false;
    const msgpack_object *rs = leaf.n_extra >= 1 ? &leaf.extra[0] : NULL;
    const uint8_t *random0;
    size_t r0n;
    bool other = rs && rs->type == MSGPACK_OBJECT_ARRAY && rs->via.array.size >= 1 &&
                 kc_mp_bytes(&rs->via.array.ptr[0], &random0, &r0n) &&
                 randoms_find(x, root, random0, r0n) < 0;
    if (other)
        *st = unknown_random0(root, random0, r0n, err);
    kc_cert_free(&leaf);
    return other;
}

kc_status kc_exchange_decrypt_keys(kc_exchange *x, const char *root, const uint8_t *reply,
                                   size_t n, kc_exchange_keys *out, kc_err *err)
{
    kc_err local;
    if (!err) /* the log lines still give the reason */
        err = &local;
    kc_chain_result res = {0};
    kc_kem_results cands = {0};
    kc_status st;
    pthread_mutex_lock(&x->mu);
    if (answers_another_request(x, root, reply, n, err, &st))
        goto done;
    kc_chain_list allow = view(&x->list[KC_LIST_ALLOW]), deny = view(&x->list[KC_LIST_DENY]);
    st = kc_chain_process(reply, n, root, "key-encrypt", &allow, &deny, now(x), &res, err);
    if (st != KC_OK) {
        describe_chain_reason(err, "key reply", root);
        goto done;
    }
    const msgpack_object *rs = res.n_extra >= 2 ? &res.extras[0] : NULL;
    const uint8_t *random0, *random1, *box;
    size_t r0n, r1n, boxn;
    if (!rs || rs->type != MSGPACK_OBJECT_ARRAY || rs->via.array.size < 2 ||
        !kc_mp_bytes(&rs->via.array.ptr[0], &random0, &r0n) ||
        !kc_mp_bytes(&rs->via.array.ptr[1], &random1, &r1n) || r1n != RANDOM_BYTES ||
        !kc_mp_bytes(&res.extras[1], &box, &boxn) ||
        boxn < NONCE_BYTES + crypto_secretbox_MACBYTES) {
        st = kc_err_set(err, KC_ERR_INVALID, "key reply for root=%s: expected [random0, random1] "
                        "and a box after the leaf key (Unexpected number of chain elements)",
                        root);
        kc_log(KC_LOG_INFO, LOGGER, "%s", err->msg);
        goto done;
    }
    long at = randoms_find(x, root, random0, r0n);
    if (at < 0) {
        st = unknown_random0(root, random0, r0n, err);
        goto done;
    }
    /* Only replies to our own requests reach the policy (every consumer
     * sees every reply of the root). */
    if ((st = policy_check(x, root, "key-encrypt", now(x), &res, err)) != KC_OK)
        goto done;
    st = kc_cryptokey_use_epks(x->ck, root, "decrypt_keys", res.key.keys, res.key.n, false,
                               &cands, err);
    if (st != KC_OK)
        goto done;
    for (size_t i = 0; i < cands.n; i++) /* B8: each on the original ciphertext */
        if (open_box(root, random0, random1, &cands.items[i], box, boxn, out)) {
            kc_kem_results none = {0};
            kc_cryptokey_use_epks(x->ck, root, "decrypt_keys", NULL, 0, true, &none, NULL);
            kc_kem_results_clear(&none);
            randoms_remove(x, root, at);
            goto done;
        }
    kc_log(KC_LOG_INFO, LOGGER, "no valid decryption keys computed in decrypt_keys, %zu tried",
           cands.n);
    st = kc_err_set(err, KC_ERR_CRYPTO, "key reply for root=%s: no candidate key opens it", root);
done:
    pthread_mutex_unlock(&x->mu);
    kc_chain_result_free(&res);
    kc_kem_results_clear(&cands);
    return st;
}

kc_status kc_exchange_reencrypt_request(kc_exchange *x, const char *root,
                                        const kc_chain_list *allowlist,
                                        const kc_chain_list *denylist, const uint8_t *request,
                                        size_t n, kc_buf *out, kc_err *err)
{
    kc_err local;
    if (!err) /* the log lines still give the reason */
        err = &local;
    kc_chain_result res = {0};
    kc_exchange_msgs msgs = {0};
    const uint8_t *random0;
    size_t random0_len;
    pthread_mutex_lock(&x->mu);
    kc_chain_list allow = allowlist ? *allowlist : view(&x->list[KC_LIST_ALLOW]);
    kc_chain_list deny = denylist ? *denylist : view(&x->list[KC_LIST_DENY]);
    kc_status st = kc_chain_process(request, n, root, "key-encrypt-subscribe", &allow, &deny,
                                    now(x), &res, err);
    if (st != KC_OK) {
        describe_chain_reason(err, "subscription request", root);
    } else if (!request_random0(&res, &random0, &random0_len)) {
        st = kc_err_set(err, KC_ERR_INVALID, "subscription request for root=%s: leaf element 3 "
                        "is not a 32-byte random0", root);
        kc_log(KC_LOG_INFO, LOGGER, "%s", err->msg);
    } else {
        st = policy_check(x, root, "key-encrypt-subscribe", now(x), &res, err);
        if (st == KC_OK)
            st = sign_requests(x, root, &res.key, 1, random0, random0_len,
                               matching_type(x, &res), &msgs, err);
        if (st == KC_OK && msgs.n == 0)
            st = sign_requests(x, root, &res.key, 1, random0, random0_len, NULL, &msgs, err);
        if (st == KC_OK && msgs.n == 0)
            st = kc_err_set(err, KC_ERR_STATE, "controller has no signing key");
        if (st == KC_OK) {
            kc_buf_free(out);
            *out = msgs.items[0].value;
            msgs.items[0].value = (kc_buf)KC_BUF_INIT;
        }
    }
    pthread_mutex_unlock(&x->mu);
    kc_exchange_msgs_clear(&msgs);
    kc_chain_result_free(&res);
    return st;
}

kc_status kc_exchange_check_chain(kc_exchange *x, const char *root, const char *usage,
                                  const uint8_t *chain, size_t n, kc_chain_result *out,
                                  kc_err *err)
{
    pthread_mutex_lock(&x->mu);
    kc_chain_list allow = view(&x->list[KC_LIST_ALLOW]), deny = view(&x->list[KC_LIST_DENY]);
    double t = now(x);
    kc_status st = kc_chain_process(chain, n, root, usage, &allow, &deny, t, out, err);
    if (st == KC_OK)   /* variants are refused by the same policies as the default exchange */
        st = policy_check(x, root, usage, t, out, err);
    pthread_mutex_unlock(&x->mu);
    return st;
}

/* ---- own chains ------------------------------------------------------------------------- */

kc_status kc_exchange_update_own_chain(kc_exchange *x, const uint8_t *chain, size_t n,
                                       size_t *idx, kc_err *err)
{
    kc_err local;
    if (!err) /* the log lines still give the reason */
        err = &local;
    kc_chain_result res = {0}, direct = {0};
    kc_buf printable = KC_BUF_INIT;
    pthread_mutex_lock(&x->mu);
    kc_chain_list allow = view(&x->list[KC_LIST_ALLOW]), deny = view(&x->list[KC_LIST_DENY]);
    double t = now(x);
    kc_status st = kc_chain_process(chain, n, NULL, NULL, &allow, &deny, t, &res, err);
    size_t i = x->nspk;
    if (st != KC_OK) {
        kc_log(KC_LOG_WARNING, LOGGER, "Ignoring an invalid chain for this node: %s",
               err->msg);
        goto done;
    }
    if (!res.key.is_list && res.key.n == 1)
        for (i = 0; i < x->nspk; i++)
            if (kc_key_equal(&x->spk[i], &res.key.keys[0]))
                break;
    if (i == x->nspk) {
        kc_log(KC_LOG_WARNING, LOGGER, "New chain does not match a current signing public key");
        st = kc_err_set(err, KC_ERR_DENIED, "the chain does not certify any of this node's "
                        "signing keys");
        goto done;
    }
    if (x->chain[i].len && !kc_chain_expiry_not_earlier(res.max_age, x->chain_expiry[i])) {
        kc_log(KC_LOG_WARNING, LOGGER, "New chain for idx=%zu has shorter expiry time than "
               "current chain.", i);
        st = kc_err_set(err, KC_ERR_DENIED, "the chain for key %zu expires earlier than the "
                        "current one", i);
        goto done;
    }
    if ((st = kc_buf_set(&x->chain[i], chain, n)) != KC_OK)
        goto done;
    x->chain_expiry[i] = res.max_age;
    kc_chain_describe(chain, n, &printable);
    kc_buf_append_byte(&printable, 0);
    /* news, not a problem (every start says it): INFO, upstream's wording */
    kc_log(KC_LOG_INFO, LOGGER, "Utilizing new chain for idx=%zu: %s", i,
           printable.data ? (const char *)printable.data : "");
    x->direct[i] = kc_chain_process(chain, n, NULL, "key-encrypt-request", &allow, &deny, t,
                                    &direct, NULL) == KC_OK;
    kc_log(KC_LOG_INFO, LOGGER, x->direct[i]
               ? "  New chain for idx=%zu supports direct key requests. Enabling."
               : "  New chain for idx=%zu does not support direct key requests. Disabling.", i);
    if (idx)
        *idx = i;
done:
    pthread_mutex_unlock(&x->mu);
    kc_chain_result_free(&res);
    kc_chain_result_free(&direct);
    kc_buf_free(&printable);
    return st;
}

bool kc_exchange_direct(kc_exchange *x, size_t idx)
{
    pthread_mutex_lock(&x->mu);
    bool d = idx < x->nspk && x->direct[idx];
    pthread_mutex_unlock(&x->mu);
    return d;
}

kc_status kc_exchange_own_chain(kc_exchange *x, size_t idx, kc_buf *out)
{
    pthread_mutex_lock(&x->mu);
    kc_status st = idx < x->nspk ? kc_buf_set(out, x->chain[idx].data, x->chain[idx].len)
                                 : KC_ERR_NOTFOUND;
    pthread_mutex_unlock(&x->mu);
    return st;
}

/* ---- allowlist and denylist topics --------------------------------------------------------- */

kc_status kc_exchange_add_to_list(kc_exchange *x, kc_list_kind which, const uint8_t *msg,
                                  size_t n, kc_buf *entry, kc_err *err)
{
    kc_err local;
    if (!err) /* the log lines still give the reason */
        err = &local;
    if (!x->topic_on[which])
        return kc_err_set(err, KC_ERR_STATE, "the %s topic is switched off", list_name[which]);
    kc_chain_result res = {0};
    kc_cert cert = {0};
    bool parsed = false;
    char kd[160];
    pthread_mutex_lock(&x->mu);
    kc_chain_list allow = view(&x->list[KC_LIST_ALLOW]), deny = view(&x->list[KC_LIST_DENY]);
    kc_chain_list target = view(&x->list[which]);
    const uint8_t *p;
    size_t pn;
    long at = -1;
    kc_status st = kc_chain_process(msg, n, NULL, list_usage[which], &allow, &deny, now(x), &res,
                                    err);
    if (st != KC_OK) {
        kc_log(KC_LOG_INFO, LOGGER, "Refused %s message: %s", list_name[which],
               err->msg);
        goto done;
    }
    if (res.n_extra < 1) { /* upstream: nothing, silently */
        st = kc_err_set(err, KC_ERR_NOTFOUND, "%s message carries no entry", list_name[which]);
        goto done;
    }
    if (!kc_mp_bytes(&res.extras[0], &p, &pn) ||
        (st = kc_cert_parse(&cert, p, pn, err)) != KC_OK) {
        st = kc_err_set(err, KC_ERR_INVALID, "%s message: the entry is not a certificate",
                        list_name[which]);
        kc_log(KC_LOG_INFO, LOGGER, "%s", err->msg);
        goto done;
    }
    parsed = true;
    if (cert.key.is_list || res.key.is_list || res.key.n != 1 ||
        !kc_key_equal(&cert.key.keys[0], &res.key.keys[0])) {
        kc_log(KC_LOG_INFO, LOGGER, "Mismatch in keys for %s %s", list_name[which],
               kc_key_describe(&cert.key.keys[0], kd, sizeof kd));
        st = kc_err_set(err, KC_ERR_DENIED, "%s message: the entry's key is not the signed key",
                        list_name[which]);
        goto done;
    }
    st = kc_key_in_list(&cert.key.keys[0], &target, &at, err);
    if (st == KC_OK && at >= 0) {
        kc_log(KC_LOG_INFO, LOGGER, "Key %s already in %s",
               kc_key_describe(&cert.key.keys[0], kd, sizeof kd), list_name[which]);
        st = kc_err_set(err, KC_ERR_DENIED, "the key is already in the %s", list_name[which]);
    }
    if (st == KC_OK)
        st = trustlist_add(&x->list[which], p, pn);
    if (st == KC_OK)
        st = kc_buf_set(entry, p, pn);
    if (st == KC_OK)
        kc_log(KC_LOG_WARNING, LOGGER, "Added key %s to %s",
               kc_key_describe(&cert.key.keys[0], kd, sizeof kd), list_name[which]);
done:
    pthread_mutex_unlock(&x->mu);
    if (parsed)
        kc_cert_free(&cert);
    kc_chain_result_free(&res);
    return st;
}

size_t kc_exchange_list_size(kc_exchange *x, kc_list_kind which)
{
    pthread_mutex_lock(&x->mu);
    size_t n = x->list[which].n;
    pthread_mutex_unlock(&x->mu);
    return n;
}

bool kc_exchange_trusts_temporary_rot(kc_exchange *x)
{
    bool found = false;
    pthread_mutex_lock(&x->mu);
    for (size_t i = 0; i < x->list[KC_LIST_ALLOW].n && !found; i++)
        found = kc_chain_entry_is_temporary_rot(x->list[KC_LIST_ALLOW].e[i].p,
                                                x->list[KC_LIST_ALLOW].e[i].n);
    pthread_mutex_unlock(&x->mu);
    return found;
}

/* ---- life cycle ------------------------------------------------------------------------------- */

void kc_exchange_config_init(kc_exchange_config *c)
{
    memset(c, 0, sizeof *c);
    c->maxage = KC_EXCHANGE_MAXAGE;
    c->allowlist_topic = c->denylist_topic = true;
}

kc_status kc_exchange_new(const kc_exchange_config *c, kc_exchange **out, kc_err *err)
{
    *out = NULL;
    if (!c->cryptokey)
        return kc_err_set(err, KC_ERR_INVALID, "key exchange: no cryptokey");
    kc_exchange *x = calloc(1, sizeof *x);
    if (!x)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&x->mu, NULL);
    x->ck = c->cryptokey;
    x->maxage = c->maxage > 0 ? c->maxage : KC_EXCHANGE_MAXAGE;
    x->now_fn = c->now_fn ? c->now_fn : kc_clock_wall_fn;
    x->now_ctx = c->now_ctx;
    x->topic_on[KC_LIST_ALLOW] = c->allowlist_topic;
    x->topic_on[KC_LIST_DENY] = c->denylist_topic;
    x->nspk = kc_cryptokey_num_spk(c->cryptokey);
    size_t n = x->nspk ? x->nspk : 1;
    x->spk = calloc(n, sizeof *x->spk);
    x->chain = calloc(n, sizeof *x->chain);
    x->chain_expiry = calloc(n, sizeof *x->chain_expiry);
    x->direct = calloc(n, sizeof *x->direct);
    kc_status st = x->spk && x->chain && x->chain_expiry && x->direct
                       ? KC_OK
                       : kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < x->nspk && st == KC_OK; i++) {
        st = kc_cryptokey_get_spk(c->cryptokey, i, &x->spk[i], err);
        x->direct[i] = true;
    }
    for (size_t i = 0; i < c->n_allowlist && st == KC_OK; i++)
        st = trustlist_add(&x->list[KC_LIST_ALLOW], c->allowlist[i].p, c->allowlist[i].n);
    for (size_t i = 0; i < c->n_denylist && st == KC_OK; i++)
        st = trustlist_add(&x->list[KC_LIST_DENY], c->denylist[i].p, c->denylist[i].n);
    if (st != KC_OK) {
        kc_exchange_free(x);
        return st == KC_ERR_NOMEM ? kc_err_set(err, st, "out of memory") : st;
    }
    *out = x;
    return KC_OK;
}

void kc_exchange_free(kc_exchange *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->nspk; i++) {
        if (x->spk)
            kc_key_clear(&x->spk[i]);
        if (x->chain)
            kc_buf_free(&x->chain[i]);
    }
    free(x->spk);
    free(x->chain);
    free(x->chain_expiry);
    free(x->direct);
    trustlist_free(&x->list[0]);
    trustlist_free(&x->list[1]);
    for (size_t i = 0; i < x->nrnd; i++)
        free(x->rnd[i].root);
    free(x->rnd);
    pthread_mutex_destroy(&x->mu);
    free(x);
}
