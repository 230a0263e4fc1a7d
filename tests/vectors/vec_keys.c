/* keys.json: key encodings and parsing (spec §2.4, §5), the classical-only
 * dispositions of post-quantum material (§5.7) and `.crypto` files
 * (§10.7) loaded through the file-backed cryptokey. */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_cryptokey.h"
#include "kc_cryptokey_file.h"
#include "kc_hex.h"
#include "kc_keys.h"
#include "kc_log.h"
#include "kc_mp.h"
#include "kc_test.h"
#include "vec.h"

/* "vector/field"; rotates over a few buffers so results can be nested */
static const char *field_name(const char *vname, const char *field)
{
    static char bufs[4][256];
    static int next;
    char *buf = bufs[next++ % 4];
    snprintf(buf, sizeof bufs[0], "%s/%s", vname, field);
    return buf;
}

static void check(vec_ctx *ctx, const char *vname, const char *field, bool ok, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));
static void check(vec_ctx *ctx, const char *vname, const char *field, bool ok, const char *fmt,
                  ...)
{
    const char *name = field_name(vname, field);
    if (ok) {
        vec_pass(ctx, name);
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vec_fail(ctx, name, "%s", msg);
}

static bool kind_of_class(const char *cls, kc_key_kind *kind)
{
    static const struct { const char *name; kc_key_kind kind; } classes[] = {
        {"SignPublicKey", KC_SIGN_PK}, {"SignSecretKey", KC_SIGN_SK},
        {"KEMPublicKey", KC_KEM_PK},   {"KEMSecretKey", KC_KEM_SK},
    };
    for (size_t i = 0; cls && i < sizeof classes / sizeof classes[0]; i++)
        if (strcmp(cls, classes[i].name) == 0) {
            *kind = classes[i].kind;
            return true;
        }
    return false;
}

/* disposition -> our status: ok / unsupported_skip (known post-quantum
 * material this build cannot use) / rejected (malformed or unknown) */
static kc_status status_of_disposition(const char *d)
{
    if (d && strcmp(d, "unsupported_skip") == 0)
        return KC_ERR_UNSUPPORTED;
    if (d && strcmp(d, "rejected") == 0)
        return KC_ERR_INVALID;
    return KC_OK;
}

static void check_bytes_field(vec_ctx *ctx, const char *vname, const char *field,
                              const uint8_t *p, size_t n, json_t *want)
{
    vec_check_bytes(ctx, field_name(vname, field), field, p, n, want);
}

/* One key against {class, version, bytes, packed_in_array, esk_version}. */
static void check_key(vec_ctx *ctx, const char *name, const kc_key *k, json_t *want)
{
    char vname[200];  /* name may be a field_name() buffer that the checks reuse */
    snprintf(vname, sizeof vname, "%s", name);
    kc_key_kind kind;
    const char *cls = json_string_value(json_object_get(want, "class"));
    if (cls)
        check(ctx, vname, "class", kind_of_class(cls, &kind) && kind == k->kind,
              "got kind %d, want %s", k->kind, cls);
    json_t *v = json_object_get(want, "version");
    if (v)
        check(ctx, vname, "version", json_integer_value(v) == k->version, "got %d, want %lld",
              k->version, (long long)json_integer_value(v));
    kc_buf b = KC_BUF_INIT;
    if (json_object_get(want, "bytes")) {
        if (kc_key_bytes(k, &b) != KC_OK)
            abort();
        check_bytes_field(ctx, vname, "bytes", b.data, b.len, json_object_get(want, "bytes"));
    }
    if (json_object_get(want, "packed_in_array")) {
        kc_mp_out o;
        kc_mp_out_init(&o);
        msgpack_pack_array(&o.pk, 1);
        kc_key_pack(&o.pk, k);
        check_bytes_field(ctx, vname, "packed_in_array", o.buf.data, o.buf.len,
                          json_object_get(want, "packed_in_array"));
        kc_mp_out_free(&o);
    }
    v = json_object_get(want, "esk_version");
    if (v)
        check(ctx, vname, "esk_version", json_integer_value(v) == kc_kem_esk_version(k),
              "got %d, want %lld", kc_kem_esk_version(k), (long long)json_integer_value(v));
    kc_buf_free(&b);
}

static void check_str(vec_ctx *ctx, const char *vname, const kc_key *k, json_t *want)
{
    const char *s = json_string_value(want);
    char got[512];
    kc_key_describe(k, got, sizeof got);
    check(ctx, vname, "str", s && strcmp(got, s) == 0, "got %s, want %s", got, s ? s : "?");
}

/* get_pks on a byte string (what a certificate field holds as bytes) */
static kc_status get_pks_of_bytes(kc_pks *out, const uint8_t *p, size_t n)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_BIN};
    o.via.bin.ptr = (const char *)p;
    o.via.bin.size = (uint32_t)n;
    return kc_get_pks(out, &o, NULL);
}

static void sign_v1_from_seed(vec_ctx *ctx, const char *vname, json_t *v)
{
    kc_buf seed = vec_req_bytes(ctx, v, "seed"), msg = vec_req_bytes(ctx, v, "sign_message");
    kc_key pk, sk;
    if (seed.len != 32 || kc_sign_keypair_from_seed(&pk, &sk, seed.data) != KC_OK) {
        vec_fail(ctx, vname, "cannot derive the key pair from the seed");
        goto out;
    }
    check_bytes_field(ctx, vname, "pk", pk.x, pk.x_len, json_object_get(v, "pk"));
    check_bytes_field(ctx, vname, "sk", sk.x, sk.x_len, json_object_get(v, "sk"));
    kc_buf b = KC_BUF_INIT;
    kc_key_bytes(&sk, &b);
    check_bytes_field(ctx, vname, "SignSecretKey_bytes", b.data, b.len,
                      json_object_get(v, "SignSecretKey_bytes"));
    kc_key_bytes(&pk, &b);
    check_bytes_field(ctx, vname, "SignPublicKey_bytes", b.data, b.len,
                      json_object_get(v, "SignPublicKey_bytes"));
    json_t *want = json_pack("{s:O}", "packed_in_array", json_object_get(v, "packed_in_array_pk"));
    check_key(ctx, field_name(vname, "pk"), &pk, want);
    json_decref(want);
    want = json_pack("{s:O}", "packed_in_array", json_object_get(v, "packed_in_array_sk"));
    check_key(ctx, field_name(vname, "sk"), &sk, want);
    json_decref(want);
    check_str(ctx, vname, &pk, json_object_get(v, "str"));

    /* the secret key read back from its bytes() signs identically */
    kc_key sk2, pk2;
    kc_buf skb = vec_req_bytes(ctx, v, "sk");
    bool same = kc_key_from_bytes(&sk2, KC_SIGN_SK, skb.data, skb.len, NULL) == KC_OK &&
                kc_key_equal(&sk2, &sk) && kc_key_public(&pk2, &sk2) == KC_OK &&
                kc_key_equal(&pk2, &pk);
    check(ctx, vname, "sk_from_bytes", same, "SignSecretKey(bytes) differs from the seed's key");
    kc_buf_free(&skb);
    kc_key_clear(&sk2);

    kc_buf sig = KC_BUF_INIT;
    kc_sign(&sk, msg.data, msg.len, &sig);
    check_bytes_field(ctx, vname, "signed", sig.data, sig.len, json_object_get(v, "signed"));
    kc_buf signed_ = vec_req_bytes(ctx, v, "signed");
    const uint8_t *m;
    size_t mlen;
    if (kc_sign_open(&pk, signed_.data, signed_.len, &m, &mlen, NULL) == KC_OK)
        check_bytes_field(ctx, vname, "sign_open", m, mlen, json_object_get(v, "sign_open"));
    else
        vec_fail(ctx, field_name(vname, "sign_open"), "signature does not verify");

    kc_pks pks;
    want = json_object_get(v, "get_pks_of_pk_bytes");
    if (get_pks_of_bytes(&pks, pk.x, pk.x_len) == KC_OK && !pks.is_list) {
        check_key(ctx, field_name(vname, "get_pks_of_pk_bytes"), &pks.keys[0], want);
        kc_pks_clear(&pks);
    } else {
        vec_fail(ctx, field_name(vname, "get_pks_of_pk_bytes"), "get_pks failed");
    }
    kc_buf_free(&sig);
    kc_buf_free(&signed_);
    kc_buf_free(&b);
out:
    kc_key_clear(&sk);
    kc_buf_free(&seed);
    kc_buf_free(&msg);
}

static void kem_v1_from_secret(vec_ctx *ctx, const char *vname, json_t *v)
{
    kc_buf skb = vec_req_bytes(ctx, v, "sk");
    kc_key sk, pk;
    if (kc_key_from_bytes(&sk, KC_KEM_SK, skb.data, skb.len, NULL) != KC_OK ||
        kc_key_public(&pk, &sk) != KC_OK) {
        vec_fail(ctx, vname, "KEMSecretKey(bytes) failed");
        kc_buf_free(&skb);
        return;
    }
    check_bytes_field(ctx, vname, "pk", pk.x, pk.x_len, json_object_get(v, "pk"));
    kc_buf b = KC_BUF_INIT;
    kc_key_bytes(&sk, &b);
    check_bytes_field(ctx, vname, "KEMSecretKey_bytes", b.data, b.len,
                      json_object_get(v, "KEMSecretKey_bytes"));
    json_t *want = json_pack("{s:O,s:O}", "packed_in_array", json_object_get(v, "packed_in_array_pk"),
                             "esk_version", json_object_get(v, "esk_version"));
    check_key(ctx, field_name(vname, "pk"), &pk, want);
    json_decref(want);
    check_str(ctx, vname, &pk, json_object_get(v, "str"));
    kc_key_clear(&sk);
    kc_buf_free(&b);
    kc_buf_free(&skb);
}

static void parse_vector(vec_ctx *ctx, const char *vname, json_t *v)
{
    const char *ctor = vec_req_str(ctx, v, "constructor");
    const char *form = vec_req_str(ctx, v, "input_form");
    json_t *res = json_object_get(v, "result");
    kc_buf in = vec_req_bytes(ctx, v, "input");
    bool decoded = strcmp(form, "decoded") == 0;
    kc_mp_doc doc = {.live = false};
    msgpack_object bin = {.type = MSGPACK_OBJECT_BIN};
    bin.via.bin.ptr = (const char *)in.data;
    bin.via.bin.size = (uint32_t)in.len;
    const msgpack_object *obj = &bin;
    if (decoded) {
        if (kc_mp_decode(&doc, in.data, in.len, "vector input", NULL) != KC_OK) {
            vec_fail(ctx, vname, "input does not decode");
            goto out;
        }
        obj = kc_mp_root(&doc);
    }
    kc_status want_st = json_is_true(json_object_get(res, "ok"))
                            ? KC_OK
                            : status_of_disposition(json_string_value(
                                  json_object_get(res, "disposition")));
    kc_status st;
    kc_err err;
    kc_err_clear(&err);
    if (strcmp(ctor, "get_pks") == 0) {
        kc_pks pks;
        st = kc_get_pks(&pks, obj, &err);
        check(ctx, vname, "status", st == want_st, "got %s (%s), want %s", kc_status_str(st),
              err.msg, kc_status_str(want_st));
        if (st == KC_OK && want_st == KC_OK) {
            json_t *list = json_object_get(res, "list");
            if (list) {
                check(ctx, vname, "is_list", pks.is_list && pks.n == json_array_size(list),
                      "got %zu keys (list=%d), want a list of %zu", pks.n, pks.is_list,
                      json_array_size(list));
                for (size_t i = 0; i < pks.n && i < json_array_size(list); i++) {
                    char sub[160];
                    snprintf(sub, sizeof sub, "%s[%zu]", vname, i);
                    check_key(ctx, sub, &pks.keys[i], json_array_get(list, i));
                }
            } else {
                check(ctx, vname, "is_list", !pks.is_list && pks.n == 1, "got a list");
                check_key(ctx, vname, &pks.keys[0], res);
            }
        }
        if (st == KC_OK)
            kc_pks_clear(&pks);
        goto out;
    }
    kc_key_kind kind;
    if (!kind_of_class(ctor, &kind)) {
        vec_fail(ctx, vname, "unknown constructor %s", ctor);
        goto out;
    }
    kc_key k;
    st = decoded ? kc_key_from_object(&k, kind, obj, &err)
                 : kc_key_from_bytes(&k, kind, in.data, in.len, &err);
    check(ctx, vname, "status", st == want_st, "got %s (%s), want %s", kc_status_str(st),
          err.msg, kc_status_str(want_st));
    if (st == KC_OK && want_st == KC_OK)
        check_key(ctx, vname, &k, res);
    if (st == KC_OK)
        kc_key_clear(&k);
out:
    kc_mp_doc_free(&doc);
    kc_buf_free(&in);
}

static void sign_open_v4(vec_ctx *ctx, const char *vname, json_t *v)
{
    kc_buf pkb = vec_req_bytes(ctx, v, "pk");
    kc_key pk;
    json_int_t len = json_integer_value(json_object_get(v, "signed_len"));
    uint8_t *sm = calloc(1, (size_t)len + 1);
    const uint8_t *m;
    size_t mlen;
    bool ok = sm && kc_key_from_bytes(&pk, KC_SIGN_PK, pkb.data, pkb.len, NULL) == KC_OK &&
              pk.version == 4 &&
              kc_sign_open(&pk, sm, (size_t)len, &m, &mlen, NULL) == KC_ERR_UNSUPPORTED;
    check(ctx, vname, "unsupported", ok, "version-4 verification did not report unsupported");
    kc_key_clear(&pk);
    free(sm);
    kc_buf_free(&pkb);
}

/* The equality vector names its operands in words; build each one. */
static bool equality_operand(const char *what, const kc_buf *x, kc_key *out)
{
    uint8_t slh[32] = {0};  /* any SLH-DSA half: it is the version that differs */
    kc_mp_out o;
    kc_status st = KC_ERR_INVALID;
    kc_mp_out_init(&o);
    if (strcmp(what, "SignPublicKey(v1 X)") == 0) {
        st = kc_key_from_bytes(out, KC_SIGN_PK, x->data, x->len, NULL);
    } else if (strcmp(what, "KEMPublicKey(v1 X)") == 0) {
        st = kc_key_from_bytes(out, KC_KEM_PK, x->data, x->len, NULL);
    } else if (strcmp(what, "KEMPublicKey(SignPublicKey v1 X)") == 0) {
        kc_key s;
        st = kc_key_from_bytes(&s, KC_SIGN_PK, x->data, x->len, NULL);
        if (st == KC_OK)
            st = kc_key_to_kem_pk(out, &s);
    } else if (strcmp(what, "SignPublicKey([1,X])") == 0 ||
               strcmp(what, "SignPublicKey(v4 [X, slh])") == 0) {
        bool v4 = strstr(what, "v4") != NULL;
        msgpack_pack_array(&o.pk, 2);
        msgpack_pack_int(&o.pk, v4 ? 4 : 1);
        if (v4)
            msgpack_pack_array(&o.pk, 2);
        kc_mp_pack_bin(&o.pk, x->data, x->len);
        if (v4)
            kc_mp_pack_bin(&o.pk, slh, sizeof slh);
        kc_mp_doc d;
        if (kc_mp_decode(&d, o.buf.data, o.buf.len, "operand", NULL) == KC_OK) {
            st = kc_key_from_object(out, KC_SIGN_PK, kc_mp_root(&d), NULL);
            kc_mp_doc_free(&d);
        }
    }
    kc_mp_out_free(&o);
    return st == KC_OK;
}

static void equality(vec_ctx *ctx, const char *vname, json_t *v)
{
    kc_buf x = vec_req_bytes(ctx, v, "key_X");
    json_t *cases = json_object_get(v, "cases");
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        const char *a = vec_req_str(ctx, c, "a"), *b = vec_req_str(ctx, c, "b");
        char name[256];
        snprintf(name, sizeof name, "%s: %s == %s", vname, a, b);
        if (strncmp(b, "raw ", 4) == 0) {
            /* upstream raises AttributeError; in C a key is never compared
             * with raw bytes: they must be parsed into a kc_key first */
            vec_skip(ctx, name, "no C equivalent: kc_key_equal compares parsed keys only");
            continue;
        }
        kc_key ka, kb;
        if (!equality_operand(a, &x, &ka) || !equality_operand(b, &x, &kb)) {
            vec_fail(ctx, name, "cannot build the operands");
            continue;
        }
        bool want = json_is_true(json_object_get(c, "equal"));
        bool got = kc_key_equal(&ka, &kb);
        if (got == want)
            vec_pass(ctx, name);
        else
            vec_fail(ctx, name, "got %s, want %s", got ? "equal" : "different",
                     want ? "equal" : "different");
        kc_key_clear(&ka);
        kc_key_clear(&kb);
    }
    kc_buf_free(&x);
}

/* ---- cryptokey_file ------------------------------------------------------------ */

static void quiet_sink(void *c, kc_log_level level, const char *logger, const char *message)
{
    (void)c; (void)level; (void)logger; (void)message;
}

/* ek is never read out of the backend: check it by what it opens and seals. */
static bool ek_matches(kc_cryptokey *ck, const kc_buf *ek)
{
    static const uint8_t msg[] = "opaque value";
    uint8_t nonce[24] = {7}, box[24 + 16 + sizeof msg];
    memcpy(box, nonce, 24);
    crypto_secretbox_easy(box + 24, msg, sizeof msg, nonce, ek->data);
    kc_buf out = KC_BUF_INIT, wrapped = KC_BUF_INIT;
    bool ok = kc_cryptokey_unwrap_opaque(ck, box, sizeof box, &out) == KC_OK &&
              out.len == sizeof msg && memcmp(out.data, msg, sizeof msg) == 0 &&
              kc_cryptokey_wrap_opaque(ck, msg, sizeof msg, &wrapped, NULL) == KC_OK &&
              wrapped.len == sizeof box &&
              crypto_secretbox_open_easy(box + 24, wrapped.data + 24, wrapped.len - 24,
                                         wrapped.data, ek->data) == 0 &&
              memcmp(box + 24, msg, sizeof msg) == 0;
    kc_buf_free(&out);
    kc_buf_free(&wrapped);
    return ok;
}

static void check_epks(vec_ctx *ctx, const char *vname, kc_cryptokey *ck, json_t *res)
{
    json_t *want = json_object_get(res, "get_epks");
    json_t *offer = json_array_get(want, 0);
    kc_epks e;
    if (kc_cryptokey_get_epks(ck, "topic", "decrypt_keys", &e, NULL) != KC_OK) {
        vec_fail(ctx, field_name(vname, "get_epks"), "get_epks failed");
        return;
    }
    bool shape = e.n == json_array_size(offer) && e.has_legacy == (json_array_size(want) == 2);
    for (size_t i = 0; shape && i < e.n; i++)
        shape = e.keys[i].kind == KC_KEM_PK &&
                e.keys[i].version == json_integer_value(json_object_get(json_array_get(offer, i), "version"));
    if (shape && e.has_legacy) {
        /* upstream's extra entry repeats the v1 key of the offer; so must ours */
        kc_buf w0 = KC_BUF_INIT, w1 = KC_BUF_INIT;
        vec_bytes(json_object_get(json_array_get(offer, 0), "bytes"), &w0);
        vec_bytes(json_object_get(json_array_get(want, 1), "bytes"), &w1);
        shape = w0.len == w1.len && memcmp(w0.data, w1.data, w0.len) == 0 &&
                kc_key_equal(&e.legacy, &e.keys[0]);
        kc_buf_free(&w0);
        kc_buf_free(&w1);
    }
    check(ctx, vname, "get_epks_shape", shape,
          "got %zu keys (legacy %d), want the vector's versions and legacy entry", e.n,
          e.has_legacy);
    vec_skip(ctx, field_name(vname, "get_epks_bytes"),
             "upstream's ephemeral secret is random and not in the vector");

    /* use_epks with the vector's peers: the v5 entry is skipped, the v1 one pairs */
    json_t *peers_j = json_object_get(res, "use_epks_peer");
    json_t *shared_j = json_object_get(res, "use_epks_shared");
    json_t *ours_j = json_object_get(res, "use_epks_ours");
    size_t np = json_array_size(peers_j);
    kc_key *peers = calloc(np + 1, sizeof(kc_key));
    bool parsed = peers != NULL;
    for (size_t i = 0; parsed && i < np; i++) {
        kc_buf b = KC_BUF_INIT;
        parsed = vec_bytes(json_array_get(peers_j, i), &b) &&
                 kc_key_from_bytes(&peers[i], KC_KEM_PK, b.data, b.len, NULL) == KC_OK;
        kc_buf_free(&b);
    }
    kc_kem_results r = {0};
    bool ok = parsed && kc_cryptokey_use_epks(ck, "topic", "decrypt_keys", peers, np, true, &r,
                                               NULL) == KC_OK &&
              r.n == json_array_size(shared_j) && r.n == json_array_size(ours_j);
    for (size_t i = 0; ok && i < r.n; i++) {
        /* upstream's "ours" is the offered key of that version; so is ours */
        kc_buf w = KC_BUF_INIT, g = KC_BUF_INIT;
        vec_bytes(json_array_get(ours_j, i), &w);
        vec_bytes(json_object_get(json_array_get(offer, 0), "bytes"), &g);
        ok = r.items[i].len == 32 && w.len == g.len && memcmp(w.data, g.data, w.len) == 0 &&
             kc_key_equal(&r.items[i].ours, &e.keys[0]);
        kc_buf_free(&w);
        kc_buf_free(&g);
    }
    check(ctx, vname, "use_epks_pairing", ok,
          "use_epks did not pair exactly the vector's peers with our offered key");
    vec_skip(ctx, field_name(vname, "use_epks_shared_bytes"),
             "X25519 with upstream's random ephemeral secret, which the vector does not record");
    kc_kem_results_clear(&r);
    for (size_t i = 0; peers && i < np; i++)
        kc_key_clear(&peers[i]);
    free(peers);
    kc_epks_clear(&e);
}

static void cryptokey_file(vec_ctx *ctx, const char *vname, json_t *v, const char *dir,
                           size_t index)
{
    json_t *res = json_object_get(v, "result");
    kc_buf file = vec_req_bytes(ctx, v, "file");
    char fname[64];
    snprintf(fname, sizeof fname, "vector%zu.crypto", index);
    char *path = tc_path(dir, fname);
    tc_write_file(path, file.data, file.len);
    kc_cryptokey *ck = NULL;
    kc_err err;
    kc_err_clear(&err);
    kc_log_set_sink(quiet_sink, NULL);
    kc_status st = kc_cryptokey_open(&ck, path, NULL, 0, &err);
    kc_log_set_sink(NULL, NULL);
    bool want_ok = json_is_true(json_object_get(res, "ok"));
    if (!want_ok) {
        /* upstream's ValueError: nothing usable by this build (unsupported),
         * or malformed (invalid); either way the message names the file */
        check(ctx, vname, "rejected",
              (st == KC_ERR_UNSUPPORTED || st == KC_ERR_INVALID) && strstr(err.msg, path),
              "got %s (%s), want a rejection naming the file", kc_status_str(st), err.msg);
    } else if (st != KC_OK) {
        vec_fail(ctx, vname, "load failed: %s", err.msg);
    } else {
        json_int_t num = json_integer_value(json_object_get(res, "num_spk"));
        check(ctx, vname, "num_spk", kc_cryptokey_num_spk(ck) == (size_t)num, "got %zu, want %lld",
              kc_cryptokey_num_spk(ck), (long long)num);
        json_t *spks = json_object_get(res, "spks");
        for (size_t i = 0; i < json_array_size(spks) && i < kc_cryptokey_num_spk(ck); i++) {
            kc_key k;
            kc_buf b = KC_BUF_INIT;
            kc_cryptokey_get_spk(ck, i, &k, NULL);
            kc_key_bytes(&k, &b);
            check_bytes_field(ctx, vname, "spks", b.data, b.len, json_array_get(spks, i));
            kc_key_clear(&k);
            kc_buf_free(&b);
        }
        kc_buf id = KC_BUF_INIT;
        kc_cryptokey_get_id_spk(ck, &id, NULL);
        check_bytes_field(ctx, vname, "id_spk", id.data, id.len, json_object_get(res, "id_spk"));
        kc_buf_free(&id);
        json_t *vers = json_object_get(res, "ephk_versions_usable");
        int got[16];
        size_t ng = kc_cryptokey_ephemeral_versions(ck, got, 16);
        bool same = ng == json_array_size(vers);
        for (size_t i = 0; same && i < ng; i++)
            same = got[i] == json_integer_value(json_array_get(vers, i));
        check(ctx, vname, "ephk_versions_usable", same, "got %zu versions, first %d", ng,
              ng ? got[0] : -1);
        bool legacy = json_is_true(json_object_get(res, "ephk_legacy"));
        check(ctx, vname, "ephk_legacy", kc_cryptokey_legacy(ck) == legacy, "got %d, want %d",
              kc_cryptokey_legacy(ck), legacy);
        kc_buf ek = vec_req_bytes(ctx, res, "ek");
        check(ctx, vname, "ek", ek.len == 32 && ek_matches(ck, &ek),
              "opaque values do not use the vector's ek");
        kc_buf_free(&ek);
        check_epks(ctx, vname, ck, res);
    }
    kc_cryptokey_close(ck);
    kc_buf after = tc_read_file(path);
    check_bytes_field(ctx, vname, "file_after_load", after.data, after.len,
                      json_object_get(v, "file_after_load"));
    bool rewritten = json_is_true(json_object_get(v, "rewritten"));
    bool changed = after.len != file.len || memcmp(after.data, file.data, file.len) != 0;
    check(ctx, vname, "rewritten", changed == rewritten, "file %s, want %s",
          changed ? "rewritten" : "untouched", rewritten ? "rewritten" : "untouched");
    kc_buf_free(&after);
    kc_buf_free(&file);
    free(path);
}

void vec_area_keys(vec_ctx *ctx, json_t *root)
{
    if (sodium_init() < 0)
        abort();
    char *dir = tc_tmpdir();
    json_t *vectors = json_object_get(root, "vectors");
    for (size_t i = 0; i < json_array_size(vectors); i++) {
        json_t *v = json_array_get(vectors, i);
        char buf[64];
        const char *vname = vec_name(v, "keys", i, buf, sizeof buf);
        const char *type = vec_req_str(ctx, v, "type");
        if (strcmp(type, "sign_v1_from_seed") == 0)
            sign_v1_from_seed(ctx, vname, v);
        else if (strcmp(type, "kem_v1_from_secret") == 0)
            kem_v1_from_secret(ctx, vname, v);
        else if (strcmp(type, "parse") == 0)
            parse_vector(ctx, vname, v);
        else if (strcmp(type, "sign_open_v4_unsupported") == 0)
            sign_open_v4(ctx, vname, v);
        else if (strcmp(type, "equality") == 0)
            equality(ctx, vname, v);
        else if (strcmp(type, "cryptokey_file") == 0)
            cryptokey_file(ctx, vname, v, dir, i);
        else
            vec_fail(ctx, vname, "unknown vector type %s", type);
    }
    tc_rmtree(dir);
    free(dir);
}
