/* Lua binding of what authorities need from the core: the controller's
 * re-signing of subscription requests (spec §8.1) on a node's exchange, and
 * the topic names a node uses. The decisions stay in C: chains are verified
 * and policies asked (kc_policy, hook reencrypt) before anything is signed;
 * scripts only move bytes between Kafka and these functions.
 * lua/kafkacrypto/authority.lua documents the Lua API. */
#include <lauxlib.h>
#include <string.h>

#include "kc_exchange.h"
#include "kc_lua.h"
#include "kc_node.h"

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
 * allowlist=, denylist=} as that node uses them (tunables). */
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
    lua_pushnumber(L, t->mgmt_subscribe_interval);
    lua_setfield(L, -2, "subscribe_interval");
    return 1;
}

void kc_lua_open_authority(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"controller_reencrypt", l_controller_reencrypt},
        {"node_topics", l_node_topics},
        {NULL, NULL},
    };
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
}
