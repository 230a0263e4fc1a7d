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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "kc_log.h"
#include "kc_node.h"
#include "kc_provision_node.h"

#define KX_TRIALS 3
#define KX_WAIT_INTERVAL 0.005
#define KX_GIVE_UP_SECONDS 30.0

/* KC_BENCH_TRACE=1: the nodes' log lines, stamped with the time, to see
 * where an exchange spends it. */
static void trace_sink(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "%.3f %s:%s:%s\n", bench_now(), kc_log_level_name(level), logger, msg);
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

void bench_key_exchange(const char *dir)
{
    kc_log_level level = kc_log_get_level();
    const char *trace = getenv("KC_BENCH_TRACE");
    if (trace && *trace && strcmp(trace, "0") != 0) {
        kc_log_set_sink(trace_sink, NULL);
        kc_log_set_level(KC_LOG_DEBUG);
    }
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
