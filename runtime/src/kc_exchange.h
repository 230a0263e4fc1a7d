/* kc_exchange.h — the key-exchange protocol (spec §7.3–§7.9, §7.12, §8.1):
 * upstream's CryptoExchange.
 *
 *   consumer  signed_epks(root)            -> request(s) for <root>.subs/.reqs
 *   producer  encrypt_keys(keys, request)  -> reply(s) for <root>.keys
 *   consumer  decrypt_keys(reply)          -> (key index, secret) pairs
 *   controller reencrypt_request(request)  -> the request re-signed for .reqs
 *
 * plus the node's own chains (§6.12) and the allowlist/denylist topics
 * (§7.12). Secrets stay in the cryptokey backend; delivered data keys are
 * returned in wiped, locked memory.
 *
 * Everything that arrives from Kafka is untrusted: a malformed, expired,
 * wrongly signed, wrong-topic, wrong-usage or replayed input is refused with
 * one log line and changes nothing (no random0 consumed, no ephemeral
 * secret dropped, no list or chain modified).
 *
 * Deliberate differences from upstream (spec Appendix B):
 *  - B2: a node adopts a new own chain only if it does not expire earlier
 *    than the current one (upstream compares the first byte of each item).
 *  - B3: allowlist/denylist topic messages are applied (upstream's are inert
 *    whenever the config has those sections); each can be switched off.
 *  - B5: a delivered key that is not 32 bytes is ignored with a WARNING.
 *  - B8: every candidate shared secret is tried on the original ciphertext.
 *  - Outstanding random0 values are bounded per root (the oldest is
 *    dropped), and so are the keys one reply may carry. */
#ifndef KC_EXCHANGE_H
#define KC_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafkacrypto.h"
#include "kc_buf.h"
#include "kc_chain.h"
#include "kc_cryptokey.h"
#include "kc_err.h"

#define KC_EXCHANGE_LOGGER "kafkacrypto.cryptoexchange"
#define KC_EXCHANGE_MAXAGE 86400.0
#define KC_EXCHANGE_MAX_RANDOMS 64   /* outstanding requests per root */
#define KC_EXCHANGE_MAX_KEYS 256     /* key indices per request or reply */

typedef struct kc_exchange kc_exchange;

typedef struct kc_exchange_config {
    kc_cryptokey *cryptokey;        /* borrowed: close it after the exchange */
    const kc_bytes *allowlist;      /* entries mp([max_age, poison, key]), in file order */
    size_t n_allowlist;
    const kc_bytes *denylist;
    size_t n_denylist;
    double maxage;                  /* lifetime of our messages; <= 0: 86400 s */
    double (*now_fn)(void *ctx);    /* default: the wall clock */
    void *now_ctx;
    bool allowlist_topic;           /* apply allowlist topic messages (default on) */
    bool denylist_topic;            /* apply denylist topic messages (default on) */
} kc_exchange_config;

void kc_exchange_config_init(kc_exchange_config *c);

/* A policy's say on a message whose chain the core has verified for
 * `usage` (key-encrypt-request: encrypt_keys, key-encrypt: decrypt_keys,
 * key-encrypt-subscribe: reencrypt_request). Called with the exchange's
 * lock held, so calls never overlap. Any status but KC_OK refuses the
 * message (nothing is sent, consumed or changed); err says why. */
typedef kc_status (*kc_exchange_check_fn)(void *ctx, const char *root, const char *usage,
                                          double now, const kc_chain_result *chain,
                                          kc_err *err);
kc_status kc_exchange_new(const kc_exchange_config *c, kc_exchange **out, kc_err *err);
void kc_exchange_free(kc_exchange *x);
/* Installs (fn NULL: removes) the policy check. */
void kc_exchange_set_check(kc_exchange *x, kc_exchange_check_fn fn, void *ctx);

/* ---- messages ------------------------------------------------------------- */

typedef struct kc_exchange_msg {
    kc_buf value;
    bool direct;   /* requests: also send to <root>.reqs */
} kc_exchange_msg;

typedef struct kc_exchange_msgs {
    kc_exchange_msg *items;
    size_t n, cap;
} kc_exchange_msgs;

void kc_exchange_msgs_clear(kc_exchange_msgs *m);

/* Data keys: (key index, 32-byte secret) pairs, in sodium_malloc'd memory. */
typedef struct kc_exchange_key {
    kc_keyidx ki;
    uint8_t secret[KC_SECRET_BYTES];
} kc_exchange_key;

typedef struct kc_exchange_keys {
    kc_exchange_key *items;
    size_t n, cap;
} kc_exchange_keys;

kc_status kc_exchange_keys_add(kc_exchange_keys *k, const kc_keyidx *ki,
                               const uint8_t secret[KC_SECRET_BYTES]);
void kc_exchange_keys_clear(kc_exchange_keys *k);
/* §7.4.2: the keys of `held` whose index is in `wanted`, in held order
 * (indices compare by value and type). */
kc_status kc_exchange_keys_select(const kc_exchange_keys *held, const kc_keyidx *wanted,
                                  size_t n_wanted, kc_exchange_keys *out);

/* The Kafka key of requests and replies: mp([ki, ...]). */
kc_status kc_exchange_msgkey_build(const kc_keyidx *kis, size_t n, kc_buf *out);
/* Parses one; *kis is malloc'd (free it). At most KC_EXCHANGE_MAX_KEYS. */
kc_status kc_exchange_msgkey_parse(const uint8_t *p, size_t n, kc_keyidx **kis,
                                   size_t *count, kc_err *err);

/* Consumer (§7.3): fresh ephemeral keys and random0 for root; one request per
 * offered-key entry (2 with the legacy flag) and enabled signing key. */
kc_status kc_exchange_signed_epks(kc_exchange *x, const char *root, kc_exchange_msgs *out,
                                  kc_err *err);

/* Producer (§7.4.3): answers a request for root with `keys` (already
 * selected). KC_ERR_DENIED/EXPIRED/CRYPTO/INVALID when the request is not
 * acceptable; KC_ERR_NOTFOUND when no offered key type is usable. */
kc_status kc_exchange_encrypt_keys(kc_exchange *x, const char *root,
                                   const kc_exchange_keys *keys, const uint8_t *request,
                                   size_t n, kc_exchange_msgs *out, kc_err *err);

/* Consumer (§7.5): the keys in a reply to our latest request for root.
 * KC_ERR_NOTFOUND when the reply is not for an outstanding request of ours
 * (another consumer's, or a replay). */
KC_MUST_CHECK kc_status kc_exchange_decrypt_keys(kc_exchange *x, const char *root, const uint8_t *reply,
                                   size_t n, kc_exchange_keys *out, kc_err *err);

/* Controller (§8.1): validates a request for `key-encrypt-subscribe`
 * against the given lists (NULL: the exchange's own) and re-signs it with
 * the controller's keys; the Kafka key stays the same. */
kc_status kc_exchange_reencrypt_request(kc_exchange *x, const char *root,
                                        const kc_chain_list *allowlist,
                                        const kc_chain_list *denylist, const uint8_t *request,
                                        size_t n, kc_buf *out, kc_err *err);

/* Checks a chain against the exchange's allowlist and denylist for root and
 * usage, as kc_chain_process does (for key-exchange variants, kc_variant.h). */
kc_status kc_exchange_check_chain(kc_exchange *x, const char *root, const char *usage,
                                  const uint8_t *chain, size_t n, kc_chain_result *out,
                                  kc_err *err);

/* ---- the node's own chains (§6.12) ------------------------------------------- */

/* Considers a chain for one of our signing keys. KC_OK: adopted, *idx says
 * for which key (persist it as chain<idx>). Otherwise not adopted, with the
 * reason in err (invalid, not ours, or expiring earlier: B2). */
kc_status kc_exchange_update_own_chain(kc_exchange *x, const uint8_t *chain, size_t n,
                                       size_t *idx, kc_err *err);
/* Whether requests signed with key idx also go to <root>.reqs (§7.9). */
bool kc_exchange_direct(kc_exchange *x, size_t idx);
/* The adopted chain of key idx (empty: none, the temporary chain is used). */
kc_status kc_exchange_own_chain(kc_exchange *x, size_t idx, kc_buf *out);

/* ---- allowlist and denylist (§7.12, B3) --------------------------------------- */

typedef enum kc_list_kind { KC_LIST_ALLOW = 0, KC_LIST_DENY = 1 } kc_list_kind;

/* Applies a message of the allowlist/denylist topic. KC_OK: *entry is the
 * new entry (persist it under base64#SHA256(entry)). KC_ERR_STATE when that
 * topic is switched off; KC_ERR_NOTFOUND when the message carries no entry
 * (upstream ignores those silently); other errors: refused, nothing added. */
kc_status kc_exchange_add_to_list(kc_exchange *x, kc_list_kind which, const uint8_t *msg,
                                  size_t n, kc_buf *entry, kc_err *err);
/* Number of entries in the allowlist or denylist. */
size_t kc_exchange_list_size(kc_exchange *x, kc_list_kind which);
/* True when the allowlist trusts upstream's public temporary root (§6.11):
 * the runtime warns about it at every start. */
bool kc_exchange_trusts_temporary_rot(kc_exchange *x);

/* ---- key-exchange variants -------------------------------------------------------
 * A variant composes requests, replies and their acceptance instead of the
 * protocol of §7 (the Lua loader in runtime/src/lua/kc_variant.c fills this
 * table). Calls come from the management thread only, one at a time.
 * KC_ERR_DENIED is a routine refusal; other errors are failures. */
typedef struct kc_exchange_variant {
    kc_status (*make_request)(void *v, const char *root, const kc_keyidx *wanted,
                              size_t n_wanted, kc_exchange_msgs *out, kc_err *err);
    kc_status (*answer_request)(void *v, const char *root, const kc_exchange_keys *keys,
                                const uint8_t *request, size_t n, kc_exchange_msgs *out,
                                kc_err *err);
    kc_status (*accept_reply)(void *v, const char *root, const uint8_t *reply, size_t n,
                              kc_exchange_keys *out, kc_err *err);
    void (*free)(void *v);
} kc_exchange_variant;

/* What a variant may use of the node that hosts it (all borrowed: the
 * node frees its variant before them). */
typedef struct kc_exchange_variant_host {
    const char *node_id;
    kc_cryptokey *cryptokey;
    kc_exchange *exchange;
    double (*now_fn)(void *ctx);
    void *now_ctx;
} kc_exchange_variant_host;

/* Opens a variant for a node once its keys and exchange exist. */
typedef kc_status (*kc_exchange_variant_open_fn)(void *ctx, const kc_exchange_variant_host *host,
                                                 const kc_exchange_variant **ops, void **v,
                                                 kc_err *err);

#endif
