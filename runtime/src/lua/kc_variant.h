/* kc_variant.h — key-exchange variants: Lua scripts that replace how key
 * requests and replies are composed (scripts/variants/README.md).
 *
 * A variant file returns a table of three hooks, each run in a sandbox
 * (kc_sandbox.h: budgets, no io/ffi) on the node's management thread:
 *
 *   make_request(ctx)           -> request bytes (or a list), or nil, reason
 *   answer_request(ctx, req)    -> reply bytes (or a list), or nil, reason
 *   accept_reply(ctx, reply)    -> a keyset handle, or nil, reason
 *
 * The sandbox has `crypto` (kc_lua_crypto.h), whose handles keep every
 * secret in C: the producer keys a reply carries reach the hook as a
 * keyset handle, and accept_reply hands back a keyset handle that the node
 * installs. The node keeps the Kafka side as for the default exchange
 * (topics, message keys, partition 0, request rounds, statistics).
 *
 * A hook that answers nil refuses: KC_ERR_DENIED with its reason (the node
 * logs it at INFO). One that errors, exceeds its budget or returns the
 * wrong type: KC_ERR_INVALID with the reason (logged at WARNING). Neither
 * stops the management loop. */
#ifndef KC_VARIANT_H
#define KC_VARIANT_H

#include <stddef.h>
#include <stdint.h>

#include "kc_cryptokey.h"
#include "kc_err.h"
#include "kc_exchange.h"
#include "kc_keyidx.h"
#include "kc_sandbox.h"

#define KC_VARIANT_MAX_MESSAGES 16        /* messages one hook may return */
#define KC_VARIANT_MAX_BYTES (1u << 20)   /* per message */

typedef struct kc_variant kc_variant;

typedef struct kc_variant_config {
    const char *path;            /* the variant file */
    const char *node_id;
    kc_cryptokey *cryptokey;     /* borrowed: free the variant first */
    kc_exchange *exchange;       /* borrowed: own chains and trust lists */
    double maxage;               /* lifetime of the node's messages (s) */
    double (*now_fn)(void *ctx);
    void *now_ctx;
    const kc_sandbox_limits *limits;  /* NULL: kc_sandbox's defaults */
} kc_variant_config;

/* Loads the file; it must define all three hooks. The variant may then be
 * used from one other thread (the management loop), one call at a time. */
KC_MUST_CHECK kc_status kc_variant_open(kc_variant **out, const kc_variant_config *c, kc_err *err);
void kc_variant_free(kc_variant *v);
const char *kc_variant_path(const kc_variant *v);

/* kc_exchange_variant_open_fn for kc_node_options.open_variant: opens the
 * variant file `path` (a char *) for the node described by host. */
kc_status kc_variant_open_for_node(void *path, const kc_exchange_variant_host *host,
                                   const kc_exchange_variant **ops, void **v, kc_err *err);

/* Consumer: the requests for root, asking for keys `wanted`. */
kc_status kc_variant_make_request(kc_variant *v, const char *root, const kc_keyidx *wanted,
                                  size_t n_wanted, kc_exchange_msgs *out, kc_err *err);
/* Producer: the replies to `request` carrying `keys` (already selected;
 * the hook sees them as a keyset handle, emptied after the call).
 * KC_ERR_DENIED: the hook refused, err has its reason. */
kc_status kc_variant_answer_request(kc_variant *v, const char *root, const kc_exchange_keys *keys,
                                    const uint8_t *request, size_t n, kc_exchange_msgs *out,
                                    kc_err *err);
/* Consumer: the keys in `reply` (out is appended to). KC_ERR_DENIED: the
 * hook refused it (not ours, not valid), err has its reason. */
kc_status kc_variant_accept_reply(kc_variant *v, const char *root, const uint8_t *reply, size_t n,
                                  kc_exchange_keys *out, kc_err *err);

#endif
