/* Lua binding of what authorities need from the core: the controller's
 * re-signing of subscription requests (spec §8.1) on a node's exchange, and
 * the topic names a node uses. The decisions stay in C: chains are verified
 * and policies asked (kc_policy, hook reencrypt) before anything is signed;
 * scripts only move bytes between Kafka and these functions.
 * lua/kafkacrypto/authorities/ (controller.lua, chainserver.lua) use it. */
#include <lauxlib.h>
#include <string.h>

#include "kc_chainserver.h"
#include "kc_exchange.h"
#include "kc_lua.h"
#include "kc_lua_class.h"
#include "kc_node.h"
#include "kc_policy.h"

static const char CHAINSERVER[] = "kafkacrypto.chainserver";

/* core.controller_reencrypt(node, root, request) -> request for <root>.reqs,
 * or nil and the reason (chain not valid for key-encrypt-subscribe, refused
 * by policy, ...). */
static int l_controller_reencrypt(lua_State *L)
{
    kc_node *n = kc_lua_check_node(L, 1);
    const char *root = luaL_checkstring(L, 2);
    size_t len;
    const char *req = luaL_checklstring(L, 3, &len);
    kc_buf out = KC_BUF_INIT;
    kc_err err;
    kc_status st = kc_exchange_reencrypt_request(kc_node_exchange(n), root, NULL, NULL,
                                                 (const uint8_t *)req, len, &out, &err);
    if (st != KC_OK) {
        kc_buf_free(&out);
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushlstring(L, (const char *)out.data, out.len);
    kc_buf_free(&out);
    return 1;
}

/* core.node_topics(node) -> {separator=, subs=, reqs=, keys=, chains=,
 * allowlist=, denylist=, flush_time=} as that node uses them (tunables). */
static int l_node_topics(lua_State *L)
{
    const kc_tunables *t = kc_node_tunables(kc_lua_check_node(L, 1));
    const struct { const char *name, *value; } f[] = {
        {"separator", t->topic_separator},  {"subs", t->topic_suffix_subs},
        {"reqs", t->topic_suffix_reqs},     {"keys", t->topic_suffix_keys},
        {"chains", t->mgmt_topic_chains},   {"allowlist", t->mgmt_topic_allowlist},
        {"denylist", t->mgmt_topic_denylist},
    };
    lua_createtable(L, 0, 8);
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        lua_pushstring(L, f[i].value);
        lua_setfield(L, -2, f[i].name);
    }
    lua_pushnumber(L, t->mgmt_flush_time);
    lua_setfield(L, -2, "flush_time");
    return 1;
}

/* ---- chain server (kc_chainserver.h) ----------------------------------------------- */

typedef struct lua_chainserver {
    kc_chainserver *cs;
    kc_policy *policy;    /* decides its grants; freed after it */
} lua_chainserver;

static kc_chainserver *check_chainserver(lua_State *L)
{
    lua_chainserver *lc = luaL_checkudata(L, 1, CHAINSERVER);
    if (!lc->cs)
        kc_lua_errorf(L, "chain server is closed");
    return lc->cs;
}

/* core.chainserver_open(config, {policy file, ...}): kafkacrypto.cfg's
 * policies come first. */
static int l_chainserver_open(lua_State *L)
{
    const char *config = luaL_checkstring(L, 1);
    size_t n;
    char **files = kc_lua_policy_files(L, 2, "chainserver", &n);
    lua_chainserver *lc = kc_lua_class_push(L, CHAINSERVER, sizeof *lc);
    kc_err err;
    if (kc_policy_open(&lc->policy, files, n, NULL, &err) != KC_OK ||
        kc_chainserver_open(&lc->cs, config, kc_policy_issue_grant, lc->policy, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 1;
}

static int l_cs_settings(lua_State *L)
{
    const kc_chainserver_settings *set = kc_chainserver_settings_of(check_chainserver(L));
    lua_createtable(L, 0, 4);
    lua_pushnumber(L, set->interval_secs);
    lua_setfield(L, -2, "interval_secs");
    lua_pushnumber(L, set->lifetime);
    lua_setfield(L, -2, "lifetime");
    lua_pushnumber(L, set->refresh_fraction);
    lua_setfield(L, -2, "refresh_fraction");
    lua_pushnumber(L, set->flush_time);
    lua_setfield(L, -2, "flush_time");
    return 1;
}

/* cs:entries() -> { {name=, max_age=, key=hex}, ... } */
static int l_cs_entries(lua_State *L)
{
    kc_chainkey *k;
    size_t n;
    kc_err err;
    if (kc_chainserver_entries(check_chainserver(L), &k, &n, &err) != KC_OK)
        return kc_lua_error(L, &err);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, k[i].name);
        lua_setfield(L, -2, "name");
        lua_pushnumber(L, k[i].max_age);
        lua_setfield(L, -2, "max_age");
        lua_pushstring(L, k[i].key_hex);
        lua_setfield(L, -2, "key");
        lua_rawseti(L, -2, (int)i + 1);
    }
    kc_chainkeys_free(k, n);
    return 1;
}

/* cs:renew(name, now) -> chain, kafka key, new cert | nil, reason */
static int l_cs_renew(lua_State *L)
{
    kc_chainserver *cs = check_chainserver(L);
    const char *name = luaL_checkstring(L, 2);
    double now = luaL_checknumber(L, 3);
    kc_buf chain = KC_BUF_INIT, key = KC_BUF_INIT, cert = KC_BUF_INIT;
    kc_err err;
    if (kc_chainserver_renew(cs, name, now, &chain, &key, &cert, &err) != KC_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushlstring(L, (const char *)chain.data, chain.len);
    lua_pushlstring(L, (const char *)key.data, key.len);
    lua_pushlstring(L, (const char *)cert.data, cert.len);
    kc_buf_free(&chain);
    kc_buf_free(&key);
    kc_buf_free(&cert);
    return 3;
}

/* cs:store(name, cert) */
static int l_cs_store(lua_State *L)
{
    kc_chainserver *cs = check_chainserver(L);
    const char *name = luaL_checkstring(L, 2);
    size_t n;
    const char *cert = luaL_checklstring(L, 3, &n);
    kc_err err;
    if (kc_chainserver_store(cs, name, (const uint8_t *)cert, n, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

static int l_cs_close(lua_State *L)
{
    lua_chainserver *lc = luaL_checkudata(L, 1, CHAINSERVER);
    kc_chainserver_close(lc->cs);
    lc->cs = NULL;
    kc_policy_free(lc->policy);
    lc->policy = NULL;
    return 0;
}

void kc_lua_open_authority(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"settings", l_cs_settings}, {"entries", l_cs_entries}, {"renew", l_cs_renew},
        {"store", l_cs_store},       {"close", l_cs_close},     {NULL, NULL},
    };
    static const luaL_Reg meta[] = {{"__gc", l_cs_close}, {NULL, NULL}};
    kc_lua_class_new(L, CHAINSERVER, methods, meta);
    static const luaL_Reg fns[] = {
        {"controller_reencrypt", l_controller_reencrypt},
        {"node_topics", l_node_topics},
        {"chainserver_open", l_chainserver_open},
        {NULL, NULL},
    };
    luaL_register(L, NULL, fns);
}
