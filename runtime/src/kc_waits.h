/* kc_waits.h — the key indices one root's deserializers wait for (upstream's
 * cwaits[root], spec §4.4), and which of them a key request asks for
 * (§7.3, project decision D4).
 *
 * Indices come from data messages, which anyone allowed to write to a data
 * topic can make up. Upstream keeps every one until its key arrives and
 * lists them all, oldest first, in every request: made-up ones never leave
 * and crowd out a real producer's. The rule here:
 *
 *   - a root holds at most KC_WAITS_MAX indices (memory: KC_WAITS_MAX_BYTES,
 *     allocated as it fills); a new index over that replaces the worst-
 *     ranked one (below), so a new index is always taken in;
 *   - an index remembers the request rounds that listed it and got no reply
 *     at all (a round that got a reply does not count: only the first reply
 *     of a round is usable, §7.6, so its other indices may just have lost
 *     the race);
 *   - ranking, best first: fewer unanswered rounds, then seen later. A
 *     request lists the best-ranked KC_EXCHANGE_MAX_KEYS, so an index never
 *     asked for goes before every index already asked for, and the newest
 *     goes first: a flood of made-up indices, of any size, seen before a
 *     real one cannot keep the real one out of the next request;
 *   - after KC_WAITS_ROUNDS unanswered rounds an index is given up: not
 *     listed, not waited for, first to be replaced. Seeing it again in a
 *     new message, or in a retry KC_WAITS_RETRY_AFTER seconds after it was
 *     given up (its producer may be back), gives it one more round, ranked
 *     behind every index not given up.
 *
 * Limit: nothing tells a made-up index from a real one before its key
 * comes. More than KC_EXCHANGE_MAX_KEYS new made-up indices seen after a
 * real one and before the next round push it into a later round, and more
 * than KC_WAITS_MAX out of the table (a new message carrying it brings it
 * back, first). Against such a sustained flood the defence is who may write
 * to the data topics.
 *
 * Not thread-safe: the serde's lock covers it. */
#ifndef KC_WAITS_H
#define KC_WAITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafkacrypto.h"

#define KC_WAITS_MAX 1024    /* indices per root */
#define KC_WAITS_ROUNDS 3    /* unanswered request rounds before an index is given up */
#define KC_WAITS_RETRY_AFTER 600.0  /* s before a retry may ask for a given-up index again */

typedef struct kc_wait {
    kc_keyidx ki;
    uint64_t seen;           /* order of first sight (larger = later) */
    int count;               /* upstream's wait counter (§4.4) */
    double given_up_at;      /* when it was last given up */
    uint32_t hash;
    uint8_t unanswered;      /* rounds that listed it and got no reply, up to KC_WAITS_ROUNDS */
    bool counted;            /* already counted as given up once */
} kc_wait;

typedef struct kc_waits {
    kc_wait *e;              /* dense, no order */
    size_t n, cap;
    uint32_t *index;         /* open addressing over e, entry + 1; 2 * KC_WAITS_MAX slots */
    uint64_t next_seen;
    uint8_t hashkey[16];
    uint64_t given_up, replaced;  /* totals: indices given up; replaced before any answer */
} kc_waits;

/* The most a root's table can hold, in bytes. */
#define KC_WAITS_MAX_BYTES (KC_WAITS_MAX * sizeof(kc_wait) + 2 * KC_WAITS_MAX * sizeof(uint32_t))

void kc_waits_init(kc_waits *w);
void kc_waits_free(kc_waits *w);
size_t kc_waits_count(const kc_waits *w);
/* Bytes allocated now (at most KC_WAITS_MAX_BYTES). */
size_t kc_waits_bytes(const kc_waits *w);

kc_wait *kc_waits_get(kc_waits *w, const kc_keyidx *ki);
/* Adds ki (absent), replacing the worst-ranked index when full. NULL when
 * out of memory or ki is not an int or bytes index. */
kc_wait *kc_waits_add(kc_waits *w, const kc_keyidx *ki);
/* The key arrived. */
void kc_waits_remove(kc_waits *w, const kc_keyidx *ki);

static inline bool kc_wait_given_up(const kc_wait *e)
{
    return e->unanswered >= KC_WAITS_ROUNDS;
}
/* Seen again in a new message: one more round, behind the rest. */
void kc_wait_rearm(kc_wait *e);

/* The best-ranked indices not given up, best first, at most cap. */
size_t kc_waits_pick(const kc_waits *w, kc_keyidx *out, size_t cap);
/* A request round listing kis ended with no reply (at time now): counts it
 * for each of them still here. Returns how many were given up for the
 * first time. */
size_t kc_waits_unanswered(kc_waits *w, const kc_keyidx *kis, size_t n, double now);

#endif
