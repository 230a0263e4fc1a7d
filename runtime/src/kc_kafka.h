/* kc_kafka.h — librdkafka producer and consumer, as the runtime uses them.
 *
 * Both take a kc_kafka_config (librdkafka properties, as built by
 * kc_kafka_config_set or kc_store_kafka_config). With
 * no bootstrap.servers configured they use the process's embedded broker
 * (kc_broker_embedded); consumers there default to fetch.wait.max.ms=50,
 * since the mock broker holds an empty fetch for that long even when data
 * arrives meanwhile (500 ms by default). librdkafka's own log lines go through kc_log as
 * logger "kafkacrypto.rdkafka". A handle is used by one thread at a time. */
#ifndef KC_KAFKA_H
#define KC_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "kc_err.h"
#include "kc_kafka_options.h"

struct rd_kafka_conf_s;
/* Sends librdkafka's log and error callbacks of `conf` to kc_log. */
void kc_kafka_route_logs(struct rd_kafka_conf_s *conf);
/* librdkafka's configuration from ours (for kc_admin): the embedded broker
 * when no bootstrap.servers is set, logs routed. */
kc_status kc_kafka_make_conf(const kc_kafka_config *in, kc_kafka_use use,
                             struct rd_kafka_conf_s **out, kc_err *err);

/* ---- producer ------------------------------------------------------------- */

typedef struct kc_producer kc_producer;

#define KC_PARTITION_ANY (-1)

typedef struct kc_delivery {
    uint64_t seq;        /* as returned by kc_producer_send */
    char *topic;
    int32_t partition;
    int64_t offset;      /* -1 when failed */
    kc_status status;    /* KC_OK, or why delivery failed */
    char error[160];     /* librdkafka's reason when failed */
} kc_delivery;

/* failed counts deliveries that failed and sends refused at once (too
 * large, unknown partition, ...); rejected counts only the latter. */
typedef struct kc_producer_stats {
    uint64_t sent, delivered, failed, rejected;
    char last_error[160];
} kc_producer_stats;

/* A Kafka record header. Headers travel in plaintext; names repeat freely.
 * value NULL is a null header value. */
typedef struct kc_header {
    const char *name;
    const void *value;
    size_t value_len;
} kc_header;

/* What kc_producer_send_ex takes beyond kc_producer_send. */
typedef struct kc_send_extra {
    const kc_header *headers;
    size_t nheaders;
    int64_t timestamp_ms;   /* 0: now */
} kc_send_extra;

/* keep_reports: queue a kc_delivery per message for kc_producer_next_delivery
 * (otherwise only counted, and failures logged as WARNING). */
kc_status kc_producer_new(kc_producer **out, const kc_kafka_config *conf, int keep_reports,
                          kc_err *err);

/* Queues one message. key/value NULL means a Kafka null (not an empty
 * string). partition KC_PARTITION_ANY lets librdkafka's partitioner choose.
 * Waits up to produce_timeout when librdkafka's queue is full. *seq (may be
 * NULL) receives the number identifying the message in delivery reports. */
kc_status kc_producer_send(kc_producer *p, const char *topic, int32_t partition,
                           const void *key, size_t key_len,
                           const void *value, size_t value_len, uint64_t *seq, kc_err *err);
/* The same with headers and a timestamp (extra may be NULL). A message over
 * message.max.bytes fails naming that setting. */
kc_status kc_producer_send_ex(kc_producer *p, const char *topic, int32_t partition,
                              const void *key, size_t key_len, const void *value,
                              size_t value_len, const kc_send_extra *extra, uint64_t *seq,
                              kc_err *err);

/* Serves delivery reports for up to timeout_ms. */
void kc_producer_poll(kc_producer *p, int timeout_ms);

/* Messages queued and not yet delivered or failed. */
int kc_producer_queued(kc_producer *p);

/* librdkafka's statistics JSON (statistics.interval.ms > 0), the latest
 * emitted, or NULL when none came yet. Copy before the next poll. */
const char *kc_producer_statistics(kc_producer *p);

/* Waits until every queued message is delivered or failed. KC_ERR_IO if
 * some are still in flight after timeout_ms, or — when reports are not
 * kept — if any failed since the previous flush (the message says how many
 * and why): a failure is never silent. */
kc_status kc_producer_flush(kc_producer *p, int timeout_ms, kc_err *err);

/* Takes the oldest queued delivery report; 0 when there is none. Free
 * with kc_delivery_clear. */
int kc_producer_next_delivery(kc_producer *p, kc_delivery *out);
void kc_delivery_clear(kc_delivery *d);

void kc_producer_get_stats(const kc_producer *p, kc_producer_stats *out);

/* Fetches the metadata of a topic ahead of the first send to it, which
 * would otherwise wait for it (about a second). */
kc_status kc_producer_prepare_topic(kc_producer *p, const char *topic, int timeout_ms);
/* The same for n topics, in one metadata request. */
kc_status kc_producer_prepare_topics(kc_producer *p, const char *const *topics, size_t n,
                                     int timeout_ms);
/* Flushes (up to timeout_ms) and frees. Messages still undelivered then
 * are reported by a WARNING. NULL is fine. */
void kc_producer_close(kc_producer *p, int timeout_ms);

/* ---- consumer ------------------------------------------------------------- */

typedef struct kc_consumer kc_consumer;

#define KC_OFFSET_BEGINNING (-2)
#define KC_OFFSET_END (-1)
#define KC_OFFSET_STORED (-1000)

#define KC_TS_NONE 0
#define KC_TS_CREATE 1
#define KC_TS_LOG_APPEND 2  /* the group's committed offset, else auto.offset.reset */

typedef struct kc_topic_partition {
    const char *topic;
    int32_t partition;
    int64_t offset;   /* >= 0, or one of KC_OFFSET_* */
} kc_topic_partition;

/* The look-ups below are answered at once through a producer's
 * connections. On a consumer's, a broker answers them only after the
 * consumer's fetch in progress there (up to fetch.wait.max.ms each): it
 * serves a connection's requests in order. */
/* The number of partitions of topic; 0 when it does not exist (yet). */
kc_status kc_producer_partition_count(kc_producer *p, const char *topic, int timeout_ms,
                                      int *count, kc_err *err);
/* Sets each entry's offset to its partition's current end (the next
 * offset), in one request per broker; on failure tps is unchanged. */
kc_status kc_producer_end_offsets(kc_producer *p, kc_topic_partition *tps, size_t n,
                                  int timeout_ms, kc_err *err);

typedef struct kc_record {
    int eof;               /* 1: an end-of-partition event (no key, value,
                            * headers); offset is the partition's end */
    const char *topic;
    int32_t partition;
    int64_t offset;
    const uint8_t *key;    /* NULL for a Kafka null key */
    size_t key_len;
    const uint8_t *value;  /* NULL for a Kafka null value */
    size_t value_len;
    int64_t timestamp_ms;  /* -1 when the broker gave none */
    int timestamp_type;    /* KC_TS_* */
    int32_t broker_id;     /* the broker it came from, -1 if unknown */
    kc_header *headers;    /* point into the message */
    size_t nheaders;
    void *rkmessage_;      /* owned librdkafka message */
} kc_record;

/* With enable.partition.eof=true, kc_consumer_poll also returns an eof
 * record each time a partition's end is reached.
 * Without group.id the consumer gets a private one ("kafkacrypto-anon-...")
 * and commits nothing, like kafka-python with group_id=None. */
kc_status kc_consumer_new(kc_consumer **out, const kc_kafka_config *conf, kc_err *err);

/* Group subscription to topics; names starting with '^' are regular
 * expressions (librdkafka syntax). Replaces any earlier subscription. */
kc_status kc_consumer_subscribe(kc_consumer *c, const char *const *topics, size_t count,
                                kc_err *err);

/* Manual assignment (no group rebalancing). Replaces any earlier one.
 * KC_OFFSET_END is resolved now (the partition's current end), so every
 * message produced after this call returns is received. */
kc_status kc_consumer_assign(kc_consumer *c, const kc_topic_partition *tps, size_t count,
                             kc_err *err);

/* Waits up to timeout_ms for a message: *out is NULL on timeout. Transient
 * errors (a broker going away, an unknown topic) are logged and skipped;
 * fatal ones are returned. Free a record with kc_record_free. */
kc_status kc_consumer_poll(kc_consumer *c, int timeout_ms, kc_record **out, kc_err *err);
void kc_record_free(kc_record *m);

/* The number of partitions of topic in the cluster's metadata; 0 when the
 * topic does not exist (yet). */
kc_status kc_consumer_partition_count(kc_consumer *c, const char *topic, int timeout_ms,
                                      int *count, kc_err *err);
/* The same for n topics in one metadata request (each look-up waits
 * behind the consumer's pending fetch, see kc_producer_end_offsets). */
kc_status kc_consumer_partition_counts(kc_consumer *c, const char *const *topics, size_t n,
                                       int timeout_ms, int *counts, kc_err *err);
/* Asks for the topic's metadata without waiting for the answer: a topic
 * assigned before its metadata is known is otherwise looked up only about
 * a second later (librdkafka's scan of unknown topics). */
void kc_consumer_prepare_topic(kc_consumer *c, const char *topic);
/* From another thread: makes a kc_consumer_poll in progress return now
 * (without a message). */
void kc_consumer_wake(kc_consumer *c);
/* Marks r as processed for the next commit, for a consumer configured
 * with enable.auto.offset.store=false (whose poll marks nothing). */
kc_status kc_consumer_store_offset(kc_consumer *c, const kc_record *r, kc_err *err);
/* Synchronously commits the offsets of the messages polled so far (group
 * subscriptions). Nothing to commit is not an error. */
kc_status kc_consumer_commit(kc_consumer *c, kc_err *err);
/* Commits the given offsets (the next offset to read, >= 0), synchronously
 * or asynchronously (errors of an asynchronous commit are logged). */
kc_status kc_consumer_commit_offsets(kc_consumer *c, const kc_topic_partition *tps, size_t n,
                                     int async, kc_err *err);
/* Moves the read position of assigned partitions: offset >= 0,
 * KC_OFFSET_BEGINNING or KC_OFFSET_END. */
kc_status kc_consumer_seek(kc_consumer *c, const kc_topic_partition *tps, size_t n,
                           int timeout_ms, kc_err *err);
/* The earliest offset whose timestamp is >= each entry's offset (taken as
 * ms since 1970), in place; KC_OFFSET_END where there is none. */
kc_status kc_consumer_offsets_for_times(kc_consumer *c, kc_topic_partition *tps, size_t n,
                                        int timeout_ms, kc_err *err);
kc_status kc_consumer_pause(kc_consumer *c, const kc_topic_partition *tps, size_t n,
                            int pause, kc_err *err);
/* Fill each entry's offset in place: the next offset to read
 * (KC_OFFSET_STORED when unknown), or the group's committed one. */
kc_status kc_consumer_position(kc_consumer *c, kc_topic_partition *tps, size_t n, kc_err *err);
kc_status kc_consumer_committed(kc_consumer *c, kc_topic_partition *tps, size_t n,
                                int timeout_ms, kc_err *err);
/* The partitions assigned now; free with kc_topic_partitions_free. */
kc_status kc_consumer_assignment(kc_consumer *c, kc_topic_partition **out, size_t *n,
                                 kc_err *err);
void kc_topic_partitions_free(kc_topic_partition *tps, size_t n);
/* The low and high watermarks of a partition (high = the next offset). */
kc_status kc_consumer_watermarks(kc_consumer *c, const char *topic, int32_t partition,
                                 int timeout_ms, int64_t *low, int64_t *high, kc_err *err);

/* Leaves the group (committing if auto-commit is on) and frees. NULL is fine. */
void kc_consumer_close(kc_consumer *c);

#endif
