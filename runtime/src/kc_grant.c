#include "kc_grant.h"

#include <stdlib.h>
#include <string.h>

void kc_policy_grant_clear(kc_policy_grant *g)
{
    for (size_t i = 0; i < g->n_topics; i++)
        free(g->topics[i]);
    for (size_t i = 0; i < g->n_usages; i++)
        free(g->usages[i]);
    memset(g, 0, sizeof *g);
    g->pathlen = -1;
}
