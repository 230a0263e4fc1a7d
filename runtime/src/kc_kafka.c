#include "kc_kafka.h"

#include <librdkafka/rdkafka.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kc_array.h"
#include "kc_broker.h"
#include "kc_clock.h"
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
kc_status kc_kafka_make_conf(const kc_kafka_config *in, kc_kafka_use use, rd_kafka_conf_t **out,
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
    return (int64_t)(kc_clock_mono() * 1000);
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
    char *statistics;   /* latest statistics JSON */
};

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    kc_producer *p = opaque;
    free(p->statistics);
    p->statistics = strdup(json);
    return 0;
}

const char *kc_producer_statistics(kc_producer *p)
{
    return p->statistics;
}

/* librdkafka's message.max.bytes, as text, for messages about it. */
static void max_bytes_text(rd_kafka_t *rk, char *out, size_t n)
{
    size_t len = n;
    if (rd_kafka_conf_get(rd_kafka_conf(rk), "message.max.bytes", out, &len) != RD_KAFKA_CONF_OK)
        snprintf(out, n, "?");
}

static void too_large_hint(rd_kafka_t *rk, char *out, size_t n)
{
    char max[32];
    max_bytes_text(rk, max, sizeof max);
    snprintf(out, n, "message over message.max.bytes=%s (or the broker's limit); encryption "
             "adds up to 75 bytes to each of key and value", max);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kc_producer *p = opaque;
    if (m->err) {
        p->stats.failed++;
        if (m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
            too_large_hint(rk, p->stats.last_error, sizeof p->stats.last_error);
        else
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
    if (KC_ARRAY_GROW(p->reports, p->nreports, p->reports_cap) != KC_OK)
        return;
    kc_delivery *d = &p->reports[p->nreports++];
    memset(d, 0, sizeof *d);
    d->seq = (uint64_t)(uintptr_t)m->_private;
    d->topic = strdup(rd_kafka_topic_name(m->rkt));
    d->partition = m->partition;
    d->offset = m->err ? -1 : m->offset;
    d->status = m->err ? KC_ERR_IO : KC_OK;
    if (m->err)
        snprintf(d->error, sizeof d->error, "%s", p->stats.last_error);
}

kc_status kc_producer_new(kc_producer **out, const kc_kafka_config *kconf, int keep_reports,
                          kc_err *err)
{
    *out = NULL;
    kc_producer *p = calloc(1, sizeof *p);
    if (!p)
        return kc_err_set(err, KC_ERR_NOMEM, "producer: out of memory");
    rd_kafka_conf_t *conf;
    kc_status st = kc_kafka_make_conf(kconf, KC_KAFKA_PRODUCER, &conf, err);
    if (st != KC_OK) {
        free(p);
        return kc_err_prefix(err, "producer: ");
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
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
    return kc_producer_send_ex(p, topic, partition, key, key_len, value, value_len, NULL, seq,
                               err);
}

static kc_status rejected(kc_producer *p, const char *topic, rd_kafka_resp_err_t e, kc_err *err)
{
    p->stats.failed++;
    p->stats.rejected++;
    if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        too_large_hint(p->rk, p->stats.last_error, sizeof p->stats.last_error);
    else
        snprintf(p->stats.last_error, sizeof p->stats.last_error, "%s", rd_kafka_err2str(e));
    return kc_err_set(err, KC_ERR_IO, "send to topic %s: %s", topic, p->stats.last_error);
}

kc_status kc_producer_send_ex(kc_producer *p, const char *topic, int32_t partition,
                              const void *key, size_t key_len, const void *value,
                              size_t value_len, const kc_send_extra *extra, uint64_t *seq,
                              kc_err *err)
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
    if (extra && extra->timestamp_ms < 0)
        return kc_err_set(err, KC_ERR_INVALID, "send to topic %s: timestamp: expected ms since "
                          "1970 >= 0", topic);
    rd_kafka_headers_t *hdrs = NULL;
    if (extra && extra->nheaders) {
        hdrs = rd_kafka_headers_new(extra->nheaders);
        for (size_t i = 0; i < extra->nheaders; i++)
            rd_kafka_header_add(hdrs, extra->headers[i].name, -1, extra->headers[i].value,
                                (ssize_t)extra->headers[i].value_len);
    }
    uint64_t s = p->next_seq;
    int64_t deadline = now_ms() + p->produce_timeout_ms;
    for (;;) {
        /* On success librdkafka owns hdrs; on failure they are still ours. */
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
            RD_KAFKA_V_TIMESTAMP(extra ? extra->timestamp_ms : 0), RD_KAFKA_V_HEADERS(hdrs),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)s), RD_KAFKA_V_END);
        if (!e)
            break;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || now_ms() >= deadline) {
            if (hdrs)
                rd_kafka_headers_destroy(hdrs);
            return rejected(p, topic, e, err);
        }
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

int kc_producer_queued(kc_producer *p)
{
    return rd_kafka_outq_len(p->rk);
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
    free(p->statistics);
    free(p);
}

/* ---- consumer ------------------------------------------------------------ */

struct kc_consumer {
    rd_kafka_t *rk;
    atomic_bool woken;   /* kc_consumer_wake: the current poll returns now */
    int report_eof;      /* enable.partition.eof: return eof records */
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
    kc_status st = kc_kafka_make_conf(use, KC_KAFKA_CONSUMER, &conf, err);
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
    const char *eof = kc_kafka_config_get(kconf, "enable.partition.eof");
    c->report_eof = eof && !strcasecmp(eof, "true");
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

/* The record's headers, pointing into m. */
static kc_status record_headers(kc_record *km, rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hdrs;
    if (m->err || rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return KC_OK;
    size_t n = rd_kafka_header_cnt(hdrs);
    if (!n)
        return KC_OK;
    km->headers = calloc(n, sizeof *km->headers);
    if (!km->headers)
        return KC_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        kc_header *h = &km->headers[i];
        if (rd_kafka_header_get_all(hdrs, i, &h->name, &h->value, &h->value_len))
            break;
        km->nheaders++;
    }
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
        int eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && c->report_eof && m->rkt;
        if (!m->err || eof) {
            kc_record *km = calloc(1, sizeof *km);
            if (!km || record_headers(km, m) != KC_OK) {
                free(km);
                rd_kafka_message_destroy(m);
                return kc_err_set(err, KC_ERR_NOMEM, "poll: out of memory");
            }
            km->eof = eof;
            km->topic = rd_kafka_topic_name(m->rkt);
            km->partition = m->partition;
            km->offset = m->offset;
            if (!eof) {
                km->key = m->key;
                km->key_len = m->key ? m->key_len : 0;
                km->value = m->payload;
                km->value_len = m->payload ? m->len : 0;
            }
            rd_kafka_timestamp_type_t tst;
            km->timestamp_ms = eof ? -1 : rd_kafka_message_timestamp(m, &tst);
            km->timestamp_type = eof || tst == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? KC_TS_NONE
                                 : tst == RD_KAFKA_TIMESTAMP_CREATE_TIME ? KC_TS_CREATE
                                 : KC_TS_LOG_APPEND;
            km->broker_id = rd_kafka_message_broker_id(m);
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
    free(m->headers);
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

/* The partition counts of n topics (0: the topic does not exist), in one
 * metadata request: librdkafka asks for every topic the handle knows when
 * given none, so each gets a handle for the time of the request. */
static kc_status partition_counts(rd_kafka_t *rk, const char *const *topics, size_t n,
                                  int timeout_ms, int *counts, kc_err *err)
{
    rd_kafka_topic_t **rkts = calloc(n ? n : 1, sizeof *rkts);
    if (!rkts)
        return kc_err_set(err, KC_ERR_NOMEM, "metadata: out of memory");
    kc_status st = KC_OK;
    for (size_t i = 0; i < n && st == KC_OK; i++) {
        counts[i] = 0;
        if (!(rkts[i] = rd_kafka_topic_new(rk, topics[i], NULL)))
            st = kc_err_set(err, KC_ERR_INVALID, "topic %s: %s", topics[i],
                            rd_kafka_err2str(rd_kafka_last_error()));
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = st == KC_OK && n ? rd_kafka_metadata(rk, 0, n == 1 ? rkts[0] : NULL,
                                                                 &md, timeout_ms)
                                             : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e)
        st = kc_err_set(err, KC_ERR_IO, "topic %s%s: metadata: %s", topics[0],
                        n > 1 ? " and others" : "", rd_kafka_err2str(e));
    for (int t = 0; md && t < md->topic_cnt; t++)
        for (size_t i = 0; i < n; i++)
            if (!md->topics[t].err && strcmp(md->topics[t].topic, topics[i]) == 0)
                counts[i] = md->topics[t].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    for (size_t i = 0; i < n; i++)
        if (rkts[i])
            rd_kafka_topic_destroy(rkts[i]);
    free(rkts);
    return st;
}

kc_status kc_consumer_partition_count(kc_consumer *c, const char *topic, int timeout_ms,
                                      int *count, kc_err *err)
{
    return partition_counts(c->rk, &topic, 1, timeout_ms, count, err);
}

kc_status kc_consumer_partition_counts(kc_consumer *c, const char *const *topics, size_t n,
                                       int timeout_ms, int *counts, kc_err *err)
{
    return partition_counts(c->rk, topics, n, timeout_ms, counts, err);
}

void kc_consumer_prepare_topic(kc_consumer *c, const char *topic)
{
    /* librdkafka parses the answer (and starts fetching the topic's
     * assigned partitions) when it comes, waited for or not */
    int count;
    (void)partition_counts(c->rk, &topic, 1, 1, &count, NULL);
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
    return kc_producer_prepare_topics(p, &topic, 1, timeout_ms);
}

kc_status kc_producer_prepare_topics(kc_producer *p, const char *const *topics, size_t n,
                                     int timeout_ms)
{
    int *counts = malloc((n ? n : 1) * sizeof *counts);
    kc_status st = counts ? partition_counts(p->rk, topics, n, timeout_ms, counts, NULL)
                          : KC_ERR_NOMEM;
    free(counts);
    return st;
}

kc_status kc_producer_partition_count(kc_producer *p, const char *topic, int timeout_ms,
                                      int *count, kc_err *err)
{
    return partition_counts(p->rk, &topic, 1, timeout_ms, count, err);
}

static rd_kafka_topic_partition_list_t *to_list(const kc_topic_partition *tps, size_t n)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)(n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        int64_t off = tps[i].offset;
        off = off == KC_OFFSET_STORED ? RD_KAFKA_OFFSET_INVALID
              : off == KC_OFFSET_BEGINNING ? RD_KAFKA_OFFSET_BEGINNING
              : off == KC_OFFSET_END ? RD_KAFKA_OFFSET_END : off;
        rd_kafka_topic_partition_list_add(list, tps[i].topic, tps[i].partition)->offset = off;
    }
    return list;
}

static int64_t from_rd_offset(int64_t off)
{
    return off >= 0 ? off : off == RD_KAFKA_OFFSET_BEGINNING ? KC_OFFSET_BEGINNING
           : off == RD_KAFKA_OFFSET_END ? KC_OFFSET_END : KC_OFFSET_STORED;
}

/* Copies the list's offsets back (same order as given) and reports the
 * first per-partition error. */
static kc_status from_list(rd_kafka_topic_partition_list_t *list, kc_topic_partition *tps,
                           size_t n, const char *what, kc_err *err)
{
    kc_status st = KC_OK;
    for (size_t i = 0; i < n && (int)i < list->cnt; i++) {
        rd_kafka_topic_partition_t *e = &list->elems[i];
        if (tps)
            tps[i].offset = from_rd_offset(e->offset);
        if (e->err && st == KC_OK)
            st = kc_err_set(err, KC_ERR_IO, "%s: %s[%d]: %s", what, e->topic, (int)e->partition,
                            rd_kafka_err2str(e->err));
    }
    return st;
}

static kc_status check_tps(const kc_topic_partition *tps, size_t n, const char *what,
                           int need_offset, kc_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!tps[i].topic || !kc_topic_name_valid(tps[i].topic) || tps[i].partition < 0)
            return kc_err_set(err, KC_ERR_INVALID, "%s: entry %zu: expected a topic and a "
                              "partition >= 0", what, i + 1);
        if (need_offset && tps[i].offset < 0)
            return kc_err_set(err, KC_ERR_INVALID, "%s: %s[%d]: expected an offset >= 0", what,
                              tps[i].topic, (int)tps[i].partition);
    }
    return KC_OK;
}

kc_status kc_producer_end_offsets(kc_producer *p, kc_topic_partition *tps, size_t n,
                                  int timeout_ms, kc_err *err)
{
    if (check_tps(tps, n, "end offsets", 0, err) != KC_OK)
        return KC_ERR_INVALID;
    /* one ListOffsets per broker: timestamp -1 asks for the latest offset */
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)(n ? n : 1));
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(list, tps[i].topic, tps[i].partition)->offset =
            RD_KAFKA_OFFSET_END;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(p->rk, list, timeout_ms);
    kc_topic_partition *got = calloc(n ? n : 1, sizeof *got);
    kc_status st = !got ? kc_err_set(err, KC_ERR_NOMEM, "end offsets: out of memory")
                   : e ? kc_err_set(err, KC_ERR_IO, "end offsets: %s", rd_kafka_err2str(e))
                       : from_list(list, got, n, "end offsets", err);
    for (size_t i = 0; st == KC_OK && i < n; i++)
        if (got[i].offset < 0)
            st = kc_err_set(err, KC_ERR_IO, "end offsets: %s[%d]: the broker gave none",
                            tps[i].topic, (int)tps[i].partition);
    for (size_t i = 0; st == KC_OK && i < n; i++)
        tps[i].offset = got[i].offset;
    free(got);
    rd_kafka_topic_partition_list_destroy(list);
    return st;
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        kc_log(KC_LOG_WARNING, LOGGER, "Asynchronous commit failed: %s", rd_kafka_err2str(e));
}

kc_status kc_consumer_commit_offsets(kc_consumer *c, const kc_topic_partition *tps, size_t n,
                                     int async, kc_err *err)
{
    if (check_tps(tps, n, "commit", 1, err) != KC_OK)
        return KC_ERR_INVALID;
    if (n == 0) {
        if (!async)
            return kc_consumer_commit(c, err);
        rd_kafka_commit_queue(c->rk, NULL, NULL, commit_cb, NULL);
        return KC_OK;
    }
    rd_kafka_topic_partition_list_t *list = to_list(tps, n);
    rd_kafka_resp_err_t e;
    if (async)
        e = rd_kafka_commit_queue(c->rk, list, NULL, commit_cb, NULL);
    else
        e = rd_kafka_commit(c->rk, list, 0);
    kc_status st = e ? kc_err_set(err, KC_ERR_IO, "commit: %s", rd_kafka_err2str(e))
                     : from_list(list, NULL, n, "commit", err);
    rd_kafka_topic_partition_list_destroy(list);
    return st;
}

kc_status kc_consumer_seek(kc_consumer *c, const kc_topic_partition *tps, size_t n,
                           int timeout_ms, kc_err *err)
{
    if (check_tps(tps, n, "seek", 0, err) != KC_OK)
        return KC_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (tps[i].offset == KC_OFFSET_STORED || tps[i].offset < KC_OFFSET_BEGINNING)
            return kc_err_set(err, KC_ERR_INVALID, "seek: %s[%d]: expected an offset >= 0, "
                              "beginning or end", tps[i].topic, (int)tps[i].partition);
    rd_kafka_topic_partition_list_t *list = to_list(tps, n);
    /* beginning and end are looked up now, as by kc_consumer_assign: left
     * to librdkafka, the look-up of a seek's logical offset can finish
     * after a later seek's and undo it */
    for (int i = 0; i < list->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &list->elems[i];
        int64_t lo, hi;
        if ((tp->offset == RD_KAFKA_OFFSET_BEGINNING || tp->offset == RD_KAFKA_OFFSET_END) &&
            rd_kafka_query_watermark_offsets(c->rk, tp->topic, tp->partition, &lo, &hi,
                                             timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR)
            tp->offset = tp->offset == RD_KAFKA_OFFSET_BEGINNING ? lo : hi;
    }
    rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, list, timeout_ms);
    kc_status st = KC_OK;
    if (e) {
        st = kc_err_set(err, KC_ERR_IO, "seek: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else {
        st = from_list(list, NULL, n, "seek (is the partition assigned?)", err);
    }
    rd_kafka_topic_partition_list_destroy(list);
    return st;
}

/* The list operations that read or set offsets: checked, run on a
 * librdkafka list, offsets copied back into tps when `out`. */
typedef enum { OP_TIMES, OP_PAUSE, OP_RESUME, OP_POSITION, OP_COMMITTED } list_op;

static kc_status list_call(kc_consumer *c, kc_topic_partition *tps, size_t n, list_op op,
                           int timeout_ms, kc_err *err)
{
    static const char *const names[] = {"offsets for times", "pause", "resume", "position",
                                        "committed"};
    const char *what = names[op];
    if (check_tps(tps, n, what, op == OP_TIMES, err) != KC_OK)
        return KC_ERR_INVALID;
    rd_kafka_topic_partition_list_t *list = to_list(tps, n);
    rd_kafka_resp_err_t e;
    switch (op) {
    case OP_TIMES: e = rd_kafka_offsets_for_times(c->rk, list, timeout_ms); break;
    case OP_PAUSE: e = rd_kafka_pause_partitions(c->rk, list); break;
    case OP_RESUME: e = rd_kafka_resume_partitions(c->rk, list); break;
    case OP_POSITION: e = rd_kafka_position(c->rk, list); break;
    default: e = rd_kafka_committed(c->rk, list, timeout_ms); break;
    }
    int out = op == OP_TIMES || op == OP_POSITION || op == OP_COMMITTED;
    kc_status st = e ? kc_err_set(err, KC_ERR_IO, "%s: %s", what, rd_kafka_err2str(e))
                     : from_list(list, out ? tps : NULL, n, what, err);
    rd_kafka_topic_partition_list_destroy(list);
    return st;
}

kc_status kc_consumer_offsets_for_times(kc_consumer *c, kc_topic_partition *tps, size_t n,
                                        int timeout_ms, kc_err *err)
{
    return list_call(c, tps, n, OP_TIMES, timeout_ms, err);
}

kc_status kc_consumer_pause(kc_consumer *c, const kc_topic_partition *tps, size_t n, int pause,
                            kc_err *err)
{
    /* not written to: only OP_TIMES/POSITION/COMMITTED copy offsets back */
    return list_call(c, (kc_topic_partition *)tps, n, pause ? OP_PAUSE : OP_RESUME, 0, err);
}

kc_status kc_consumer_position(kc_consumer *c, kc_topic_partition *tps, size_t n, kc_err *err)
{
    return list_call(c, tps, n, OP_POSITION, 0, err);
}

kc_status kc_consumer_committed(kc_consumer *c, kc_topic_partition *tps, size_t n,
                                int timeout_ms, kc_err *err)
{
    return list_call(c, tps, n, OP_COMMITTED, timeout_ms, err);
}

kc_status kc_consumer_assignment(kc_consumer *c, kc_topic_partition **out, size_t *n,
                                 kc_err *err)
{
    *out = NULL;
    *n = 0;
    rd_kafka_topic_partition_list_t *list = NULL;
    rd_kafka_resp_err_t e = rd_kafka_assignment(c->rk, &list);
    if (e)
        return kc_err_set(err, KC_ERR_IO, "assignment: %s", rd_kafka_err2str(e));
    kc_topic_partition *tps = calloc(list->cnt ? (size_t)list->cnt : 1, sizeof *tps);
    if (!tps) {
        rd_kafka_topic_partition_list_destroy(list);
        return kc_err_set(err, KC_ERR_NOMEM, "assignment: out of memory");
    }
    for (int i = 0; i < list->cnt; i++) {
        tps[i].topic = strdup(list->elems[i].topic);
        tps[i].partition = list->elems[i].partition;
        tps[i].offset = from_rd_offset(list->elems[i].offset);
        if (!tps[i].topic) {
            kc_topic_partitions_free(tps, (size_t)i);
            rd_kafka_topic_partition_list_destroy(list);
            return kc_err_set(err, KC_ERR_NOMEM, "assignment: out of memory");
        }
    }
    *n = (size_t)list->cnt;
    *out = tps;
    rd_kafka_topic_partition_list_destroy(list);
    return KC_OK;
}

void kc_topic_partitions_free(kc_topic_partition *tps, size_t n)
{
    if (!tps)
        return;
    for (size_t i = 0; i < n; i++)
        free((char *)tps[i].topic);
    free(tps);
}

static kc_status watermarks(rd_kafka_t *rk, const char *topic, int32_t partition, int timeout_ms,
                            int64_t *low, int64_t *high, kc_err *err)
{
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, partition, low, high,
                                                             timeout_ms);
    if (e)
        return kc_err_set(err, KC_ERR_IO, "watermarks of %s[%d]: %s", topic, (int)partition,
                          rd_kafka_err2str(e));
    return KC_OK;
}

kc_status kc_consumer_watermarks(kc_consumer *c, const char *topic, int32_t partition,
                                 int timeout_ms, int64_t *low, int64_t *high, kc_err *err)
{
    return watermarks(c->rk, topic, partition, timeout_ms, low, high, err);
}
