/* ratchet.json: a `.seed` file through our file-backed ratchet — the file
 * after opening and after each increment, and get_key_value_generators for
 * several roots and node ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_ratchet.h"
#include "kc_test.h"
#include "vec_keyidx.h"

static void run_query(vec_ctx *ctx, const char *name, kc_ratchet *r, json_t *q)
{
    kc_buf root = KC_BUF_INIT, node = KC_BUF_INIT;
    json_t *t = json_object_get(q, "topic"), *n = json_object_get(q, "node");
    if (json_is_string(t))  /* a plain text topic, not hex */
        kc_buf_set(&root, json_string_value(t), json_string_length(t));
    else
        vec_bytes(t, &root);
    bool has_node = n && !json_is_null(n) && vec_bytes(n, &node);
    kc_keyidx ki;
    uint8_t secret[KC_SECRET_BYTES], salt[16], key[32], nonce[24];
    kc_keygen kg, vg;
    kc_err err;
    if (kc_ratchet_get_key_value_generators(r, root.data, root.len,
                                            has_node ? (node.data ? node.data : (const uint8_t *)"") : NULL,
                                            node.len, &ki, secret, &kg, &vg, &err) != KC_OK) {
        vec_fail(ctx, name, "get_key_value_generators: %s", err.msg);
    } else {
        json_t *res = json_object_get(q, "result");
        vec_check_keyidx(ctx, name, &ki, json_object_get(res, "keyidx"));
        vec_check_bytes(ctx, name, "topic_secret", secret, sizeof secret,
                        json_object_get(res, "topic_secret"));
        kc_keygen *gens[2] = {&kg, &vg};
        const char *fields[2] = {"key_gen_first", "value_gen_first"};
        for (int i = 0; i < 2; i++) {
            kc_keygen_next(gens[i], salt, key, nonce);
            json_t *f = json_object_get(res, fields[i]);
            vec_check_bytes(ctx, name, fields[i], key, sizeof key, json_object_get(f, "key"));
            vec_check_bytes(ctx, name, fields[i], nonce, sizeof nonce, json_object_get(f, "nonce"));
        }
        kc_keygen_clear(&kg);
        kc_keygen_clear(&vg);
    }
    kc_buf_free(&root);
    kc_buf_free(&node);
}

static void run_vector(vec_ctx *ctx, const char *name, json_t *v)
{
    char *dir = tc_tmpdir();
    char *path = tc_path(dir, "node.seed");
    kc_buf initial = vec_req_bytes(ctx, v, "initial_file");
    tc_write_file(path, initial.data, initial.len);
    kc_ratchet *r = NULL;
    kc_err err;
    if (kc_ratchet_open_file(path, NULL, &r, &err) != KC_OK) {
        vec_fail(ctx, name, "open: %s", err.msg);
        goto out;
    }
    json_int_t done = 0;
    size_t i;
    json_t *stage;
    json_array_foreach(json_object_get(v, "stages"), i, stage) {
        char sname[160];
        snprintf(sname, sizeof sname, "%s/stage%zu", name, i);
        json_int_t want = json_integer_value(json_object_get(stage, "after_increments"));
        for (; done < want; done++)
            if (kc_ratchet_increment(r, &err) != KC_OK)
                vec_fail(ctx, sname, "increment: %s", err.msg);
        kc_buf file = tc_read_file(path);
        vec_check_bytes(ctx, sname, "file", file.data, file.len, json_object_get(stage, "file"));
        kc_buf_free(&file);
        size_t j;
        json_t *q;
        json_array_foreach(json_object_get(stage, "queries"), j, q) {
            char qname[200];
            snprintf(qname, sizeof qname, "%s/query%zu", sname, j);
            run_query(ctx, qname, r, q);
        }
    }
out:
    kc_ratchet_close(r);
    kc_buf_free(&initial);
    tc_rmtree(dir);
    free(path);
    free(dir);
}

void vec_area_ratchet(vec_ctx *ctx, json_t *root)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "vectors"), i, v) {
        char buf[64];
        run_vector(ctx, vec_name(v, "ratchet", i, buf, sizeof buf), v);
    }
}
