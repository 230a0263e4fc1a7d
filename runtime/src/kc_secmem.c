#include "kc_secmem.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kc_log.h"

#if defined(__SANITIZE_ADDRESS__)
#define KC_SECMEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KC_SECMEM_ASAN 1
#endif
#endif
#ifdef KC_SECMEM_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define MIN_SHIFT 4                      /* the smallest slot: 16 bytes */
#define NCLASSES 7                       /* 16, 32, ..., 1024 */
#define MAX_CHUNK ((size_t)1 << 20)      /* data bytes of the largest chunk */
#define END UINT32_MAX                   /* end of a free list */
#define IN_USE (UINT32_MAX - 1)          /* next[] of a slot handed out */

/* Slots of one class in one mapping. Bookkeeping lives outside the chunk,
 * so a stray write into key memory cannot corrupt the free lists. */
typedef struct chunk {
    uint8_t *base;        /* the mapping, guard pages included */
    uint8_t *data;
    size_t size;          /* data bytes */
    size_t slot;
    uint32_t nslots, used, free_head;
    uint32_t *next;       /* per slot: the next free slot, END, or IN_USE */
    bool locked;
    struct chunk *next_chunk;
} chunk;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static chunk *classes[NCLASSES];  /* oldest first: allocation fills old chunks first */
static kc_secmem_stats stats;
static bool warned;

/* The system calls themselves: sanitizer runtimes replace mlock() with a
 * no-op that reports success, which would leave those builds (and their
 * tests of locking) believing keys are locked when they are not. */
static bool lock_pages(void *p, size_t n)
{
    return syscall(SYS_mlock, p, n) == 0;
}

static void unlock_pages(void *p, size_t n)
{
    (void)syscall(SYS_munlock, p, n);
}

static size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

static int class_of(size_t size)
{
    int c = 0;
    while (((size_t)1 << (MIN_SHIFT + c)) < size)
        c++;
    return c;
}

/* A new chunk for class c, sized like everything the class holds already
 * (so the number of chunks grows with the logarithm of the bytes held, up
 * to MAX_CHUNK each). Sets *lock_refused when mlock failed. */
static chunk *chunk_new(int c, bool *lock_refused)
{
    size_t page = page_size(), have = 0;
    chunk **tail = &classes[c];
    for (; *tail; tail = &(*tail)->next_chunk)
        have += (*tail)->size;
    size_t size = have < page ? page : have > MAX_CHUNK ? MAX_CHUNK : have;
    size = (size + page - 1) / page * page;
    chunk *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->slot = (size_t)1 << (MIN_SHIFT + c);
    k->size = size;
    k->nslots = (uint32_t)(size / k->slot);
    k->next = malloc(k->nslots * sizeof *k->next);
    void *base = k->next ? mmap(NULL, size + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
                                -1, 0)
                         : MAP_FAILED;
    if (base == MAP_FAILED) {
        free(k->next);
        free(k);
        return NULL;
    }
    k->base = base;
    k->data = k->base + page;
    if (mprotect(k->data, size, PROT_READ | PROT_WRITE) != 0) {
        munmap(k->base, size + 2 * page);
        free(k->next);
        free(k);
        return NULL;
    }
#ifdef MADV_DONTDUMP
    (void)madvise(k->data, size, MADV_DONTDUMP);
#endif
    k->locked = lock_pages(k->data, size);
    if (!k->locked)
        *lock_refused = true;
    for (uint32_t i = 0; i < k->nslots; i++)
        k->next[i] = i + 1 < k->nslots ? i + 1 : END;
    k->free_head = 0;
    POISON(k->data, size);
    *tail = k;
    stats.chunks++;
    stats.mapped += size;
    if (k->locked)
        stats.locked += size;
    else
        stats.lock_failed = true;
    return k;
}

static void chunk_unmap(chunk *k)
{
    size_t page = page_size();
    UNPOISON(k->data, k->size);
    sodium_memzero(k->data, k->size);  /* slots are wiped already; cheap insurance */
    if (k->locked)
        unlock_pages(k->data, k->size);
    munmap(k->base, k->size + 2 * page);
    stats.chunks--;
    stats.mapped -= k->size;
    if (k->locked)
        stats.locked -= k->size;
    free(k->next);
    free(k);
}

void *kc_secmem_alloc(size_t size)
{
    if (size == 0 || size > KC_SECMEM_MAX)
        return NULL;
    int c = class_of(size);
    bool lock_refused = false;
    pthread_mutex_lock(&mu);
    chunk *k = classes[c];
    while (k && k->free_head == END)
        k = k->next_chunk;
    if (!k)
        k = chunk_new(c, &lock_refused);
    uint8_t *p = NULL;
    if (k) {
        uint32_t i = k->free_head;
        k->free_head = k->next[i];
        k->next[i] = IN_USE;
        k->used++;
        stats.slots_used++;
        p = k->data + (size_t)i * k->slot;
        UNPOISON(p, size);  /* the slack after size stays poisoned */
    }
    bool warn = lock_refused && !warned;
    if (warn)
        warned = true;
    pthread_mutex_unlock(&mu);
    /* Logged outside the pool's lock: a log sink may allocate. */
    if (warn)
        kc_log(KC_LOG_WARNING, "kafkacrypto.secmem",
               "Could not lock key memory in RAM (mlock refused; see RLIMIT_MEMLOCK / ulimit -l): "
               "key material may be swapped to disk. Further chunks are tried without warning.");
    return p;  /* zero: fresh pages or wiped at free */
}

void kc_secmem_free(void *ptr)
{
    if (!ptr)
        return;
    uint8_t *p = ptr;
    pthread_mutex_lock(&mu);
    for (int c = 0; c < NCLASSES; c++) {
        for (chunk **at = &classes[c]; *at; at = &(*at)->next_chunk) {
            chunk *k = *at;
            if (p < k->data || p >= k->data + k->size)
                continue;
            size_t off = (size_t)(p - k->data);
            uint32_t i = (uint32_t)(off / k->slot);
            if (off % k->slot != 0 || k->next[i] != IN_USE)
                abort();  /* not a live slot: a double free or a stray pointer */
            UNPOISON(p, k->slot);
            sodium_memzero(p, k->slot);
            POISON(p, k->slot);
            k->next[i] = k->free_head;
            k->free_head = i;
            k->used--;
            stats.slots_used--;
            if (k->used == 0) {
                /* Keep at most one empty chunk per class: enough to avoid
                 * mapping and unmapping at every step around a chunk's
                 * edge, while memory held once is given back. */
                for (chunk *o = classes[c]; o; o = o->next_chunk)
                    if (o != k && o->used == 0) {
                        *at = k->next_chunk;
                        chunk_unmap(k);
                        break;
                    }
            }
            pthread_mutex_unlock(&mu);
            return;
        }
    }
    abort();  /* not from this pool */
}

void kc_secmem_get_stats(kc_secmem_stats *out)
{
    pthread_mutex_lock(&mu);
    *out = stats;
    pthread_mutex_unlock(&mu);
}
