/* Lua binding of the topic root rule (kc_root.h). Each state has one rule,
 * kept in a userdata in its registry: upstream's (separator from the
 * settings' tunables), upstream's with another separator, or a Lua
 * function. C code gets the same rule through kc_lua_root_rule(). */
#include <lauxlib.h>
#include <pthread.h>
#include <string.h>

#include "kc_lua.h"

static const char REG_RULE[] = "kafkacrypto.root_rule";

typedef struct lua_rule {
    kc_root_rule rule;
    lua_State *L;         /* a thread of the state kept for running the rule */
    pthread_t owner;      /* the only thread that may run a Lua rule */
    int ref;              /* LUA_NOREF unless a Lua function is installed */
    char separator[KC_TOPIC_NAME_MAX + 1];   /* "" = the settings' */
    const char *settings_separator;          /* the settings' (outlive the state) */
} lua_rule;

static lua_rule *get_rule(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REG_RULE);
    lua_rule *r = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return r;
}

static kc_status separator_rule(void *ctx, const char *topic, char *root, size_t size,
                                kc_err *err)
{
    lua_rule *r = ctx;
    return kc_root_default(r->separator, topic, root, size, err);
}

static kc_status lua_fn_rule(void *ctx, const char *topic, char *root, size_t size, kc_err *err)
{
    lua_rule *r = ctx;
    lua_State *L = r->L;
    if (!pthread_equal(pthread_self(), r->owner))
        return kc_err_set(err, KC_ERR_STATE, "root rule for topic '%s': a rule written in Lua "
                          "runs only on the thread of its Lua state", topic);
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref);
    lua_pushstring(L, topic);
    kc_status st = KC_OK;
    if (lua_pcall(L, 1, 1, 0) != 0) {
        st = kc_err_set(err, KC_ERR_INVALID, "root rule failed for topic '%s': %s", topic,
                        lua_isstring(L, -1) ? lua_tostring(L, -1) : "(error object)");
    } else if (lua_type(L, -1) != LUA_TSTRING) {
        st = kc_err_set(err, KC_ERR_INVALID, "root rule: for topic '%s' it returned %s, "
                        "expected a string", topic, luaL_typename(L, -1));
    } else {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (n >= size || strlen(s) != n)
            st = kc_err_set(err, KC_ERR_INVALID, "root rule: for topic '%s' it returned a root "
                            "that is not 1 to %zu topic-name characters", topic, size - 1);
        else
            memcpy(root, s, n + 1);
    }
    lua_settop(L, top);
    return st;
}

const kc_root_rule *kc_lua_root_rule(lua_State *L)
{
    lua_rule *r = get_rule(L);
    return r ? &r->rule : NULL;
}

/* kc_serde_config.root_fn of kc_lua_serde_root: the rule in force at
 * each call, upstream's with the settings' separator while none is set. */
static kc_status serde_root(void *ctx, const char *topic, size_t topic_len, const char **root,
                           size_t *root_len)
{
    lua_rule *r = ctx;
    return kc_root_serde_with(&r->rule, r->settings_separator, topic, topic_len, root, root_len);
}

void kc_lua_serde_root(lua_State *L, kc_serde_config *c)
{
    lua_rule *r = get_rule(L);
    c->topic_separator = kc_lua_settings(L)->tunables.topic_separator;
    c->root_fn = r ? serde_root : NULL;
    c->root_ctx = r;
}

/* core.root(topic[, separator]) */
static int l_root(lua_State *L)
{
    const char *topic = luaL_checkstring(L, 1);
    const char *sep = luaL_optstring(L, 2, kc_lua_settings(L)->tunables.topic_separator);
    char root[KC_TOPIC_NAME_MAX + 1];
    kc_err err;
    if (kc_root_of(kc_lua_root_rule(L), sep, topic, root, &err) != KC_OK)
        return kc_lua_error(L, &err);
    lua_pushstring(L, root);
    return 1;
}

/* core.set_root_rule(fn | separator | nil) */
static int l_set_root_rule(lua_State *L)
{
    lua_rule *r = get_rule(L);
    int t = lua_type(L, 1);
    if (t != LUA_TFUNCTION && t != LUA_TSTRING && t != LUA_TNIL && t != LUA_TNONE)
        return kc_lua_errorf(L, "set_root_rule: expected a function, a separator string or nil");
    if (t == LUA_TSTRING && (lua_objlen(L, 1) == 0 || lua_objlen(L, 1) > KC_TOPIC_NAME_MAX))
        return kc_lua_errorf(L, "set_root_rule: expected a non-empty separator");
    luaL_unref(L, LUA_REGISTRYINDEX, r->ref);
    r->ref = LUA_NOREF;
    r->separator[0] = '\0';
    r->rule.fn = NULL;
    if (t == LUA_TFUNCTION) {
        lua_pushvalue(L, 1);
        r->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        r->rule.fn = lua_fn_rule;
    } else if (t == LUA_TSTRING) {
        strcpy(r->separator, lua_tostring(L, 1));
        r->rule.fn = separator_rule;
    }
    return 0;
}

void kc_lua_open_root(lua_State *L)
{
    if (!get_rule(L)) {
        lua_rule *r = lua_newuserdata(L, sizeof *r);
        memset(r, 0, sizeof *r);
        r->rule.ctx = r;
        r->ref = LUA_NOREF;
        r->owner = pthread_self();
        r->settings_separator = kc_lua_settings(L)->tunables.topic_separator;
        /* A thread of our own (anchored in the registry) runs the Lua rule,
         * whatever coroutine the caller is in. */
        r->L = lua_newthread(L);
        lua_setfield(L, LUA_REGISTRYINDEX, "kafkacrypto.root_rule_thread");
        lua_setfield(L, LUA_REGISTRYINDEX, REG_RULE);
    }
    lua_pushcfunction(L, l_root);
    lua_setfield(L, -2, "root");
    lua_pushcfunction(L, l_set_root_rule);
    lua_setfield(L, -2, "set_root_rule");
}
