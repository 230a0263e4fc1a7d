/* kc-bench, memory: the resident set of a consumer node holding 1 000
 * roots' keys, and of the process at the start and end of a sustained
 * end-to-end run (KC_BENCH_SUSTAIN_SECONDS, default 10; the lead's long run
 * uses 600). RSS from /proc/self/statm, so the figures include everything
 * in the process (librdkafka's queues, the embedded broker's logs). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "kc_keyidx.h"
#include "kc_serde.h"

#define MEM_ROOTS 1000

long bench_rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

void bench_memory(void)
{
    kc_serde_config c;
    kc_serde_config_init(&c);
    kc_serde *s;
    kc_err err;
    long before = bench_rss_kb();
    if (kc_serde_new(&c, &s, &err) != KC_OK)
        bench_die("serde", &err);
    /* what a consumer node holds per root after the key exchange: one key
     * per key index (long indices, as nodes make) */
    for (int r = 0; r < MEM_ROOTS; r++) {
        char root[32];
        snprintf(root, sizeof root, "memroot%d", r);
        uint8_t id[32], secret[32];
        randombytes_buf(id, sizeof id);
        randombytes_buf(secret, sizeof secret);
        kc_keyidx ki;
        kc_keyidx_from_bytes(&ki, id, sizeof id);
        if (kc_serde_add_consumer_key(s, root, &ki, secret, &err) != KC_OK)
            bench_die("consumer key", &err);
        sodium_memzero(secret, sizeof secret);
    }
    long after = bench_rss_kb();
    printf("\nmemory (resident set of the whole process)\n");
    printf("bench memory_consumer_keys roots=%d rss_before_kb=%ld rss_after_kb=%ld "
           "per_root_bytes=%.0f\n", MEM_ROOTS, before, after,
           (double)(after - before) * 1024.0 / MEM_ROOTS);
    fflush(stdout);
    kc_serde_free(s);
}
