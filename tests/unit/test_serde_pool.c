/* The deserializer pool: each partition's messages come back in submission
 * order under concurrency, a slow message (waiting for its key) holds back
 * its own partition only, undecryptable and malformed messages keep their
 * place, memory in flight is bounded, and the pool shuts down cleanly with
 * work outstanding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafkacrypto.h"
#include "kc_serde.h"
#include "kc_test.h"

static char *dir;
static kc_ratchet *ratchet;
static kc_serde *prod;
static const uint8_t node_id[32] = {7, 7, 7};

static void sleep_real(void *ctx, double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

/* A consumer serde: waits `intervals` - 1 times `interval` s for a missing key. */
static kc_serde *consumer(int intervals, double interval)
{
    kc_serde_config c;
    kc_serde_config_init(&c);
    c.initial_wait_intervals = intervals;
    c.key_wait_interval = interval;
    c.sleep_fn = sleep_real;
    kc_serde *s;
    assert_int_equal(kc_serde_new(&c, &s, NULL), KC_OK);
    return s;
}

static void share_one(void *to, const kc_keyidx *ki, const uint8_t secret[32], double birth,
                      bool can_encrypt)
{
    assert_int_equal(kc_serde_add_consumer_key(to, "data", ki, secret, NULL), KC_OK);
}

static int setup(void **state)
{
    dir = tc_tmpdir();
    char *seed = tc_path(dir, "pool.seed");
    kc_err err;
    if (kc_ratchet_open_file(seed, NULL, &ratchet, &err) != KC_OK)
        fail_msg("%s", err.msg);
    free(seed);
    kc_serde_config c;
    kc_serde_config_init(&c);
    c.ratchet = ratchet;
    c.node_id = node_id;
    c.node_id_len = sizeof node_id;
    assert_int_equal(kc_serde_new(&c, &prod, NULL), KC_OK);
    return 0;
}

static int teardown(void **state)
{
    kc_serde_free(prod);
    kc_ratchet_close(ratchet);
    tc_rmtree(dir);
    free(dir);
    return 0;
}

/* Encrypts "p<partition> #<seq>" padded to size with 'x' on topic. */
static kc_buf encrypt(const char *topic, int partition, int seq, size_t size)
{
    char *plain = malloc(size + 32);
    assert_non_null(plain);
    int n = snprintf(plain, size + 32, "p%d #%d", partition, seq);
    if ((size_t)n < size)
        memset(plain + n, 'x', size - (size_t)n);
    kc_buf out = KC_BUF_INIT;
    assert_int_equal(kc_serde_serialize(prod, KC_KIND_VALUE, topic, (const uint8_t *)plain,
                                        size > (size_t)n ? size : (size_t)n, &out, NULL), KC_OK);
    free(plain);
    return out;
}

static void share_keys(kc_serde *cons)
{
    kc_serde_foreach_pgen(prod, "data", share_one, cons);
}

static bool plaintext_is(kc_message *m, int partition, int seq)
{
    const uint8_t *p;
    size_t n;
    if (!kc_message_is_cleartext(m, false) || kc_message_get(m, false, &p, &n, NULL) != KC_OK)
        return false;
    char want[32];
    int w = snprintf(want, sizeof want, "p%d #%d", partition, seq);
    return n >= (size_t)w && memcmp(p, want, (size_t)w) == 0 && (n == (size_t)w || p[w] == 'x');
}

#define PARTS 5
#define PER_PART 120

/* Many partitions interleaved, sizes from 10 B to 64 KiB so that work
 * finishes out of order; every 7th message is not kafkacrypto at all and
 * every 11th is under a key index whose key never comes. */
static void test_order_per_partition(void **state)
{
    kc_serde *cons = consumer(1, 0);
    kc_buf first = encrypt("data.x", 0, 0, 1);  /* the producer's key exists before sharing */
    kc_buf_free(&first);
    share_keys(cons);
    static const size_t sizes[] = {10, 65536, 100, 1024, 20000};
    size_t n = PARTS * PER_PART;
    kc_buf *wire = calloc(n, sizeof *wire);
    int *kind_of = calloc(n, sizeof *kind_of);  /* 0 ok, 1 not kafkacrypto, 2 unknown root */
    assert_true(wire && kind_of);
    for (size_t i = 0; i < n; i++) {
        int part = (int)(i % PARTS), seq = (int)(i / PARTS);
        if (i % 7 == 3) {
            kind_of[i] = 1;
            wire[i] = tc_hex("00112233");
        } else if (i % 11 == 5) {
            kind_of[i] = 2;  /* made below, under a key index cons never gets */
        } else {
            wire[i] = encrypt("data.x", part, seq, sizes[i % 5]);
        }
    }
    assert_int_equal(kc_serde_ratchet_step(prod, NULL), KC_OK);
    for (size_t i = 0; i < n; i++)
        if (kind_of[i] == 2)
            wire[i] = encrypt("data.x", (int)(i % PARTS), (int)(i / PARTS), 50);
    kc_serde_pool *pool;
    assert_int_equal(kc_serde_pool_new(cons, 2, 16, &pool, NULL), KC_OK);
    int next_seq[PARTS] = {0};
    size_t submitted = 0, got = 0;
    while (got < n) {
        while (submitted < n) {
            int part = (int)(submitted % PARTS);
            kc_err err;
            kc_status st = kc_serde_pool_submit(pool, KC_KIND_VALUE,
                                                "data.x", part, wire[submitted].data, wire[submitted].len,
                                                (void *)(uintptr_t)submitted, &err);
            if (st == KC_ERR_BUSY)
                break;
            assert_int_equal(st, KC_OK);
            submitted++;
        }
        assert_true(kc_serde_pool_in_flight(pool) <= 16);
        kc_pool_result *r;
        assert_int_equal(kc_serde_pool_next(pool, 10000, &r), KC_OK);
        size_t i = (size_t)(uintptr_t)r->user;
        int part = (int)(i % PARTS), seq = (int)(i / PARTS);
        assert_int_equal(r->status, KC_OK);
        assert_int_equal(r->partition, part);
        /* in submission order within the partition */
        assert_int_equal(seq, next_seq[part]);
        next_seq[part]++;
        if (kind_of[i] == 0) {
            assert_true(plaintext_is(r->msg, part, seq));
        } else {
            assert_false(kc_message_is_cleartext(r->msg, false));
            assert_int_equal(kc_message_is_possibly_decryptable(r->msg), kind_of[i] == 2);
            const uint8_t *p;
            size_t len;
            kc_message_bytes(r->msg, &p, &len);
            assert_int_equal(len, wire[i].len);
            assert_memory_equal(p, wire[i].data, len);
        }
        got++;
    }
    for (int p = 0; p < PARTS; p++)
        assert_int_equal(next_seq[p], PER_PART);
    kc_pool_result *r;
    assert_int_equal(kc_serde_pool_next(pool, 0, &r), KC_ERR_NOTFOUND);
    assert_null(r);
    assert_int_equal(kc_serde_pool_in_flight(pool), 0);
    kc_serde_pool_free(pool);
    for (size_t i = 0; i < n; i++)
        kc_buf_free(&wire[i]);
    free(wire);
    free(kind_of);
    kc_serde_free(cons);
}

/* A message waiting for its key (one 0.3 s interval) holds back the later
 * message of its partition, not the other partition. */
static void test_slow_message_holds_back_its_partition_only(void **state)
{
    kc_serde *cons = consumer(2, 0.3);
    kc_buf known = encrypt("data.x", 0, 1, 40);
    kc_buf other = encrypt("data.x", 1, 0, 40);
    share_keys(cons);
    assert_int_equal(kc_serde_ratchet_step(prod, NULL), KC_OK);
    kc_buf unknown = encrypt("data.x", 0, 0, 40);  /* a key index cons does not have */
    kc_serde_pool *pool;
    assert_int_equal(kc_serde_pool_new(cons, 2, 8, &pool, NULL), KC_OK);
    assert_int_equal(kc_serde_pool_submit(pool, KC_KIND_VALUE, "data.x", 0, unknown.data,
                                          unknown.len, "p0 first", NULL), KC_OK);
    assert_int_equal(kc_serde_pool_submit(pool, KC_KIND_VALUE, "data.x", 0, known.data,
                                          known.len, "p0 second", NULL), KC_OK);
    assert_int_equal(kc_serde_pool_submit(pool, KC_KIND_VALUE, "data.x", 1, other.data,
                                          other.len, "p1", NULL), KC_OK);
    kc_pool_result *r;
    assert_int_equal(kc_serde_pool_next(pool, 10000, &r), KC_OK);
    assert_string_equal(r->user, "p1");
    assert_true(plaintext_is(r->msg, 1, 0));
    assert_int_equal(kc_serde_pool_next(pool, 10000, &r), KC_OK);
    assert_string_equal(r->user, "p0 first");
    assert_false(kc_message_is_cleartext(r->msg, false));
    assert_true(kc_message_is_possibly_decryptable(r->msg));
    assert_int_equal(kc_serde_pool_next(pool, 10000, &r), KC_OK);
    assert_string_equal(r->user, "p0 second");
    assert_true(plaintext_is(r->msg, 0, 1));
    kc_serde_pool_free(pool);
    kc_buf_free(&known);
    kc_buf_free(&unknown);
    kc_buf_free(&other);
    kc_serde_free(cons);
}

/* max_in_flight counts every message not yet released, the last result
 * included; a full pool refuses with KC_ERR_BUSY and changes nothing. */
static void test_bounded_in_flight(void **state)
{
    kc_serde *cons = consumer(1, 0);
    kc_buf w = encrypt("data.x", 0, 0, 40);
    share_keys(cons);
    kc_serde_pool *pool;
    assert_int_equal(kc_serde_pool_new(cons, 1, 3, &pool, NULL), KC_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(kc_serde_pool_submit(pool, KC_KIND_VALUE, "data.x", 0, w.data, w.len,
                                              NULL, NULL), KC_OK);
    kc_err err;
    assert_int_equal(kc_serde_pool_submit(pool, KC_KIND_VALUE, "data.x", 0, w.data, w.len, NULL,
                                          &err), KC_ERR_BUSY);
    assert_non_null(strstr(err.msg, "3 messages in flight"));
    assert_int_equal(kc_serde_pool_in_flight(pool), 3);
    kc_pool_result *r;
    assert_int_equal(kc_serde_pool_next(pool, 10000, &r), KC_OK);
    assert_int_equal(kc_serde_pool_in_flight(pool), 3);  /* r is still the caller's */
    assert_int_equal(kc_serde_pool_submit(pool, KC_KIND_VALUE, "data.x", 0, w.data, w.len, NULL,
                                          NULL), KC_ERR_BUSY);
    assert_int_equal(kc_serde_pool_next(pool, 10000, &r), KC_OK);
    assert_int_equal(kc_serde_pool_in_flight(pool), 2);
    assert_int_equal(kc_serde_pool_submit(pool, KC_KIND_VALUE, "data.x", 0, w.data, w.len, NULL,
                                          NULL), KC_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(kc_serde_pool_next(pool, 10000, &r), KC_OK);
    assert_true(plaintext_is(r->msg, 0, 0));
    assert_int_equal(kc_serde_pool_next(pool, -1, &r), KC_ERR_NOTFOUND);  /* nothing left: no wait */
    assert_int_equal(kc_serde_pool_in_flight(pool), 0);
    kc_serde_pool_free(pool);
    kc_buf_free(&w);
    kc_serde_free(cons);
}

/* Freeing with work queued, a worker asleep waiting for a key and a result
 * never taken: no leak, no hang (ASan build checks the memory). The serde
 * outlives its caller's reference while the pool holds it. */
static void test_shutdown_with_work_outstanding(void **state)
{
    kc_serde *cons = consumer(2, 0.2);
    kc_buf unknown = encrypt("late.x", 0, 0, 40);
    kc_serde_pool *pool;
    assert_int_equal(kc_serde_pool_new(cons, 2, 64, &pool, NULL), KC_OK);
    kc_serde_free(cons);
    for (int i = 0; i < 40; i++)
        assert_int_equal(kc_serde_pool_submit(pool, KC_KIND_VALUE, "late.x", i % 3, unknown.data,
                                              unknown.len, NULL, NULL), KC_OK);
    kc_pool_result *r;
    assert_int_equal(kc_serde_pool_next(pool, 0, &r), KC_ERR_NOTFOUND);
    kc_serde_pool_free(pool);
    kc_buf_free(&unknown);
}

static void test_bad_arguments(void **state)
{
    kc_serde *cons = consumer(1, 0);
    kc_serde_pool *pool = (kc_serde_pool *)1;
    kc_err err;
    assert_int_equal(kc_serde_pool_new(cons, 0, 8, &pool, &err), KC_ERR_INVALID);
    assert_null(pool);
    assert_non_null(strstr(err.msg, "1..64 threads"));
    assert_int_equal(kc_serde_pool_new(cons, 2, 0, &pool, NULL), KC_ERR_INVALID);
    assert_int_equal(kc_serde_pool_new(cons, 65, 8, &pool, NULL), KC_ERR_INVALID);
    assert_int_equal(kc_serde_pool_new(NULL, 2, 8, &pool, NULL), KC_ERR_INVALID);
    assert_int_equal(kc_serde_pool_new(cons, 2, 8, &pool, NULL), KC_OK);
    assert_int_equal(kc_serde_pool_submit(pool, (kc_kind)9, "t", 0, NULL, 0, NULL, NULL),
                     KC_ERR_INVALID);
    assert_int_equal(kc_serde_pool_submit(pool, KC_KIND_VALUE, NULL, 0, NULL, 0, NULL, NULL),
                     KC_ERR_INVALID);
    /* a null Kafka value is a message like any other */
    assert_int_equal(kc_serde_pool_submit(pool, KC_KIND_KEY, "t", 0, NULL, 0, NULL, NULL), KC_OK);
    kc_pool_result *r;
    assert_int_equal(kc_serde_pool_next(pool, 10000, &r), KC_OK);
    assert_true(kc_message_is_null(r->msg));
    assert_int_equal(kc_message_kind(r->msg), KC_KIND_KEY);
    assert_int_equal(kc_serde_pool_next(NULL, 0, &r), KC_ERR_INVALID);
    assert_int_equal(kc_serde_pool_in_flight(NULL), 0);
    kc_serde_pool_free(pool);
    kc_serde_pool_free(NULL);
    kc_serde_free(cons);
}

int main(void)
{
    assert_int_equal(kc_init(), 0);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_order_per_partition),
        T(test_slow_message_holds_back_its_partition_only),
        T(test_bounded_in_flight),
        T(test_shutdown_with_work_outstanding),
        T(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
