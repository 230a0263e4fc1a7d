/* kc-bench, key exchange: two nodes (a producer and a consumer provisioned
 * from one root password) on the embedded broker. A trial is one new root:
 * the producer encrypts a message there, and the latency runs from the
 * consumer's first attempt to decrypt it (it has no key: its deserializer
 * asks the management thread for one) to the first attempt that succeeds.
 *
 * The nodes run with the protocol defaults, except that the deserializer
 * looks for the key every 5 ms instead of every second
 * (key_wait_interval), so that what is measured is the exchange, not that
 * polling step. The first trial includes the nodes' start-up (their first
 * assignment of the key topics), the later ones do not. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "kc_log.h"
#include "kc_node.h"
#include "kc_provision_node.h"
#include "kc_tunables.h"

#define KX_TRIALS 3
#define KX_WAIT_INTERVAL 0.005
#define KX_GIVE_UP_SECONDS 30.0
#define KX_SCALE_CONSUMERS 20

/* KC_BENCH_TRACE=1: the nodes' log lines, stamped with the time, to see
 * where an exchange spends it. */
static void trace_sink(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "%.3f [%ld] %s:%s:%s\n", bench_now(), (long)syscall(SYS_gettid),
            kc_log_level_name(level), logger, msg);
}

static void trace_start(void)
{
    const char *trace = getenv("KC_BENCH_TRACE");
    if (trace && *trace && strcmp(trace, "0") != 0) {
        kc_log_set_sink(trace_sink, NULL);
        kc_log_set_level(KC_LOG_DEBUG);
    }
}

static char *open_provisioned(const char *dir, const char *node, kc_role role, kc_node **out)
{
    kc_provision_request r = {.dir = dir, .node_id = node, .role = role,
                              .rot_password = "bench root password",
                              .prov_password = "bench provisioner", .pathlen = 1};
    kc_err err;
    if (kc_provision_node(&r, &err) != KC_OK)
        bench_die("provision", &err);
    size_t n = strlen(dir) + strlen(node) + 16;
    char *config = malloc(n);
    if (!config)
        bench_die("malloc", NULL);
    snprintf(config, n, "%s/%s.config", dir, node);
    kc_node_options o;
    kc_node_options_init(&o);
    o.config_path = config;
    o.key_wait_interval = KX_WAIT_INTERVAL;
    /* KC_BENCH_SUB_INTERVAL=S: consumers ask again for a missing key after
     * S seconds instead of the protocol's 60 (to see what bounds a run). */
    static kc_tunables t;
    const char *sub = getenv("KC_BENCH_SUB_INTERVAL");
    if (sub && *sub) {
        kc_tunables_init(&t);
        t.crypto_sub_interval = atof(sub);
        o.tunables = &t;
    }
    if (kc_node_open(out, &o, &err) != KC_OK)
        bench_die("node", &err);
    return config;
}

static double trial_ms(kc_node *p, kc_node *c, int trial)
{
    char topic[32];
    snprintf(topic, sizeof topic, "kxbench%d.data", trial);
    kc_buf wire = KC_BUF_INIT;
    kc_err err;
    if (kc_serde_serialize(kc_node_serde(p), KC_KIND_VALUE, topic, (const uint8_t *)"hello", 5,
                           &wire, &err) != KC_OK)
        bench_die("serialize", &err);
    kc_message *m = kc_message_new();
    kc_log(KC_LOG_INFO, "kc-bench", "trial %d: first attempt to decrypt on %s", trial, topic);
    double t0 = bench_now(), t1 = 0;
    while (!t1) {
        if (kc_serde_deserialize(kc_node_serde(c), KC_KIND_VALUE, topic, wire.data, wire.len, m,
                                 &err) != KC_OK)
            bench_die("deserialize", &err);
        if (kc_message_is_cleartext(m, false))
            t1 = bench_now();
        else if (bench_now() - t0 > KX_GIVE_UP_SECONDS)
            bench_die("key exchange: no key after 30 s", NULL);
        else
            usleep(1000);
    }
    kc_message_free(m);
    kc_buf_free(&wire);
    return (t1 - t0) * 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- at scale: one producer node, KX_SCALE_CONSUMERS consumer nodes, R roots ----
 * Each consumer thread passes over the roots every KX_WAIT_INTERVAL with
 * its key waits bounded as a consumer's poll bounds them, so a root's
 * first sight does not wait for the roots before it. The line also gives
 * the request rounds, the producer's replies (first copies) and its reply
 * rate, first reply to last. KC_BENCH_TRACE=1: the nodes' log lines. */

typedef struct scale_cons {
    kc_node *node;
    int roots;
    const kc_buf *wire;   /* per root: its first ciphertext */
    const double *t0;     /* per root: when it was made */
    double *ms;           /* per root: first decrypted - t0 */
} scale_cons;

/* One consumer node's thread: tries every root until each decrypts. */
static void *scale_consume(void *arg)
{
    scale_cons *c = arg;
    /* as a consumer's poll does (poll_key_wait): a pass over the roots
     * never sleeps for keys root after root (10 first-sight intervals
     * each), it comes back for them */
    kc_serde_limit_key_wait(0);
    kc_message *m = kc_message_new();
    int left = c->roots;
    double start = bench_now();
    while (left > 0) {
        for (int r = 0; r < c->roots; r++) {
            if (c->ms[r] >= 0)
                continue;
            char topic[32];
            snprintf(topic, sizeof topic, "kxs%d.data", r);
            kc_err err;
            if (kc_serde_deserialize(kc_node_serde(c->node), KC_KIND_VALUE, topic, c->wire[r].data,
                                     c->wire[r].len, m, &err) != KC_OK)
                bench_die("deserialize", &err);
            if (kc_message_is_cleartext(m, false)) {
                c->ms[r] = (bench_now() - c->t0[r]) * 1e3;
                left--;
            }
        }
        if (bench_now() - start > 4 * KX_GIVE_UP_SECONDS)
            break;  /* reported as undecrypted */
        usleep(KX_WAIT_INTERVAL * 1e6); /* 20 threads: a pass per ms would take a core */
    }
    kc_message_free(m);
    return NULL;
}

static void scale_run(const char *dir, int roots)
{
    char name[64];
    kc_node *p;
    char *pcfg;
    snprintf(name, sizeof name, "kxsp%d", roots);
    pcfg = open_provisioned(dir, name, KC_ROLE_PRODUCER, &p);
    scale_cons cons[KX_SCALE_CONSUMERS];
    char *ccfg[KX_SCALE_CONSUMERS];
    kc_buf *wire = calloc((size_t)roots, sizeof *wire);
    double *t0 = calloc((size_t)roots, sizeof *t0);
    double *all = calloc((size_t)roots * KX_SCALE_CONSUMERS, sizeof *all);
    if (!wire || !t0 || !all)
        bench_die("malloc", NULL);
    for (int i = 0; i < KX_SCALE_CONSUMERS; i++) {
        snprintf(name, sizeof name, "kxsc%d_%d", roots, i);
        ccfg[i] = open_provisioned(dir, name, KC_ROLE_CONSUMER, &cons[i].node);
        cons[i].roots = roots;
        cons[i].wire = wire;
        cons[i].t0 = t0;
        cons[i].ms = all + (size_t)i * (size_t)roots;
        for (int r = 0; r < roots; r++)
            cons[i].ms[r] = -1;
    }
    /* every root's first ciphertext, then every consumer at once */
    for (int r = 0; r < roots; r++) {
        char topic[32];
        snprintf(topic, sizeof topic, "kxs%d.data", r);
        kc_err err;
        t0[r] = bench_now();
        if (kc_serde_serialize(kc_node_serde(p), KC_KIND_VALUE, topic, (const uint8_t *)"hello", 5,
                               &wire[r], &err) != KC_OK)
            bench_die("serialize", &err);
    }
    pthread_t th[KX_SCALE_CONSUMERS];
    for (int i = 0; i < KX_SCALE_CONSUMERS; i++)
        if (pthread_create(&th[i], NULL, scale_consume, &cons[i]) != 0)
            bench_die("thread", NULL);
    /* the producer's reply rate: from its first reply to its last first
     * copy (one per request; D3 copies not counted) */
    uint64_t want = (uint64_t)roots * KX_SCALE_CONSUMERS;
    double first_reply = 0, last_reply = 0, start = bench_now();
    kc_node_stats ps;
    do {
        usleep(2000);
        kc_node_get_stats(p, &ps);
        if (!first_reply && ps.replies_sent)
            first_reply = bench_now();
        if (ps.replies_sent >= want)
            last_reply = bench_now();
    } while (!last_reply && bench_now() - start < 4 * KX_GIVE_UP_SECONDS);
    for (int i = 0; i < KX_SCALE_CONSUMERS; i++)
        pthread_join(th[i], NULL);
    uint64_t requests = 0;
    for (int i = 0; i < KX_SCALE_CONSUMERS; i++) {
        kc_node_stats cs;
        kc_node_get_stats(cons[i].node, &cs);
        requests += cs.requests_sent;
    }
    kc_node_get_stats(p, &ps);
    size_t n = (size_t)roots * KX_SCALE_CONSUMERS, undecrypted = 0;
    for (size_t i = 0; i < n; i++)
        if (all[i] < 0) {  /* gave up: counts as the longest wait */
            all[i] = 4 * KX_GIVE_UP_SECONDS * 1e3;
            undecrypted++;
        }
    qsort(all, n, sizeof *all, by_value);
    printf("bench key_exchange_scale consumers=%d roots=%d p50_ms=%.0f p99_ms=%.0f max_ms=%.0f "
           "undecrypted=%zu requests=%" PRIu64 " replies=%" PRIu64 " replies_per_s=%.0f\n",
           KX_SCALE_CONSUMERS, roots, all[n / 2], all[(n * 99) / 100], all[n - 1], undecrypted,
           requests, ps.replies_sent,
           last_reply > first_reply ? (double)(want - 1) / (last_reply - first_reply) : 0.0);
    fflush(stdout);
    for (int i = 0; i < KX_SCALE_CONSUMERS; i++) {
        kc_node_close(cons[i].node);
        free(ccfg[i]);
    }
    kc_node_close(p);
    free(pcfg);
    for (int r = 0; r < roots; r++)
        kc_buf_free(&wire[r]);
    free(wire);
    free(t0);
    free(all);
}

/* The nodes of scale_run start with their key topics assigned: the first
 * trial of bench_key_exchange shows the start-up. */
void bench_key_exchange_scale(const char *dir)
{
    printf("\nkey exchange at scale: 1 producer node, %d consumer nodes (one thread each) on the "
           "embedded broker;\nfrom each root's first ciphertext to each consumer decrypting it "
           "(nodes just opened)\n", KX_SCALE_CONSUMERS);
    kc_log_level level = kc_log_get_level();
    trace_start();
    scale_run(dir, 1);
    scale_run(dir, 20);
    kc_log_set_level(level);
}

void bench_key_exchange(const char *dir)
{
    kc_log_level level = kc_log_get_level();
    trace_start();
    kc_node *p, *c;
    char *pcfg = open_provisioned(dir, "kxprod", KC_ROLE_PRODUCER, &p);
    char *ccfg = open_provisioned(dir, "kxcons", KC_ROLE_CONSUMER, &c);
    double ms[KX_TRIALS];
    for (int i = 0; i < KX_TRIALS; i++)
        ms[i] = trial_ms(p, c, i);
    kc_node_close(p);
    kc_node_close(c);
    kc_log_set_level(level);
    printf("\nkey exchange between two nodes on the embedded broker, first undecryptable to "
           "first decrypted:\n");
    for (int i = 0; i < KX_TRIALS; i++)
        printf("  trial %d (root kxbench%d%s): %.0f ms\n", i + 1, i,
               i == 0 ? ", nodes just started" : "", ms[i]);
    double first = ms[0];
    qsort(ms, KX_TRIALS, sizeof ms[0], by_value);
    printf("bench key_exchange trials=%d first_ms=%.0f median_ms=%.0f max_ms=%.0f\n", KX_TRIALS,
           first, ms[KX_TRIALS / 2], ms[KX_TRIALS - 1]);
    fflush(stdout);
    bench_remove_node(dir, "kxprod");
    bench_remove_node(dir, "kxcons");
    free(pcfg);
    free(ccfg);
}
