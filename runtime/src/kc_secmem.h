/* kc_secmem.h — one pool for small, long-lived secrets (key material held
 * per key: producer records, consumer keys, ephemeral secrets).
 *
 * Why not sodium_malloc per key: each call maps its own region (4 pages,
 * 3-4 mappings, one locked page), so a node holding 16 000 keys runs into
 * vm.max_map_count and the default 8 MiB RLIMIT_MEMLOCK. Here slots of a
 * few size classes (16 .. KC_SECMEM_MAX bytes) are carved from a handful of
 * chunks; mappings and locked memory grow with the bytes held, not with the
 * number of keys.
 *
 * Each chunk: one mmap with a PROT_NONE guard page on each side (a linear
 * overrun or underrun off the chunk faults), the data pages mlock'ed (never
 * swapped) and excluded from core dumps (MADV_DONTDUMP). The data pages stay
 * readable and writable: keys are read on every message, and switching the
 * protection of a shared chunk per access would cost a system call per
 * message and race between threads. Slots of one chunk are not separated
 * by guard pages; that is the price of not spending a mapping per key.
 *
 * If mlock is refused (RLIMIT_MEMLOCK), the chunk is used unlocked and one
 * warning is logged for the process: a node must still start. A chunk whose
 * slots are all free is unmapped, except the last one of its class.
 *
 * Thread-safe (one mutex). Freed slots are wiped with sodium_memzero; in
 * AddressSanitizer builds free slots are also poisoned, so a use after free
 * is caught as it is with sodium_malloc's unmapped pages. */
#ifndef KC_SECMEM_H
#define KC_SECMEM_H

#include <stdbool.h>
#include <stddef.h>

#define KC_SECMEM_MAX 1024  /* largest slot */

/* size bytes (1 .. KC_SECMEM_MAX), zeroed, 16-byte aligned; NULL for any
 * other size or when no memory can be mapped. */
void *kc_secmem_alloc(size_t size);
/* Wipes and releases a slot; NULL is ignored. A pointer that is not a live
 * slot of the pool aborts (as sodium_free does on a bad canary): it is a
 * bug that could otherwise hand one key's memory to two owners. */
void kc_secmem_free(void *p);

typedef struct kc_secmem_stats {
    size_t chunks;        /* each one mapping of data pages between two guard pages */
    size_t mapped;        /* bytes of data pages */
    size_t locked;        /* of which mlock'ed */
    size_t slots_used;
    bool lock_failed;     /* some chunk could not be locked (warned once) */
} kc_secmem_stats;

void kc_secmem_get_stats(kc_secmem_stats *out);

#endif
