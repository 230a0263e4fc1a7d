/* kc_grant.h — what an authority asks before it delegates: the request it
 * decides on and the rights it grants. The chain server takes the decision
 * through a kc_grant_fn; policy files (runtime/src/lua/kc_policy.c) are
 * one implementation, so the core never runs Lua itself. */
#ifndef KC_GRANT_H
#define KC_GRANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_chain.h"
#include "kc_err.h"

#define KC_POLICY_MAX_GRANT 64   /* topics or usages in one grant */

/* What a hook is asked about. chain may be NULL (issue_chain). */
typedef struct kc_policy_request {
    const char *root;
    const char *topic;
    const char *usage;
    double now;                    /* the deciding node's clock */
    const kc_chain_result *chain;  /* verified by the core */
    const char *node_id;           /* the requester's, when known; else NULL */
    const kc_key *subject;         /* issue_chain: the key a chain is issued for */
} kc_policy_request;

/* Rights a chain server issues. NULL lists / pathlen < 0: unrestricted. */
typedef struct kc_policy_grant {
    char *topics[KC_POLICY_MAX_GRANT];
    size_t n_topics;
    bool has_topics;
    char *usages[KC_POLICY_MAX_GRANT];
    size_t n_usages;
    bool has_usages;
    int64_t pathlen;               /* -1: none */
    double lifetime;               /* seconds */
} kc_policy_grant;

/* Frees what the grant holds and empties it (pathlen -1). */
void kc_policy_grant_clear(kc_policy_grant *g);

/* Narrows or widens *grant (it holds the authority's proposal) for req.
 * KC_OK: *grant is what to issue; KC_ERR_DENIED or any other status:
 * issue nothing, err says why. */
typedef kc_status (*kc_grant_fn)(void *ctx, const kc_policy_request *req,
                                 kc_policy_grant *grant, kc_err *err);

#endif
