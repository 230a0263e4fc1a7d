#include "kc_node_metrics.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kc_array.h"
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

/* Copies of the per-root counters, taken under the locks, rendered after. */
typedef struct page_roots {
    kc_serde_root_stats *serde;
    size_t nserde, serde_cap;
    kc_root_counters *node;
    double *unanswered;
    size_t nnode, node_cap, unanswered_cap;
    bool nomem;
} page_roots;

static void take_serde(void *ctx, const kc_serde_root_stats *st)
{
    page_roots *p = ctx;
    char *root = strdup(st->root);
    if (!root || KC_ARRAY_GROW(p->serde, p->nserde, p->serde_cap) != KC_OK) {
        free(root);
        p->nomem = true;
        return;
    }
    p->serde[p->nserde] = *st;
    p->serde[p->nserde++].root = root;
}

static void take_node(void *ctx, const kc_root_counters *c, double unanswered_for)
{
    page_roots *p = ctx;
    char *root = strdup(c->root);
    if (!root || KC_ARRAY_GROW(p->node, p->nnode, p->node_cap) != KC_OK ||
        KC_ARRAY_GROW(p->unanswered, p->nnode, p->unanswered_cap) != KC_OK) {
        free(root);
        p->nomem = true;
        return;
    }
    p->node[p->nnode] = *c;
    p->node[p->nnode].root = root;
    p->unanswered[p->nnode++] = unanswered_for;
}

static void page_roots_free(page_roots *p)
{
    for (size_t i = 0; i < p->nserde; i++)
        free((char *)p->serde[i].root);
    for (size_t i = 0; i < p->nnode; i++)
        free(p->node[i].root);
    free(p->serde);
    free(p->node);
    free(p->unanswered);
}

/* One family of per-root samples from the serde's counters. */
static kc_status serde_family(kc_buf *out, const char *node, const page_roots *p,
                              const char *name, const char *help, kc_serde_count what)
{
    kc_status st = kc_metrics_family(out, name, help, KC_METRIC_COUNTER);
    for (size_t i = 0; i < p->nserde && st == KC_OK; i++) {
        kc_label l[] = {{"node", node}, {"root", p->serde[i].root}};
        st = kc_metrics_sample(out, name, l, 2, (double)p->serde[i].count[what]);
    }
    return st;
}

#define NODE_FIELD(field) offsetof(kc_root_counters, field)

/* One family of per-root samples from the node's counters (a uint64_t at `offset`). */
static kc_status node_family(kc_buf *out, const char *node, const page_roots *p,
                             const char *name, const char *help, size_t offset)
{
    kc_status st = kc_metrics_family(out, name, help, KC_METRIC_COUNTER);
    for (size_t i = 0; i < p->nnode && st == KC_OK; i++) {
        kc_label l[] = {{"node", node}, {"root", p->node[i].root}};
        uint64_t v;
        memcpy(&v, (const char *)&p->node[i] + offset, sizeof v);
        st = kc_metrics_sample(out, name, l, 2, (double)v);
    }
    return st;
}

static kc_status root_pages(kc_buf *out, const char *node, const page_roots *p)
{
    static const struct {
        const char *name, *help;
        kc_serde_count what;
    } sf[] = {
        {"messages_encrypted_total", "Messages (keys and values) encrypted.", KC_SERDE_ENCRYPTED},
        {"messages_decrypted_total", "Messages (keys and values) decrypted.", KC_SERDE_DECRYPTED},
        {"messages_held_total", "Messages a consumer's hold_undecryptable held.", KC_SERDE_HELD},
        {"messages_released_total", "Held messages delivered decrypted.", KC_SERDE_RELEASED},
        {"messages_hold_expired_total", "Held messages delivered undecrypted when the hold ran out.",
         KC_SERDE_EXPIRED},
    };
    static const struct {
        const char *name, *help;
        size_t offset;
    } nf[] = {
        {"root_key_requests_sent_total", "Key request rounds sent.", NODE_FIELD(requests_sent)},
        {"root_keys_received_total", "Keys received and accepted.", NODE_FIELD(keys_received)},
        {"root_key_replies_refused_total", "Key replies seen that this node could not accept.",
         NODE_FIELD(replies_refused)},
        {"root_key_requests_answered_total", "Key requests answered.",
         NODE_FIELD(requests_answered)},
        {"root_key_replies_sent_total", "Key replies written (keys served).",
         NODE_FIELD(replies_sent)},
        {"root_key_requests_not_held_total", "Key requests only for keys this node does not hold.",
         NODE_FIELD(requests_not_held)},
    };
    kc_status st = KC_OK;
    for (size_t f = 0; f < sizeof sf / sizeof sf[0] && st == KC_OK; f++)
        st = serde_family(out, node, p, sf[f].name, sf[f].help, sf[f].what);
    static const struct {
        const char *reason;
        kc_serde_count what;
    } why[] = {{"no_key", KC_SERDE_NO_KEY},
               {"invalid", KC_SERDE_INVALID},
               {"not_kafkacrypto", KC_SERDE_NOT_KAFKACRYPTO}};
    if (st == KC_OK)
        st = kc_metrics_family(out, "messages_undecryptable_total",
                               "Messages not decrypted at their first try, by reason.",
                               KC_METRIC_COUNTER);
    for (size_t i = 0; i < p->nserde && st == KC_OK; i++)
        for (size_t r = 0; r < sizeof why / sizeof why[0] && st == KC_OK; r++) {
            kc_label l[] = {{"node", node}, {"root", p->serde[i].root}, {"reason", why[r].reason}};
            st = kc_metrics_sample(out, "messages_undecryptable_total", l, 3,
                                   (double)p->serde[i].count[why[r].what]);
        }
    if (st == KC_OK)
        st = kc_metrics_family(out, "keys_held", "Keys held: a producer's (this run's and "
                               "oldkeys'), a consumer's (received).", KC_METRIC_GAUGE);
    for (size_t i = 0; i < p->nserde && st == KC_OK; i++) {
        kc_label l[] = {{"node", node}, {"root", p->serde[i].root}, {"side", "producer"}};
        st = kc_metrics_sample(out, "keys_held", l, 3, (double)p->serde[i].producer_keys);
        l[2].value = "consumer";
        if (st == KC_OK)
            st = kc_metrics_sample(out, "keys_held", l, 3, (double)p->serde[i].consumer_keys);
    }
    for (size_t f = 0; f < sizeof nf / sizeof nf[0] && st == KC_OK; f++)
        st = node_family(out, node, p, nf[f].name, nf[f].help, nf[f].offset);
    if (st == KC_OK)
        st = kc_metrics_family(out, "root_key_requests_refused_total",
                               "Key requests refused, by reason.", KC_METRIC_COUNTER);
    for (size_t i = 0; i < p->nnode && st == KC_OK; i++)
        for (int r = 0; r < KC_REFUSED_N && st == KC_OK; r++) {
            kc_label l[] = {{"node", node}, {"root", p->node[i].root},
                            {"reason", kc_refusal_names[r]}};
            st = kc_metrics_sample(out, "root_key_requests_refused_total", l, 3,
                                   (double)p->node[i].refused[r]);
        }
    if (st == KC_OK)
        st = kc_metrics_family(out, "key_exchange_seconds", "From a root's first key request "
                               "round to its key.", KC_METRIC_HISTOGRAM);
    for (size_t i = 0; i < p->nnode && st == KC_OK; i++) {
        kc_label l[] = {{"node", node}, {"root", p->node[i].root}};
        st = kc_metrics_histogram(out, "key_exchange_seconds", l, 2, &p->node[i].latency);
    }
    if (st == KC_OK)
        st = kc_metrics_family(out, "root_unanswered_seconds", "How long this root's keys have "
                               "been asked for without an answer (0: not waiting).",
                               KC_METRIC_GAUGE);
    for (size_t i = 0; i < p->nnode && st == KC_OK; i++) {
        kc_label l[] = {{"node", node}, {"root", p->node[i].root}};
        st = kc_metrics_sample(out, "root_unanswered_seconds", l, 2, p->unanswered[i]);
    }
    return st;
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
    kc_status st = kc_metrics_render(kc_node_id(n), m, sizeof m / sizeof m[0], out);
    page_roots p = {0};
    kc_serde_foreach_root_stats(kc_node_serde(n), take_serde, &p);
    kc_node_foreach_root(n, take_node, &p);
    if (st == KC_OK)
        st = p.nomem ? KC_ERR_NOMEM : root_pages(out, kc_node_id(n), &p);
    page_roots_free(&p);
    return st;
}
