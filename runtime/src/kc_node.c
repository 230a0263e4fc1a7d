#include "kc_node.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_array.h"
#include "kc_broker.h"
#include "kc_chain.h"
#include "kc_clock.h"
#include "kc_cryptokey.h"
#include "kc_cryptokey_ref.h"
#include "kc_hex.h"
#include "kc_keyidx.h"
#include "kc_log.h"
#include "kc_node_metrics.h"
#include "kc_ratelimit.h"
#include "kc_store.h"
#include "kc_thread.h"
#include "kc_waits.h"

#define LOGGER KC_NODE_LOGGER
#define METADATA_TIMEOUT_MS 2000
#define MISSING_TOPIC_RECHECK 5.0   /* s between looks for key topics that do not exist yet */
#define REPLY_AGAIN_AFTER 1.0       /* s: D3, each key reply is sent a second time */
#define REPLY_AGAIN_MAX 4096        /* second copies waiting; beyond, a flood gets one copy */
#define ASK_AGAIN_AFTER 1.0         /* s: D5, an unanswered first request is sent a second time */
#define REFUSAL_LOG_INTERVAL 60.0   /* s: a refusal is logged at WARNING once per requester, root */

typedef enum topic_kind { TOPIC_MGMT, TOPIC_REQS, TOPIC_KEYS } topic_kind;

/* A key-passing topic the management consumer reads, every partition. */
typedef struct tracked {
    char *topic;
    char *root;        /* TOPIC_REQS / TOPIC_KEYS */
    topic_kind kind;
    int nparts;        /* 0: not known to exist yet */
    int64_t *next;     /* per partition: offset to resume from, -1 = initial position */
    bool counted;      /* nparts looked up: a rebuild counts only what is new */
    bool existed;      /* the topic existed when first counted */
    bool assigned;     /* in the consumer's assignment: a request may go out */
} tracked;

/* The key requests of a root (§7.3): the last round while no reply has
 * come (n > 0), and what was last said about made-up key indices. */
typedef struct sub_round {
    char *root;
    double time;         /* of the last round; -inf once it was answered */
    kc_keyidx *kis;
    size_t n;
    double flood_logged; /* last report of indices given up or replaced */
    uint64_t given_up, replaced;  /* totals reported then */
    /* since the last answered round: what a stalled root's report says */
    double first_unanswered;      /* time of the first round not answered */
    uint64_t rounds, replies_seen, replies_refused;
    double stall_told;            /* when the stall was last reported (daily) */
    /* D5: the first round's requests, sent once more at again_at if that
     * round is still unanswered */
    kc_exchange_msgs again;
    kc_buf again_key;
    double again_at;
} sub_round;

/* D3: a key reply to send once more at `due` (upstream's consumer may
 * start reading ROOT.keys just after a prompt first copy). */
typedef struct reply_again {
    char *topic;
    kc_buf key, value;
    double due;
} reply_again;

struct kc_node {
    kc_store *store;
    char *node_id;
    kc_tunables t;
    kc_cryptokey *ck;
    kc_ratchet *ratchet;
    kc_serde *serde;
    kc_exchange *x;
    kc_producer *prod;
    kc_consumer *cons;
    const kc_exchange_variant *vops;
    void *variant;               /* NULL: the protocol of §7; used by the management thread */
    bool embedded;               /* the management clients use the embedded broker */
    bool borrowed_store;         /* the caller's store: not closed here */
    double (*now_fn)(void *ctx);
    void *now_ctx;

    pthread_mutex_t mu;          /* everything below; never held while calling the serde */
    tracked *trk;
    size_t ntrk, trk_cap;
    bool dirty;                  /* the assignment must be rebuilt */
    double missing_checked;
    char **subs_needed;
    size_t nsubs, subs_cap;
    sub_round *rounds;
    size_t nrounds, rounds_cap;
    kc_node_stats stats;
    kc_root_table counters;      /* per root: kc_root_counters.h */
    kc_exchange_check_fn check;  /* the policy's, wrapped to tell its refusals */
    void *check_ctx;
    double expiry_warned;        /* the last chain expiry warning (daily) */
    kc_ratelimit refusals;       /* refused requesters and roots said at WARNING */
    reply_again *again;
    size_t nagain, again_cap;
    double last_unknown_warning;

    double last_ratchet;
    pthread_t thread;
    bool started;
    atomic_bool stop;
};

/* ---- small helpers --------------------------------------------------------------------- */

static double now(const kc_node *n)
{
    return n->now_fn(n->now_ctx);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && b > 0 && strcmp(s + a - b, suffix) == 0;
}

static char *concat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", a, b);
    return s;
}

static const char *describe_kis(const kc_keyidx *kis, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 4 < cap; i++) {
        char d[140];
        int k = snprintf(out + used, cap - used, "%s%s", i ? "," : "[",
                         kc_keyidx_describe(&kis[i], d, sizeof d));
        if (k > 0)
            used += (size_t)k < cap - used ? (size_t)k : cap - used - 1;
    }
    if (used + 2 < cap)
        snprintf(out + used, cap - used, "]");
    return out;
}

/* ---- tracked topics (node lock held) ------------------------------------------------------- */

static tracked *find_tracked(kc_node *n, const char *topic)
{
    for (size_t i = 0; i < n->ntrk; i++)
        if (strcmp(n->trk[i].topic, topic) == 0)
            return &n->trk[i];
    return NULL;
}

static bool track(kc_node *n, const char *topic, const char *root, topic_kind kind)
{
    if (find_tracked(n, topic))
        return false;
    if (KC_ARRAY_GROW(n->trk, n->ntrk, n->trk_cap) != KC_OK)
        return false;
    tracked *t = &n->trk[n->ntrk];
    memset(t, 0, sizeof *t);
    t->topic = strdup(topic);
    t->root = root ? strdup(root) : NULL;
    t->kind = kind;
    if (!t->topic || (root && !t->root)) {
        free(t->topic);
        free(t->root);
        return false;
    }
    n->ntrk++;
    n->dirty = true;
    return true;
}

/* Whether root was added (not already waiting for the request step). */
static bool need_subscription(kc_node *n, const char *root)
{
    for (size_t i = 0; i < n->nsubs; i++)
        if (strcmp(n->subs_needed[i], root) == 0)
            return false;
    if (KC_ARRAY_GROW(n->subs_needed, n->nsubs, n->subs_cap) != KC_OK)
        return false;
    if (!(n->subs_needed[n->nsubs] = strdup(root)))
        return false;
    n->nsubs++;
    return true;
}

static sub_round *find_round(kc_node *n, const char *root)
{
    for (size_t i = 0; i < n->nrounds; i++)
        if (strcmp(n->rounds[i].root, root) == 0)
            return &n->rounds[i];
    return NULL;
}

static sub_round *get_round(kc_node *n, const char *root)
{
    sub_round *r = find_round(n, root);
    if (r)
        return r;
    if (KC_ARRAY_GROW(n->rounds, n->nrounds, n->rounds_cap) != KC_OK)
        return NULL;
    r = &n->rounds[n->nrounds];
    memset(r, 0, sizeof *r);
    r->time = r->flood_logged = r->stall_told = -HUGE_VAL;
    if (!(r->root = strdup(root)))
        return NULL;
    n->nrounds++;
    return r;
}

static void forget_again(sub_round *r)
{
    kc_exchange_msgs_clear(&r->again);
    kc_buf_free(&r->again_key);
}

/* A reply came: nothing pending, a new request may go out at once. */
static void answer_round(sub_round *r)
{
    free(r->kis);
    r->kis = NULL;
    r->n = 0;
    forget_again(r);
    r->time = -HUGE_VAL;
    r->rounds = r->replies_seen = r->replies_refused = 0;
    r->stall_told = -HUGE_VAL;
}

typedef enum served_what { SERVED_ANSWERED, SERVED_REFUSED, SERVED_NOT_HELD } served_what;

/* A key request of root answered (with `replies` replies), refused (for
 * `why`) or asking only for keys not held. */
static void count_served(kc_node *n, const char *root, served_what what, size_t replies,
                         kc_refusal why)
{
    pthread_mutex_lock(&n->mu);
    kc_root_counters *c = kc_root_table_get(&n->counters, root);
    if (c) {
        c->requests_answered += what == SERVED_ANSWERED;
        c->requests_not_held += what == SERVED_NOT_HELD;
        if (what == SERVED_REFUSED)
            c->refused[why]++;
        c->replies_sent += replies;
    }
    pthread_mutex_unlock(&n->mu);
}

/* Set on the management thread when the node's policy check refused: the
 * refusal is then counted as a policy's, not the chain's. */
static _Thread_local int refused_by_policy;

static kc_status checked_by_policy(void *ctx, const char *root, const char *usage, double t,
                                   const kc_chain_result *chain, kc_err *err)
{
    kc_node *n = ctx;
    kc_status st = n->check(n->check_ctx, root, usage, t, chain, err);
    if (st != KC_OK)
        refused_by_policy = 1;
    return st;
}

/* ---- serde hooks: any thread, serde lock held ---------------------------------------------- */

static void track_reqs(void *ctx, const char *root)
{
    kc_node *n = ctx;
    char *topic = concat(root, n->t.topic_suffix_reqs);
    pthread_mutex_lock(&n->mu);
    if (topic)
        track(n, topic, root, TOPIC_REQS);
    pthread_mutex_unlock(&n->mu);
    free(topic);
}

static void on_new_producer_key(void *ctx, const char *root, size_t root_len, const kc_keyidx *ki)
{
    (void)ki; /* the serde logs it */
    kc_node *n = ctx;
    char r[KC_TOPIC_NAME_MAX + 1];
    snprintf(r, sizeof r, "%.*s", (int)root_len, root);
    track_reqs(n, r);
    if (n->cons)
        kc_consumer_wake(n->cons); /* start serving requests now */
}

static void on_missing_key(void *ctx, const char *root, size_t root_len, const kc_keyidx *ki)
{
    (void)ki;
    kc_node *n = ctx;
    char r[KC_TOPIC_NAME_MAX + 1];
    snprintf(r, sizeof r, "%.*s", (int)root_len, root);
    char *topic = concat(r, n->t.topic_suffix_keys);
    pthread_mutex_lock(&n->mu);
    tracked *t = topic ? find_tracked(n, topic) : NULL;
    /* A request waits for the topic's assignment (the rebuild asks then):
     * a reply written before it could be missed. */
    bool news = !t && topic ? track(n, topic, r, TOPIC_KEYS)
                : t && t->assigned && need_subscription(n, r);
    pthread_mutex_unlock(&n->mu);
    free(topic);
    /* ask for the key now, not after the poll; a deserializer retrying
     * while the root waits for its request step wakes nothing */
    if (n->cons && news)
        kc_consumer_wake(n->cons);
}

/* ---- persistence of producer keys (§7.10) ---------------------------------------------------- */

/* Existing oldkeys that this node's .crypto cannot open were wrapped by
 * another key (a .crypto replaced or restored from the wrong backup):
 * rewriting them under ours would lose every key they hold for good. They
 * are kept byte for byte, and no new producer key can be saved, so none is
 * handed out (the serde refuses to encrypt). */
static kc_status check_oldkeys_key(kc_node *n, kc_err *err)
{
    kc_value old = kc_value_none();
    kc_buf plain = KC_BUF_INIT;
    kc_status st = KC_OK;
    if (kc_store_load_value(n->store, "crypto", "oldkeys", &old, NULL) == KC_OK &&
        old.type == KC_VALUE_BYTES &&
        kc_cryptokey_unwrap_opaque(n->ck, old.data, old.len, &plain) != KC_OK)
        st = kc_err_set(err, KC_ERR_CRYPTO,
                        "file %s: [%s-crypto] oldkeys was wrapped with a key other than this "
                        "node's .crypto file holds; it is kept unchanged and no new producer "
                        "key is saved or used. Restore the .crypto file that wrapped it, or "
                        "remove the option to give up the keys it holds",
                        kc_store_path(n->store), n->node_id);
    kc_buf_free(&plain);
    kc_value_clear(&old);
    return st;
}

/* The serde's persist_fn: every producer record, wrapped with the .crypto
 * file's key, as crypto.oldkeys. */
static kc_status save_pgens(void *ctx, kc_err *err)
{
    kc_node *n = ctx;
    kc_buf plain = KC_BUF_INIT, wrapped = KC_BUF_INIT;
    size_t count = 0;
    kc_log(KC_LOG_INFO, LOGGER, "(Re)writing producer keys.");
    kc_status st = check_oldkeys_key(n, err);
    if (st == KC_OK)
        st = kc_serde_export_pgens(n->serde, &plain, &count, err);
    if (st == KC_OK)
        st = kc_cryptokey_wrap_opaque(n->ck, plain.data, plain.len, &wrapped, err);
    if (st == KC_OK) {
        kc_value v = kc_value_bytes(wrapped.data, wrapped.len);
        st = kc_store_store_value(n->store, "crypto", "oldkeys", &v, err);
    }
    if (st != KC_OK)
        kc_log(KC_LOG_ERROR, LOGGER, "Could not save producer keys: %s", err->msg);
    kc_buf_free(&plain);
    kc_buf_free(&wrapped);
    return st;
}

kc_status kc_node_persist(kc_node *n, kc_err *err)
{
    kc_err local;
    return kc_serde_persist(n->serde, err ? err : &local);
}

/* ---- producing key-exchange messages (partition 0) ------------------------------------------ */

static void send0(kc_node *n, const char *topic, const kc_buf *key, const kc_buf *value)
{
    kc_err err;
    if (kc_producer_send(n->prod, topic, 0, key->data, key->len, value->data, value->len, NULL,
                         &err) != KC_OK)
        kc_log(KC_LOG_WARNING, LOGGER, "Could not send to %s: %s", topic, err.msg);
}

/* D3: remember a reply just sent, to send it again REPLY_AGAIN_AFTER later. */
static void send_again_later(kc_node *n, const char *topic, const kc_buf *key, const kc_buf *value)
{
    pthread_mutex_lock(&n->mu);
    if (n->nagain < REPLY_AGAIN_MAX && KC_ARRAY_GROW(n->again, n->nagain, n->again_cap) == KC_OK) {
        reply_again *a = &n->again[n->nagain];
        memset(a, 0, sizeof *a);
        a->due = now(n) + REPLY_AGAIN_AFTER;
        if ((a->topic = strdup(topic)) && kc_buf_append(&a->key, key->data, key->len) == KC_OK &&
            kc_buf_append(&a->value, value->data, value->len) == KC_OK) {
            n->nagain++;
        } else {
            free(a->topic);
            kc_buf_free(&a->key);
            kc_buf_free(&a->value);
        }
    }
    pthread_mutex_unlock(&n->mu);
}

/* Sends the second copies that are due (all of them when `all`, at close).
 * Not under the node lock: a send may block on a full queue. */
static void send_again_due(kc_node *n, bool all)
{
    pthread_mutex_lock(&n->mu);
    double t = now(n);
    size_t ndue = 0;
    reply_again *due = malloc((n->nagain ? n->nagain : 1) * sizeof *due);
    size_t keep = 0;
    for (size_t i = 0; i < n->nagain; i++) {
        if (due && (all || n->again[i].due <= t))
            due[ndue++] = n->again[i];
        else
            n->again[keep++] = n->again[i];
    }
    n->nagain = keep;
    n->stats.replies_sent_again += ndue;
    pthread_mutex_unlock(&n->mu);
    for (size_t i = 0; i < ndue; i++) {
        kc_log(KC_LOG_DEBUG, LOGGER, "Sending a key reply on %s again (D3).", due[i].topic);
        send0(n, due[i].topic, &due[i].key, &due[i].value);
        free(due[i].topic);
        kc_buf_free(&due[i].key);
        kc_buf_free(&due[i].value);
    }
    free(due);
}

/* On the embedded broker, key topics get one partition (upstream reads only
 * partition 0). Idempotent. */
static void create_key_topics(kc_node *n, const char *root)
{
    kc_broker *b = n->embedded ? kc_broker_embedded_get() : NULL;
    kc_err err;
    if (b && kc_broker_create_key_topics(b, &n->t, root, &err) != KC_OK)
        kc_log(KC_LOG_WARNING, LOGGER, "Could not create key topics of root %s: %s", root,
               err.msg);
}

/* ---- handlers of the management loop ----------------------------------------------------------- */

typedef struct held_ctx {
    kc_exchange_keys *keys;
} held_ctx;

static void add_held(void *ctx, const kc_keyidx *ki, const uint8_t secret[KC_SECRET_BYTES],
                     double birth, bool can_encrypt)
{
    (void)birth;
    (void)can_encrypt;
    kc_exchange_keys_add(((held_ctx *)ctx)->keys, ki, secret);
}

static void count_refused(kc_node *n)
{
    pthread_mutex_lock(&n->mu);
    n->stats.refused++;
    pthread_mutex_unlock(&n->mu);
}

/* Whether a refusal of requester fpr for root is due at WARNING: once per
 * REFUSAL_LOG_INTERVAL, so a flood of refused requests cannot flood the log. */
static bool refusal_due(kc_node *n, const char *fpr, const char *root)
{
    double t = now(n);
    pthread_mutex_lock(&n->mu);
    bool due = kc_ratelimit_due(&n->refusals, fpr, root, t, REFUSAL_LOG_INTERVAL);
    pthread_mutex_unlock(&n->mu);
    return due;
}

/* §3 of issue 10: a refused key request is said at WARNING on this, the
 * refusing, side with who asked (the fingerprint keyinfo shows for its
 * signing key), the root, and the reason (the chain item and lists, or the
 * policy file and hook), once per requester and root per interval; a
 * failure that is no refusal (no usable key exchange version) likewise. */
static void log_refused_request(kc_node *n, const char *root, const kc_record *m,
                                const kc_err *err)
{
    char fpr[65];
    kc_chain_signer_fingerprint(m->value, m->value_len, fpr);
    if (refusal_due(n, fpr, root))
        kc_log(KC_LOG_WARNING, LOGGER, "Refused key request for root=%s from requester %s: %s "
               "(said once per requester and root per %.0f s)", root, fpr, err->msg,
               REFUSAL_LOG_INTERVAL);
    else
        kc_log(KC_LOG_INFO, LOGGER, "Refused key request for root=%s from requester %s: %s",
               root, fpr, err->msg);
}

/* A variant's refusal is routine (INFO); its failure is not (WARNING). */
static void log_variant(kc_status st, const kc_err *err)
{
    kc_log(st == KC_ERR_DENIED ? KC_LOG_INFO : KC_LOG_WARNING, LOGGER, "%s", err->msg);
}

/* §7.4.2: a key request on <root>.reqs */
static void handle_request(kc_node *n, const char *root, const kc_record *m)
{
    kc_keyidx *wanted = NULL;
    size_t nwanted = 0;
    kc_exchange_keys sel = {0};
    kc_exchange_msgs replies = {0};
    kc_buf msgkey = KC_BUF_INIT;
    kc_err err;
    char d[512];
    if (!m->key || !m->value ||
        kc_exchange_msgkey_parse(m->key, m->key_len, &wanted, &nwanted, &err) != KC_OK) {
        kc_log(KC_LOG_INFO, LOGGER, "Ignoring a malformed key request for root=%s.", root);
        count_refused(n);
        count_served(n, root, SERVED_REFUSED, 0, KC_REFUSED_MALFORMED);
        goto done;
    }
    held_ctx hc = {&sel};
    if (kc_serde_find_pgens(n->serde, root, wanted, nwanted, add_held, &hc) != KC_OK)
        kc_log(KC_LOG_WARNING, LOGGER, "Out of memory looking up keys for root=%s.", root);
    if (sel.n == 0) {
        kc_log(KC_LOG_INFO, LOGGER, "No keys for root=%s to send to new receiver.", root);
        count_served(n, root, SERVED_NOT_HELD, 0, 0);
        goto done;
    }
    kc_keyidx kis[KC_EXCHANGE_MAX_KEYS];
    for (size_t i = 0; i < sel.n; i++)
        kis[i] = sel.items[i].ki;
    kc_exchange_msgkey_build(kis, sel.n, &msgkey);
    refused_by_policy = 0;
    kc_status st = n->variant ? n->vops->answer_request(n->variant, root, &sel, m->value,
                                                        m->value_len, &replies, &err)
                              : kc_exchange_encrypt_keys(n->x, root, &sel, m->value, m->value_len,
                                                         &replies, &err);
    if (st != KC_OK) {
        log_refused_request(n, root, m, &err);
        kc_log(KC_LOG_INFO, LOGGER, "Failed sending current encryption keys for root=%s to new "
               "receiver.", root);
        count_refused(n);
        count_served(n, root, SERVED_REFUSED, 0, kc_refusal_of(st, refused_by_policy));
        goto done;
    }
    char *topic = concat(root, n->t.topic_suffix_keys);
    for (size_t i = 0; topic && i < replies.n; i++) {
        kc_log(KC_LOG_INFO, LOGGER, "Sending current encryption keys for root=%s to new "
               "receiver, msgkey=%s.", root, describe_kis(kis, sel.n, d, sizeof d));
        send0(n, topic, &msgkey, &replies.items[i].value);
        send_again_later(n, topic, &msgkey, &replies.items[i].value);
    }
    free(topic);
    pthread_mutex_lock(&n->mu);
    n->stats.replies_sent += replies.n;
    pthread_mutex_unlock(&n->mu);
    count_served(n, root, SERVED_ANSWERED, replies.n, 0);
done:
    free(wanted);
    kc_exchange_keys_clear(&sel);
    kc_exchange_msgs_clear(&replies);
    kc_buf_free(&msgkey);
}

/* §7.5: a key reply on <root>.keys */
static void handle_reply(kc_node *n, const char *root, const kc_record *m)
{
    kc_exchange_keys got = {0};
    kc_err err;
    char d[140], k[2 * 32 + 4];
    kc_status st = !m->value ? KC_ERR_INVALID
                   : n->variant ? n->vops->accept_reply(n->variant, root, m->value, m->value_len,
                                                        &got, &err)
                   : kc_exchange_decrypt_keys(n->x, root, m->value, m->value_len, &got, &err);
    pthread_mutex_lock(&n->mu);
    sub_round *seen = find_round(n, root);
    if (seen) {
        seen->replies_seen++;
        seen->replies_refused += st != KC_OK && st != KC_ERR_NOTFOUND;
    }
    kc_root_counters *c = st != KC_OK && st != KC_ERR_NOTFOUND
                              ? kc_root_table_get(&n->counters, root) : NULL;
    if (c)
        c->replies_refused++;
    pthread_mutex_unlock(&n->mu);
    if (st != KC_OK) {
        if (n->variant && m->value)
            log_variant(st, &err);
        count_refused(n);
        kc_exchange_keys_clear(&got);
        return;
    }
    kc_hex(m->key ? m->key : (const uint8_t *)"", m->key ? (m->key_len < 32 ? m->key_len : 32) : 0, k);
    if (m->key && m->key_len > 32)
        strcat(k, "...");
    for (size_t i = 0; i < got.n; i++) {
        kc_log(KC_LOG_INFO, LOGGER, "Received new encryption key for root=%s, key index=%s, "
               "msgkey=%s", root, kc_keyidx_describe(&got.items[i].ki, d, sizeof d), k);
        if (kc_serde_add_consumer_key(n->serde, root, &got.items[i].ki, got.items[i].secret,
                                      &err) != KC_OK)
            kc_log(KC_LOG_WARNING, LOGGER, "Could not keep key for root=%s: %s", root, err.msg);
    }
    pthread_mutex_lock(&n->mu);
    n->stats.keys_received += got.n;
    sub_round *r = find_round(n, root);
    c = kc_root_table_get(&n->counters, root);
    if (c)
        c->keys_received += got.n;
    if (c && got.n && r && r->rounds)
        kc_histogram_add(&c->latency, now(n) - r->first_unanswered);
    if (r && r->n) {
        char missing[512];
        size_t nm = 0;
        kc_keyidx miss[KC_EXCHANGE_MAX_KEYS];
        for (size_t i = 0; i < r->n; i++) {
            bool found = false;
            for (size_t j = 0; j < got.n && !found; j++)
                found = kc_keyidx_equal(&r->kis[i], &got.items[j].ki);
            if (!found && nm < KC_EXCHANGE_MAX_KEYS)
                miss[nm++] = r->kis[i];
        }
        if (nm)
            kc_log(KC_LOG_WARNING, LOGGER, "For root=%s, the keys %s were requested but not "
                   "received.", root, describe_kis(miss, nm, missing, sizeof missing));
        answer_round(r); /* a new request may go out at once for what is missing */
    }
    pthread_mutex_unlock(&n->mu);
    kc_exchange_keys_clear(&got);
}

/* §7.12: chains topic */
static void handle_chain(kc_node *n, const kc_record *m)
{
    kc_err err;
    size_t nspk = kc_cryptokey_num_spk(n->ck), idx;
    bool ours = false;
    for (size_t i = 0; i < nspk && m->key && !ours; i++) {
        kc_key spk;
        kc_buf b = KC_BUF_INIT;
        if (kc_cryptokey_get_spk(n->ck, i, &spk, NULL) == KC_OK && kc_key_bytes(&spk, &b) == KC_OK)
            ours = b.len == m->key_len && memcmp(b.data, m->key, b.len) == 0;
        kc_key_clear(&spk);
        kc_buf_free(&b);
    }
    if (!ours || !m->value)
        return; /* a chain for another node */
    if (kc_exchange_update_own_chain(n->x, m->value, m->value_len, &idx, &err) != KC_OK) {
        count_refused(n);
        return;
    }
    kc_log(KC_LOG_INFO, LOGGER, "New chain is superior, using it.");
    char name[32];
    snprintf(name, sizeof name, "chain%zu", idx);
    kc_value v = kc_value_bytes(m->value, m->value_len);
    if (kc_store_store_value(n->store, "chains", name, &v, &err) != KC_OK)
        kc_log(KC_LOG_ERROR, LOGGER, "Could not save the new chain: %s", err.msg);
    pthread_mutex_lock(&n->mu);
    n->stats.chains_adopted++;
    pthread_mutex_unlock(&n->mu);
}

/* §7.12: allowlist / denylist topics (project decision B3) */
static void handle_list(kc_node *n, kc_list_kind which, const kc_record *m)
{
    kc_buf entry = KC_BUF_INIT;
    kc_err err;
    kc_status st = m->value ? kc_exchange_add_to_list(n->x, which, m->value, m->value_len, &entry,
                                                       &err)
                            : KC_ERR_INVALID;
    if (st == KC_OK) {
        uint8_t digest[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(digest, entry.data, entry.len);
        kc_value key = kc_value_bytes(digest, sizeof digest), v = kc_value_bytes(entry.data, entry.len);
        if (kc_store_store_keyed(n->store, which == KC_LIST_ALLOW ? "allowlist" : "denylist", &key,
                                 &v, &err) != KC_OK)
            kc_log(KC_LOG_ERROR, LOGGER, "Could not save the new list entry: %s", err.msg);
        pthread_mutex_lock(&n->mu);
        n->stats.list_entries_added++;
        pthread_mutex_unlock(&n->mu);
    } else if (st != KC_ERR_STATE && st != KC_ERR_NOTFOUND) {
        count_refused(n);
    }
    kc_buf_free(&entry);
}

static void dispatch(kc_node *n, const kc_record *m)
{
    const char *topic = m->topic;
    if (strcmp(topic, n->t.mgmt_topic_chains) == 0) {
        handle_chain(n, m);
    } else if (strcmp(topic, n->t.mgmt_topic_allowlist) == 0) {
        handle_list(n, KC_LIST_ALLOW, m);
    } else if (strcmp(topic, n->t.mgmt_topic_denylist) == 0) {
        handle_list(n, KC_LIST_DENY, m);
    } else if (ends_with(topic, n->t.topic_suffix_reqs) || ends_with(topic, n->t.topic_suffix_keys)) {
        bool reqs = ends_with(topic, n->t.topic_suffix_reqs);
        size_t rl = strlen(topic) - strlen(reqs ? n->t.topic_suffix_reqs : n->t.topic_suffix_keys);
        char root[KC_TOPIC_NAME_MAX + 1];
        snprintf(root, sizeof root, "%.*s", (int)rl, topic);
        if (reqs)
            handle_request(n, root, m);
        else
            handle_reply(n, root, m);
    } else {
        pthread_mutex_lock(&n->mu);
        bool warn = now(n) - n->last_unknown_warning >= 10.0;
        if (warn)
            n->last_unknown_warning = now(n);
        pthread_mutex_unlock(&n->mu);
        if (warn)
            kc_log(KC_LOG_WARNING, LOGGER, "Unknown topic type in message: %s", topic);
    }
}

/* ---- the assignment --------------------------------------------------------------------------- */

/* What a rebuild looks up, outside the node lock, for a topic not counted
 * yet. */
typedef struct lookup {
    char *topic, *root;   /* topic NULL: counted before, nothing to look up */
    topic_kind kind;
    bool first;           /* never counted: a key topic's end is looked up */
    int count;
    int64_t *ends;        /* per partition, -1 where unknown; NULL: not looked up */
} lookup;

/* For the topics of ls[0..n) with a `topic`: creates their roots' key
 * topics on the embedded broker; fetches the metadata of the topics this
 * node writes for them (a first send would otherwise wait about a second
 * for it) and counts their partitions, each in one request for all (the
 * consumer's count also lets it fetch as soon as they are assigned); and
 * looks up the ends of the key topics never counted, through the producer,
 * whose connection holds no fetch (kc_producer_end_offsets). */
static void look_up(kc_node *n, lookup *ls, size_t nls)
{
    char **writes = calloc(2 * nls + 1, sizeof *writes);
    const char **topics = calloc(nls + 1, sizeof *topics);
    int *counts = calloc(nls + 1, sizeof *counts);
    size_t nw = 0, nt = 0;
    for (size_t i = 0; writes && topics && counts && i < nls; i++) {
        const lookup *l = &ls[i];
        if (!l->topic)
            continue;
        kc_log(KC_LOG_DEBUG, LOGGER, "Looking up new topic %s.", l->topic);
        topics[nt++] = l->topic;
        if (!l->root)
            continue;
        create_key_topics(n, l->root);
        /* a producer writes replies; a consumer requests */
        if (l->kind == TOPIC_REQS)
            writes[nw++] = concat(l->root, n->t.topic_suffix_keys);
        if (l->kind == TOPIC_KEYS) {
            writes[nw++] = concat(l->root, n->t.topic_suffix_subs);
            writes[nw++] = concat(l->root, n->t.topic_suffix_reqs);
        }
    }
    size_t k = 0;
    for (size_t i = 0; writes && i < nw; i++)
        if (writes[i])
            writes[k++] = writes[i];
    kc_err err;
    if (k && !atomic_load(&n->stop))
        kc_producer_prepare_topics(n->prod, (const char *const *)writes, k, METADATA_TIMEOUT_MS);
    if (nt && !atomic_load(&n->stop) &&
        kc_consumer_partition_counts(n->cons, topics, nt, METADATA_TIMEOUT_MS, counts, &err) !=
            KC_OK)
        kc_log(KC_LOG_DEBUG, LOGGER, "%s", err.msg);
    for (size_t i = 0, j = 0; topics && counts && i < nls; i++) {
        lookup *l = &ls[i];
        if (!l->topic)
            continue;
        l->count = counts[j++];
        if (!l->first || l->count <= 0 || !(l->ends = malloc((size_t)l->count * sizeof *l->ends)))
            continue;
        /* one ListOffsets for all partitions; unknown ends stay -1 and the
         * assignment asks for them */
        kc_topic_partition *tps = calloc((size_t)l->count, sizeof *tps);
        for (int p = 0; tps && p < l->count; p++)
            tps[p] = (kc_topic_partition){l->topic, p, KC_OFFSET_END};
        bool ok = tps && !atomic_load(&n->stop) &&
                  kc_producer_end_offsets(n->prod, tps, (size_t)l->count, METADATA_TIMEOUT_MS,
                                          &err) == KC_OK;
        if (tps && !ok && !atomic_load(&n->stop))
            kc_log(KC_LOG_DEBUG, LOGGER, "%s", err.msg);
        for (int p = 0; p < l->count; p++)
            l->ends[p] = ok ? tps[p].offset : -1;
        free(tps);
    }
    for (size_t i = 0; i < k; i++)
        free(writes[i]);
    free(writes);
    free(topics);
    free(counts);
}

/* Looks up the partition counts of topics not counted yet (without the
 * node lock: metadata requests block; each costs a round trip, so topics
 * counted before are not asked again), then assigns every partition of
 * every tracked topic.
 *
 * A key topic that exists is read from its end (§7.1: upstream's "latest"),
 * looked up once, when first counted, and kept as the position to resume
 * from until a message is read: a later rebuild (another root's key topic
 * added) must not move an unread partition to the end again, past the
 * replies to a request sent since. */
static void rebuild_assignment(kc_node *n)
{
    pthread_mutex_lock(&n->mu);
    size_t ntrk = n->ntrk;
    lookup *ls = calloc(ntrk ? ntrk : 1, sizeof *ls);
    for (size_t i = 0; ls && i < ntrk; i++) {
        const tracked *t = &n->trk[i];
        if (t->counted)
            continue;
        ls[i] = (lookup){.topic = strdup(t->topic), .root = t->root ? strdup(t->root) : NULL,
                         .kind = t->kind, .first = t->kind == TOPIC_KEYS && t->nparts == 0};
    }
    n->dirty = false;
    pthread_mutex_unlock(&n->mu);
    if (!ls)
        return;
    /* each look-up may wait METADATA_TIMEOUT_MS for an unreachable broker:
     * a closing node stops looking (dirty stays set) */
    look_up(n, ls, ntrk);

    pthread_mutex_lock(&n->mu);
    size_t total = 0;
    for (size_t i = 0; i < ntrk; i++) {
        tracked *t = &n->trk[i];
        const lookup *l = &ls[i];
        if (l->topic) {
            t->counted = true;
            if (t->nparts == 0)  /* a topic created later is new: read from its beginning */
                t->existed = l->count > 0;
            int parts = l->count > 0 ? l->count : 1; /* missing: partition 0 for when it appears */
            if (parts != t->nparts &&
                kc_array_resize(&t->next, (size_t)parts, sizeof *t->next) == KC_OK) {
                for (int p = t->nparts; p < parts; p++)
                    t->next[p] = l->ends && p < l->count ? l->ends[p] : -1;
                t->nparts = parts;
            }
        }
        total += (size_t)t->nparts;
    }
    kc_topic_partition *tps = calloc(total ? total : 1, sizeof *tps);
    size_t k = 0;
    for (size_t i = 0; tps && i < ntrk; i++) {
        tracked *t = &n->trk[i];
        for (int p = 0; p < t->nparts; p++) {
            int64_t off = t->next[p];
            if (off < 0) /* §7.1, see kc_node.h for why requests start early */
                off = t->kind == TOPIC_MGMT ? KC_OFFSET_BEGINNING
                      : t->kind == TOPIC_REQS ? KC_OFFSET_STORED
                      : t->existed ? KC_OFFSET_END : KC_OFFSET_BEGINNING;
            /* a copy: the assignment is made without the lock */
            char *name = strdup(t->topic);
            if (name)
                tps[k++] = (kc_topic_partition){name, p, off};
        }
    }
    n->missing_checked = now(n);
    pthread_mutex_unlock(&n->mu);
    /* Without the lock: resolving "end" offsets asks the broker, and a
     * deserializer that meets a missing key takes the lock (on_missing_key),
     * so holding it here would stall a consumer's poll for seconds. */
    kc_err err;
    bool assigned = tps && kc_consumer_assign(n->cons, tps, k, &err) == KC_OK;
    if (tps && !assigned) {
        kc_log(KC_LOG_WARNING, LOGGER, "Could not assign the key topics: %s", err.msg);
        pthread_mutex_lock(&n->mu);
        n->dirty = true;
        pthread_mutex_unlock(&n->mu);
    }
    for (size_t i = 0; i < k; i++)
        free((char *)tps[i].topic);
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; assigned && i < ntrk; i++) {
        tracked *t = &n->trk[i];
        t->assigned = t->nparts > 0;
        if (t->kind == TOPIC_KEYS && t->assigned)
            need_subscription(n, t->root);
    }
    pthread_mutex_unlock(&n->mu);
    for (size_t i = 0; i < ntrk; i++) {
        free(ls[i].topic);
        free(ls[i].root);
        free(ls[i].ends);
    }
    free(ls);
    free(tps);
}

/* Key topics that did not exist may have been created by a peer since. */
static void recheck_missing_topics(kc_node *n)
{
    pthread_mutex_lock(&n->mu);
    bool due = now(n) - n->missing_checked >= MISSING_TOPIC_RECHECK;
    char *topic = NULL;
    for (size_t i = 0; due && i < n->ntrk && !topic; i++)
        if (n->trk[i].kind != TOPIC_MGMT && n->trk[i].nparts <= 1)
            topic = strdup(n->trk[i].topic);
    if (due)
        n->missing_checked = now(n);
    pthread_mutex_unlock(&n->mu);
    if (!topic)
        return;
    int count = 0;
    if (kc_producer_partition_count(n->prod, topic, METADATA_TIMEOUT_MS, &count, NULL) == KC_OK) {
        pthread_mutex_lock(&n->mu);
        tracked *t = find_tracked(n, topic);
        if (t && count > t->nparts) {
            t->counted = false;  /* count it again in the rebuild */
            n->dirty = true;
        }
        pthread_mutex_unlock(&n->mu);
    }
    free(topic);
}

/* ---- the request step (§7.3) --------------------------------------------------------------------- */

/* D4: made-up key indices are counted by the serde; say so at most once
 * per request interval and root, not per message. */
static void report_flood(kc_node *n, const char *root, double t)
{
    kc_serde_waits_stats ws;
    kc_serde_wait_stats(n->serde, root, &ws);
    pthread_mutex_lock(&n->mu);
    sub_round *r = find_round(n, root);
    uint64_t given_up = 0, replaced = 0;
    if (r && r->flood_logged + n->t.crypto_sub_interval < t &&
        (ws.given_up > r->given_up || ws.replaced > r->replaced)) {
        given_up = ws.given_up - r->given_up;
        replaced = ws.replaced - r->replaced;
        r->given_up = ws.given_up;
        r->replaced = ws.replaced;
        r->flood_logged = t;
    }
    pthread_mutex_unlock(&n->mu);
    if (given_up || replaced)
        kc_log(KC_LOG_WARNING, LOGGER, "For root=%s, %" PRIu64 " key indices made up or no longer "
               "served: %" PRIu64 " asked for in %d rounds without an answer, %" PRIu64 " dropped "
               "unasked (more than %d waiting). Not asking for them again.", root,
               given_up + replaced, given_up, KC_WAITS_ROUNDS, replaced, KC_WAITS_MAX);
}

/* A root whose last KC_NODE_STALL_ROUNDS request rounds each went a
 * crypto_sub_interval without reply: said once, at WARNING, with what was
 * done and what to check, until a reply comes. */
static void report_stalls(kc_node *n)
{
    double t = now(n);
    for (;;) {
        sub_round c = {0};
        pthread_mutex_lock(&n->mu);
        for (size_t i = 0; i < n->nrounds && !c.root; i++) {
            sub_round *r = &n->rounds[i];
            if (r->stall_told + KC_NODE_REPEAT_WARNING < t && r->rounds >= KC_NODE_STALL_ROUNDS &&
                r->time + n->t.crypto_sub_interval < t) {
                r->stall_told = t;
                c = *r;
                c.root = strdup(r->root);
            }
        }
        pthread_mutex_unlock(&n->mu);
        if (!c.root)
            return;
        kc_log(KC_LOG_WARNING, LOGGER, "No key for root=%s after %.0f s (said daily until one comes): %" PRIu64 " key "
               "request round(s) sent, none answered; %" PRIu64 " key replies seen on %s%s (%"
               PRIu64 " refused here for their chain or a policy, INFO lines say why; the "
               "others answer other consumers). Check that a node holding the root's keys runs (its "
               "producer, or `kafkacrypto serve --node PRODUCER.config`) and logs no refusal of "
               "this node's requests; compare both nodes' roots of trust and topics with "
               "`kafkacrypto keyinfo NODE.config`.", c.root, t - c.first_unanswered, c.rounds,
               c.replies_seen, c.root, n->t.topic_suffix_keys, c.replies_refused);
        free(c.root);
    }
}

/* A chain that expires within KC_CHAIN_EXPIRY_WARN_DAYS: said at start and daily. */
static void report_chain_expiry(kc_node *n)
{
    double t = now(n);
    if (n->expiry_warned + KC_NODE_REPEAT_WARNING >= t)
        return;
    n->expiry_warned = t;
    double left = kc_node_chain_expires_in(n, t);
    if (left < KC_CHAIN_EXPIRY_WARN_DAYS * 86400.0)
        kc_log(KC_LOG_WARNING, LOGGER, "The chain of node %s %s %.1f days (said daily): ask its "
               "controller or chain server for a new one, or provision it again.", n->node_id,
               left < 0 ? "expired" : "expires in", fabs(left) / 86400.0);
}

static void send_requests(kc_node *n, const char *root, const kc_buf *msgkey,
                          const kc_exchange_msgs *reqs)
{
    char *subs = concat(root, n->t.topic_suffix_subs);
    char *reqs_topic = concat(root, n->t.topic_suffix_reqs);
    for (size_t j = 0; subs && reqs_topic && j < reqs->n; j++) {
        send0(n, subs, msgkey, &reqs->items[j].value);
        if (reqs->items[j].direct)
            send0(n, reqs_topic, msgkey, &reqs->items[j].value);
    }
    free(subs);
    free(reqs_topic);
}

static void request_step(kc_node *n)
{
    pthread_mutex_lock(&n->mu);
    char **roots = n->subs_needed;
    size_t nroots = n->nsubs;
    n->subs_needed = NULL;
    n->nsubs = n->subs_cap = 0;
    pthread_mutex_unlock(&n->mu);
    for (size_t i = 0; i < nroots; i++) {
        const char *root = roots[i];
        kc_keyidx kis[KC_EXCHANGE_MAX_KEYS];
        if (kc_serde_pick_waits(n->serde, root, kis, 1) == 0)
            continue; /* nothing missing any more */
        double t = now(n);
        pthread_mutex_lock(&n->mu);
        sub_round *r = find_round(n, root);
        bool defer = r && r->time + n->t.crypto_sub_interval >= t;
        if (defer)
            need_subscription(n, root);
        /* D5: a producer that has just started reading <root>.reqs (upstream
         * looks its end up only then) skips a request sent before */
        kc_exchange_msgs again = {0};
        kc_buf again_key = KC_BUF_INIT;
        if (defer && r->again.n && r->again_at <= t) {
            again = r->again;
            again_key = r->again_key;
            r->again = (kc_exchange_msgs){0};
            r->again_key = (kc_buf)KC_BUF_INIT;
        }
        /* The last round is over without a reply (a reply clears it). */
        kc_keyidx *unanswered = NULL;
        size_t nunanswered = 0;
        if (!defer && r) {
            unanswered = r->kis;
            nunanswered = r->n;
            r->kis = NULL;
            r->n = 0;
        }
        pthread_mutex_unlock(&n->mu);
        if (again.n) {
            kc_log(KC_LOG_DEBUG, LOGGER, "Sending the request(s) for root=%s again (D5).", root);
            send_requests(n, root, &again_key, &again);
            kc_exchange_msgs_clear(&again);
            kc_buf_free(&again_key);
        }
        if (defer)
            continue;
        if (nunanswered)
            kc_serde_waits_unanswered(n->serde, root, unanswered, nunanswered);
        free(unanswered);
        report_flood(n, root, t);
        size_t nkis = kc_serde_pick_waits(n->serde, root, kis, KC_EXCHANGE_MAX_KEYS);
        if (nkis == 0)
            continue; /* all given up */
        kc_exchange_msgs reqs = {0};
        kc_buf msgkey = KC_BUF_INIT;
        kc_err err;
        char d[512];
        kc_exchange_msgkey_build(kis, nkis, &msgkey);
        kc_status st = n->variant ? n->vops->make_request(n->variant, root, kis, nkis, &reqs, &err)
                                  : kc_exchange_signed_epks(n->x, root, &reqs, &err);
        if (st != KC_OK) {
            if (n->variant)
                log_variant(st, &err);
            kc_log(KC_LOG_INFO, LOGGER, "Failed to send new subscribe request for root=%s", root);
            pthread_mutex_lock(&n->mu);
            need_subscription(n, root);
            pthread_mutex_unlock(&n->mu);
        } else {
            kc_log(KC_LOG_INFO, LOGGER, "Sending new subscribe request(s) for root=%s, msgkey=%s",
                   root, describe_kis(kis, nkis, d, sizeof d));
            create_key_topics(n, root);
            send_requests(n, root, &msgkey, &reqs);
            pthread_mutex_lock(&n->mu);
            r = get_round(n, root);
            if (r && r->rounds == 0) { /* D5: keep them, as sent, for a second copy */
                forget_again(r);
                r->again = reqs;
                r->again_key = msgkey;
                r->again_at = t + ASK_AGAIN_AFTER;
                reqs = (kc_exchange_msgs){0};
                msgkey = (kc_buf)KC_BUF_INIT;
            }
            if (r) {
                free(r->kis);
                r->kis = malloc(nkis * sizeof *r->kis);
                r->n = r->kis ? nkis : 0;
                if (r->kis)
                    memcpy(r->kis, kis, nkis * sizeof *r->kis);
                r->time = t;
                if (r->rounds++ == 0)
                    r->first_unanswered = t;
            }
            kc_root_counters *c = kc_root_table_get(&n->counters, root);
            if (c)
                c->requests_sent++;
            n->stats.requests_sent++;
            pthread_mutex_unlock(&n->mu);
        }
        kc_exchange_msgs_clear(&reqs);
        kc_buf_free(&msgkey);
    }
    for (size_t i = 0; i < nroots; i++)
        free(roots[i]);
    free(roots);
}

/* ---- the loop (§7.11) --------------------------------------------------------------------------- */

static void flush(kc_node *n)
{
    kc_err err;
    if (kc_producer_flush(n->prod, (int)(n->t.mgmt_flush_time * 1000), &err) != KC_OK)
        kc_log(KC_LOG_WARNING, LOGGER, "Key-exchange producer: %s", err.msg);
}

static void loop_once(kc_node *n)
{
    long records = n->t.mgmt_poll_records > 0 ? n->t.mgmt_poll_records : 1;
    int timeout = (int)n->t.mgmt_poll_interval;
    for (long i = 0; i < records && !atomic_load(&n->stop); i++) {
        kc_record *m = NULL;
        kc_err err;
        if (kc_consumer_poll(n->cons, i == 0 ? timeout : 0, &m, &err) != KC_OK) {
            kc_log(KC_LOG_WARNING, LOGGER, "Key-exchange consumer: %s", err.msg);
            break;
        }
        if (!m)
            break;
        pthread_mutex_lock(&n->mu);
        tracked *t = find_tracked(n, m->topic);
        if (t && m->partition >= 0 && m->partition < t->nparts)
            t->next[m->partition] = m->offset + 1;
        pthread_mutex_unlock(&n->mu);
        if (!m->eof)   /* only when the node's options ask for them */
            dispatch(n, m);
        kc_record_free(m);
    }
    flush(n);
    pthread_mutex_lock(&n->mu);
    bool dirty = n->dirty;
    pthread_mutex_unlock(&n->mu);
    if (dirty)
        rebuild_assignment(n);
    else
        recheck_missing_topics(n);
    request_step(n);
    report_stalls(n);
    report_chain_expiry(n);
    send_again_due(n, false);
    flush(n);
    double t = now(n);
    if (n->ratchet && n->last_ratchet + n->t.crypto_ratchet_interval < t) {
        kc_err err;
        n->last_ratchet = t; /* the serde logs "Periodic ratchet increment." */
        if (kc_serde_ratchet_step(n->serde, &err) != KC_OK)
            kc_log(KC_LOG_ERROR, LOGGER, "Ratchet increment failed: %s", err.msg);
    }
    kc_node_persist(n, NULL);
}

static void *management_thread(void *arg)
{
    kc_node *n = arg;
    while (!atomic_load(&n->stop))
        loop_once(n);
    return NULL;
}

/* ---- start-up (§11.3) ---------------------------------------------------------------------------- */

/* The node config's overrides of the protocol defaults (§7.2). */
static kc_status load_tunables(kc_node *n, kc_err *err)
{
    for (int id = 0; id < KC_T_COUNT; id++) {
        const char *name = kc_tunable_name((kc_tunable_id)id);
        kc_value v = kc_value_none();
        char *text = NULL;
        if (kc_store_load_value(n->store, NULL, name, &v, NULL) != KC_OK || v.type == KC_VALUE_NONE) {
            kc_value_clear(&v);
            continue;
        }
        if (v.type == KC_VALUE_BYTES) {
            kc_log(KC_LOG_WARNING, LOGGER, "Migrating config from bytes to str: %s", name);
            v.type = KC_VALUE_TEXT;
        }
        kc_status st = kc_value_to_text(&v, &text, err);
        if (st == KC_OK)
            st = kc_tunables_set(&n->t, name, text, KC_SOURCE_NODE_CONFIG, kc_store_path(n->store),
                                 err);
        free(text);
        kc_value_clear(&v);
        if (st != KC_OK)
            return st;
    }
    return kc_tunables_check(&n->t, NULL, err);
}

/* keytypes: an int or "1,4" */
static size_t load_keytypes(kc_node *n, int *out, size_t cap)
{
    kc_value v = kc_value_none();
    size_t k = 0;
    if (kc_store_load_value(n->store, NULL, "keytypes", &v, NULL) == KC_OK) {
        if (v.type == KC_VALUE_INT && cap)
            out[k++] = (int)v.i;
        else if (v.type == KC_VALUE_TEXT) {
            char *text = strndup((const char *)v.data, v.len), *save = NULL;
            for (char *tok = text ? strtok_r(text, ",", &save) : NULL; tok && k < cap;
                 tok = strtok_r(NULL, ",", &save))
                out[k++] = atoi(tok);
            free(text);
        }
        if (k)
            kc_log(KC_LOG_INFO, LOGGER, "Using only keytypes=%.*s", v.type == KC_VALUE_TEXT
                   ? (int)v.len : 1, v.type == KC_VALUE_TEXT ? (const char *)v.data : "1");
    }
    kc_value_clear(&v);
    return k;
}

/* The byte values of a section, in file order. */
static kc_status section_entries(kc_node *n, const char *section, kc_section *sec,
                                 kc_bytes **out, size_t *count, kc_err *err)
{
    *out = NULL;
    *count = 0;
    kc_status st = kc_store_load_section(n->store, section, false, sec, err);
    if (st == KC_ERR_NOTFOUND)
        return KC_OK;
    if (st != KC_OK)
        return st;
    *out = calloc(sec->n ? sec->n : 1, sizeof **out);
    if (!*out)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sec->n; i++)
        if (sec->items[i].value.type == KC_VALUE_BYTES)
            (*out)[(*count)++] = (kc_bytes){sec->items[i].value.data, sec->items[i].value.len};
        else
            kc_log(KC_LOG_WARNING, LOGGER, "file %s: section %s: entry %zu is not a base64# "
                   "value; ignored", kc_store_path(n->store), section, i);
    return KC_OK;
}

static kc_status open_exchange(kc_node *n, const kc_node_options *o, kc_err *err)
{
    kc_section allow = {0}, deny = {0}, chains = {0};
    kc_bytes *a = NULL, *d = NULL, *c = NULL;
    size_t na, nd, nc;
    kc_exchange_config xc;
    kc_exchange_config_init(&xc);
    kc_value maxage = kc_value_none();
    kc_status st = section_entries(n, "allowlist", &allow, &a, &na, err);
    if (st == KC_OK)
        st = section_entries(n, "denylist", &deny, &d, &nd, err);
    if (st == KC_OK)
        st = section_entries(n, "chains", &chains, &c, &nc, err);
    if (st == KC_OK) {
        if (kc_store_load_value(n->store, "crypto", "maxage", &maxage, NULL) == KC_OK &&
            (maxage.type == KC_VALUE_INT || maxage.type == KC_VALUE_FLOAT))
            xc.maxage = maxage.type == KC_VALUE_INT ? (double)maxage.i : maxage.f;
        xc.cryptokey = n->ck;
        xc.allowlist = a;
        xc.n_allowlist = na;
        xc.denylist = d;
        xc.n_denylist = nd;
        xc.now_fn = n->now_fn;
        xc.now_ctx = n->now_ctx;
        xc.allowlist_topic = o->allowlist_topic;
        xc.denylist_topic = o->denylist_topic;
        st = kc_exchange_new(&xc, &n->x, err);
    }
    for (size_t i = 0; st == KC_OK && i < nc; i++) {
        kc_err why;
        if (kc_exchange_update_own_chain(n->x, c[i].p, c[i].n, NULL, &why) != KC_OK)
            kc_log(KC_LOG_WARNING, LOGGER, "file %s: stored chain %zu not used: %s",
                   kc_store_path(n->store), i, why.msg);
    }
    if (st == KC_OK && na == 0)
        kc_log(KC_LOG_WARNING, LOGGER, "file %s: the allowlist is empty: this node trusts no "
               "root and can exchange no keys until it is provisioned.", kc_store_path(n->store));
    if (st == KC_OK && kc_exchange_trusts_temporary_rot(n->x))
        kc_log(KC_LOG_WARNING, LOGGER, "file %s: this node trusts upstream's temporary root of "
               "trust, whose secret is public: anyone can obtain keys from it. Provision the "
               "node and remove the allowlist entry 'temporary'.", kc_store_path(n->store));
    kc_value_clear(&maxage);
    kc_section_clear(&allow);
    kc_section_clear(&deny);
    kc_section_clear(&chains);
    free(a);
    free(d);
    free(c);
    return st;
}

static kc_status open_serde(kc_node *n, const kc_node_options *o, kc_err *err)
{
    kc_buf id = KC_BUF_INIT;
    kc_serde_config c;
    kc_serde_config_init(&c);
    kc_status st = KC_OK;
    if (n->t.mgmt_long_keyindex)
        st = kc_cryptokey_get_id_spk(n->ck, &id, err);
    c.ratchet = n->ratchet;
    /* long form without a signing key: an empty node ID, which the serde
     * refuses to encrypt with (rather than fall back to short indices) */
    c.node_id = !n->t.mgmt_long_keyindex ? NULL : id.len ? id.data : (const uint8_t *)"";
    c.node_id_len = id.len;
    c.topic_separator = n->t.topic_separator;
    c.root_fn = o->root_fn;
    c.root_ctx = o->root_ctx;
    c.max_pgen_age = n->t.crypto_max_pgen_age;
    c.initial_wait_intervals = (int)n->t.deser_initial_wait_intervals;
    if (o->key_wait_interval > 0)
        c.key_wait_interval = o->key_wait_interval;
    c.max_key_wait_intervals = o->max_key_wait_intervals;
    if (o->now_fn) {
        c.now_fn = o->now_fn;
        c.now_ctx = o->now_ctx;
    }
    c.on_new_producer_key = on_new_producer_key;
    c.on_missing_key = on_missing_key;
    c.hook_ctx = n;
    c.persist_fn = save_pgens;
    c.persist_ctx = n;
    if (st == KC_OK)
        st = kc_serde_new(&c, &n->serde, err);
    kc_buf_free(&id);
    /* producer keys of earlier runs, to serve late consumers (§7.10) */
    kc_value old = kc_value_none();
    if (st == KC_OK && kc_store_load_value(n->store, "crypto", "oldkeys", &old, NULL) == KC_OK &&
        old.type == KC_VALUE_BYTES) {
        kc_buf plain = KC_BUF_INIT;
        kc_err why;
        if (kc_cryptokey_unwrap_opaque(n->ck, old.data, old.len, &plain) != KC_OK)
            kc_log(KC_LOG_ERROR, LOGGER, "file %s: oldkeys does not open with this node's "
                   ".crypto file; earlier producer keys are not served, and this node will not "
                   "produce until that is resolved (the option is kept unchanged)",
                   kc_store_path(n->store));
        else if (kc_serde_import_pgens(n->serde, plain.data, plain.len, &why) != KC_OK)
            kc_log(KC_LOG_WARNING, LOGGER, "file %s: oldkeys: %s", kc_store_path(n->store),
                   why.msg);
        kc_buf_free(&plain);
    }
    kc_value_clear(&old);
    return st;
}

static kc_status open_kafka(kc_node *n, const kc_node_options *o, kc_err *err)
{
    kc_kafka_config pc, cc;
    kc_kafka_config_init(&pc);
    kc_kafka_config_init(&cc);
    kc_status st = kc_store_kafka_config(n->store, KC_KAFKA_PRODUCER, "crypto", &pc, err);
    if (st == KC_OK)
        st = kc_store_kafka_config(n->store, KC_KAFKA_CONSUMER, "crypto", &cc, err);
    for (size_t i = 0; st == KC_OK && o->producer_conf && i < o->producer_conf->n; i++)
        st = kc_kafka_config_set(&pc, KC_KAFKA_PRODUCER, o->producer_conf->props[i].name,
                                 o->producer_conf->props[i].value, "key-exchange producer", err);
    for (size_t i = 0; st == KC_OK && o->consumer_conf && i < o->consumer_conf->n; i++)
        st = kc_kafka_config_set(&cc, KC_KAFKA_CONSUMER, o->consumer_conf->props[i].name,
                                 o->consumer_conf->props[i].value, "key-exchange consumer", err);
    /* requests sent before a producer was listening are still answered */
    if (st == KC_OK && !kc_kafka_config_get(&cc, "auto.offset.reset"))
        st = kc_kafka_config_set(&cc, KC_KAFKA_CONSUMER, "auto.offset.reset", "earliest",
                                 "key-exchange consumer", err);
    if (st == KC_OK) {
        const char *bs = kc_kafka_config_get(&cc, "bootstrap.servers");
        n->embedded = !bs || !*bs;
        st = kc_producer_new(&n->prod, &pc, 0, err);
    }
    if (st == KC_OK)
        st = kc_consumer_new(&n->cons, &cc, err);
    kc_kafka_config_clear(&pc);
    kc_kafka_config_clear(&cc);
    return st;
}

void kc_node_options_init(kc_node_options *o)
{
    memset(o, 0, sizeof *o);
    o->allowlist_topic = o->denylist_topic = true;
}

kc_status kc_node_open(kc_node **out, const kc_node_options *o, kc_err *err)
{
    *out = NULL;
    if (kc_init() != 0)
        return kc_err_set(err, KC_ERR_CRYPTO, "libsodium failed to initialise");
    kc_node *n = calloc(1, sizeof *n);
    if (!n)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&n->mu, NULL);
    kc_ratelimit_init(&n->refusals);
    atomic_init(&n->stop, false);
    n->now_fn = o->now_fn ? o->now_fn : kc_clock_wall_fn;
    n->now_ctx = o->now_ctx;
    if (o->tunables)
        n->t = *o->tunables;
    else
        kc_tunables_init(&n->t);

    kc_store_options so = {.kafka = true, .keep_log_level = true,
                           .trust_temporary_rot = o->trust_temporary_rot};
    char *paths[2] = {NULL, NULL};
    int keytypes[4];
    kc_status st = KC_OK;
    if (o->store) {
        n->store = o->store;
        n->borrowed_store = true;
        if (o->node_id && strcmp(o->node_id, kc_store_node_id(o->store)) != 0)
            st = kc_err_set(err, KC_ERR_INVALID, "node ID %s does not match the store's (%s)",
                            o->node_id, kc_store_node_id(o->store));
    } else {
        st = kc_store_open(&n->store, o->config_path, o->node_id, &so, err);
    }
    if (st == KC_OK && !(n->node_id = strdup(kc_store_node_id(n->store))))
        st = kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    if (st == KC_OK)
        st = load_tunables(n, err);
    /* both files are checked before either may be created (spec D1); a key
     * in a token has no file */
    static const kc_store_file files[2] = {{"cryptokey", ".crypto", false},
                                           {"ratchet", ".seed", true}};
    bool token = st == KC_OK && kc_cryptokey_ref_is_token(n->store);
    if (st == KC_OK)
        st = kc_store_node_files(n->store, token ? 1 : 2, files + token, paths + token, err);
    if (st == KC_OK) {
        size_t nkt = load_keytypes(n, keytypes, 4);
        st = token ? kc_cryptokey_open_config(&n->ck, n->store, nkt ? keytypes : NULL, nkt, err)
                   : kc_cryptokey_open(&n->ck, paths[0], nkt ? keytypes : NULL, nkt, err);
    }
    if (st == KC_OK)
        st = kc_store_migrate_legacy(n->store, err);
    if (st == KC_OK)
        st = open_exchange(n, o, err);
    if (st == KC_OK && o->check) {
        n->check = o->check;
        n->check_ctx = o->check_ctx;
        kc_exchange_set_check(n->x, checked_by_policy, n);
    }
    if (st == KC_OK)
        st = kc_ratchet_open_file(paths[1], o->escrow_pk, &n->ratchet, err);
    free(paths[0]);
    free(paths[1]);
    if (st == KC_OK)
        st = open_serde(n, o, err);
    if (st == KC_OK)
        st = open_kafka(n, o, err);
    if (st == KC_OK && o->open_variant) {
        kc_exchange_variant_host host = {n->node_id, n->ck, n->x, n->now_fn, n->now_ctx};
        st = o->open_variant(o->variant_ctx, &host, &n->vops, &n->variant, err);
    }
    if (st == KC_OK) {
        /* D2: requests for every root this node holds keys for are answered
         * from open, not only for roots produced to in this run (§7.10) */
        kc_serde_foreach_pgen_root(n->serde, track_reqs, n);
        track(n, n->t.mgmt_topic_chains, NULL, TOPIC_MGMT);
        track(n, n->t.mgmt_topic_allowlist, NULL, TOPIC_MGMT);
        track(n, n->t.mgmt_topic_denylist, NULL, TOPIC_MGMT);
        n->last_ratchet = now(n);
        if (kc_thread_start(&n->thread, management_thread, n) != 0)
            st = kc_err_set(err, KC_ERR_STATE, "cannot start the management thread");
        else
            n->started = true;
    }
    if (st != KC_OK) {
        kc_node_close(n);
        return st;
    }
    *out = n;
    return KC_OK;
}

void kc_node_close(kc_node *n)
{
    if (!n)
        return;
    atomic_store(&n->stop, true);
    if (n->started)
        pthread_join(n->thread, NULL);
    if (n->prod)
        send_again_due(n, true); /* before the producer's last flush */
    if (n->serde && n->store && n->ck)
        kc_node_persist(n, NULL);
    kc_serde_detach(n->serde); /* Lua serializers may outlive the node */
    kc_producer_close(n->prod, (int)(n->t.mgmt_flush_time * 1000));
    kc_consumer_close(n->cons);
    kc_serde_free(n->serde);
    if (n->variant)
        n->vops->free(n->variant); /* it borrows the exchange and the cryptokey */
    kc_exchange_free(n->x);
    kc_ratchet_close(n->ratchet);
    kc_cryptokey_close(n->ck);
    if (!n->borrowed_store)
        kc_store_close(n->store);
    for (size_t i = 0; i < n->ntrk; i++) {
        free(n->trk[i].topic);
        free(n->trk[i].root);
        free(n->trk[i].next);
    }
    free(n->trk);
    for (size_t i = 0; i < n->nsubs; i++)
        free(n->subs_needed[i]);
    free(n->subs_needed);
    for (size_t i = 0; i < n->nrounds; i++) {
        free(n->rounds[i].root);
        free(n->rounds[i].kis);
        forget_again(&n->rounds[i]);
    }
    free(n->rounds);
    kc_root_table_free(&n->counters);
    free(n->again);
    free(n->node_id);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

const char *kc_node_id(const kc_node *n) { return n->node_id; }
kc_serde *kc_node_serde(kc_node *n) { return n->serde; }
kc_exchange *kc_node_exchange(kc_node *n) { return n->x; }
kc_store *kc_node_store(kc_node *n) { return n->store; }
kc_cryptokey *kc_node_cryptokey(kc_node *n) { return n->ck; }
const kc_tunables *kc_node_tunables(const kc_node *n) { return &n->t; }

void kc_node_foreach_root(kc_node *n, kc_node_root_fn fn, void *ctx)
{
    double t = now(n);
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->counters.n; i++) {
        const kc_root_counters *c = &n->counters.items[i];
        const sub_round *r = find_round(n, c->root);
        fn(ctx, c, r && r->rounds ? t - r->first_unanswered : 0);
    }
    pthread_mutex_unlock(&n->mu);
}

void kc_node_get_stats(kc_node *n, kc_node_stats *out)
{
    pthread_mutex_lock(&n->mu);
    *out = n->stats;
    pthread_mutex_unlock(&n->mu);
    kc_serde_waits_stats ws;
    kc_serde_wait_stats(n->serde, NULL, &ws);
    out->key_indices_given_up = ws.given_up;
    out->key_indices_replaced = ws.replaced;
}
