/* kc-bench, end to end: produce + consume through the embedded broker
 * (librdkafka's mock cluster, in this process), encrypted and plaintext in
 * the same run.
 *
 * A round sends N values to a topic with several partitions while a
 * consumer thread, assigned at the partitions' ends beforehand, receives
 * them; the round lasts from the first send to the last message received
 * (and, when encrypted, decrypted). Encrypted rounds serialize each value
 * with the producer serde and deserialize it with a consumer serde holding
 * the key; keys are null in both modes, so only the value path differs.
 * Rounds of the two modes alternate; the best of each is reported.
 *
 * One topic serves every round: the mock keeps about 5 MiB per partition,
 * which bounds its memory, and a round stays well below that per partition
 * so nothing is dropped even if the consumer lags. */
#include <pthread.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "kc_broker.h"
#include "kc_kafka.h"
#include "kc_lua.h"
#include <lua.h>
#include "kc_serde.h"

#define E2E_TOPIC "bench.e2e"
#define E2E_PARTITIONS 8
#define E2E_ROUNDS 5
#define E2E_STALL_SECONDS 20.0
#define E2E_POOL_THREADS 2

typedef struct e2e {
    kc_serde *prod, *cons;  /* NULL: plaintext */
    kc_serde_pool *pool;     /* set: the consumer deserializes through it */
    kc_producer *p;
    kc_consumer *c;
    const uint8_t *value;
    size_t size;
    long n;
    double end;              /* when the consumer had every message */
    atomic_bool failed;
} e2e;

static bool intact(const e2e *e, kc_message *m)
{
    const uint8_t *p = NULL;
    size_t len = 0;
    return kc_message_is_cleartext(m, false) && kc_message_get(m, false, &p, &len, NULL) == KC_OK &&
           len == e->size;
}

/* Takes one result from the pool (waiting up to wait_ms); false if none. */
static bool take_result(e2e *e, int wait_ms)
{
    kc_pool_result *res;
    if (kc_serde_pool_next(e->pool, wait_ms, &res) != KC_OK)
        return false;
    bool ok = res->status == KC_OK && intact(e, res->msg);
    kc_record_free(res->user);
    if (!ok)
        bench_die("e2e: a message did not arrive intact", NULL);
    return true;
}

/* The consumer with a pool: records go in as they arrive and stay alive
 * until their result is taken. */
static void consume_pooled(e2e *e)
{
    double last = bench_now();
    long got = 0;
    while (got < e->n) {
        while (take_result(e, 0))
            got++;
        kc_record *r = NULL;
        kc_err err;
        if (kc_consumer_poll(e->c, kc_serde_pool_in_flight(e->pool) ? 0 : 100, &r, &err) != KC_OK)
            bench_die("consume", &err);
        if (!r) {
            if (take_result(e, 1)) {
                got++;
            } else if (bench_now() - last > E2E_STALL_SECONDS) {
                fprintf(stderr, "kc-bench: e2e: %ld of %ld messages arrived\n", got, e->n);
                atomic_store(&e->failed, true);
                break;
            }
            continue;
        }
        last = bench_now();
        kc_status st;
        while ((st = kc_serde_pool_submit(e->pool, KC_KIND_VALUE, r->topic, r->partition,
                                          r->value, r->value_len, r, &err)) == KC_ERR_BUSY)
            if (take_result(e, -1))
                got++;
        if (st != KC_OK)
            bench_die("pool submit", &err);
    }
    while (take_result(e, 0))
        ;
    e->end = bench_now();
}

static void *consume_all(void *arg)
{
    e2e *e = arg;
    if (e->pool) {
        consume_pooled(e);
        return NULL;
    }
    kc_message *m = e->cons ? kc_message_new() : NULL;
    double last = bench_now();
    long got = 0;
    while (got < e->n) {
        kc_record *r = NULL;
        kc_err err;
        if (kc_consumer_poll(e->c, 100, &r, &err) != KC_OK)
            bench_die("consume", &err);
        if (!r) {
            if (bench_now() - last > E2E_STALL_SECONDS) {
                fprintf(stderr, "kc-bench: e2e: %ld of %ld messages arrived\n", got, e->n);
                atomic_store(&e->failed, true);
                break;
            }
            continue;
        }
        last = bench_now();
        bool ok;
        if (m) {
            ok = kc_serde_deserialize(e->cons, KC_KIND_VALUE, r->topic, r->value, r->value_len, m,
                                      &err) == KC_OK && intact(e, m);
        } else {
            ok = r->value && r->value_len == e->size;
        }
        kc_record_free(r);
        if (!ok)
            bench_die("e2e: a message did not arrive intact", NULL);
        got++;
    }
    e->end = bench_now();
    kc_message_free(m);
    return NULL;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ns per message of one round, wall clock; *cpu_ns: the process's CPU
 * time per message (every thread: clients, consumer, and the embedded
 * broker, which costs the same in both modes). */
static double round_ns(e2e *e, double *cpu_ns)
{
    kc_topic_partition tps[E2E_PARTITIONS];
    for (int i = 0; i < E2E_PARTITIONS; i++)
        tps[i] = (kc_topic_partition){E2E_TOPIC, i, KC_OFFSET_END};
    kc_err err;
    if (kc_consumer_assign(e->c, tps, E2E_PARTITIONS, &err) != KC_OK)
        bench_die("assign", &err);
    pthread_t th;
    double c0 = cpu_seconds();
    if (pthread_create(&th, NULL, consume_all, e) != 0)
        bench_die("thread", NULL);
    kc_buf out = KC_BUF_INIT;
    double t0 = bench_now();
    for (long i = 0; i < e->n; i++) {
        const uint8_t *v = e->value;
        size_t len = e->size;
        if (e->prod) {
            if (kc_serde_serialize(e->prod, KC_KIND_VALUE, E2E_TOPIC, e->value, e->size, &out,
                                   &err) != KC_OK)
                bench_die("serialize", &err);
            v = out.data;
            len = out.len;
        }
        if (kc_producer_send(e->p, E2E_TOPIC, (int32_t)(i % E2E_PARTITIONS), NULL, 0, v, len,
                             NULL, &err) != KC_OK)
            bench_die("send", &err);
    }
    if (kc_producer_flush(e->p, 30000, &err) != KC_OK)
        bench_die("flush", &err);
    pthread_join(th, NULL);
    *cpu_ns = (cpu_seconds() - c0) * 1e9 / (double)e->n;
    kc_buf_free(&out);
    if (atomic_load(&e->failed))
        bench_die("e2e: messages were lost", NULL);
    return (e->end - t0) * 1e9 / (double)e->n;
}

/* tests/bench/e2e.lua in a Lua state of this process: its best encrypted
 * and plaintext rounds for size (see the script). Needs lua/ under the
 * source directory ($KC_SOURCE_DIR, else the current one). */
static bool lua_round(size_t size, long n, double out[4])
{
    const char *src = getenv("KC_SOURCE_DIR");
    if (!src || !*src)
        src = ".";
    char script[4096], a1[32], a2[32], a3[32];
    snprintf(script, sizeof script, "%s/tests/bench/e2e.lua", src);
    snprintf(a1, sizeof a1, "%zu", size);
    snprintf(a2, sizeof a2, "%ld", n);
    snprintf(a3, sizeof a3, "%d", E2E_ROUNDS);
    char *argv[] = {a1, a2, a3};
    kc_lua_options o = {.home = src};
    lua_State *L;
    kc_err err;
    char *tb = NULL;
    if (kc_lua_new(&L, &o, &err) != KC_OK)
        bench_die("lua", &err);
    if (kc_lua_run_file(L, script, 3, argv, &tb, &err) != KC_OK) {
        fprintf(stderr, "kc-bench: %s\n%s\n", err.msg, tb ? tb : "");
        free(tb);
        kc_lua_close(L);
        return false;
    }
    static const char *const fields[] = {"enc_ns", "plain_ns", "enc_cpu_ns", "plain_cpu_ns"};
    lua_getglobal(L, "LUA_E2E");
    for (int i = 0; i < 4; i++) {
        lua_getfield(L, -1, fields[i]);
        out[i] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    kc_lua_close(L);
    return true;
}

static void set(kc_kafka_config *c, kc_kafka_use use, const char *name, const char *value)
{
    kc_err err;
    if (kc_kafka_config_set(c, use, name, value, "kc-bench", &err) != KC_OK)
        bench_die("kafka config", &err);
}

/* The embedded broker's topic and the two clients of every round. */
static void e2e_open(e2e *e, kc_kafka_config *pc, kc_kafka_config *cc)
{
    kc_broker *b;
    kc_err err;
    if (kc_broker_embedded(&b, &err) != KC_OK ||
        kc_broker_create_topic(b, E2E_TOPIC, E2E_PARTITIONS, &err) != KC_OK)
        bench_die("embedded broker", &err);
    kc_kafka_config_init(pc);
    kc_kafka_config_init(cc);
    set(pc, KC_KAFKA_PRODUCER, "linger.ms", "5");
    /* short empty fetches: the mock answers one only after this wait */
    set(cc, KC_KAFKA_CONSUMER, "fetch.wait.max.ms", "5");
    atomic_init(&e->failed, false);
    if (kc_producer_new(&e->p, pc, 0, &err) != KC_OK || kc_consumer_new(&e->c, cc, &err) != KC_OK)
        bench_die("kafka clients", &err);
    if (kc_producer_prepare_topic(e->p, E2E_TOPIC, 5000) != KC_OK)
        bench_die("topic metadata", NULL);
}

static void e2e_close(e2e *e, kc_kafka_config *pc, kc_kafka_config *cc)
{
    kc_consumer_close(e->c);
    kc_producer_close(e->p, 5000);
    kc_kafka_config_clear(pc);
    kc_kafka_config_clear(cc);
}

void bench_sustained(kc_serde *prod, kc_serde *cons, const uint8_t *value, double seconds)
{
    kc_kafka_config pc, cc;
    e2e e = {.value = value, .prod = prod, .cons = cons, .size = 1024, .n = 16000};
    e2e_open(&e, &pc, &cc);
    double cpu, t0 = bench_now();
    long rounds = 0, start_kb = 0, mid_kb = 0;
    do {
        round_ns(&e, &cpu);
        if (rounds++ == 0)
            start_kb = bench_rss_kb();  /* after the first round: clients warmed up */
        if (!mid_kb && bench_now() - t0 >= seconds / 2)
            mid_kb = bench_rss_kb();
    } while (bench_now() - t0 < seconds);
    long end_kb = bench_rss_kb();
    /* The embedded broker keeps each partition's log up to its cap (a few
     * MiB): RSS rises until the logs are full, then stays; the second
     * half's growth is the figure to watch. */
    printf("bench memory_sustained seconds=%.0f messages=%ld size=%zu rss_start_kb=%ld "
           "rss_mid_kb=%ld rss_end_kb=%ld second_half_growth_kb=%ld\n", bench_now() - t0,
           rounds * e.n, e.size, start_kb, mid_kb, end_kb, end_kb - mid_kb);
    fflush(stdout);
    e2e_close(&e, &pc, &cc);
}

void bench_e2e(kc_serde *prod, kc_serde *cons, const uint8_t *value)
{
    kc_kafka_config pc, cc;
    e2e e = {.value = value};
    e2e_open(&e, &pc, &cc);

    static const struct { size_t size; long n; } cases[] = {{100, 40000}, {1024, 16000}};
    printf("\nend to end through the embedded broker (mock cluster, %d partitions), produce + "
           "consume concurrently;\nbest of %d rounds; enc/plain = encrypted / plaintext throughput; "
           "pool = the consumer\ndeserializes on a kc_serde_pool of %d threads\n",
           E2E_PARTITIONS, E2E_ROUNDS, E2E_POOL_THREADS);
    printf("%-12s %8s %12s %10s %12s %10s %9s %12s\n", "operation", "bytes", "enc msg/s",
           "enc MB/s", "plain msg/s", "plain MB/s", "enc/plain", "pool msg/s");
    kc_err err2;
    if (kc_serde_pool_new(cons, E2E_POOL_THREADS, 256, &e.pool, &err2) != KC_OK)
        bench_die("pool", &err2);
    kc_serde_pool *pool = e.pool;
    double c_enc[2], c_cpu[2];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        e.size = cases[i].size;
        e.n = cases[i].n;
        double best_enc = 1e30, best_plain = 1e30, best_pool = 1e30;
        double cpu_enc = 1e30, cpu_plain = 1e30, cpu;
        for (int r = 0; r < E2E_ROUNDS; r++) {
            e.prod = e.cons = NULL;
            e.pool = NULL;
            double plain = round_ns(&e, &cpu);
            if (cpu < cpu_plain)
                cpu_plain = cpu;
            e.prod = prod;
            e.cons = cons;
            double enc = round_ns(&e, &cpu);
            if (cpu < cpu_enc)
                cpu_enc = cpu;
            e.pool = pool;
            double pooled = round_ns(&e, &cpu);
            if (plain < best_plain)
                best_plain = plain;
            if (enc < best_enc)
                best_enc = enc;
            if (pooled < best_pool)
                best_pool = pooled;
        }
        e.pool = NULL;
        c_enc[i] = best_enc;
        c_cpu[i] = cpu_enc;
        double emps = 1e9 / best_enc, pmps = 1e9 / best_plain;
        printf("%-12s %8zu %12.0f %10.1f %12.0f %10.1f %9.3f %12.0f\n", "e2e", e.size, emps,
               emps * (double)e.size / 1e6, pmps, pmps * (double)e.size / 1e6, emps / pmps,
               1e9 / best_pool);
        /* ratio as on the other lines: ours_ns / bound_ns (1/throughput ratio) */
        printf("bench e2e size=%zu ours_ns=%.0f bound_ns=%.0f ratio=%.3f\n", e.size, best_enc,
               best_plain, best_enc / best_plain);
        printf("bench e2e_parallel size=%zu threads=%d pool_ns=%.0f single_ns=%.0f "
               "speedup=%.2f\n", e.size, E2E_POOL_THREADS, best_pool, best_enc,
               best_enc / best_pool);
        /* What encryption adds to the client's CPU per message, against one
         * serialize bound plus one deserialize bound of this run. */
        double bound = bench_bound_pair_ns(e.size), extra = cpu_enc - cpu_plain;
        printf("bench e2e_cpu size=%zu extra_ns=%.0f bound_ns=%.0f ratio=%.2f plain_cpu_ns=%.0f\n",
               e.size, extra, bound, extra / bound, cpu_plain);
        fflush(stdout);
    }
    kc_serde_pool_free(pool);
    printf("\nthe Lua path (tests/bench/e2e.lua: kafkacrypto.producer/consumer with the "
           "serializers, one thread)\nagainst the C rounds above; ratio = C time / Lua time "
           "(goal >= 0.8), cpu_ratio the same in CPU time\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double l[4];
        if (!lua_round(cases[i].size, cases[i].n, l))
            bench_die("the Lua round failed", NULL);
        printf("bench lua_e2e size=%zu lua_ns=%.0f c_ns=%.0f ratio=%.2f lua_cpu_ns=%.0f "
               "c_cpu_ns=%.0f cpu_ratio=%.2f lua_plain_ns=%.0f\n", cases[i].size, l[0], c_enc[i],
               c_enc[i] / l[0], l[2], c_cpu[i], c_cpu[i] / l[2], l[1]);
        fflush(stdout);
    }
    e2e_close(&e, &pc, &cc);
}
