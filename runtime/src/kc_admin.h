/* kc_admin.h — cluster administration through librdkafka's Admin API:
 * creating topics and reading the cluster's metadata (kcat -L).
 *
 * An admin handle is a librdkafka client of its own, configured like the
 * producer (kc_kafka_config; the embedded broker without bootstrap.servers). */
#ifndef KC_ADMIN_H
#define KC_ADMIN_H

#include <stddef.h>
#include <stdio.h>

#include "kc_err.h"
#include "kc_kafka_options.h"

typedef struct kc_admin kc_admin;

kc_status kc_admin_new(kc_admin **out, const kc_kafka_config *conf, kc_err *err);
void kc_admin_free(kc_admin *a);

typedef struct kc_new_topic {
    const char *name;
    int partitions;            /* >= 1 */
    int replication;           /* >= 1, or -1 for the broker's default */
    const char *const *configs;   /* name, value, name, value, ... */
    size_t nconfigs;              /* number of pairs */
} kc_new_topic;

/* Creates topics; one that exists already is not an error when
 * exist_ok. The message names each topic that failed and why. */
kc_status kc_admin_create_topics(kc_admin *a, const kc_new_topic *topics, size_t n,
                                 int exist_ok, int timeout_ms, kc_err *err);

/* The cluster's metadata (of one topic, or all when topic is NULL). Read
 * it as librdkafka's struct rd_kafka_metadata; free with
 * kc_admin_metadata_free. *controller_id is -1 when unknown. */
struct rd_kafka_metadata;
kc_status kc_admin_metadata(kc_admin *a, const char *topic, int timeout_ms,
                            const struct rd_kafka_metadata **out, int *controller_id,
                            kc_err *err);
void kc_admin_metadata_free(const struct rd_kafka_metadata *md);

/* librdkafka's configuration properties, as a table (kcat -X list). */
void kc_admin_show_properties(FILE *out);

#endif
