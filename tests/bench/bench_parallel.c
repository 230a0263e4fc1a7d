/* kc-bench, deserialization on several cores: the same N encrypted
 * messages (spread over 8 partitions) deserialized on the calling thread
 * with kc_serde_deserialize, and through a kc_serde_pool of T workers,
 * broker out of the picture. Rounds alternate; the best of each is
 * reported, and speedup = one thread's time / the pool's. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "kc_serde.h"

#define PAR_ROUNDS 7
#define PAR_PARTITIONS 8
#define PAR_IN_FLIGHT 256
#define PAR_TOPIC "bench.data"

typedef struct par {
    kc_serde *cons;
    kc_buf *wire;
    long n;
    size_t size;
} par;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(const par *b, kc_message *m)
{
    const uint8_t *p;
    size_t len;
    if (kc_message_get(m, false, &p, &len, NULL) != KC_OK || len != b->size)
        bench_die("deserialize_parallel: a message was not decrypted", NULL);
}

static double single_ns(const par *b, kc_message *m)
{
    double t0 = bench_now();
    for (long i = 0; i < b->n; i++) {
        kc_err err;
        if (kc_serde_deserialize(b->cons, KC_KIND_VALUE, PAR_TOPIC, b->wire[i].data,
                                 b->wire[i].len, m, &err) != KC_OK)
            bench_die("deserialize", &err);
        check(b, m);
    }
    return (bench_now() - t0) * 1e9 / (double)b->n;
}

static double pool_ns(const par *b, kc_serde_pool *pool)
{
    double t0 = bench_now();
    long submitted = 0, got = 0;
    while (got < b->n) {
        while (submitted < b->n) {
            kc_err err;
            kc_status st = kc_serde_pool_submit(pool, KC_KIND_VALUE, PAR_TOPIC,
                                                (int32_t)(submitted % PAR_PARTITIONS),
                                                b->wire[submitted].data, b->wire[submitted].len,
                                                NULL, &err);
            if (st == KC_ERR_BUSY)
                break;
            if (st != KC_OK)
                bench_die("pool submit", &err);
            submitted++;
        }
        kc_pool_result *r;
        if (kc_serde_pool_next(pool, 10000, &r) != KC_OK || r->status != KC_OK)
            bench_die("pool: no result within 10 s", NULL);
        check(b, r->msg);
        got++;
    }
    return (bench_now() - t0) * 1e9 / (double)b->n;
}

/* ---- serialization: what a serializer pool could gain at most ---- */

typedef struct ser_job {
    kc_serde *prod;
    const uint8_t *value;
    size_t size;
    long n;
} ser_job;

static void *serialize_n(void *arg)
{
    ser_job *j = arg;
    kc_buf out = KC_BUF_INIT;
    for (long i = 0; i < j->n; i++) {
        kc_err err;
        if (kc_serde_serialize(j->prod, KC_KIND_VALUE, PAR_TOPIC, j->value, j->size, &out,
                               &err) != KC_OK)
            bench_die("serialize", &err);
    }
    kc_buf_free(&out);
    return NULL;
}

/* ns per message with `threads` threads serializing concurrently on one
 * serde (no hand-off at all: the upper bound of any serializer pool). */
static double serialize_threads_ns(ser_job *j, int threads)
{
    pthread_t th[8];
    ser_job per = *j;
    per.n = j->n / threads;
    double t0 = bench_now();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&th[i], NULL, serialize_n, &per) != 0)
            bench_die("thread", NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    return (bench_now() - t0) * 1e9 / (double)(per.n * threads);
}

static void bench_serialize_parallel(kc_serde *prod, const uint8_t *value)
{
    for (size_t size = 100; size <= 1024; size = size == 100 ? 1024 : 2048) {
        ser_job j = {prod, value, size, size == 100 ? 200000 : 100000};
        double best1 = 1e30, best2 = 1e30;
        for (int r = 0; r < PAR_ROUNDS; r++) {
            double a = serialize_threads_ns(&j, 1), b = serialize_threads_ns(&j, 2);
            if (a < best1)
                best1 = a;
            if (b < best2)
                best2 = b;
        }
        printf("bench serialize_parallel threads=2 size=%zu single_ns=%.0f two_threads_ns=%.0f "
               "speedup=%.2f (no pool: the most a serializer pool could give)\n", size, best1,
               best2, best1 / best2);
        fflush(stdout);
    }
}

void bench_deserialize_parallel(kc_serde *prod, kc_serde *cons, const uint8_t *value)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    static const struct { size_t size; long n; } cases[] = {{100, 100000}, {1024, 50000}};
    printf("\ndeserialization on several cores (no broker): one thread against a pool of "
           "workers, %ld cores online;\nbest of %d rounds; speedup = one thread's time / "
           "the pool's\n", cores, PAR_ROUNDS);
    printf("%-22s %8s %8s %12s %12s %8s\n", "operation", "bytes", "threads", "1 thr msg/s",
           "pool msg/s", "speedup");
    kc_message *m = kc_message_new();
    if (!m)
        bench_die("malloc", NULL);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        par b = {.cons = cons, .n = cases[c].n, .size = cases[c].size};
        b.wire = calloc((size_t)b.n, sizeof *b.wire);
        if (!b.wire)
            bench_die("malloc", NULL);
        for (long i = 0; i < b.n; i++) {
            kc_err err;
            if (kc_serde_serialize(prod, KC_KIND_VALUE, PAR_TOPIC, value, b.size, &b.wire[i],
                                   &err) != KC_OK)
                bench_die("serialize", &err);
        }
        for (int threads = 1; threads <= 2; threads++) {
            kc_serde_pool *pool;
            kc_err err;
            if (kc_serde_pool_new(cons, threads, PAR_IN_FLIGHT, &pool, &err) != KC_OK)
                bench_die("pool", &err);
            /* CPU time of all threads per message, whatever the other load:
             * the pool's overhead (hand-offs, wake-ups) in cpu_ratio. */
            double best1 = 1e30, bestp = 1e30, cpu1 = 1e30, cpup = 1e30;
            for (int r = 0; r < PAR_ROUNDS; r++) {
                double c0 = cpu_now(), a = single_ns(&b, m), c1 = cpu_now();
                double p = pool_ns(&b, pool), c2 = cpu_now();
                if (a < best1)
                    best1 = a;
                if (p < bestp)
                    bestp = p;
                if ((c1 - c0) < cpu1)
                    cpu1 = c1 - c0;
                if ((c2 - c1) < cpup)
                    cpup = c2 - c1;
            }
            kc_serde_pool_free(pool);
            printf("%-22s %8zu %8d %12.0f %12.0f %8.2f\n", "deserialize_parallel", b.size,
                   threads, 1e9 / best1, 1e9 / bestp, best1 / bestp);
            printf("bench deserialize_parallel threads=%d size=%zu single_ns=%.0f pool_ns=%.0f "
                   "speedup=%.2f cpu_ratio=%.2f cores=%ld\n", threads, b.size, best1, bestp,
                   best1 / bestp, cpup / cpu1, cores);
            fflush(stdout);
        }
        for (long i = 0; i < b.n; i++)
            kc_buf_free(&b.wire[i]);
        free(b.wire);
    }
    kc_message_free(m);
    bench_serialize_parallel(prod, value);
}
