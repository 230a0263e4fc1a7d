/* message.json: the key/value serializers and deserializers. The producer
 * side is reproduced from its `.seed` file through our ratchet and serde,
 * in call order; every deserialize case starts from a fresh consumer that
 * holds exactly its consumer_keys. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_keyidx.h"
#include "kc_message.h"
#include "kc_ratchet.h"
#include "kc_serde.h"
#include "kc_test.h"
#include "vec_keyidx.h"

static void no_sleep(void *ctx, double seconds)
{
    (void)ctx;
    (void)seconds;
}

static bool kind_of(vec_ctx *ctx, json_t *o, const char *field, kc_kind *kind)
{
    const char *k = vec_req_str(ctx, o, field);
    *kind = strcmp(k, "key") == 0 ? KC_KIND_KEY : KC_KIND_VALUE;
    return strcmp(k, "key") == 0 || strcmp(k, "value") == 0;
}

/* ---- producer ------------------------------------------------------------------ */

typedef struct pgen_probe {
    const kc_keyidx *want_ki;
    uint8_t secret[KC_SECRET_BYTES];
    bool found;
} pgen_probe;

static void find_pgen(void *c, const kc_keyidx *ki, const uint8_t secret[KC_SECRET_BYTES],
                      double birth, bool can_encrypt)
{
    pgen_probe *p = c;
    (void)birth;
    if (can_encrypt && kc_keyidx_equal(ki, p->want_ki)) {
        memcpy(p->secret, secret, KC_SECRET_BYTES);
        p->found = true;
    }
}

static void check_roots(vec_ctx *ctx, const char *name, kc_serde *s, json_t *roots)
{
    const char *root;
    json_t *r;
    json_object_foreach(roots, root, r) {
        char rname[200];
        snprintf(rname, sizeof rname, "%s/root %s", name, root);
        kc_keyidx want;
        if (!vec_keyidx(json_object_get(r, "keyidx"), &want)) {
            vec_fail(ctx, rname, "keyidx malformed in vector");
            continue;
        }
        pgen_probe p = {.want_ki = &want};
        kc_serde_foreach_pgen(s, root, find_pgen, &p);
        if (!p.found)
            vec_fail(ctx, rname, "no producer generation with the expected key index");
        else
            vec_check_bytes(ctx, rname, "topic_secret", p.secret, sizeof p.secret,
                            json_object_get(r, "topic_secret"));
        sodium_memzero(p.secret, sizeof p.secret);
    }
}

static void check_salt(vec_ctx *ctx, const char *name, kc_serde *s, const char *topic,
                       kc_kind kind, json_t *want)
{
    if (!want)
        return;
    const char *root;
    size_t rl;
    kc_serde_root_of(s, topic, &root, &rl, NULL);
    char rootz[256];
    snprintf(rootz, sizeof rootz, "%.*s", (int)rl, root);
    uint8_t salt[16];
    /* A root's first message creates its generation: counter 0. */
    if (kc_serde_producer_state(s, rootz, kind, NULL, salt) != KC_OK)
        memset(salt, 0, sizeof salt);
    vec_check_bytes(ctx, name, "salt", salt, sizeof salt, want);
}

static void run_serialize(vec_ctx *ctx, const char *name, kc_serde *s, json_t *list)
{
    size_t i;
    json_t *c;
    kc_buf out = KC_BUF_INIT;
    json_array_foreach(list, i, c) {
        char cname[200];
        snprintf(cname, sizeof cname, "%s/serialize%zu", name, i);
        kc_kind kind;
        if (!kind_of(ctx, c, "serializer", &kind)) {
            vec_fail(ctx, cname, "unknown serializer");
            continue;
        }
        const char *topic = vec_req_str(ctx, c, "topic");
        kc_buf pt = vec_req_bytes(ctx, c, "plaintext");
        check_salt(ctx, cname, s, topic, kind, json_object_get(c, "salt"));
        kc_err err;
        if (kc_serde_serialize(s, kind, topic, pt.data ? pt.data : (const uint8_t *)"", pt.len,
                               &out, &err) != KC_OK) {
            vec_fail(ctx, cname, "serialize: %s", err.msg);
        } else {
            vec_check_bytes(ctx, cname, "output", out.data, out.len, json_object_get(c, "output"));
            kc_keyidx ki;
            if (kc_serde_producer_state(s, vec_req_str(ctx, c, "root"), kind, &ki, NULL) != KC_OK)
                vec_fail(ctx, cname, "no current generation for root");
            else
                vec_check_keyidx(ctx, cname, &ki, json_object_get(c, "keyidx"));
        }
        kc_buf_free(&pt);
    }
    kc_buf_free(&out);
}

static void run_special(vec_ctx *ctx, const char *name, kc_serde *s, json_t *list)
{
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c) {
        char cname[200];
        snprintf(cname, sizeof cname, "%s/%s", name, vec_req_str(ctx, c, "case"));
        kc_kind kind;
        kind_of(ctx, c, "serializer", &kind);
        const char *topic = vec_req_str(ctx, c, "topic");
        json_t *in = json_object_get(c, "input"), *res = json_object_get(c, "result"), *x;
        kc_buf data = KC_BUF_INIT, out = KC_BUF_INIT;
        kc_message m;
        kc_message_init(&m);
        kc_any value;
        if (json_is_null(in)) {
            value = kc_any_none();
        } else if ((x = json_object_get(in, "str"))) {
            value = kc_any_text(json_string_value(x), json_string_length(x));
        } else if ((x = json_object_get(in, "encrypted_kafkacryptomessage")) && vec_bytes(x, &data)) {
            /* KafkaCryptoMessage.fromEncryptedBytes(raw) without a deserializer */
            kc_message_set_encrypted(&m, data.data, data.len, NULL, kind, NULL, 0, false);
            value = (kc_any){KC_ANY_MESSAGE, NULL, 0, &m};
        } else if ((x = json_object_get(in, "cleartext_kafkacryptomessage")) && vec_bytes(x, &data)) {
            kc_message_set_cleartext(&m, data.data, data.len, NULL);
            value = (kc_any){KC_ANY_MESSAGE, NULL, 0, &m};
        } else {
            vec_fail(ctx, cname, "unknown input form");
            continue;
        }
        check_salt(ctx, cname, s, topic, kind, json_object_get(c, "salt"));
        kc_err err;
        bool is_null;
        kc_status st = kc_serde_serialize_any(s, kind, topic, &value, &out, &is_null, &err);
        json_t *want = json_object_get(res, "output");
        const char *msg = json_string_value(json_object_get(res, "message"));
        if (json_object_get(res, "error_type")) {
            if (st != KC_OK && msg && strcmp(err.msg, msg) == 0 && out.len == 0)
                vec_pass(ctx, cname);
            else
                vec_fail(ctx, cname, "expected error '%s', got %s", msg ? msg : "",
                         st == KC_OK ? "success" : err.msg);
        } else if (st != KC_OK) {
            vec_fail(ctx, cname, "serialize: %s", err.msg);
        } else if (json_is_null(want)) {
            if (is_null)
                vec_pass(ctx, cname);
            else
                vec_fail(ctx, cname, "expected a null output");
        } else {
            vec_check_bytes(ctx, cname, "output", out.data, out.len, want);
        }
        kc_message_clear(&m);
        kc_buf_free(&data);
        kc_buf_free(&out);
    }
}

static void check_final_salts(vec_ctx *ctx, const char *name, kc_serde *s, json_t *salts)
{
    const char *root;
    json_t *kinds;
    json_object_foreach(salts, root, kinds) {
        const char *kn;
        json_t *want;
        json_object_foreach(kinds, kn, want) {
            char cname[200];
            snprintf(cname, sizeof cname, "%s/final_salt %s %s", name, root, kn);
            uint8_t salt[16];
            kc_kind kind = strcmp(kn, "key") == 0 ? KC_KIND_KEY : KC_KIND_VALUE;
            if (kc_serde_producer_state(s, root, kind, NULL, salt) != KC_OK)
                vec_fail(ctx, cname, "no current generation");
            else
                vec_check_bytes(ctx, cname, "salt", salt, sizeof salt, want);
        }
    }
}

/* ---- consumer ------------------------------------------------------------------ */

/* 0x01 followed by a msgpack map header of 3 entries: spec B6. */
static bool is_b6_input(const kc_buf *b)
{
    if (b->len < 2 || b->data[0] != 0x01)
        return false;
    const uint8_t *p = b->data + 1;
    size_t n = b->len - 1;
    return p[0] == 0x83 || (p[0] == 0xde && n >= 3 && p[1] == 0 && p[2] == 3) ||
           (p[0] == 0xdf && n >= 5 && p[1] == 0 && p[2] == 0 && p[3] == 0 && p[4] == 3);
}

static void run_deserialize_case(vec_ctx *ctx, const char *name, json_t *c, json_t *serialized)
{
    const char *cs = vec_req_str(ctx, c, "case");
    char cname[200];
    snprintf(cname, sizeof cname, "%s/%s", name, cs);
    kc_serde_config cfg;
    kc_serde_config_init(&cfg);
    cfg.sleep_fn = no_sleep;
    kc_serde *s;
    kc_err err;
    if (kc_serde_new(&cfg, &s, &err) != KC_OK) {
        vec_fail(ctx, cname, "serde: %s", err.msg);
        return;
    }
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(c, "consumer_keys"), i, k) {
        kc_keyidx ki;
        kc_buf secret = vec_req_bytes(ctx, k, "secret");
        if (!vec_keyidx(json_object_get(k, "keyidx"), &ki) || secret.len != KC_SECRET_BYTES ||
            kc_serde_add_consumer_key(s, vec_req_str(ctx, k, "root"), &ki, secret.data, &err) != KC_OK)
            vec_fail(ctx, cname, "consumer key %zu unusable", i);
        kc_buf_free(&secret);
    }
    kc_buf input = KC_BUF_INIT;
    json_t *ref = json_object_get(c, "input_ref"), *expect = json_object_get(c, "expect");
    json_t *source = json_is_integer(ref) ? json_array_get(serialized, json_integer_value(ref)) : NULL;
    bool is_none = !source && json_is_null(json_object_get(c, "input"));
    if (source)
        vec_bytes(json_object_get(source, "output"), &input);
    else if (!is_none)
        vec_bytes(json_object_get(c, "input"), &input);
    kc_kind kind;
    kind_of(ctx, c, "deserializer", &kind);
    kc_message m;
    kc_message_init(&m);
    const char *topic = vec_req_str(ctx, c, "topic");
    if (kc_serde_deserialize(s, kind, topic, is_none ? NULL : (input.data ? input.data : (const uint8_t *)""),
                             input.len, &m, &err) != KC_OK) {
        vec_fail(ctx, cname, "deserialize: %s", err.msg);
        goto out;
    }
    const char *result = vec_req_str(ctx, expect, "result");
    const uint8_t *bp;
    size_t bn;
    kc_message_bytes(&m, &bp, &bn);
    bool clear = kc_message_is_cleartext(&m, false), later = kc_message_is_possibly_decryptable(&m);
    if (strcmp(result, "none") == 0) {
        if (kc_message_is_null(&m))
            vec_pass(ctx, cname);
        else
            vec_fail(ctx, cname, "expected a null result");
    } else if (strcmp(result, "cleartext") == 0) {
        if (!clear) {
            vec_fail(ctx, cname, "expected cleartext, got %s",
                     later ? "decryptable later" : "not kafkacrypto");
        } else {
            json_t *want = json_object_get(expect, "value");
            if (json_is_true(json_object_get(expect, "value_is_serialize_plaintext")))
                want = json_object_get(source, "plaintext");
            vec_check_bytes(ctx, cname, "plaintext", bp, bn, want);
        }
    } else if (strcmp(result, "not_kafkacrypto") == 0 || strcmp(result, "decryptable_later") == 0) {
        bool want_later = strcmp(result, "decryptable_later") == 0;
        if (clear || m.null || later != want_later)
            vec_fail(ctx, cname, "expected %s, got %s", result,
                     clear ? "cleartext" : later ? "decryptable_later" : "not_kafkacrypto");
        else
            vec_check_bytes(ctx, cname, "raw", bp, bn, json_object_get(expect, "raw"));
    } else if (strcmp(result, "exception") == 0 && is_b6_input(&input) && !clear && !later &&
               !m.null) {
        vec_diverge(ctx, cname,
                    "upstream lets a KeyError escape for a 3-entry map; we classify it as "
                    "not kafkacrypto (spec Appendix B, B6)");
    } else {
        vec_fail(ctx, cname, "unexpected expectation %s", result);
    }
out:
    kc_message_clear(&m);
    kc_buf_free(&input);
    kc_serde_free(s);
}

/* ---- one producer vector ---------------------------------------------------------- */

static void run_vector(vec_ctx *ctx, const char *name, json_t *v)
{
    json_t *prod = json_object_get(v, "producer");
    char *dir = tc_tmpdir(), *path = tc_path(dir, "producer.seed");
    kc_buf seed = vec_req_bytes(ctx, prod, "seed_file_initial");
    kc_buf node = vec_req_bytes(ctx, prod, "id_spk");
    tc_write_file(path, seed.data, seed.len);
    kc_ratchet *r = NULL;
    kc_serde *s = NULL;
    kc_err err;
    if (kc_ratchet_open_file(path, NULL, &r, &err) != KC_OK) {
        vec_fail(ctx, name, "ratchet: %s", err.msg);
        goto out;
    }
    kc_buf after = tc_read_file(path);
    vec_check_bytes(ctx, name, "seed_file_after_construct", after.data, after.len,
                    json_object_get(prod, "seed_file_after_construct"));
    kc_buf_free(&after);
    kc_serde_config cfg;
    kc_serde_config_init(&cfg);
    cfg.ratchet = r;
    cfg.sleep_fn = no_sleep;
    if (json_is_true(json_object_get(v, "long_keyindex"))) {
        cfg.node_id = node.data;
        cfg.node_id_len = node.len;
    }
    if (kc_serde_new(&cfg, &s, &err) != KC_OK) {
        vec_fail(ctx, name, "serde: %s", err.msg);
        goto out;
    }
    json_t *serialized = json_object_get(v, "serialize");
    run_serialize(ctx, name, s, serialized);
    run_special(ctx, name, s, json_object_get(v, "serialize_special"));
    check_final_salts(ctx, name, s, json_object_get(v, "final_salts"));
    check_roots(ctx, name, s, json_object_get(v, "roots"));
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(v, "deserialize"), i, c)
        run_deserialize_case(ctx, name, c, serialized);
out:
    kc_serde_free(s);
    kc_ratchet_close(r);
    kc_buf_free(&seed);
    kc_buf_free(&node);
    tc_rmtree(dir);
    free(path);
    free(dir);
}

void vec_area_message(vec_ctx *ctx, json_t *root)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "vectors"), i, v) {
        char buf[64];
        run_vector(ctx, vec_name(v, "message", i, buf, sizeof buf), v);
    }
}
