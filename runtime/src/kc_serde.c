#include "kc_serde.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kc_array.h"
#include "kc_clock.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_message.h"
#include "kc_mp.h"
#include "kc_ratchet.h"
#include "kc_secmem.h"
#include "kc_waits.h"

#define LOGGER "kafkacrypto.crypto"

/* A producer generation. Its secrets are in kc_secmem (one locked pool, not
 * a mapping per key); a record loaded from oldkeys holds only its 32-byte
 * secret there, so 100 000 of them need about 3 MiB of locked memory. */
typedef struct pgen {
    kc_keyidx ki;
    uint8_t *secret;     /* KC_SECRET_BYTES */
    double birth;
    bool has_gens;       /* false: loaded from oldkeys, never encrypts */
    kc_keygen *gen;      /* [2], indexed by kc_kind; NULL without gens */
    uint64_t seq;        /* creation order across the serde */
} pgen;

/* A consumer key (in kc_secmem). */
typedef struct cgen {
    kc_keygen gen[2];
} cgen;

typedef struct root_entry {
    char *name;          /* NUL-terminated copy */
    size_t len;
    pgen *cur;           /* current producer generation, or NULL */
    pgen **pgens;        /* creation order */
    size_t npgens, pcap;
    kc_kimap pindex;     /* ki -> pgen*: oldkeys may hold 100 000 records */
    bool exported;       /* listed in kc_serde.proots */
    kc_kimap cgens;      /* ki -> cgen* */
    cgen *last_cgen;     /* the consumer key found last, and its index */
    kc_keyidx last_ki;
    kc_waits waits;      /* upstream's cwaits[root], bounded (kc_waits.h) */
    int wait_pool;       /* intervals deserializers may still sleep for this root's keys */
    /* kc_serde_root_stats: atomic, as deserializers count outside the lock */
    uint64_t count[KC_SERDE_NCOUNTS];
} root_entry;

struct kc_serde {
    pthread_mutex_t lock;
    int refs;            /* atomic builtins */
    kc_ratchet *ratchet;
    uint8_t *node;
    size_t node_len;
    char *sep;
    size_t sep_len;
    kc_root_fn root_fn;
    void *root_ctx;
    double max_pgen_age;
    int initial_wait;
    double wait_interval;
    int max_wait;
    void (*sleep_fn)(void *, double);
    void *sleep_ctx;
    double (*now_fn)(void *);
    void *now_ctx;
    kc_key_hook on_new_producer_key, on_missing_key;
    void *hook_ctx;
    kc_status (*persist_fn)(void *ctx, kc_err *err);
    void *persist_ctx;
    bool detached;       /* kc_serde_detach: the owner is gone */
    pthread_mutex_t persist_lock;  /* one persist at a time; taken before `lock` */
    uint64_t created_gen, saved_gen; /* producer records created / known saved */

    root_entry **roots;  /* creation order */
    size_t nroots, rcap;
    uint32_t *index;     /* open addressing over roots, entry + 1 */
    size_t index_cap;
    uint8_t hashkey[16];
    root_entry *last;    /* the root found last: most traffic goes to one root */
    root_entry **proots; /* roots in the order they first had producer records */
    size_t nproots, prcap;
    bool new_pgens;
    uint64_t pgen_seq;
};

/* Counters are atomic everywhere: deserializers count outside the lock. */
static void count_add(root_entry *r, kc_serde_count what)
{
    __atomic_fetch_add(&r->count[what], 1, __ATOMIC_RELAXED);
}

/* ---- defaults ----------------------------------------------------------- */

static void default_sleep(void *ctx, double seconds)
{
    (void)ctx;
    if (!(seconds > 0))
        return;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void kc_serde_config_init(kc_serde_config *c)
{
    memset(c, 0, sizeof *c);
    c->topic_separator = ".";
    c->max_pgen_age = 604800;
    c->initial_wait_intervals = 10;
    c->key_wait_interval = 1;
    c->max_key_wait_intervals = 0;
}

/* ---- roots ---------------------------------------------------------------- */

static uint64_t root_hash(const kc_serde *s, const char *name, size_t len)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const uint8_t *)name, len, s->hashkey);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

static size_t root_slot(const kc_serde *s, const char *name, size_t len, bool *found)
{
    size_t mask = s->index_cap - 1, i = (size_t)root_hash(s, name, len) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t e = s->index[i];
        if (e == 0) {
            *found = false;
            return i;
        }
        const root_entry *r = s->roots[e - 1];
        if (r->len == len && memcmp(r->name, name, len) == 0) {
            *found = true;
            return i;
        }
    }
}

static root_entry *root_find(kc_serde *s, const char *name, size_t len)
{
    if (s->last && s->last->len == len && memcmp(s->last->name, name, len) == 0)
        return s->last;
    if (!s->nroots)
        return NULL;
    bool found;
    size_t i = root_slot(s, name, len, &found);
    if (!found)
        return NULL;
    return s->last = s->roots[s->index[i] - 1];
}

/* Sleeping for a missing key is worth it while keys arrive: all of a
 * root's waits share one pool of intervals, refilled whenever a key for
 * the root arrives. Whatever its size, a flood of made-up indices (none of
 * which ever gets a key) holds the deserializers of a root for at most
 * this many intervals per key that arrives, instead of the initial wait
 * for each index (upstream: 9 s per made-up index). The first wait for a
 * real key, and B7's later waits, are as upstream while keys come. */
static int wait_pool_full(const kc_serde *s)
{
    return (s->initial_wait > 1 ? s->initial_wait - 1 : 0) + (s->max_wait > 0 ? s->max_wait : 0);
}

static root_entry *root_get(kc_serde *s, const char *name, size_t len)
{
    root_entry *r = root_find(s, name, len);
    if (r)
        return r;
    if (s->nroots + 1 > s->index_cap / 2) {
        size_t cap = s->index_cap ? 2 * s->index_cap : 16;
        uint32_t *idx = calloc(cap, sizeof *idx);
        if (!idx)
            return NULL;
        free(s->index);
        s->index = idx;
        s->index_cap = cap;
        for (size_t e = 0; e < s->nroots; e++) {
            bool found;
            size_t slot = root_slot(s, s->roots[e]->name, s->roots[e]->len, &found);
            s->index[slot] = (uint32_t)(e + 1);
        }
    }
    if (KC_ARRAY_GROW(s->roots, s->nroots, s->rcap) != KC_OK)
        return NULL;
    r = calloc(1, sizeof *r);
    if (!r || !(r->name = malloc(len + 1))) {
        free(r);
        return NULL;
    }
    memcpy(r->name, name, len);
    r->name[len] = '\0';
    r->len = len;
    kc_kimap_init(&r->cgens);
    kc_kimap_init(&r->pindex);
    kc_waits_init(&r->waits);
    r->wait_pool = wait_pool_full(s);
    bool found;
    size_t slot = root_slot(s, name, len, &found);
    s->roots[s->nroots++] = r;
    s->index[slot] = (uint32_t)s->nroots;
    return r;
}

static void pgen_free(pgen *p)
{
    if (!p)
        return;
    kc_secmem_free(p->secret);
    kc_secmem_free(p->gen);
    free(p);
}

/* A zeroed record with room for its secret (and generators). */
static pgen *pgen_new(bool with_gens)
{
    pgen *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->secret = kc_secmem_alloc(KC_SECRET_BYTES);
    p->gen = with_gens ? kc_secmem_alloc(2 * sizeof *p->gen) : NULL;
    if (!p->secret || (with_gens && !p->gen)) {
        pgen_free(p);
        return NULL;
    }
    p->has_gens = with_gens;
    return p;
}

static void root_free(root_entry *r)
{
    for (size_t i = 0; i < r->npgens; i++)
        pgen_free(r->pgens[i]);
    free(r->pgens);
    kc_kimap_free(&r->pindex);
    size_t pos = 0;
    const kc_kimap_entry *e;
    while (kc_kimap_next(&r->cgens, &pos, &e))
        kc_secmem_free(e->value);
    kc_kimap_free(&r->cgens);
    kc_waits_free(&r->waits);
    free(r->name);
    free(r);
}

static pgen *root_pgen(const root_entry *r, const kc_keyidx *ki)
{
    return kc_kimap_get(&r->pindex, ki);
}

static kc_status root_add_pgen(kc_serde *s, root_entry *r, pgen *p)
{
    if (KC_ARRAY_GROW(r->pgens, r->npgens, r->pcap) != KC_OK)
        return KC_ERR_NOMEM;
    if (!r->exported) {
        if (KC_ARRAY_GROW(s->proots, s->nproots, s->prcap) != KC_OK)
            return KC_ERR_NOMEM;
        s->proots[s->nproots++] = r;
        r->exported = true;
    }
    if (kc_kimap_put(&r->pindex, &p->ki, p) != KC_OK)
        return KC_ERR_NOMEM;
    p->seq = s->pgen_seq++;
    r->pgens[r->npgens++] = p;
    return KC_OK;
}

/* ---- lifetime --------------------------------------------------------------- */

kc_status kc_serde_new(const kc_serde_config *c, kc_serde **out, kc_err *err)
{
    *out = NULL;
    if (!c)
        return kc_err_set(err, KC_ERR_INVALID, "serde: no configuration");
    if (kc_init() != 0)
        return kc_err_set(err, KC_ERR_CRYPTO, "libsodium initialisation failed");
    if (!c->root_fn && !c->topic_separator)
        return kc_err_set(err, KC_ERR_INVALID,
                          "serde: topic_separator: expected a string (\".\" by default)");
    if (!(c->key_wait_interval >= 0) || !(c->max_pgen_age >= 0))
        return kc_err_set(err, KC_ERR_INVALID,
                          "serde: key_wait_interval and max_pgen_age must be >= 0");
    kc_serde *s = calloc(1, sizeof *s);
    if (!s)
        return kc_err_set(err, KC_ERR_NOMEM, "serde: out of memory");
    s->refs = 1;
    pthread_mutex_init(&s->lock, NULL);
    s->ratchet = c->ratchet;
    s->root_fn = c->root_fn;
    s->root_ctx = c->root_ctx;
    s->max_pgen_age = c->max_pgen_age;
    s->initial_wait = c->initial_wait_intervals;
    s->wait_interval = c->key_wait_interval;
    s->max_wait = c->max_key_wait_intervals;
    s->sleep_fn = c->sleep_fn ? c->sleep_fn : default_sleep;
    s->sleep_ctx = c->sleep_ctx;
    s->now_fn = c->now_fn ? c->now_fn : kc_clock_wall_fn;
    s->now_ctx = c->now_ctx;
    s->on_new_producer_key = c->on_new_producer_key;
    s->on_missing_key = c->on_missing_key;
    s->hook_ctx = c->hook_ctx;
    s->persist_fn = c->persist_fn;
    s->persist_ctx = c->persist_ctx;
    pthread_mutex_init(&s->persist_lock, NULL);
    randombytes_buf(s->hashkey, sizeof s->hashkey);
    bool ok = true;
    if (c->topic_separator) {
        s->sep_len = strlen(c->topic_separator);
        ok = (s->sep = strdup(c->topic_separator)) != NULL;
    }
    if (ok && c->node_id) {
        s->node_len = c->node_id_len;
        ok = (s->node = malloc(c->node_id_len ? c->node_id_len : 1)) != NULL;
        if (ok && c->node_id_len)
            memcpy(s->node, c->node_id, c->node_id_len);
    }
    if (!ok) {
        kc_serde_unref(s);
        return kc_err_set(err, KC_ERR_NOMEM, "serde: out of memory");
    }
    *out = s;
    return KC_OK;
}

kc_serde *kc_serde_ref(kc_serde *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void kc_serde_unref(kc_serde *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < s->nroots; i++)
        root_free(s->roots[i]);
    free(s->roots);
    free(s->index);
    free(s->proots);
    free(s->node);
    free(s->sep);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->persist_lock);
    free(s);
}

void kc_serde_free(kc_serde *s)
{
    kc_serde_unref(s);
}

/* ---- topics and roots ---------------------------------------------------------- */

kc_status kc_serde_root_of(const kc_serde *s, const char *topic, const char **root,
                           size_t *root_len, kc_err *err)
{
    size_t tl = strlen(topic);
    if (s->root_fn) {
        kc_status st = s->root_fn(s->root_ctx, topic, tl, root, root_len);
        if (st != KC_OK)
            return kc_err_set(err, st, "topic %s: the root rule failed", topic);
        return KC_OK;
    }
    /* Text before the first separator, or the whole topic (spec §7.1). */
    const char *hit = memmem(topic, tl, s->sep, s->sep_len);
    *root = topic;
    *root_len = hit ? (size_t)(hit - topic) : tl;
    return KC_OK;
}

/* ---- producer side ------------------------------------------------------------- */

static void log_ki(kc_log_level level, const char *fmt, const char *root, const kc_keyidx *ki)
{
    if (!kc_log_enabled(level))
        return;
    char d[2 * KC_KEYIDX_MAX_BYTES + 1];
    kc_log(level, LOGGER, fmt, root, kc_keyidx_describe(ki, d, sizeof d));
}

/* §7.4.1, with B4: a derived index that is already known without
 * generators (it came from oldkeys: the ratchet's advance was lost) makes
 * us advance the ratchet and derive again. Called with the lock held. */
static kc_status get_producer(kc_serde *s, root_entry *r, kc_err *err)
{
    if (!s->ratchet)
        return kc_err_set(err, KC_ERR_STATE,
                          "topic root %s: this serde has no ratchet and cannot encrypt", r->name);
    /* §3.3: the long form hashes the signing keys; without any, every such
     * producer would derive the same indices (and a short index collides too) */
    if (s->node && s->node_len == 0)
        return kc_err_set(err, KC_ERR_STATE,
                          "topic root %s: mgmt_long_keyindex is set but this node has no signing "
                          "key to derive a long key index from (spec §3.3); refusing to encrypt "
                          "with a short one. Provision the node (its .crypto needs a signing "
                          "key), or set mgmt_long_keyindex : False to choose short indices",
                          r->name);
    for (size_t tries = 0;; tries++) {
        kc_keyidx ki;
        uint8_t secret[KC_SECRET_BYTES];
        kc_status st = kc_ratchet_derive(s->ratchet, (const uint8_t *)r->name, r->len, s->node,
                                         s->node_len, &ki, secret, err);
        if (st != KC_OK)
            return st;
        pgen *known = root_pgen(r, &ki);
        if (known && !known->has_gens) {
            sodium_memzero(secret, sizeof secret);
            kc_log(KC_LOG_CRITICAL, LOGGER,
                   "Potential key reuse scenario detected! Incrementing ratchet for safety.");
            /* Each loaded record can force one step at most. */
            if (tries > r->npgens)
                return kc_err_set(err, KC_ERR_STATE,
                                  "topic root %s: the ratchet keeps yielding used key indices",
                                  r->name);
            if ((st = kc_ratchet_increment(s->ratchet, err)) != KC_OK)
                return st;
            continue;
        }
        if (known) {  /* still ours: its counters continue */
            sodium_memzero(secret, sizeof secret);
            r->cur = known;
            return KC_OK;
        }
        pgen *p = pgen_new(true);
        if (!p) {
            sodium_memzero(secret, sizeof secret);
            return kc_err_set(err, KC_ERR_NOMEM, "topic root %s: out of memory", r->name);
        }
        p->ki = ki;
        memcpy(p->secret, secret, sizeof secret);
        sodium_memzero(secret, sizeof secret);
        p->birth = s->now_fn(s->now_ctx);
        kc_keygen_init(&p->gen[KC_KIND_KEY], p->secret, KC_SECRET_BYTES, kc_keygen_ctx_key, 16, NULL);
        kc_keygen_init(&p->gen[KC_KIND_VALUE], p->secret, KC_SECRET_BYTES, kc_keygen_ctx_value, 16,
                       NULL);
        if (root_add_pgen(s, r, p) != KC_OK) {
            pgen_free(p);
            return kc_err_set(err, KC_ERR_NOMEM, "topic root %s: out of memory", r->name);
        }
        r->cur = p;
        s->new_pgens = true;
        s->created_gen++;
        log_ki(KC_LOG_INFO, "Got new producer key for root=%s. New key index=%s", r->name, &ki);
        if (s->on_new_producer_key)
            s->on_new_producer_key(s->hook_ctx, r->name, r->len, &ki);
        return KC_OK;
    }
}

static bool kind_ok(kc_kind kind)
{
    return kind == KC_KIND_KEY || kind == KC_KIND_VALUE;
}

kc_status kc_serde_serialize(kc_serde *s, kc_kind kind, const char *topic,
                             const uint8_t *value, size_t len, kc_buf *out, kc_err *err)
{
    if (!out)
        return kc_err_set(err, KC_ERR_INVALID, "serialize: no output buffer");
    out->len = 0;
    if (!s || !topic || !kind_ok(kind))
        return kc_err_set(err, KC_ERR_INVALID, "serialize: bad arguments");
    if (!value)
        return KC_OK;  /* null stays null */
    kc_err local;
    if (!err)
        err = &local;
    const char *root;
    size_t root_len;
    kc_status st = kc_serde_root_of(s, topic, &root, &root_len, err);
    uint8_t salt[KC_KEYGEN_SALTBYTES], key[KC_KEYGEN_KEYBYTES], nonce[KC_KEYGEN_NONCEBYTES];
    kc_keyidx ki;
    bool unsaved = false;
    if (st == KC_OK) {
        pthread_mutex_lock(&s->lock);
        root_entry *r = root_get(s, root, root_len);
        if (s->detached)
            st = kc_err_set(err, KC_ERR_STATE, "topic %s: the node of this serializer is closed",
                            topic);
        else if (!r)
            st = kc_err_set(err, KC_ERR_NOMEM, "topic %s: out of memory", topic);
        else if (!r->cur)
            st = get_producer(s, r, err);
        if (st == KC_OK) {
            /* The salt is taken under the lock: no two messages share it. */
            kc_keygen_next(&r->cur->gen[kind], salt, key, nonce);
            ki = r->cur->ki;
            count_add(r, KC_SERDE_ENCRYPTED);
        }
        unsaved = s->persist_fn && s->created_gen > s->saved_gen;
        pthread_mutex_unlock(&s->lock);
    }
    if (st == KC_OK)
        st = kc_wire_seal(out, &ki, salt, key, nonce, value, len, err);
    /* Nobody gets a message whose key would be lost in a crash. */
    if (st == KC_OK && unsaved)
        st = kc_serde_persist(s, err);
    sodium_memzero(key, sizeof key);
    sodium_memzero(nonce, sizeof nonce);
    if (st != KC_OK) {
        out->len = 0;
        kc_log(KC_LOG_WARNING, LOGGER, "Serializer failed for topic %s: %s", topic, err->msg);
    }
    return st;
}

kc_status kc_serde_serialize_message(kc_serde *s, kc_kind kind, const char *topic,
                                     const kc_message *m, kc_buf *out, kc_err *err)
{
    if (!m) {
        if (out)
            out->len = 0;
        return kc_err_set(err, KC_ERR_INVALID, "serialize: no message object");
    }
    if (m->null) {
        if (out)
            out->len = 0;
        return KC_OK;
    }
    if (m->cleartext)  /* checked without retry, as upstream */
        return kc_serde_serialize(s, kind, topic, m->bytes.data ? m->bytes.data : (const uint8_t *)"",
                                  m->bytes.len, out, err);
    if (!out)
        return kc_err_set(err, KC_ERR_INVALID, "serialize: no output buffer");
    /* Already encrypted (or not kafkacrypto at all): its raw bytes. */
    if (kc_buf_set(out, m->bytes.data, m->bytes.len) != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "serialize: out of memory");
    return KC_OK;
}

kc_status kc_serde_serialize_any(kc_serde *s, kc_kind kind, const char *topic,
                                 const kc_any *value, kc_buf *out, bool *is_null, kc_err *err)
{
    if (is_null)
        *is_null = false;
    switch (value ? value->type : KC_ANY_NONE) {
    case KC_ANY_NONE:
        if (out)
            out->len = 0;
        if (is_null)
            *is_null = true;
        return KC_OK;
    case KC_ANY_BYTES:
        return kc_serde_serialize(s, kind, topic, value->p ? value->p : (const uint8_t *)"",
                                  value->len, out, err);
    case KC_ANY_MESSAGE:
        if (value->msg && value->msg->null && is_null)
            *is_null = true;
        return kc_serde_serialize_message(s, kind, topic, value->msg, out, err);
    default:
        if (out)
            out->len = 0;
        return kc_err_set(err, KC_ERR_INVALID, "Passed value is not bytes or a KafkaCryptoMessage");
    }
}

/* ---- consumer side --------------------------------------------------------------- */

/* Consumer key lookup; remembers the last hit (most messages of a root
 * carry the same key index). Lock held. */
static cgen *cgen_find(root_entry *r, const kc_keyidx *ki)
{
    if (r->last_cgen && kc_keyidx_equal(&r->last_ki, ki))
        return r->last_cgen;
    cgen *g = kc_kimap_get(&r->cgens, ki);
    if (g) {
        r->last_cgen = g;
        r->last_ki = *ki;
    }
    return g;
}

/* kc_serde_limit_key_wait: per thread, so one consumer's bound never cuts
 * another thread's wait. Monotonic, unlike the serde's injectable now_fn. */
static _Thread_local bool key_wait_limited;
static _Thread_local double key_wait_until;

void kc_serde_limit_key_wait(double seconds)
{
    key_wait_limited = seconds >= 0;
    key_wait_until = key_wait_limited ? kc_clock_mono() + seconds : 0;
}

/* How long the next sleep for a key may be: interval, cut to what the
 * calling thread's bound leaves (<= 0: none). */
static double key_wait_nap(double interval)
{
    if (!key_wait_limited)
        return interval;
    double left = key_wait_until - kc_clock_mono();
    return left < interval ? left : interval;
}

/* §4.4 with B7 and D4, lock held (released while sleeping). Returns the
 * consumer key for ki in r, or NULL. A retry (a message deserialized again)
 * only follows a wait that exists: it never adds an index, and brings back
 * one given up only KC_WAITS_RETRY_AFTER later, so an application retrying
 * every message it holds cannot refill the table with made-up indices. */
static cgen *wait_for_key(kc_serde *s, root_entry *r, const kc_keyidx *ki, bool retry)
{
    cgen *g = cgen_find(r, ki);
    if (s->detached)
        return g; /* nobody will bring the key */
    int i = 1, budget = s->max_wait;
    bool initial = false, first = true;
    while (!g && i > 0) {
        kc_wait *w = kc_waits_get(&r->waits, ki);
        if (!w || kc_wait_given_up(w)) {
            /* a wait whose index was replaced or given up while we slept
             * ends; a retry adds nothing back, and revives a given-up index
             * only after a while */
            if (!first || (retry && !(w && s->now_fn(s->now_ctx) - w->given_up_at >=
                                                KC_WAITS_RETRY_AFTER)))
                return NULL;
            if (w) {
                kc_wait_rearm(w);
            } else {
                /* First sight of (root, ki): this caller waits the initial
                 * intervals, and the counter tells later callers how long. */
                if (!(w = kc_waits_add(&r->waits, ki)))
                    return NULL;
                initial = true;
                w->count = i = s->initial_wait;
            }
        } else if (initial) {
            w->count--;
        }
        if (!initial) {
            i = w->count;
            /* B7: later misses may wait up to max_key_wait_intervals. */
            if (i < budget + 1)
                i = budget + 1;
        }
        first = false;
        if (s->on_missing_key)
            s->on_missing_key(s->hook_ctx, r->name, r->len, ki);
        i--;
        if (i > 0) {
            double nap = key_wait_nap(s->wait_interval);
            if (nap <= 0) {
                /* the caller's bound: the index stays asked for, and later
                 * tries (a retry right after) do not wait again, as after a
                 * full wait */
                if (initial)
                    w->count = 1;
                return NULL;
            }
            if (r->wait_pool <= 0) {
                if (initial)
                    w->count = 1; /* as if the wait had run out */
                return NULL;
            }
            r->wait_pool--;
            if (!initial)
                budget--;
            pthread_mutex_unlock(&s->lock);
            s->sleep_fn(s->sleep_ctx, nap);
            pthread_mutex_lock(&s->lock);
        }
        g = cgen_find(r, ki);
    }
    return g;
}

static bool points_into(const kc_buf *b, const void *p)
{
    return p && b->data && (const uint8_t *)p >= b->data && (const uint8_t *)p < b->data + b->cap;
}

/* Counts an outcome for the root of topic (found or made under the lock). */
static void count_topic(kc_serde *s, const char *topic, kc_serde_count what)
{
    const char *root;
    size_t root_len;
    if (kc_serde_root_of(s, topic, &root, &root_len, NULL) != KC_OK)
        return;
    pthread_mutex_lock(&s->lock);
    root_entry *r = root_get(s, root, root_len);
    if (r)
        count_add(r, what);
    pthread_mutex_unlock(&s->lock);
}

void kc_serde_count_hold(kc_serde *s, const char *topic, kc_serde_count what)
{
    if (s && topic && (what == KC_SERDE_HELD || what == KC_SERDE_RELEASED ||
                       what == KC_SERDE_EXPIRED))
        count_topic(s, topic, what);
}

void kc_serde_foreach_root_stats(kc_serde *s, kc_serde_stats_fn fn, void *ctx)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nroots; i++) {
        root_entry *r = s->roots[i];
        kc_serde_root_stats st = {.root = r->name,
                                  .producer_keys = r->npgens,
                                  .consumer_keys = kc_kimap_count(&r->cgens)};
        for (int c = 0; c < KC_SERDE_NCOUNTS; c++)
            st.count[c] = __atomic_load_n(&r->count[c], __ATOMIC_RELAXED);
        fn(ctx, &st);
    }
    pthread_mutex_unlock(&s->lock);
}

static kc_status deserialize(kc_serde *s, kc_kind kind, const char *topic, const uint8_t *data,
                             size_t len, kc_message *out, bool retry, kc_err *err)
{
    if (!s || !topic || !out || !kind_ok(kind))
        return kc_err_set(err, KC_ERR_INVALID, "deserialize: bad arguments");
    if (points_into(&out->bytes, data) || points_into(&out->topic, topic)) {
        /* The input lives in the output object (e.g. its own raw bytes
         * again): work on a scratch object, then move it in. */
        kc_message tmp;
        kc_message_init(&tmp);
        kc_status st = deserialize(s, kind, topic, data, len, &tmp, retry, err);
        if (st == KC_OK) {
            kc_message_clear(out);
            *out = tmp;
        } else {
            kc_message_clear(&tmp);
        }
        return st;
    }
    out->kind = kind;
    if (!data) {
        kc_message_set_null(out);
        return KC_OK;
    }
    size_t topic_len = strlen(topic);
    msgpack_zone *zone = kc_message_zone(out);
    if (!zone)
        return kc_err_set(err, KC_ERR_NOMEM, "deserialize: out of memory");
    kc_wire w;
    if (kc_wire_parse(data, len, zone, &w, NULL) != KC_OK) {
        /* Not a kafkacrypto message: never decryptable. */
        if (!retry)
            count_topic(s, topic, KC_SERDE_NOT_KAFKACRYPTO);
        if (kc_message_set_encrypted(out, data, len, s, kind, topic, topic_len, false) != KC_OK)
            return kc_err_set(err, KC_ERR_NOMEM, "deserialize: out of memory");
        return KC_OK;
    }
    const char *root;
    size_t root_len;
    kc_status st = kc_serde_root_of(s, topic, &root, &root_len, err);
    if (st != KC_OK)
        return st;
    uint8_t key[KC_KEYGEN_KEYBYTES], nonce[KC_KEYGEN_NONCEBYTES];
    bool have_key = false, key_found = false;
    root_entry *counted = NULL;
    if (w.ki_usable) {
        /* An explicit salt (the usual case) is derived from a copy of the
         * generator after the lock is released, so that deserializers on
         * several threads do not queue for it. */
        bool explicit_salt = w.salt.type == KC_ANY_BYTES && w.salt.len <= KC_KEYGEN_SALTBYTES;
        bool copied = false;
        kc_keygen copy;
        pthread_mutex_lock(&s->lock);
        root_entry *r = root_find(s, root, root_len);
        cgen *g = r ? cgen_find(r, &w.ki) : NULL;
        if (!g && (r || (r = root_get(s, root, root_len))))
            g = wait_for_key(s, r, &w.ki, retry);
        counted = r;
        key_found = g != NULL;
        /* The generator's counter moves even though the salt is explicit
         * (as upstream); a salt of another type selects the counter. */
        if (g && explicit_salt) {
            copy = g->gen[kind];
            kc_keygen_advance(&g->gen[kind]);
            copied = true;
        } else if (g) {
            const uint8_t *salt = NULL;  /* the counter */
            if (w.salt.type == KC_ANY_BYTES)
                salt = w.salt.p ? w.salt.p : (const uint8_t *)"";
            have_key = kc_keygen_at(&g->gen[kind], salt, w.salt.len, key, nonce, NULL) == KC_OK;
        }
        pthread_mutex_unlock(&s->lock);
        if (copied) {
            have_key = kc_keygen_at(&copy, w.salt.p ? w.salt.p : (const uint8_t *)"", w.salt.len,
                                    key, nonce, NULL) == KC_OK;
            sodium_memzero(&copy, sizeof copy);
        }
    }
    bool opened = have_key && w.ct_is_bytes && kc_wire_open(w.ct, w.ct_len, key, nonce, &out->bytes);
    sodium_memzero(key, sizeof key);
    sodium_memzero(nonce, sizeof nonce);
    /* A retry that fails again is not counted twice. */
    if (!counted && !retry)
        count_topic(s, topic, KC_SERDE_INVALID);
    else if (counted && (opened || !retry))
        count_add(counted, opened ? KC_SERDE_DECRYPTED
                           : key_found ? KC_SERDE_INVALID
                                       : KC_SERDE_NO_KEY);
    if (opened) {
        kc_message_mark_cleartext(out);
        return KC_OK;
    }
    /* Any failure after the shape check: the key may still come. */
    if (kc_message_set_encrypted(out, data, len, s, kind, topic, topic_len, true) != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "deserialize: out of memory");
    return KC_OK;
}

kc_status kc_serde_deserialize(kc_serde *s, kc_kind kind, const char *topic,
                               const uint8_t *data, size_t len, kc_message *out,
                               kc_err *err)
{
    return deserialize(s, kind, topic, data, len, out, false, err);
}

kc_status kc_serde_deserialize_again(kc_serde *s, kc_kind kind, const char *topic,
                                     const uint8_t *data, size_t len, kc_message *out,
                                     kc_err *err)
{
    return deserialize(s, kind, topic, data, len, out, true, err);
}

kc_status kc_serde_add_consumer_key(kc_serde *s, const char *root, const kc_keyidx *ki,
                                    const uint8_t secret[KC_SECRET_BYTES], kc_err *err)
{
    if (!s || !root || !ki || !secret)
        return kc_err_set(err, KC_ERR_INVALID, "consumer key: bad arguments");
    if (ki->type != KC_KEYIDX_INT && ki->type != KC_KEYIDX_BYTES)
        return kc_err_set(err, KC_ERR_INVALID,
                          "root %s: consumer key: the key index must be an integer or bytes", root);
    cgen *g = kc_secmem_alloc(sizeof *g);
    if (!g)
        return kc_err_set(err, KC_ERR_NOMEM, "root %s: out of memory", root);
    kc_keygen_init(&g->gen[KC_KIND_KEY], secret, KC_SECRET_BYTES, kc_keygen_ctx_key, 16, NULL);
    kc_keygen_init(&g->gen[KC_KIND_VALUE], secret, KC_SECRET_BYTES, kc_keygen_ctx_value, 16, NULL);
    kc_status st = KC_OK;
    pthread_mutex_lock(&s->lock);
    root_entry *r = root_get(s, root, strlen(root));
    cgen *old = r ? kc_kimap_get(&r->cgens, ki) : NULL;
    if (!r || kc_kimap_put(&r->cgens, ki, g) != KC_OK) {
        kc_secmem_free(g);
        st = kc_err_set(err, KC_ERR_NOMEM, "root %s: out of memory", root);
    } else {
        kc_secmem_free(old);
        r->last_cgen = NULL;
        kc_waits_remove(&r->waits, ki);
        r->wait_pool = wait_pool_full(s);
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* ---- periodic step and persistence (§7.10) --------------------------------------- */

typedef struct prune_ctx {
    double now, max_age;
} prune_ctx;

static bool pgen_young(void *ctx, void *value)
{
    const prune_ctx *pc = ctx;
    return !(((const pgen *)value)->birth + pc->max_age < pc->now);
}

kc_status kc_serde_ratchet_step(kc_serde *s, kc_err *err)
{
    if (!s)
        return kc_err_set(err, KC_ERR_INVALID, "ratchet step: no serde");
    pthread_mutex_lock(&s->lock);
    /* Advance first: once it succeeded no current index can be derived
     * again, so dropping records cannot lead to a counter restarting. */
    kc_status st = s->ratchet ? kc_ratchet_increment(s->ratchet, err) : KC_OK;
    if (st == KC_OK) {
        kc_log(KC_LOG_INFO, LOGGER, "Periodic ratchet increment.");
        prune_ctx pc = {s->now_fn(s->now_ctx), s->max_pgen_age};
        for (size_t i = 0; i < s->nroots; i++) {
            root_entry *r = s->roots[i];
            size_t keep = 0;
            kc_kimap_filter(&r->pindex, pgen_young, &pc);
            for (size_t j = 0; j < r->npgens; j++) {
                if (!pgen_young(&pc, r->pgens[j]))
                    pgen_free(r->pgens[j]);
                else
                    r->pgens[keep++] = r->pgens[j];
            }
            r->npgens = keep;
            r->cur = NULL;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}

void kc_serde_detach(kc_serde *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->persist_lock);
    pthread_mutex_lock(&s->lock);
    s->detached = true;
    s->ratchet = NULL;
    s->on_new_producer_key = s->on_missing_key = NULL;
    s->hook_ctx = NULL;
    s->persist_fn = NULL;
    s->persist_ctx = NULL;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&s->persist_lock);
}

kc_status kc_serde_persist(kc_serde *s, kc_err *err)
{
    if (!s->persist_fn)
        return KC_OK;
    pthread_mutex_lock(&s->persist_lock);
    pthread_mutex_lock(&s->lock);
    uint64_t gen = s->created_gen;
    bool needed = s->persist_fn && gen > s->saved_gen; /* not detached meanwhile */
    pthread_mutex_unlock(&s->lock);
    kc_status st = needed ? s->persist_fn(s->persist_ctx, err) : KC_OK;
    if (st == KC_OK && needed) {
        pthread_mutex_lock(&s->lock);
        if (gen > s->saved_gen) /* the export saw every record up to gen */
            s->saved_gen = gen;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&s->persist_lock);
    return st;
}

bool kc_serde_take_new_pgens(kc_serde *s)
{
    pthread_mutex_lock(&s->lock);
    bool v = s->new_pgens;
    s->new_pgens = false;
    pthread_mutex_unlock(&s->lock);
    return v;
}

kc_status kc_serde_export_pgens(kc_serde *s, kc_buf *out, size_t *count, kc_err *err)
{
    if (!s || !out)
        return kc_err_set(err, KC_ERR_INVALID, "export pgens: bad arguments");
    kc_mp_out mo;
    kc_mp_out_init(&mo);
    pthread_mutex_lock(&s->lock);
    size_t n = 0;
    for (size_t i = 0; i < s->nproots; i++)
        n += s->proots[i]->npgens;
    msgpack_pack_map(&mo.pk, 1);
    kc_mp_pack_text(&mo.pk, "pgens");
    msgpack_pack_array(&mo.pk, n);
    for (size_t i = 0; i < s->nproots; i++) {
        const root_entry *r = s->proots[i];
        for (size_t j = 0; j < r->npgens; j++) {
            const pgen *p = r->pgens[j];
            msgpack_pack_array(&mo.pk, 4);
            msgpack_pack_str_with_body(&mo.pk, r->name, r->len);
            kc_keyidx_pack(&mo.pk, &p->ki);
            kc_mp_pack_bin(&mo.pk, p->secret, KC_SECRET_BYTES);
            msgpack_pack_double(&mo.pk, p->birth);
        }
    }
    pthread_mutex_unlock(&s->lock);
    kc_status st = kc_mp_out_status(&mo);
    if (st == KC_OK)
        st = kc_buf_set(out, mo.buf.data, mo.buf.len);
    kc_mp_out_free(&mo);  /* wipes */
    if (st != KC_OK)
        return kc_err_set(err, st, "export pgens: out of memory");
    if (count)
        *count = n;
    kc_log(KC_LOG_INFO, LOGGER, "Saving %zu old production keys.", n);
    return KC_OK;
}

/* One validated [root, ki, secret, birth] entry of oldkeys. */
typedef struct old_entry {
    const uint8_t *root;
    size_t root_len;
    kc_keyidx ki;
    const uint8_t *secret;
    double birth;
} old_entry;

static kc_status parse_old_entry(const msgpack_object *o, uint32_t idx, old_entry *e, kc_err *err)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4)
        return kc_err_set(err, KC_ERR_INVALID,
                          "oldkeys: pgens entry %u: expected [root, keyidx, secret, birth]", idx);
    const msgpack_object *f = o->via.array.ptr;
    if (!kc_mp_bytes(&f[0], &e->root, &e->root_len))
        return kc_err_set(err, KC_ERR_INVALID,
                          "oldkeys: pgens entry %u: field root: expected a string", idx);
    if (!kc_keyidx_from_mp(&e->ki, &f[1]) || e->ki.type == KC_KEYIDX_OTHER)
        return kc_err_set(err, KC_ERR_INVALID,
                          "oldkeys: pgens entry %u: field keyidx: expected an integer or up to "
                          "%d bytes", idx, KC_KEYIDX_MAX_BYTES);
    if (!kc_mp_bytes_len(&f[2], KC_SECRET_BYTES, &e->secret))
        return kc_err_set(err, KC_ERR_INVALID,
                          "oldkeys: pgens entry %u: field secret: expected %d bytes", idx,
                          KC_SECRET_BYTES);
    if (!kc_mp_number(&f[3], &e->birth) || isnan(e->birth))
        return kc_err_set(err, KC_ERR_INVALID,
                          "oldkeys: pgens entry %u: field birth: expected a number", idx);
    return KC_OK;
}

kc_status kc_serde_import_pgens(kc_serde *s, const uint8_t *p, size_t n, kc_err *err)
{
    if (!s || (!p && n))
        return kc_err_set(err, KC_ERR_INVALID, "import pgens: bad arguments");
    kc_mp_doc doc;
    kc_status st = kc_mp_decode(&doc, p, n, "oldkeys", err);
    if (st != KC_OK)
        return st;
    const msgpack_object *o = kc_mp_root(&doc), *list = NULL;
    old_entry *entries = NULL;
    uint32_t count = 0;
    if (o->type != MSGPACK_OBJECT_MAP) {
        st = kc_err_set(err, KC_ERR_INVALID, "oldkeys: expected a map {\"pgens\": [...]}");
        goto out;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++)
        if (kc_mp_text_eq(&o->via.map.ptr[i].key, "pgens"))
            list = &o->via.map.ptr[i].val;
    if (!list)
        goto out;  /* nothing to load, as upstream */
    if (list->type != MSGPACK_OBJECT_ARRAY) {
        st = kc_err_set(err, KC_ERR_INVALID, "oldkeys: field pgens: expected an array");
        goto out;
    }
    kc_log(KC_LOG_INFO, LOGGER, "Found pgens to load.");
    count = list->via.array.size;
    entries = calloc(count ? count : 1, sizeof *entries);
    if (!entries) {
        st = kc_err_set(err, KC_ERR_NOMEM, "oldkeys: out of memory");
        goto out;
    }
    /* Validate everything before changing anything. */
    for (uint32_t i = 0; i < count && st == KC_OK; i++)
        st = parse_old_entry(&list->via.array.ptr[i], i, &entries[i], err);
    if (st != KC_OK)
        goto out;
    pthread_mutex_lock(&s->lock);
    double now = s->now_fn(s->now_ctx);
    bool info = kc_log_enabled(KC_LOG_INFO);  /* describe 100 000 indices only if logged */
    for (uint32_t i = 0; i < count && st == KC_OK; i++) {
        const old_entry *e = &entries[i];
        char d[2 * KC_KEYIDX_MAX_BYTES + 1] = "";
        if (info)
            kc_log(KC_LOG_INFO, LOGGER, "Attempting load of root=%.*s, ki=%s, b=%.17g at %.17g",
                   (int)e->root_len, (const char *)e->root,
                   kc_keyidx_describe(&e->ki, d, sizeof d), e->birth, now);
        if (!(now - e->birth < s->max_pgen_age))
            continue;
        root_entry *r = root_get(s, (const char *)e->root, e->root_len);
        if (!r) {
            st = kc_err_set(err, KC_ERR_NOMEM, "oldkeys: out of memory");
            break;
        }
        pgen *known = root_pgen(r, &e->ki);
        if (known && known->has_gens)
            continue;  /* a live generation is never replaced */
        pgen *rec = known ? known : pgen_new(false);
        if (!rec) {
            st = kc_err_set(err, KC_ERR_NOMEM, "oldkeys: out of memory");
            break;
        }
        if (!known) {
            rec->ki = e->ki;
            if (root_add_pgen(s, r, rec) != KC_OK) {
                pgen_free(rec);
                st = kc_err_set(err, KC_ERR_NOMEM, "oldkeys: out of memory");
                break;
            }
        }
        memcpy(rec->secret, e->secret, KC_SECRET_BYTES);
        rec->birth = e->birth;
        kc_log(KC_LOG_INFO, LOGGER, "Loaded old key keyindex=%s, birth=%.17g for root=%s", d,
               e->birth, r->name);
    }
    pthread_mutex_unlock(&s->lock);
out:
    free(entries);
    kc_mp_doc_free(&doc);
    return st;
}

/* ---- inspection for the key exchange and tests ---------------------------------- */

void kc_serde_foreach_pgen(kc_serde *s, const char *root, kc_pgen_fn fn, void *ctx)
{
    pthread_mutex_lock(&s->lock);
    root_entry *r = root_find(s, root, strlen(root));
    for (size_t i = 0; r && i < r->npgens; i++)
        fn(ctx, &r->pgens[i]->ki, r->pgens[i]->secret, r->pgens[i]->birth, r->pgens[i]->has_gens);
    pthread_mutex_unlock(&s->lock);
}

void kc_serde_foreach_pgen_root(kc_serde *s, kc_root_name_fn fn, void *ctx)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nroots; i++)
        if (s->roots[i]->npgens)
            fn(ctx, s->roots[i]->name);
    pthread_mutex_unlock(&s->lock);
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = (*(const pgen *const *)a)->seq, y = (*(const pgen *const *)b)->seq;
    return x < y ? -1 : x > y;
}

kc_status kc_serde_find_pgens(kc_serde *s, const char *root, const kc_keyidx *wanted,
                              size_t nwanted, kc_pgen_fn fn, void *ctx)
{
    pgen **hit = malloc((nwanted ? nwanted : 1) * sizeof *hit);
    if (!hit)
        return KC_ERR_NOMEM;
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    root_entry *r = root_find(s, root, strlen(root));
    for (size_t i = 0; r && i < nwanted; i++) {
        pgen *p = root_pgen(r, &wanted[i]);
        if (p)
            hit[n++] = p;
    }
    qsort(hit, n, sizeof *hit, by_seq);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || hit[i] != hit[i - 1])  /* an index asked twice is sent once */
            fn(ctx, &hit[i]->ki, hit[i]->secret, hit[i]->birth, hit[i]->has_gens);
    pthread_mutex_unlock(&s->lock);
    free(hit);
    return KC_OK;
}

size_t kc_serde_pick_waits(kc_serde *s, const char *root, kc_keyidx *kis, size_t cap)
{
    pthread_mutex_lock(&s->lock);
    root_entry *r = root_find(s, root, strlen(root));
    size_t n = r ? kc_waits_pick(&r->waits, kis, cap) : 0;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void kc_serde_waits_unanswered(kc_serde *s, const char *root, const kc_keyidx *kis, size_t n)
{
    pthread_mutex_lock(&s->lock);
    root_entry *r = root_find(s, root, strlen(root));
    if (r)
        kc_waits_unanswered(&r->waits, kis, n, s->now_fn(s->now_ctx));
    pthread_mutex_unlock(&s->lock);
}

void kc_serde_wait_stats(kc_serde *s, const char *root, kc_serde_waits_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->lock);
    root_entry *one = root ? root_find(s, root, strlen(root)) : NULL;
    for (size_t i = 0; i < s->nroots; i++) {
        const root_entry *r = s->roots[i];
        if (root && r != one)
            continue;
        out->waiting += kc_waits_count(&r->waits);
        out->bytes += kc_waits_bytes(&r->waits);
        out->given_up += r->waits.given_up;
        out->replaced += r->waits.replaced;
    }
    pthread_mutex_unlock(&s->lock);
}

kc_status kc_serde_producer_state(kc_serde *s, const char *root, kc_kind kind,
                                  kc_keyidx *ki, uint8_t salt[KC_KEYGEN_SALTBYTES])
{
    if (!kind_ok(kind))
        return KC_ERR_INVALID;
    pthread_mutex_lock(&s->lock);
    root_entry *r = root_find(s, root, strlen(root));
    kc_status st = KC_ERR_NOTFOUND;
    if (r && r->cur) {
        if (ki)
            *ki = r->cur->ki;
        if (salt)
            memcpy(salt, kc_keygen_salt(&r->cur->gen[kind]), KC_KEYGEN_SALTBYTES);
        st = KC_OK;
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}
