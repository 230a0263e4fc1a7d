/* The table of waited-for key indices (kc_waits) under any sequence of
 * operations a flood and its key exchange can cause: adds past the bound,
 * removals, picks, unanswered rounds and re-arms, on colliding indices.
 * After each step every entry is found through the index, nothing else is,
 * the bound holds and a pick is ranked. Each input is two-byte steps: an
 * operation and an index out of 2048 (so the table fills and collides);
 * the whole table is checked every 32 steps and at the end. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kc_keyidx.h"
#include "kc_waits.h"

#define STEPS 4096   /* enough to fill the table and churn */

static void check(kc_waits *w)
{
    if (kc_waits_count(w) > KC_WAITS_MAX || kc_waits_bytes(w) > KC_WAITS_MAX_BYTES)
        __builtin_trap();
    for (size_t i = 0; i < w->n; i++)
        if (kc_waits_get(w, &w->e[i].ki) != &w->e[i])
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kc_waits w;
    kc_waits_init(&w);
    memset(w.hashkey, 0, sizeof w.hashkey); /* reproducible runs */
    kc_keyidx picked[KC_WAITS_MAX];
    size_t npicked = 0;
    if (size > 2 * STEPS)
        size = 2 * STEPS;
    for (size_t i = 0; i + 1 < size; i += 2) {
        unsigned op = data[i] >> 5, v = ((unsigned)(data[i] & 7) << 8) | data[i + 1];
        kc_keyidx ki;
        kc_keyidx_from_uint(&ki, v);
        switch (op) {
        case 0: case 1: case 2:
            if (!kc_waits_get(&w, &ki) && !kc_waits_add(&w, &ki))
                __builtin_trap();
            break;
        case 3:
            kc_waits_remove(&w, &ki);
            if (kc_waits_get(&w, &ki))
                __builtin_trap();
            break;
        case 4: {
            npicked = kc_waits_pick(&w, picked, v % (KC_WAITS_MAX + 1));
            for (size_t k = 0; k < npicked; k++) {
                const kc_wait *e = kc_waits_get(&w, &picked[k]);
                const kc_wait *prev = k ? kc_waits_get(&w, &picked[k - 1]) : NULL;
                if (!e || kc_wait_given_up(e) ||
                    (prev && (prev->unanswered > e->unanswered ||
                              (prev->unanswered == e->unanswered && prev->seen < e->seen))))
                    __builtin_trap();
            }
            break;
        }
        case 5:
            kc_waits_unanswered(&w, picked, npicked, (double)i);
            break;
        default: {
            kc_wait *e = kc_waits_get(&w, &ki);
            if (e && kc_wait_given_up(e))
                kc_wait_rearm(e);
            break;
        }
        }
        if (i % 64 == 0)
            check(&w);
    }
    check(&w);
    kc_waits_free(&w);
    return 0;
}
