#include "kc_node_metrics.h"

#include <math.h>
#include <time.h>

#include "kc_chain.h"
#include "kc_exchange.h"
#include "kc_log.h"
#include "kc_metrics.h"

double kc_node_chain_expires_in(kc_node *n, double now)
{
    double earliest = INFINITY;
    kc_buf chain = KC_BUF_INIT;
    /* one chain per signing key; the exchange says when there are no more */
    for (size_t idx = 0; kc_exchange_own_chain(kc_node_exchange(n), idx, &chain) == KC_OK; idx++) {
        double exp = 0;
        if (chain.len && kc_chain_min_expiry(chain.data, chain.len, &exp, NULL) == KC_OK &&
            exp > 0 && exp - now < earliest)
            earliest = exp - now;
    }
    kc_buf_free(&chain);
    return earliest;
}

kc_status kc_node_metrics_page(void *node, kc_buf *out)
{
    kc_node *n = node;
    kc_node_stats s;
    kc_node_get_stats(n, &s);
    double left = kc_node_chain_expires_in(n, (double)time(NULL));
    const kc_metric m[] = {
        {"key_requests_sent_total", "Key request rounds sent.", KC_METRIC_COUNTER,
         (double)s.requests_sent},
        {"key_replies_sent_total", "Key replies written (keys served).", KC_METRIC_COUNTER,
         (double)s.replies_sent},
        {"keys_received_total", "Data keys received and accepted.", KC_METRIC_COUNTER,
         (double)s.keys_received},
        {"key_messages_refused_total",
         "Key-exchange messages refused (invalid, not ours, replayed, chain or policy).",
         KC_METRIC_COUNTER, (double)s.refused},
        {"chains_adopted_total", "Chains adopted for the node's signing keys.",
         KC_METRIC_COUNTER, (double)s.chains_adopted},
        {"list_entries_added_total", "Allowlist and denylist entries added.", KC_METRIC_COUNTER,
         (double)s.list_entries_added},
        {"key_indices_given_up_total",
         "Key indices asked for without any answer and given up.", KC_METRIC_COUNTER,
         (double)s.key_indices_given_up},
        {"key_indices_replaced_total", "Key indices dropped unasked (too many waiting).",
         KC_METRIC_COUNTER, (double)s.key_indices_replaced},
        {"chain_expires_in_seconds",
         "Seconds until the node's earliest adopted chain expires (+Inf: never or none).",
         KC_METRIC_GAUGE, left},
        {"chain_expires_soon", "1 when the node's chain expires within 30 days.",
         KC_METRIC_GAUGE, left < KC_CHAIN_EXPIRY_WARN_DAYS * 86400.0 ? 1 : 0},
    };
    return kc_metrics_render(kc_node_id(n), m, sizeof m / sizeof m[0], out);
}
