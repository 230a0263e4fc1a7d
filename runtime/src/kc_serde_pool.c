/* kc_serde_pool.c — deserialization on a pool of worker threads, each
 * partition's messages handed back in the order they were submitted.
 *
 * Slots: a fixed array of max_in_flight message slots, allocated once (no
 * allocation per message; a slot's kc_message and topic buffer are reused).
 * A slot moves free -> todo (FIFO, workers take from its head) -> working
 * -> done -> returned (the caller's, until its next call) -> free.
 *
 * Order: every (topic, partition) in flight has a lane, a FIFO of its
 * slots in submission order. A slot is handed back only when it is done and
 * at the head of its lane; the `ready` FIFO holds exactly those. So a slow
 * message (one whose key is awaited inside kc_serde_deserialize) holds back
 * its own partition only. Lanes exist only while they have slots, so there
 * are never more than max_in_flight of them. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kc_array.h"
#include "kc_err.h"
#include "kc_message.h"
#include "kc_serde.h"
#include "kc_thread.h"

enum { SLOT_FREE, SLOT_TODO, SLOT_WORKING, SLOT_DONE, SLOT_RETURNED };

typedef struct lane lane;

typedef struct slot {
    int state;
    kc_kind kind;
    char *topic;                /* reused: grows to the longest topic seen */
    size_t topic_cap;
    int32_t partition;
    const uint8_t *data;        /* the caller's, valid until handed back */
    size_t len;
    kc_pool_result res;         /* res.msg reused */
    lane *lane;
    struct slot *next;          /* in the free, todo or ready list */
    struct slot *lane_next;
} slot;

struct lane {
    slot *head, *tail;
    lane *next_free;
    bool used;
};

typedef struct slot_fifo {
    slot *head, *tail;
} slot_fifo;

struct kc_serde_pool {
    kc_serde *serde;
    pthread_mutex_t lock;
    pthread_cond_t work_cv;     /* todo not empty, or stopping */
    pthread_cond_t ready_cv;    /* ready not empty */
    slot *slots;
    lane *lanes;
    size_t n_slots;
    slot *free_slots;
    lane *free_lanes;
    lane *last_lane;            /* lookup shortcut: consecutive messages often share one */
    size_t lanes_used;
    slot_fifo todo, ready;
    size_t todo_len;
    size_t wake_at;             /* queue length that wakes a worker */
    int idle, woken;            /* workers waiting for work; signalled, not yet running */
    bool caller_waiting;        /* kc_serde_pool_next sleeps on ready_cv */
    slot *returned;             /* the result last handed back */
    size_t in_flight;
    bool stopping;
    pthread_t *threads;
    int n_threads;
};

static void fifo_push(slot_fifo *f, slot *s)
{
    s->next = NULL;
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
}

static slot *fifo_pop(slot_fifo *f)
{
    slot *s = f->head;
    if (s) {
        f->head = s->next;
        if (!f->head)
            f->tail = NULL;
        s->next = NULL;
    }
    return s;
}

/* Deserializes s; lock not held. */
static void work(kc_serde_pool *p, slot *s)
{
    kc_err_clear(&s->res.err);
    s->res.status = kc_serde_deserialize(p->serde, s->kind, s->topic, s->data, s->len, s->res.msg,
                                         &s->res.err);
}

/* Marks s done; true if it became ready. Lock held. */
static bool complete(kc_serde_pool *p, slot *s)
{
    s->state = SLOT_DONE;
    if (s->lane->head != s)
        return false;
    fifo_push(&p->ready, s);
    return true;
}

/* A worker takes its share of the queue at once (at most WORK_BATCH), so
 * the lock and the wake-ups are paid per batch rather than per message. */
#define WORK_BATCH 16

static void *worker(void *arg)
{
    kc_serde_pool *p = arg;
    slot *batch[WORK_BATCH];
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stopping && !p->todo.head) {
            p->idle++;
            pthread_cond_wait(&p->work_cv, &p->lock);
            p->idle--;
            if (p->woken > 0)
                p->woken--;
        }
        if (p->stopping)
            break;
        size_t n = p->todo_len / (size_t)(p->n_threads + 1) + 1;
        if (n > WORK_BATCH)
            n = WORK_BATCH;
        size_t got = 0;
        while (got < n && p->todo.head) {
            batch[got] = fifo_pop(&p->todo);
            batch[got++]->state = SLOT_WORKING;
        }
        p->todo_len -= got;
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < got; i++)
            work(p, batch[i]);
        pthread_mutex_lock(&p->lock);
        bool ready = false;
        for (size_t i = 0; i < got; i++)
            ready |= complete(p, batch[i]);
        if (ready && p->caller_waiting)
            pthread_cond_signal(&p->ready_cv);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

kc_status kc_serde_pool_new(kc_serde *serde, int threads, size_t max_in_flight,
                            kc_serde_pool **out, kc_err *err)
{
    if (out)
        *out = NULL;
    if (!serde || !out || threads < 1 || threads > KC_SERDE_POOL_MAX_THREADS ||
        max_in_flight < 1 || max_in_flight > KC_SERDE_POOL_MAX_IN_FLIGHT)
        return kc_err_set(err, KC_ERR_INVALID,
                          "deserializer pool: expected 1..%d threads and 1..%d messages in "
                          "flight, got %d and %zu", KC_SERDE_POOL_MAX_THREADS,
                          KC_SERDE_POOL_MAX_IN_FLIGHT, threads, max_in_flight);
    kc_serde_pool *p = calloc(1, sizeof *p);
    if (!p)
        return kc_err_set(err, KC_ERR_NOMEM, "deserializer pool: out of memory");
    p->slots = calloc(max_in_flight, sizeof *p->slots);
    p->lanes = calloc(max_in_flight, sizeof *p->lanes);
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    p->n_slots = max_in_flight;
    p->wake_at = max_in_flight / 4 < WORK_BATCH ? max_in_flight / 4 : WORK_BATCH;
    if (p->wake_at < 1)
        p->wake_at = 1;
    bool ok = p->slots && p->lanes && p->threads;
    for (size_t i = max_in_flight; ok && i-- > 0;) {
        ok = (p->slots[i].res.msg = kc_message_new()) != NULL;
        p->slots[i].next = p->free_slots;
        p->free_slots = &p->slots[i];
        p->lanes[i].next_free = p->free_lanes;
        p->free_lanes = &p->lanes[i];
    }
    if (!ok) {
        kc_serde_pool_free(p);
        return kc_err_set(err, KC_ERR_NOMEM, "deserializer pool: out of memory");
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->ready_cv, NULL);
    p->serde = kc_serde_ref(serde);
    for (int i = 0; i < threads; i++) {
        if (kc_thread_start(&p->threads[i], worker, p) != 0) {
            kc_serde_pool_free(p);
            return kc_err_set(err, KC_ERR_NOMEM,
                              "deserializer pool: cannot start worker thread %d of %d", i + 1,
                              threads);
        }
        p->n_threads++;
    }
    *out = p;
    return KC_OK;
}

/* The lane of (topic, partition), made if none is in flight. Lock held. */
static lane *lane_get(kc_serde_pool *p, const char *topic, int32_t partition)
{
    lane *l = p->last_lane;
    if (l && l->used && l->head->partition == partition && strcmp(l->head->topic, topic) == 0)
        return l;
    for (size_t i = 0, seen = 0; i < p->n_slots && seen < p->lanes_used; i++) {
        l = &p->lanes[i];
        if (!l->used)
            continue;
        seen++;
        if (l->head->partition == partition && strcmp(l->head->topic, topic) == 0)
            return p->last_lane = l;
    }
    l = p->free_lanes;  /* never NULL: a free slot exists, so a lane does */
    p->free_lanes = l->next_free;
    l->used = true;
    l->head = l->tail = NULL;
    p->lanes_used++;
    return p->last_lane = l;
}

kc_status kc_serde_pool_submit(kc_serde_pool *p, kc_kind kind, const char *topic,
                               int32_t partition, const uint8_t *data, size_t len, void *user,
                               kc_err *err)
{
    if (!p || !topic || (kind != KC_KIND_KEY && kind != KC_KIND_VALUE))
        return kc_err_set(err, KC_ERR_INVALID, "deserializer pool: submit: bad arguments");
    size_t tlen = strlen(topic);
    pthread_mutex_lock(&p->lock);
    slot *s = p->free_slots;
    if (!s) {
        pthread_mutex_unlock(&p->lock);
        return kc_err_set(err, KC_ERR_BUSY,
                          "deserializer pool: %zu messages in flight: take results first",
                          p->n_slots);
    }
    if (kc_array_reserve(&s->topic, &s->topic_cap, tlen + 1, 1) != KC_OK) {
        pthread_mutex_unlock(&p->lock);
        return kc_err_set(err, KC_ERR_NOMEM, "deserializer pool: out of memory");
    }
    p->free_slots = s->next;
    memcpy(s->topic, topic, tlen + 1);
    s->kind = kind;
    s->partition = partition;
    s->data = data;
    s->len = len;
    s->res.user = user;
    s->res.partition = partition;
    s->lane_next = NULL;
    lane *l = s->lane = lane_get(p, topic, partition);
    if (l->tail)
        l->tail->lane_next = s;
    else
        l->head = s;
    l->tail = s;
    s->state = SLOT_TODO;
    fifo_push(&p->todo, s);
    p->todo_len++;
    p->in_flight++;
    /* Wake a sleeping worker only once a batch has queued up and none is
     * on its way already: a trickle of messages costs no wake-up per
     * message (the caller deserializes what is left while it waits in
     * kc_serde_pool_next). */
    if (p->todo_len >= p->wake_at && p->idle > p->woken) {
        p->woken++;
        pthread_cond_signal(&p->work_cv);
    }
    pthread_mutex_unlock(&p->lock);
    return KC_OK;
}

/* Gives the slot last handed back to the free list. Lock held. */
static void release_returned(kc_serde_pool *p)
{
    slot *s = p->returned;
    if (!s)
        return;
    p->returned = NULL;
    s->state = SLOT_FREE;
    s->data = NULL;
    s->res.user = NULL;
    s->next = p->free_slots;
    p->free_slots = s;
    p->in_flight--;
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

kc_status kc_serde_pool_next(kc_serde_pool *p, int timeout_ms, kc_pool_result **out)
{
    if (!p || !out)
        return KC_ERR_INVALID;
    *out = NULL;
    struct timespec deadline;
    if (timeout_ms > 0)
        deadline_after(&deadline, timeout_ms);
    pthread_mutex_lock(&p->lock);
    release_returned(p);
    while (!p->ready.head && p->in_flight > 0) {
        if (p->todo.head && timeout_ms != 0) {
            /* Rather than sleep until a worker is done, do one ourselves. */
            slot *s = fifo_pop(&p->todo);
            p->todo_len--;
            s->state = SLOT_WORKING;
            pthread_mutex_unlock(&p->lock);
            work(p, s);
            pthread_mutex_lock(&p->lock);
            complete(p, s);
        } else if (timeout_ms == 0) {
            break;
        } else {
            p->caller_waiting = true;
            int rc = timeout_ms < 0 ? pthread_cond_wait(&p->ready_cv, &p->lock)
                                    : pthread_cond_timedwait(&p->ready_cv, &p->lock, &deadline);
            p->caller_waiting = false;
            if (rc != 0)
                break;
        }
    }
    slot *s = fifo_pop(&p->ready);
    if (!s) {
        pthread_mutex_unlock(&p->lock);
        return KC_ERR_NOTFOUND;
    }
    lane *l = s->lane;
    l->head = s->lane_next;
    if (!l->head) {
        l->tail = NULL;
        l->used = false;
        p->lanes_used--;
        l->next_free = p->free_lanes;
        p->free_lanes = l;
    } else if (l->head->state == SLOT_DONE) {
        fifo_push(&p->ready, l->head);
    }
    s->lane = NULL;
    s->state = SLOT_RETURNED;
    p->returned = s;
    pthread_mutex_unlock(&p->lock);
    *out = &s->res;
    return KC_OK;
}

size_t kc_serde_pool_in_flight(kc_serde_pool *p)
{
    if (!p)
        return 0;
    pthread_mutex_lock(&p->lock);
    size_t n = p->in_flight;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void kc_serde_pool_free(kc_serde_pool *p)
{
    if (!p)
        return;
    if (p->serde) {  /* fully set up: stop the workers */
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_cond_broadcast(&p->work_cv);
        pthread_mutex_unlock(&p->lock);
        for (int i = 0; i < p->n_threads; i++)
            pthread_join(p->threads[i], NULL);
        pthread_cond_destroy(&p->work_cv);
        pthread_cond_destroy(&p->ready_cv);
        pthread_mutex_destroy(&p->lock);
        kc_serde_unref(p->serde);
    }
    for (size_t i = 0; p->slots && i < p->n_slots; i++) {
        kc_message_free(p->slots[i].res.msg);
        free(p->slots[i].topic);
    }
    free(p->slots);
    free(p->lanes);
    free(p->threads);
    free(p);
}
