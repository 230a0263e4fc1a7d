#include "kc_kafka.h"

#include <librdkafka/rdkafka.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "kc_broker.h"
#include "kc_log.h"
#include "kc_tunables.h"

static const char LOGGER[] = "kafkacrypto.kafka";

/* ---- logging ----------------------------------------------------------- */

static kc_log_level from_syslog(int level)
{
    if (level <= 2) return KC_LOG_CRITICAL;
    if (level == 3) return KC_LOG_ERROR;
    if (level == 4) return KC_LOG_WARNING;
    if (level <= 6) return KC_LOG_INFO;
    return KC_LOG_DEBUG;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    kc_log(from_syslog(level), "kafkacrypto.rdkafka", "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kc_log(rd_kafka_fatal_error(rk, NULL, 0) ? KC_LOG_ERROR : KC_LOG_WARNING,
           "kafkacrypto.rdkafka", "%s: %s: %s", rd_kafka_name(rk),
           rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

void kc_kafka_route_logs(struct rd_kafka_conf_s *conf)
{
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
}

/* Builds librdkafka's configuration from ours, falling back to the embedded
 * broker when no bootstrap.servers is given. */
static kc_status make_conf(const kc_kafka_config *in, kc_kafka_use use, rd_kafka_conf_t **out,
                           kc_err *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    kc_kafka_route_logs(conf);
    for (size_t i = 0; i < in->n; i++)
        if (rd_kafka_conf_set(conf, in->props[i].name, in->props[i].value, errstr,
                              sizeof errstr) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return kc_err_set(err, KC_ERR_INVALID, "kafka option %s: %s", in->props[i].name,
                              errstr);
        }
    const char *bs = kc_kafka_config_get(in, "bootstrap.servers");
    if (!bs || !*bs) {
        kc_broker *b;
        kc_status st = kc_broker_embedded(&b, err);
        if (st != KC_OK) {
            rd_kafka_conf_destroy(conf);
            return st;
        }
        rd_kafka_conf_set(conf, "bootstrap.servers", kc_broker_bootstrap(b), NULL, 0);
        /* The embedded broker speaks plaintext on loopback only: a node
         * config written for a TLS cluster still works against it. */
        const char *sp = kc_kafka_config_get(in, "security.protocol");
        if (sp && strcasecmp(sp, "plaintext") != 0)
            kc_log(KC_LOG_INFO, "kafkacrypto.kafka", "Using the embedded broker: "
                   "security.protocol %s replaced by plaintext.", sp);
        rd_kafka_conf_set(conf, "security.protocol", "plaintext", NULL, 0);
        /* The mock answers an empty fetch only after fetch.wait.max.ms, even
         * when data arrives meanwhile: keep that wait short in-process. */
        if (use == KC_KAFKA_CONSUMER && !kc_kafka_config_get(in, "fetch.wait.max.ms"))
            rd_kafka_conf_set(conf, "fetch.wait.max.ms", "50", NULL, 0);
    }
    *out = conf;
    return KC_OK;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- producer ------------------------------------------------------------ */

#define MAX_QUEUED_REPORTS 100000

struct kc_producer {
    rd_kafka_t *rk;
    int produce_timeout_ms;
    int keep_reports;
    uint64_t next_seq;
    kc_producer_stats stats;
    uint64_t failed_at_last_flush;
    /* Delivery reports arrive on the thread calling poll/flush, which is
     * the owner's; the queue needs no lock. */
    kc_delivery *reports;
    size_t nreports, reports_cap, reports_head;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kc_producer *p = opaque;
    if (m->err) {
        p->stats.failed++;
        snprintf(p->stats.last_error, sizeof p->stats.last_error, "%s",
                 rd_kafka_err2str(m->err));
        if (!p->keep_reports)
            kc_log(KC_LOG_WARNING, LOGGER, "Message to topic %s not delivered: %s",
                   rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    } else {
        p->stats.delivered++;
    }
    if (!p->keep_reports)
        return;
    if (p->nreports - p->reports_head == MAX_QUEUED_REPORTS) {
        kc_log(KC_LOG_WARNING, LOGGER, "Dropping a delivery report: %d are waiting to be read",
               MAX_QUEUED_REPORTS);
        return;
    }
    if (p->nreports == p->reports_cap && p->reports_head > 0) {
        /* Compact first: consumed reports sit before reports_head. */
        memmove(p->reports, p->reports + p->reports_head,
                (p->nreports - p->reports_head) * sizeof *p->reports);
        p->nreports -= p->reports_head;
        p->reports_head = 0;
    }
    if (p->nreports == p->reports_cap) {
        size_t cap = p->reports_cap ? 2 * p->reports_cap : 64;
        kc_delivery *r = realloc(p->reports, cap * sizeof *r);
        if (!r)
            return;
        p->reports = r;
        p->reports_cap = cap;
    }
    kc_delivery *d = &p->reports[p->nreports++];
    memset(d, 0, sizeof *d);
    d->seq = (uint64_t)(uintptr_t)m->_private;
    d->topic = strdup(rd_kafka_topic_name(m->rkt));
    d->partition = m->partition;
    d->offset = m->err ? -1 : m->offset;
    d->status = m->err ? KC_ERR_IO : KC_OK;
    if (m->err)
        snprintf(d->error, sizeof d->error, "%s", rd_kafka_err2str(m->err));
}

kc_status kc_producer_new(kc_producer **out, const kc_kafka_config *kconf, int keep_reports,
                          kc_err *err)
{
    *out = NULL;
    kc_producer *p = calloc(1, sizeof *p);
    if (!p)
        return kc_err_set(err, KC_ERR_NOMEM, "producer: out of memory");
    rd_kafka_conf_t *conf;
    kc_status st = make_conf(kconf, KC_KAFKA_PRODUCER, &conf, err);
    if (st != KC_OK) {
        free(p);
        return kc_err_prefix(err, "producer: ");
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, p);
    char errstr[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        free(p);
        return kc_err_set(err, KC_ERR_INVALID, "producer: %s", errstr);
    }
    double timeout_ms = kconf->produce_timeout * 1000;
    p->produce_timeout_ms = timeout_ms > 2e9 ? 2000000000 : (int)timeout_ms;
    p->keep_reports = keep_reports;
    p->next_seq = 1;
    *out = p;
    return KC_OK;
}

kc_status kc_producer_send(kc_producer *p, const char *topic, int32_t partition,
                           const void *key, size_t key_len,
                           const void *value, size_t value_len, uint64_t *seq, kc_err *err)
{
    if (!topic || !kc_topic_name_valid(topic))
        return kc_err_set(err, KC_ERR_INVALID, "send: '%s' is not a valid Kafka topic name",
                          topic ? topic : "(null)");
    /* librdkafka treats a NULL payload as Kafka null; an empty but present
     * value needs a non-NULL pointer. */
    static const char empty[1];
    if (key && !key_len)
        key = empty;
    if (value && !value_len)
        value = empty;
    uint64_t s = p->next_seq;
    int64_t deadline = now_ms() + p->produce_timeout_ms;
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)s), RD_KAFKA_V_END);
        if (!e)
            break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || now_ms() >= deadline)
            return kc_err_set(err, KC_ERR_IO, "send to topic %s: %s", topic, rd_kafka_err2str(e));
        rd_kafka_poll(p->rk, 100);  /* make room by serving delivery reports */
    }
    p->next_seq++;
    p->stats.sent++;
    if (seq)
        *seq = s;
    rd_kafka_poll(p->rk, 0);
    return KC_OK;
}

void kc_producer_poll(kc_producer *p, int timeout_ms)
{
    rd_kafka_poll(p->rk, timeout_ms);
}

kc_status kc_producer_flush(kc_producer *p, int timeout_ms, kc_err *err)
{
    rd_kafka_flush(p->rk, timeout_ms);
    int left = rd_kafka_outq_len(p->rk);
    if (left > 0)
        return kc_err_set(err, KC_ERR_IO, "flush: %d message(s) not delivered after %d ms",
                          left, timeout_ms);
    uint64_t failed = p->stats.failed - p->failed_at_last_flush;
    p->failed_at_last_flush = p->stats.failed;
    if (failed && !p->keep_reports)
        return kc_err_set(err, KC_ERR_IO, "flush: %llu message(s) failed since the last flush "
                          "(last error: %s)", (unsigned long long)failed, p->stats.last_error);
    return KC_OK;
}

int kc_producer_next_delivery(kc_producer *p, kc_delivery *out)
{
    if (p->reports_head == p->nreports)
        return 0;
    *out = p->reports[p->reports_head++];
    if (p->reports_head == p->nreports)
        p->reports_head = p->nreports = 0;
    return 1;
}

void kc_delivery_clear(kc_delivery *d)
{
    free(d->topic);
    memset(d, 0, sizeof *d);
}

void kc_producer_get_stats(const kc_producer *p, kc_producer_stats *out)
{
    *out = p->stats;
}

void kc_producer_close(kc_producer *p, int timeout_ms)
{
    if (!p)
        return;
    rd_kafka_flush(p->rk, timeout_ms);
    int left = rd_kafka_outq_len(p->rk);
    if (left > 0)
        kc_log(KC_LOG_WARNING, LOGGER, "Producer closed with %d message(s) undelivered", left);
    rd_kafka_destroy(p->rk);
    for (size_t i = p->reports_head; i < p->nreports; i++)
        kc_delivery_clear(&p->reports[i]);
    free(p->reports);
    free(p);
}

/* ---- consumer ------------------------------------------------------------ */

struct kc_consumer {
    rd_kafka_t *rk;
    atomic_bool woken;   /* kc_consumer_wake: the current poll returns now */
};

kc_status kc_consumer_new(kc_consumer **out, const kc_kafka_config *kconf, kc_err *err)
{
    *out = NULL;
    kc_kafka_config tmp;
    const kc_kafka_config *use = kconf;
    if (!kc_kafka_config_get(kconf, "group.id")) {
        /* librdkafka needs a group; a private one that commits nothing
         * behaves like kafka-python's group_id=None. */
        static atomic_uint counter;
        char gid[80];
        snprintf(gid, sizeof gid, "kafkacrypto-anon-%ld-%u-%08x", (long)getpid(),
                 atomic_fetch_add(&counter, 1), randombytes_random());
        if (kc_kafka_config_copy(&tmp, kconf) != KC_OK ||
            kc_kafka_config_set(&tmp, KC_KAFKA_CONSUMER, "group.id", gid, NULL, NULL) != KC_OK ||
            kc_kafka_config_set(&tmp, KC_KAFKA_CONSUMER, "enable.auto.commit", "false", NULL,
                                NULL) != KC_OK) {
            kc_kafka_config_clear(&tmp);
            return kc_err_set(err, KC_ERR_NOMEM, "consumer: out of memory");
        }
        use = &tmp;
    }
    rd_kafka_conf_t *conf;
    kc_status st = make_conf(use, KC_KAFKA_CONSUMER, &conf, err);
    if (use == &tmp)
        kc_kafka_config_clear(&tmp);
    if (st != KC_OK)
        return kc_err_prefix(err, "consumer: ");
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return kc_err_set(err, KC_ERR_INVALID, "consumer: %s", errstr);
    }
    kc_consumer *c = calloc(1, sizeof *c);
    if (!c) {
        rd_kafka_destroy(rk);
        return kc_err_set(err, KC_ERR_NOMEM, "consumer: out of memory");
    }
    rd_kafka_poll_set_consumer(rk);
    c->rk = rk;
    *out = c;
    return KC_OK;
}

kc_status kc_consumer_subscribe(kc_consumer *c, const char *const *topics, size_t count,
                                kc_err *err)
{
    if (count == 0)
        return kc_err_set(err, KC_ERR_INVALID, "subscribe: expected at least one topic");
    for (size_t i = 0; i < count; i++)
        if (!topics[i] || (topics[i][0] != '^' && !kc_topic_name_valid(topics[i])))
            return kc_err_set(err, KC_ERR_INVALID, "subscribe: '%s' is neither a valid topic name "
                              "nor a regular expression starting with ^",
                              topics[i] ? topics[i] : "(null)");
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)count);
    for (size_t i = 0; i < count; i++)
        rd_kafka_topic_partition_list_add(list, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e)
        return kc_err_set(err, KC_ERR_INVALID, "subscribe to %s%s: %s", topics[0],
                          count > 1 ? ", ..." : "", rd_kafka_err2str(e));
    return KC_OK;
}

kc_status kc_consumer_assign(kc_consumer *c, const kc_topic_partition *tps, size_t count,
                             kc_err *err)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)count);
    for (size_t i = 0; i < count; i++) {
        if (!tps[i].topic || !kc_topic_name_valid(tps[i].topic) || tps[i].partition < 0) {
            rd_kafka_topic_partition_list_destroy(list);
            return kc_err_set(err, KC_ERR_INVALID,
                              "assign: entry %zu: expected a topic and a partition >= 0", i + 1);
        }
        int64_t off = tps[i].offset;
        if (off == KC_OFFSET_STORED)
            off = RD_KAFKA_OFFSET_INVALID;
        else if (off == KC_OFFSET_BEGINNING)
            off = RD_KAFKA_OFFSET_BEGINNING;
        else if (off == KC_OFFSET_END) {
            /* librdkafka would look the end up later, asynchronously, and
             * miss what is produced meanwhile. */
            int64_t lo, hi;
            off = rd_kafka_query_watermark_offsets(c->rk, tps[i].topic, tps[i].partition, &lo,
                                                   &hi, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR
                      ? hi : RD_KAFKA_OFFSET_END;
        }
        else if (off < 0) {
            rd_kafka_topic_partition_list_destroy(list);
            return kc_err_set(err, KC_ERR_INVALID, "assign: %s[%d]: invalid offset %lld",
                              tps[i].topic, (int)tps[i].partition, (long long)off);
        }
        rd_kafka_topic_partition_list_add(list, tps[i].topic, tps[i].partition)->offset = off;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(c->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e)
        return kc_err_set(err, KC_ERR_INVALID, "assign: %s", rd_kafka_err2str(e));
    return KC_OK;
}

kc_status kc_consumer_poll(kc_consumer *c, int timeout_ms, kc_record **out, kc_err *err)
{
    *out = NULL;
    int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        int64_t left = deadline - now_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, left > 0 ? (int)left : 0);
        if (!m) {
            if (atomic_exchange(&c->woken, false) || now_ms() >= deadline)
                return KC_OK;
            continue;
        }
        if (!m->err) {
            kc_record *km = calloc(1, sizeof *km);
            if (!km) {
                rd_kafka_message_destroy(m);
                return kc_err_set(err, KC_ERR_NOMEM, "poll: out of memory");
            }
            km->topic = rd_kafka_topic_name(m->rkt);
            km->partition = m->partition;
            km->offset = m->offset;
            km->key = m->key;
            km->key_len = m->key ? m->key_len : 0;
            km->value = m->payload;
            km->value_len = m->payload ? m->len : 0;
            km->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
            km->rkmessage_ = m;
            *out = km;
            return KC_OK;
        }
        char fatal[256];
        if (rd_kafka_fatal_error(c->rk, fatal, sizeof fatal)) {
            rd_kafka_message_destroy(m);
            return kc_err_set(err, KC_ERR_IO, "poll: fatal consumer error: %s", fatal);
        }
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            kc_log(KC_LOG_INFO, LOGGER, "Consumer: %s%s%s",
                   m->rkt ? rd_kafka_topic_name(m->rkt) : "", m->rkt ? ": " : "",
                   rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        if (now_ms() >= deadline)
            return KC_OK;
    }
}

void kc_record_free(kc_record *m)
{
    if (!m)
        return;
    rd_kafka_message_destroy(m->rkmessage_);
    free(m);
}

void kc_consumer_close(kc_consumer *c)
{
    if (!c)
        return;
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    free(c);
}

kc_status kc_consumer_partition_count(kc_consumer *c, const char *topic, int timeout_ms,
                                      int *count, kc_err *err)
{
    *count = 0;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, topic, NULL);
    if (!rkt)
        return kc_err_set(err, KC_ERR_INVALID, "topic %s: %s", topic,
                          rd_kafka_err2str(rd_kafka_last_error()));
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(c->rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (e)
        return kc_err_set(err, KC_ERR_IO, "topic %s: metadata: %s", topic, rd_kafka_err2str(e));
    if (md->topic_cnt == 1 && !md->topics[0].err)
        *count = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return KC_OK;
}

kc_status kc_consumer_store_offset(kc_consumer *c, const kc_record *r, kc_err *err)
{
    (void)c;
    const rd_kafka_message_t *rm = r->rkmessage_;
    rd_kafka_resp_err_t e = rd_kafka_offset_store(rm->rkt, rm->partition, rm->offset);
    if (!e)
        return KC_OK;
    return kc_err_set(err, KC_ERR_STATE, "%s[%d] offset %lld: storing the offset: %s", r->topic,
                      (int)r->partition, (long long)r->offset, rd_kafka_err2str(e));
}

kc_status kc_consumer_commit(kc_consumer *c, kc_err *err)
{
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 0);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        return kc_err_set(err, KC_ERR_IO, "commit: %s", rd_kafka_err2str(e));
    return KC_OK;
}

void kc_consumer_wake(kc_consumer *c)
{
    atomic_store(&c->woken, true);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c->rk);
    if (q) {
        rd_kafka_queue_yield(q);
        rd_kafka_queue_destroy(q);
    }
}

kc_status kc_producer_prepare_topic(kc_producer *p, const char *topic, int timeout_ms)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    if (!rkt)
        return KC_ERR_INVALID;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms);
    if (!e)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return e ? KC_ERR_IO : KC_OK;
}
