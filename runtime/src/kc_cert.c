/* kc_cert.c — certificates and chains of signed certificates (spec §6.1):
 * parse, build, sign, append, describe (kc_chain.h). */
#include "kc_chain_impl.h"
#include "kc_hex.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* [max_age, poison, key, ...] fields other than the key. */
kc_status kc_cert_fields(const msgpack_object *o, msgpack_object *age, kc_bytes *poison,
                             char *why, size_t whylen)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3) {
        kc_whyf(why, whylen, "not a certificate [max_age, poison, key, ...]");
        return KC_ERR_INVALID;
    }
    if (!kc_num_ok(&o->via.array.ptr[0])) {
        kc_whyf(why, whylen, "max_age is not a number");
        return KC_ERR_INVALID;
    }
    if (!kc_mp_bytes(&o->via.array.ptr[1], &poison->p, &poison->n)) {
        kc_whyf(why, whylen, "poison is not a byte string");
        return KC_ERR_INVALID;
    }
    *age = o->via.array.ptr[0];
    return KC_OK;
}

kc_status kc_cert_key_field(const msgpack_object *o, kc_pks *key, char *why, size_t whylen)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3) {
        kc_whyf(why, whylen, "not a certificate [max_age, poison, key, ...]");
        return KC_ERR_INVALID;
    }
    kc_err e;
    kc_err_clear(&e);
    kc_status st = kc_get_pks(key, &o->via.array.ptr[2], &e);
    if (st != KC_OK)
        kc_whyf(why, whylen, "certified key: %s", e.msg[0] ? e.msg : kc_status_str(st));
    return st;
}

kc_status kc_cert_parse(kc_cert *c, const uint8_t *p, size_t n, kc_err *err)
{
    memset(c, 0, sizeof *c);
    kc_status st = kc_mp_decode(&c->doc, p, n, "certificate", err);
    if (st != KC_OK)
        return st;
    const msgpack_object *o = kc_mp_root(&c->doc);
    char why[KC_WHY_MAX];
    if ((st = kc_cert_fields(o, &c->max_age, &c->poison, why, sizeof why)) != KC_OK ||
        (st = kc_cert_key_field(o, &c->key, why, sizeof why)) != KC_OK) {
        kc_mp_doc_free(&c->doc);
        return kc_err_set(err, st, "certificate: %s", why);
    }
    c->extra = o->via.array.ptr + 3;
    c->n_extra = o->via.array.size - 3;
    return KC_OK;
}

void kc_cert_free(kc_cert *c)
{
    if (!c)
        return;
    kc_pks_clear(&c->key);
    kc_mp_doc_free(&c->doc);
    memset(c, 0, sizeof *c);
}

double kc_cert_max_age(const kc_cert *c)
{
    return kc_num_d(&c->max_age);
}

kc_status kc_cert_build(double max_age, const uint8_t *poison, size_t poison_len,
                        const kc_pks *key, const kc_bytes *extra, size_t n_extra,
                        kc_buf *out, kc_err *err)
{
    if (!key || key->n == 0)
        return kc_err_set(err, KC_ERR_INVALID, "certificate: no key to certify");
    kc_mp_doc check;
    if (kc_mp_decode(&check, poison, poison_len, "certificate poison", err) != KC_OK)
        return KC_ERR_INVALID;
    kc_mp_doc_free(&check);
    for (size_t i = 0; i < n_extra; i++) {
        if (kc_mp_decode(&check, extra[i].p, extra[i].n, "certificate extra", err) != KC_OK)
            return kc_err_prefix(err, "extra %zu: ", i + 1);
        kc_mp_doc_free(&check);
    }
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, 3 + n_extra);
    if (max_age == 0)
        msgpack_pack_int(&mo.pk, 0);
    else
        msgpack_pack_double(&mo.pk, max_age);
    kc_mp_pack_bin(&mo.pk, poison, poison_len);
    kc_pks_pack(&mo.pk, key);
    for (size_t i = 0; i < n_extra && !mo.failed; i++) /* already packed objects */
        mo.failed = kc_buf_append(&mo.buf, extra[i].p, extra[i].n) != KC_OK;
    kc_status st = kc_mp_out_take(&mo, out);
    return st == KC_OK ? KC_OK : kc_err_set(err, st, "certificate: out of memory");
}

kc_status kc_chain_entry_build(double max_age, const uint8_t *poison, size_t poison_len,
                               const kc_key *key, kc_buf *out, kc_err *err)
{
    kc_pks one = {false, 1, (kc_key *)key};
    return kc_cert_build(max_age, poison, poison_len, &one, NULL, 0, out, err);
}

kc_status kc_cert_sign(const kc_key *sk, const uint8_t *cert, size_t n, kc_buf *item,
                       kc_err *err)
{
    kc_status st = kc_sign(sk, cert, n, item);
    if (st == KC_ERR_UNSUPPORTED)
        return kc_err_set(err, st, "signing key version %d cannot sign in this build",
                          sk->version);
    if (st != KC_OK)
        return kc_err_set(err, st, "cannot sign certificate: %s", kc_status_str(st));
    return KC_OK;
}

/* ---- chains ------------------------------------------------------------------------ */

kc_status kc_chain_parse(kc_chain_items *items, const uint8_t *chain, size_t n, kc_err *err)
{
    memset(items, 0, sizeof *items);
    kc_status st = kc_mp_decode(&items->doc, chain, n, "chain", err);
    if (st != KC_OK)
        return st;
    const msgpack_object *o = kc_mp_root(&items->doc);
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        st = kc_err_set(err, KC_ERR_INVALID, "chain: not a list of signed items");
    } else if (o->via.array.size > KC_CHAIN_MAX_ITEMS) {
        st = kc_err_set(err, KC_ERR_INVALID, "chain: %u items, more than the limit of %d",
                        o->via.array.size, KC_CHAIN_MAX_ITEMS);
    } else {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (!kc_mp_bytes(&o->via.array.ptr[i], &items->item[i].p, &items->item[i].n)) {
                st = kc_err_set(err, KC_ERR_INVALID, "chain item %u: not a byte string", i + 1);
                break;
            }
        }
        items->n = o->via.array.size;
    }
    if (st != KC_OK)
        kc_chain_items_free(items);
    return st;
}

void kc_chain_items_free(kc_chain_items *items)
{
    if (!items)
        return;
    kc_mp_doc_free(&items->doc);
    items->n = 0;
}

kc_status kc_chain_build(const kc_bytes *items, size_t n, kc_buf *out, kc_err *err)
{
    if (n > KC_CHAIN_MAX_ITEMS)
        return kc_err_set(err, KC_ERR_INVALID, "chain: %zu items, more than the limit of %d", n,
                          KC_CHAIN_MAX_ITEMS);
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, n);
    for (size_t i = 0; i < n; i++)
        kc_mp_pack_bin(&mo.pk, items[i].p, items[i].n);
    kc_status st = kc_mp_out_take(&mo, out);
    return st == KC_OK ? KC_OK : kc_err_set(err, st, "chain: out of memory");
}

kc_status kc_chain_append(const uint8_t *chain, size_t n, const uint8_t *item,
                          size_t item_len, kc_buf *out, kc_err *err)
{
    kc_chain_items items;
    memset(&items, 0, sizeof items);
    if (n > 0 && kc_chain_parse(&items, chain, n, err) != KC_OK)
        return KC_ERR_INVALID;
    kc_status st;
    if (items.n >= KC_CHAIN_MAX_ITEMS) {
        st = kc_err_set(err, KC_ERR_INVALID, "chain: already %zu items, the limit", items.n);
    } else {
        kc_bytes all[KC_CHAIN_MAX_ITEMS];
        memcpy(all, items.item, items.n * sizeof(kc_bytes));
        all[items.n] = (kc_bytes){item, item_len};
        kc_buf tmp = KC_BUF_INIT; /* out may alias chain */
        st = kc_chain_build(all, items.n + 1, &tmp, err);
        if (st == KC_OK)
            st = kc_buf_set(out, tmp.data, tmp.len);
        kc_buf_free(&tmp);
    }
    kc_chain_items_free(&items);
    return st;
}

/* The certificate inside a signed item, without verifying: after a v1
 * signature, after a v4 one, or unsigned (a self-signed pair's first item). */
static kc_status item_cert_unverified(const kc_bytes *item, kc_cert *c)
{
    static const size_t offsets[] = {KC_SIGNATURE_BYTES, 17088 + KC_SIGNATURE_BYTES, 0};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++)
        if (item->n > offsets[i] &&
            kc_cert_parse(c, item->p + offsets[i], item->n - offsets[i], NULL) == KC_OK)
            return KC_OK;
    return KC_ERR_INVALID;
}

void kc_put_cert(kc_buf *b, const msgpack_object *age, const kc_bytes *poison,
                     const kc_pks *key)
{
    char desc[200], t[48];
    kc_buf_append(b, "[Key: ", 6);
    for (size_t i = 0; i < key->n; i++) {
        if (i)
            kc_buf_append(b, " ", 1);
        kc_put_fmt(b, "%s", kc_key_describe(&key->keys[i], desc, sizeof desc));
    }
    kc_put_fmt(b, ", Expires: %s, Poison: ", kc_time_str(kc_num_d(age), t));
    kc_put_poison(b, poison);
    kc_buf_append(b, "]", 1);
}

kc_status kc_chain_describe(const uint8_t *chain, size_t n, kc_buf *out)
{
    kc_buf_reset(out);
    kc_chain_items items;
    kc_err e;
    if (kc_chain_parse(&items, chain, n, &e) != KC_OK) {
        kc_put_fmt(out, "<%s>", e.msg);
        kc_buf_str(out);
        return KC_OK;
    }
    for (size_t i = 0; i < items.n; i++) {
        kc_cert c;
        if (i)
            kc_buf_append(out, " ", 1);
        if (item_cert_unverified(&items.item[i], &c) != KC_OK) {
            kc_put_fmt(out, "[item %zu: unreadable, %zu bytes]", i + 1, items.item[i].n);
            continue;
        }
        kc_put_cert(out, &c.max_age, &c.poison, &c.key);
        kc_cert_free(&c);
    }
    kc_chain_items_free(&items);
    kc_buf_str(out);
    return KC_OK;
}

kc_status kc_chain_signer_fingerprint(const uint8_t *chain, size_t n, char out[65])
{
    snprintf(out, 65, "unknown");
    kc_chain_items items;
    if (kc_chain_parse(&items, chain, n, NULL) != KC_OK)
        return KC_ERR_INVALID;
    kc_status st = KC_ERR_INVALID;
    kc_cert c;
    if (items.n >= 2 && item_cert_unverified(&items.item[items.n - 2], &c) == KC_OK) {
        kc_buf b = KC_BUF_INIT;
        if (c.key.n == 1 && c.key.keys[0].kind == KC_SIGN_PK &&
            kc_key_bytes(&c.key.keys[0], &b) == KC_OK) {
            uint8_t d[crypto_hash_sha256_BYTES];
            crypto_hash_sha256(d, b.data, b.len);
            kc_hex(d, sizeof d, out);
            st = KC_OK;
        }
        kc_buf_free(&b);
        kc_cert_free(&c);
    }
    kc_chain_items_free(&items);
    return st;
}

kc_status kc_chain_leaf_unverified(const uint8_t *chain, size_t n, kc_cert *leaf)
{
    kc_chain_items items;
    if (kc_chain_parse(&items, chain, n, NULL) != KC_OK)
        return KC_ERR_INVALID;
    kc_status st = items.n ? item_cert_unverified(&items.item[items.n - 1], leaf)
                           : KC_ERR_INVALID;
    kc_chain_items_free(&items);
    return st;
}

kc_status kc_chain_min_expiry(const uint8_t *chain, size_t n, double *out, kc_err *err)
{
    kc_chain_items items;
    if (kc_chain_parse(&items, chain, n, err) != KC_OK)
        return KC_ERR_INVALID;
    double m = 0;
    kc_status st = KC_OK;
    for (size_t i = 0; i < items.n; i++) {
        kc_cert c;
        if (item_cert_unverified(&items.item[i], &c) != KC_OK) {
            st = kc_err_set(err, KC_ERR_INVALID, "chain item %zu: no readable certificate", i + 1);
            break;
        }
        double a = kc_cert_max_age(&c);
        if (a > 0 && (m == 0 || a < m))
            m = a;
        kc_cert_free(&c);
    }
    kc_chain_items_free(&items);
    if (st == KC_OK)
        *out = m;
    return st;
}

bool kc_chain_expiry_not_earlier(double new_max_age, double current_max_age)
{
    if (new_max_age == 0)
        return true;
    if (current_max_age == 0)
        return false;
    return new_max_age >= current_max_age;
}
