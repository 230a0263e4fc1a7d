#include "kc_broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kc_kafka.h"
#include "kc_log.h"
#include "kc_thread.h"

#define RELAY_MAX_CONNS 64
#define RELAY_BUF 65536

/* One relayed connection: bytes read from side[i] wait in buf[i] until
 * written to side[1-i]. */
typedef struct relay_conn {
    int side[2];
    size_t len[2], off[2];
    unsigned char buf[2][RELAY_BUF];
} relay_conn;

typedef struct relay {
    int listen_fd;
    int wake[2];
    struct sockaddr_in target;
    pthread_t thread;
    relay_conn *conns[RELAY_MAX_CONNS];
} relay;

struct kc_broker {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    char bootstrap[64];
    relay *relay;
};

static const char LOGGER[] = "kafkacrypto.broker";

kc_status kc_broker_start(kc_broker **out, kc_err *err)
{
    *out = NULL;
    kc_broker *b = calloc(1, sizeof *b);
    if (!b)
        return kc_err_set(err, KC_ERR_NOMEM, "embedded broker: out of memory");
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    kc_kafka_route_logs(conf);
    /* The mock brokers take their sockets' options from this handle. With
     * Nagle on, a response written in two parts waits for the client's
     * delayed ACK: every produce took 40 ms, and a node's management loop
     * (two flushes per pass) answered about 8 key requests per 100 ms. */
    rd_kafka_conf_set(conf, "socket.nagle.disable", "true", NULL, 0);
    /* This handle only hosts the cluster; it never talks to a broker. */
    sigset_t saved;
    kc_signals_block(&saved);   /* the mock cluster's thread inherits the mask */
    b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    b->mcluster = b->rk ? rd_kafka_mock_cluster_new(b->rk, 1) : NULL;
    kc_signals_restore(&saved);
    if (!b->rk) {
        rd_kafka_conf_destroy(conf);
        free(b);
        return kc_err_set(err, KC_ERR_IO, "embedded broker: %s", errstr);
    }
    if (!b->mcluster) {
        rd_kafka_destroy(b->rk);
        free(b);
        return kc_err_set(err, KC_ERR_IO, "embedded broker: cannot start librdkafka's mock "
                                          "cluster (cannot listen on 127.0.0.1?)");
    }
    snprintf(b->bootstrap, sizeof b->bootstrap, "%s",
             rd_kafka_mock_cluster_bootstraps(b->mcluster));
    kc_log(KC_LOG_INFO, LOGGER, "Embedded broker listening on %s", b->bootstrap);
    *out = b;
    return KC_OK;
}

const char *kc_broker_bootstrap(const kc_broker *broker)
{
    return broker->bootstrap;
}

kc_status kc_broker_create_topic(kc_broker *broker, const char *topic, int partitions,
                                 kc_err *err)
{
    if (!kc_topic_name_valid(topic))
        return kc_err_set(err, KC_ERR_INVALID, "topic '%s': not a valid Kafka topic name",
                          topic);
    if (partitions < 1 || partitions > 10000)
        return kc_err_set(err, KC_ERR_INVALID, "topic %s: partitions: expected 1..10000, got %d",
                          topic, partitions);
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(broker->mcluster, topic, partitions, 1);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        return kc_err_set(err, KC_ERR_IO, "topic %s: cannot create: %s", topic,
                          rd_kafka_err2str(e));
    return KC_OK;
}

kc_status kc_broker_create_key_topics(kc_broker *broker, const kc_tunables *t,
                                      const char *root, kc_err *err)
{
    const char *mgmt[] = {t->mgmt_topic_chains, t->mgmt_topic_allowlist,
                          t->mgmt_topic_denylist};
    for (size_t i = 0; i < 3; i++) {
        kc_status st = kc_broker_create_topic(broker, mgmt[i], 1, err);
        if (st != KC_OK)
            return st;
    }
    if (!root)
        return KC_OK;
    const char *suffixes[] = {t->topic_suffix_subs, t->topic_suffix_reqs, t->topic_suffix_keys};
    for (size_t i = 0; i < 3; i++) {
        char name[2 * KC_TOPIC_NAME_MAX + 2];
        snprintf(name, sizeof name, "%s%s", root, suffixes[i]);
        kc_status st = kc_broker_create_topic(broker, name, 1, err);
        if (st != KC_OK)
            return st;
    }
    return KC_OK;
}

/* ---- the fixed-port relay ------------------------------------------------ */

static void relay_close(relay *r, int i)
{
    close(r->conns[i]->side[0]);
    close(r->conns[i]->side[1]);
    free(r->conns[i]);
    r->conns[i] = NULL;
}

static void relay_accept(relay *r)
{
    int c = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0)
        return;
    int slot = -1;
    for (int i = 0; i < RELAY_MAX_CONNS && slot < 0; i++)
        if (!r->conns[i])
            slot = i;
    int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    relay_conn *rc = slot >= 0 && t >= 0 ? calloc(1, sizeof *rc) : NULL;
    /* Loopback connects complete at once, so a blocking connect is fine. */
    if (!rc || connect(t, (struct sockaddr *)&r->target, sizeof r->target) != 0) {
        kc_log(KC_LOG_WARNING, LOGGER, "relay: dropping a connection (%s)",
               slot < 0 ? "too many connections" : strerror(errno));
        free(rc);
        close(c);
        if (t >= 0)
            close(t);
        return;
    }
    fcntl(t, F_SETFL, fcntl(t, F_GETFL) | O_NONBLOCK);
    /* bytes are passed on as they come: no Nagle wait on either side */
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rc->side[0] = c;
    rc->side[1] = t;
    r->conns[slot] = rc;
}

/* Moves bytes for one connection; returns -1 when it is finished. */
static int relay_pump(relay_conn *rc, const short *revents)
{
    for (int d = 0; d < 2; d++) {
        int from = rc->side[d], to = rc->side[1 - d];
        if (rc->len[d] == 0 && (revents[d] & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(from, rc->buf[d], RELAY_BUF);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                return -1;
            if (n > 0) {
                rc->len[d] = (size_t)n;
                rc->off[d] = 0;
            }
        }
        if (rc->len[d] > 0) {
            /* MSG_NOSIGNAL: a peer gone away is an error, not a SIGPIPE */
            ssize_t n = send(to, rc->buf[d] + rc->off[d], rc->len[d], MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
            if (n > 0) {
                rc->off[d] += (size_t)n;
                rc->len[d] -= (size_t)n;
            }
        }
    }
    return 0;
}

static void *relay_main(void *arg)
{
    relay *r = arg;
    for (;;) {
        struct pollfd fds[2 + 2 * RELAY_MAX_CONNS];
        int owner[2 + 2 * RELAY_MAX_CONNS];
        int n = 0;
        fds[n++] = (struct pollfd){.fd = r->wake[0], .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = r->listen_fd, .events = POLLIN};
        for (int i = 0; i < RELAY_MAX_CONNS; i++) {
            relay_conn *rc = r->conns[i];
            if (!rc)
                continue;
            for (int s = 0; s < 2; s++) {
                /* Read from a side only when its buffer is empty; wait for
                 * writability of the side that has bytes pending for it. */
                short ev = (rc->len[s] == 0 ? POLLIN : 0) | (rc->len[1 - s] ? POLLOUT : 0);
                owner[n] = i;
                fds[n++] = (struct pollfd){.fd = rc->side[s], .events = ev};
            }
        }
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[0].revents)
            break;
        if (fds[1].revents & POLLIN)
            relay_accept(r);
        for (int k = 2; k < n; k += 2) {
            int i = owner[k];
            /* revents of side 0 then side 1 */
            short rev[2] = {fds[k].revents, fds[k + 1].revents};
            if (r->conns[i] && relay_pump(r->conns[i], rev) < 0)
                relay_close(r, i);
        }
    }
    for (int i = 0; i < RELAY_MAX_CONNS; i++)
        if (r->conns[i])
            relay_close(r, i);
    return NULL;
}

kc_status kc_broker_listen(kc_broker *broker, int port, int *bound_port, kc_err *err)
{
    if (broker->relay)
        return kc_err_set(err, KC_ERR_STATE, "broker: already listening on an extra port");
    if (port < 0 || port > 65535)
        return kc_err_set(err, KC_ERR_INVALID, "broker port: expected 0..65535, got %d", port);
    relay *r = calloc(1, sizeof *r);
    if (!r)
        return kc_err_set(err, KC_ERR_NOMEM, "broker: out of memory");
    r->wake[0] = r->wake[1] = -1;
    const char *colon = strrchr(broker->bootstrap, ':');
    r->target.sin_family = AF_INET;
    r->target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->target.sin_port = htons((uint16_t)atoi(colon ? colon + 1 : "0"));

    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                               .sin_port = htons((uint16_t)port)};
    int one = 1;
    socklen_t alen = sizeof addr;
    r->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->listen_fd < 0 ||
        setsockopt(r->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(r->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(r->listen_fd, 16) != 0 ||
        getsockname(r->listen_fd, (struct sockaddr *)&addr, &alen) != 0 ||
        pipe2(r->wake, O_CLOEXEC) != 0) {
        kc_status st = kc_err_set(err, KC_ERR_IO, "broker: cannot listen on 127.0.0.1:%d: %s",
                                  port, strerror(errno));
        if (r->listen_fd >= 0)
            close(r->listen_fd);
        free(r);
        return st;
    }
    if (kc_thread_start(&r->thread, relay_main, r) != 0) {
        close(r->listen_fd);
        close(r->wake[0]);
        close(r->wake[1]);
        free(r);
        return kc_err_set(err, KC_ERR_IO, "broker: cannot start the relay thread");
    }
    broker->relay = r;
    if (bound_port)
        *bound_port = ntohs(addr.sin_port);
    return KC_OK;
}

void kc_broker_stop(kc_broker *broker)
{
    if (!broker)
        return;
    relay *r = broker->relay;
    if (r) {
        if (write(r->wake[1], "x", 1) < 0)
            kc_log(KC_LOG_WARNING, LOGGER, "relay: cannot wake the relay thread");
        pthread_join(r->thread, NULL);
        close(r->listen_fd);
        close(r->wake[0]);
        close(r->wake[1]);
        free(r);
    }
    rd_kafka_mock_cluster_destroy(broker->mcluster);
    rd_kafka_destroy(broker->rk);
    free(broker);
}

/* ---- the process's embedded broker --------------------------------------- */

static pthread_mutex_t embedded_lock = PTHREAD_MUTEX_INITIALIZER;
static kc_broker *embedded;

kc_status kc_broker_embedded(kc_broker **out, kc_err *err)
{
    kc_status st = KC_OK;
    pthread_mutex_lock(&embedded_lock);
    if (!embedded) {
        kc_broker *b;
        kc_tunables defaults;
        kc_tunables_init(&defaults);
        st = kc_broker_start(&b, err);
        if (st == KC_OK && (st = kc_broker_create_key_topics(b, &defaults, NULL, err)) != KC_OK)
            kc_broker_stop(b);
        else if (st == KC_OK)
            embedded = b;
    }
    *out = embedded;
    pthread_mutex_unlock(&embedded_lock);
    return st;
}

kc_broker *kc_broker_embedded_get(void)
{
    pthread_mutex_lock(&embedded_lock);
    kc_broker *b = embedded;
    pthread_mutex_unlock(&embedded_lock);
    return b;
}

void kc_broker_embedded_stop(void)
{
    pthread_mutex_lock(&embedded_lock);
    kc_broker *b = embedded;
    embedded = NULL;
    pthread_mutex_unlock(&embedded_lock);
    kc_broker_stop(b);
}
