/* kc_chain.c — the trust decision: upstream's process_chain with its list
 * lookups, multimatch and intersect_certs (spec §6.3-6.9; kc_chain.h). */
#include "kc_chain_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_array.h"
#include "kc_log.h"
#include "kc_regex.h"
#include "kc_unicode.h"

/* ---- the decision: context, lists, multimatch ------------------------------------------------ */

/* A list entry, parsed the first time a lookup reaches it. */
typedef struct lentry {
    bool tried;
    kc_status st;
    char why[KC_WHY_MAX];
    kc_mp_doc doc;
    const msgpack_object *o;
    kc_pks key;
} lentry;

typedef struct plist {
    const kc_chain_list *l;
    lentry *e;
    const char *name;
} plist;

typedef struct ctx {
    plist allow, deny;
    size_t regex_evals;
    bool over_budget;
} ctx;

static lentry *plist_get(plist *pl, size_t i)
{
    lentry *e = &pl->e[i];
    if (e->tried)
        return e;
    e->tried = true;
    kc_err err;
    kc_err_clear(&err);
    e->st = kc_mp_decode(&e->doc, pl->l->entries[i].p, pl->l->entries[i].n, "entry", &err);
    if (e->st != KC_OK) {
        kc_whyf(e->why, sizeof e->why, "%s", err.msg);
        return e;
    }
    e->o = kc_mp_root(&e->doc);
    e->st = kc_cert_key_field(e->o, &e->key, e->why, sizeof e->why);
    return e;
}

static void plist_free(plist *pl)
{
    if (!pl->e)
        return;
    for (size_t i = 0; i < pl->l->n; i++) {
        kc_pks_clear(&pl->e[i].key);
        kc_mp_doc_free(&pl->e[i].doc);
    }
    free(pl->e);
    pl->e = NULL;
}

static kc_status plist_init(plist *pl, const kc_chain_list *l, const char *name)
{
    pl->l = l;
    pl->name = name;
    pl->e = NULL;
    if (!l || l->n == 0)
        return KC_OK;
    pl->e = calloc(l->n, sizeof(lentry));
    return pl->e ? KC_OK : KC_ERR_NOMEM;
}

static bool single_sign(const kc_pks *k)
{
    return !k->is_list && k->n == 1 && k->keys[0].kind == KC_SIGN_PK;
}

/* key_in_list: index of the first entry certifying k, -1 if none. */
static kc_status find_key(plist *pl, const kc_key *k, long *idx, char *why, size_t whylen)
{
    *idx = -1;
    if (!pl->l || !k)
        return KC_OK;
    for (size_t i = 0; i < pl->l->n; i++) {
        lentry *e = plist_get(pl, i);
        if (e->st != KC_OK) {
            kc_whyf(why, whylen, "%s entry %zu is malformed: %s", pl->name, i + 1, e->why);
            return e->st;
        }
        if (single_sign(&e->key) && kc_key_equal(&e->key.keys[0], k)) {
            *idx = (long)i;
            return KC_OK;
        }
    }
    return KC_OK;
}

/* multimatch on bytes: 1 match, 0 none, -1 regex budget exhausted. */
static int mm(ctx *cx, const kc_bytes *w, const kc_strlist *choices)
{
    if (!w)
        return 1;
    if (choices->none)
        return 0;
    bool w_literal = w->n == 0 || w->p[0] != '^';
    for (size_t i = 0; i < choices->n; i++) {
        const kc_bytes *c = &choices->v[i];
        if (kc_bytes_is(c, "^.*$"))
            return 1;
        if (w_literal && c->n > 0 && c->p[0] == '^') {
            if (++cx->regex_evals > KC_CHAIN_MAX_REGEX) {
                cx->over_budget = true;
                return -1;
            }
            if (kc_regex_match(c->p, c->n, w->p, w->n))
                return 1;
        } else if (kc_bytes_eq(w, c)) {
            return 1;
        }
    }
    return 0;
}

/* intersect_multimatch(set1, set2) into scratch (which must not be set1). */
static int intersect_mm(ctx *cx, const kc_strlist *set1, const kc_strlist *set2, kc_bytes *scratch,
                        kc_strlist *out)
{
    if (set1->none) {
        *out = *set2;
        return 0;
    }
    if (set2->none) {
        *out = *set1;
        return 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < set2->n; i++) {
        int r = mm(cx, &set2->v[i], set1);
        if (r < 0)
            return -1;
        if (r)
            scratch[k++] = set2->v[i];
    }
    *out = (kc_strlist){false, k, scratch};
    return 0;
}

bool kc_multimatch(const kc_bytes *wanted, const kc_bytes *choices, size_t n_choices,
                   bool choices_none)
{
    ctx cx = {0};
    kc_strlist l = {choices_none, n_choices, choices};
    return mm(&cx, wanted, &l) == 1;
}

/* ---- intersect_certs ---------------------------------------------------------------------------- */

/* The accumulated certificate ("pk" upstream). */
typedef struct acc {
    msgpack_object age;
    char age_src[64];
    char pathlen_src[96]; /* which certificate set the accumulated pathlen */
    kc_buf poison;
    kc_pks key;
    const msgpack_object *extra;
    size_t n_extra;
} acc;

/* What intersect_certs reads from its second argument. */
typedef struct certv {
    msgpack_object age;
    kc_bytes poison;
    const kc_pks *key;
    const msgpack_object *extra;
    size_t n_extra;
    const char *label;
} certv;

static void acc_free(acc *a)
{
    kc_buf_free(&a->poison);
    kc_pks_clear(&a->key);
}

static const kc_bytes key_allowlist = {(const uint8_t *)"key-allowlist", 13};
static const kc_bytes key_denylist = {(const uint8_t *)"key-denylist", 12};

static int64_t plus_offset(int64_t p, int offset)
{
    return (offset < 0 && p == INT64_MIN) ? p : p + offset;
}

#define BUDGET_MSG "more than %d regex evaluations in one chain"

static kc_status intersect(ctx *cx, acc *a, const certv *c2, bool same_pk, char *why,
                           size_t whylen)
{
    if (kc_num_gt_zero(&c2->age) && (kc_num_lt(&c2->age, &a->age) || kc_num_is_zero(&a->age))) {
        a->age = c2->age;
        snprintf(a->age_src, sizeof a->age_src, "%s", c2->label);
    }
    kc_parsed_poison p[2];
    kc_bytes c1_poison = {a->poison.data, a->poison.len};
    char pwhy[KC_WHY_MAX];
    if (kc_poison_parse(&p[0], &c1_poison, pwhy, sizeof pwhy) != KC_OK) {
        kc_whyf(why, whylen, "accumulated poison: %s", pwhy);
        return KC_ERR_INVALID;
    }
    if (kc_poison_parse(&p[1], &c2->poison, pwhy, sizeof pwhy) != KC_OK) {
        kc_poison_free(&p[0]);
        kc_whyf(why, whylen, "poison of %s: %s", c2->label, pwhy);
        return KC_ERR_INVALID;
    }
    kc_bytes scratch[4][KC_POISON_MAX_VALUES];
    int flip[2] = {0, 0};
    kc_strlist lists[2] = {{true, 0, NULL}, {true, 0, NULL}}; /* topics, usages */
    bool has_pathlen = false;
    int64_t pathlen = 0;
    kc_status st = KC_OK;
    char src[96] = "";
    for (int k = 0; k < 2 && st == KC_OK; k++) {
        int offset = (k == 0 && !same_pk) ? -1 : 0;
        bool p_set = false, implicit = false;
        int64_t pv = 0;
        for (size_t i = 0; i < p[k].n; i++) {
            kc_pentry *e = &p[k].e[i];
            if (e->name == KC_P_PATHLEN) {
                p_set = !e->pathlen_none;
                pv = e->pathlen;
                implicit = false;
                continue;
            }
            int li = e->name == KC_P_TOPICS ? 0 : 1;
            if (e->name == KC_P_USAGES && !p_set) {
                int r = mm(cx, &key_allowlist, &e->list);
                if (r == 0)
                    r = mm(cx, &key_denylist, &e->list);
                if (r > 0) { /* key-allowlist/denylist imply pathlen 0 */
                    p_set = true;
                    implicit = true;
                    pv = 0;
                }
            }
            kc_bytes *out = scratch[li * 2 + flip[li]];
            if (cx->over_budget || intersect_mm(cx, &lists[li], &e->list, out, &lists[li]) < 0) {
                kc_whyf(why, whylen, BUDGET_MSG, KC_CHAIN_MAX_REGEX);
                st = KC_ERR_DENIED;
                break;
            }
            if (lists[li].v == out)
                flip[li] ^= 1;
        }
        if (p_set) {
            int64_t v = plus_offset(pv, offset);
            if (!has_pathlen || v < pathlen) {
                pathlen = v;
                has_pathlen = true;
                if (k == 0)
                    snprintf(src, sizeof src, "%s", a->pathlen_src);
                else
                    snprintf(src, sizeof src, "%s%s", c2->label,
                             implicit ? " (its key-allowlist/key-denylist usage implies pathlen 0)"
                                      : "");
            }
        }
    }
    kc_buf packed = KC_BUF_INIT;
    kc_pks key;
    memset(&key, 0, sizeof key);
    if (st == KC_OK && (kc_poison_pack(&lists[0], &lists[1], has_pathlen, pathlen, &packed) != KC_OK ||
                        kc_pks_copy(&key, c2->key) != KC_OK)) {
        kc_whyf(why, whylen, "out of memory");
        st = KC_ERR_NOMEM;
    }
    kc_poison_free(&p[0]);
    kc_poison_free(&p[1]);
    if (st != KC_OK) {
        kc_buf_free(&packed);
        kc_pks_clear(&key);
        return st;
    }
    kc_buf_free(&a->poison);
    a->poison = packed;
    memcpy(a->pathlen_src, src, sizeof src);
    kc_pks_clear(&a->key);
    a->key = key;
    a->extra = c2->extra;
    a->n_extra = c2->n_extra;
    return KC_OK;
}

/* validate_poison over a packed poison: 1 valid, 0 not, -1 budget/parse error.
 * `first` receives the entry that decided (for messages). */
static int validate(ctx *cx, kc_pname name, const kc_bytes *value, int64_t value_pathlen,
                    const kc_bytes *packed, const kc_pentry **first, kc_parsed_poison *p, char *why,
                    size_t whylen)
{
    *first = NULL;
    if (kc_poison_parse(p, packed, why, whylen) != KC_OK)
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        if (p->e[i].name != name)
            continue;
        *first = &p->e[i];
        if (name == KC_P_PATHLEN)
            return !p->e[i].pathlen_none && value_pathlen <= p->e[i].pathlen;
        int r = mm(cx, value, &p->e[i].list);
        if (r < 0)
            kc_whyf(why, whylen, BUDGET_MSG, KC_CHAIN_MAX_REGEX);
        return r;
    }
    return name == KC_P_PATHLEN;
}

kc_status kc_validate_poison(const char *name, const char *value, int64_t value_pathlen,
                             const uint8_t *packed, size_t packed_len, bool *ok, kc_err *err)
{
    *ok = false;
    kc_pname pn;
    if (!name || !strcmp(name, "topics"))
        pn = KC_P_TOPICS;
    else if (!strcmp(name, "usages"))
        pn = KC_P_USAGES;
    else if (!strcmp(name, "pathlen"))
        pn = KC_P_PATHLEN;
    else
        return kc_err_set(err, KC_ERR_INVALID, "validate_poison: unknown name '%s'", name);
    if (!name || (pn != KC_P_PATHLEN && !value)) {
        *ok = true;
        return KC_OK;
    }
    ctx cx = {0};
    kc_parsed_poison p;
    const kc_pentry *first;
    char why[KC_WHY_MAX];
    kc_bytes v = {(const uint8_t *)(value ? value : ""), value ? strlen(value) : 0};
    kc_bytes pb = {packed, packed_len};
    int r = validate(&cx, pn, &v, value_pathlen, &pb, &first, &p, why, sizeof why);
    kc_poison_free(&p);
    if (r < 0)
        return kc_err_set(err, KC_ERR_INVALID, "%s", why);
    *ok = r == 1;
    return KC_OK;
}

kc_status kc_key_in_list(const kc_key *k, const kc_chain_list *list, long *index, kc_err *err)
{
    plist pl;
    char why[KC_WHY_MAX];
    if (plist_init(&pl, list, "list") != KC_OK)
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    kc_status st = find_key(&pl, k, index, why, sizeof why);
    plist_free(&pl);
    return st == KC_OK ? KC_OK : kc_err_set(err, st, "%s", why);
}

/* ---- process_chain ---------------------------------------------------------------------------------- */

/* One root of trust tried: its outcome and how far it got. */
typedef struct attempt {
    kc_status st;
    int progress;
    char why[KC_ERR_MSG_MAX];
    acc a;
    kc_pks spks;
    kc_buf printable;
    kc_cert certs[KC_CHAIN_MAX_ITEMS + 1];
    size_t ncerts;
} attempt;

static void attempt_free(attempt *t)
{
    acc_free(&t->a);
    kc_pks_clear(&t->spks);
    kc_buf_free(&t->printable);
    for (size_t i = 0; i < t->ncerts; i++)
        kc_cert_free(&t->certs[i]);
    t->ncerts = 0;
}

static kc_status fail(attempt *t, kc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kc_status fail(attempt *t, kc_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->why, sizeof t->why, fmt, ap);
    va_end(ap);
    t->st = st;
    return st;
}

static kc_status spks_add(kc_pks *spks, const kc_key *k)
{
    /* At most one per chain item: grown one at a time. */
    if (kc_array_resize(&spks->keys, spks->n + 1, sizeof *spks->keys) != KC_OK)
        return KC_ERR_NOMEM;
    spks->is_list = true;
    if (kc_key_copy(&spks->keys[spks->n], k) != KC_OK)
        return KC_ERR_NOMEM;
    spks->n++;
    return KC_OK;
}

static void printable_step(attempt *t)
{
    if (t->printable.len)
        kc_buf_append(&t->printable, " ", 1);
    kc_bytes pb = {t->a.poison.data, t->a.poison.len};
    kc_put_cert(&t->printable, &t->a.age, &pb, &t->a.key);
}

static kc_status acc_start(attempt *t, const msgpack_object *age, const kc_bytes *poison,
                           const kc_pks *key, const char *label)
{
    t->a.age = *age;
    snprintf(t->a.age_src, sizeof t->a.age_src, "%s", label);
    snprintf(t->a.pathlen_src, sizeof t->a.pathlen_src, "%s", label);
    if (kc_buf_set(&t->a.poison, poison->p, poison->n) != KC_OK ||
        kc_pks_copy(&t->a.key, key) != KC_OK)
        return fail(t, KC_ERR_NOMEM, "out of memory");
    return KC_OK;
}

/* Why a topic or usage is refused: the first chain item whose own list
 * lacks it, with that list. The accumulated list is the intersection over
 * every item (the request's leaf names just its root), so it alone says
 * "not in []" for a node allowed 'sensor, lab' asking for 'lab.b'. */
static void put_culprit(ctx *cx, attempt *t, kc_pname name, const char *what,
                        const kc_bytes *value, const kc_strlist *together, kc_buf *msg)
{
    char why[KC_WHY_MAX];
    for (size_t i = 0; i < t->ncerts; i++) {
        kc_parsed_poison p;
        const kc_pentry *first;
        int r = validate(cx, name, value, 0, &t->certs[i].poison, &first, &p, why, sizeof why);
        if (r == 0 && first) {
            kc_put_fmt(msg, "' not in allowed %ss ", what);
            kc_put_strlist(msg, &first->list);
            kc_put_fmt(msg, " of chain item %zu", i + 1);
            kc_poison_free(&p);
            return;
        }
        kc_poison_free(&p);
    }
    kc_put_fmt(msg, "' not in allowed %ss ", what);
    kc_put_strlist(msg, together);
    kc_put_fmt(msg, " (what the chain's items allow together)");
}

/* Leaf rules, expiry, topic, usage and pathlen (the end of upstream's loop). */
static kc_status final_checks(ctx *cx, attempt *t, bool denied, const char *denied_why,
                              const kc_bytes *topic, const kc_bytes *usage, double checktime)
{
    char why[KC_WHY_MAX], tag[KC_TAG_MAX];
    long ai, di;
    kc_pks *leaf = &t->a.key;
    if (single_sign(leaf)) {
        if (find_key(&cx->allow, &leaf->keys[0], &ai, why, sizeof why) != KC_OK ||
            find_key(&cx->deny, &leaf->keys[0], &di, why, sizeof why) != KC_OK)
            return fail(t, KC_ERR_INVALID, "%s", why);
        if (ai >= 0)
            denied = false;
        if (di >= 0)
            return fail(t, KC_ERR_DENIED, "leaf key %s is denylisted (denylist entry %ld)",
                        kc_key_tag(&leaf->keys[0], tag), di + 1);
    } else if (leaf->is_list) {
        size_t kept = 0, dropped = 0;
        for (size_t i = 0; i < leaf->n; i++) {
            kc_key *k = &leaf->keys[i];
            di = -1;
            if (k->kind == KC_SIGN_PK) {
                if (find_key(&cx->allow, k, &ai, why, sizeof why) != KC_OK ||
                    find_key(&cx->deny, k, &di, why, sizeof why) != KC_OK)
                    return fail(t, KC_ERR_INVALID, "%s", why);
                if (ai >= 0)
                    denied = false;
            }
            if (di >= 0) {
                kc_key_clear(k);
                dropped++;
                continue;
            }
            if (kept != i)
                leaf->keys[kept] = *k;
            kept++;
        }
        leaf->n = kept;
        if (kept == 0)
            return fail(t, KC_ERR_DENIED, "every one of the %zu leaf keys is denylisted", dropped);
    }
    if (denied)
        return fail(t, KC_ERR_DENIED, "%s", denied_why);
    t->progress++;

    double age = kc_num_d(&t->a.age);
    if (age != 0 && age < checktime) {
        char at[48], now[48];
        return fail(t, KC_ERR_EXPIRED, "%s: expired at %s (checked at %s)", t->a.age_src,
                    kc_time_str(age, at), kc_time_str(checktime, now));
    }
    kc_bytes pb = {t->a.poison.data, t->a.poison.len};
    static const struct {
        kc_pname name;
        const char *what;
    } checks[2] = {{KC_P_TOPICS, "topic"}, {KC_P_USAGES, "usage"}};
    for (int i = 0; i < 2; i++) {
        const kc_bytes *value = i == 0 ? topic : usage;
        if (!value)
            continue;
        kc_parsed_poison p;
        const kc_pentry *first;
        int r = validate(cx, checks[i].name, value, 0, &pb, &first, &p, why, sizeof why);
        if (r != 1) {
            kc_buf msg = KC_BUF_INIT;
            kc_put_fmt(&msg, "%s '", checks[i].what);
            kc_put_text(&msg, value, 80);
            if (r < 0)
                kc_put_fmt(&msg, "' cannot be checked: %s", why);
            else if (!first)
                kc_put_fmt(&msg, "' requested, but the chain grants no %ss (no '%s' restriction "
                        "anywhere in it)", checks[i].what, kc_pnames[checks[i].name]);
            else
                put_culprit(cx, t, checks[i].name, checks[i].what, value, &first->list, &msg);
            fail(t, r < 0 ? KC_ERR_INVALID : KC_ERR_DENIED, "%s", kc_buf_str(&msg));
            kc_buf_free(&msg);
            kc_poison_free(&p);
            return t->st;
        }
        kc_poison_free(&p);
    }
    kc_parsed_poison p;
    const kc_pentry *first;
    int r = validate(cx, KC_P_PATHLEN, NULL, 0, &pb, &first, &p, why, sizeof why);
    if (r != 1) {
        if (r < 0)
            fail(t, KC_ERR_INVALID, "%s", why);
        else
            fail(t, KC_ERR_DENIED, "pathlen exceeded: the chain goes %lld certificate level(s) "
                 "deeper than %s allows", -(long long)first->pathlen, t->a.pathlen_src);
    }
    kc_poison_free(&p);
    return r == 1 ? KC_OK : t->st;
}

/* One root of trust: upstream's loop body for one allowlist entry. */
static kc_status try_rot(ctx *cx, size_t ri, const kc_chain_items *items, const kc_bytes *topic,
                         const kc_bytes *usage, double checktime, attempt *t)
{
    char why[KC_WHY_MAX], tag[KC_TAG_MAX], label[64], denied_why[KC_WHY_MAX] = "";
    lentry *rot = plist_get(&cx->allow, ri);
    certv cv;
    if (rot->st != KC_OK)
        return fail(t, rot->st, "the entry is malformed: %s", rot->why);
    if (kc_cert_fields(rot->o, &cv.age, &cv.poison, why, sizeof why) != KC_OK)
        return fail(t, KC_ERR_INVALID, "the entry is malformed: %s", why);
    snprintf(label, sizeof label, "allowlist entry %zu", ri + 1);
    if (acc_start(t, &cv.age, &cv.poison, &rot->key, label) != KC_OK)
        return t->st;
    t->a.extra = rot->o->via.array.ptr + 3;
    t->a.n_extra = rot->o->via.array.size - 3;
    printable_step(t);
    if (single_sign(&t->a.key) && spks_add(&t->spks, &t->a.key.keys[0]) != KC_OK)
        return fail(t, KC_ERR_NOMEM, "out of memory");

    bool denied = false;
    for (size_t j = 0; j < items->n; j++) {
        if (!single_sign(&t->a.key))
            return fail(t, KC_ERR_INVALID, "chain item %zu: the key that should sign it (%s) is "
                        "not a single signing key", j + 1, j ? "certified by the item before"
                                                             : "the root's");
        const kc_key *signer = &t->a.key.keys[0];
        kc_key_tag(signer, tag);
        long di, ai;
        if (find_key(&cx->deny, signer, &di, why, sizeof why) != KC_OK)
            return fail(t, KC_ERR_INVALID, "chain item %zu (signed by %s): %s", j + 1, tag, why);
        if (di >= 0) {
            char desc[200];
            denied = true;
            kc_whyf(denied_why, sizeof denied_why, "signing key %s of chain item %zu is "
                 "denylisted (denylist entry %ld) and no allowlisted key follows it", tag,
                 j + 1, di + 1);
            kc_log(KC_LOG_WARNING, "root", "Chain uses denylisted signing key %s.",
                   kc_key_describe(signer, desc, sizeof desc));
        } else {
            if (find_key(&cx->allow, signer, &ai, why, sizeof why) != KC_OK)
                return fail(t, KC_ERR_INVALID, "chain item %zu (signed by %s): %s", j + 1, tag, why);
            if (ai >= 0) {
                lentry *ae = plist_get(&cx->allow, (size_t)ai);
                certv av;
                denied = false;
                snprintf(label, sizeof label, "allowlist entry %ld", ai + 1);
                if (kc_cert_fields(ae->o, &av.age, &av.poison, why, sizeof why) != KC_OK)
                    return fail(t, KC_ERR_INVALID, "chain item %zu (signed by %s): allowlist "
                                "entry %ld for its signer is malformed: %s", j + 1, tag, ai + 1, why);
                av.key = &ae->key;
                av.extra = ae->o->via.array.ptr + 3;
                av.n_extra = ae->o->via.array.size - 3;
                av.label = label;
                kc_status st = intersect(cx, &t->a, &av, true, why, sizeof why);
                if (st != KC_OK)
                    return fail(t, st, "chain item %zu (signed by %s): %s", j + 1, tag, why);
                signer = &t->a.key.keys[0];
            }
        }
        const uint8_t *m;
        size_t mlen;
        kc_err e;
        kc_err_clear(&e);
        kc_status st = kc_sign_open(signer, items->item[j].p, items->item[j].n, &m, &mlen, &e);
        if (st != KC_OK)
            return fail(t, st, "chain item %zu (signed by %s): %s", j + 1, tag,
                        st == KC_ERR_CRYPTO ? "signature does not verify (tampered, or signed "
                                              "by another key)" : e.msg);
        kc_cert *c = &t->certs[t->ncerts];
        if ((st = kc_cert_parse(c, m, mlen, &e)) != KC_OK)
            return fail(t, st, "chain item %zu (signed by %s): %s", j + 1, tag, e.msg);
        t->ncerts++;
        snprintf(label, sizeof label, "chain item %zu", j + 1);
        certv ccv = {c->max_age, c->poison, &c->key, c->extra, c->n_extra, label};
        if ((st = intersect(cx, &t->a, &ccv, false, why, sizeof why)) != KC_OK)
            return fail(t, st, "chain item %zu (signed by %s): %s", j + 1, tag, why);
        t->progress++;
        printable_step(t);
        if (single_sign(&t->a.key) && spks_add(&t->spks, &t->a.key.keys[0]) != KC_OK)
            return fail(t, KC_ERR_NOMEM, "out of memory");
    }
    return final_checks(cx, t, denied, denied_why, topic, usage, checktime);
}

/* §6.9: a key may revoke itself: [unsigned cert of k, cert signed by k]. */
static kc_status try_self_signed(ctx *cx, const kc_chain_items *items, const kc_bytes *usage,
                                 attempt *t, bool *looked_like_one)
{
    *looked_like_one = false;
    if (items->n != 2)
        return fail(t, KC_ERR_DENIED, "not a self-signed pair");
    kc_cert *e = &t->certs[t->ncerts];
    if (kc_cert_parse(e, items->item[0].p, items->item[0].n, NULL) != KC_OK)
        return fail(t, KC_ERR_DENIED, "not a self-signed pair");
    t->ncerts++;
    *looked_like_one = true;
    if (!single_sign(&e->key))
        return fail(t, KC_ERR_INVALID, "item 1 does not certify a single signing key");
    const uint8_t *m;
    size_t mlen;
    kc_err err;
    kc_err_clear(&err);
    kc_status st = kc_sign_open(&e->key.keys[0], items->item[1].p, items->item[1].n, &m, &mlen,
                                &err);
    if (st != KC_OK)
        return fail(t, st, "item 2 is not signed by the key of item 1: %s", err.msg);
    kc_cert *c = &t->certs[t->ncerts];
    if ((st = kc_cert_parse(c, m, mlen, &err)) != KC_OK)
        return fail(t, st, "item 2: %s", err.msg);
    t->ncerts++;
    if (acc_start(t, &e->max_age, &e->poison, &e->key, "chain item 1") != KC_OK)
        return t->st;
    char why[KC_WHY_MAX];
    certv cv = {c->max_age, c->poison, &c->key, c->extra, c->n_extra, "chain item 2"};
    if ((st = intersect(cx, &t->a, &cv, false, why, sizeof why)) != KC_OK)
        return fail(t, st, "%s", why);
    printable_step(t);
    if (!single_sign(&t->a.key) || !kc_key_equal(&t->a.key.keys[0], &e->key.keys[0]))
        return fail(t, KC_ERR_DENIED, "item 2 certifies a key other than its signer");
    static const kc_bytes only[] = {{(const uint8_t *)"key-denylist", 12}};
    kc_strlist denylist_usage = {false, 1, only};
    if (usage && mm(cx, usage, &denylist_usage) != 1)
        return fail(t, KC_ERR_DENIED, "a self-signed pair is only valid for usage "
                    "'key-denylist'");
    kc_bytes pb = {t->a.poison.data, t->a.poison.len};
    const kc_pentry *first;
    kc_parsed_poison p;
    int r = validate(cx, KC_P_USAGES, &key_denylist, 0, &pb, &first, &p, why, sizeof why);
    kc_poison_free(&p);
    if (r != 1)
        return fail(t, KC_ERR_DENIED, "its usages do not include 'key-denylist'");
    r = validate(cx, KC_P_PATHLEN, NULL, 0, &pb, &first, &p, why, sizeof why);
    kc_poison_free(&p);
    if (r != 1)
        return fail(t, KC_ERR_DENIED, "pathlen exceeded");
    if (spks_add(&t->spks, &c->key.keys[0]) != KC_OK)
        return fail(t, KC_ERR_NOMEM, "out of memory");
    return KC_OK;
}

void kc_chain_result_free(kc_chain_result *r)
{
    if (!r)
        return;
    kc_buf_free(&r->poison);
    kc_pks_clear(&r->key);
    kc_mp_doc_free(&r->extra_doc);
    kc_buf_free(&r->extra);
    kc_buf_free(&r->packed);
    kc_pks_clear(&r->spks);
    kc_buf_free(&r->printable);
    kc_buf_free(&r->report);
    memset(r, 0, sizeof *r);
}

/* Moves an accepted attempt into the caller's result. */
static kc_status finish(attempt *t, size_t rot_index, bool self_signed, kc_chain_result *out)
{
    if (!out)
        return KC_OK;
    kc_mp_out ex, all;
    kc_mp_out_init(&ex);
    kc_mp_out_init(&all);
    msgpack_pack_array(&ex.pk, t->a.n_extra);
    msgpack_pack_array(&all.pk, 3 + t->a.n_extra);
    kc_pack_num(&all.pk, &t->a.age);
    kc_mp_pack_bin(&all.pk, t->a.poison.data, t->a.poison.len);
    kc_pks_pack(&all.pk, &t->a.key);
    for (size_t i = 0; i < t->a.n_extra; i++) {
        kc_repack(&ex.pk, &t->a.extra[i]);
        kc_repack(&all.pk, &t->a.extra[i]);
    }
    kc_status st = kc_mp_out_take(&ex, &out->extra);
    if (kc_mp_out_take(&all, &out->packed) != KC_OK)
        st = KC_ERR_NOMEM;
    if (st == KC_OK)
        st = kc_mp_decode(&out->extra_doc, out->extra.data, out->extra.len, "extra", NULL);
    if (st != KC_OK) {
        kc_chain_result_free(out);
        return KC_ERR_NOMEM;
    }
    out->extras = kc_mp_root(&out->extra_doc)->via.array.ptr;
    out->n_extra = t->a.n_extra;
    out->max_age = kc_num_d(&t->a.age);
    out->max_age_is_int = kc_num_is_int(&t->a.age);
    out->poison = t->a.poison;
    t->a.poison = (kc_buf)KC_BUF_INIT;
    out->key = t->a.key;
    memset(&t->a.key, 0, sizeof t->a.key);
    out->spks = t->spks;
    memset(&t->spks, 0, sizeof t->spks);
    out->printable = t->printable;
    t->printable = (kc_buf)KC_BUF_INIT;
    kc_buf_str(&out->printable);
    out->rot_index = rot_index;
    out->self_signed = self_signed;
    return KC_OK;
}

static kc_status check_text(const char *what, const char *s, kc_bytes *out, kc_err *err)
{
    if (!s)
        return KC_OK;
    *out = (kc_bytes){(const uint8_t *)s, strlen(s)};
    if (!kc_utf8_valid(out->p, out->n))
        return kc_err_set(err, KC_ERR_INVALID, "%s to check is not valid UTF-8", what);
    return KC_OK;
}

kc_status kc_chain_process(const uint8_t *chain, size_t n, const char *topic,
                           const char *usage, const kc_chain_list *allowlist,
                           const kc_chain_list *denylist, double checktime,
                           kc_chain_result *out, kc_err *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!allowlist)
        return kc_err_set(err, KC_ERR_DENIED, "chain not trusted: no roots of trust configured "
                          "(no allowlist)");
    kc_bytes topic_b, usage_b;
    if (check_text("topic", topic, &topic_b, err) != KC_OK ||
        check_text("usage", usage, &usage_b, err) != KC_OK)
        return KC_ERR_INVALID;
    const kc_bytes *tp = topic ? &topic_b : NULL, *up = usage ? &usage_b : NULL;
    kc_chain_items items;
    kc_status st = kc_chain_parse(&items, chain, n, err);
    if (st != KC_OK)
        return st;
    if (items.n == 0) {
        kc_chain_items_free(&items);
        return kc_err_set(err, KC_ERR_INVALID, "chain has no items: at least one certificate "
                          "signed by a root of trust is needed");
    }
    ctx cx = {0};
    attempt *t = calloc(1, sizeof *t), *best = calloc(1, sizeof *best);
    kc_buf report = KC_BUF_INIT;
    if (!t || !best || plist_init(&cx.allow, allowlist, "allowlist") != KC_OK ||
        plist_init(&cx.deny, denylist, "denylist") != KC_OK) {
        st = kc_err_set(err, KC_ERR_NOMEM, "out of memory validating a chain");
        goto done;
    }
    size_t best_index = 0;
    best->progress = -1;
    for (size_t i = 0; i < allowlist->n; i++) {
        memset(t, 0, sizeof *t);
        st = try_rot(&cx, i, &items, tp, up, checktime, t);
        if (st == KC_OK) {
            st = finish(t, i, false, out);
            attempt_free(t);
            goto done;
        }
        lentry *rot = plist_get(&cx.allow, i);
        char tag[KC_TAG_MAX] = "?";
        if (rot->st == KC_OK)
            kc_pks_tag(&rot->key, tag);
        kc_put_fmt(&report, "allowlist entry %zu (rot %s): %s\n", i + 1, tag, t->why);
        if (t->progress > best->progress) {
            best->progress = t->progress;
            best->st = t->st;
            kc_whyf(best->why, sizeof best->why, "allowlist entry %zu (rot %s): %s", i + 1, tag,
                 t->why);
            best_index = i;
        }
        attempt_free(t);
    }
    memset(t, 0, sizeof *t);
    bool self_like = false;
    st = try_self_signed(&cx, &items, up, t, &self_like);
    if (st == KC_OK) {
        st = finish(t, SIZE_MAX, true, out);
        attempt_free(t);
        goto done;
    }
    if (self_like) {
        /* an unsigned first item: the pair is what the sender meant */
        kc_put_fmt(&report, "self-signed denylist pair: %s\n", t->why);
        best->st = t->st;
        kc_whyf(best->why, sizeof best->why, "self-signed denylist pair: %s", t->why);
        best_index = allowlist->n;
    }
    attempt_free(t);

    kc_buf summary = KC_BUF_INIT;
    if (self_like) {
        st = best->st;
        kc_put_fmt(&summary, "chain not trusted (%zu roots of trust tried): %s", allowlist->n,
                best->why);
    } else if (allowlist->n == 0) {
        st = KC_ERR_DENIED;
        kc_put_fmt(&summary, "chain not trusted: the allowlist is empty");
    } else {
        st = best->st;
        kc_put_fmt(&summary, "chain not trusted by any of the %zu roots of trust: %s", allowlist->n,
                best->why);
    }
    /* the other reasons, in order, after the most relevant one */
    for (size_t pos = 0, line = 0; pos < report.len; line++) {
        const uint8_t *start = report.data + pos, *nl = memchr(start, '\n', report.len - pos);
        size_t len = (size_t)(nl - start); /* every line ends with a newline */
        if (line != best_index)
            kc_put_fmt(&summary, "; also %.*s", (int)len, (const char *)start);
        pos += len + 1;
    }
    kc_err_set(err, st, "%s", kc_buf_str(&summary));
    kc_buf_free(&summary);
    if (out) {
        out->report = report;
        report = (kc_buf)KC_BUF_INIT;
        kc_buf_str(&out->report);
    }
done:
    kc_buf_free(&report);
    plist_free(&cx.allow);
    plist_free(&cx.deny);
    free(t);
    free(best);
    kc_chain_items_free(&items);
    return st;
}
