/* keygen.json: upstream's KeyGenerator — sequences of generate() calls on
 * one generator, constructor/rekey errors, rekey, and the key/value pair. */
#include <stdio.h>
#include <string.h>

#include "kc_hex.h"
#include "kc_keygen.h"
#include "vec.h"

/* null -> NONE, "hex" / {"hex"} -> BYTES, {"str"} -> TEXT */
static kc_any any_of(json_t *v, kc_buf *store)
{
    if (!v || json_is_null(v))
        return kc_any_none();
    if (!vec_bytes(v, store))
        return kc_any_other();
    if (json_is_object(v) && json_object_get(v, "str"))
        return kc_any_text((const char *)store->data, store->len);
    return kc_any_bytes(store->data, store->len);
}

/* The upstream message must start ours (we may add context after it). */
static bool same_error(kc_status st, const kc_err *err, json_t *want)
{
    const char *msg = json_string_value(json_object_get(want, "message"));
    return st != KC_OK && msg && strncmp(err->msg, msg, strlen(msg)) == 0;
}

static void check_salt(vec_ctx *ctx, const char *name, const char *what, const kc_keygen *kg,
                       json_t *want)
{
    vec_check_bytes(ctx, name, what, kc_keygen_salt(kg), KC_KEYGEN_SALTBYTES, want);
}

static void run_sequence(vec_ctx *ctx, const char *name, json_t *v)
{
    kc_buf secret = vec_req_bytes(ctx, v, "secret"), c = vec_req_bytes(ctx, v, "ctx");
    kc_keygen kg;
    kc_err err;
    if (kc_keygen_init(&kg, secret.data, secret.len, c.data, c.len, &err) != KC_OK) {
        vec_fail(ctx, name, "init: %s", err.msg);
        goto out;
    }
    size_t i;
    json_t *call;
    json_array_foreach(json_object_get(v, "calls"), i, call) {
        char cname[160];
        snprintf(cname, sizeof cname, "%s/call%zu", name, i);
        json_t *in = json_object_get(call, "input"), *res = json_object_get(call, "result");
        kc_buf bm = KC_BUF_INIT, bc = KC_BUF_INIT, bs = KC_BUF_INIT;
        kc_any msg = any_of(json_object_get(in, "msg"), &bm);
        kc_any cx = any_of(json_object_get(in, "ctx"), &bc);
        kc_any salt = any_of(json_object_get(in, "salt"), &bs);
        size_t ks = (size_t)json_integer_value(json_object_get(in, "keysize"));
        size_t ns = (size_t)json_integer_value(json_object_get(in, "noncesize"));
        check_salt(ctx, cname, "salt_before", &kg, json_object_get(call, "salt_before"));
        uint8_t key[KC_KEYGEN_OUTMAX], nonce[KC_KEYGEN_OUTMAX];
        kc_status st = kc_keygen_generate(&kg, &msg, &cx, &salt, ks, ns, key, nonce, &err);
        if (json_object_get(res, "error_type")) {
            if (same_error(st, &err, res))
                vec_pass(ctx, cname);
            else
                vec_fail(ctx, cname, "expected error %s, got %s",
                         json_string_value(json_object_get(res, "error_type")),
                         st == KC_OK ? "success" : err.msg);
        } else if (st != KC_OK) {
            vec_fail(ctx, cname, "generate: %s", err.msg);
        } else {
            vec_check_bytes(ctx, cname, "key", key, ks, json_object_get(res, "key"));
            vec_check_bytes(ctx, cname, "nonce", nonce, ns ? ns : ks, json_object_get(res, "nonce"));
        }
        check_salt(ctx, cname, "salt_after", &kg, json_object_get(call, "salt_after"));
        kc_buf_free(&bm);
        kc_buf_free(&bc);
        kc_buf_free(&bs);
    }
out:
    kc_keygen_clear(&kg);
    kc_buf_free(&secret);
    kc_buf_free(&c);
}

static void run_errors(vec_ctx *ctx, const char *name, json_t *v)
{
    size_t i;
    json_t *cs;
    uint8_t s32[32], s31[31], s33[33];
    memset(s32, 7, sizeof s32);
    memset(s31, 7, sizeof s31);
    memset(s33, 7, sizeof s33);
    json_array_foreach(json_object_get(v, "cases"), i, cs) {
        const char *c = vec_req_str(ctx, cs, "case");
        char cname[160];
        snprintf(cname, sizeof cname, "%s/%s", name, c);
        kc_keygen kg;
        kc_err err;
        kc_status st;
        kc_any secret, cx = kc_any_none();
        if (strcmp(c, "secret_31_bytes") == 0) {
            secret = kc_any_bytes(s31, sizeof s31);
        } else if (strcmp(c, "secret_33_bytes") == 0) {
            secret = kc_any_bytes(s33, sizeof s33);
        } else if (strcmp(c, "secret_str") == 0) {
            secret = kc_any_text("0123456789abcdef0123456789abcdef", 32);
        } else if (strcmp(c, "ctx_str_in_constructor") == 0) {
            secret = kc_any_bytes(s32, sizeof s32);
            cx = kc_any_text("key", 3);
        } else if (strcmp(c, "rekey_same_secret") == 0) {
            secret = kc_any_bytes(s32, sizeof s32);
        } else {
            vec_fail(ctx, cname, "unknown error case");
            continue;
        }
        st = kc_keygen_init_any(&kg, &secret, &cx, &err);
        if (strcmp(c, "rekey_same_secret") == 0) {
            if (st != KC_OK) {
                vec_fail(ctx, cname, "init: %s", err.msg);
                continue;
            }
            st = kc_keygen_rekey(&kg, s32, sizeof s32, &err);
        }
        if (same_error(st, &err, json_object_get(cs, "result")))
            vec_pass(ctx, cname);
        else
            vec_fail(ctx, cname, "expected error, got %s", st == KC_OK ? "success" : err.msg);
        kc_keygen_clear(&kg);
    }
}

static void run_rekey(vec_ctx *ctx, const char *name, json_t *v)
{
    kc_buf secret = vec_req_bytes(ctx, v, "secret"), fresh = vec_req_bytes(ctx, v, "new_secret");
    kc_keygen kg;
    kc_err err;
    uint8_t salt[16], key[32], nonce[24];
    kc_keygen_init(&kg, secret.data, secret.len, NULL, 0, &err);
    size_t i;
    json_t *pair;
    json_array_foreach(json_object_get(v, "before_rekey"), i, pair) {
        kc_keygen_next(&kg, salt, key, nonce);
        vec_check_bytes(ctx, name, "before_rekey key", key, 32, json_array_get(pair, 0));
        vec_check_bytes(ctx, name, "before_rekey nonce", nonce, 24, json_array_get(pair, 1));
    }
    check_salt(ctx, name, "salt_before_rekey", &kg, json_object_get(v, "salt_before_rekey"));
    if (kc_keygen_rekey(&kg, fresh.data, fresh.len, &err) != KC_OK) {
        vec_fail(ctx, name, "rekey: %s", err.msg);
    } else {
        kc_keygen_next(&kg, salt, key, nonce);
        json_t *first = json_object_get(v, "after_rekey_first");
        vec_check_bytes(ctx, name, "after_rekey key", key, 32, json_array_get(first, 0));
        vec_check_bytes(ctx, name, "after_rekey nonce", nonce, 24, json_array_get(first, 1));
        check_salt(ctx, name, "salt_after", &kg, json_object_get(v, "salt_after"));
    }
    kc_keygen_clear(&kg);
    kc_buf_free(&secret);
    kc_buf_free(&fresh);
}

static void run_kv(vec_ctx *ctx, const char *name, json_t *v)
{
    kc_buf secret = vec_req_bytes(ctx, v, "secret");
    vec_check_bytes(ctx, name, "key_ctx", kc_keygen_ctx_key, 16, json_object_get(v, "key_ctx"));
    vec_check_bytes(ctx, name, "value_ctx", kc_keygen_ctx_value, 16,
                    json_object_get(v, "value_ctx"));
    const char *lists[2] = {"key_outputs", "value_outputs"};
    const uint8_t *ctxs[2] = {kc_keygen_ctx_key, kc_keygen_ctx_value};
    for (int k = 0; k < 2; k++) {
        kc_keygen kg;
        kc_keygen_init(&kg, secret.data, secret.len, ctxs[k], 16, NULL);
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(v, lists[k]), i, o) {
            uint8_t salt[16], key[32], nonce[24];
            kc_keygen_next(&kg, salt, key, nonce);
            vec_check_bytes(ctx, name, "salt", salt, 16, json_object_get(o, "salt"));
            vec_check_bytes(ctx, name, "key", key, 32, json_object_get(o, "key"));
            vec_check_bytes(ctx, name, "nonce", nonce, 24, json_object_get(o, "nonce"));
        }
        kc_keygen_clear(&kg);
    }
    kc_buf_free(&secret);
}

void vec_area_keygen(vec_ctx *ctx, json_t *root)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "vectors"), i, v) {
        char buf[64];
        const char *name = vec_name(v, "keygen", i, buf, sizeof buf);
        const char *type = vec_req_str(ctx, v, "type");
        if (strcmp(type, "generate_sequence") == 0)
            run_sequence(ctx, name, v);
        else if (strcmp(type, "errors") == 0)
            run_errors(ctx, name, v);
        else if (strcmp(type, "rekey") == 0)
            run_rekey(ctx, name, v);
        else if (strcmp(type, "get_key_value_generators") == 0)
            run_kv(ctx, name, v);
        else
            vec_fail(ctx, name, "unknown vector type %s", type);
    }
}
