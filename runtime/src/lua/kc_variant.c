#include "kc_variant.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "kc_array.h"
#include "kc_chain.h"
#include "kc_clock.h"
#include "kc_log.h"
#include "kc_lua_crypto.h"
#include "kc_node.h"

#define MAX_CHAIN_BYTES (1u << 20)

struct kc_variant {
    kc_sandbox *sb;
    char *node_id;
    kc_cryptokey *ck;
    kc_exchange *x;
    double maxage;
    double (*now_fn)(void *ctx);
    void *now_ctx;
};

static const char *const hooks[] = {"make_request", "answer_request", "accept_reply"};

/* Runs a hook. KC_ERR_DENIED is kept for refusals: a hook that raised or
 * ran out of budget is KC_ERR_INVALID (err says which). */
static kc_status call(kc_variant *v, const char *hook, int nargs, kc_err *err)
{
    kc_status st = kc_sandbox_call(v->sb, hook, nargs, 2, err);
    return st == KC_OK ? KC_OK : st == KC_ERR_NOMEM ? st : KC_ERR_INVALID;
}

/* ---- ctx functions -------------------------------------------------------------------- */

static kc_variant *upvalue_variant(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* ctx.own_chain([i = 1]) -> the chain certifying signing key i, or nil if the
 * node has none (it would use upstream's temporary chain) */
static int l_own_chain(lua_State *L)
{
    kc_variant *v = upvalue_variant(L);
    lua_Number i = lua_isnoneornil(L, 1) ? 1 : luaL_checknumber(L, 1);
    kc_buf b = KC_BUF_INIT;
    if (i < 1 || i > (lua_Number)kc_cryptokey_num_spk(v->ck) ||
        kc_exchange_own_chain(v->x, (size_t)i - 1, &b) != KC_OK || b.len == 0) {
        kc_buf_free(&b);
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, (const char *)b.data, b.len);
    kc_buf_free(&b);
    return 1;
}

/* ctx.check_chain(chain, usage) -> { key = bytes, keys = {bytes...}, max_age = s }
 * for the key the chain certifies, validated by the node's trust lists for
 * ctx.root and usage; or nil, reason */
static int l_check_chain(lua_State *L)
{
    kc_variant *v = upvalue_variant(L);
    size_t n;
    const char *chain = luaL_checklstring(L, 1, &n);
    const char *usage = luaL_checkstring(L, 2);
    lua_getfield(L, lua_upvalueindex(2), "root");
    const char *root = lua_tostring(L, -1);
    if (!root || n > MAX_CHAIN_BYTES) {
        lua_pushnil(L);
        lua_pushstring(L, root ? "chain too large" : "ctx.root is not set");
        return 2;
    }
    kc_chain_result res = {0};
    kc_err err;
    if (kc_exchange_check_chain(v->x, root, usage, (const uint8_t *)chain, n, &res, &err) !=
        KC_OK) {
        kc_chain_result_free(&res);
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_createtable(L, 0, 3);
    lua_createtable(L, (int)res.key.n, 0);
    for (size_t i = 0; i < res.key.n; i++) {
        kc_buf b = KC_BUF_INIT;
        if (kc_key_bytes(&res.key.keys[i], &b) == KC_OK)
            lua_pushlstring(L, (const char *)b.data, b.len);
        else
            lua_pushliteral(L, "");
        kc_buf_free(&b);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_rawgeti(L, -1, 1);
    lua_setfield(L, -3, "key");
    lua_setfield(L, -2, "keys");
    lua_pushnumber(L, res.max_age);
    lua_setfield(L, -2, "max_age");
    kc_chain_result_free(&res);
    return 1;
}

/* The ctx table of one call. */
static void push_ctx(kc_variant *v, const char *root)
{
    lua_State *L = kc_sandbox_state(v->sb);
    lua_createtable(L, 0, 8);
    lua_pushstring(L, root);
    lua_setfield(L, -2, "root");
    lua_pushstring(L, v->node_id);
    lua_setfield(L, -2, "node_id");
    lua_pushnumber(L, v->now_fn(v->now_ctx));
    lua_setfield(L, -2, "now");
    lua_pushnumber(L, v->maxage);
    lua_setfield(L, -2, "maxage");
    size_t nspk = kc_cryptokey_num_spk(v->ck);
    lua_createtable(L, (int)nspk, 0);
    for (size_t i = 0; i < nspk; i++) {
        kc_lua_push_signing_key(L, v->ck, i);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "signing_keys");
    lua_pushlightuserdata(L, v);
    lua_pushcclosure(L, l_own_chain, 1);
    lua_setfield(L, -2, "own_chain");
    lua_pushlightuserdata(L, v);
    lua_pushvalue(L, -2); /* the ctx itself, for its root */
    lua_pushcclosure(L, l_check_chain, 2);
    lua_setfield(L, -2, "check_chain");
}

/* ---- results ------------------------------------------------------------------------------ */

static kc_status add_msg(kc_exchange_msgs *m, const char *p, size_t n)
{
    if (KC_ARRAY_GROW(m->items, m->n, m->cap) != KC_OK)
        return KC_ERR_NOMEM;
    kc_exchange_msg *msg = &m->items[m->n];
    memset(msg, 0, sizeof *msg);
    msg->direct = true;
    kc_status st = kc_buf_set(&msg->value, p, n);
    if (st == KC_OK)
        m->n++;
    return st;
}

/* A refusal (nil/false, reason) as KC_ERR_DENIED with the reason. */
static kc_status refusal(kc_variant *v, const char *hook, int at, kc_err *err)
{
    lua_State *L = kc_sandbox_state(v->sb);
    const char *why = lua_type(L, at + 1) == LUA_TSTRING ? lua_tostring(L, at + 1)
                                                         : "no reason given";
    return kc_err_set(err, KC_ERR_DENIED, "exchange variant %s: %s refused: %.300s",
                      kc_variant_path(v), hook, why);
}

/* The messages returned at index `at`: a string, or a list of strings. */
static kc_status collect_msgs(kc_variant *v, const char *hook, int at, kc_exchange_msgs *out,
                              kc_err *err)
{
    lua_State *L = kc_sandbox_state(v->sb);
    if (!lua_toboolean(L, at))
        return refusal(v, hook, at, err);
    int count = lua_type(L, at) == LUA_TSTRING ? 1 : lua_istable(L, at) ? (int)lua_objlen(L, at)
                                                                          : -1;
    if (count < 1 || count > KC_VARIANT_MAX_MESSAGES)
        return kc_err_set(err, KC_ERR_INVALID, "exchange variant %s: %s: expected a string or a "
                          "list of 1 to %d strings, got %s", kc_variant_path(v), hook,
                          KC_VARIANT_MAX_MESSAGES, luaL_typename(L, at));
    for (int i = 1; i <= count; i++) {
        if (lua_istable(L, at))
            lua_rawgeti(L, at, i);
        else
            lua_pushvalue(L, at);
        size_t n;
        const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
        kc_status st = KC_OK;
        if (!p || n == 0 || n > KC_VARIANT_MAX_BYTES)
            st = kc_err_set(err, KC_ERR_INVALID, "exchange variant %s: %s: message %d: expected "
                            "1 to %u bytes", kc_variant_path(v), hook, i, KC_VARIANT_MAX_BYTES);
        else if (add_msg(out, p, n) != KC_OK)
            st = kc_err_set(err, KC_ERR_NOMEM, "out of memory");
        lua_pop(L, 1);
        if (st != KC_OK)
            return st;
    }
    return KC_OK;
}

/* ---- hooks -------------------------------------------------------------------------------- */

kc_status kc_variant_make_request(kc_variant *v, const char *root, const kc_keyidx *wanted,
                                  size_t n_wanted, kc_exchange_msgs *out, kc_err *err)
{
    lua_State *L = kc_sandbox_state(v->sb);
    int top = lua_gettop(L);
    push_ctx(v, root);
    lua_createtable(L, (int)n_wanted, 0);
    for (size_t i = 0; i < n_wanted; i++) {
        kc_lua_push_keyidx(L, &wanted[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "wanted");
    kc_status st = call(v, "make_request", 1, err);
    if (st == KC_OK)
        st = collect_msgs(v, "make_request", top + 1, out, err);
    if (st != KC_OK)
        kc_exchange_msgs_clear(out);
    lua_settop(L, top);
    return st;
}

kc_status kc_variant_answer_request(kc_variant *v, const char *root, const kc_exchange_keys *keys,
                                    const uint8_t *request, size_t n, kc_exchange_msgs *out,
                                    kc_err *err)
{
    lua_State *L = kc_sandbox_state(v->sb);
    int top = lua_gettop(L);
    kc_exchange_keys copy = {0};
    for (size_t i = 0; i < keys->n; i++)
        if (kc_exchange_keys_add(&copy, &keys->items[i].ki, keys->items[i].secret) != KC_OK) {
            kc_exchange_keys_clear(&copy);
            return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
        }
    kc_lua_push_keyset(L, &copy); /* top + 1: kept to wipe after the call */
    push_ctx(v, root);
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, (const char *)request, n);
    lua_setfield(L, -2, "value");
    lua_pushvalue(L, top + 1);
    lua_setfield(L, -2, "keys");
    kc_status st = call(v, "answer_request", 2, err);
    if (st == KC_OK)
        st = collect_msgs(v, "answer_request", top + 2, out, err);
    if (st != KC_OK)
        kc_exchange_msgs_clear(out);
    kc_exchange_keys_clear(kc_lua_test_keyset(L, top + 1)); /* even if the hook kept it */
    lua_settop(L, top);
    return st;
}

kc_status kc_variant_accept_reply(kc_variant *v, const char *root, const uint8_t *reply, size_t n,
                                  kc_exchange_keys *out, kc_err *err)
{
    lua_State *L = kc_sandbox_state(v->sb);
    int top = lua_gettop(L);
    push_ctx(v, root);
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, (const char *)reply, n);
    lua_setfield(L, -2, "value");
    kc_status st = call(v, "accept_reply", 2, err);
    if (st == KC_OK && !lua_toboolean(L, top + 1)) {
        st = refusal(v, "accept_reply", top + 1, err);
    } else if (st == KC_OK) {
        kc_exchange_keys *got = kc_lua_test_keyset(L, top + 1);
        if (!got || got->n == 0 || got->n > KC_EXCHANGE_MAX_KEYS)
            st = kc_err_set(err, KC_ERR_INVALID, "exchange variant %s: accept_reply: expected "
                            "a keyset handle with 1 to %d keys, got %s", kc_variant_path(v),
                            KC_EXCHANGE_MAX_KEYS, got ? "an empty or larger keyset"
                                                      : luaL_typename(L, top + 1));
        for (size_t i = 0; st == KC_OK && i < got->n; i++)
            if (kc_exchange_keys_add(out, &got->items[i].ki, got->items[i].secret) != KC_OK)
                st = kc_err_set(err, KC_ERR_NOMEM, "out of memory");
        if (got)
            kc_exchange_keys_clear(got); /* the node holds them now */
    }
    lua_settop(L, top);
    return st;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

kc_status kc_variant_open(kc_variant **out, const kc_variant_config *c, kc_err *err)
{
    *out = NULL;
    kc_variant *v = calloc(1, sizeof *v);
    if (!v || !(v->node_id = strdup(c->node_id ? c->node_id : ""))) {
        free(v);
        return kc_err_set(err, KC_ERR_NOMEM, "out of memory");
    }
    v->ck = c->cryptokey;
    v->x = c->exchange;
    v->maxage = c->maxage > 0 ? c->maxage : KC_EXCHANGE_MAXAGE;
    v->now_fn = c->now_fn ? c->now_fn : kc_clock_wall_fn;
    v->now_ctx = c->now_ctx;
    kc_status st = kc_sandbox_new(&v->sb, c->limits, err);
    if (st == KC_OK) {
        kc_sandbox_set_label(v->sb, "exchange variant");
        lua_State *L = kc_sandbox_state(v->sb);
        kc_lua_push_crypto(L);
        lua_pushnil(L); /* no files from the sandbox: hooks get ctx.signing_keys */
        lua_setfield(L, -2, "signing_keys");
        lua_setglobal(L, "crypto");
        st = kc_sandbox_load(v->sb, c->path, err);
    }
    for (size_t i = 0; st == KC_OK && i < sizeof hooks / sizeof hooks[0]; i++)
        if (!kc_sandbox_has(v->sb, hooks[i]))
            st = kc_err_set(err, KC_ERR_INVALID, "exchange variant %s: the file defines no "
                            "function %s (a variant needs make_request, answer_request and "
                            "accept_reply)", c->path, hooks[i]);
    if (st != KC_OK) {
        kc_variant_free(v);
        return st;
    }
    *out = v;
    return KC_OK;
}

void kc_variant_free(kc_variant *v)
{
    if (!v)
        return;
    kc_sandbox_free(v->sb);
    free(v->node_id);
    free(v);
}

const char *kc_variant_path(const kc_variant *v)
{
    return kc_sandbox_path(v->sb);
}

/* ---- as the node's kc_exchange_variant ------------------------------------------ */

static kc_status op_make_request(void *v, const char *root, const kc_keyidx *wanted, size_t n,
                                 kc_exchange_msgs *out, kc_err *err)
{
    return kc_variant_make_request(v, root, wanted, n, out, err);
}

static kc_status op_answer_request(void *v, const char *root, const kc_exchange_keys *keys,
                                   const uint8_t *request, size_t n, kc_exchange_msgs *out,
                                   kc_err *err)
{
    return kc_variant_answer_request(v, root, keys, request, n, out, err);
}

static kc_status op_accept_reply(void *v, const char *root, const uint8_t *reply, size_t n,
                                 kc_exchange_keys *out, kc_err *err)
{
    return kc_variant_accept_reply(v, root, reply, n, out, err);
}

static void op_free(void *v)
{
    kc_variant_free(v);
}

static const kc_exchange_variant variant_ops = {op_make_request, op_answer_request,
                                                op_accept_reply, op_free};

kc_status kc_variant_open_for_node(void *path, const kc_exchange_variant_host *host,
                                   const kc_exchange_variant **ops, void **v, kc_err *err)
{
    kc_variant_config vc = {.path = path, .node_id = host->node_id,
                            .cryptokey = host->cryptokey, .exchange = host->exchange,
                            .now_fn = host->now_fn, .now_ctx = host->now_ctx};
    kc_variant *opened;
    kc_status st = kc_variant_open(&opened, &vc, err);
    if (st != KC_OK)
        return st;
    kc_log(KC_LOG_INFO, KC_NODE_LOGGER, "Using the key-exchange variant %s",
           (const char *)path);
    *ops = &variant_ops;
    *v = opened;
    return KC_OK;
}
