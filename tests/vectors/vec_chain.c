/* chain.json: process_chain on every vector. Compares ok/not-ok and, when
 * accepted, max_age, poison, key, extra, pk_packed and spks byte for byte.
 * Upstream's `reason` is not compared (it is only its last root's reason).
 *
 * Vectors where upstream raised the B1 type-mismatch errors (TypeError of a
 * bytes regex against a str query, UnicodeDecodeError of a multi-byte first
 * character) record upstream's bug: where our intended result differs (we
 * accept), they are reported as divergences citing B1; the intended results
 * are asserted in tests/unit/test_chain.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_chain.h"
#include "kc_hex.h"
#include "vec.h"

#define MAX_LIST 16

typedef struct lists {
    kc_buf buf[MAX_LIST];
    kc_bytes e[MAX_LIST];
    kc_chain_list l;
} lists;

static bool load_list(json_t *arr, lists *out)
{
    memset(out, 0, sizeof *out);
    out->l.entries = out->e;
    if (!json_is_array(arr) || json_array_size(arr) > MAX_LIST)
        return false;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if (!vec_bytes(json_array_get(arr, i), &out->buf[i]))
            return false;
        out->e[i] = (kc_bytes){out->buf[i].data, out->buf[i].len};
        out->l.n++;
    }
    return true;
}

static void free_list(lists *l)
{
    for (size_t i = 0; i < MAX_LIST; i++)
        kc_buf_free(&l->buf[i]);
}

/* A text query: JSON null -> NULL; string -> its UTF-8 (str or bytes alike). */
static const char *query(json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool hex_eq(json_t *want, const uint8_t *p, size_t n)
{
    kc_buf w = KC_BUF_INIT;
    bool ok = vec_bytes(want, &w) && w.len == n && (n == 0 || memcmp(w.data, p, n) == 0);
    kc_buf_free(&w);
    return ok;
}

static bool key_eq(json_t *want, const kc_key *k)
{
    kc_buf b = KC_BUF_INIT;
    const char *cls = json_string_value(json_object_get(want, "class"));
    bool sign = k->kind == KC_SIGN_PK;
    bool ok = cls && strcmp(cls, sign ? "SignPublicKey" : "KEMPublicKey") == 0 &&
              json_integer_value(json_object_get(want, "version")) == k->version &&
              kc_key_bytes(k, &b) == KC_OK && hex_eq(json_object_get(want, "bytes"), b.data, b.len);
    kc_buf_free(&b);
    return ok;
}

static bool pks_eq(json_t *want, const kc_pks *pks)
{
    if (!json_is_array(want))
        return !pks->is_list && pks->n == 1 && key_eq(want, &pks->keys[0]);
    if (!pks->is_list || json_array_size(want) != pks->n)
        return false;
    for (size_t i = 0; i < pks->n; i++)
        if (!key_eq(json_array_get(want, i), &pks->keys[i]))
            return false;
    return true;
}

/* The bytes of each element of a packed array. */
static bool extras_eq(json_t *want, const kc_buf *packed, size_t n)
{
    if (!json_is_array(want) || json_array_size(want) != n)
        return false;
    size_t pos = packed->data[0] <= 0x9f ? 1 : packed->data[0] == 0xdc ? 3 : 5;
    for (size_t i = 0; i < n; i++) {
        kc_mp_doc d;
        size_t used;
        if (kc_mp_decode_prefix(&d, packed->data + pos, packed->len - pos, &used, "x", NULL) != KC_OK)
            return false;
        kc_mp_doc_free(&d);
        if (!hex_eq(json_array_get(want, i), packed->data + pos, used))
            return false;
        pos += used;
    }
    return pos == packed->len;
}

static bool spks_eq(json_t *want, const kc_pks *spks)
{
    if (!json_is_array(want) || json_array_size(want) != spks->n)
        return false;
    for (size_t i = 0; i < spks->n; i++) {
        kc_buf b = KC_BUF_INIT;
        bool ok = kc_key_bytes(&spks->keys[i], &b) == KC_OK &&
                  hex_eq(json_array_get(want, i), b.data, b.len);
        kc_buf_free(&b);
        if (!ok)
            return false;
    }
    return true;
}

/* Compares an accepted result; returns NULL or what differs. */
static const char *compare(json_t *expect, const kc_chain_result *r)
{
    json_t *age = json_object_get(expect, "max_age");
    if (!json_is_number(age) || json_number_value(age) != r->max_age ||
        json_is_integer(age) != r->max_age_is_int)
        return "max_age";
    if (!hex_eq(json_object_get(expect, "poison"), r->poison.data, r->poison.len))
        return "poison";
    if (!pks_eq(json_object_get(expect, "key"), &r->key))
        return "key";
    if (!extras_eq(json_object_get(expect, "extra"), &r->extra, r->n_extra))
        return "extra";
    if (!hex_eq(json_object_get(expect, "pk_packed"), r->packed.data, r->packed.len))
        return "pk_packed";
    if (!spks_eq(json_object_get(expect, "spks"), &r->spks))
        return "spks";
    return NULL;
}

/* A usages poison in the chain holds a regex: upstream's intersect_certs
 * then probes it with str literals and fails the step ("Invalid signing!"). */
static bool usages_regex_in_chain(const kc_buf *chain)
{
    kc_chain_items items;
    if (kc_chain_parse(&items, chain->data, chain->len, NULL) != KC_OK)
        return false;
    bool found = false;
    for (size_t i = 0; i < items.n && !found; i++) {
        kc_cert c;
        kc_mp_doc p;
        if (items.item[i].n <= 64 ||
            kc_cert_parse(&c, items.item[i].p + 64, items.item[i].n - 64, NULL) != KC_OK)
            continue;
        if (kc_mp_decode(&p, c.poison.p, c.poison.n, "poison", NULL) == KC_OK) {
            const msgpack_object *o = kc_mp_root(&p);
            for (uint32_t k = 0; o->type == MSGPACK_OBJECT_ARRAY && k < o->via.array.size; k++) {
                const msgpack_object *e = &o->via.array.ptr[k];
                if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 2 ||
                    !kc_mp_text_eq(&e->via.array.ptr[0], "usages") ||
                    e->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY)
                    continue;
                const msgpack_object *l = &e->via.array.ptr[1];
                for (uint32_t j = 0; j < l->via.array.size; j++) {
                    const uint8_t *s;
                    size_t n;
                    if (kc_mp_bytes(&l->via.array.ptr[j], &s, &n) && n > 0 && s[0] == '^' &&
                        !kc_mp_text_eq(&l->via.array.ptr[j], "^.*$"))
                        found = true;
                }
            }
            kc_mp_doc_free(&p);
        }
        kc_cert_free(&c);
    }
    kc_chain_items_free(&items);
    return found;
}

/* Why upstream's failure came from the B1 type mismatch (spec §6.3), or NULL. */
static const char *b1_failure(json_t *expect, const kc_buf *chain)
{
    const char *type = json_string_value(json_object_get(expect, "error_type"));
    const char *msg = json_string_value(json_object_get(expect, "message"));
    const char *reason = json_string_value(json_object_get(expect, "reason"));
    if (type && strcmp(type, "TypeError") == 0 && msg &&
        strstr(msg, "cannot use a bytes pattern on a string-like object"))
        return "B1: a regex poison is matched against the str query as intended (upstream: "
               "TypeError)";
    if (reason && strstr(reason, "codec can't decode"))
        return "B1: a multi-byte first character compares as text as intended (upstream: "
               "UnicodeDecodeError)";
    if (usages_regex_in_chain(chain))
        return "B1: a regex in a usages poison is evaluated as intended (upstream: TypeError "
               "in intersect_certs, reported as 'Invalid signing!')";
    return NULL;
}

/* The `<name>_bytes_topic` / `_bytes_usage` twin of a vector with the same
 * chain: upstream's result with the intended regex semantics. */
static json_t *twin(json_t *vectors, const char *name, json_t *chain)
{
    char want[160];
    for (int k = 0; k < 2; k++) {
        snprintf(want, sizeof want, "%s_bytes_%s", name, k ? "usage" : "topic");
        for (size_t i = 0; i < json_array_size(vectors); i++) {
            json_t *v = json_array_get(vectors, i);
            const char *n = json_string_value(json_object_get(v, "name"));
            if (n && strcmp(n, want) == 0 && json_equal(json_object_get(v, "chain"), chain))
                return v;
        }
    }
    return NULL;
}

void vec_area_chain(vec_ctx *ctx, json_t *root)
{
    json_t *vectors = json_object_get(root, "vectors");
    for (size_t i = 0; i < json_array_size(vectors); i++) {
        json_t *v = json_array_get(vectors, i);
        char nb[64];
        const char *name = vec_name(v, "chain", i, nb, sizeof nb);
        json_t *expect = json_object_get(v, "expect");
        kc_buf chain = vec_req_bytes(ctx, v, "chain");
        lists allow, deny;
        json_t *dj = json_object_get(v, "denylist");
        json_t *aj = json_object_get(v, "allowlist");
        bool lists_ok = (json_is_null(aj) || load_list(aj, &allow)) &&
                        (json_is_null(dj) || load_list(dj, &deny));
        if (!lists_ok) {
            fprintf(stderr, "%s: %s: malformed allowlist/denylist\n", ctx->file, name);
            exit(2);
        }
        kc_chain_result r;
        kc_err err;
        kc_err_clear(&err);
        kc_status st = kc_chain_process(chain.data, chain.len,
                                        query(json_object_get(v, "topic")),
                                        query(json_object_get(v, "usage")),
                                        json_is_null(aj) ? NULL : &allow.l,
                                        json_is_null(dj) ? NULL : &deny.l,
                                        json_number_value(json_object_get(v, "checktime")), &r,
                                        &err);
        bool want_ok = json_is_true(json_object_get(expect, "ok"));
        const char *why;
        if (want_ok && st == KC_OK) {
            const char *diff = compare(expect, &r);
            if (diff)
                vec_fail(ctx, name, "accepted, but %s differs", diff);
            else
                vec_pass(ctx, name);
        } else if (want_ok) {
            vec_fail(ctx, name, "rejected: %s", err.msg);
        } else if (st == KC_OK && (why = b1_failure(expect, &chain)) != NULL) {
            json_t *tw = twin(vectors, name, json_object_get(v, "chain"));
            json_t *tw_expect = tw ? json_object_get(tw, "expect") : NULL;
            const char *diff = NULL;
            if (tw_expect && !json_is_true(json_object_get(tw_expect, "ok")))
                vec_fail(ctx, name, "accepted, but its twin %s was rejected upstream",
                         json_string_value(json_object_get(tw, "name")));
            else if (tw_expect && (diff = compare(tw_expect, &r)) != NULL)
                vec_fail(ctx, name, "accepted, but %s differs from the twin %s", diff,
                         json_string_value(json_object_get(tw, "name")));
            else {
                char text[400];
                snprintf(text, sizeof text, "%s; accepted%s%s, intended result asserted in "
                         "tests/unit/test_chain.c", why, tw ? " exactly like the twin " : "",
                         tw ? json_string_value(json_object_get(tw, "name")) : "");
                vec_diverge(ctx, name, text);
            }
        } else if (st == KC_OK) {
            vec_fail(ctx, name, "accepted, upstream rejected it");
        } else {
            vec_pass(ctx, name);
        }
        kc_chain_result_free(&r);
        if (!json_is_null(aj))
            free_list(&allow);
        if (!json_is_null(dj))
            free_list(&deny);
        kc_buf_free(&chain);
    }
}
