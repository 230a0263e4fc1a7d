/* The serde: serializers and deserializers end to end, the classification
 * of §4.3, the wait logic of §4.4 (B7), retries of §4.5, the nonce rule
 * (counters, restarts, the key-reuse guard of §7.4.1 with B4), the periodic
 * step and the `oldkeys` structure of §7.10/§10.4, hooks and threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_message.h"
#include "kc_mp.h"
#include "kc_ratchet.h"
#include "kc_serde.h"
#include "kc_test.h"
#include "kc_waits.h"

static char *dir, *seed;
static const uint8_t node_id[32] = {1, 2, 3};

/* ---- fixtures ---- */

typedef struct hooks {
    int sleeps;
    int missing;
    int new_keys;
    double clock;
    kc_serde *add_on_sleep;   /* deliver a key from inside the wait */
    kc_keyidx add_ki;
    uint8_t add_secret[32];
} hooks;

static void count_sleep(void *ctx, double seconds)
{
    hooks *h = ctx;
    h->sleeps++;
    if (h->add_on_sleep && h->sleeps == 3)
        kc_serde_add_consumer_key(h->add_on_sleep, "sensor", &h->add_ki, h->add_secret, NULL);
}

static void on_missing(void *ctx, const char *root, size_t len, const kc_keyidx *ki)
{
    ((hooks *)ctx)->missing++;
}

static void on_new(void *ctx, const char *root, size_t len, const kc_keyidx *ki)
{
    ((hooks *)ctx)->new_keys++;
}

static double fake_now(void *ctx)
{
    return ((hooks *)ctx)->clock;
}

static kc_serde_config config(hooks *h, kc_ratchet *r)
{
    kc_serde_config c;
    kc_serde_config_init(&c);
    c.ratchet = r;
    if (r) {
        c.node_id = node_id;
        c.node_id_len = sizeof node_id;
    }
    c.sleep_fn = count_sleep;
    c.sleep_ctx = h;
    c.now_fn = fake_now;
    c.now_ctx = h;
    c.on_missing_key = on_missing;
    c.on_new_producer_key = on_new;
    c.hook_ctx = h;
    return c;
}

static kc_serde *new_serde(hooks *h, kc_ratchet *r)
{
    kc_serde_config c = config(h, r);
    kc_serde *s;
    assert_int_equal(kc_serde_new(&c, &s, NULL), KC_OK);
    return s;
}

static kc_ratchet *open_seed(void)
{
    kc_ratchet *r;
    kc_err err;
    if (kc_ratchet_open_file(seed, NULL, &r, &err) != KC_OK)
        fail_msg("%s", err.msg);
    return r;
}

typedef struct share_ctx {
    kc_serde *to;
    const char *root;
    int n;
} share_ctx;

static void share_one(void *c, const kc_keyidx *ki, const uint8_t secret[32], double birth,
                      bool can_encrypt)
{
    share_ctx *x = c;
    assert_int_equal(kc_serde_add_consumer_key(x->to, x->root, ki, secret, NULL), KC_OK);
    x->n++;
}

/* What the key exchange does: hand every producer key of root to a consumer. */
static int share_keys(kc_serde *from, kc_serde *to, const char *root)
{
    share_ctx x = {to, root, 0};
    kc_serde_foreach_pgen(from, root, share_one, &x);
    return x.n;
}

static void grab_secret(void *cx, const kc_keyidx *ki, const uint8_t s[32], double b, bool e)
{
    memcpy(cx, s, 32);
}

/* counts records: 1 each, +10 for those able to encrypt */
static void count_records(void *c, const kc_keyidx *ki, const uint8_t s[32], double b, bool e)
{
    *(int *)c += 1 + (e ? 10 : 0);
}

static int ncritical;
static void capture_critical(void *c, kc_log_level l, const char *lg, const char *msg)
{
    if (l == KC_LOG_CRITICAL &&
        strcmp(msg, "Potential key reuse scenario detected! Incrementing ratchet for safety.") == 0 &&
        strcmp(lg, "kafkacrypto.crypto") == 0)
        ncritical++;
}

static int setup(void **state)
{
    dir = tc_tmpdir();
    seed = tc_path(dir, "node.seed");
    kc_log_set_level(KC_LOG_ERROR);
    return 0;
}

static int teardown(void **state)
{
    tc_rmtree(dir);
    free(seed);
    free(dir);
    kc_log_set_level(KC_LOG_WARNING);
    return 0;
}

static void expect_clear(kc_message *m, const char *text)
{
    const uint8_t *p;
    size_t n;
    assert_true(kc_message_is_cleartext(m, false));
    assert_int_equal(kc_message_get(m, false, &p, &n, NULL), KC_OK);
    assert_int_equal(n, strlen(text));
    assert_memory_equal(p, text, n);
}

static void expect_encrypted(kc_message *m, bool later, const kc_buf *raw)
{
    assert_false(kc_message_is_null(m));
    assert_false(kc_message_is_cleartext(m, false));
    assert_int_equal(kc_message_is_possibly_decryptable(m), later);
    const uint8_t *p;
    size_t n;
    kc_message_bytes(m, &p, &n);
    assert_int_equal(n, raw->len);
    if (n)
        assert_memory_equal(p, raw->data, n);
}

/* ---- tests ---- */

static void test_round_trip_and_kind_confusion(void **state)
{
    hooks h = {0};
    kc_ratchet *r = open_seed();
    kc_serde *prod = new_serde(&h, r), *cons = new_serde(&h, NULL);
    kc_buf kw = KC_BUF_INIT, vw = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_KEY, "sensor.a", (const uint8_t *)"k", 1, &kw,
                                        NULL), KC_OK);
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "sensor.a", (const uint8_t *)"v", 1, &vw,
                                        NULL), KC_OK);
    assert_int_equal(kw.data[0], 0x01);
    assert_int_equal(h.new_keys, 1);  /* one generation for the root */
    assert_true(kc_serde_take_new_pgens(prod));
    assert_false(kc_serde_take_new_pgens(prod));
    assert_int_equal(share_keys(prod, cons, "sensor"), 1);
    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_KEY, "sensor.b", kw.data, kw.len, m, NULL), KC_OK);
    expect_clear(m, "k");
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "sensor", vw.data, vw.len, m, NULL), KC_OK);
    expect_clear(m, "v");
    /* a value message into the key deserializer and vice versa: MAC failure */
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_KEY, "sensor.a", vw.data, vw.len, m, NULL), KC_OK);
    expect_encrypted(m, true, &vw);
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "sensor.a", kw.data, kw.len, m, NULL), KC_OK);
    expect_encrypted(m, true, &kw);
    /* another root never has this key */
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "other.sensor", vw.data, vw.len, m,
                                          NULL), KC_OK);
    expect_encrypted(m, true, &vw);
    /* tampering */
    vw.data[vw.len - 1] ^= 1;
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "sensor.a", vw.data, vw.len, m, NULL), KC_OK);
    expect_encrypted(m, true, &vw);
    kc_message_free(m);
    kc_buf_free(&kw);
    kc_buf_free(&vw);
    kc_serde_free(prod);
    kc_serde_free(cons);
    kc_ratchet_close(r);
}

static void test_null_empty_and_not_kafkacrypto(void **state)
{
    hooks h = {0};
    kc_ratchet *r = open_seed();
    kc_serde *prod = new_serde(&h, r);
    kc_buf out = KC_BUF_INIT;
    kc_buf_set(&out, "stale", 5);
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "t", NULL, 0, &out, NULL), KC_OK);
    assert_int_equal(out.len, 0);  /* null in, null out */
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "t", (const uint8_t *)"", 0, &out, NULL),
                     KC_OK);
    assert_int_equal(out.len, 1 + 1 + 34 + 18 + 2 + 16);  /* an empty value is encrypted */
    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(prod, KC_KIND_VALUE, "t", NULL, 0, m, NULL), KC_OK);
    assert_true(kc_message_is_null(m));
    kc_buf empty = KC_BUF_INIT, plain = KC_BUF_INIT;
    assert_int_equal(kc_serde_deserialize(prod, KC_KIND_VALUE, "t", (const uint8_t *)"", 0, m, NULL),
                     KC_OK);
    expect_encrypted(m, false, &empty);
    kc_buf_set(&plain, "plain text", 10);
    assert_int_equal(kc_serde_deserialize(prod, KC_KIND_VALUE, "t", plain.data, plain.len, m, NULL),
                     KC_OK);
    expect_encrypted(m, false, &plain);
    assert_false(kc_message_is_cleartext(m, true));  /* never retried */
    assert_int_equal(h.missing, 0);
    /* bad arguments are errors, and never leave output behind */
    kc_err err;
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, NULL, plain.data, 1, &out, &err),
                     KC_ERR_INVALID);
    assert_int_equal(kc_serde_serialize(prod, (kc_kind)7, "t", plain.data, 1, &out, &err),
                     KC_ERR_INVALID);
    assert_int_equal(out.len, 0);
    assert_int_equal(kc_serde_deserialize(prod, (kc_kind)7, "t", plain.data, 1, m, &err),
                     KC_ERR_INVALID);
    assert_int_equal(kc_serde_deserialize(NULL, KC_KIND_KEY, "t", plain.data, 1, m, &err),
                     KC_ERR_INVALID);
    kc_buf_free(&plain);
    kc_buf_free(&out);
    kc_message_free(m);
    kc_serde_free(prod);
    kc_ratchet_close(r);
}

static void test_consumer_only_cannot_encrypt(void **state)
{
    hooks h = {0};
    kc_serde *cons = new_serde(&h, NULL);
    kc_buf out = KC_BUF_INIT;
    kc_err err;
    assert_int_equal(kc_serde_serialize(cons, KC_KIND_VALUE, "sensor.x", (const uint8_t *)"secret", 6,
                                        &out, &err), KC_ERR_STATE);
    assert_int_equal(out.len, 0);
    assert_non_null(strstr(err.msg, "sensor"));
    kc_buf_free(&out);
    kc_serde_free(cons);
}

static void test_serialize_any_and_messages(void **state)
{
    hooks h = {0};
    kc_ratchet *r = open_seed();
    kc_serde *prod = new_serde(&h, r), *cons = new_serde(&h, NULL);
    kc_buf out = KC_BUF_INIT, wire = KC_BUF_INIT;
    kc_err err;
    bool is_null;
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "a", (const uint8_t *)"x", 1, &wire, NULL),
                     KC_OK);
    uint8_t before[16], after[16];
    kc_serde_producer_state(prod, "a", KC_KIND_VALUE, NULL, before);
    kc_any text = kc_any_text("str", 3), other = kc_any_other(), none = kc_any_none();
    assert_int_equal(kc_serde_serialize_any(prod, KC_KIND_VALUE, "a", &text, &out, &is_null, &err),
                     KC_ERR_INVALID);
    assert_string_equal(err.msg, "Passed value is not bytes or a KafkaCryptoMessage");
    assert_int_equal(kc_serde_serialize_any(prod, KC_KIND_VALUE, "a", &other, &out, &is_null, &err),
                     KC_ERR_INVALID);
    assert_int_equal(kc_serde_serialize_any(prod, KC_KIND_VALUE, "a", &none, &out, &is_null, &err),
                     KC_OK);
    assert_true(is_null);
    kc_serde_producer_state(prod, "a", KC_KIND_VALUE, NULL, after);
    assert_memory_equal(before, after, 16);  /* refusals use no counter */

    /* a decryptable-later message object passes through unchanged ... */
    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "a", wire.data, wire.len, m, NULL), KC_OK);
    assert_int_equal(kc_serde_serialize_message(prod, KC_KIND_VALUE, "a", m, &out, NULL), KC_OK);
    assert_int_equal(out.len, wire.len);
    assert_memory_equal(out.data, wire.data, wire.len);
    /* ... so does a never-decryptable one; a cleartext one is encrypted */
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "a", (const uint8_t *)"zz", 2, m, NULL), KC_OK);
    assert_int_equal(kc_serde_serialize_message(prod, KC_KIND_VALUE, "a", m, &out, NULL), KC_OK);
    assert_int_equal(out.len, 2);
    kc_message_set_cleartext(m, (const uint8_t *)"hello", 5, NULL);
    assert_int_equal(kc_serde_serialize_message(prod, KC_KIND_VALUE, "a", m, &out, NULL), KC_OK);
    share_keys(prod, cons, "a");
    kc_message *back = kc_message_new();
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "a", out.data, out.len, back, NULL), KC_OK);
    expect_clear(back, "hello");
    /* deserializing a message's own bytes (and topic) into it again */
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_KEY, "a", wire.data, wire.len, m, NULL), KC_OK);
    expect_encrypted(m, true, &wire);
    const uint8_t *raw;
    size_t rawlen;
    kc_message_bytes(m, &raw, &rawlen);
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "a", raw, rawlen, m, NULL), KC_OK);
    expect_clear(m, "x");
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "a", (const uint8_t *)"\x01\x90", 2, m, NULL), KC_OK);
    kc_message_bytes(m, &raw, &rawlen);
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_KEY, kc_message_topic(m), raw, rawlen, m,
                                          NULL), KC_OK);
    assert_string_equal(kc_message_topic(m), "a");
    assert_int_equal(kc_message_kind(m), KC_KIND_KEY);
    kc_message_set_null(m);
    assert_int_equal(kc_serde_serialize_message(prod, KC_KIND_VALUE, "a", m, &out, NULL), KC_OK);
    assert_int_equal(out.len, 0);
    assert_int_equal(kc_serde_serialize_message(prod, KC_KIND_VALUE, "a", NULL, &out, &err),
                     KC_ERR_INVALID);
    kc_message_free(m);
    kc_message_free(back);
    kc_buf_free(&out);
    kc_buf_free(&wire);
    kc_serde_free(prod);
    kc_serde_free(cons);
    kc_ratchet_close(r);
}

static void test_unknown_key_then_retry(void **state)
{
    hooks h = {0};
    kc_ratchet *r = open_seed();
    kc_serde *prod = new_serde(&h, r), *cons = new_serde(&h, NULL);
    kc_buf wire = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "sensor.t", (const uint8_t *)"late", 4, &wire, NULL), KC_OK);
    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "sensor.t", wire.data, wire.len, m,
                                          NULL), KC_OK);
    expect_encrypted(m, true, &wire);
    /* §4.4: the first sight waits 9 intervals; the hook fired each time */
    assert_int_equal(h.sleeps, 9);
    assert_int_equal(h.missing, 10);
    kc_keyidx waits[2];
    assert_int_equal(kc_serde_pick_waits(cons, "sensor", waits, 2), 1);
    assert_int_equal(waits[0].type, KC_KEYIDX_BYTES);
    /* a retry before the key arrives: no more waiting (counter at 1) */
    assert_false(kc_message_is_cleartext(m, true));
    assert_true(kc_message_is_possibly_decryptable(m));
    assert_int_equal(h.sleeps, 9);
    /* the key arrives: the wait entry goes, the retry succeeds */
    share_keys(prod, cons, "sensor");
    assert_int_equal(kc_serde_pick_waits(cons, "sensor", waits, 2), 0);
    /* the message keeps the serde alive on its own */
    kc_serde_free(cons);
    assert_true(kc_message_is_cleartext(m, true));
    expect_clear(m, "late");
    assert_string_equal(kc_message_topic(m), "");
    kc_message_free(m);
    kc_buf_free(&wire);
    kc_serde_free(prod);
    kc_ratchet_close(r);
}

static void test_wait_policy(void **state)
{
    hooks h = {0};
    kc_ratchet *r = open_seed();
    kc_serde *prod = new_serde(&h, r);
    kc_buf wire = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "sensor", (const uint8_t *)"w", 1, &wire, NULL), KC_OK);
    kc_message *m = kc_message_new();

    /* B7: later misses wait max_key_wait_intervals */
    kc_serde_config c = config(&h, NULL);
    c.max_key_wait_intervals = 3;
    kc_serde *cons;
    assert_int_equal(kc_serde_new(&c, &cons, NULL), KC_OK);
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "sensor", wire.data, wire.len, m, NULL), KC_OK);
    assert_int_equal(h.sleeps, 9);
    h.sleeps = 0;
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "sensor", wire.data, wire.len, m, NULL), KC_OK);
    assert_int_equal(h.sleeps, 3);
    kc_serde_free(cons);

    /* no initial wait at all */
    c = config(&h, NULL);
    c.initial_wait_intervals = 0;
    assert_int_equal(kc_serde_new(&c, &cons, NULL), KC_OK);
    h.sleeps = 0;
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "sensor", wire.data, wire.len, m, NULL), KC_OK);
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "sensor", wire.data, wire.len, m, NULL), KC_OK);
    assert_int_equal(h.sleeps, 0);
    kc_serde_free(cons);

    /* the key arrives during the wait: the wait ends and the message decrypts */
    cons = new_serde(&h, NULL);
    h.sleeps = 0;
    h.add_on_sleep = cons;
    kc_serde_producer_state(prod, "sensor", KC_KIND_VALUE, &h.add_ki, NULL);
    kc_serde_foreach_pgen(prod, "sensor", grab_secret, h.add_secret);
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "sensor", wire.data, wire.len, m, NULL), KC_OK);
    expect_clear(m, "w");
    assert_int_equal(h.sleeps, 3);
    h.add_on_sleep = NULL;
    kc_serde_free(cons);

    /* unusable key indices never wait and never ask for keys */
    cons = new_serde(&h, NULL);
    h.sleeps = h.missing = 0;
    kc_buf odd = tc_hex("0193" "9100" "c41000000000000000000000000000000000" "c400");
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "sensor", odd.data, odd.len, m, NULL), KC_OK);
    expect_encrypted(m, true, &odd);
    assert_int_equal(h.sleeps + h.missing, 0);
    kc_buf_free(&odd);
    kc_serde_free(cons);

    /* waits per root are bounded: indices come from anyone who can write */
    cons = new_serde(&h, NULL);
    h.missing = 0;
    for (uint32_t i = 0; i < 1100; i++) {
        uint8_t msg[] = {0x01, 0x93, 0xce, 0, 0, (uint8_t)(i >> 8), (uint8_t)i, 0xc4, 0x00, 0xc4, 0x00};
        assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "sensor", msg, sizeof msg, m, NULL), KC_OK);
        assert_true(kc_message_is_possibly_decryptable(m));
    }
    /* (D4, test_waits.c) every new index is taken in, the oldest dropped;
     * only the first one waits: no key arrives meanwhile */
    kc_serde_waits_stats ws;
    kc_serde_wait_stats(cons, "sensor", &ws);
    assert_int_equal(ws.waiting, KC_WAITS_MAX);
    assert_int_equal(ws.replaced, 1100 - KC_WAITS_MAX);
    assert_int_equal(h.missing, 10 + 1099);
    kc_serde_free(cons);

    kc_message_free(m);
    kc_buf_free(&wire);
    kc_serde_free(prod);
    kc_ratchet_close(r);
}

static void test_salt_edge_cases(void **state)
{
    /* Messages made by hand under a consumer key: short salts are padded,
     * a non-bytes salt means "the counter", 17 bytes fail. */
    hooks h = {0};
    kc_serde *cons = new_serde(&h, NULL);
    uint8_t secret[32];
    randombytes_buf(secret, 32);
    kc_keyidx ki;
    kc_keyidx_from_uint(&ki, 5);
    assert_int_equal(kc_serde_add_consumer_key(cons, "r", &ki, secret, NULL), KC_OK);
    kc_keygen g;
    kc_keygen_init(&g, secret, 32, kc_keygen_ctx_value, 16, NULL);
    uint8_t key[32], nonce[24], salt1[16] = {1};
    kc_keygen_at(&g, salt1, 16, key, nonce, NULL);
    kc_buf wire = KC_BUF_INIT;
    assert_int_equal(kc_wire_seal(&wire, &ki, salt1, key, nonce, (const uint8_t *)"pad", 3, NULL), KC_OK);
    /* rewrite the 16-byte salt as the 1-byte salt 01: 93 05 c4 10 <16> -> 93 05 c4 01 01 */
    kc_buf shortw = KC_BUF_INIT;
    kc_buf_append(&shortw, wire.data, 3);
    kc_buf_append(&shortw, "\xc4\x01\x01", 3);
    kc_buf_append(&shortw, wire.data + 3 + 18, wire.len - 3 - 18);
    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "r.x", shortw.data, shortw.len, m, NULL), KC_OK);
    expect_clear(m, "pad");
    /* 17-byte salt */
    kc_buf longw = KC_BUF_INIT;
    kc_buf_append(&longw, wire.data, 3);
    kc_buf_append(&longw, "\xc4\x11", 2);
    kc_buf_append(&longw, salt1, 16);
    kc_buf_append(&longw, "\x00", 1);
    kc_buf_append(&longw, wire.data + 3 + 18, wire.len - 3 - 18);
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "r.x", longw.data, longw.len, m, NULL), KC_OK);
    expect_encrypted(m, true, &longw);
    /* an integer salt: the consumer generator's counter (fresh: 0) */
    kc_serde *fresh = new_serde(&h, NULL);
    kc_serde_add_consumer_key(fresh, "r", &ki, secret, NULL);
    uint8_t salt0[16] = {0};
    kc_keygen_at(&g, salt0, 16, key, nonce, NULL);
    kc_wire_seal(&wire, &ki, salt0, key, nonce, (const uint8_t *)"ctr", 3, NULL);
    kc_buf intw = KC_BUF_INIT;
    kc_buf_append(&intw, wire.data, 3);
    kc_buf_append(&intw, "\x07", 1);
    kc_buf_append(&intw, wire.data + 3 + 18, wire.len - 3 - 18);
    assert_int_equal(kc_serde_deserialize(fresh, KC_KIND_VALUE, "r", intw.data, intw.len, m, NULL), KC_OK);
    expect_clear(m, "ctr");
    /* the same again: the counter has moved on (upstream's quirk), no match */
    assert_int_equal(kc_serde_deserialize(fresh, KC_KIND_VALUE, "r", intw.data, intw.len, m, NULL), KC_OK);
    expect_encrypted(m, true, &intw);
    kc_message_free(m);
    kc_buf_free(&wire);
    kc_buf_free(&shortw);
    kc_buf_free(&longw);
    kc_buf_free(&intw);
    kc_serde_free(cons);
    kc_serde_free(fresh);
}

/* The salt of a wire message made by us (long index): after 01 93 c4 20 <32> c4 10. */
static const uint8_t *wire_salt(const kc_buf *w)
{
    return w->data + 1 + 1 + 2 + 32 + 2;
}

static void test_counters_never_repeat(void **state)
{
    hooks h = {0};
    kc_ratchet *r = open_seed();
    kc_serde *prod = new_serde(&h, r);
    kc_buf w = KC_BUF_INIT;
    for (uint32_t i = 0; i < 1000; i++) {
        kc_kind kind = i % 3 ? KC_KIND_VALUE : KC_KIND_KEY;
        assert_int_equal(kc_serde_serialize(prod, kind, i % 2 ? "s.a" : "s.b", (const uint8_t *)"x", 1, &w, NULL), KC_OK);
        uint32_t want = kind == KC_KIND_KEY ? i / 3 : i - i / 3 - 1;
        uint8_t expect[16] = {0};
        memcpy(expect, &want, 4);  /* little-endian host */
        assert_memory_equal(wire_salt(&w), expect, 16);
    }
    kc_buf_free(&w);
    kc_serde_free(prod);
    kc_ratchet_close(r);
}

static void test_restart_gives_a_new_index(void **state)
{
    hooks h = {0};
    kc_keyidx k1, k2;
    for (int run = 0; run < 2; run++) {
        kc_ratchet *r = open_seed();
        kc_serde *prod = new_serde(&h, r);
        kc_buf w = KC_BUF_INIT;
        assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "s", (const uint8_t *)"x", 1, &w, NULL), KC_OK);
        kc_serde_producer_state(prod, "s", KC_KIND_VALUE, run ? &k2 : &k1, NULL);
        kc_buf_free(&w);
        kc_serde_free(prod);
        kc_ratchet_close(r);
    }
    assert_false(kc_keyidx_equal(&k1, &k2));
}

static void test_key_reuse_guard(void **state)
{
    /* Run 1 produces and persists its producer records. The seed file is
     * then rolled back (its advance "lost"): run 2 derives the same index,
     * finds it among the loaded records and must move on (B4). */
    hooks h = {.clock = 1000};
    kc_buf saved = KC_BUF_INIT, oldkeys = KC_BUF_INIT, w1 = KC_BUF_INIT, w2 = KC_BUF_INIT;
    kc_ratchet *r = open_seed();
    kc_ratchet_close(r);
    saved = tc_read_file(seed);
    r = open_seed();
    kc_serde *prod = new_serde(&h, r);
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "s", (const uint8_t *)"one", 3, &w1, NULL), KC_OK);
    kc_keyidx k1, k2;
    kc_serde_producer_state(prod, "s", KC_KIND_VALUE, &k1, NULL);
    size_t count;
    assert_int_equal(kc_serde_export_pgens(prod, &oldkeys, &count, NULL), KC_OK);
    assert_int_equal(count, 1);
    kc_serde_free(prod);
    kc_ratchet_close(r);
    tc_write_file(seed, saved.data, saved.len);

    kc_log_set_sink(capture_critical, NULL);
    r = open_seed();
    prod = new_serde(&h, r);
    assert_int_equal(kc_serde_import_pgens(prod, oldkeys.data, oldkeys.len, NULL), KC_OK);
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "s", (const uint8_t *)"two", 3, &w2, NULL),
                     KC_OK);
    kc_log_set_sink(NULL, NULL);
    kc_serde_producer_state(prod, "s", KC_KIND_VALUE, &k2, NULL);
    assert_false(kc_keyidx_equal(&k1, &k2));
    /* both generations are kept: the loaded one is served, not used */
    int records = 0;
    kc_serde_foreach_pgen(prod, "s", count_records, &records);
    assert_int_equal(records, 2 + 10);  /* 2 records, one of them able to encrypt */
    kc_serde *cons = new_serde(&h, NULL);
    share_keys(prod, cons, "s");
    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "s", w1.data, w1.len, m, NULL), KC_OK);
    expect_clear(m, "one");
    assert_int_equal(kc_serde_deserialize(cons, KC_KIND_VALUE, "s", w2.data, w2.len, m, NULL), KC_OK);
    expect_clear(m, "two");
    kc_message_free(m);
    kc_serde_free(cons);
    kc_serde_free(prod);
    kc_ratchet_close(r);
    kc_buf_free(&saved);
    kc_buf_free(&oldkeys);
    kc_buf_free(&w1);
    kc_buf_free(&w2);
}

static void test_key_reuse_guard_logs(void **state)
{
    ncritical = 0;
    test_key_reuse_guard(state);
    assert_int_equal(ncritical, 1);
}

/* A producer whose records expire after 100 s. */
static kc_serde *producer_keeping_100s(hooks *h, kc_ratchet *r)
{
    kc_serde_config c = config(h, r);
    c.max_pgen_age = 100;
    kc_serde *prod;
    assert_int_equal(kc_serde_new(&c, &prod, NULL), KC_OK);
    return prod;
}

static void test_ratchet_step_and_pruning(void **state)
{
    hooks h = {.clock = 5000};
    kc_ratchet *r = open_seed();
    kc_serde *prod = producer_keeping_100s(&h, r);
    kc_buf w = KC_BUF_INIT;
    kc_keyidx k1, k2;
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "s", (const uint8_t *)"x", 1, &w, NULL), KC_OK);
    kc_serde_producer_state(prod, "s", KC_KIND_VALUE, &k1, NULL);
    h.clock += 50;
    assert_int_equal(kc_serde_ratchet_step(prod, NULL), KC_OK);
    assert_int_equal(kc_serde_producer_state(prod, "s", KC_KIND_VALUE, NULL, NULL), KC_ERR_NOTFOUND);
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "s", (const uint8_t *)"x", 1, &w, NULL), KC_OK);
    kc_serde_producer_state(prod, "s", KC_KIND_VALUE, &k2, NULL);
    assert_false(kc_keyidx_equal(&k1, &k2));
    int records = 0;
    kc_serde_foreach_pgen(prod, "s", count_records, &records);
    assert_int_equal(records, 22);  /* both kept */
    h.clock += 60;  /* the first is now 110 s old */
    assert_int_equal(kc_serde_ratchet_step(prod, NULL), KC_OK);
    records = 0;
    kc_serde_foreach_pgen(prod, "s", count_records, &records);
    assert_int_equal(records, 11);
    kc_buf_free(&w);
    kc_serde_free(prod);
    kc_ratchet_close(r);
}

/* What a key request is answered with: the records asked for, found by
 * index, each once, in creation order; nothing for other indices or roots;
 * nothing once pruned. */
typedef struct found {
    int n;
    kc_keyidx ki[8];
    bool can_encrypt[8];
    uint8_t first_byte[8];
} found;

static void note_found(void *c, const kc_keyidx *ki, const uint8_t s[32], double b, bool e)
{
    found *f = c;
    f->ki[f->n] = *ki;
    f->can_encrypt[f->n] = e;
    f->first_byte[f->n++] = s[0];
}

static void test_find_pgens_answers_requests_by_index(void **state)
{
    hooks h = {.clock = 5000};
    kc_ratchet *r = open_seed();
    kc_serde *prod = producer_keeping_100s(&h, r);
    /* {"pgens": [["s", 7, 32 x 0x07, 4950.0], ["s", 3, ..., 4990.0], ["s", 5, ..., 4999.0]]} */
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_map(&mo.pk, 1);
    kc_mp_pack_text(&mo.pk, "pgens");
    msgpack_pack_array(&mo.pk, 3);
    static const int kis[] = {7, 3, 5};
    static const double births[] = {4950, 4990, 4999};
    for (int i = 0; i < 3; i++) {
        uint8_t secret[32];
        memset(secret, kis[i], sizeof secret);
        msgpack_pack_array(&mo.pk, 4);
        kc_mp_pack_text(&mo.pk, "s");
        msgpack_pack_int(&mo.pk, kis[i]);
        kc_mp_pack_bin(&mo.pk, secret, sizeof secret);
        msgpack_pack_double(&mo.pk, births[i]);
    }
    assert_int_equal(kc_serde_import_pgens(prod, mo.buf.data, mo.buf.len, NULL), KC_OK);
    kc_mp_out_free(&mo);
    kc_buf w = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "s", (const uint8_t *)"x", 1, &w,
                                        NULL), KC_OK);
    kc_keyidx live;
    assert_int_equal(kc_serde_producer_state(prod, "s", KC_KIND_VALUE, &live, NULL), KC_OK);

    kc_keyidx wanted[6];
    kc_keyidx_from_int(&wanted[0], 5);
    kc_keyidx_from_int(&wanted[1], 99);  /* never made */
    wanted[2] = live;
    kc_keyidx_from_int(&wanted[3], 7);
    kc_keyidx_from_int(&wanted[4], 5);   /* asked twice */
    kc_keyidx_from_bytes(&wanted[5], (const uint8_t *)"\x03", 1);  /* bytes never equal an int */
    found f = {0};
    assert_int_equal(kc_serde_find_pgens(prod, "s", wanted, 6, note_found, &f), KC_OK);
    assert_int_equal(f.n, 3);
    assert_true(kc_keyidx_equal(&f.ki[0], &wanted[3]));  /* 7 */
    assert_true(kc_keyidx_equal(&f.ki[1], &wanted[0]));  /* 5 */
    assert_true(kc_keyidx_equal(&f.ki[2], &live));
    assert_int_equal(f.first_byte[0], 7);
    assert_int_equal(f.first_byte[1], 5);
    assert_false(f.can_encrypt[0]);
    assert_false(f.can_encrypt[1]);
    assert_true(f.can_encrypt[2]);
    found none = {0};
    assert_int_equal(kc_serde_find_pgens(prod, "other", wanted, 6, note_found, &none), KC_OK);
    assert_int_equal(kc_serde_find_pgens(prod, "s", wanted, 0, note_found, &none), KC_OK);
    assert_int_equal(none.n, 0);

    /* At 5060 only 7 (born 4950) is more than 100 s old. */
    h.clock = 5060;
    assert_int_equal(kc_serde_ratchet_step(prod, NULL), KC_OK);
    found after = {0};
    assert_int_equal(kc_serde_find_pgens(prod, "s", wanted, 6, note_found, &after), KC_OK);
    assert_int_equal(after.n, 2);
    assert_true(kc_keyidx_equal(&after.ki[0], &wanted[0]));
    assert_true(kc_keyidx_equal(&after.ki[1], &live));
    kc_keyidx three;
    kc_keyidx_from_int(&three, 3);
    assert_int_equal(kc_serde_find_pgens(prod, "s", &three, 1, note_found, &after), KC_OK);
    assert_int_equal(after.n, 3);
    kc_buf_free(&w);
    kc_serde_free(prod);
    kc_ratchet_close(r);
}

/* A backend whose increment can fail. */
static bool fail_increment;
static uint64_t mem_index;
static kc_status mem_inc(void *self, kc_err *err)
{
    if (fail_increment)
        return kc_err_set(err, KC_ERR_IO, "hsm: unavailable");
    mem_index++;
    return KC_OK;
}

static kc_status mem_derive(void *self, const uint8_t *root, size_t root_len, const uint8_t *node,
                            size_t node_len, kc_keyidx *ki, uint8_t secret[32], kc_err *err)
{
    kc_keyidx_from_uint(ki, mem_index);
    memset(secret, (int)(mem_index + 1), 32);
    return KC_OK;
}

static void test_failed_step_changes_nothing(void **state)
{
    static const kc_ratchet_ops ops = {"mem", mem_inc, mem_derive, NULL};
    kc_ratchet *r;
    assert_int_equal(kc_ratchet_new(&ops, NULL, &r, NULL), KC_OK);
    hooks h = {.clock = 1e6};
    kc_serde_config c = config(&h, r);
    c.node_id = NULL;  /* short indices */
    c.max_pgen_age = 1;
    kc_serde *prod;
    assert_int_equal(kc_serde_new(&c, &prod, NULL), KC_OK);
    kc_buf w = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, "s", (const uint8_t *)"x", 1, &w, NULL), KC_OK);
    h.clock += 10;
    fail_increment = true;
    kc_err err;
    assert_int_equal(kc_serde_ratchet_step(prod, &err), KC_ERR_IO);
    /* not pruned, still current: its counter continues */
    uint8_t salt[16];
    assert_int_equal(kc_serde_producer_state(prod, "s", KC_KIND_VALUE, NULL, salt), KC_OK);
    assert_int_equal(salt[0], 1);
    fail_increment = false;
    kc_buf_free(&w);
    kc_serde_free(prod);
    kc_ratchet_close(r);
}

static void test_oldkeys_format(void **state)
{
    /* Appendix A.9's plaintext survives import and export byte for byte. */
    const char *a9 = "81a57067656e739194aa6578616d706c65303031c42098989898989898989898"
                     "98989898989898989898989898989898989898989898c4206a6a6a6a6a6a6a6a"
                     "6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6acb41df4add40200000";
    hooks h = {.clock = 2100000000.5 + 10};
    kc_serde *s = new_serde(&h, NULL);
    kc_buf in = tc_hex(a9), out = KC_BUF_INIT;
    assert_int_equal(kc_serde_import_pgens(s, in.data, in.len, NULL), KC_OK);
    assert_false(kc_serde_take_new_pgens(s));
    size_t n;
    assert_int_equal(kc_serde_export_pgens(s, &out, &n, NULL), KC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(tc_tohex(out.data, out.len), a9);
    /* loaded records are served but cannot encrypt */
    int records = 0;
    kc_serde_foreach_pgen(s, "example001", count_records, &records);
    assert_int_equal(records, 1);
    kc_serde_free(s);

    /* too old: skipped */
    h.clock = 2100000000.5 + 604800;
    s = new_serde(&h, NULL);
    assert_int_equal(kc_serde_import_pgens(s, in.data, in.len, NULL), KC_OK);
    kc_serde_export_pgens(s, &out, &n, NULL);
    assert_int_equal(n, 0);
    assert_string_equal(tc_tohex(out.data, out.len), "81a57067656e7390");
    kc_serde_free(s);
    kc_buf_free(&in);
    kc_buf_free(&out);
}

static void test_oldkeys_validation(void **state)
{
    static const struct {
        const char *hex, *expect;
    } bad[] = {
        {"90", "expected a map"},
        {"81a57067656e7301", "field pgens: expected an array"},
        {"81a57067656e739193a16100c400", "entry 0: expected [root, keyidx, secret, birth]"},
        {"81a57067656e739194a161cb3ff0000000000000c40000", "entry 0: field keyidx"},
        {"81a57067656e73919401" "00c40000", "entry 0: field root"},
        {"81a57067656e739194a16100c41f0000000000000000000000000000000000000000000000000000000000000000", "field secret"},
        {"81a57067656e739194a16100c4200000000000000000000000000000000000000000000000000000000000000000a0", "field birth"},
        {"81a57067656e7391", "truncated"},
    };
    hooks h = {0};
    kc_serde *s = new_serde(&h, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kc_buf b = tc_hex(bad[i].hex);
        kc_err err;
        kc_status st = kc_serde_import_pgens(s, b.data, b.len, &err);
        if (st == KC_OK || !strstr(err.msg, bad[i].expect))
            fail_msg("case %zu: %s", i, st == KC_OK ? "accepted" : err.msg);
        kc_buf_free(&b);
    }
    /* a map without pgens: nothing to load */
    kc_buf b = tc_hex("81a178c0");
    assert_int_equal(kc_serde_import_pgens(s, b.data, b.len, NULL), KC_OK);
    kc_buf_free(&b);
    kc_buf out = KC_BUF_INIT;
    size_t n;
    kc_serde_export_pgens(s, &out, &n, NULL);
    assert_int_equal(n, 0);
    kc_buf_free(&out);
    kc_serde_free(s);
}

static kc_status underscore_root(void *ctx, const char *topic, size_t len, const char **root,
                                 size_t *root_len)
{
    if (len == 0)
        return KC_ERR_INVALID;
    *root = "fixed";
    *root_len = 5;
    return KC_OK;
}

static void test_root_rules(void **state)
{
    hooks h = {0};
    kc_serde_config c = config(&h, NULL);
    c.topic_separator = "__";
    kc_serde *s;
    assert_int_equal(kc_serde_new(&c, &s, NULL), KC_OK);
    const char *root;
    size_t len;
    kc_serde_root_of(s, "abc__def__g", &root, &len, NULL);
    assert_int_equal(len, 3);
    kc_serde_root_of(s, "abc.def", &root, &len, NULL);
    assert_int_equal(len, 7);
    kc_serde_free(s);
    c.root_fn = underscore_root;
    assert_int_equal(kc_serde_new(&c, &s, NULL), KC_OK);
    kc_serde_root_of(s, "x.y", &root, &len, NULL);
    assert_int_equal(len, 5);
    kc_err err;
    kc_message *m = kc_message_new();
    kc_buf any = tc_hex("019300c400c400");
    assert_int_equal(kc_serde_deserialize(s, KC_KIND_KEY, "", any.data, any.len, m, &err),
                     KC_ERR_INVALID);
    kc_buf_free(&any);
    kc_message_free(m);
    kc_serde_free(s);
    c.root_fn = NULL;
    c.topic_separator = NULL;
    assert_int_equal(kc_serde_new(&c, &s, &err), KC_ERR_INVALID);
}

typedef struct worker {
    kc_serde *s;
    uint8_t salts[2000][16];
} worker;

static void *serialize_many(void *arg)
{
    worker *w = arg;
    kc_buf out = KC_BUF_INIT;
    for (int i = 0; i < 2000; i++) {
        if (kc_serde_serialize(w->s, KC_KIND_VALUE, "t.x", (const uint8_t *)"m", 1, &out, NULL) != KC_OK)
            abort();
        memcpy(w->salts[i], wire_salt(&out), 16);
    }
    kc_buf_free(&out);
    return NULL;
}

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void test_threads_share_no_salt(void **state)
{
    hooks h = {0};
    kc_ratchet *r = open_seed();
    kc_serde *prod = new_serde(&h, r);
    enum { N = 4 };
    static worker w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i].s = prod;
        pthread_create(&t[i], NULL, serialize_many, &w[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    static uint8_t all[N * 2000][16];
    for (int i = 0; i < N; i++)
        memcpy(all[i * 2000], w[i].salts, sizeof w[i].salts);
    qsort(all, N * 2000, 16, cmp16);
    for (int i = 1; i < N * 2000; i++)
        assert_int_not_equal(memcmp(all[i - 1], all[i], 16), 0);
    assert_int_equal(h.new_keys, 1);
    kc_serde_free(prod);
    kc_ratchet_close(r);
}

static int persisted;
static kc_status count_persist(void *ctx, kc_err *err)
{
    persisted++;
    return KC_OK;
}

/* A closing node detaches its serde, which serializer objects may keep. */
static void test_detached_serde_refuses_to_encrypt_and_never_waits(void **state)
{
    hooks h = {0};
    kc_ratchet *r = open_seed();
    kc_serde_config c = config(&h, r);
    c.persist_fn = count_persist;
    kc_serde *s;
    assert_int_equal(kc_serde_new(&c, &s, NULL), KC_OK);
    kc_buf wire = KC_BUF_INIT, other = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(s, KC_KIND_VALUE, "sensor", (const uint8_t *)"a", 1, &wire,
                                        NULL), KC_OK);
    assert_int_equal(kc_serde_serialize(s, KC_KIND_VALUE, "other", (const uint8_t *)"b", 1,
                                        &other, NULL), KC_OK);
    /* its own key for "sensor", as if received (not under foreach's lock) */
    kc_keyidx ki;
    uint8_t secret[32];
    kc_serde_producer_state(s, "sensor", KC_KIND_VALUE, &ki, NULL);
    kc_serde_foreach_pgen(s, "sensor", grab_secret, secret);
    assert_int_equal(kc_serde_add_consumer_key(s, "sensor", &ki, secret, NULL), KC_OK);
    persisted = h.new_keys = 0;
    kc_serde_detach(s);
    kc_ratchet_close(r); /* what the node closes next */

    kc_err err = {0};
    kc_buf out = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(s, KC_KIND_VALUE, "sensor", (const uint8_t *)"c", 1, &out,
                                        &err), KC_ERR_STATE);
    assert_non_null(strstr(err.msg, "the node of this serializer is closed"));
    assert_int_equal(kc_serde_serialize(s, KC_KIND_KEY, "new", (const uint8_t *)"d", 1, &out,
                                        &err), KC_ERR_STATE);
    assert_int_equal(out.len, 0);
    assert_int_equal(kc_serde_persist(s, NULL), KC_OK);
    assert_int_equal(persisted + h.new_keys, 0);
    /* keys held still decrypt; a missing one is neither awaited nor asked for */
    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, "sensor", wire.data, wire.len, m,
                                          NULL), KC_OK);
    expect_clear(m, "a");
    h.sleeps = h.missing = 0;
    assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, "other", other.data, other.len, m,
                                          NULL), KC_OK);
    assert_false(kc_message_is_cleartext(m, true));
    assert_int_equal(h.sleeps + h.missing, 0);
    kc_serde_detach(s); /* twice is fine */
    kc_message_free(m);
    kc_buf_free(&wire);
    kc_buf_free(&other);
    kc_serde_free(s);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_round_trip_and_kind_confusion),
        T(test_null_empty_and_not_kafkacrypto),
        T(test_consumer_only_cannot_encrypt),
        T(test_serialize_any_and_messages),
        T(test_unknown_key_then_retry),
        T(test_wait_policy),
        T(test_salt_edge_cases),
        T(test_counters_never_repeat),
        T(test_restart_gives_a_new_index),
        T(test_key_reuse_guard_logs),
        T(test_ratchet_step_and_pruning),
        T(test_find_pgens_answers_requests_by_index),
        T(test_failed_step_changes_nothing),
        T(test_oldkeys_format),
        T(test_oldkeys_validation),
        T(test_root_rules),
        T(test_threads_share_no_salt),
        T(test_detached_serde_refuses_to_encrypt_and_never_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
