/* kc_ratelimit.h — "say this at most once per interval": a table of the
 * keys said recently (keyed hashes, so nobody can pick keys that collide),
 * the oldest forgotten when it is full. Not locked: the caller serialises. */
#ifndef KC_RATELIMIT_H
#define KC_RATELIMIT_H

#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>

#define KC_RATELIMIT_SLOTS 256

typedef struct kc_ratelimit {
    uint8_t key[crypto_generichash_KEYBYTES];
    struct {
        uint64_t hash;
        double at;
        bool used;
    } slot[KC_RATELIMIT_SLOTS];
} kc_ratelimit;

void kc_ratelimit_init(kc_ratelimit *r);

/* Whether (a, b) is due at time now: never said, or last said interval
 * seconds ago or more; if due, now counts as said. */
bool kc_ratelimit_due(kc_ratelimit *r, const char *a, const char *b, double now, double interval);

#endif
