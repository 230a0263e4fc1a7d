#include "kc_waits.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "kc_array.h"
#include "kc_keyidx.h"

#define INDEX_SLOTS (2 * KC_WAITS_MAX)   /* a power of two, at most half full */

void kc_waits_init(kc_waits *w)
{
    memset(w, 0, sizeof *w);
    randombytes_buf(w->hashkey, sizeof w->hashkey);
}

void kc_waits_free(kc_waits *w)
{
    free(w->e);
    free(w->index);
    memset(w, 0, sizeof *w);
}

size_t kc_waits_count(const kc_waits *w)
{
    return w->n;
}

size_t kc_waits_bytes(const kc_waits *w)
{
    return w->cap * sizeof *w->e + (w->index ? INDEX_SLOTS * sizeof *w->index : 0);
}

static const kc_keyidx *wait_key(const void *owner, size_t e)
{
    return &((const kc_waits *)owner)->e[e].ki;
}

static uint64_t wait_hash(const void *owner, size_t e)
{
    return ((const kc_waits *)owner)->e[e].hash;
}

static const kc_kislots_ops waits_ops = {wait_key, wait_hash};

/* Slot of ki in the index, or the empty slot where it would go. */
static size_t slot_of(const kc_waits *w, const kc_keyidx *ki, uint32_t hash, bool *found)
{
    return kc_kislots_find(w->index, INDEX_SLOTS, ki, hash, &waits_ops, w, found);
}

kc_wait *kc_waits_get(kc_waits *w, const kc_keyidx *ki)
{
    if (!w->n || (ki->type != KC_KEYIDX_INT && ki->type != KC_KEYIDX_BYTES))
        return NULL;
    bool found;
    size_t i = slot_of(w, ki, (uint32_t)kc_keyidx_hash(ki, w->hashkey), &found);
    return found ? &w->e[w->index[i] - 1] : NULL;
}

/* Removes the entry the index slot points at, then the last entry moves
 * into its place. */
static void remove_at(kc_waits *w, size_t slot)
{
    size_t pos = w->index[slot] - 1;
    kc_kislots_delete(w->index, INDEX_SLOTS, slot, &waits_ops, w);
    size_t last = --w->n;
    if (pos != last) {
        bool found;
        size_t s = slot_of(w, &w->e[last].ki, w->e[last].hash, &found);
        w->e[pos] = w->e[last];
        w->index[s] = (uint32_t)(pos + 1);
    }
    sodium_memzero(&w->e[last], sizeof w->e[last]);
}

void kc_waits_remove(kc_waits *w, const kc_keyidx *ki)
{
    if (!w->n || (ki->type != KC_KEYIDX_INT && ki->type != KC_KEYIDX_BYTES))
        return;
    bool found;
    size_t i = slot_of(w, ki, (uint32_t)kc_keyidx_hash(ki, w->hashkey), &found);
    if (found)
        remove_at(w, i);
}

/* a ranks before b (is asked for first, replaced last) */
static bool better(const kc_wait *a, const kc_wait *b)
{
    if (a->unanswered != b->unanswered)
        return a->unanswered < b->unanswered;
    return a->seen > b->seen;
}

kc_wait *kc_waits_add(kc_waits *w, const kc_keyidx *ki)
{
    if (ki->type != KC_KEYIDX_INT && ki->type != KC_KEYIDX_BYTES)
        return NULL;
    if (!w->index && !(w->index = calloc(INDEX_SLOTS, sizeof *w->index)))
        return NULL;
    if (w->n == KC_WAITS_MAX) {
        size_t worst = 0;
        for (size_t i = 1; i < w->n; i++)
            if (better(&w->e[worst], &w->e[i]))
                worst = i;
        if (!kc_wait_given_up(&w->e[worst]))
            w->replaced++;
        bool found;
        remove_at(w, slot_of(w, &w->e[worst].ki, w->e[worst].hash, &found));
    } else if (KC_ARRAY_GROW(w->e, w->n, w->cap) != KC_OK) {
        return NULL;
    }
    uint32_t hash = (uint32_t)kc_keyidx_hash(ki, w->hashkey);
    bool found;
    size_t s = slot_of(w, ki, hash, &found);
    kc_wait *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->ki = *ki;
    e->hash = hash;
    e->seen = ++w->next_seen;
    w->index[s] = (uint32_t)++w->n;
    return e;
}

void kc_wait_rearm(kc_wait *e)
{
    e->unanswered = KC_WAITS_ROUNDS - 1;
}

static int best_first(const void *a, const void *b)
{
    const kc_wait *x = *(const kc_wait *const *)a, *y = *(const kc_wait *const *)b;
    return better(x, y) ? -1 : better(y, x) ? 1 : 0;
}

size_t kc_waits_pick(const kc_waits *w, kc_keyidx *out, size_t cap)
{
    const kc_wait *sorted[KC_WAITS_MAX];
    size_t m = 0;
    for (size_t i = 0; i < w->n; i++)
        if (!kc_wait_given_up(&w->e[i]))
            sorted[m++] = &w->e[i];
    qsort(sorted, m, sizeof *sorted, best_first);
    size_t k = m < cap ? m : cap;
    for (size_t i = 0; i < k; i++)
        out[i] = sorted[i]->ki;
    return k;
}

size_t kc_waits_unanswered(kc_waits *w, const kc_keyidx *kis, size_t n, double now)
{
    size_t newly = 0;
    for (size_t i = 0; i < n; i++) {
        kc_wait *e = kc_waits_get(w, &kis[i]);
        if (!e || kc_wait_given_up(e) || ++e->unanswered < KC_WAITS_ROUNDS)
            continue;
        e->given_up_at = now;
        if (!e->counted) {
            e->counted = true;
            newly++;
        }
    }
    w->given_up += newly;
    return newly;
}
