/* kc_root_counters.h — what a node's key exchange did for each root:
 * requests sent and answered, refusals by reason, keys received, and how
 * long keys took to come (metrics, node:stats(), `kafkacrypto serve`). */
#ifndef KC_ROOT_COUNTERS_H
#define KC_ROOT_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#include "kafkacrypto.h"
#include "kc_metrics.h"

/* Why a key request was refused (the refusing side). */
typedef enum kc_refusal {
    KC_REFUSED_MALFORMED,  /* not a key request at all */
    KC_REFUSED_CHAIN,      /* its chain: not trusted, denylisted, topic or usage not allowed */
    KC_REFUSED_EXPIRED,    /* a chain item or the request is past its max_age */
    KC_REFUSED_SIGNATURE,  /* a signature or key agreement failed */
    KC_REFUSED_POLICY,     /* a policy hook said no */
    KC_REFUSED_OTHER,
    KC_REFUSED_N
} kc_refusal;

extern const char *const kc_refusal_names[KC_REFUSED_N];

/* The reason for a refusal with status st; by_policy when a policy hook made it. */
kc_refusal kc_refusal_of(kc_status st, int by_policy);

typedef struct kc_root_counters {
    char *root;
    /* as a consumer */
    uint64_t requests_sent;     /* request rounds */
    uint64_t keys_received;
    uint64_t replies_refused;   /* replies seen that this node could not accept */
    kc_histogram latency;       /* first round of a wait to the key, seconds */
    /* as a producer (D2: any root it holds keys for) */
    uint64_t requests_answered, replies_sent, requests_not_held;
    uint64_t refused[KC_REFUSED_N];
} kc_root_counters;

typedef struct kc_root_table {
    kc_root_counters *items;
    size_t n, cap;
} kc_root_table;

/* The counters of root, made on first use; NULL when out of memory. */
kc_root_counters *kc_root_table_get(kc_root_table *t, const char *root);
const kc_root_counters *kc_root_table_find(const kc_root_table *t, const char *root);
uint64_t kc_root_refused_total(const kc_root_counters *c);
void kc_root_table_free(kc_root_table *t);

#endif
