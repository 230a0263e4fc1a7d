/* The key exchange between in-memory nodes provisioned under a test root of
 * trust: the protocol both ways, every refusal (and that a refusal changes
 * nothing), own chains, trust-list topics, the controller path and the
 * temporary chain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "kc_cryptokey_file.h"
#include "kc_exchange.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_mp.h"
#include "kc_provision.h"
#include "kc_test.h"
#include "kc_test_fixture.h"
#include "kc_test_rng.h"

#define T0 1800000000.0
#define DAY 86400.0

static double clock_now = T0;
static double pinned(void *ctx) { (void)ctx; return clock_now; }

/* ---- log capture ------------------------------------------------------------------ */

static char logbuf[1 << 16];
static size_t loglen;

static void sink(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    (void)ctx;
    int k = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%s:%s:%s\n",
                     kc_log_level_name(level), logger, msg);
    if (k > 0 && loglen + (size_t)k < sizeof logbuf)
        loglen += (size_t)k;
}

static bool logged(const char *s) { return strstr(logbuf, s) != NULL; }
static void log_reset(void) { loglen = 0; logbuf[0] = 0; }

/* ---- a test PKI ---------------------------------------------------------------------- */

static tc_pki pki;

static void sign_item(const kc_key *sk, const kc_buf *cert, kc_buf *item)
{
    assert_int_equal(kc_cert_sign(sk, cert->data, cert->len, item, NULL), KC_OK);
}

static kc_buf node_chain(kc_role role, double max_age, const char *root, const kc_key *pk)
{
    return tc_chain(&pki, role, max_age, root, pk);
}

typedef tc_party tnode;

/* A node with `nkeys` Ed25519 keys; role chains for all of them unless
 * role is -1 (unprovisioned). */
static void node_make(tnode *n, const char *label, int role, const char *root, bool legacy,
                      size_t nkeys, const kc_bytes *deny, size_t ndeny)
{
    tc_party_options o = {.role = role, .root = root, .max_age = T0 + 365 * DAY,
                          .nkeys = nkeys, .legacy = legacy, .deny = deny, .ndeny = ndeny,
                          .now_fn = pinned};
    tc_party_make(n, &pki, label, &o);
}

static void node_free(tnode *n) { tc_party_free(n); }

static kc_exchange_keys held_keys(void)
{
    kc_exchange_keys k = {0};
    kc_keyidx a, b;
    uint8_t s[32];
    kc_keyidx_from_int(&a, 7);
    memset(s, 0x77, sizeof s);
    assert_int_equal(kc_exchange_keys_add(&k, &a, s), KC_OK);
    memset(s, 0xab, sizeof s);
    kc_keyidx_from_bytes(&b, s, 32);
    assert_int_equal(kc_exchange_keys_add(&k, &b, s), KC_OK);
    return k;
}

/* ---- fixtures ---------------------------------------------------------------------- */

static int setup(void **state)
{
    clock_now = T0;
    log_reset();
    return 0;
}

/* ---- the protocol --------------------------------------------------------------------- */

static void test_request_reply_decrypt_on_two_roots(void **state)
{
    tnode c, p;
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "^.*$", false, 1, NULL, 0);
    node_make(&p, "producer", KC_ROLE_PRODUCER, "^.*$", false, 1, NULL, 0);
    kc_exchange_keys keys = held_keys();
    const char *roots[] = {"sensor", "metrics"};
    for (int r = 0; r < 2; r++) {
        kc_exchange_msgs req = {0}, rep = {0};
        kc_exchange_keys got = {0};
        kc_err err;
        assert_int_equal(kc_exchange_signed_epks(c.x, roots[r], &req, &err), KC_OK);
        assert_int_equal(req.n, 1);
        assert_true(req.items[0].direct);
        assert_int_equal(kc_exchange_encrypt_keys(p.x, roots[r], &keys, req.items[0].value.data,
                                                  req.items[0].value.len, &rep, &err), KC_OK);
        assert_int_equal(rep.n, 1);
        assert_int_equal(kc_exchange_decrypt_keys(c.x, roots[r], rep.items[0].value.data,
                                                  rep.items[0].value.len, &got, &err), KC_OK);
        assert_int_equal(got.n, 2);
        assert_true(kc_keyidx_equal(&got.items[0].ki, &keys.items[0].ki));
        assert_memory_equal(got.items[1].secret, keys.items[1].secret, 32);
        /* accepted once: a replay is refused */
        kc_exchange_keys again = {0};
        assert_int_equal(kc_exchange_decrypt_keys(c.x, roots[r], rep.items[0].value.data,
                                                  rep.items[0].value.len, &again, &err),
                         KC_ERR_NOTFOUND);
        assert_int_equal(again.n, 0);
        assert_true(logged("unknown (or already used) random0 value in decrypt_keys"));
        kc_exchange_keys_clear(&got);
        kc_exchange_msgs_clear(&req);
        kc_exchange_msgs_clear(&rep);
    }
    kc_exchange_keys_clear(&keys);
    node_free(&c);
    node_free(&p);
}

static void test_legacy_requests_and_the_duplicate_reply(void **state)
{
    tnode c, p;
    node_make(&c, "legacy-consumer", KC_ROLE_CONSUMER, "sensor", true, 1, NULL, 0);
    node_make(&p, "producer", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    kc_exchange_keys keys = held_keys(), got = {0};
    kc_exchange_msgs req = {0}, rep[2] = {{0}};
    assert_int_equal(kc_exchange_signed_epks(c.x, "sensor", &req, NULL), KC_OK);
    assert_int_equal(req.n, 2); /* the key list, then the bare legacy key */
    for (int i = 0; i < 2; i++)
        assert_int_equal(kc_exchange_encrypt_keys(p.x, "sensor", &keys, req.items[i].value.data,
                                                  req.items[i].value.len, &rep[i], NULL), KC_OK);
    assert_int_equal(kc_exchange_decrypt_keys(c.x, "sensor", rep[0].items[0].value.data,
                                              rep[0].items[0].value.len, &got, NULL), KC_OK);
    kc_exchange_keys_clear(&got);
    assert_int_equal(kc_exchange_decrypt_keys(c.x, "sensor", rep[1].items[0].value.data,
                                              rep[1].items[0].value.len, &got, NULL),
                     KC_ERR_NOTFOUND);
    kc_exchange_msgs_clear(&req);
    kc_exchange_msgs_clear(&rep[0]);
    kc_exchange_msgs_clear(&rep[1]);
    kc_exchange_keys_clear(&keys);
    node_free(&c);
    node_free(&p);
}

static void test_only_the_latest_round_decrypts_and_refusals_change_nothing(void **state)
{
    tnode c, other, p;
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "sensor", false, 1, NULL, 0);
    node_make(&other, "other-consumer", KC_ROLE_CONSUMER, "sensor", false, 1, NULL, 0);
    node_make(&p, "producer", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    kc_exchange_keys keys = held_keys(), got = {0};
    kc_exchange_msgs r1 = {0}, r2 = {0}, a1 = {0}, a2 = {0};
    assert_int_equal(kc_exchange_signed_epks(c.x, "sensor", &r1, NULL), KC_OK);
    assert_int_equal(kc_exchange_signed_epks(c.x, "sensor", &r2, NULL), KC_OK);
    assert_int_equal(kc_exchange_encrypt_keys(p.x, "sensor", &keys, r1.items[0].value.data,
                                              r1.items[0].value.len, &a1, NULL), KC_OK);
    assert_int_equal(kc_exchange_encrypt_keys(p.x, "sensor", &keys, r2.items[0].value.data,
                                              r2.items[0].value.len, &a2, NULL), KC_OK);
    /* a reply meant for another consumer */
    assert_int_equal(kc_exchange_decrypt_keys(other.x, "sensor", a2.items[0].value.data,
                                              a2.items[0].value.len, &got, NULL),
                     KC_ERR_NOTFOUND);
    /* the first round's secrets were replaced by the second's */
    assert_int_equal(kc_exchange_decrypt_keys(c.x, "sensor", a1.items[0].value.data,
                                              a1.items[0].value.len, &got, NULL), KC_ERR_CRYPTO);
    /* a tampered reply (last byte of the box) */
    kc_buf bad = KC_BUF_INIT;
    kc_buf_set(&bad, a2.items[0].value.data, a2.items[0].value.len);
    bad.data[bad.len - 1] ^= 1;
    assert_int_not_equal(kc_exchange_decrypt_keys(c.x, "sensor", bad.data, bad.len, &got, NULL),
                         KC_OK);
    /* the wrong root */
    assert_int_not_equal(kc_exchange_decrypt_keys(c.x, "metrics", a2.items[0].value.data,
                                                  a2.items[0].value.len, &got, NULL), KC_OK);
    /* none of that consumed random0 or the ephemeral secrets */
    assert_int_equal(kc_exchange_decrypt_keys(c.x, "sensor", a2.items[0].value.data,
                                              a2.items[0].value.len, &got, NULL), KC_OK);
    assert_int_equal(got.n, 2);
    kc_buf_free(&bad);
    kc_exchange_keys_clear(&got);
    kc_exchange_keys_clear(&keys);
    kc_exchange_msgs_clear(&r1);
    kc_exchange_msgs_clear(&r2);
    kc_exchange_msgs_clear(&a1);
    kc_exchange_msgs_clear(&a2);
    node_free(&c);
    node_free(&other);
    node_free(&p);
}

static kc_status answer(tnode *p, const char *root, const kc_exchange_msgs *req, kc_err *err)
{
    kc_exchange_keys keys = held_keys();
    kc_exchange_msgs rep = {0};
    kc_status st = kc_exchange_encrypt_keys(p->x, root, &keys, req->items[0].value.data,
                                            req->items[0].value.len, &rep, err);
    if (st == KC_OK)
        assert_true(rep.n > 0);
    else
        assert_int_equal(rep.n, 0);
    kc_exchange_msgs_clear(&rep);
    kc_exchange_keys_clear(&keys);
    return st;
}

static void test_producer_refuses_bad_requests(void **state)
{
    tnode c, limited, prodreq, p;
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "sensor", false, 1, NULL, 0);
    node_make(&limited, "limited", KC_ROLE_CONSUMER_LIMITED, "sensor", false, 1, NULL, 0);
    node_make(&prodreq, "producer-as-consumer", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    node_make(&p, "producer", KC_ROLE_PRODUCER, "^.*$", false, 1, NULL, 0);
    kc_exchange_msgs req = {0}, lreq = {0}, preq = {0};
    kc_err err;
    assert_int_equal(kc_exchange_signed_epks(c.x, "sensor", &req, NULL), KC_OK);
    assert_int_equal(kc_exchange_signed_epks(limited.x, "sensor", &lreq, NULL), KC_OK);
    assert_false(lreq.items[0].direct); /* a limited consumer needs a controller */
    assert_int_equal(kc_exchange_signed_epks(prodreq.x, "sensor", &preq, NULL), KC_OK);

    assert_int_equal(answer(&p, "sensor", &req, &err), KC_OK);
    /* wrong topic: the chain allows only "sensor" */
    assert_int_equal(answer(&p, "metrics", &req, &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "metrics"));
    /* wrong usage */
    assert_int_equal(answer(&p, "sensor", &lreq, &err), KC_ERR_DENIED);
    assert_int_equal(answer(&p, "sensor", &preq, &err), KC_ERR_DENIED);
    /* expired: the request lives maxage (a day) */
    clock_now = T0 + 2 * DAY;
    assert_int_equal(answer(&p, "sensor", &req, &err), KC_ERR_EXPIRED);
    clock_now = T0;
    /* tampered signature of the leaf */
    kc_exchange_msgs bad = {0};
    kc_buf copy = KC_BUF_INIT;
    kc_buf_set(&copy, req.items[0].value.data, req.items[0].value.len);
    copy.data[copy.len - 40] ^= 0x10;
    {
        kc_exchange_msg m = {copy, true};
        bad.items = &m;
        bad.n = 1;
        assert_int_not_equal(answer(&p, "sensor", &bad, &err), KC_OK);
    }
    kc_buf_free(&copy);
    /* a denylisted requester */
    kc_buf entry = KC_BUF_INIT;
    static const uint8_t empty[] = {0x90};
    assert_int_equal(kc_chain_entry_build(0, empty, 1, &c.pk[0], &entry, NULL), KC_OK);
    kc_bytes deny = {entry.data, entry.len};
    tnode strict;
    node_make(&strict, "producer", KC_ROLE_PRODUCER, "^.*$", false, 1, &deny, 1);
    assert_int_equal(answer(&strict, "sensor", &req, &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "denylist"));
    node_free(&strict);
    kc_buf_free(&entry);
    kc_exchange_msgs_clear(&req);
    kc_exchange_msgs_clear(&lreq);
    kc_exchange_msgs_clear(&preq);
    node_free(&c);
    node_free(&limited);
    node_free(&prodreq);
    node_free(&p);
}

static void test_several_signing_keys(void **state)
{
    tnode c, p;
    node_make(&c, "consumer2", KC_ROLE_CONSUMER, "sensor", false, 2, NULL, 0);
    node_make(&p, "producer2", KC_ROLE_PRODUCER, "sensor", false, 2, NULL, 0);
    kc_exchange_msgs req = {0}, rep = {0};
    kc_exchange_keys keys = held_keys(), got = {0};
    assert_int_equal(kc_exchange_signed_epks(c.x, "sensor", &req, NULL), KC_OK);
    assert_int_equal(req.n, 2); /* one per signing key */
    assert_int_equal(kc_exchange_encrypt_keys(p.x, "sensor", &keys, req.items[1].value.data,
                                              req.items[1].value.len, &rep, NULL), KC_OK);
    assert_int_equal(rep.n, 2); /* the requester's ROT type matches both keys */
    assert_int_equal(kc_exchange_decrypt_keys(c.x, "sensor", rep.items[1].value.data,
                                              rep.items[1].value.len, &got, NULL), KC_OK);
    kc_exchange_keys_clear(&got);
    /* only the first reply of a round is usable */
    assert_int_equal(kc_exchange_decrypt_keys(c.x, "sensor", rep.items[0].value.data,
                                              rep.items[0].value.len, &got, NULL),
                     KC_ERR_NOTFOUND);
    kc_exchange_keys_clear(&keys);
    kc_exchange_msgs_clear(&req);
    kc_exchange_msgs_clear(&rep);
    node_free(&c);
    node_free(&p);
}

/* ---- hand-built messages: PQ peers, B5, B8 ------------------------------------------- */

/* Re-signs a message's leaf with `sk` after replacing its key field by the
 * packed keys `keys` (and, for replies, its box by `box`); the chain
 * before the leaf is kept. */
static kc_buf resign(const kc_buf *msg, const kc_key *sk, const kc_buf *keys, const kc_buf *box)
{
    kc_chain_items items;
    assert_int_equal(kc_chain_parse(&items, msg->data, msg->len, NULL), KC_OK);
    kc_bytes leaf = items.item[items.n - 1];
    kc_mp_doc doc;
    assert_int_equal(kc_mp_decode(&doc, leaf.p + 64, leaf.n - 64, "leaf", NULL), KC_OK);
    const msgpack_object *o = kc_mp_root(&doc);
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, o->via.array.size);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        if (i == 2 && keys)
            kc_buf_append(&mo.buf, keys->data, keys->len);
        else if (i == 4 && box)
            kc_mp_pack_bin(&mo.pk, box->data, box->len);
        else
            msgpack_pack_object(&mo.pk, o->via.array.ptr[i]);
    }
    kc_buf item = KC_BUF_INIT, prefix = KC_BUF_INIT, out = KC_BUF_INIT;
    assert_int_equal(kc_sign(sk, mo.buf.data, mo.buf.len, &item), KC_OK);
    assert_int_equal(kc_chain_build(items.item, items.n - 1, &prefix, NULL), KC_OK);
    assert_int_equal(kc_chain_append(prefix.data, prefix.len, item.data, item.len, &out, NULL),
                     KC_OK);
    kc_mp_out_free(&mo);
    kc_mp_doc_free(&doc);
    kc_chain_items_free(&items);
    kc_buf_free(&item);
    kc_buf_free(&prefix);
    return out;
}

/* The single key of a request's or reply's leaf list, packed. */
static kc_buf leaf_key(const kc_buf *msg, kc_key *out)
{
    kc_chain_items items;
    assert_int_equal(kc_chain_parse(&items, msg->data, msg->len, NULL), KC_OK);
    kc_bytes leaf = items.item[items.n - 1];
    kc_mp_doc doc;
    assert_int_equal(kc_mp_decode(&doc, leaf.p + 64, leaf.n - 64, "leaf", NULL), KC_OK);
    const msgpack_object *k = &kc_mp_root(&doc)->via.array.ptr[2].via.array.ptr[0];
    assert_int_equal(kc_key_from_object(out, KC_KEM_PK, k, NULL), KC_OK);
    kc_buf packed = KC_BUF_INIT;
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_object(&mo.pk, *k);
    kc_buf_set(&packed, mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);
    kc_mp_doc_free(&doc);
    kc_chain_items_free(&items);
    return packed;
}

/* mp([[v1, [bin32, bin(pqlen)]], [v2, ...], then `tail` (packed) if any]) */
static kc_buf pq_list(int v1, int v2, size_t pqlen, const kc_buf *tail)
{
    uint8_t *junk = calloc(1, pqlen);
    uint8_t x[32] = {9};
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, tail ? 3 : 2);
    int vs[2] = {v1, v2};
    for (int i = 0; i < 2; i++) {
        msgpack_pack_array(&mo.pk, 2);
        msgpack_pack_int(&mo.pk, vs[i]);
        msgpack_pack_array(&mo.pk, 2);
        kc_mp_pack_bin(&mo.pk, x, 32);
        kc_mp_pack_bin(&mo.pk, junk, pqlen);
    }
    if (tail)
        kc_buf_append(&mo.buf, tail->data, tail->len);
    kc_buf out = KC_BUF_INIT;
    kc_buf_set(&out, mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);
    free(junk);
    return out;
}

static void test_post_quantum_offers_are_answered_with_the_classical_part(void **state)
{
    tnode c, p;
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "sensor", false, 1, NULL, 0);
    node_make(&p, "producer", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    kc_exchange_msgs req = {0}, rep = {0};
    kc_exchange_keys keys = held_keys(), got = {0};
    assert_int_equal(kc_exchange_signed_epks(c.x, "sensor", &req, NULL), KC_OK);
    kc_key epk;
    kc_buf ours = leaf_key(&req.items[0].value, &epk);
    /* a Python node with liboqs offers [5,...], [2,...], then X25519 */
    kc_buf offer = pq_list(5, 2, 1568, &ours);
    kc_buf pqreq = resign(&req.items[0].value, &c.sk[0], &offer, NULL);
    assert_int_equal(kc_exchange_encrypt_keys(p.x, "sensor", &keys, pqreq.data, pqreq.len, &rep,
                                              NULL), KC_OK);
    /* its reply may list [6,...] and [3,...] answers before ours: skipped */
    kc_key repk;
    kc_buf theirs = leaf_key(&rep.items[0].value, &repk);
    kc_buf answers = pq_list(6, 3, 1039, &theirs);
    kc_buf pqrep = resign(&rep.items[0].value, &p.sk[0], &answers, NULL);
    assert_int_equal(kc_exchange_decrypt_keys(c.x, "sensor", pqrep.data, pqrep.len, &got, NULL),
                     KC_OK);
    assert_int_equal(got.n, 2);
    /* only PQ offers: nothing usable, no crash, no reply */
    kc_exchange_msgs none = {0};
    kc_buf only = pq_list(5, 2, 1568, NULL);
    kc_buf onlyreq = resign(&req.items[0].value, &c.sk[0], &only, NULL);
    assert_int_equal(kc_exchange_encrypt_keys(p.x, "sensor", &keys, onlyreq.data, onlyreq.len,
                                              &none, NULL), KC_ERR_NOTFOUND);
    assert_true(logged("No compatible key exchange versions found."));
    kc_buf *bufs[] = {&ours, &offer, &pqreq, &theirs, &answers, &pqrep, &only, &onlyreq};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        kc_buf_free(bufs[i]);
    kc_key_clear(&epk);
    kc_key_clear(&repk);
    kc_exchange_keys_clear(&keys);
    kc_exchange_keys_clear(&got);
    kc_exchange_msgs_clear(&req);
    kc_exchange_msgs_clear(&rep);
    node_free(&c);
    node_free(&p);
}

/* A reply whose box we seal ourselves: the producer's ephemeral secret,
 * random1 and nonce are scripted, so the shared secret is known. */
static kc_buf custom_reply(tnode *p, const kc_exchange_msgs *req, const kc_buf *inner,
                           bool bogus_key_first)
{
    uint8_t esk[32], r1[32], nonce[24], epk[32], ck[32], ss[32];
    randombytes_buf(esk, 32);
    randombytes_buf(r1, 32);
    randombytes_buf(nonce, 24);
    tc_rng_script(esk, 32);
    tc_rng_script(r1, 32);
    tc_rng_script(nonce, 24);
    kc_exchange_keys one = held_keys();
    kc_exchange_msgs rep = {0};
    assert_int_equal(kc_exchange_encrypt_keys(p->x, "sensor", &one, req->items[0].value.data,
                                              req->items[0].value.len, &rep, NULL), KC_OK);
    assert_int_equal(tc_rng_pending(), 0);
    /* the consumer's epk and random0 from the request */
    kc_key cepk;
    kc_buf dummy = leaf_key(&req->items[0].value, &cepk);
    kc_chain_items items;
    kc_chain_parse(&items, req->items[0].value.data, req->items[0].value.len, NULL);
    kc_mp_doc doc;
    kc_bytes leaf = items.item[items.n - 1];
    kc_mp_decode(&doc, leaf.p + 64, leaf.n - 64, "leaf", NULL);
    const uint8_t *r0;
    size_t r0n;
    kc_mp_bytes(&kc_mp_root(&doc)->via.array.ptr[3], &r0, &r0n);
    crypto_scalarmult_base(epk, esk);
    assert_int_equal(crypto_scalarmult(ck, esk, cepk.x), 0);
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)"sensor", 6);
    crypto_hash_sha256_update(&h, r0, r0n);
    crypto_hash_sha256_update(&h, r1, 32);
    crypto_hash_sha256_update(&h, ck, 32);
    crypto_hash_sha256_final(&h, ss);
    kc_buf box = KC_BUF_INIT;
    kc_buf_reserve(&box, 24 + 16 + inner->len);
    memcpy(box.data, nonce, 24);
    crypto_secretbox_easy(box.data + 24, inner->data, inner->len, nonce, ss);
    box.len = 24 + 16 + inner->len;
    /* optionally list another X25519 key (the base point) before ours */
    kc_buf keys = KC_BUF_INIT;
    static const uint8_t base_point[32] = {9};
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    msgpack_pack_array(&mo.pk, 2);
    kc_mp_pack_bin(&mo.pk, base_point, 32);
    kc_mp_pack_bin(&mo.pk, epk, 32);
    kc_buf_set(&keys, mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);
    kc_buf out = resign(&rep.items[0].value, &p->sk[0], bogus_key_first ? &keys : NULL, &box);
    kc_buf_free(&keys);
    kc_buf_free(&box);
    kc_buf_free(&dummy);
    kc_key_clear(&cepk);
    kc_mp_doc_free(&doc);
    kc_chain_items_free(&items);
    kc_exchange_msgs_clear(&rep);
    kc_exchange_keys_clear(&one);
    return out;
}

static kc_buf hexbuf(const char *hex) { return tc_hex(hex); }

static void test_b5_keys_that_are_not_32_bytes_are_ignored(void **state)
{
    tnode c, p;
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "sensor", false, 1, NULL, 0);
    node_make(&p, "producer", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    kc_exchange_msgs req = {0};
    kc_exchange_keys got = {0};
    assert_int_equal(kc_exchange_signed_epks(c.x, "sensor", &req, NULL), KC_OK);
    /* [1, bin(31 bytes), 2, bin(32 bytes)] */
    kc_buf inner = hexbuf("9401c41f" "11111111111111111111111111111111111111111111111111111111111111"
                          "02c420" "2222222222222222222222222222222222222222222222222222222222222222");
    kc_buf rep = custom_reply(&p, &req, &inner, false);
    assert_int_equal(kc_exchange_decrypt_keys(c.x, "sensor", rep.data, rep.len, &got, NULL), KC_OK);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.items[0].ki.num, 2);
    assert_true(logged("its key is not 32 bytes"));
    kc_buf_free(&inner);
    kc_buf_free(&rep);
    kc_exchange_keys_clear(&got);
    kc_exchange_msgs_clear(&req);
    node_free(&c);
    node_free(&p);
}

static void test_pairing_check_and_b8_every_candidate(void **state)
{
    tnode c, p;
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "sensor", false, 1, NULL, 0);
    node_make(&p, "producer", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    kc_exchange_msgs req = {0};
    kc_exchange_keys got = {0};
    assert_int_equal(kc_exchange_signed_epks(c.x, "sensor", &req, NULL), KC_OK);
    /* odd list, duplicate index, empty list: the pairing check refuses */
    const char *bad[] = {"9301c4203333333333333333333333333333333333333333333333333333333333333333"
                         "02",
                         "9401c420333333333333333333333333333333333333333333333333333333333333333301"
                         "c4203333333333333333333333333333333333333333333333333333333333333333",
                         "90"};
    for (int i = 0; i < 3; i++) {
        kc_buf inner = hexbuf(bad[i]);
        kc_buf rep = custom_reply(&p, &req, &inner, false);
        assert_int_equal(kc_exchange_decrypt_keys(c.x, "sensor", rep.data, rep.len, &got, NULL),
                         KC_ERR_CRYPTO);
        kc_buf_free(&inner);
        kc_buf_free(&rep);
    }
    /* B8: a first candidate that does not open does not stop the second */
    kc_buf inner = hexbuf("9201c4203333333333333333333333333333333333333333333333333333333333333333");
    kc_buf rep = custom_reply(&p, &req, &inner, true);
    assert_int_equal(kc_exchange_decrypt_keys(c.x, "sensor", rep.data, rep.len, &got, NULL), KC_OK);
    assert_int_equal(got.n, 1);
    kc_buf_free(&inner);
    kc_buf_free(&rep);
    kc_exchange_keys_clear(&got);
    kc_exchange_msgs_clear(&req);
    node_free(&c);
    node_free(&p);
}

/* ---- controller ------------------------------------------------------------------------ */

static void test_controller_resigns_subscriptions(void **state)
{
    tnode limited, ctl, p, prodreq;
    node_make(&limited, "limited", KC_ROLE_CONSUMER_LIMITED, "sensor", false, 1, NULL, 0);
    node_make(&ctl, "controller", KC_ROLE_CONTROLLER, "^.*$", false, 1, NULL, 0);
    node_make(&p, "producer", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    node_make(&prodreq, "producer-as-consumer", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    kc_exchange_msgs req = {0}, rep = {0}, preq = {0};
    kc_exchange_keys keys = held_keys(), got = {0};
    kc_buf resigned = KC_BUF_INIT;
    kc_err err;
    assert_int_equal(kc_exchange_signed_epks(limited.x, "sensor", &req, NULL), KC_OK);
    assert_int_equal(kc_exchange_reencrypt_request(ctl.x, "sensor", NULL, NULL,
                                                   req.items[0].value.data,
                                                   req.items[0].value.len, &resigned, &err),
                     KC_OK);
    assert_int_equal(kc_exchange_encrypt_keys(p.x, "sensor", &keys, resigned.data, resigned.len,
                                              &rep, &err), KC_OK);
    assert_int_equal(kc_exchange_decrypt_keys(limited.x, "sensor", rep.items[0].value.data,
                                              rep.items[0].value.len, &got, &err), KC_OK);
    assert_int_equal(got.n, 2);
    /* a producer's chain has no key-encrypt-subscribe: the controller refuses */
    assert_int_equal(kc_exchange_signed_epks(prodreq.x, "sensor", &preq, NULL), KC_OK);
    assert_int_equal(kc_exchange_reencrypt_request(ctl.x, "sensor", NULL, NULL,
                                                   preq.items[0].value.data,
                                                   preq.items[0].value.len, &resigned, &err),
                     KC_ERR_DENIED);
    /* nor for another root */
    assert_int_equal(kc_exchange_reencrypt_request(ctl.x, "metrics", NULL, NULL,
                                                   req.items[0].value.data,
                                                   req.items[0].value.len, &resigned, &err),
                     KC_ERR_DENIED);
    /* with provisioner lists that trust nobody */
    kc_chain_list empty = {NULL, 0};
    assert_int_not_equal(kc_exchange_reencrypt_request(ctl.x, "sensor", &empty, NULL,
                                                       req.items[0].value.data,
                                                       req.items[0].value.len, &resigned, &err),
                         KC_OK);
    kc_buf_free(&resigned);
    kc_exchange_keys_clear(&keys);
    kc_exchange_keys_clear(&got);
    kc_exchange_msgs_clear(&req);
    kc_exchange_msgs_clear(&rep);
    kc_exchange_msgs_clear(&preq);
    node_free(&limited);
    node_free(&ctl);
    node_free(&p);
    node_free(&prodreq);
}

/* ---- own chains (B2) ---------------------------------------------------------------------- */

static void test_own_chain_adoption(void **state)
{
    tnode n, other;
    node_make(&n, "node", -1, NULL, false, 1, NULL, 0);
    node_make(&other, "other", -1, NULL, false, 1, NULL, 0);
    kc_err err;
    size_t idx;
    kc_buf c1 = node_chain(KC_ROLE_CONSUMER_LIMITED, T0 + 10 * DAY, "sensor", &n.pk[0]);
    kc_buf early = node_chain(KC_ROLE_CONSUMER, T0 + 5 * DAY, "sensor", &n.pk[0]);
    kc_buf later = node_chain(KC_ROLE_CONSUMER, T0 + 20 * DAY, "sensor", &n.pk[0]);
    kc_buf never = node_chain(KC_ROLE_CONSUMER, 0, "sensor", &n.pk[0]);
    kc_buf notours = node_chain(KC_ROLE_CONSUMER, T0 + 30 * DAY, "sensor", &other.pk[0]);
    kc_buf expired = node_chain(KC_ROLE_CONSUMER, T0 - DAY, "sensor", &n.pk[0]);

    assert_true(kc_exchange_direct(n.x, 0)); /* no chain yet: the temporary one, direct */
    assert_int_equal(kc_exchange_update_own_chain(n.x, c1.data, c1.len, &idx, &err), KC_OK);
    assert_false(kc_exchange_direct(n.x, 0)); /* limited: no key-encrypt-request */
    assert_true(logged("does not support direct key requests. Disabling."));
    assert_int_equal(kc_exchange_update_own_chain(n.x, early.data, early.len, &idx, &err),
                     KC_ERR_DENIED);
    assert_true(logged("New chain for idx=0 has shorter expiry time than current chain."));
    assert_int_equal(kc_exchange_update_own_chain(n.x, notours.data, notours.len, &idx, &err),
                     KC_ERR_DENIED);
    assert_true(logged("New chain does not match a current signing public key"));
    assert_int_not_equal(kc_exchange_update_own_chain(n.x, expired.data, expired.len, &idx, &err),
                         KC_OK);
    assert_int_equal(kc_exchange_update_own_chain(n.x, later.data, later.len, &idx, &err), KC_OK);
    assert_true(kc_exchange_direct(n.x, 0));
    assert_true(logged("supports direct key requests. Enabling."));
    assert_int_equal(kc_exchange_update_own_chain(n.x, never.data, never.len, &idx, &err), KC_OK);
    /* nothing expires later than "never" */
    assert_int_equal(kc_exchange_update_own_chain(n.x, later.data, later.len, &idx, &err),
                     KC_ERR_DENIED);
    kc_buf cur = KC_BUF_INIT;
    assert_int_equal(kc_exchange_own_chain(n.x, 0, &cur), KC_OK);
    assert_int_equal(cur.len, never.len);
    assert_memory_equal(cur.data, never.data, never.len);
    kc_buf *bufs[] = {&c1, &early, &later, &never, &notours, &expired, &cur};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        kc_buf_free(bufs[i]);
    node_free(&n);
    node_free(&other);
}

/* ---- temporary chain ------------------------------------------------------------------------ */

static void test_unprovisioned_node_uses_the_temporary_chain(void **state)
{
    tnode n, p;
    node_make(&n, "fresh", -1, NULL, false, 1, NULL, 0);
    node_make(&p, "producer", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    kc_exchange_msgs req = {0}, rep = {0};
    assert_int_equal(kc_exchange_signed_epks(n.x, "sensor", &req, NULL), KC_OK);
    assert_true(req.items[0].direct);
    assert_true(logged("WARNING:kafkacrypto.cryptoexchange:Current signing chain is empty. Use 92"));
    assert_true(logged("to provision access and then remove temporary root of trust from "
                       "allowedlist."));
    kc_buf tmp = KC_BUF_INIT;
    assert_int_equal(kc_chain_temporary_rot_entry(&tmp), KC_OK);
    kc_chain_list trusted = {&(kc_bytes){tmp.data, tmp.len}, 1};
    assert_int_equal(kc_chain_process(req.items[0].value.data, req.items[0].value.len, "sensor",
                                      "key-encrypt-request", &trusted, NULL, T0, NULL, NULL),
                     KC_OK);
    /* our producer does not trust the temporary root */
    assert_int_not_equal(answer(&p, "sensor", &req, NULL), KC_OK);
    assert_false(kc_exchange_trusts_temporary_rot(p.x));
    /* a producer that does answers, with its own temporary chain */
    tnode open;
    node_make(&open, "open-producer", -1, NULL, false, 1, NULL, 0);
    kc_exchange_free(open.x);
    kc_exchange_config c;
    kc_exchange_config_init(&c);
    c.cryptokey = open.ck;
    c.allowlist = trusted.entries;
    c.n_allowlist = 1;
    c.now_fn = pinned;
    assert_int_equal(kc_exchange_new(&c, &open.x, NULL), KC_OK);
    assert_true(kc_exchange_trusts_temporary_rot(open.x));
    kc_exchange_keys keys = held_keys();
    assert_int_equal(kc_exchange_encrypt_keys(open.x, "sensor", &keys, req.items[0].value.data,
                                              req.items[0].value.len, &rep, NULL), KC_OK);
    assert_true(logged("Current signing chain for idx=0 is empty. Use 92"));
    kc_exchange_keys_clear(&keys);
    kc_buf_free(&tmp);
    kc_exchange_msgs_clear(&req);
    kc_exchange_msgs_clear(&rep);
    node_free(&n);
    node_free(&p);
    node_free(&open);
}

/* ---- allowlist / denylist topics (B3) ------------------------------------------------------ */

/* A list message signed directly by the ROT: leaf [0, poison(usage),
 * key, bin(entry of key)] (entry_key lets the entry name another key). */
static kc_buf list_message(const char *usage, const kc_key *key, const kc_key *entry_key,
                           bool with_entry)
{
    kc_buf poison = KC_BUF_INIT, entry = KC_BUF_INIT, packed = KC_BUF_INIT, cert = KC_BUF_INIT;
    kc_buf item = KC_BUF_INIT, out = KC_BUF_INIT;
    static const uint8_t empty[] = {0x90};
    kc_poison_entry pe = {.name = "usages", .values = &usage, .n_values = 1};
    assert_int_equal(kc_poison_build(&pe, 1, &poison, NULL), KC_OK);
    assert_int_equal(kc_chain_entry_build(0, empty, 1, entry_key, &entry, NULL), KC_OK);
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    kc_mp_pack_bin(&mo.pk, entry.data, entry.len);
    kc_buf_set(&packed, mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);
    kc_pks pks = {false, 1, (kc_key *)key};
    kc_bytes extra = {packed.data, packed.len};
    assert_int_equal(kc_cert_build(0, poison.data, poison.len, &pks, &extra, with_entry ? 1 : 0,
                                   &cert, NULL), KC_OK);
    sign_item(&pki.rot_sk, &cert, &item);
    assert_int_equal(kc_chain_build(&(kc_bytes){item.data, item.len}, 1, &out, NULL), KC_OK);
    kc_buf *bufs[] = {&poison, &entry, &packed, &cert, &item};
    for (size_t i = 0; i < 5; i++)
        kc_buf_free(bufs[i]);
    return out;
}

static void test_allowlist_and_denylist_messages(void **state)
{
    tnode n, c;
    node_make(&n, "listener", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    node_make(&c, "consumer", KC_ROLE_CONSUMER, "sensor", false, 1, NULL, 0);
    kc_key k, ksk;
    tc_seeded(&k, &ksk, "new root");
    kc_buf entry = KC_BUF_INIT;
    kc_err err;
    kc_buf add = list_message("key-allowlist", &k, &k, true);
    assert_int_equal(kc_exchange_add_to_list(n.x, KC_LIST_ALLOW, add.data, add.len, &entry, &err),
                     KC_OK);
    assert_int_equal(kc_exchange_list_size(n.x, KC_LIST_ALLOW), 2);
    assert_true(logged("Added key (Ed25519, "));
    /* the same again */
    assert_int_equal(kc_exchange_add_to_list(n.x, KC_LIST_ALLOW, add.data, add.len, &entry, &err),
                     KC_ERR_DENIED);
    assert_true(logged("already in allowlist"));
    /* an entry for another key than the signed one */
    kc_buf mismatch = list_message("key-allowlist", &k, &c.pk[0], true);
    assert_int_equal(kc_exchange_add_to_list(n.x, KC_LIST_ALLOW, mismatch.data, mismatch.len,
                                             &entry, &err), KC_ERR_DENIED);
    assert_true(logged("Mismatch in keys for allowlist"));
    /* no entry: nothing, silently */
    kc_buf bare = list_message("key-allowlist", &k, &k, false);
    assert_int_equal(kc_exchange_add_to_list(n.x, KC_LIST_ALLOW, bare.data, bare.len, &entry,
                                             &err), KC_ERR_NOTFOUND);
    /* an allowlist message on the denylist topic */
    assert_int_not_equal(kc_exchange_add_to_list(n.x, KC_LIST_DENY, add.data, add.len, &entry,
                                                 &err), KC_OK);
    assert_int_equal(kc_exchange_list_size(n.x, KC_LIST_ALLOW), 2);
    assert_int_equal(kc_exchange_list_size(n.x, KC_LIST_DENY), 0);

    /* revoking the consumer: its requests are refused from then on */
    kc_exchange_msgs req = {0};
    assert_int_equal(kc_exchange_signed_epks(c.x, "sensor", &req, NULL), KC_OK);
    assert_int_equal(answer(&n, "sensor", &req, &err), KC_OK);
    kc_buf revoke = list_message("key-denylist", &c.pk[0], &c.pk[0], true);
    assert_int_equal(kc_exchange_add_to_list(n.x, KC_LIST_DENY, revoke.data, revoke.len, &entry,
                                             &err), KC_OK);
    assert_int_equal(answer(&n, "sensor", &req, &err), KC_ERR_DENIED);

    /* topics switched off */
    tnode off;
    node_make(&off, "listener", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    kc_exchange_free(off.x);
    kc_exchange_config cfg;
    kc_exchange_config_init(&cfg);
    cfg.cryptokey = off.ck;
    cfg.allowlist_topic = false;
    cfg.denylist_topic = false;
    assert_int_equal(kc_exchange_new(&cfg, &off.x, NULL), KC_OK);
    assert_int_equal(kc_exchange_add_to_list(off.x, KC_LIST_ALLOW, add.data, add.len, &entry,
                                             &err), KC_ERR_STATE);
    assert_int_equal(kc_exchange_add_to_list(off.x, KC_LIST_DENY, revoke.data, revoke.len, &entry,
                                             &err), KC_ERR_STATE);
    node_free(&off);

    kc_buf *bufs[] = {&entry, &add, &mismatch, &bare, &revoke};
    for (size_t i = 0; i < 5; i++)
        kc_buf_free(bufs[i]);
    kc_key_clear(&k);
    kc_key_clear(&ksk);
    kc_exchange_msgs_clear(&req);
    node_free(&n);
    node_free(&c);
}

/* Any key may revoke itself (§6.9): [unsigned entry, self-signed cert
 * carrying its entry as 4th element]. */
static void test_self_signed_revocation(void **state)
{
    tnode n;
    node_make(&n, "listener", KC_ROLE_PRODUCER, "sensor", false, 1, NULL, 0);
    kc_key k, ksk;
    tc_seeded(&k, &ksk, "compromised");
    const char *usage = "key-denylist";
    kc_poison_entry outer[2] = {{.name = "usages", .values = &usage, .n_values = 1},
                                {.name = "pathlen", .pathlen = 1}};
    kc_poison_entry inner[2] = {{.name = "usages", .values = &usage, .n_values = 1},
                                {.name = "pathlen", .pathlen = 0}};
    kc_buf po = KC_BUF_INIT, pi = KC_BUF_INIT, e = KC_BUF_INIT, entry = KC_BUF_INIT;
    kc_buf packed = KC_BUF_INIT, cert = KC_BUF_INIT, item = KC_BUF_INIT, msg = KC_BUF_INIT;
    static const uint8_t empty[] = {0x90};
    kc_poison_build(outer, 2, &po, NULL);
    kc_poison_build(inner, 2, &pi, NULL);
    kc_chain_entry_build(0, po.data, po.len, &k, &e, NULL);
    kc_chain_entry_build(0, empty, 1, &k, &entry, NULL);
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    kc_mp_pack_bin(&mo.pk, entry.data, entry.len);
    kc_buf_set(&packed, mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);
    kc_pks pks = {false, 1, &k};
    kc_bytes extra = {packed.data, packed.len};
    kc_cert_build(0, pi.data, pi.len, &pks, &extra, 1, &cert, NULL);
    sign_item(&ksk, &cert, &item);
    kc_bytes items[2] = {{e.data, e.len}, {item.data, item.len}};
    kc_chain_build(items, 2, &msg, NULL);
    kc_buf out = KC_BUF_INIT;
    assert_int_equal(kc_exchange_add_to_list(n.x, KC_LIST_DENY, msg.data, msg.len, &out, NULL),
                     KC_OK);
    assert_int_equal(out.len, entry.len);
    /* but it is no allowlist message */
    assert_int_not_equal(kc_exchange_add_to_list(n.x, KC_LIST_ALLOW, msg.data, msg.len, &out,
                                                 NULL), KC_OK);
    kc_buf *bufs[] = {&po, &pi, &e, &entry, &packed, &cert, &item, &msg, &out};
    for (size_t i = 0; i < 9; i++)
        kc_buf_free(bufs[i]);
    kc_key_clear(&k);
    kc_key_clear(&ksk);
    node_free(&n);
}

/* ---- message keys and selection ----------------------------------------------------------- */

static void test_msgkey_and_selection(void **state)
{
    kc_exchange_keys held = held_keys(), sel = {0};
    kc_keyidx want[3];
    kc_keyidx_from_bytes(&want[0], held.items[1].ki.bytes, 32);
    kc_keyidx_from_int(&want[1], 99);
    kc_keyidx_from_int(&want[2], 7);
    assert_int_equal(kc_exchange_keys_select(&held, want, 3, &sel), KC_OK);
    assert_int_equal(sel.n, 2); /* in held order, 99 unknown */
    assert_int_equal(sel.items[0].ki.type, KC_KEYIDX_INT);
    kc_buf k = KC_BUF_INIT;
    assert_int_equal(kc_exchange_msgkey_build(want, 3, &k), KC_OK);
    kc_keyidx *parsed;
    size_t n;
    assert_int_equal(kc_exchange_msgkey_parse(k.data, k.len, &parsed, &n, NULL), KC_OK);
    assert_int_equal(n, 3);
    assert_true(kc_keyidx_equal(&parsed[0], &want[0]) && kc_keyidx_equal(&parsed[2], &want[2]));
    free(parsed);
    kc_err err;
    const uint8_t notalist[] = {0x07};
    assert_int_equal(kc_exchange_msgkey_parse(notalist, 1, &parsed, &n, &err), KC_ERR_INVALID);
    assert_int_equal(kc_exchange_msgkey_parse(k.data, k.len - 1, &parsed, &n, &err),
                     KC_ERR_INVALID);
    kc_buf_free(&k);
    kc_exchange_keys_clear(&held);
    kc_exchange_keys_clear(&sel);
}

int main(void)
{
    tc_rng_install();
    kc_init();
    kc_log_set_level(KC_LOG_DEBUG);
    kc_log_set_sink(sink, NULL);
    tc_pki_init(&pki, "test rot", "test provisioner");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_request_reply_decrypt_on_two_roots, setup),
        cmocka_unit_test_setup(test_legacy_requests_and_the_duplicate_reply, setup),
        cmocka_unit_test_setup(test_only_the_latest_round_decrypts_and_refusals_change_nothing,
                               setup),
        cmocka_unit_test_setup(test_producer_refuses_bad_requests, setup),
        cmocka_unit_test_setup(test_several_signing_keys, setup),
        cmocka_unit_test_setup(test_post_quantum_offers_are_answered_with_the_classical_part,
                               setup),
        cmocka_unit_test_setup(test_b5_keys_that_are_not_32_bytes_are_ignored, setup),
        cmocka_unit_test_setup(test_pairing_check_and_b8_every_candidate, setup),
        cmocka_unit_test_setup(test_controller_resigns_subscriptions, setup),
        cmocka_unit_test_setup(test_own_chain_adoption, setup),
        cmocka_unit_test_setup(test_unprovisioned_node_uses_the_temporary_chain, setup),
        cmocka_unit_test_setup(test_allowlist_and_denylist_messages, setup),
        cmocka_unit_test_setup(test_self_signed_revocation, setup),
        cmocka_unit_test_setup(test_msgkey_and_selection, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tc_pki_clear(&pki);
    return rc;
}
