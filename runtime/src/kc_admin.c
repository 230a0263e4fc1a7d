#include "kc_admin.h"

#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>

#include "kc_kafka.h"
#include "kc_tunables.h"

struct kc_admin {
    rd_kafka_t *rk;
};

kc_status kc_admin_new(kc_admin **out, const kc_kafka_config *kconf, kc_err *err)
{
    *out = NULL;
    rd_kafka_conf_t *conf;
    if (kc_kafka_make_conf(kconf, KC_KAFKA_PRODUCER, &conf, err) != KC_OK)
        return kc_err_prefix(err, "admin: ");
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return kc_err_set(err, KC_ERR_INVALID, "admin: %s", errstr);
    }
    kc_admin *a = calloc(1, sizeof *a);
    if (!a) {
        rd_kafka_destroy(rk);
        return kc_err_set(err, KC_ERR_NOMEM, "admin: out of memory");
    }
    a->rk = rk;
    *out = a;
    return KC_OK;
}

void kc_admin_free(kc_admin *a)
{
    if (!a)
        return;
    rd_kafka_destroy(a->rk);
    free(a);
}

/* Appends "; topic: reason" to the message collected so far. */
static void add_failure(char *msg, size_t cap, const char *topic, const char *why)
{
    size_t len = strlen(msg);
    snprintf(msg + len, cap - len, "%s%s: %s", len ? "; " : "", topic, why);
}

kc_status kc_admin_create_topics(kc_admin *a, const kc_new_topic *topics, size_t n,
                                 int exist_ok, int timeout_ms, kc_err *err)
{
    if (n == 0)
        return KC_OK;
    char errstr[512];
    rd_kafka_NewTopic_t **nts = calloc(n, sizeof *nts);
    if (!nts)
        return kc_err_set(err, KC_ERR_NOMEM, "create topics: out of memory");
    kc_status st = KC_OK;
    size_t made = 0;
    for (; made < n && st == KC_OK; made++) {
        const kc_new_topic *t = &topics[made];
        if (!t->name || !kc_topic_name_valid(t->name) || t->partitions < 1) {
            st = kc_err_set(err, KC_ERR_INVALID, "create topics: entry %zu: expected a valid "
                            "topic name and partitions >= 1", made + 1);
            break;
        }
        nts[made] = rd_kafka_NewTopic_new(t->name, t->partitions, t->replication, errstr,
                                          sizeof errstr);
        if (!nts[made]) {
            st = kc_err_set(err, KC_ERR_INVALID, "create topic %s: %s", t->name, errstr);
            break;
        }
        for (size_t c = 0; c < t->nconfigs && st == KC_OK; c++)
            if (rd_kafka_NewTopic_set_config(nts[made], t->configs[2 * c],
                                             t->configs[2 * c + 1]))
                st = kc_err_set(err, KC_ERR_INVALID, "create topic %s: config %s: rejected",
                                t->name, t->configs[2 * c]);
    }
    if (st == KC_OK) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(a->rk);
        rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(a->rk,
                                                                  RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, NULL, 0);
        rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, NULL, 0);
        rd_kafka_CreateTopics(a->rk, nts, n, opts, q);
        /* The request times out by itself; a little more for the answer. */
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
        if (!ev) {
            st = kc_err_set(err, KC_ERR_IO, "create topics: no answer within %d ms", timeout_ms);
        } else if (rd_kafka_event_error(ev)) {
            st = kc_err_set(err, KC_ERR_IO, "create topics: %s", rd_kafka_event_error_string(ev));
        } else {
            const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
            size_t cnt = 0;
            const rd_kafka_topic_result_t **trs = rd_kafka_CreateTopics_result_topics(res, &cnt);
            char msg[400] = "";
            for (size_t i = 0; i < cnt; i++) {
                rd_kafka_resp_err_t e = rd_kafka_topic_result_error(trs[i]);
                if (!e || (exist_ok && e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS))
                    continue;
                const char *why = rd_kafka_topic_result_error_string(trs[i]);
                add_failure(msg, sizeof msg, rd_kafka_topic_result_name(trs[i]),
                            why && *why ? why : rd_kafka_err2str(e));
            }
            if (msg[0])
                st = kc_err_set(err, KC_ERR_IO, "create topics: %s", msg);
        }
        if (ev)
            rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);
    }
    for (size_t i = 0; i < n; i++)
        if (nts[i])
            rd_kafka_NewTopic_destroy(nts[i]);
    free(nts);
    return st;
}

kc_status kc_admin_metadata(kc_admin *a, const char *topic, int timeout_ms,
                            const struct rd_kafka_metadata **out, int *controller_id,
                            kc_err *err)
{
    *out = NULL;
    rd_kafka_topic_t *rkt = NULL;
    if (topic && !(rkt = rd_kafka_topic_new(a->rk, topic, NULL)))
        return kc_err_set(err, KC_ERR_INVALID, "metadata: topic %s: %s", topic,
                          rd_kafka_err2str(rd_kafka_last_error()));
    rd_kafka_resp_err_t e = rd_kafka_metadata(a->rk, rkt ? 0 : 1, rkt, out, timeout_ms);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (e)
        return kc_err_set(err, KC_ERR_IO, "metadata%s%s: %s", topic ? " of " : "",
                          topic ? topic : "", rd_kafka_err2str(e));
    *controller_id = rd_kafka_controllerid(a->rk, 0);
    return KC_OK;
}

void kc_admin_metadata_free(const struct rd_kafka_metadata *md)
{
    if (md)
        rd_kafka_metadata_destroy(md);
}

void kc_admin_show_properties(FILE *out)
{
    rd_kafka_conf_properties_show(out);
}
