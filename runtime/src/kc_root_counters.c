#include "kc_root_counters.h"

#include <stdlib.h>
#include <string.h>

#include "kc_array.h"

const char *const kc_refusal_names[KC_REFUSED_N] = {
    [KC_REFUSED_MALFORMED] = "malformed", [KC_REFUSED_CHAIN] = "chain",
    [KC_REFUSED_EXPIRED] = "expired",     [KC_REFUSED_SIGNATURE] = "signature",
    [KC_REFUSED_POLICY] = "policy",       [KC_REFUSED_OTHER] = "other",
};

kc_refusal kc_refusal_of(kc_status st, int by_policy)
{
    if (by_policy)
        return KC_REFUSED_POLICY;
    switch (st) {
    case KC_ERR_INVALID:
        return KC_REFUSED_MALFORMED;
    case KC_ERR_DENIED:
        return KC_REFUSED_CHAIN;
    case KC_ERR_EXPIRED:
        return KC_REFUSED_EXPIRED;
    case KC_ERR_CRYPTO:
        return KC_REFUSED_SIGNATURE;
    default:
        return KC_REFUSED_OTHER;
    }
}

const kc_root_counters *kc_root_table_find(const kc_root_table *t, const char *root)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->items[i].root, root) == 0)
            return &t->items[i];
    return NULL;
}

kc_root_counters *kc_root_table_get(kc_root_table *t, const char *root)
{
    kc_root_counters *c = (kc_root_counters *)kc_root_table_find(t, root);
    if (c)
        return c;
    if (KC_ARRAY_GROW(t->items, t->n, t->cap) != KC_OK)
        return NULL;
    c = &t->items[t->n];
    memset(c, 0, sizeof *c);
    if (!(c->root = strdup(root)))
        return NULL;
    t->n++;
    return c;
}

uint64_t kc_root_refused_total(const kc_root_counters *c)
{
    uint64_t sum = 0;
    for (int i = 0; i < KC_REFUSED_N; i++)
        sum += c->refused[i];
    return sum;
}

void kc_root_table_free(kc_root_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->items[i].root);
    free(t->items);
    *t = (kc_root_table){0};
}
