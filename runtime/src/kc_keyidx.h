/* kc_keyidx.h — producer key indices (spec §3.3) and a map keyed by them.
 *
 * A key index is a short integer (MGMT_LONG_KEYINDEX off) or a byte string
 * (the 32-byte long form). Peers may send anything in its place: under
 * upstream's raw=True decoding a str and a bin with the same bytes are the
 * same index, an integer never equals a byte string, and any other type
 * (float, bool, nil, containers, ext, byte strings longer than
 * KC_KEYIDX_MAX_BYTES) is kept as KC_KEYIDX_OTHER, which equals nothing. */
#ifndef KC_KEYIDX_H
#define KC_KEYIDX_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafkacrypto.h"

/* Build a key index (the struct is declared in kafkacrypto.h). */
void kc_keyidx_from_uint(kc_keyidx *ki, uint64_t v);
void kc_keyidx_from_int(kc_keyidx *ki, int64_t v);
/* More than KC_KEYIDX_MAX_BYTES bytes gives KC_KEYIDX_OTHER. */
void kc_keyidx_from_bytes(kc_keyidx *ki, const uint8_t *p, size_t n);
/* From a decoded msgpack value. Returns false for types Python cannot hash
 * (arrays, maps), which can never name a key; ki is then KC_KEYIDX_OTHER. */
bool kc_keyidx_from_mp(kc_keyidx *ki, const msgpack_object *o);

bool kc_keyidx_equal(const kc_keyidx *a, const kc_keyidx *b);
/* Keyed (SipHash) so that indices chosen by peers cannot flood a table. */
uint64_t kc_keyidx_hash(const kc_keyidx *ki, const uint8_t key[16]);
/* int -> smallest msgpack int, bytes -> bin (as upstream packs them).
 * KC_KEYIDX_OTHER packs as nil (it is never produced by this library). */
int kc_keyidx_pack(msgpack_packer *pk, const kc_keyidx *ki);
/* "7", "-3" or lowercase hex of the bytes; for logs. Returns out. */
char *kc_keyidx_describe(const kc_keyidx *ki, char *out, size_t cap);

/* ---- kc_kislots: the one hash index over key indices -------------------
 *
 * Open addressing with linear probing over entries the owner keeps (kc_kimap,
 * kc_waits): a slot holds an entry number + 1, 0 is empty; cap is a power of
 * two and the owner keeps it at most half full. Deletion shifts the rest of
 * the cluster back, so churn leaves no tombstones. ops->key gives entry e's
 * key index, ops->hash its kc_keyidx_hash under the owner's key (which the
 * owner may have cached). */
typedef struct kc_kislots_ops {
    const kc_keyidx *(*key)(const void *owner, size_t e);
    uint64_t (*hash)(const void *owner, size_t e);
} kc_kislots_ops;

/* The slot holding k (hash: its keyed hash), or the empty slot where it would go. */
size_t kc_kislots_find(const uint32_t *slots, size_t cap, const kc_keyidx *k, uint64_t hash,
                       const kc_kislots_ops *ops, const void *owner, bool *found);
/* Empties slot (which holds an entry), moving back the entries after it that
 * would no longer be found. */
void kc_kislots_delete(uint32_t *slots, size_t cap, size_t slot, const kc_kislots_ops *ops,
                       const void *owner);

/* ---- kc_kimap: key index -> pointer, iterated in insertion order ------- */

typedef struct kc_kimap_entry {
    kc_keyidx key;
    void *value;
    bool live;
} kc_kimap_entry;

typedef struct kc_kimap {
    kc_kimap_entry *entries;  /* insertion order; dead entries are skipped */
    size_t nentries, cap, live;
    uint32_t *index;          /* open addressing, entry number + 1, 0 = empty */
    size_t index_cap;         /* power of two */
    uint8_t hashkey[16];
} kc_kimap;

void kc_kimap_init(kc_kimap *m);
/* Frees the map, not the values. */
void kc_kimap_free(kc_kimap *m);
void *kc_kimap_get(const kc_kimap *m, const kc_keyidx *k);
/* Inserts or replaces (keeping the old position, as a Python dict does).
 * KC_KEYIDX_OTHER keys are refused (KC_ERR_INVALID). */
kc_status kc_kimap_put(kc_kimap *m, const kc_keyidx *k, void *value);
/* Removes and returns the value (NULL if absent). */
void *kc_kimap_remove(kc_kimap *m, const kc_keyidx *k);
/* Removes every entry whose value keep() refuses, in one pass (each
 * kc_kimap_remove re-fills the index: removing many that way is quadratic). */
void kc_kimap_filter(kc_kimap *m, bool (*keep)(void *ctx, void *value), void *ctx);
static inline size_t kc_kimap_count(const kc_kimap *m)
{
    return m->live;
}
/* Iteration: for (size_t i = 0; kc_kimap_next(m, &i, &e);) ... */
bool kc_kimap_next(const kc_kimap *m, size_t *pos, const kc_kimap_entry **e);

#endif
