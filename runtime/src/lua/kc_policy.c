#include "kc_policy.h"

#include <lauxlib.h>
#include <pthread.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "kc_clock.h"
#include "kc_hex.h"
#include "kc_log.h"
#include "kc_ratelimit.h"
#include "kc_lua_chain.h"

#define REG_REQUEST "kafkacrypto.policy.request"

struct kc_policy {
    kc_sandbox **sb;
    size_t n;
};

kc_status kc_policy_open(kc_policy **out, char *const *files, size_t n,
                         const kc_sandbox_limits *lim, kc_err *err)
{
    *out = NULL;
    kc_policy *p = calloc(1, sizeof *p);
    if (!p || (n && !(p->sb = calloc(n, sizeof *p->sb)))) {
        free(p);
        return kc_err_set(err, KC_ERR_NOMEM, "policies: out of memory");
    }
    for (; p->n < n; p->n++) {
        kc_status st = kc_sandbox_new(&p->sb[p->n], lim, err);
        if (st == KC_OK && (st = kc_sandbox_load(p->sb[p->n], files[p->n], err)) != KC_OK)
            p->n++;   /* free this one too */
        if (st != KC_OK) {
            kc_policy_free(p);
            return st;
        }
    }
    *out = p;
    return KC_OK;
}

void kc_policy_free(kc_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        kc_sandbox_free(p->sb[i]);
    free(p->sb);
    free(p);
}

size_t kc_policy_count(const kc_policy *p)
{
    return p ? p->n : 0;
}

/* ---- the request table ----------------------------------------------------------- */

typedef struct build_ctx {
    const char *hook;
    const kc_policy_request *req;
    const kc_policy_grant *grant;
} build_ctx;

static void set_string(lua_State *L, const char *name, const char *value)
{
    if (!value)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, name);
}

static void set_strings(lua_State *L, const char *name, char *const *v, size_t n)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, v[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, name);
}

/* fingerprint = hex(SHA-256(bytes(k))) and <raw_name> = hex(bytes(k)). */
static void set_requester(lua_State *L, const kc_key *k, const char *raw_name)
{
    kc_buf b = KC_BUF_INIT;
    if (kc_key_bytes(k, &b) != KC_OK) {
        kc_buf_free(&b);
        luaL_error(L, "out of memory");
    }
    uint8_t d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, b.data, b.len);
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    lua_pushstring(L, kc_hex(d, sizeof d, hex));
    lua_setfield(L, -2, "fingerprint");
    char *key = malloc(2 * b.len + 1);
    if (key) {
        lua_pushstring(L, kc_hex(b.data, b.len, key));
        lua_setfield(L, -2, raw_name);
    }
    free(key);
    kc_buf_free(&b);
    if (!key)
        luaL_error(L, "out of memory");
}

/* lua_cpcall body: builds the request table (protected, so an allocation
 * failure is an error, not a panic) and leaves it in the registry. */
static int build_request(lua_State *L)
{
    const build_ctx *c = lua_touserdata(L, 1);
    const kc_policy_request *r = c->req;
    lua_createtable(L, 0, 20);
    set_string(L, "hook", c->hook);
    set_string(L, "root", r->root);
    set_string(L, "topic", r->topic);
    set_string(L, "usage", r->usage);
    set_string(L, "node_id", r->node_id);
    lua_pushnumber(L, r->now);
    lua_setfield(L, -2, "time");
    if (r->chain) {
        kc_lua_push_chain_result(L, r->chain);
        static const char *const copied[] = {"topics", "usages", "pathlen", "expiry", "rot",
                                             "rot_fingerprint", "rot_index", NULL};
        for (const char *const *f = copied; *f; f++) {
            lua_getfield(L, -1, *f);
            lua_setfield(L, -3, *f);
        }
        lua_setfield(L, -2, "chain");
        /* the requester: the key that signed the leaf (the last signer) */
        if (r->chain->spks.n > 0)
            set_requester(L, &r->chain->spks.keys[r->chain->spks.n - 1], "signer");
    }
    if (r->subject)
        set_requester(L, r->subject, "key");
    if (c->grant) {
        const kc_policy_grant *g = c->grant;
        lua_createtable(L, 0, 4);
        if (g->has_topics)
            set_strings(L, "topics", g->topics, g->n_topics);
        if (g->has_usages)
            set_strings(L, "usages", g->usages, g->n_usages);
        if (g->pathlen >= 0) {
            lua_pushnumber(L, (lua_Number)g->pathlen);
            lua_setfield(L, -2, "pathlen");
        }
        lua_pushnumber(L, g->lifetime);
        lua_setfield(L, -2, "lifetime");
        lua_setfield(L, -2, "grant");
    }
    lua_setfield(L, LUA_REGISTRYINDEX, REG_REQUEST);
    return 0;
}

static kc_status push_request(kc_sandbox *s, const build_ctx *c, kc_err *err)
{
    lua_State *L = kc_sandbox_state(s);
    if (lua_cpcall(L, build_request, (void *)c) != 0) {
        lua_pop(L, 1);
        return kc_err_set(err, KC_ERR_NOMEM, "policy file %s: hook %s: out of memory",
                          kc_sandbox_path(s), c->hook);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, REG_REQUEST);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REG_REQUEST);
    return KC_OK;
}

/* ---- decisions ------------------------------------------------------------------------ */

/* A refusal is said at WARNING once per REFUSAL_REPEAT seconds for the same
 * root and message (file, hook, reason), at INFO in between: whoever may
 * write to a key topic must not be able to flood the log. */
#define REFUSAL_REPEAT 60.0

static pthread_mutex_t said_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t said_once = PTHREAD_ONCE_INIT;
static kc_ratelimit said;

static void said_init(void)
{
    kc_ratelimit_init(&said);
}

static bool refusal_due(const char *root, const char *msg)
{
    pthread_once(&said_once, said_init);
    pthread_mutex_lock(&said_lock);
    bool due = kc_ratelimit_due(&said, root, msg, kc_clock_mono(), REFUSAL_REPEAT);
    pthread_mutex_unlock(&said_lock);
    return due;
}

static kc_status log_refusal(const kc_policy_request *r, kc_err *err)
{
    const char *root = r->root ? r->root : "-";
    err->code = KC_ERR_DENIED;
    kc_log(refusal_due(root, err->msg) ? KC_LOG_WARNING : KC_LOG_INFO, KC_POLICY_LOGGER,
           "Refused by policy (root=%s): %s", root, err->msg);
    return KC_ERR_DENIED;
}

static kc_status refuse(kc_sandbox *s, const char *hook, const kc_policy_request *r,
                        kc_err *err, const char *why)
{
    kc_err_set(err, KC_ERR_DENIED, "policy file %s: hook %s: %s", kc_sandbox_path(s), hook, why);
    return log_refusal(r, err);
}

/* A failed call (error, budget) refuses; err already names file and hook. */
static kc_status call_failed(const kc_policy_request *r, kc_err *err)
{
    return log_refusal(r, err);
}

/* Reads (false|nil, reason) at the top two slots into a refusal; `wanted`
 * names the other accepted answer. */
static kc_status refusal_of(kc_sandbox *s, const char *hook, const kc_policy_request *r,
                            const char *wanted, kc_err *err)
{
    lua_State *L = kc_sandbox_state(s);
    char why[300];
    int first = lua_type(L, -2);
    if (first == LUA_TBOOLEAN || first == LUA_TNIL)
        snprintf(why, sizeof why, "denied: %s",
                 lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "no reason given");
    else
        snprintf(why, sizeof why, "returned a %s; expected %s, or false and a reason "
                 "(refused)", lua_typename(L, first), wanted);
    lua_pop(L, 2);
    return refuse(s, hook, r, err, why);
}

kc_status kc_policy_decide(kc_policy *p, const char *hook, const kc_policy_request *req,
                           kc_err *err)
{
    kc_err local;
    if (!err)
        err = &local;
    build_ctx c = {hook, req, NULL};
    for (size_t i = 0; p && i < p->n; i++) {
        kc_sandbox *s = p->sb[i];
        if (!kc_sandbox_has(s, hook))
            continue;
        kc_status st = push_request(s, &c, err);
        if (st == KC_OK)
            st = kc_sandbox_call(s, hook, 1, 2, err);
        if (st != KC_OK)
            return call_failed(req, err);
        lua_State *L = kc_sandbox_state(s);
        if (lua_type(L, -2) == LUA_TBOOLEAN && lua_toboolean(L, -2)) {
            lua_pop(L, 2);
            continue;
        }
        return refusal_of(s, hook, req, "true", err);
    }
    return KC_OK;
}

/* ---- grants --------------------------------------------------------------------------- */

/* Reads the string array at field `name` of the table on top (raw access:
 * no metamethod runs outside the budget). Absent: *has = false. */
static const char *read_strings(lua_State *L, const char *name, char **out, size_t *n,
                                bool *has)
{
    lua_pushstring(L, name);
    lua_rawget(L, -2);
    *has = !lua_isnil(L, -1);
    const char *why = NULL;
    if (*has && !lua_istable(L, -1))
        why = "expected an array of strings";
    for (size_t i = 0; !why && *has; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            break;
        }
        size_t len;
        const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (!v || len == 0 || len > KC_POISON_MAX_VALUE_LEN || strlen(v) != len)
            why = "expected non-empty strings";
        else if (i >= KC_POLICY_MAX_GRANT)
            why = "too many entries";
        else if (!(out[i] = strdup(v)))
            why = "out of memory";
        else
            *n = i + 1;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return why;
}

static const char *read_grant(lua_State *L, kc_policy_grant *g)
{
    const char *why;
    if ((why = read_strings(L, "topics", g->topics, &g->n_topics, &g->has_topics)))
        return why;
    if ((why = read_strings(L, "usages", g->usages, &g->n_usages, &g->has_usages)))
        return why;
    lua_pushstring(L, "pathlen");
    lua_rawget(L, -2);
    if (lua_type(L, -1) == LUA_TNUMBER) {
        double v = lua_tonumber(L, -1);
        if (v < 0 || v > 1000 || v != (double)(int64_t)v)
            why = "pathlen: expected a small non-negative integer";
        g->pathlen = (int64_t)v;
    } else if (!lua_isnil(L, -1)) {
        why = "pathlen: expected a number";
    }
    lua_pop(L, 1);
    lua_pushstring(L, "lifetime");
    lua_rawget(L, -2);
    if (!why && (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0) ||
                 lua_tonumber(L, -1) > 1e10))
        why = "lifetime: expected a positive number of seconds";
    g->lifetime = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return why;
}

kc_status kc_policy_issue(kc_policy *p, const kc_policy_request *req, kc_policy_grant *grant,
                          kc_err *err)
{
    kc_err local;
    if (!err)
        err = &local;
    static const char hook[] = "issue_chain";
    for (size_t i = 0; p && i < p->n; i++) {
        kc_sandbox *s = p->sb[i];
        if (!kc_sandbox_has(s, hook))
            continue;
        build_ctx c = {hook, req, grant};
        kc_status st = push_request(s, &c, err);
        if (st == KC_OK)
            st = kc_sandbox_call(s, hook, 1, 2, err);
        if (st != KC_OK)
            return call_failed(req, err);
        lua_State *L = kc_sandbox_state(s);
        if (!lua_istable(L, -2))
            return refusal_of(s, hook, req, "a grant table", err);
        lua_pop(L, 1);
        kc_policy_grant g;
        memset(&g, 0, sizeof g);
        g.pathlen = -1;
        const char *why = read_grant(L, &g);
        lua_pop(L, 1);
        if (why) {
            kc_policy_grant_clear(&g);
            char msg[200];
            snprintf(msg, sizeof msg, "returned a bad grant: %s (refused)", why);
            return refuse(s, hook, req, err, msg);
        }
        kc_policy_grant_clear(grant);
        *grant = g;
    }
    return KC_OK;
}

kc_status kc_policy_exchange_check(void *ctx, const char *root, const char *usage, double now,
                                   const kc_chain_result *chain, kc_err *err)
{
    const char *hook = strcmp(usage, "key-encrypt-request") == 0     ? "key_request"
                       : strcmp(usage, "key-encrypt") == 0           ? "key_reply"
                       : strcmp(usage, "key-encrypt-subscribe") == 0 ? "reencrypt"
                                                                     : NULL;
    if (!hook)
        return KC_OK;
    kc_policy_request r = {root, root, usage, now, chain, NULL, NULL};
    return kc_policy_decide(ctx, hook, &r, err);
}

kc_status kc_policy_issue_grant(void *ctx, const kc_policy_request *req, kc_policy_grant *grant,
                                kc_err *err)
{
    return kc_policy_issue(ctx, req, grant, err);
}
