/* exchange.json: the key exchange, byte for byte (spec §7.3–§7.5, §8.1).
 *
 * Each node is built from the vector's .crypto file and chain under the
 * vector's root of trust, with the clock pinned; the randomness upstream drew
 * (ephemeral secrets, random0, random1, nonces) is scripted in the order its
 * trace shows, so requests, re-signed requests and replies must equal the
 * recorded bytes. Where upstream's randomness is not recorded (a fresh
 * request, the unprovisioned node) the deterministic parts are compared and
 * both messages are validated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_cryptokey_file.h"
#include "kc_exchange.h"
#include "kc_keyidx.h"
#include "kc_test_rng.h"
#include "vec.h"

typedef struct node {
    kc_cryptokey *ck;
    kc_exchange *x;
    double now;
} node;

static double pinned(void *ctx)
{
    return *(const double *)ctx;
}

static bool node_open(vec_ctx *ctx, const char *name, node *nd, json_t *info, json_t *v,
                      const kc_bytes *allow, size_t nallow)
{
    memset(nd, 0, sizeof *nd);
    nd->now = json_number_value(json_object_get(v, "fixed_time"));
    kc_buf file = vec_req_bytes(ctx, info, "cryptokey_file"), chain = KC_BUF_INIT;
    kc_err err;
    kc_exchange_config c;
    kc_exchange_config_init(&c);
    c.allowlist = allow;
    c.n_allowlist = nallow;
    c.maxage = json_number_value(json_object_get(v, "maxage"));
    c.now_fn = pinned;
    c.now_ctx = &nd->now;
    bool ok = kc_cryptokey_open_bytes(&nd->ck, file.data, file.len, name, NULL, 0, &err) == KC_OK;
    if (ok) {
        c.cryptokey = nd->ck;
        ok = kc_exchange_new(&c, &nd->x, &err) == KC_OK;
    }
    json_t *jc = json_object_get(info, "chain");
    if (ok && !json_is_null(jc) && vec_bytes(jc, &chain))
        ok = kc_exchange_update_own_chain(nd->x, chain.data, chain.len, NULL, &err) == KC_OK;
    if (!ok)
        vec_fail(ctx, name, "node %s: %s", json_string_value(json_object_get(info, "name")),
                 err.msg);
    kc_buf_free(&file);
    kc_buf_free(&chain);
    return ok;
}

static void node_close(node *nd)
{
    kc_exchange_free(nd->x);
    kc_cryptokey_close(nd->ck);
}

static void script(vec_ctx *ctx, json_t *obj, const char *const *fields)
{
    for (; *fields; fields++) {
        kc_buf b = vec_req_bytes(ctx, obj, *fields);
        tc_rng_script(b.data, b.len);
        kc_buf_free(&b);
    }
}

static bool keyidx_of(json_t *j, kc_keyidx *ki)
{
    kc_buf b = KC_BUF_INIT;
    if (json_is_integer(j)) {
        kc_keyidx_from_int(ki, json_integer_value(j));
        return true;
    }
    if (!vec_bytes(j, &b))
        return false;
    kc_keyidx_from_bytes(ki, b.data, b.len);
    kc_buf_free(&b);
    return true;
}

static void load_keys(vec_ctx *ctx, json_t *v, kc_exchange_keys *keys, kc_keyidx *kis,
                      size_t *nkis)
{
    json_t *jk = json_object_get(v, "keyidxs"), *js = json_object_get(v, "keys");
    *nkis = 0;
    for (size_t i = 0; i < json_array_size(jk) && i < 8; i++) {
        kc_buf s = KC_BUF_INIT;
        if (!keyidx_of(json_array_get(jk, i), &kis[i]) || !vec_bytes(json_array_get(js, i), &s) ||
            s.len != KC_SECRET_BYTES) {
            fprintf(stderr, "%s: malformed keyidxs/keys\n", ctx->file);
            exit(2);
        }
        kc_exchange_keys_add(keys, &kis[i], s.data);
        kc_buf_free(&s);
        (*nkis)++;
    }
}

/* The recorded messages: values (and direct flags for requests). */
static void check_msgs(vec_ctx *ctx, const char *name, const kc_exchange_msgs *got,
                       json_t *want, bool requests)
{
    if (got->n != json_array_size(want)) {
        vec_fail(ctx, name, "%zu messages, want %zu", got->n, json_array_size(want));
        return;
    }
    for (size_t i = 0; i < got->n; i++) {
        json_t *w = json_array_get(want, i);
        char what[64];
        snprintf(what, sizeof what, "message %zu", i);
        if (!vec_check_bytes(ctx, name, what, got->items[i].value.data, got->items[i].value.len,
                             json_object_get(w, "value")))
            return;
        if (requests && got->items[i].direct != json_is_true(json_object_get(w, "direct_request")))
            vec_fail(ctx, name, "message %zu: direct flag %d", i, got->items[i].direct);
    }
}

static void check_msgkey(vec_ctx *ctx, const char *name, const kc_keyidx *kis, size_t n,
                         json_t *want)
{
    kc_buf k = KC_BUF_INIT;
    kc_exchange_msgkey_build(kis, n, &k);
    vec_check_bytes(ctx, name, "Kafka key", k.data, k.len, want);
    kc_buf_free(&k);
}

static void check_scripted_randomness_used(vec_ctx *ctx, const char *name)
{
    if (tc_rng_pending() != 0)
        vec_fail(ctx, name, "%zu scripted random bytes were not drawn", tc_rng_pending());
}

/* decrypt_keys: a [[ki, key]...] result, or null (refused, nothing delivered). */
static void check_decrypt(vec_ctx *ctx, const char *name, node *consumer, const char *root,
                          json_t *msgval, json_t *want)
{
    kc_buf reply = KC_BUF_INIT;
    kc_exchange_keys got = {0};
    kc_err err;
    if (!vec_bytes(msgval, &reply)) {
        vec_fail(ctx, name, "reply missing in vector");
        return;
    }
    kc_status st = kc_exchange_decrypt_keys(consumer->x, root, reply.data, reply.len, &got, &err);
    if (json_is_null(want)) {
        if (st == KC_OK)
            vec_fail(ctx, name, "accepted a reply upstream refuses");
        else
            vec_pass(ctx, name);
    } else if (st != KC_OK) {
        vec_fail(ctx, name, "%s", err.msg);
    } else if (got.n != json_array_size(want)) {
        vec_fail(ctx, name, "%zu keys, want %zu", got.n, json_array_size(want));
    } else {
        bool ok = true;
        for (size_t i = 0; i < got.n && ok; i++) {
            json_t *pair = json_array_get(want, i);
            kc_keyidx ki;
            ok = keyidx_of(json_array_get(pair, 0), &ki) && kc_keyidx_equal(&ki, &got.items[i].ki);
            if (!ok)
                vec_fail(ctx, name, "key %zu: other key index", i);
            else
                ok = vec_check_bytes(ctx, name, "delivered key", got.items[i].secret,
                                     KC_SECRET_BYTES, json_array_get(pair, 1));
        }
    }
    kc_exchange_keys_clear(&got);
    kc_buf_free(&reply);
}

static void check_refused_request(vec_ctx *ctx, const char *name, node *producer,
                                  const char *root, const kc_exchange_keys *keys, json_t *msgval)
{
    kc_buf req = KC_BUF_INIT;
    kc_exchange_msgs out = {0};
    if (!vec_bytes(msgval, &req))
        vec_fail(ctx, name, "request missing in vector");
    else if (kc_exchange_encrypt_keys(producer->x, root, keys, req.data, req.len, &out, NULL) ==
             KC_OK)
        vec_fail(ctx, name, "answered a request upstream refuses");
    else
        vec_pass(ctx, name);
    kc_exchange_msgs_clear(&out);
    kc_buf_free(&req);
}

/* A fresh request (randomness not recorded): the same chain before the
 * leaf, the same length. */
static void check_same_shape(vec_ctx *ctx, const char *name, const kc_buf *got, json_t *want)
{
    kc_buf w = KC_BUF_INIT;
    kc_chain_items gi, wi;
    bool ok = false;
    if (vec_bytes(want, &w) && w.len == got->len &&
        kc_chain_parse(&gi, got->data, got->len, NULL) == KC_OK) {
        if (kc_chain_parse(&wi, w.data, w.len, NULL) == KC_OK) {
            ok = gi.n == wi.n && gi.item[gi.n - 1].n == wi.item[wi.n - 1].n;
            for (size_t i = 0; ok && i + 1 < gi.n; i++)
                ok = gi.item[i].n == wi.item[i].n &&
                     memcmp(gi.item[i].p, wi.item[i].p, gi.item[i].n) == 0;
            kc_chain_items_free(&wi);
        }
        kc_chain_items_free(&gi);
    }
    if (ok)
        vec_pass(ctx, name);
    else
        vec_fail(ctx, name, "differs from upstream's beyond its random leaf");
    kc_buf_free(&w);
}

static void direct_vector(vec_ctx *ctx, const char *vname, json_t *v, const kc_bytes *rot)
{
    static const char *const step1_rng[] = {"consumer_esk", "random0", NULL};
    static const char *const step2_rng[] = {"producer_esk", "random1", "nonce", NULL};
    const char *root = vec_req_str(ctx, v, "topic");
    char name[200];
    node c, p;
    kc_exchange_keys keys = {0};
    kc_keyidx kis[8];
    size_t nkis;
    snprintf(name, sizeof name, "%.100s: nodes", vname);
    if (!node_open(ctx, name, &c, json_object_get(v, "consumer"), v, rot, 1))
        return;
    if (!node_open(ctx, name, &p, json_object_get(v, "producer"), v, rot, 1)) {
        node_close(&c);
        return;
    }
    load_keys(ctx, v, &keys, kis, &nkis);
    kc_err err;

    json_t *s1 = json_object_get(v, "step1_consumer_signed_epks");
    kc_exchange_msgs req = {0};
    snprintf(name, sizeof name, "%.100s: consumer request", vname);
    script(ctx, s1, step1_rng);
    if (kc_exchange_signed_epks(c.x, root, &req, &err) != KC_OK)
        vec_fail(ctx, name, "%s", err.msg);
    else
        check_msgs(ctx, name, &req, json_object_get(s1, "messages"), true);
    check_scripted_randomness_used(ctx, name);
    check_msgkey(ctx, name, kis, nkis, json_object_get(s1, "msgkey"));

    json_t *s2 = json_object_get(v, "step2_producer_encrypt_keys");
    for (size_t r = 0; r < json_array_size(s2); r++) {
        json_t *step = json_array_get(s2, r);
        size_t ri = (size_t)json_integer_value(json_object_get(step, "request_index"));
        kc_exchange_msgs reply = {0};
        snprintf(name, sizeof name, "%.100s: producer reply to request %zu", vname, ri);
        script(ctx, step, step2_rng);
        if (ri >= req.n)
            vec_fail(ctx, name, "no such request");
        else if (kc_exchange_encrypt_keys(p.x, root, &keys, req.items[ri].value.data,
                                          req.items[ri].value.len, &reply, &err) != KC_OK)
            vec_fail(ctx, name, "%s", err.msg);
        else
            check_msgs(ctx, name, &reply, json_object_get(step, "messages"), false);
        check_scripted_randomness_used(ctx, name);
        check_msgkey(ctx, name, kis, nkis, json_object_get(step, "msgkey"));
        kc_exchange_msgs_clear(&reply);
    }

    json_t *s3 = json_object_get(v, "step3_consumer_decrypt_keys");
    for (size_t r = 0; r < json_array_size(s3); r++) {
        json_t *step = json_array_get(s3, r);
        size_t ri = (size_t)json_integer_value(json_object_get(step, "request_index"));
        json_t *reply = json_object_get(json_array_get(json_object_get(json_array_get(s2, ri),
                                                                        "messages"), 0), "value");
        snprintf(name, sizeof name, "%.100s: consumer decrypts reply %zu", vname, ri);
        check_decrypt(ctx, name, &c, root, reply, json_object_get(step, "result"));
    }

    json_t *neg;
    size_t i;
    json_array_foreach(json_object_get(v, "negative"), i, neg) {
        const char *cs = vec_req_str(ctx, neg, "case");
        const char *topic = vec_req_str(ctx, neg, "topic");
        snprintf(name, sizeof name, "%.100s: %s", vname, cs);
        if (strcmp(cs, "fresh_request_value") == 0) {
            kc_exchange_msgs fresh = {0};
            if (kc_exchange_signed_epks(c.x, topic, &fresh, &err) != KC_OK || fresh.n == 0)
                vec_fail(ctx, name, "%s", err.msg);
            else
                check_same_shape(ctx, name, &fresh.items[0].value, json_object_get(neg, "result"));
            kc_exchange_msgs_clear(&fresh);
        } else if (strcmp(vec_req_str(ctx, neg, "op"), "decrypt_keys") == 0) {
            check_decrypt(ctx, name, &c, topic, json_object_get(neg, "msgval"),
                          json_object_get(neg, "result"));
        } else if (strcmp(vec_req_str(ctx, neg, "op"), "encrypt_keys") == 0 &&
                   json_is_null(json_object_get(neg, "result"))) {
            check_refused_request(ctx, name, &p, topic, &keys, json_object_get(neg, "msgval"));
        } else {
            vec_fail(ctx, name, "unknown negative case");
        }
    }
    kc_exchange_msgs_clear(&req);
    kc_exchange_keys_clear(&keys);
    node_close(&c);
    node_close(&p);
}

static void controller_vector(vec_ctx *ctx, const char *vname, json_t *v, const kc_bytes *rot)
{
    static const char *const step1_rng[] = {"consumer_esk", "random0", NULL};
    static const char *const step3_rng[] = {"producer_esk", "random1", "nonce", NULL};
    const char *root = vec_req_str(ctx, v, "topic");
    char name[200];
    node c, ctl, p;
    kc_exchange_keys keys = {0};
    kc_keyidx kis[8];
    size_t nkis;
    kc_err err;
    snprintf(name, sizeof name, "%.100s: nodes", vname);
    if (!node_open(ctx, name, &c, json_object_get(v, "consumer"), v, rot, 1))
        return;
    bool ok = node_open(ctx, name, &ctl, json_object_get(v, "controller"), v, rot, 1);
    if (ok && !node_open(ctx, name, &p, json_object_get(v, "producer"), v, rot, 1)) {
        node_close(&ctl);
        ok = false;
    }
    if (!ok) {
        node_close(&c);
        return;
    }
    load_keys(ctx, v, &keys, kis, &nkis);

    json_t *s1 = json_object_get(v, "step1_consumer_signed_epks");
    kc_exchange_msgs req = {0}, reply = {0};
    kc_buf resigned = KC_BUF_INIT;
    snprintf(name, sizeof name, "%.100s: limited consumer request", vname);
    script(ctx, s1, step1_rng);
    if (kc_exchange_signed_epks(c.x, root, &req, &err) != KC_OK)
        vec_fail(ctx, name, "%s", err.msg);
    else
        check_msgs(ctx, name, &req, json_object_get(s1, "messages"), true);
    check_scripted_randomness_used(ctx, name);

    json_t *s2 = json_object_get(v, "step2_controller_reencrypt");
    snprintf(name, sizeof name, "%.100s: controller re-signs", vname);
    if (req.n == 0 || kc_exchange_reencrypt_request(ctl.x, root, NULL, NULL, req.items[0].value.data,
                                                    req.items[0].value.len, &resigned,
                                                    &err) != KC_OK)
        vec_fail(ctx, name, "%s", req.n ? err.msg : "no request");
    else
        vec_check_bytes(ctx, name, "re-signed request", resigned.data, resigned.len,
                        json_object_get(s2, "value"));

    json_t *s3 = json_object_get(v, "step3_producer_encrypt_keys");
    snprintf(name, sizeof name, "%.100s: producer answers the controller's request", vname);
    script(ctx, s3, step3_rng);
    if (kc_exchange_encrypt_keys(p.x, root, &keys, resigned.data, resigned.len, &reply, &err) !=
        KC_OK)
        vec_fail(ctx, name, "%s", err.msg);
    else
        check_msgs(ctx, name, &reply, json_object_get(s3, "messages"), false);
    check_scripted_randomness_used(ctx, name);

    snprintf(name, sizeof name, "%.100s: consumer decrypts", vname);
    check_decrypt(ctx, name, &c, root,
                  json_object_get(json_array_get(json_object_get(s3, "messages"), 0), "value"),
                  json_object_get(json_object_get(v, "step4_consumer_decrypt_keys"), "result"));

    json_t *neg;
    size_t i;
    json_array_foreach(json_object_get(v, "negative"), i, neg) {
        snprintf(name, sizeof name, "%.100s: %s", vname, vec_req_str(ctx, neg, "case"));
        /* the limited consumer's own request, sent directly to the producer */
        check_refused_request(ctx, name, &p, root, &keys,
                              json_object_get(json_array_get(json_object_get(s1, "messages"), 0),
                                              "value"));
    }
    kc_exchange_msgs_clear(&req);
    kc_exchange_msgs_clear(&reply);
    kc_buf_free(&resigned);
    kc_exchange_keys_clear(&keys);
    node_close(&c);
    node_close(&ctl);
    node_close(&p);
}

/* A node without a chain fabricates one under the public temporary root:
 * its intermediate is deterministic, and both upstream's request and ours
 * validate under that root. */
static void temporary_vector(vec_ctx *ctx, const char *vname, json_t *v)
{
    const char *root = vec_req_str(ctx, v, "topic");
    char name[200];
    node c;
    kc_err err;
    kc_buf tmp = KC_BUF_INIT, theirs = KC_BUF_INIT;
    kc_chain_temporary_rot_entry(&tmp);
    kc_bytes allow = {tmp.data, tmp.len};
    snprintf(name, sizeof name, "%.100s: node without a chain", vname);
    if (!node_open(ctx, name, &c, json_object_get(v, "consumer"), v, NULL, 0)) {
        kc_buf_free(&tmp);
        return;
    }
    json_t *want = json_array_get(json_object_get(v, "messages"), 0);
    kc_exchange_msgs req = {0};
    if (kc_exchange_signed_epks(c.x, root, &req, &err) != KC_OK || req.n != 1) {
        vec_fail(ctx, name, "%s", err.msg);
    } else {
        snprintf(name, sizeof name, "%.100s: temporary chain", vname);
        check_same_shape(ctx, name, &req.items[0].value, json_object_get(want, "value"));
        snprintf(name, sizeof name, "%.100s: direct flag", vname);
        if (req.items[0].direct == json_is_true(json_object_get(want, "direct_request")))
            vec_pass(ctx, name);
        else
            vec_fail(ctx, name, "direct flag %d", req.items[0].direct);
        double t = json_number_value(json_object_get(v, "validates_against_temporary_root"));
        kc_chain_list list = {&allow, 1};
        vec_bytes(json_object_get(want, "value"), &theirs);
        const kc_buf *msgs[2] = {&req.items[0].value, &theirs};
        for (int i = 0; i < 2; i++) {
            snprintf(name, sizeof name, "%.100s: %s request validates under the temporary root",
                     vname, i ? "upstream's" : "our");
            if (kc_chain_process(msgs[i]->data, msgs[i]->len, root, "key-encrypt-request", &list,
                                 NULL, t, NULL, &err) != KC_OK)
                vec_fail(ctx, name, "%s", err.msg);
            else
                vec_pass(ctx, name);
        }
    }
    kc_exchange_msgs_clear(&req);
    kc_buf_free(&tmp);
    kc_buf_free(&theirs);
    node_close(&c);
}

void vec_area_exchange(vec_ctx *ctx, json_t *root)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "vectors"), i, v) {
        char buf[64];
        const char *vname = vec_name(v, "exchange", i, buf, sizeof buf);
        kc_buf entry = KC_BUF_INIT;
        vec_bytes(json_object_get(v, "rot_allowlist_entry"), &entry);
        kc_bytes rot = {entry.data, entry.len};
        if (json_object_get(v, "step2_controller_reencrypt"))
            controller_vector(ctx, vname, v, &rot);
        else if (json_object_get(v, "step1_consumer_signed_epks"))
            direct_vector(ctx, vname, v, &rot);
        else if (json_object_get(v, "validates_against_temporary_root"))
            temporary_vector(ctx, vname, v);
        else
            vec_fail(ctx, vname, "unrecognised exchange vector");
        kc_buf_free(&entry);
    }
}
