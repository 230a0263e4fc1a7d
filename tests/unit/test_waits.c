/* Made-up key indices (spec D4, kc_waits.h): the bounded table of the key
 * indices a root waits for, its ranking and giving up; the serde under a
 * flood of 10 000 made-up indices (deserializers hardly sleep, retries add
 * nothing, memory stays bounded); and nodes on the embedded broker, where
 * after such a flood a new producer's key is asked for in the very next
 * request round, within one request interval, and decrypts. */
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
#include <time.h>
#include <unistd.h>

#include "kc_broker.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_message.h"
#include "kc_node.h"
#include "kc_provision_node.h"
#include "kc_serde.h"
#include "kc_test.h"
#include "kc_tunables.h"
#include "kc_waits.h"

#define FLOOD 10000
#define ROOT "flood"
#define TOPIC ROOT ".data"
#define SUB_INTERVAL 2.0   /* s between request rounds of the nodes under test */

static char *dir;

static kc_keyidx random_ki(void)
{
    uint8_t b[32];
    randombytes_buf(b, sizeof b);
    kc_keyidx ki;
    kc_keyidx_from_bytes(&ki, b, sizeof b);
    return ki;
}

/* ---- the table ---------------------------------------------------------------------- */

static void test_a_new_index_outranks_any_flood_and_memory_is_bounded(void **state)
{
    kc_waits w;
    kc_waits_init(&w);
    static kc_keyidx fakes[FLOOD];
    for (int i = 0; i < FLOOD; i++) {
        fakes[i] = random_ki();
        assert_non_null(kc_waits_add(&w, &fakes[i]));
        assert_true(kc_waits_count(&w) <= KC_WAITS_MAX);
        assert_true(kc_waits_bytes(&w) <= KC_WAITS_MAX_BYTES);
    }
    print_message("waits of one root: %zu bytes at most (%d indices)\n",
                  (size_t)KC_WAITS_MAX_BYTES, KC_WAITS_MAX);
    assert_int_equal(kc_waits_count(&w), KC_WAITS_MAX);
    assert_int_equal(w.replaced, FLOOD - KC_WAITS_MAX);
    /* none asked yet: the oldest went first; the index finds every survivor */
    for (int i = 0; i < FLOOD; i++)
        assert_true((kc_waits_get(&w, &fakes[i]) != NULL) == (i >= FLOOD - KC_WAITS_MAX));

    /* a real producer's index, seen after the flood, leads the next request */
    kc_keyidx real = random_ki(), req[KC_EXCHANGE_MAX_KEYS];
    assert_non_null(kc_waits_add(&w, &real));
    assert_int_equal(kc_waits_pick(&w, req, KC_EXCHANGE_MAX_KEYS), KC_EXCHANGE_MAX_KEYS);
    assert_true(kc_keyidx_equal(&req[0], &real));
    assert_true(kc_keyidx_equal(&req[1], &fakes[FLOOD - 1]));  /* then newest first */

    /* that round got no reply: its indices rank behind every index never
     * asked for, even older ones */
    assert_int_equal(kc_waits_unanswered(&w, req, KC_EXCHANGE_MAX_KEYS, 0), 0);
    kc_keyidx next[KC_EXCHANGE_MAX_KEYS];
    assert_int_equal(kc_waits_pick(&w, next, KC_EXCHANGE_MAX_KEYS), KC_EXCHANGE_MAX_KEYS);
    assert_true(kc_keyidx_equal(&next[0], &fakes[FLOOD - 1 - (KC_EXCHANGE_MAX_KEYS - 1)]));
    kc_keyidx real2 = random_ki();
    kc_waits_add(&w, &real2);
    assert_int_equal(kc_waits_pick(&w, next, 1), 1);
    assert_true(kc_keyidx_equal(&next[0], &real2));

    /* ... and it replaced one of those, the oldest (worst-ranked) */
    assert_null(kc_waits_get(&w, &req[KC_EXCHANGE_MAX_KEYS - 1]));
    size_t left = KC_EXCHANGE_MAX_KEYS - 1;

    /* KC_WAITS_ROUNDS unanswered rounds: given up, never asked for again */
    for (int r = 1; r < KC_WAITS_ROUNDS; r++)
        assert_int_equal(kc_waits_unanswered(&w, req, KC_EXCHANGE_MAX_KEYS, 0),
                         r == KC_WAITS_ROUNDS - 1 ? left : 0);
    assert_int_equal(w.given_up, left);
    size_t n = kc_waits_pick(&w, next, KC_EXCHANGE_MAX_KEYS);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < KC_EXCHANGE_MAX_KEYS; j++)
            assert_false(kc_keyidx_equal(&next[i], &req[j]));
    /* ... and given-up ones are the first replaced (not counted as replaced) */
    uint64_t replaced = w.replaced;
    for (size_t i = 0; i < left; i++) {
        kc_keyidx ki = random_ki();
        kc_waits_add(&w, &ki);
    }
    assert_int_equal(w.replaced, replaced);
    for (int j = 0; j < KC_EXCHANGE_MAX_KEYS; j++)
        assert_null(kc_waits_get(&w, &req[j]));
    assert_non_null(kc_waits_get(&w, &real2));

    /* a given-up index seen anew gets one more round, behind all others */
    kc_keyidx lone = random_ki();
    kc_waits_add(&w, &lone);
    for (int r = 0; r < KC_WAITS_ROUNDS; r++)
        kc_waits_unanswered(&w, &lone, 1, 0);
    kc_wait *e = kc_waits_get(&w, &lone);
    assert_true(kc_wait_given_up(e));
    kc_wait_rearm(e);
    assert_false(kc_wait_given_up(e));
    static kc_keyidx all[KC_WAITS_MAX];
    n = kc_waits_pick(&w, all, KC_WAITS_MAX);
    assert_true(kc_keyidx_equal(&all[n - 1], &lone));
    kc_waits_unanswered(&w, &lone, 1, 0);
    assert_true(kc_wait_given_up(kc_waits_get(&w, &lone)));
    assert_int_equal(w.given_up, left + 1); /* counted once */

    /* the key arrives: the index goes */
    kc_waits_remove(&w, &real2);
    assert_null(kc_waits_get(&w, &real2));
    kc_waits_free(&w);
}

/* ---- the serde ---------------------------------------------------------------------- */

typedef struct hooks {
    int sleeps, missing;
    double clock;
    bool real;     /* sleep for real (the thread's bound runs on the real clock) */
    double slept;  /* seconds asked for */
} hooks;

static double fake_now(void *ctx)
{
    return ((hooks *)ctx)->clock;
}

static void count_sleep(void *ctx, double seconds)
{
    hooks *h = ctx;
    h->sleeps++;
    h->slept += seconds;
    if (h->real)
        usleep((useconds_t)(seconds * 1e6));
}

static void on_missing(void *ctx, const char *root, size_t len, const kc_keyidx *ki)
{
    ((hooks *)ctx)->missing++;
}

/* A consumer's serde that counts sleeps and misses, on h's clock. */
static kc_serde *new_serde(hooks *h)
{
    kc_serde_config c;
    kc_serde_config_init(&c);
    c.sleep_fn = count_sleep;
    c.sleep_ctx = h;
    c.on_missing_key = on_missing;
    c.hook_ctx = h;
    c.now_fn = fake_now;
    c.now_ctx = h;
    kc_serde *s;
    assert_int_equal(kc_serde_new(&c, &s, NULL), KC_OK);
    return s;
}

static void test_a_flood_hardly_holds_the_deserializers(void **state)
{
    hooks h = {0};
    kc_serde *s = new_serde(&h);
    kc_message *m = kc_message_new(), *first = kc_message_new();
    uint8_t msg[TC_MADE_UP_BYTES];
    for (int i = 0; i < FLOOD; i++) {
        tc_made_up_message(msg);
        assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, TOPIC, msg, sizeof msg,
                                              i ? m : first, NULL), KC_OK);
        assert_true(kc_message_is_possibly_decryptable(i ? m : first));
    }
    /* upstream: 9 intervals for each made-up index; here 9 in all until a
     * key arrives */
    assert_int_equal(h.sleeps, 9);
    kc_serde_waits_stats ws;
    kc_serde_wait_stats(s, ROOT, &ws);
    assert_int_equal(ws.waiting, KC_WAITS_MAX);
    assert_true(ws.bytes <= KC_WAITS_MAX_BYTES);
    assert_int_equal(ws.replaced, FLOOD - KC_WAITS_MAX);

    /* retrying a message whose index was replaced adds nothing back */
    int missing = h.missing;
    assert_false(kc_message_is_cleartext(first, true));
    assert_int_equal(h.missing, missing);
    kc_serde_wait_stats(s, ROOT, &ws);
    assert_int_equal(ws.replaced, FLOOD - KC_WAITS_MAX);

    /* a real index after the flood: no sleep (the pool is spent), first in
     * the next request */
    kc_keyidx real = random_ki(), req[KC_EXCHANGE_MAX_KEYS];
    uint8_t wire[TC_MADE_UP_BYTES];
    tc_made_up_message(wire);
    memcpy(wire + 4, real.bytes, 32);
    assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, TOPIC, wire, sizeof wire, m, NULL),
                     KC_OK);
    assert_int_equal(h.sleeps, 9);
    assert_int_equal(kc_serde_pick_waits(s, ROOT, req, KC_EXCHANGE_MAX_KEYS), KC_EXCHANGE_MAX_KEYS);
    assert_true(kc_keyidx_equal(&req[0], &real));

    /* its key arrives: the pool is full again, the next new index waits */
    uint8_t secret[KC_SECRET_BYTES] = {7};
    assert_int_equal(kc_serde_add_consumer_key(s, ROOT, &real, secret, NULL), KC_OK);
    tc_made_up_message(msg);
    assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, TOPIC, msg, sizeof msg, m, NULL), KC_OK);
    assert_int_equal(h.sleeps, 18);
    kc_message_free(m);
    kc_message_free(first);
    kc_serde_free(s);
}

/* kc_serde_limit_key_wait: one bound for every wait of the thread, across
 * roots; the indices are still asked for; lifting it restores §4.4. */
static void test_a_threads_bound_cuts_waits_across_roots(void **state)
{
    hooks h = {.real = true};
    kc_serde *s = new_serde(&h);
    kc_message *m = kc_message_new();
    uint8_t msg[TC_MADE_UP_BYTES];
    static const char *const topics[] = {"ra.t", "rb.t", "rc.t", "rd.t"};
    kc_serde_limit_key_wait(0);
    for (int i = 0; i < 2; i++) {
        tc_made_up_message(msg);
        assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, topics[i], msg, sizeof msg, m,
                                              NULL), KC_OK);
        assert_false(kc_message_is_cleartext(m, false));
        assert_true(kc_message_is_possibly_decryptable(m));
    }
    assert_int_equal(h.sleeps, 0);
    assert_int_equal(h.missing, 2);
    /* a retry right after, unbounded, does not start the wait again */
    kc_serde_limit_key_wait(-1);
    h.real = false;
    assert_false(kc_message_is_cleartext(m, true));
    assert_int_equal(h.sleeps, 0);
    h.real = true;
    /* 0.3 s in all, although each root would wait 9 intervals of 1 s */
    double t0 = tc_mono();
    kc_serde_limit_key_wait(0.3);
    for (int i = 2; i < 4; i++) {
        tc_made_up_message(msg);
        assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, topics[i], msg, sizeof msg, m,
                                              NULL), KC_OK);
    }
    assert_true(h.slept <= 0.3 + 1e-6);
    assert_true(tc_mono() - t0 < 5);   /* unbounded: 18 s */
    assert_true(h.missing >= 4);   /* each root asked for (again after a nap) */
    /* no bound: the first sight of an index waits its 9 intervals */
    kc_serde_limit_key_wait(-1);
    h.real = false;
    int before = h.sleeps;
    tc_made_up_message(msg);
    assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, "re.t", msg, sizeof msg, m, NULL),
                     KC_OK);
    assert_int_equal(h.sleeps - before, 9);
    kc_message_free(m);
    kc_serde_free(s);
}

static void test_a_given_up_index_is_asked_for_again_when_seen_anew_or_later(void **state)
{
    hooks h = {.clock = 1000};
    kc_serde *s = new_serde(&h);
    uint8_t wire[TC_MADE_UP_BYTES];
    tc_made_up_message(wire);
    kc_keyidx ki, req[2];
    kc_keyidx_from_bytes(&ki, wire + 4, 32);
    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, TOPIC, wire, sizeof wire, m, NULL),
                     KC_OK);
    assert_int_equal(kc_serde_pick_waits(s, ROOT, req, 2), 1);
    for (int r = 0; r < KC_WAITS_ROUNDS; r++)
        kc_serde_waits_unanswered(s, ROOT, &ki, 1);
    assert_int_equal(kc_serde_pick_waits(s, ROOT, req, 2), 0);
    /* a retry soon after: still given up */
    h.clock += KC_WAITS_RETRY_AFTER - 1;
    assert_false(kc_message_is_cleartext(m, true));
    assert_int_equal(kc_serde_pick_waits(s, ROOT, req, 2), 0);
    /* a retry a while later: one more round */
    h.clock += 1;
    assert_false(kc_message_is_cleartext(m, true));
    assert_int_equal(kc_serde_pick_waits(s, ROOT, req, 2), 1);
    assert_true(kc_keyidx_equal(&req[0], &ki));
    kc_serde_waits_unanswered(s, ROOT, &ki, 1);
    assert_int_equal(kc_serde_pick_waits(s, ROOT, req, 2), 0);
    /* the index in a new message: one more round at once */
    kc_message *again = kc_message_new();
    assert_int_equal(kc_serde_deserialize(s, KC_KIND_VALUE, TOPIC, wire, sizeof wire, again, NULL),
                     KC_OK);
    assert_int_equal(kc_serde_pick_waits(s, ROOT, req, 2), 1);
    kc_serde_waits_stats ws;
    kc_serde_wait_stats(s, ROOT, &ws);
    assert_int_equal(ws.given_up, 1); /* counted once */
    kc_message_free(again);
    kc_message_free(m);
    kc_serde_free(s);
}

/* ---- nodes on the embedded broker ---------------------------------------------------------------- */

/* What the consumer node says about its requests. */
static struct {
    pthread_mutex_t mu;
    char want[80];           /* "msgkey=[<hex of the new producer's index>" */
    double since;            /* monotonic time of its first sight */
    double first_with_want;  /* ... of the first round since, leading with it */
    int rounds_without;      /* rounds since, before that one */
    int flood_warnings;
} seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void sink(void *ctx, kc_log_level level, const char *logger, const char *message)
{
    double t = tc_mono();
    pthread_mutex_lock(&seen.mu);
    if (strstr(message, "Sending new subscribe request(s) for root=" ROOT ",")) {
        if (seen.since > 0 && seen.first_with_want == 0) {
            if (seen.want[0] && strstr(message, seen.want))
                seen.first_with_want = t;
            else
                seen.rounds_without++;
        }
    } else if (strstr(message, "key indices made up or no longer served")) {
        seen.flood_warnings++;
    }
    pthread_mutex_unlock(&seen.mu);
    if (getenv("KC_TEST_LOG"))
        fprintf(stderr, "%s: %s\n", logger, message);
}

static char *provision(const char *node, kc_role role)
{
    kc_provision_request r = {.dir = dir, .node_id = node, .role = role,
                              .rot_password = "flood test root password", .prov_password = "provisioner",
                              .pathlen = 1};
    kc_err err = {0};
    kc_status st = kc_provision_node(&r, &err);
    if (st != KC_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(st, KC_OK);
    char name[64];
    snprintf(name, sizeof name, "%s.config", node);
    return tc_path(dir, name);
}

static kc_node *open_node(const char *config)
{
    static kc_tunables t;
    kc_tunables_init(&t);
    t.crypto_sub_interval = SUB_INTERVAL;
    kc_node_options o;
    kc_node_options_init(&o);
    o.config_path = config;
    o.tunables = &t;
    o.key_wait_interval = 0.05;
    kc_node *n = NULL;
    kc_err err = {0};
    if (kc_node_open(&n, &o, &err) != KC_OK)
        fail_msg("cannot open %s: %s", config, err.msg);
    return n;
}

/* Retries m (as an application does) until it decrypts or `seconds` pass. */
static bool decrypts_within(kc_message *m, double seconds)
{
    for (double end = tc_mono() + seconds; tc_mono() < end; usleep(20000))
        if (kc_message_is_cleartext(m, true))
            return true;
    return false;
}

static kc_message *deserialize(kc_node *n, const kc_buf *wire)
{
    kc_message *m = kc_message_new();
    assert_int_equal(kc_serde_deserialize(kc_node_serde(n), KC_KIND_VALUE, TOPIC, wire->data,
                                          wire->len, m, NULL), KC_OK);
    return m;
}

static void test_after_a_flood_a_new_producer_is_asked_for_in_the_next_round(void **state)
{
    char *acfg = provision("prod_a", KC_ROLE_PRODUCER), *bcfg = provision("prod_b", KC_ROLE_PRODUCER);
    char *ccfg = provision("cons", KC_ROLE_CONSUMER);
    kc_node *a = open_node(acfg), *b = open_node(bcfg), *c = open_node(ccfg);
    kc_buf wa = KC_BUF_INIT, wb = KC_BUF_INIT;

    /* the consumer has producer A's key */
    assert_int_equal(kc_serde_serialize(kc_node_serde(a), KC_KIND_VALUE, TOPIC,
                                       (const uint8_t *)"from A", 6, &wa, NULL), KC_OK);
    kc_message *m = deserialize(c, &wa);
    assert_true(decrypts_within(m, 30));
    kc_message_free(m);

    /* the flood */
    double flood_start = tc_mono(), t = flood_start;
    uint8_t fake[TC_MADE_UP_BYTES];
    kc_buf wf = {.data = fake, .len = sizeof fake};
    for (int i = 0; i < FLOOD; i++) {
        tc_made_up_message(fake);
        m = deserialize(c, &wf);
        assert_false(kc_message_is_cleartext(m, false));
        kc_message_free(m);
    }
    double flood_time = tc_mono() - t;
    kc_serde_waits_stats ws;
    kc_serde_wait_stats(kc_node_serde(c), ROOT, &ws);
    assert_true(ws.waiting <= KC_WAITS_MAX);
    assert_true(ws.bytes <= KC_WAITS_MAX_BYTES);

    /* producer B, never seen, sends one message */
    assert_int_equal(kc_serde_serialize(kc_node_serde(b), KC_KIND_VALUE, TOPIC,
                                       (const uint8_t *)"from B", 6, &wb, NULL), KC_OK);
    kc_keyidx bki;
    assert_int_equal(kc_serde_producer_state(kc_node_serde(b), ROOT, KC_KIND_VALUE, &bki, NULL),
                     KC_OK);
    snprintf(seen.want, sizeof seen.want, "msgkey=[%s", tc_tohex(bki.bytes, bki.len));
    t = tc_mono();
    m = deserialize(c, &wb);
    pthread_mutex_lock(&seen.mu);
    seen.since = t;
    pthread_mutex_unlock(&seen.mu);
    /* one interval, plus a key exchange under load */
    assert_true(decrypts_within(m, SUB_INTERVAL + 20));
    double delay = tc_mono() - t;
    const uint8_t *p;
    size_t n;
    assert_int_equal(kc_message_get(m, false, &p, &n, NULL), KC_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(p, "from B", 6);
    kc_message_free(m);

    pthread_mutex_lock(&seen.mu);
    double asked = seen.first_with_want - t;
    int without = seen.rounds_without;
    pthread_mutex_unlock(&seen.mu);
    print_message("flood of %d made-up indices: %.2f s to deserialize; new producer's key asked "
                  "for after %.2f s, decrypted after %.2f s (request interval %.1f s)\n", FLOOD,
                  flood_time, asked, delay, SUB_INTERVAL);
    /* the next round after B's first sight asked for B's key, first (one
     * round may have been on its way as B's message came in); rounds are
     * SUB_INTERVAL apart, the margin is for a loaded machine */
    assert_true(asked > 0);
    assert_true(without <= 1);
    assert_true(asked <= 2 * SUB_INTERVAL);

    /* the flood goes on: indices dropped unasked are counted, and reported
     * at most once per request interval, not per message (giving up is
     * shown on the table above: it takes several rounds) */
    kc_node_stats st;
    kc_node_get_stats(c, &st);
    uint64_t replaced = st.key_indices_replaced;
    assert_true(replaced >= FLOOD - KC_WAITS_MAX);
    for (double end = tc_mono() + 2.5 * SUB_INTERVAL; tc_mono() < end; usleep(100000))
        for (int i = 0; i < 100; i++) {
            tc_made_up_message(fake);
            kc_message_free(deserialize(c, &wf));
        }
    kc_node_get_stats(c, &st);
    assert_true(st.key_indices_replaced > replaced);
    double elapsed = tc_mono() - flood_start;
    pthread_mutex_lock(&seen.mu);
    int warnings = seen.flood_warnings;
    pthread_mutex_unlock(&seen.mu);
    print_message("%d reports of dropped indices in %.1f s\n", warnings, elapsed);
    assert_true(warnings >= 2);
    assert_true(warnings <= 1 + (int)(elapsed / SUB_INTERVAL));

    kc_node_close(c);
    kc_node_close(b);
    kc_node_close(a);
    kc_buf_free(&wa);
    kc_buf_free(&wb);
    free(acfg);
    free(bcfg);
    free(ccfg);
}

static int setup(void **state)
{
    dir = tc_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    tc_rmtree(dir);
    free(dir);
    return 0;
}

int main(void)
{
    kc_init();
    kc_log_set_level(KC_LOG_INFO);
    kc_log_set_sink(sink, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_new_index_outranks_any_flood_and_memory_is_bounded),
        cmocka_unit_test(test_a_flood_hardly_holds_the_deserializers),
        cmocka_unit_test(test_a_threads_bound_cuts_waits_across_roots),
        cmocka_unit_test(test_a_given_up_index_is_asked_for_again_when_seen_anew_or_later),
        cmocka_unit_test_setup_teardown(test_after_a_flood_a_new_producer_is_asked_for_in_the_next_round,
                                        setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    kc_broker_embedded_stop();
    return rc;
}
