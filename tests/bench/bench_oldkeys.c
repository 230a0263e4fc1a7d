/* kc-bench, old keys: a producer node whose oldkeys hold 100 000 records
 * (a producer restarted often within the 7-day window) — how long it takes
 * to open, the memory mappings and locked memory it then holds (kc_secmem
 * keeps both bounded: one mapping per key would pass vm.max_map_count and
 * the default 8 MiB RLIMIT_MEMLOCK), and the time to find one random old
 * key, as a key request does. Mappings and locked memory are the process's
 * totals after the open. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "kc_node.h"
#include "kc_serde.h"
#include "kc_test_mem.h"

#define OLDKEYS_RECORDS 100000
#define OLDKEYS_LOOKUPS 20000

typedef struct lookup {
    size_t found;
} lookup;

static void count_found(void *ctx, const kc_keyidx *ki, const uint8_t secret[KC_SECRET_BYTES],
                        double birth, bool can_encrypt)
{
    (void)ki;
    (void)secret;
    (void)birth;
    (void)can_encrypt;
    ((lookup *)ctx)->found++;
}

typedef struct all_kis {
    kc_keyidx *kis;
    size_t n;
} all_kis;

static void collect(void *ctx, const kc_keyidx *ki, const uint8_t secret[KC_SECRET_BYTES],
                    double birth, bool can_encrypt)
{
    (void)secret;
    (void)birth;
    (void)can_encrypt;
    all_kis *a = ctx;
    if (a->n < OLDKEYS_RECORDS + 1)
        a->kis[a->n++] = *ki;
}

void bench_oldkeys(const char *dir)
{
    kc_keyidx oldest;
    uint8_t secret[KC_SECRET_BYTES];
    char *config = tc_node_with_oldkeys(dir, "oldkeys", "old", OLDKEYS_RECORDS, &oldest, secret);
    kc_node_options o;
    kc_node_options_init(&o);
    o.config_path = config;
    kc_node *n;
    kc_err err;
    double t0 = bench_now();
    if (kc_node_open(&n, &o, &err) != KC_OK)
        bench_die("open the node with old keys", &err);
    double open_ms = (bench_now() - t0) * 1e3;
    size_t maps = tc_mappings(), locked = tc_locked_kib();
    all_kis a = {calloc(OLDKEYS_RECORDS + 1, sizeof(kc_keyidx)), 0};
    if (!a.kis)
        bench_die("malloc", NULL);
    kc_serde_foreach_pgen(kc_node_serde(n), "old", collect, &a);
    if (a.n < OLDKEYS_RECORDS)
        bench_die("the node lost old keys", NULL);
    lookup l = {0};
    t0 = bench_now();
    for (size_t i = 0; i < OLDKEYS_LOOKUPS; i++)
        kc_serde_find_pgens(kc_node_serde(n), "old", &a.kis[(i * 7919) % a.n], 1, count_found, &l);
    double lookup_ns = (bench_now() - t0) * 1e9 / OLDKEYS_LOOKUPS;
    if (l.found != OLDKEYS_LOOKUPS)
        bench_die("an old key was not found", NULL);
    printf("\na producer node with %d old keys (oldkeys): time to open it, the process's "
           "mappings and locked memory then, time to find one old key for a request\n",
           OLDKEYS_RECORDS);
    printf("bench oldkeys records=%d open_ms=%.0f mappings=%zu locked_kib=%zu lookup_ns=%.0f\n",
           OLDKEYS_RECORDS, open_ms, maps, locked, lookup_ns);
    free(a.kis);
    kc_node_close(n);
    free(config);
    bench_remove_node(dir, "oldkeys");
}
