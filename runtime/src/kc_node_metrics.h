/* kc_node_metrics.h — a node's metrics page (kc_metrics.h) and its
 * once-a-day warning when the node's chain expires within 30 days. */
#ifndef KC_NODE_METRICS_H
#define KC_NODE_METRICS_H

#include "kc_buf.h"
#include "kc_node.h"

#define KC_CHAIN_EXPIRY_WARN_DAYS 30

/* Seconds until the earliest of the node's adopted chains expires:
 * INFINITY when none expires or none is adopted yet. */
double kc_node_chain_expires_in(kc_node *n, double now);

/* The page for n (a kc_metrics_fill_fn: ctx is the kc_node). */
kc_status kc_node_metrics_page(void *node, kc_buf *out);

#endif
