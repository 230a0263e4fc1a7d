/* seal.json: upstream's kafkacrypto sealed box for version-1 keys, its
 * libsodium fallback, failures, and post-quantum recipients (spec §5.8). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_keys.h"
#include "kc_seal.h"
#include "vec.h"

static const char *sub(const char *vname, const char *field)
{
    static char bufs[4][200];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", vname, field);
    return b;
}

static bool recipient(vec_ctx *ctx, json_t *v, kc_key *sk)
{
    kc_buf b = vec_req_bytes(ctx, v, "recipient_sk");
    bool ok = kc_key_from_bytes(sk, KC_KEM_SK, b.data, b.len, NULL) == KC_OK;
    kc_buf_free(&b);
    return ok;
}

/* opens `sealed` and compares with open_result {ok, message} */
static void check_open(vec_ctx *ctx, const char *vname, const kc_key *sk, json_t *v)
{
    kc_buf sealed = vec_req_bytes(ctx, v, "sealed"), out = KC_BUF_INIT;
    json_t *res = json_object_get(v, "open_result");
    kc_err err;
    kc_err_clear(&err);
    kc_status st = kc_seal_open(sk, sealed.data, sealed.len, &out, &err);
    if (json_is_true(json_object_get(res, "ok"))) {
        if (st == KC_OK)
            vec_check_bytes(ctx, sub(vname, "open"), "opened message", out.data, out.len,
                            json_object_get(res, "message"));
        else
            vec_fail(ctx, sub(vname, "open"), "does not open: %s", err.msg);
    } else if (st == KC_ERR_CRYPTO && out.len == 0) {
        vec_pass(ctx, sub(vname, "open"));
    } else {
        vec_fail(ctx, sub(vname, "open"), "got %s, want a failure to open", kc_status_str(st));
    }
    kc_buf_free(&sealed);
    kc_buf_free(&out);
}

static void seal_v1(vec_ctx *ctx, const char *vname, json_t *v)
{
    kc_key sk, pk, epk;
    kc_buf esk = vec_req_bytes(ctx, v, "esk"), nonce = vec_req_bytes(ctx, v, "nonce");
    kc_buf msg = vec_req_bytes(ctx, v, "message"), out = KC_BUF_INIT;
    if (!recipient(ctx, v, &sk) || kc_key_public(&pk, &sk) != KC_OK || esk.len != 32 ||
        nonce.len != 24) {
        vec_fail(ctx, vname, "bad recipient key, esk or nonce in the vector");
        goto out;
    }
    vec_check_bytes(ctx, sub(vname, "recipient_pk"), "recipient pk", pk.x, pk.x_len,
                    json_object_get(v, "recipient_pk"));
    kc_key eskk;
    uint8_t shared[32];
    if (kc_key_from_bytes(&eskk, KC_KEM_SK, esk.data, esk.len, NULL) == KC_OK &&
        kc_key_public(&epk, &eskk) == KC_OK && kc_kem_complete(&eskk, &pk, shared) == KC_OK) {
        vec_check_bytes(ctx, sub(vname, "epk"), "epk", epk.x, epk.x_len, json_object_get(v, "epk"));
        vec_check_bytes(ctx, sub(vname, "shared"), "shared", shared, 32,
                        json_object_get(v, "shared"));
    } else {
        vec_fail(ctx, sub(vname, "epk"), "cannot derive epk/shared");
    }
    kc_key_clear(&eskk);
    kc_err err;
    kc_err_clear(&err);
    if (kc_seal_with(&pk, esk.data, nonce.data, msg.data, msg.len, &out, &err) == KC_OK)
        vec_check_bytes(ctx, sub(vname, "sealed"), "sealed", out.data, out.len,
                        json_object_get(v, "sealed"));
    else
        vec_fail(ctx, sub(vname, "sealed"), "seal failed: %s", err.msg);
    check_open(ctx, vname, &sk, v);
out:
    kc_key_clear(&sk);
    kc_buf_free(&esk);
    kc_buf_free(&nonce);
    kc_buf_free(&msg);
    kc_buf_free(&out);
}

static void fallback_or_negative(vec_ctx *ctx, const char *vname, json_t *v)
{
    kc_key sk;
    if (!recipient(ctx, v, &sk)) {
        vec_fail(ctx, vname, "bad recipient key in the vector");
        return;
    }
    json_t *want_pk = json_object_get(v, "recipient_pk");
    if (want_pk) {
        kc_key pk;
        kc_key_public(&pk, &sk);
        vec_check_bytes(ctx, sub(vname, "recipient_pk"), "recipient pk", pk.x, pk.x_len, want_pk);
    }
    check_open(ctx, vname, &sk, v);
    kc_key_clear(&sk);
}

static void seal_pq(vec_ctx *ctx, const char *vname, json_t *v)
{
    kc_buf pkb = vec_req_bytes(ctx, v, "recipient_pk"), out = KC_BUF_INIT;
    kc_key pk;
    json_int_t version = json_integer_value(json_object_get(v, "version"));
    kc_status st = kc_key_from_bytes(&pk, KC_KEM_PK, pkb.data, pkb.len, NULL);
    if (st == KC_OK && pk.version == version) {
        static const uint8_t m[] = "escrow";
        st = kc_seal(&pk, m, sizeof m, &out, NULL);
        if (st == KC_ERR_UNSUPPORTED && out.len == 0)
            vec_pass(ctx, sub(vname, "unsupported"));
        else
            vec_fail(ctx, sub(vname, "unsupported"), "got %s, want unsupported",
                     kc_status_str(st));
        kc_key_clear(&pk);
    } else {
        vec_fail(ctx, sub(vname, "unsupported"), "recipient key does not parse as version %lld",
                 (long long)version);
    }
    kc_buf_free(&pkb);
    kc_buf_free(&out);
}

void vec_area_seal(vec_ctx *ctx, json_t *root)
{
    if (sodium_init() < 0)
        abort();
    json_t *vectors = json_object_get(root, "vectors");
    for (size_t i = 0; i < json_array_size(vectors); i++) {
        json_t *v = json_array_get(vectors, i);
        char buf[64];
        const char *vname = vec_name(v, "seal", i, buf, sizeof buf);
        const char *type = vec_req_str(ctx, v, "type");
        if (strcmp(type, "kafkacrypto_seal_v1") == 0)
            seal_v1(ctx, vname, v);
        else if (strcmp(type, "libsodium_sealed_box_fallback") == 0 ||
                 strcmp(type, "open_negative") == 0)
            fallback_or_negative(ctx, vname, v);
        else if (strcmp(type, "seal_pq_unsupported") == 0)
            seal_pq(ctx, vname, v);
        else
            vec_fail(ctx, vname, "unknown vector type %s", type);
    }
}
