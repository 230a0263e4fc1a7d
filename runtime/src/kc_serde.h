/* kc_serde.h — the data-path state of a node and its serializers (spec §4,
 * §7.4.1, §7.10); the public half is in kafkacrypto.h.
 *
 * State, all behind one mutex:
 *   per root: the current producer generation, every producer record still
 *   kept (current and older ones, in creation order; records loaded from
 *   `oldkeys` have no generators and never encrypt), the consumer keys per
 *   key index, and the key indices the deserializers wait for (upstream's
 *   cwaits, bounded: kc_waits.h).
 *
 * Nonce rule — a (per-root secret, salt) pair never encrypts twice:
 *   - the per-root secret S is derived from the ratchet's current pair,
 *     whose index is used by at most one process run: the ratchet writes
 *     its advance durably before handing the pair out, and its file is
 *     locked against concurrent openers;
 *   - within a run there is one producer record per (root, key index); its
 *     two generators (ctx "key" / "value", so key and value never share a
 *     derivation) own salt counters that only move forward, under the lock,
 *     one step per message; a record is found again rather than recreated
 *     as long as it exists;
 *   - a record is only dropped (pruning) after the ratchet has advanced, so
 *     its index cannot be derived again in this run;
 *   - if the ratchet's advance was lost anyway (a restored seed file), the
 *     index reappears among the records loaded from `oldkeys`; those have no
 *     generators, and meeting one makes us advance the ratchet and derive
 *     again (§7.4.1 with project decision B4). */
#ifndef KC_SERDE_H
#define KC_SERDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafkacrypto.h"
#include "kc_any.h"
#include "kc_keygen.h"

/* Reference counting (message objects that may retry hold one). */
kc_serde *kc_serde_ref(kc_serde *s);
void kc_serde_unref(kc_serde *s);

/* Cuts the serde from its owner (a closing node), whose ratchet, hooks and
 * persist_fn it must not use any more: serializer objects may outlive the
 * node. Afterwards serializing fails with KC_ERR_STATE ("the node of this
 * serializer is closed"), and deserializing uses the keys already held
 * without waiting for others. */
void kc_serde_detach(kc_serde *s);

/* The serializer on a dynamically typed input, as upstream: NONE gives
 * null (*is_null set), BYTES is encrypted, MESSAGE follows
 * kc_serde_serialize_message, anything else is refused with "Passed value
 * is not bytes or a KafkaCryptoMessage" without touching any counter. */
kc_status kc_serde_serialize_any(kc_serde *s, kc_kind kind, const char *topic,
                                 const kc_any *value, kc_buf *out, bool *is_null, kc_err *err);

/* The root of a topic under the serde's rule. */
kc_status kc_serde_root_of(const kc_serde *s, const char *topic, const char **root,
                           size_t *root_len, kc_err *err);

/* Producer records of root in creation order, under the lock (for answering
 * key requests). can_encrypt is false for records loaded from oldkeys. */
typedef void (*kc_pgen_fn)(void *ctx, const kc_keyidx *ki,
                           const uint8_t secret[KC_SECRET_BYTES], double birth,
                           bool can_encrypt);
void kc_serde_foreach_pgen(kc_serde *s, const char *root, kc_pgen_fn fn, void *ctx);

/* Every root with at least one producer record (current or from oldkeys),
 * under the lock: the roots whose requests a node answers (spec D2). */
typedef void (*kc_root_name_fn)(void *ctx, const char *root);
void kc_serde_foreach_pgen_root(kc_serde *s, kc_root_name_fn fn, void *ctx);

/* The records of root whose index is in wanted, each once, in creation
 * order, under the lock: what a key request for wanted is answered with
 * (§7.4.2), found through an index rather than a walk over every record.
 * KC_ERR_NOMEM leaves fn uncalled. */
kc_status kc_serde_find_pgens(kc_serde *s, const char *root, const kc_keyidx *wanted,
                              size_t nwanted, kc_pgen_fn fn, void *ctx);

/* What a serde counts per root (metrics). Undecryptable outcomes count a
 * message's first try only: one decrypted on a retry counts in both. */
typedef enum kc_serde_count {
    KC_SERDE_ENCRYPTED,
    KC_SERDE_DECRYPTED,
    KC_SERDE_NO_KEY,           /* undecryptable: its key has not arrived (yet) */
    KC_SERDE_INVALID,          /* undecryptable: the key is here but the bytes do not open */
    KC_SERDE_NOT_KAFKACRYPTO,  /* undecryptable: not a kafkacrypto message at all */
    KC_SERDE_HELD,             /* a consumer's hold (hold_undecryptable) took it */
    KC_SERDE_RELEASED,         /* ... and delivered it decrypted */
    KC_SERDE_EXPIRED,          /* ... or undecrypted when the hold ran out */
    KC_SERDE_NCOUNTS
} kc_serde_count;

typedef struct kc_serde_root_stats {
    const char *root;
    uint64_t count[KC_SERDE_NCOUNTS];
    size_t producer_keys;      /* this run's and oldkeys' */
    size_t consumer_keys;
} kc_serde_root_stats;

typedef void (*kc_serde_stats_fn)(void *ctx, const kc_serde_root_stats *st);
/* Every root the serde has seen, in order, under the lock. */
void kc_serde_foreach_root_stats(kc_serde *s, kc_serde_stats_fn fn, void *ctx);
/* A consumer's hold reports HELD, RELEASED or EXPIRED for a message of topic. */
void kc_serde_count_hold(kc_serde *s, const char *topic, kc_serde_count what);

/* Bounds, for the calling thread, the time its deserializations still
 * spend sleeping for missing keys, in total across roots: at most `seconds`
 * from now (a negative value: no bound, as by default). A message whose
 * key has not come when the bound is reached is returned undecrypted (its
 * key is still asked for). A consumer's poll sets it for its own duration,
 * so one call never waits for key after key, root after root. */
void kc_serde_limit_key_wait(double seconds);

/* Deserializing a message again (a retry): as kc_serde_deserialize, but a
 * key index not waited for is not added (kc_waits.h). */
kc_status kc_serde_deserialize_again(kc_serde *s, kc_kind kind, const char *topic,
                                     const uint8_t *data, size_t len, kc_message *out,
                                     kc_err *err);

/* What a key request for root asks for: at most cap key indices the
 * deserializers wait for, best-ranked first (kc_waits.h, spec D4). */
size_t kc_serde_pick_waits(kc_serde *s, const char *root, kc_keyidx *kis, size_t cap);
/* A request round that listed kis ended without any reply. */
void kc_serde_waits_unanswered(kc_serde *s, const char *root, const kc_keyidx *kis, size_t n);

typedef struct kc_serde_waits_stats {
    size_t waiting;      /* indices held, given up ones included */
    size_t bytes;        /* memory they take (at most KC_WAITS_MAX_BYTES) */
    uint64_t given_up;   /* totals since the start: asked KC_WAITS_ROUNDS rounds, no answer */
    uint64_t replaced;   /* ... replaced by newer ones before any answer */
} kc_serde_waits_stats;
/* For root, or summed over every root when root is NULL. */
void kc_serde_wait_stats(kc_serde *s, const char *root, kc_serde_waits_stats *out);

/* The key index and counter the next serialization of (root, kind) will
 * use; KC_ERR_NOTFOUND when root has no current generation. */
kc_status kc_serde_producer_state(kc_serde *s, const char *root, kc_kind kind,
                                  kc_keyidx *ki, uint8_t salt[KC_KEYGEN_SALTBYTES]);

#endif
