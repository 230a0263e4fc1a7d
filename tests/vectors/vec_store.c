/* store.json: node config files as upstream writes them (spec §10).
 *
 * Checked here: parsing and byte-identical rewriting of upstream's files,
 * load_value / load_section typing, new CryptoStore and KafkaCryptoStore
 * files, replaying simple-provision's stores, and the str_encode /
 * str_decode table; and the node's other two files: the .crypto file
 * (keys, opaque values), the .seed file (one increment at open) and what a
 * producer run leaves behind (its message and the wrapped `oldkeys`). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "kc_cryptokey_file.h"
#include "kc_hex.h"
#include "kc_ini.h"
#include "kc_log.h"
#include "kc_mp.h"
#include "kc_root.h"
#include "kc_serde.h"
#include "kc_store.h"
#include "kc_test_rng.h"
#include "kc_test.h"
#include "kc_value.h"
#include "vec.h"

static const char *const no_ca_files[] = {NULL}; /* the generator hid the CA bundle */
/* upstream's files trust its temporary root: reproduce them exactly */
static const kc_store_options kafka_opts = {.kafka = true, .keep_log_level = true,
                                            .ca_files = no_ca_files, .trust_temporary_rot = true};

/* A JSON value as store.json shows what CryptoStore returns: bytes as hex. */
static bool value_matches(const kc_value *v, json_t *want, char *why, size_t cap)
{
    char *got = NULL;
    if (v->type == KC_VALUE_BYTES) {
        got = malloc(2 * v->len + 1);
        kc_hex(v->data, v->len, got);
    } else if (v->type != KC_VALUE_NONE) {
        kc_value_to_text(v, &got, NULL);
    }
    bool ok;
    switch (json_typeof(want)) {
    case JSON_NULL: ok = v->type == KC_VALUE_NONE; break;
    case JSON_TRUE: ok = v->type == KC_VALUE_BOOL && v->i == 1; break;
    case JSON_FALSE: ok = v->type == KC_VALUE_BOOL && v->i == 0; break;
    case JSON_INTEGER: ok = v->type == KC_VALUE_INT && v->i == json_integer_value(want); break;
    case JSON_REAL: ok = v->type == KC_VALUE_FLOAT && v->f == json_real_value(want); break;
    case JSON_STRING:
        ok = (v->type == KC_VALUE_TEXT || v->type == KC_VALUE_BYTES) && got &&
             strcmp(got, json_string_value(want)) == 0;
        break;
    default: ok = false;
    }
    if (!ok) {
        char *w = json_dumps(want, JSON_ENCODE_ANY);
        snprintf(why, cap, "got type %d value %.200s, want %.200s", (int)v->type,
                 got ? got : "None", w ? w : "?");
        free(w);
    }
    free(got);
    return ok;
}

static char *write_temp_config(const char *dir, const char *node, const char *text)
{
    char name[300];
    snprintf(name, sizeof name, "%.120s.config", node);
    char *path = tc_path(dir, name);
    tc_write_file(path, (const uint8_t *)text, strlen(text));
    return path;
}

static void check_file_is(vec_ctx *ctx, const char *name, const char *path, const char *want)
{
    kc_buf got = tc_read_file(path);
    if (got.len == strlen(want) && memcmp(got.data, want, got.len) == 0)
        vec_pass(ctx, name);
    else
        vec_fail(ctx, name, "file differs:\n--- got\n%.*s\n--- want\n%s", (int)got.len,
                 (const char *)got.data, want);
    kc_buf_free(&got);
}

/* parse + write of the upstream text must give it back byte for byte */
static void check_rewrite(vec_ctx *ctx, const char *vname, const char *text)
{
    char name[200];
    snprintf(name, sizeof name, "%.120s: ini parse and rewrite unchanged", vname);
    kc_ini ini;
    kc_ini_init(&ini);
    kc_err err;
    kc_buf out = KC_BUF_INIT;
    if (kc_ini_parse(&ini, (const uint8_t *)text, strlen(text), vname, &err) != KC_OK)
        vec_fail(ctx, name, "%s", err.msg);
    else if (kc_ini_write(&ini, &out) != KC_OK || out.len != strlen(text) ||
             memcmp(out.data, text, out.len) != 0)
        vec_fail(ctx, name, "rewrite differs:\n%.*s", (int)out.len, (const char *)out.data);
    else
        vec_pass(ctx, name);
    kc_buf_free(&out);
    kc_ini_free(&ini);
}

static void check_values(vec_ctx *ctx, const char *vname, kc_store *s, json_t *values)
{
    const char *key;
    json_t *want;
    json_object_foreach(values, key, want) {
        char name[200], why[600];
        snprintf(name, sizeof name, "%.120s: load_value %s", vname, key);
        kc_value v = kc_value_none();
        kc_err err;
        if (kc_store_load_value(s, NULL, key, &v, &err) != KC_OK)
            vec_fail(ctx, name, "%s", err.msg);
        else if (!value_matches(&v, want, why, sizeof why))
            vec_fail(ctx, name, "%s", why);
        else
            vec_pass(ctx, name);
        kc_value_clear(&v);
    }
}

static void check_sections(vec_ctx *ctx, const char *vname, kc_store *s, json_t *sections)
{
    const char *sec;
    json_t *want;
    json_object_foreach(sections, sec, want) {
        char name[200], why[600];
        snprintf(name, sizeof name, "%.120s: load_section %s", vname, sec);
        kc_section got;
        kc_err err;
        if (kc_store_load_section(s, sec, false, &got, &err) != KC_OK) {
            vec_fail(ctx, name, "%s", err.msg);
            continue;
        }
        bool ok = got.n == json_object_size(want);
        if (!ok)
            snprintf(why, sizeof why, "%zu entries, want %zu", got.n, json_object_size(want));
        const char *k;
        json_t *wv;
        json_object_foreach(want, k, wv) {
            const kc_value *v = kc_section_get(&got, k);
            if (ok && !v) {
                snprintf(why, sizeof why, "key %s missing", k);
                ok = false;
            } else if (ok && !value_matches(v, wv, why, sizeof why)) {
                ok = false;
            }
        }
        if (ok)
            vec_pass(ctx, name);
        else
            vec_fail(ctx, name, "%s", why);
        kc_section_clear(&got);
    }
}

/* simple-provision's sequence of stores on a new KafkaCryptoStore, with the
 * values this node's file holds: must give upstream's file exactly. */
static void check_replay(vec_ctx *ctx, const char *vname, const char *dir, const char *node,
                         json_t *v)
{
    char name[200];
    snprintf(name, sizeof name, "%.120s: simple-provision stores on a new file", vname);
    json_t *secs = json_object_get(v, "decoded_sections");
    json_t *vals = json_object_get(v, "decoded_values");
    kc_buf chain = vec_req_bytes(ctx, json_object_get(secs, "chains"), "chain0");
    kc_buf rot = vec_req_bytes(ctx, json_object_get(secs, "allowlist"), "rot0");
    json_t *maxage = json_object_get(json_object_get(secs, "crypto"), "maxage");
    char *path = tc_path(dir, "replay.config");
    kc_store *s = NULL;
    kc_err err;
    kc_value m = kc_value_int(json_integer_value(maxage));
    kc_value c = kc_value_bytes(chain.data, chain.len), r = kc_value_bytes(rot.data, rot.len);
    kc_value ck = kc_value_text(json_string_value(json_object_get(vals, "cryptokey")));
    kc_value rt = kc_value_text(json_string_value(json_object_get(vals, "ratchet")));
    kc_value yes = kc_value_bool(true);
    kc_status st = kc_store_open(&s, path, node, &kafka_opts, &err);
    if (st == KC_OK) st = kc_store_store_value(s, "crypto", "maxage", &m, &err);
    if (st == KC_OK) st = kc_store_store_value(s, "chains", "chain0", &c, &err);
    if (st == KC_OK) st = kc_store_store_value(s, "allowlist", "rot0", &r, &err);
    if (st == KC_OK) st = kc_store_store_value(s, "allowlist", "temporary", NULL, &err);
    if (st == KC_OK) st = kc_store_store_value(s, NULL, "cryptokey", &ck, &err);
    if (st == KC_OK) st = kc_store_store_value(s, NULL, "ratchet", &rt, &err);
    if (st == KC_OK) st = kc_store_store_value(s, NULL, "mgmt_long_keyindex", &yes, &err);
    kc_store_close(s);
    if (st != KC_OK)
        vec_fail(ctx, name, "%s", err.msg);
    else
        check_file_is(ctx, name, path, vec_req_str(ctx, v, "config_text"));
    remove(path);
    free(path);
    kc_buf_free(&chain);
    kc_buf_free(&rot);
}

/* ---- the .crypto and .seed files ------------------------------------------------ */

static kc_cryptokey *open_crypto(vec_ctx *ctx, const char *name, json_t *v)
{
    kc_buf file = vec_req_bytes(ctx, v, "crypto_file");
    kc_cryptokey *ck = NULL;
    kc_err err;
    if (kc_cryptokey_open_bytes(&ck, file.data, file.len, name, NULL, 0, &err) != KC_OK)
        vec_fail(ctx, name, "%s", err.msg);
    kc_buf_free(&file);
    return ck;
}

/* The file's key equals the public half of the secret key it stores, and
 * its opaque-value key is the vector's ek: our wrap opens with that ek. */
static void check_crypto_file(vec_ctx *ctx, const char *vname, json_t *v)
{
    char name[200];
    snprintf(name, sizeof name, "%.120s: .crypto file", vname);
    kc_cryptokey *ck = open_crypto(ctx, name, v);
    if (!ck)
        return;
    json_t *sks = json_array_get(json_object_get(v, "crypto_decoded"), 1);
    kc_buf sk = KC_BUF_INIT, ek = vec_req_bytes(ctx, v, "ek"), wrapped = KC_BUF_INIT;
    kc_key spk = {0};
    kc_err err;
    const uint8_t probe[] = "opaque value probe";
    uint8_t opened[sizeof probe];
    if (kc_cryptokey_num_spk(ck) != json_array_size(sks) ||
        !vec_bytes(json_array_get(sks, 0), &sk) || sk.len != 64)
        vec_fail(ctx, name, "%zu signing keys, want %zu", kc_cryptokey_num_spk(ck),
                 json_array_size(sks));
    else if (kc_cryptokey_get_spk(ck, 0, &spk, &err) != KC_OK)
        vec_fail(ctx, name, "%s", err.msg);
    else if (memcmp(spk.x, sk.data + 32, 32) != 0)
        vec_fail(ctx, name, "public key %s, want %s", tc_tohex(spk.x, 32), tc_tohex(sk.data + 32, 32));
    else if (kc_cryptokey_wrap_opaque(ck, probe, sizeof probe, &wrapped, &err) != KC_OK)
        vec_fail(ctx, name, "%s", err.msg);
    else if (ek.len != crypto_secretbox_KEYBYTES || wrapped.len != sizeof probe + 40 ||
             crypto_secretbox_open_easy(opened, wrapped.data + 24, wrapped.len - 24,
                                        wrapped.data, ek.data) != 0 ||
             memcmp(opened, probe, sizeof probe) != 0)
        vec_fail(ctx, name, "a wrapped value does not open with the vector's ek");
    else
        vec_pass(ctx, name);
    kc_key_clear(&spk);
    kc_buf_free(&sk);
    kc_buf_free(&ek);
    kc_buf_free(&wrapped);
    kc_cryptokey_close(ck);
}

/* [index, secret] of a .seed file */
static bool seed_index(const kc_buf *file, int64_t *index)
{
    kc_mp_doc doc;
    if (kc_mp_decode(&doc, file->data, file->len, "seed", NULL) != KC_OK)
        return false;
    const msgpack_object *o = kc_mp_root(&doc);
    const uint8_t *p;
    bool ok = o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2 &&
              kc_mp_int(&o->via.array.ptr[0], index) &&
              kc_mp_bytes_len(&o->via.array.ptr[1], 32, &p);
    kc_mp_doc_free(&doc);
    return ok;
}

/* Opening the ratchet advances the file once. With `after` (the file after
 * upstream's run) the new content must equal it byte for byte; otherwise
 * the index must have grown by one. The ratchet stays open in *out. */
static void check_seed_file(vec_ctx *ctx, const char *vname, const char *dir, json_t *v,
                            json_t *after, kc_ratchet **out)
{
    char name[200];
    snprintf(name, sizeof name, "%.120s: .seed file advances once at open", vname);
    char *path = tc_path(dir, "node.seed");
    kc_buf seed = vec_req_bytes(ctx, v, "seed_file"), now = KC_BUF_INIT;
    tc_write_file(path, seed.data, seed.len);
    kc_err err;
    int64_t before, then;
    *out = NULL;
    if (kc_ratchet_open_file(path, NULL, out, &err) != KC_OK) {
        vec_fail(ctx, name, "%s", err.msg);
    } else {
        now = tc_read_file(path);
        if (after)
            vec_check_bytes(ctx, name, "seed file after open", now.data, now.len,
                            json_object_get(after, "seed_file"));
        else if (!seed_index(&seed, &before) || !seed_index(&now, &then) || then != before + 1)
            vec_fail(ctx, name, "seed file after open is %s", tc_tohex(now.data, now.len));
        else
            vec_pass(ctx, name);
    }
    kc_buf_free(&seed);
    kc_buf_free(&now);
    free(path);
}

static double fixed_now(void *ctx)
{
    return *(const double *)ctx;
}

/* A producer run of upstream: its message to `topic` is reproduced by our
 * ratchet and serializer (the plaintext is recovered with the key our
 * ratchet derives), and the producer record it persisted is what we
 * export, wrapped with the node's ek. */
static void check_producer_run(vec_ctx *ctx, const char *vname, json_t *v, json_t *run,
                               kc_ratchet *ratchet)
{
    char name[200];
    snprintf(name, sizeof name, "%.120s after run: serialized message and oldkeys", vname);
    kc_cryptokey *ck = open_crypto(ctx, name, v);
    const char *topic = vec_req_str(ctx, run, "topic");
    double now = json_number_value(json_object_get(run, "fixed_time_crypto_module"));
    kc_buf want = vec_req_bytes(ctx, run, "serialized"), id = KC_BUF_INIT, out = KC_BUF_INIT;
    kc_buf oldkeys = KC_BUF_INIT, wrapped = vec_req_bytes(ctx, run, "oldkeys_wrapped");
    kc_serde *producer = NULL, *consumer = NULL;
    kc_message *m = kc_message_new();
    kc_err err = {0};
    kc_keyidx ki;
    uint8_t secret[KC_SECRET_BYTES];
    const uint8_t *plain;
    size_t plain_len, count;
    kc_kind kind = KC_KIND_VALUE;
    kc_serde_config c;
    kc_serde_config_init(&c);
    c.now_fn = fixed_now;
    c.now_ctx = &now;
    /* the run's node used upstream's default topic rule */
    char root[KC_TOPIC_NAME_MAX + 1];
    bool ok = ck && m && kc_root_default(".", topic, root, sizeof root, &err) == KC_OK &&
              kc_cryptokey_get_id_spk(ck, &id, &err) == KC_OK &&
              kc_ratchet_derive(ratchet, (const uint8_t *)root, strlen(root), id.data, id.len,
                                &ki, secret, &err) == KC_OK &&
              kc_serde_new(&c, &consumer, &err) == KC_OK &&
              kc_serde_add_consumer_key(consumer, root, &ki, secret, &err) == KC_OK;
    if (ok) {
        /* upstream's run serialized one value or one key: find out which */
        ok = kc_serde_deserialize(consumer, kind, topic, want.data, want.len, m, &err) == KC_OK;
        if (ok && !kc_message_is_cleartext(m, false)) {
            kind = KC_KIND_KEY;
            ok = kc_serde_deserialize(consumer, kind, topic, want.data, want.len, m, &err) == KC_OK;
        }
        ok = ok && kc_message_get(m, false, &plain, &plain_len, &err) == KC_OK;
        if (!ok)
            snprintf(err.msg, sizeof err.msg, "the run's message does not decrypt with the key "
                     "our ratchet derives");
    }
    c.ratchet = ratchet;
    c.node_id = id.data;
    c.node_id_len = id.len;
    if (ok)
        ok = kc_serde_new(&c, &producer, &err) == KC_OK &&
             kc_serde_serialize(producer, kind, topic, plain, plain_len, &out, &err) == KC_OK &&
             kc_serde_export_pgens(producer, &oldkeys, &count, &err) == KC_OK;
    if (!ok)
        vec_fail(ctx, name, "%s", err.msg);
    else if (vec_check_bytes(ctx, name, "serialized", out.data, out.len,
                             json_object_get(run, "serialized")) &&
             vec_check_bytes(ctx, name, "exported oldkeys", oldkeys.data, oldkeys.len,
                             json_object_get(run, "oldkeys_unwrapped"))) {
        kc_buf_reset(&out);
        snprintf(name, sizeof name, "%.120s after run: unwrap oldkeys", vname);
        if (kc_cryptokey_unwrap_opaque(ck, wrapped.data, wrapped.len, &out) != KC_OK)
            vec_fail(ctx, name, "oldkeys does not unwrap with the node's .crypto file");
        else
            vec_check_bytes(ctx, name, "unwrapped", out.data, out.len,
                            json_object_get(run, "oldkeys_unwrapped"));
    }
    sodium_memzero(secret, sizeof secret);
    kc_message_free(m);
    kc_serde_free(producer);
    kc_serde_free(consumer);
    kc_cryptokey_close(ck);
    kc_buf_free(&want);
    kc_buf_free(&id);
    kc_buf_free(&out);
    kc_buf_free(&oldkeys);
    kc_buf_free(&wrapped);
}

/* New .crypto and .seed files hold random secrets: everything else must be
 * upstream's (the .crypto with the vector's ek substituted must be the
 * vector's bytes; the seed [1, 32 bytes] after the increment at open). */
static void fresh_key_files(vec_ctx *ctx, const char *vname, const char *dir, json_t *v)
{
    char name[200];
    snprintf(name, sizeof name, "%.120s: new .crypto file", vname);
    char *cpath = tc_path(dir, "fresh.crypto"), *spath = tc_path(dir, "fresh.seed");
    kc_cryptokey *ck = NULL;
    kc_ratchet *r = NULL;
    kc_err err;
    json_t *dec = json_object_get(v, "crypto_decoded");
    if (kc_cryptokey_open(&ck, cpath, NULL, 0, &err) != KC_OK) {
        vec_fail(ctx, name, "%s", err.msg);
    } else {
        kc_buf got = tc_read_file(cpath), ek = KC_BUF_INIT;
        kc_buf want = vec_req_bytes(ctx, v, "crypto_file");
        /* mp([2, [], bin(ek), false, [5,2,1]]): ek sits at bytes 5..36 */
        if (got.len == want.len && vec_bytes(json_array_get(dec, 2), &ek) && ek.len == 32 &&
            want.len > 37 && memcmp(want.data + 5, ek.data, 32) == 0)
            memcpy(got.data + 5, ek.data, 32);
        vec_check_bytes(ctx, name, ".crypto with the vector's ek", got.data, got.len,
                        json_object_get(v, "crypto_file"));
        kc_buf_free(&got);
        kc_buf_free(&ek);
        kc_buf_free(&want);
        kc_cryptokey_close(ck);
    }
    snprintf(name, sizeof name, "%.120s: new .seed file", vname);
    if (kc_ratchet_open_file(spath, NULL, &r, &err) != KC_OK) {
        vec_fail(ctx, name, "%s", err.msg);
    } else {
        kc_buf got = tc_read_file(spath), want = vec_req_bytes(ctx, v, "seed_file");
        int64_t gi, wi;
        if (seed_index(&got, &gi) && seed_index(&want, &wi) && gi == wi && got.len == want.len)
            vec_pass(ctx, name);
        else
            vec_fail(ctx, name, "got %s, want the shape of %s", tc_tohex(got.data, got.len),
                     tc_tohex(want.data, want.len));
        kc_buf_free(&got);
        kc_buf_free(&want);
        kc_ratchet_close(r);
    }
    free(cpath);
    free(spath);
}

/* wrap_opaque with the vector's nonce, its config-file form, and unwrap
 * with the right and a wrong ek. */
static void wrap_vector(vec_ctx *ctx, const char *vname, json_t *v)
{
    char name[200];
    snprintf(name, sizeof name, "%.120s: wrap, config value, unwrap", vname);
    kc_buf ek = vec_req_bytes(ctx, v, "ek"), wrong = vec_req_bytes(ctx, v, "wrong_ek");
    kc_buf plain = vec_req_bytes(ctx, v, "plaintext"), want = vec_req_bytes(ctx, v, "wrapped");
    kc_buf out = KC_BUF_INIT, text = KC_BUF_INIT;
    kc_cryptokey *ck = NULL, *other = NULL;
    kc_err err;
    /* a .crypto file holding only this ek */
    uint8_t file[] = {0x95, 0x02, 0x90, 0xc4, 0x20, [37] = 0xc2, 0x91, 0x01};
    memcpy(file + 5, ek.data, ek.len == 32 ? 32 : 0);
    bool ok = ek.len == 32 && wrong.len == 32 && want.len > 24 &&
              kc_cryptokey_open_bytes(&ck, file, sizeof file, "ek", NULL, 0, &err) == KC_OK;
    memcpy(file + 5, wrong.data, wrong.len == 32 ? 32 : 0);
    ok = ok && kc_cryptokey_open_bytes(&other, file, sizeof file, "wrong ek", NULL, 0, &err) == KC_OK;
    if (ok) {
        tc_rng_script(want.data, 24);
        ok = kc_cryptokey_wrap_opaque(ck, plain.data, plain.len, &out, &err) == KC_OK;
    }
    if (!ok) {
        vec_fail(ctx, name, "%s", err.msg);
    } else if (vec_check_bytes(ctx, name, "wrapped", out.data, out.len,
                               json_object_get(v, "wrapped"))) {
        kc_value value = kc_value_bytes(out.data, out.len);
        const char *cv = vec_req_str(ctx, v, "config_value");
        if (kc_value_encode(&value, false, &text, &err) != KC_OK || text.len != strlen(cv) ||
            memcmp(text.data, cv, text.len) != 0)
            vec_fail(ctx, name, "config value %.*s, want %s", (int)text.len,
                     (const char *)text.data, cv);
        else if (kc_cryptokey_unwrap_opaque(ck, want.data, want.len, &out) != KC_OK)
            vec_fail(ctx, name, "the vector's wrapped value does not unwrap");
        else if (vec_check_bytes(ctx, name, "unwrapped", out.data, out.len,
                                 json_object_get(v, "unwrap")) &&
                 kc_cryptokey_unwrap_opaque(other, want.data, want.len, &out) != KC_ERR_CRYPTO)
            vec_fail(ctx, name, "unwrapped with the wrong ek (upstream: None)");
    }
    kc_cryptokey_close(ck);
    kc_cryptokey_close(other);
    kc_buf_free(&ek);
    kc_buf_free(&wrong);
    kc_buf_free(&plain);
    kc_buf_free(&want);
    kc_buf_free(&out);
    kc_buf_free(&text);
}

static void provisioned_node(vec_ctx *ctx, const char *vname, const char *dir, json_t *v)
{
    const char *node = vec_req_str(ctx, v, "node_id");
    const char *text = vec_req_str(ctx, v, "config_text");
    check_rewrite(ctx, vname, text);

    char *path = write_temp_config(dir, node, text);
    char name[200];
    kc_store *s = NULL;
    kc_err err;
    snprintf(name, sizeof name, "%.120s: KafkaCryptoStore open leaves the file unchanged", vname);
    if (kc_store_open(&s, path, node, &kafka_opts, &err) != KC_OK) {
        vec_fail(ctx, name, "%s", err.msg);
    } else {
        check_file_is(ctx, name, path, text);
        check_values(ctx, vname, s, json_object_get(v, "decoded_values"));
        check_sections(ctx, vname, s, json_object_get(v, "decoded_sections"));
        kc_store_close(s);
    }
    remove(path);
    free(path);
    check_replay(ctx, vname, dir, node, v);

    check_crypto_file(ctx, vname, v);
    json_t *run = json_object_get(v, "after_kafkacrypto_run");
    kc_ratchet *ratchet;
    check_seed_file(ctx, vname, dir, v, run, &ratchet);
    if (!run) {
        kc_ratchet_close(ratchet);
        return;
    }
    const char *text2 = vec_req_str(ctx, run, "config_text");
    snprintf(name, sizeof name, "%.120s after run", vname);
    check_rewrite(ctx, name, text2);
    path = write_temp_config(dir, node, text2);
    snprintf(name, sizeof name, "%.120s after run: oldkeys loads as the wrapped bytes", vname);
    if (kc_store_open(&s, path, node, &kafka_opts, &err) != KC_OK) {
        vec_fail(ctx, name, "%s", err.msg);
    } else {
        kc_value ok = kc_value_none();
        if (kc_store_load_value(s, "crypto", "oldkeys", &ok, &err) != KC_OK)
            vec_fail(ctx, name, "%s", err.msg);
        else if (ok.type != KC_VALUE_BYTES)
            vec_fail(ctx, name, "type %d, want bytes", (int)ok.type);
        else
            vec_check_bytes(ctx, name, "oldkeys", ok.data, ok.len,
                            json_object_get(run, "oldkeys_wrapped"));
        kc_value_clear(&ok);
        kc_store_close(s);
    }
    remove(path);
    free(path);
    if (ratchet)
        check_producer_run(ctx, vname, v, run, ratchet);
    kc_ratchet_close(ratchet);
}

static void fresh_store(vec_ctx *ctx, const char *vname, const char *dir, json_t *v, bool kafka)
{
    const char *node = vec_req_str(ctx, v, "node_id");
    char name[200];
    snprintf(name, sizeof name, "%.120s: new %s file", vname, kafka ? "KafkaCryptoStore" : "CryptoStore");
    char *path = tc_path(dir, kafka ? "fresh-kafka.config" : "fresh.config");
    kc_store *s = NULL;
    kc_err err;
    static const kc_store_options plain = {.keep_log_level = true, .trust_temporary_rot = true};
    if (kc_store_open(&s, path, node, kafka ? &kafka_opts : &plain, &err) != KC_OK) {
        vec_fail(ctx, name, "%s", err.msg);
    } else {
        kc_store_close(s);
        check_file_is(ctx, name, path, vec_req_str(ctx, v, "config_text"));
    }
    remove(path);
    free(path);
}

/* A typed input of the str_encode cases. */
static bool typed_input(json_t *c, kc_value *v, kc_buf *hold)
{
    const char *type = json_string_value(json_object_get(c, "input_type"));
    json_t *in = json_object_get(c, "input");
    if (!type)
        return false;
    if (strcmp(type, "bytes") == 0) {
        if (!vec_bytes(in, hold))
            return false;
        *v = kc_value_bytes(hold->data, hold->len);
    } else if (strcmp(type, "str") == 0) {
        *v = kc_value_text(json_string_value(in));
    } else if (strcmp(type, "bool") == 0) {
        *v = kc_value_bool(json_is_true(in));
    } else if (strcmp(type, "int") == 0) {
        *v = kc_value_int(json_integer_value(in));
    } else if (strcmp(type, "float") == 0) {
        *v = kc_value_float(json_number_value(in));
    } else {
        return false;
    }
    return true;
}

static void str_cases(vec_ctx *ctx, const char *vname, json_t *cases)
{
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *op = vec_req_str(ctx, c, "op");
        char name[200], why[600];
        for (int iskey = 0; iskey < 2; iskey++) {
            json_t *want = json_object_get(c, iskey ? "output_iskey" : "output");
            snprintf(name, sizeof name, "%.120s: %s case %zu%s", vname, op, i, iskey ? " (key)" : "");
            if (strcmp(op, "str_decode") == 0) {
                const char *in = vec_req_str(ctx, c, "input");
                kc_value v = kc_value_none();
                const char *type = json_string_value(json_object_get(c, "output_type"));
                static const char *const names[] = {"NoneType", "bool", "int", "int",
                                                    "float", "str", "bytes"};
                if (kc_value_decode((const uint8_t *)in, strlen(in), iskey, &v) != KC_OK)
                    vec_fail(ctx, name, "decode failed");
                else if (!iskey && type && strcmp(names[v.type], type) != 0)
                    vec_fail(ctx, name, "type %s, want %s", names[v.type], type);
                else if (!value_matches(&v, want, why, sizeof why))
                    vec_fail(ctx, name, "%s", why);
                else
                    vec_pass(ctx, name);
                kc_value_clear(&v);
            } else {
                kc_value v;
                kc_buf hold = KC_BUF_INIT, out = KC_BUF_INIT;
                if (!typed_input(c, &v, &hold))
                    vec_fail(ctx, name, "unknown input_type in vector");
                else if (kc_value_encode(&v, iskey, &out, NULL) != KC_OK ||
                         !json_is_string(want) || out.len != strlen(json_string_value(want)) ||
                         memcmp(out.data, json_string_value(want), out.len) != 0)
                    vec_fail(ctx, name, "got '%.*s', want '%s'", (int)out.len,
                             (const char *)out.data, json_string_value(want));
                else
                    vec_pass(ctx, name);
                kc_buf_free(&hold);
                kc_buf_free(&out);
            }
        }
    }
}

void vec_area_store(vec_ctx *ctx, json_t *root)
{
    /* upstream's open-time warnings (CA lookup, new files) are expected here */
    kc_log_level saved = kc_log_get_level();
    kc_log_set_level(KC_LOG_ERROR);
    char *dir = tc_tmpdir();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "vectors"), i, v) {
        char buf[64];
        const char *vname = vec_name(v, "store", i, buf, sizeof buf);
        const char *source = json_string_value(json_object_get(v, "source"));
        if (!source)
            source = "";
        if (json_object_get(v, "decoded_values")) {
            provisioned_node(ctx, vname, dir, v);
        } else if (strncmp(source, "CryptoStore(", 12) == 0) {
            fresh_store(ctx, vname, dir, v, false);
        } else if (strncmp(source, "KafkaCryptoStore(", 17) == 0) {
            fresh_store(ctx, vname, dir, v, true);
        } else if (json_object_get(v, "cases")) {
            str_cases(ctx, vname, json_object_get(v, "cases"));
        } else if (strstr(source, "CryptoKey(new file)")) {
            fresh_key_files(ctx, vname, dir, v);
        } else if (strstr(source, "wrap_opaque")) {
            wrap_vector(ctx, vname, v);
        } else {
            vec_fail(ctx, vname, "unrecognised store vector (source '%s')", source);
        }
    }
    tc_rmtree(dir);
    free(dir);
    kc_log_set_level(saved);
}
