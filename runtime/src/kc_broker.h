/* kc_broker.h — a Kafka broker inside this process: librdkafka's mock
 * cluster (one broker on 127.0.0.1).
 *
 * It speaks the real Kafka protocol over TCP, so any client can use it, but
 * it is a test broker: no compaction, about 5 MiB kept per partition, no
 * TLS/SASL, CreateTopics unsupported (create topics with
 * kc_broker_create_topic), topics auto-created on first use with 4
 * partitions, a new consumer group's first join takes 3 s, and a group that
 * has just emptied rejoins only after session.timeout.ms, and a fetch that
 * finds no data is answered after fetch.wait.max.ms even if data arrives
 * meanwhile (so consumers want a short fetch.wait.max.ms on it).
 *
 * The mock always binds an ephemeral port. kc_broker_listen adds a fixed
 * port that relays connections to it: clients bootstrap through the fixed
 * port and then connect to the advertised (ephemeral) address, both on
 * loopback. */
#ifndef KC_BROKER_H
#define KC_BROKER_H

#include "kc_err.h"
#include "kc_tunables.h"

typedef struct kc_broker kc_broker;

kc_status kc_broker_start(kc_broker **out, kc_err *err);
/* Stops the relay, then the cluster; clients still connected see it go away. */
void kc_broker_stop(kc_broker *broker);

/* "127.0.0.1:PORT" of the broker itself (the advertised address). */
const char *kc_broker_bootstrap(const kc_broker *broker);

/* Opens 127.0.0.1:port (0 = any free port) as an extra bootstrap address
 * relayed to the broker; *bound_port receives the port. One per broker. */
kc_status kc_broker_listen(kc_broker *broker, int port, int *bound_port, kc_err *err);

/* Creates a topic with `partitions` partitions. A topic that exists already
 * is fine (its partition count is left as it is). */
kc_status kc_broker_create_topic(kc_broker *broker, const char *topic, int partitions,
                                 kc_err *err);

/* Creates, with one partition each, the management topics (chains,
 * allowlist, denylist) and, when root is not NULL, the key-passing topics
 * of that root (root + each suffix). Upstream reads only partition 0 of
 * these; one partition keeps every message there. */
kc_status kc_broker_create_key_topics(kc_broker *broker, const kc_tunables *tunables,
                                      const char *root, kc_err *err);

/* The process's embedded broker, started on first use with its management
 * topics created. It lives until kc_broker_embedded_stop (the host calls it
 * at exit), so that data outlives the clients that wrote it. Thread-safe. */
kc_status kc_broker_embedded(kc_broker **out, kc_err *err);
/* NULL when none was started. */
kc_broker *kc_broker_embedded_get(void);
void kc_broker_embedded_stop(void);

#endif
