/* kc-bench — data-path throughput against the raw crypto bound.
 *
 * For each value size: our serializer and deserializer (framing, locking,
 * key lookup, derivation, secretbox) against the bound measured in the same
 * run on the same data: one keyed BLAKE2b derivation plus one
 * crypto_secretbox_easy (serialize) or crypto_secretbox_open_easy
 * (deserialize), no framing, no allocation. Rounds of ours and the bound
 * alternate; the best round of each is reported (least disturbed by other
 * load on the machine).
 *
 * Then (bench_e2e.c) end-to-end throughput through the embedded broker,
 * encrypted against plaintext, and (bench_kx.c) the key-exchange latency
 * between two nodes; (bench_parallel.c) deserialization on a pool of
 * threads against one thread; (bench_oldkeys.c) a node with 100 000 old
 * producer keys. `kc-bench [datapath] [parallel] [e2e] [kx] [kxscale]
 * [memory] [oldkeys]` runs only the parts named. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "kafkacrypto.h"
#include "kc_broker.h"
#include "kc_keygen.h"
#include "kc_log.h"
#include "kc_serde.h"

#define ROUNDS 7
#define ROUND_SECONDS 0.12

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_die(const char *what, const kc_err *err)
{
    fprintf(stderr, "kc-bench: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

void bench_remove_node(const char *dir, const char *node)
{
    static const char *const suffixes[] = {".config", ".crypto", ".seed"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s%s", dir, node, suffixes[i]);
        unlink(path);
    }
}

typedef struct bench {
    kc_serde *prod, *cons;
    const uint8_t *value;
    size_t size;
    kc_buf out;
    kc_buf wire;            /* one serialized message, for the deserializer */
    kc_message *msg;
    uint8_t secret[32];     /* the per-root secret, for the bound */
    kc_keygen bound_gen;
    uint8_t *box, *plain;   /* the bound's preallocated buffers */
    uint8_t bound_salt[16];
} bench;

typedef void (*op_fn)(bench *b);

static void op_serialize(bench *b)
{
    kc_err err;
    if (kc_serde_serialize(b->prod, KC_KIND_VALUE, "bench.data", b->value, b->size, &b->out,
                           &err) != KC_OK)
        bench_die("serialize", &err);
}

static void op_deserialize(bench *b)
{
    kc_err err;
    if (kc_serde_deserialize(b->cons, KC_KIND_VALUE, "bench.data", b->wire.data, b->wire.len,
                             b->msg, &err) != KC_OK ||
        !kc_message_is_cleartext(b->msg, false))
        bench_die("deserialize", &err);
}

static void bound_serialize(bench *b)
{
    uint8_t key[32], nonce[24];
    kc_keygen_next(&b->bound_gen, NULL, key, nonce);
    crypto_secretbox_easy(b->box, b->value, b->size, nonce, key);
}

static void bound_deserialize(bench *b)
{
    uint8_t key[32], nonce[24];
    kc_keygen_at(&b->bound_gen, b->bound_salt, 16, key, nonce, NULL);
    if (crypto_secretbox_open_easy(b->plain, b->box, b->size + 16, nonce, key) != 0)
        bench_die("bound open", NULL);
}

/* ns per call of the best round. */
static double measure(bench *b, op_fn fn, long iters)
{
    double t0 = bench_now();
    for (long i = 0; i < iters; i++)
        fn(b);
    return (bench_now() - t0) * 1e9 / (double)iters;
}

static long calibrate(bench *b, op_fn fn)
{
    long iters = 16;
    for (;;) {
        double t0 = bench_now();
        for (long i = 0; i < iters; i++)
            fn(b);
        double dt = bench_now() - t0;
        if (dt > ROUND_SECONDS / 4 || iters > (1L << 28))
            return (long)((double)iters * ROUND_SECONDS / (dt > 0 ? dt : 1e-9)) + 1;
        iters *= 4;
    }
}

static void compare(bench *b, const char *name, op_fn ours, op_fn bound)
{
    long n_ours = calibrate(b, ours), n_bound = calibrate(b, bound);
    double best_ours = 1e30, best_bound = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double a = measure(b, ours, n_ours), c = measure(b, bound, n_bound);
        if (a < best_ours)
            best_ours = a;
        if (c < best_bound)
            best_bound = c;
    }
    double ratio = best_ours / best_bound;
    double mps = 1e9 / best_ours, mbs = mps * (double)b->size / 1e6;
    double bmps = 1e9 / best_bound, bmbs = bmps * (double)b->size / 1e6;
    printf("%-12s %8zu %12.0f %10.1f %12.0f %10.1f %7.3f\n", name, b->size, mps, mbs, bmps, bmbs,
           ratio);
    printf("bench %s size=%zu ours_ns=%.0f bound_ns=%.0f ratio=%.3f\n", name, b->size, best_ours,
           best_bound, ratio);
    fflush(stdout);
}

static bench *the_bench;  /* for bench_bound_pair_ns */

double bench_bound_pair_ns(size_t size)
{
    bench *b = the_bench;
    size_t saved = b->size;
    b->size = size;
    kc_keygen_init(&b->bound_gen, b->secret, 32, kc_keygen_ctx_value, 16, NULL);
    double best_s = 1e30, best_d = 1e30;
    long ns = calibrate(b, bound_serialize);
    for (int r = 0; r < ROUNDS; r++) {
        double a = measure(b, bound_serialize, ns);
        if (a < best_s)
            best_s = a;
    }
    /* the deserialize bound opens a box made under its own salt */
    uint8_t key[32], nonce[24];
    kc_keygen_next(&b->bound_gen, b->bound_salt, key, nonce);
    crypto_secretbox_easy(b->box, b->value, size, nonce, key);
    long nd = calibrate(b, bound_deserialize);
    for (int r = 0; r < ROUNDS; r++) {
        double c = measure(b, bound_deserialize, nd);
        if (c < best_d)
            best_d = c;
    }
    b->size = saved;
    return best_s + best_d;
}

static void find_secret(void *ctx, const kc_keyidx *ki, const uint8_t secret[32], double birth,
                        bool can_encrypt)
{
    bench *b = ctx;
    (void)birth;
    if (can_encrypt) {
        memcpy(b->secret, secret, 32);
        kc_err err;
        if (kc_serde_add_consumer_key(b->cons, "bench", ki, secret, &err) != KC_OK)
            bench_die("consumer key", &err);
    }
}

/* No arguments: every part; otherwise the parts named. */
static bool wants(int argc, char **argv, const char *part)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], part) == 0)
            return true;
    return argc < 2;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "datapath") != 0 && strcmp(argv[i], "parallel") != 0 &&
            strcmp(argv[i], "e2e") != 0 && strcmp(argv[i], "kx") != 0 &&
            strcmp(argv[i], "kxscale") != 0 && strcmp(argv[i], "memory") != 0 &&
            strcmp(argv[i], "oldkeys") != 0) {
            fprintf(stderr, "usage: kc-bench [datapath] [parallel] [e2e] [kx] [kxscale] [memory] [oldkeys]\n");
            return 2;
        }
    if (kc_init() != 0)
        bench_die("libsodium", NULL);
    char dir[] = "/tmp/kc-bench.XXXXXX";
    if (!mkdtemp(dir))
        bench_die("mkdtemp", NULL);
    char seed[sizeof dir + 16];
    snprintf(seed, sizeof seed, "%s/bench.seed", dir);
    kc_log_set_level(KC_LOG_ERROR);
    kc_ratchet *r;
    kc_err err;
    if (kc_ratchet_open_file(seed, NULL, &r, &err) != KC_OK)
        bench_die("ratchet", &err);
    uint8_t node[32];
    randombytes_buf(node, sizeof node);
    kc_serde_config pc, cc;
    kc_serde_config_init(&pc);
    pc.ratchet = r;
    pc.node_id = node;
    pc.node_id_len = sizeof node;
    kc_serde_config_init(&cc);
    bench b;
    memset(&b, 0, sizeof b);
    if (kc_serde_new(&pc, &b.prod, &err) != KC_OK || kc_serde_new(&cc, &b.cons, &err) != KC_OK)
        bench_die("serde", &err);
    b.msg = kc_message_new();
    the_bench = &b;

    static const size_t sizes[] = {64, 1024, 65536};
    uint8_t *value = malloc(65536);
    b.box = malloc(65536 + 16);
    b.plain = malloc(65536);
    if (!value || !b.box || !b.plain || !b.msg)
        bench_die("malloc", NULL);
    randombytes_buf(value, 65536);
    b.value = value;
    /* The producer's generation (created on first use) and its secret for
     * the consumer and the bound. */
    if (kc_serde_serialize(b.prod, KC_KIND_VALUE, "bench.data", value, 64, &b.wire, &err) != KC_OK)
        bench_die("serialize", &err);
    kc_serde_foreach_pgen(b.prod, "bench", find_secret, &b);

    if (wants(argc, argv, "datapath")) {
        printf("kafkacrypto data path, one thread; best of %d rounds, "
               "bound = BLAKE2b + secretbox\n", ROUNDS);
        printf("%-12s %8s %12s %10s %12s %10s %7s\n", "operation", "bytes", "ours msg/s",
               "ours MB/s", "bound msg/s", "bound MB/s", "ratio");
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            b.size = sizes[i];
            if (kc_serde_serialize(b.prod, KC_KIND_VALUE, "bench.data", value, b.size, &b.wire,
                                   &err) != KC_OK)
                bench_die("serialize", &err);
            kc_keygen_init(&b.bound_gen, b.secret, 32, kc_keygen_ctx_value, 16, NULL);
            compare(&b, "serialize", op_serialize, bound_serialize);
            /* The bound opens a box made under its own salt. */
            uint8_t key[32], nonce[24];
            kc_keygen_next(&b.bound_gen, b.bound_salt, key, nonce);
            crypto_secretbox_easy(b.box, value, b.size, nonce, key);
            compare(&b, "deserialize", op_deserialize, bound_deserialize);
        }
    }
    if (wants(argc, argv, "parallel"))
        bench_deserialize_parallel(b.prod, b.cons, value);
    if (wants(argc, argv, "e2e"))
        bench_e2e(b.prod, b.cons, value);
    if (wants(argc, argv, "kx"))
        bench_key_exchange(dir);
    if (wants(argc, argv, "kxscale"))
        bench_key_exchange_scale(dir);
    if (wants(argc, argv, "memory")) {
        const char *sec = getenv("KC_BENCH_SUSTAIN_SECONDS");
        bench_memory();
        bench_sustained(b.prod, b.cons, value, sec && *sec ? atof(sec) : 10);
    }
    if (wants(argc, argv, "oldkeys"))
        bench_oldkeys(dir);
    kc_broker_embedded_stop();
    kc_message_free(b.msg);
    kc_buf_free(&b.out);
    kc_buf_free(&b.wire);
    kc_serde_free(b.prod);
    kc_serde_free(b.cons);
    kc_ratchet_close(r);
    unlink(seed);
    rmdir(dir);
    free(value);
    free(b.box);
    free(b.plain);
    return 0;
}
