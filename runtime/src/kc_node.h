/* kc_node.h — a running kafkacrypto node: upstream's KafkaCrypto object
 * (spec §7, §11.3).
 *
 * Opening a node reads its three files (NODE.config, NODE.crypto,
 * NODE.seed), builds the data path (kc_serde) and the key exchange
 * (kc_exchange), and starts the management thread with its own librdkafka
 * producer and assign-based consumer for the key-passing topics:
 *
 *   <root>.reqs   read by producers: answered with <root>.keys replies
 *   <root>.keys   read by consumers: keys for the deserializers
 *   <root>.subs   written by consumers (controllers read it)
 *   chains, allowlist, denylist   read by every node
 *
 * Key-exchange messages are written to partition 0 (upstream reads only
 * that one) and read from every partition of a key topic (upstream's
 * partitioner may have put them anywhere). On the embedded broker the key
 * topics are created with one partition.
 *
 * Durability: a new producer key is written (wrapped, as `oldkeys`) to the
 * node config before any serializer of the node's serde returns the first
 * message encrypted with it (kc_serde_config.persist_fn), so a crash never
 * loses a key a consumer could still need. close() stops the thread,
 * saves, flushes and closes the files. */
#ifndef KC_NODE_H
#define KC_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "kafkacrypto.h"
#include "kc_exchange.h"
#include "kc_kafka.h"
#include "kc_root_counters.h"
#include "kc_serde.h"
#include "kc_tunables.h"

#define KC_NODE_LOGGER "kafkacrypto.crypto"
/* Key request rounds for a root, each unanswered for crypto_sub_interval,
 * after which a consumer says, once, what it did and what to check. */
#define KC_NODE_STALL_ROUNDS 2
/* s: a stalled root or an expiring chain is said again daily */
#define KC_NODE_REPEAT_WARNING 86400.0

typedef struct kc_node kc_node;

typedef struct kc_node_options {
    const char *config_path;   /* NODE.config; NULL: "<node_id>.config" */
    const char *node_id;       /* NULL: the file's node_id */
    kc_store *store;           /* an open node store to use instead (borrowed) */
    /* Tunables set by the operator for this run (settings file, command
     * line); the node config fills in what they leave at their defaults.
     * NULL: defaults + node config. */
    const kc_tunables *tunables;
    /* librdkafka properties of the management clients, applied over the
     * node config's get_kafka_config(use, "crypto") (these win). */
    const kc_kafka_config *producer_conf;
    const kc_kafka_config *consumer_conf;
    /* A custom root rule for the serializers (NULL: the separator). */
    kc_root_fn root_fn;
    void *root_ctx;
    const uint8_t *escrow_pk;  /* opt-in ratchet escrow (spec §3.4) */
    /* A key-exchange variant (kc_exchange.h) composing requests and replies
     * instead of the protocol of spec §7, opened once the node's keys and
     * exchange exist and freed before them; NULL: the protocol. */
    kc_exchange_variant_open_fn open_variant;
    void *variant_ctx;
    bool allowlist_topic;      /* apply allowlist topic messages (B3) */
    bool denylist_topic;
    bool trust_temporary_rot;  /* new config files trust upstream's temporary root */
    int max_key_wait_intervals; /* deserializer wait for later misses (B7) */
    double key_wait_interval;  /* s, default 1 */
    /* Asked before answering a key request and before using a key reply
     * (policies: kc_policy_exchange_check); it can only refuse. The caller
     * keeps check_ctx alive until kc_node_close returns. NULL: no check. */
    kc_exchange_check_fn check;
    void *check_ctx;
    double (*now_fn)(void *ctx); /* tests: a pinned clock */
    void *now_ctx;
} kc_node_options;

void kc_node_options_init(kc_node_options *o);

KC_MUST_CHECK kc_status kc_node_open(kc_node **out, const kc_node_options *o, kc_err *err);
/* Stops the management thread, saves the producer keys, closes every file
 * and client. NULL is fine. */
void kc_node_close(kc_node *n);

const char *kc_node_id(const kc_node *n);
kc_serde *kc_node_serde(kc_node *n);
kc_exchange *kc_node_exchange(kc_node *n);
kc_store *kc_node_store(kc_node *n);
/* The node's identity keys (for handles to them: kc_lua_crypto.h). */
kc_cryptokey *kc_node_cryptokey(kc_node *n);
const kc_tunables *kc_node_tunables(const kc_node *n);

/* Writes the producer keys now if new ones exist (serializers and the
 * management loop do it too). */
kc_status kc_node_persist(kc_node *n, kc_err *err);

typedef struct kc_node_stats {
    uint64_t requests_sent;    /* request rounds (each to .subs, maybe .reqs) */
    uint64_t replies_sent;     /* key replies written to .keys */
    uint64_t replies_sent_again; /* second copies of them (D3) */
    uint64_t keys_received;    /* data keys delivered to the deserializers */
    uint64_t refused;          /* key-passing messages refused (invalid, not ours, replayed) */
    uint64_t chains_adopted;
    uint64_t list_entries_added;
    /* D4, over every root (kc_waits.h): key indices asked for in
     * KC_WAITS_ROUNDS rounds without an answer; dropped for newer ones
     * before any answer (more than KC_WAITS_MAX waiting) */
    uint64_t key_indices_given_up;
    uint64_t key_indices_replaced;
} kc_node_stats;

void kc_node_get_stats(kc_node *n, kc_node_stats *out);

/* Per root the key exchange met: its counters (kc_root_counters.h) and
 * how long its keys have been asked for without an answer (0: not
 * waiting). Called under the node's lock. */
typedef void (*kc_node_root_fn)(void *ctx, const kc_root_counters *c, double unanswered_for);
void kc_node_foreach_root(kc_node *n, kc_node_root_fn fn, void *ctx);

#endif
