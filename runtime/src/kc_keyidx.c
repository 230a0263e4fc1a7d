#include "kc_keyidx.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_array.h"

/* Only the fields that matter are set (bytes past len are never read):
 * these run once per received message. */
void kc_keyidx_from_uint(kc_keyidx *ki, uint64_t v)
{
    ki->type = KC_KEYIDX_INT;
    ki->negative = false;
    ki->num = v;
    ki->len = 0;
}

void kc_keyidx_from_int(kc_keyidx *ki, int64_t v)
{
    ki->type = KC_KEYIDX_INT;
    ki->negative = v < 0;
    ki->num = (uint64_t)v;
    ki->len = 0;
}

static void set_other(kc_keyidx *ki)
{
    ki->type = KC_KEYIDX_OTHER;
    ki->negative = false;
    ki->num = 0;
    ki->len = 0;
}

void kc_keyidx_from_bytes(kc_keyidx *ki, const uint8_t *p, size_t n)
{
    if (n > KC_KEYIDX_MAX_BYTES) {
        set_other(ki);
        return;
    }
    ki->type = KC_KEYIDX_BYTES;
    ki->negative = false;
    ki->num = 0;
    ki->len = n;
    if (n)
        memcpy(ki->bytes, p, n);
}

bool kc_keyidx_from_mp(kc_keyidx *ki, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        kc_keyidx_from_uint(ki, o->via.u64);
        return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        kc_keyidx_from_int(ki, o->via.i64);
        return true;
    case MSGPACK_OBJECT_STR:
        kc_keyidx_from_bytes(ki, (const uint8_t *)o->via.str.ptr, o->via.str.size);
        return true;
    case MSGPACK_OBJECT_BIN:
        kc_keyidx_from_bytes(ki, (const uint8_t *)o->via.bin.ptr, o->via.bin.size);
        return true;
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP:
        set_other(ki);
        return false;
    default:
        set_other(ki);
        return true;
    }
}

bool kc_keyidx_equal(const kc_keyidx *a, const kc_keyidx *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case KC_KEYIDX_INT:
        return a->negative == b->negative && a->num == b->num;
    case KC_KEYIDX_BYTES:
        return a->len == b->len && (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
    default:
        return false;
    }
}

uint64_t kc_keyidx_hash(const kc_keyidx *ki, const uint8_t key[16])
{
    uint8_t buf[2 + KC_KEYIDX_MAX_BYTES];
    size_t n;
    if (ki->type == KC_KEYIDX_INT) {
        buf[0] = 'i';
        buf[1] = ki->negative;
        for (int i = 0; i < 8; i++)
            buf[2 + i] = (uint8_t)(ki->num >> (8 * i));
        n = 10;
    } else if (ki->type == KC_KEYIDX_BYTES) {
        buf[0] = 'b';
        buf[1] = (uint8_t)ki->len;
        memcpy(buf + 2, ki->bytes, ki->len);
        n = 2 + ki->len;
    } else {
        buf[0] = 'o';
        n = 1;
    }
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, buf, n, key);
    uint64_t v = 0;
    memcpy(&v, h, sizeof v);
    return v;
}

int kc_keyidx_pack(msgpack_packer *pk, const kc_keyidx *ki)
{
    switch (ki->type) {
    case KC_KEYIDX_INT:
        return ki->negative ? msgpack_pack_int64(pk, (int64_t)ki->num)
                            : msgpack_pack_uint64(pk, ki->num);
    case KC_KEYIDX_BYTES:
        return msgpack_pack_bin_with_body(pk, ki->bytes, ki->len);
    default:
        return msgpack_pack_nil(pk);
    }
}

char *kc_keyidx_describe(const kc_keyidx *ki, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    if (ki->type == KC_KEYIDX_INT) {
        if (ki->negative)
            snprintf(out, cap, "%lld", (long long)(int64_t)ki->num);
        else
            snprintf(out, cap, "%llu", (unsigned long long)ki->num);
    } else if (ki->type == KC_KEYIDX_BYTES) {
        size_t o = 0;
        out[0] = '\0';
        for (size_t i = 0; i < ki->len && o + 3 <= cap; i++, o += 2)
            snprintf(out + o, cap - o, "%02x", ki->bytes[i]);
    } else {
        snprintf(out, cap, "<unusable key index>");
    }
    return out;
}

void kc_kimap_init(kc_kimap *m)
{
    memset(m, 0, sizeof *m);
    randombytes_buf(m->hashkey, sizeof m->hashkey);
}

void kc_kimap_free(kc_kimap *m)
{
    free(m->entries);
    free(m->index);
    memset(m, 0, sizeof *m);
}

/* ---- kc_kislots ---------------------------------------------------------- */

size_t kc_kislots_find(const uint32_t *slots, size_t cap, const kc_keyidx *k, uint64_t hash,
                       const kc_kislots_ops *ops, const void *owner, bool *found)
{
    size_t mask = cap - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        uint32_t x = slots[i];
        if (x == 0 || kc_keyidx_equal(ops->key(owner, x - 1), k)) {
            *found = x != 0;
            return i;
        }
    }
}

void kc_kislots_delete(uint32_t *slots, size_t cap, size_t slot, const kc_kislots_ops *ops,
                       const void *owner)
{
    size_t mask = cap - 1, hole = slot;
    for (size_t j = (hole + 1) & mask; slots[j]; j = (j + 1) & mask) {
        size_t home = (size_t)ops->hash(owner, slots[j] - 1) & mask;
        /* the entry at j may move back to hole unless its home lies in (hole, j] */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            slots[hole] = slots[j];
            hole = j;
        }
    }
    slots[hole] = 0;
}

/* ---- kc_kimap --------------------------------------------------------------- */

static const kc_keyidx *kimap_key(const void *owner, size_t e)
{
    return &((const kc_kimap *)owner)->entries[e].key;
}

static uint64_t kimap_hash(const void *owner, size_t e)
{
    const kc_kimap *m = owner;
    return kc_keyidx_hash(&m->entries[e].key, m->hashkey);
}

static const kc_kislots_ops kimap_ops = {kimap_key, kimap_hash};

/* Slot of k in the index, or of the empty slot where it would go. */
static size_t find_slot(const kc_kimap *m, const kc_keyidx *k, bool *found)
{
    return kc_kislots_find(m->index, m->index_cap, k, kc_keyidx_hash(k, m->hashkey), &kimap_ops,
                           m, found);
}

/* Drops dead entries and re-fills the index (same capacity). */
static void reindex(kc_kimap *m)
{
    size_t w = 0;
    for (size_t r = 0; r < m->nentries; r++)
        if (m->entries[r].live)
            m->entries[w++] = m->entries[r];
    m->nentries = w;
    memset(m->index, 0, m->index_cap * sizeof *m->index);
    for (size_t e = 0; e < m->nentries; e++) {
        bool found;
        size_t s = find_slot(m, &m->entries[e].key, &found);
        m->index[s] = (uint32_t)(e + 1);
    }
}

static kc_status grow_index(kc_kimap *m, size_t index_cap)
{
    uint32_t *idx = calloc(index_cap, sizeof *idx);
    if (!idx)
        return KC_ERR_NOMEM;
    free(m->index);
    m->index = idx;
    m->index_cap = index_cap;
    reindex(m);
    return KC_OK;
}

void *kc_kimap_get(const kc_kimap *m, const kc_keyidx *k)
{
    if (m->live == 0 || k->type == KC_KEYIDX_OTHER)
        return NULL;
    bool found;
    size_t s = find_slot(m, k, &found);
    return found ? m->entries[m->index[s] - 1].value : NULL;
}

kc_status kc_kimap_put(kc_kimap *m, const kc_keyidx *k, void *value)
{
    if (k->type != KC_KEYIDX_INT && k->type != KC_KEYIDX_BYTES)
        return KC_ERR_INVALID;
    if (m->index_cap) {
        bool found;
        size_t s = find_slot(m, k, &found);
        if (found) {
            m->entries[m->index[s] - 1].value = value;
            return KC_OK;
        }
    }
    /* Keep the index at most half full; entries include dead ones. */
    if (m->nentries + 1 > m->index_cap / 2) {
        size_t cap = m->index_cap ? m->index_cap : 8;
        while (m->live + 1 > cap / 2)
            cap *= 2;
        kc_status st = cap == m->index_cap ? (reindex(m), KC_OK) : grow_index(m, cap);
        if (st != KC_OK)
            return st;
    }
    if (KC_ARRAY_GROW(m->entries, m->nentries, m->cap) != KC_OK)
        return KC_ERR_NOMEM;
    if (m->nentries >= UINT32_MAX - 1)
        return KC_ERR_NOMEM;
    bool found;
    size_t s = find_slot(m, k, &found);
    kc_kimap_entry *e = &m->entries[m->nentries];
    e->key = *k;
    e->value = value;
    e->live = true;
    m->index[s] = (uint32_t)(++m->nentries);
    m->live++;
    return KC_OK;
}

void *kc_kimap_remove(kc_kimap *m, const kc_keyidx *k)
{
    if (m->live == 0 || k->type == KC_KEYIDX_OTHER)
        return NULL;
    bool found;
    size_t s = find_slot(m, k, &found);
    if (!found)
        return NULL;
    kc_kimap_entry *e = &m->entries[m->index[s] - 1];
    void *v = e->value;
    e->live = false;
    m->live--;
    /* The dead entry keeps its place in the insertion order until a put
     * compacts the entries (they count towards the index's load). */
    kc_kislots_delete(m->index, m->index_cap, s, &kimap_ops, m);
    return v;
}

void kc_kimap_filter(kc_kimap *m, bool (*keep)(void *ctx, void *value), void *ctx)
{
    size_t before = m->live;
    for (size_t i = 0; i < m->nentries; i++)
        if (m->entries[i].live && !keep(ctx, m->entries[i].value)) {
            m->entries[i].live = false;
            m->live--;
        }
    if (m->live != before)
        reindex(m);
}

bool kc_kimap_next(const kc_kimap *m, size_t *pos, const kc_kimap_entry **e)
{
    while (*pos < m->nentries) {
        const kc_kimap_entry *x = &m->entries[(*pos)++];
        if (x->live) {
            *e = x;
            return true;
        }
    }
    return false;
}
