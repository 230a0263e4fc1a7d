/* Key-exchange variants without Kafka: scripts/variants/bound_reply.lua
 * between parties that each have a cryptokey, a chain and an exchange;
 * refusals (replays, tampering, other roots, other requesters, default
 * messages) and hooks that misbehave. Under ASan this also covers the
 * crypto handles the variant uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_chain.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_provision.h"
#include "kc_test.h"
#include "kc_test_fixture.h"
#include "kc_variant.h"

static tc_pki pki, rogue_pki;

typedef struct party {
    tc_party t;
    kc_variant *v;
} party;

static char *bound_reply_path(void)
{
    const char *src = getenv("KC_SOURCE_DIR");
    char *p;
    assert_true(asprintf(&p, "%s/scripts/variants/bound_reply.lua", src ? src : ".") > 0);
    return p;
}

/* A prodcon party for root "sensor" whose chain is signed under the test
 * root (rogue: under another root, which is the only one it trusts),
 * running the variant file `path`. */
static kc_status party_open(party *p, const char *name, bool rogue, const char *path,
                            kc_err *err)
{
    memset(p, 0, sizeof *p);
    char file[64];
    snprintf(file, sizeof file, "%s.crypto", name);
    char *crypto = tc_path(tc_dir, file);
    tc_party_options o = {.role = KC_ROLE_PRODCON, .root = "sensor", .file = crypto};
    tc_party_make(&p->t, rogue ? &rogue_pki : &pki, name, &o);
    free(crypto);
    kc_variant_config vc = {.path = path, .node_id = name, .cryptokey = p->t.ck,
                            .exchange = p->t.x};
    return kc_variant_open(&p->v, &vc, err);
}

static void party_close(party *p)
{
    kc_variant_free(p->v);
    tc_party_free(&p->t);
}

static void key_of(kc_exchange_keys *keys, uint64_t idx, uint8_t fill)
{
    kc_keyidx ki;
    uint8_t s[KC_SECRET_BYTES];
    kc_keyidx_from_uint(&ki, idx);
    memset(s, fill, sizeof s);
    assert_int_equal(kc_exchange_keys_add(keys, &ki, s), KC_OK);
}

/* One request from `from`, answered by `by` with key (7, 0xAB...): the reply. */
static kc_buf exchange(party *from, party *by, const char *root)
{
    kc_exchange_msgs reqs = {0}, replies = {0};
    kc_exchange_keys keys = {0};
    kc_keyidx wanted;
    kc_keyidx_from_uint(&wanted, 7);
    kc_err err;
    kc_status st = kc_variant_make_request(from->v, root, &wanted, 1, &reqs, &err);
    if (st != KC_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(st, KC_OK);
    assert_int_equal(reqs.n, 1);
    key_of(&keys, 7, 0xAB);
    st = kc_variant_answer_request(by->v, root, &keys, reqs.items[0].value.data,
                                   reqs.items[0].value.len, &replies, &err);
    if (st != KC_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(st, KC_OK);
    assert_int_equal(replies.n, 1);
    kc_buf reply = replies.items[0].value;
    replies.items[0].value = (kc_buf)KC_BUF_INIT;
    kc_exchange_msgs_clear(&reqs);
    kc_exchange_msgs_clear(&replies);
    kc_exchange_keys_clear(&keys);
    return reply;
}

static kc_status accept_with(party *p, const char *root, const kc_buf *reply, kc_exchange_keys *out,
                        kc_err *err)
{
    return kc_variant_accept_reply(p->v, root, reply->data, reply->len, out, err);
}

static void test_round_trip_and_replay(void **state)
{
    char *path = bound_reply_path();
    party a, b;
    kc_err err;
    assert_int_equal(party_open(&a, "a", false, path, &err), KC_OK);
    assert_int_equal(party_open(&b, "b", false, path, &err), KC_OK);
    kc_buf reply = exchange(&a, &b, "sensor");
    kc_exchange_keys got = {0};
    assert_int_equal(accept_with(&a, "sensor", &reply, &got, &err), KC_OK);
    assert_int_equal(got.n, 1);
    kc_keyidx seven;
    kc_keyidx_from_uint(&seven, 7);
    assert_true(kc_keyidx_equal(&got.items[0].ki, &seven));
    uint8_t want[KC_SECRET_BYTES];
    memset(want, 0xAB, sizeof want);
    assert_memory_equal(got.items[0].secret, want, sizeof want);
    kc_exchange_keys_clear(&got);
    /* the same reply again: its request is no longer outstanding */
    assert_int_equal(accept_with(&a, "sensor", &reply, &got, &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "not for an outstanding request of ours"));
    assert_int_equal(got.n, 0);
    kc_buf_free(&reply);
    party_close(&a);
    party_close(&b);
    free(path);
}

static void test_refusals_change_nothing(void **state)
{
    char *path = bound_reply_path();
    party a, b, c, r;
    kc_err err;
    assert_int_equal(party_open(&a, "a", false, path, &err), KC_OK);
    assert_int_equal(party_open(&b, "b", false, path, &err), KC_OK);
    assert_int_equal(party_open(&c, "c", false, path, &err), KC_OK);
    assert_int_equal(party_open(&r, "r", true, path, &err), KC_OK);
    kc_buf reply = exchange(&a, &b, "sensor");
    kc_exchange_keys got = {0};

    /* every tampered byte is refused, and the genuine reply still opens after */
    kc_buf t = KC_BUF_INIT;
    for (size_t i = 0; i < reply.len; i += 5) {
        kc_buf_set(&t, reply.data, reply.len);
        t.data[i] ^= 0x20;
        kc_status st = accept_with(&a, "sensor", &t, &got, &err);
        assert_int_not_equal(st, KC_OK);
        assert_int_equal(got.n, 0);
    }
    kc_buf_set(&t, reply.data, reply.len - 1);
    assert_int_equal(accept_with(&a, "sensor", &t, &got, &err), KC_ERR_DENIED);
    /* another requester (c) cannot use a's reply */
    assert_int_equal(accept_with(&c, "sensor", &reply, &got, &err), KC_ERR_DENIED);
    /* nor under another root */
    assert_int_equal(accept_with(&a, "other", &reply, &got, &err), KC_ERR_DENIED);
    assert_int_equal(accept_with(&a, "sensor", &reply, &got, &err), KC_OK);
    assert_int_equal(got.n, 1);
    kc_exchange_keys_clear(&got);

    /* a request from a node under another root of trust is refused */
    kc_exchange_msgs reqs = {0}, replies = {0};
    kc_exchange_keys keys = {0};
    key_of(&keys, 7, 0xAB);
    assert_int_equal(kc_variant_make_request(r.v, "sensor", NULL, 0, &reqs, &err), KC_OK);
    assert_int_equal(kc_variant_answer_request(b.v, "sensor", &keys, reqs.items[0].value.data,
                                               reqs.items[0].value.len, &replies, &err),
                     KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "request: sender's chain"));
    kc_exchange_msgs_clear(&reqs);
    /* nor one of ours for a root its chain does not cover */
    assert_int_equal(kc_variant_make_request(c.v, "other", NULL, 0, &reqs, &err), KC_OK);
    assert_int_equal(kc_variant_answer_request(b.v, "other", &keys, reqs.items[0].value.data,
                                               reqs.items[0].value.len, &replies, &err),
                     KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "sender's chain"));
    assert_int_equal(replies.n, 0);
    /* a message in the default format is not a request of the variant */
    const uint8_t junk[] = {0x91, 0xc4, 0x01, 0x00};
    assert_int_equal(kc_variant_answer_request(b.v, "sensor", &keys, junk, sizeof junk, &replies,
                                               &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "answer_request refused: request: not a bound-reply/1"));
    assert_int_equal(replies.n, 0);
    kc_exchange_msgs_clear(&reqs);
    kc_exchange_keys_clear(&keys);
    kc_buf_free(&t);
    kc_buf_free(&reply);
    party_close(&a);
    party_close(&b);
    party_close(&c);
    party_close(&r);
    free(path);
}

static char *write_variant(const char *text)
{
    char *path = tc_path(tc_dir, "v.lua");
    tc_write_file(path, (const uint8_t *)text, strlen(text));
    return path;
}

static void test_misbehaving_hooks_fail_with_reasons(void **state)
{
    char *path = write_variant(
        "local keys\n"
        "return {\n"
        "  make_request = function(ctx) if ctx.root == 'loop' then while true do end end\n"
        "                   if ctx.root == 'number' then return 42 end\n"
        "                   if ctx.root == 'many' then local t = {} for i = 1, 17 do t[i] = 'x' end return t end\n"
        "                   if ctx.root == 'empty' then return '' end\n"
        "                   if ctx.root == 'pattern' then return (('a'):rep(200)):match('a*a*a*a*b') end\n"
        "                   if ctx.root == 'shared' then local t = { 'x' }\n"
        "                     for l = 1, 20 do local u = {} for i = 1, 100 do u[i] = t end t = u end\n"
        "                     return crypto.pack(t) end\n"
        "                   return { 'one', 'two' } end,\n"
        "  answer_request = function(ctx, req) keys = req.keys; error('no thanks') end,\n"
        "  accept_reply = function(ctx, reply) if reply.value == 'kept' then return keys end\n"
        "                   return 'not a keyset' end,\n"
        "}\n");
    party a;
    kc_err err;
    assert_int_equal(party_open(&a, "a", false, path, &err), KC_OK);
    kc_exchange_msgs m = {0};
    assert_int_equal(kc_variant_make_request(a.v, "sensor", NULL, 0, &m, &err), KC_OK);
    assert_int_equal(m.n, 2);
    assert_memory_equal(m.items[1].value.data, "two", 3);
    kc_exchange_msgs_clear(&m);
    const struct { const char *root, *why; } bad[] = {
        {"loop", "instruction"}, {"number", "expected a string or a list of 1 to 16 strings, got number"},
        {"many", "expected a string or a list"}, {"empty", "message 1: expected 1 to"},
        /* the work of C functions counts too (issue 9 §2) */
        {"pattern", "hook make_request: instruction budget of 10000000 exceeded (stopped after "},
        {"shared", "crypto.pack: argument 1 (value: larger than 16777216 bytes)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(kc_variant_make_request(a.v, bad[i].root, NULL, 0, &m, &err),
                         KC_ERR_INVALID);
        if (!strstr(err.msg, bad[i].why))
            fail_msg("%s: %s", bad[i].root, err.msg);
        assert_int_equal(m.n, 0);
    }
    /* a hook that keeps the keyset finds it emptied after the call */
    kc_exchange_keys keys = {0}, got = {0};
    key_of(&keys, 1, 0x11);
    assert_int_equal(kc_variant_answer_request(a.v, "sensor", &keys, (const uint8_t *)"r", 1, &m,
                                               &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "no thanks"));
    assert_int_equal(kc_variant_accept_reply(a.v, "sensor", (const uint8_t *)"kept", 4, &got, &err),
                     KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "expected a keyset handle with 1 to"));
    assert_int_equal(kc_variant_accept_reply(a.v, "sensor", (const uint8_t *)"x", 1, &got, &err),
                     KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "got string"));
    assert_int_equal(got.n, 0);
    kc_exchange_keys_clear(&keys);
    party_close(&a);
    free(path);

    /* a file without all three hooks does not load */
    path = write_variant("return { make_request = function() end }\n");
    assert_int_equal(party_open(&a, "a", false, path, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "defines no function answer_request"));
    assert_non_null(strstr(err.msg, path));
    party_close(&a);
    free(path);
}

/* A hook that tries every way to the producer keys it is given gets only
 * ciphertext, indices and names. */
static void test_hooks_cannot_read_producer_keys(void **state)
{
    char *path = write_variant(
        "local kept\n"
        "return {\n"
        "  make_request = function(ctx) return 'files: ' .. tostring(crypto.signing_keys) end,\n"
        "  answer_request = function(ctx, req)\n"
        "    local k, ks, out = crypto.key(), req.keys, {}\n"
        "    kept = ks\n"
        "    for _, key in ipairs { k, k:derive(''), k:derive('kc-keymaterial') } do\n"
        "      out[#out + 1] = crypto.secretbox_open(key, crypto.seal_keys(k, ks)) or 'closed'\n"
        "    end\n"
        "    out[#out + 1] = crypto.seal_keys(k, ks)\n"
        "    out[#out + 1] = crypto.pack(ks:indices())\n"
        "    out[#out + 1] = tostring(ks) .. tostring(#ks)\n"
        "    return out\n"
        "  end,\n"
        "  accept_reply = function(ctx, reply) return nil, tostring(kept) .. ' ' .. #kept end,\n"
        "}\n");
    party a;
    kc_err err;
    assert_int_equal(party_open(&a, "a", false, path, &err), KC_OK);
    kc_exchange_keys keys = {0}, got = {0};
    key_of(&keys, 1, 0x5A);
    key_of(&keys, 2, 0xA5);
    kc_exchange_msgs m = {0};
    /* no file access from the sandbox, not even read-only .crypto handles */
    assert_int_equal(kc_variant_make_request(a.v, "sensor", NULL, 0, &m, &err), KC_OK);
    assert_memory_equal(m.items[0].value.data, "files: nil", 10);
    kc_exchange_msgs_clear(&m);
    assert_int_equal(kc_variant_answer_request(a.v, "sensor", &keys, (const uint8_t *)"r", 1, &m,
                                               &err), KC_OK);
    assert_int_equal(m.n, 6);
    for (size_t i = 0; i < 3; i++)
        assert_memory_equal(m.items[i].value.data, "closed", 6);
    for (size_t i = 0; i < m.n; i++)
        for (size_t j = 0; j < keys.n; j++)
            assert_null(memmem(m.items[i].value.data, m.items[i].value.len,
                               keys.items[j].secret, 8));
    /* the keyset the hook kept was emptied when the call returned */
    assert_int_equal(kc_variant_accept_reply(a.v, "sensor", (const uint8_t *)"x", 1, &got, &err),
                     KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "kafkacrypto keyset (0 keys) 0"));
    kc_exchange_msgs_clear(&m);
    kc_exchange_keys_clear(&keys);
    party_close(&a);
    free(path);
}

int main(void)
{
    kc_init();
    if (!getenv("KC_TEST_LOG"))
        kc_log_set_level(KC_LOG_CRITICAL);
    tc_pki_init(&pki, "variant test rot", "variant test provisioner");
    tc_pki_init(&rogue_pki, "variant test rogue rot", "variant test provisioner");
#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_dir, tc_teardown_dir)
    const struct CMUnitTest tests[] = {
        T(test_round_trip_and_replay),
        T(test_refusals_change_nothing),
        T(test_misbehaving_hooks_fail_with_reasons),
        T(test_hooks_cannot_read_producer_keys),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tc_pki_clear(&pki);
    tc_pki_clear(&rogue_pki);
    return rc;
}
