/* `kafkacrypto broker`: a standalone Kafka broker on 127.0.0.1 for other
 * processes, until SIGINT or SIGTERM. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "kc_broker.h"
#include "kc_file.h"

static const char BROKER_USAGE[] =
    "usage: kafkacrypto broker [--port N] [--bootstrap-file FILE] [--topic NAME[:PARTITIONS]]...\n"
    "  Runs librdkafka's mock cluster (one broker) on 127.0.0.1 until SIGINT/SIGTERM.\n"
    "  The broker itself listens on a port the system picks; --port N adds a fixed\n"
    "  bootstrap port relayed to it. The bootstrap address is printed on stdout and,\n"
    "  with --bootstrap-file, written to FILE (removed again at exit).\n"
    "  Management topics (chains, allowlist, denylist) are created with 1 partition;\n"
    "  --topic creates more (default 1 partition). Other topics are created on first\n"
    "  use with 4. A test broker: no TLS/SASL, no compaction, ~5 MiB per partition.\n";

static int parse_int(const char *text, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int kc_host_broker(kc_host *h, int argc, char **argv)
{
    int port = -1;
    const char *bootstrap_file = NULL;
    const char **topics = calloc((size_t)argc + 1, sizeof *topics);
    int ntopics = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(BROKER_USAGE, stdout);
            free(topics);
            return KC_EXIT_OK;
        }
        int has_value = i + 1 < argc;
        int bad = 0;
        if (!strcmp(a, "--port"))
            bad = !has_value || parse_int(argv[++i], 1, 65535, &port) != 0;
        else if (!strcmp(a, "--bootstrap-file"))
            bad = !has_value || !*(bootstrap_file = argv[++i]);
        else if (!strcmp(a, "--topic"))
            bad = !has_value || !*(topics[ntopics++] = argv[++i]);
        else {
            free(topics);
            return kc_host_usage_error(h, "broker: unknown argument '%s'", a);
        }
        if (bad) {
            free(topics);
            return kc_host_usage_error(h, "broker: %s needs a %s", a,
                                       !strcmp(a, "--port") ? "port number 1..65535"
                                       : !strcmp(a, "--topic") ? "topic NAME[:PARTITIONS]"
                                                                : "file name");
        }
    }

    /* Signals are taken by sigwait below; librdkafka's threads inherit the
     * mask, so none of them is interrupted. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    kc_broker *b;
    kc_err err;
    int status = KC_EXIT_FAILED;
    char address[64];
    if (kc_broker_start(&b, &err) != KC_OK) {
        fprintf(stderr, "kafkacrypto: %s\n", err.msg);
        free(topics);
        return KC_EXIT_FAILED;
    }
    if (kc_broker_create_key_topics(b, &h->settings.tunables, NULL, &err) != KC_OK)
        goto fail;
    for (int i = 0; i < ntopics; i++) {
        char name[300];
        int partitions = 1;
        snprintf(name, sizeof name, "%s", topics[i]);
        char *colon = strchr(name, ':');
        if (colon) {
            *colon = '\0';
            if (parse_int(colon + 1, 1, 10000, &partitions) != 0) {
                kc_err_set(&err, KC_ERR_INVALID, "--topic %s: expected NAME:PARTITIONS with "
                           "1..10000 partitions", topics[i]);
                goto fail;
            }
        }
        if (kc_broker_create_topic(b, name, partitions, &err) != KC_OK)
            goto fail;
    }
    snprintf(address, sizeof address, "%s", kc_broker_bootstrap(b));
    if (port > 0) {
        if (kc_broker_listen(b, port, NULL, &err) != KC_OK)
            goto fail;
        snprintf(address, sizeof address, "127.0.0.1:%d", port);
    }
    if (bootstrap_file) {
        char line[80];
        int n = snprintf(line, sizeof line, "%s\n", address);
        if (kc_file_replace(bootstrap_file, (const uint8_t *)line, (size_t)n, 0644, &err) != KC_OK)
            goto fail;
    }
    printf("kafkacrypto broker listening on %s (stop with Ctrl-C)\n", address);
    fflush(stdout);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    if (bootstrap_file)
        unlink(bootstrap_file);
    fprintf(stderr, "kafkacrypto broker: stopping (%s)\n", strsignal(sig));
    status = KC_EXIT_OK;
    goto done;
fail:
    fprintf(stderr, "kafkacrypto: %s\n", err.msg);
done:
    kc_broker_stop(b);
    free(topics);
    return status;
}
