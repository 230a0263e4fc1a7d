/* Lua binding of the node store (kc_store, spec §10.1–§10.5) and of the
 * bytes wrapper that tells the store a Lua string is bytes, not text.
 * lua/kafkacrypto/store.lua documents the Lua API.
 *
 * Typed values (§10.2) in Lua: bool <-> boolean, int and float <-> number
 * (integers beyond 2^53, which a Lua number cannot hold exactly, load as
 * their decimal text), text <-> string, bytes -> string (load_value also
 * returns the type name) and kafkacrypto.bytes(s) -> bytes. */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_lua.h"
#include "kc_lua_class.h"
#include "kc_store.h"
#include "kc_value.h"

static const char STORE[] = "kafkacrypto.store";

typedef struct lua_store {
    kc_store *s;
    int borrowers;   /* nodes using s: it cannot be closed under them */
} lua_store;

static const char *const TYPE_NAMES[] = {
    [KC_VALUE_NONE] = "none", [KC_VALUE_BOOL] = "bool",   [KC_VALUE_INT] = "int",
    [KC_VALUE_BIGINT] = "int", [KC_VALUE_FLOAT] = "float", [KC_VALUE_TEXT] = "text",
    [KC_VALUE_BYTES] = "bytes",
};

/* ---- values --------------------------------------------------------------------- */

#define EXACT_INT_MAX 9007199254740992.0   /* 2^53 */

static void push_value(lua_State *L, const kc_value *v)
{
    switch (v->type) {
    case KC_VALUE_BOOL:
        lua_pushboolean(L, v->i != 0);
        break;
    case KC_VALUE_INT:
        if (fabs((double)v->i) <= EXACT_INT_MAX) {
            lua_pushnumber(L, (lua_Number)v->i);
        } else {
            char text[32];
            snprintf(text, sizeof text, "%lld", (long long)v->i);
            lua_pushstring(L, text);
        }
        break;
    case KC_VALUE_FLOAT:
        lua_pushnumber(L, v->f);
        break;
    case KC_VALUE_BIGINT:
    case KC_VALUE_TEXT:
    case KC_VALUE_BYTES:
        lua_pushlstring(L, v->data ? (const char *)v->data : "", v->len);
        break;
    default:
        lua_pushnil(L);
    }
}

/* A Lua value as a store value (borrowing Lua's memory); `what` names the
 * argument in errors. */
static kc_value to_value(lua_State *L, int idx, const char *what)
{
    size_t n;
    const char *p;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
        return kc_value_none();
    case LUA_TBOOLEAN:
        return kc_value_bool(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        /* integral numbers are written as Python ints, others as floats */
        if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
            return kc_value_int((int64_t)d);
        return kc_value_float(d);
    }
    case LUA_TSTRING:
        p = lua_tolstring(L, idx, &n);
        return kc_value_textn(p, n);
    default:
        if ((p = kc_lua_wrapped_bytes(L, idx, &n)))
            return kc_value_bytes(p, n);
        kc_lua_errorf(L, "%s: expected a string, number, boolean, kafkacrypto.bytes(...) or "
                      "nil, got %s", what, luaL_typename(L, idx));
        return kc_value_none();
    }
}

/* Option names are text or bytes. */
static kc_value to_name(lua_State *L, int idx)
{
    size_t n;
    const char *p = kc_lua_wrapped_bytes(L, idx, &n);
    if (p)
        return kc_value_bytes(p, n);
    if (lua_type(L, idx) != LUA_TSTRING)
        kc_lua_errorf(L, "expected an option name (a string or kafkacrypto.bytes(...)), got %s",
                      luaL_typename(L, idx));
    p = lua_tolstring(L, idx, &n);
    return kc_value_textn(p, n);
}

static const char *opt_section(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return NULL;
    if (lua_type(L, idx) != LUA_TSTRING)
        kc_lua_errorf(L, "section: expected a string or nil, got %s", luaL_typename(L, idx));
    return lua_tostring(L, idx);
}

/* ---- the store object --------------------------------------------------------------- */

kc_store *kc_lua_check_store(lua_State *L, int idx)
{
    lua_store *ls = luaL_checkudata(L, idx, STORE);
    if (!ls->s)
        kc_lua_errorf(L, "store is closed");
    return ls->s;
}

kc_store *kc_lua_borrow_store(lua_State *L, int idx)
{
    lua_store *ls = luaL_checkudata(L, idx, STORE);
    if (!ls->s)
        kc_lua_errorf(L, "store is closed");
    ls->borrowers++;
    return ls->s;
}

void kc_lua_return_store(lua_State *L, int idx)
{
    lua_store *ls = luaL_checkudata(L, idx, STORE);
    if (ls->borrowers > 0)
        ls->borrowers--;
}

static bool opt_flag(lua_State *L, int t, const char *name)
{
    if (!lua_istable(L, t))
        return false;
    lua_getfield(L, t, name);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* core.store_open(path, node_id, {apply_log_level=, trust_temporary_rot=}) */
static int l_store_open(lua_State *L)
{
    const char *path = luaL_optstring(L, 1, NULL);
    const char *node_id = luaL_optstring(L, 2, NULL);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    if (!path && !node_id)
        return kc_lua_errorf(L, "store: expected a config file path or a node id");
    kc_store_options opts = {
        .kafka = true,
        /* the runtime's log level (kafkacrypto.cfg, --log-level) stays unless asked */
        .keep_log_level = !opt_flag(L, 3, "apply_log_level"),
        .trust_temporary_rot = opt_flag(L, 3, "trust_temporary_rot"),
    };
    lua_store *ls = kc_lua_class_push(L, STORE, sizeof *ls);
    kc_err err;
    if (kc_store_open(&ls->s, path, node_id, &opts, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 1;
}

/* store:load_value(name[, section[, default]]) -> value, type name */
static int l_load_value(lua_State *L)
{
    kc_store *s = kc_lua_check_store(L, 1);
    kc_value name = to_name(L, 2);
    const char *section = opt_section(L, 3);
    kc_value v = kc_value_none();
    kc_err err;
    kc_status st = kc_store_load_keyed(s, section, &name, &v, &err);
    if (st == KC_ERR_NOTFOUND) {
        lua_settop(L, 4);
        return 1;
    }
    if (st != KC_OK)
        return kc_lua_error(L, &err);
    push_value(L, &v);
    lua_pushstring(L, TYPE_NAMES[v.type]);
    kc_value_clear(&v);
    return 2;
}

/* store:store_value(name, value[, section]); value nil deletes */
static int l_store_value(lua_State *L)
{
    kc_store *s = kc_lua_check_store(L, 1);
    kc_value name = to_name(L, 2);
    kc_value v = to_value(L, 3, "store_value: value");
    const char *section = opt_section(L, 4);
    kc_err err;
    if (kc_store_store_keyed(s, section, &name, &v, &err) != KC_OK)
        return kc_lua_error(L, &err);
    return 0;
}

/* store:load_section(section[, defaults = true]) -> {name = value}, {names in file order} */
static int l_load_section(lua_State *L)
{
    kc_store *s = kc_lua_check_store(L, 1);
    const char *section = opt_section(L, 2);
    bool defaults = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
    kc_section sec;
    kc_err err;
    kc_status st = kc_store_load_section(s, section, defaults, &sec, &err);
    if (st == KC_ERR_NOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (st != KC_OK)
        return kc_lua_error(L, &err);
    lua_createtable(L, 0, (int)sec.n);
    lua_createtable(L, (int)sec.n, 0);
    int n = 0;
    for (size_t i = 0; i < sec.n; i++) {
        push_value(L, &sec.items[i].key);
        if (lua_isnil(L, -1)) {   /* a key upstream decodes to None: no Lua key */
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, ++n);
        push_value(L, &sec.items[i].value);
        lua_rawset(L, -4);
    }
    kc_section_clear(&sec);
    return 2;
}

/* store:get_kafka_config(kind[, extra]) -> librdkafka properties */
static int l_get_kafka_config(lua_State *L)
{
    kc_store *s = kc_lua_check_store(L, 1);
    const char *kind = luaL_checkstring(L, 2);
    const char *extra = luaL_optstring(L, 3, NULL);
    kc_kafka_use use;
    if (strcmp(kind, "consumer") == 0)
        use = KC_KAFKA_CONSUMER;
    else if (strcmp(kind, "producer") == 0)
        use = KC_KAFKA_PRODUCER;
    else
        return kc_lua_errorf(L, "get_kafka_config: expected \"consumer\" or \"producer\", got '%s'",
                             kind);
    kc_kafka_config c;
    kc_err err;
    if (kc_store_kafka_config(s, use, extra, &c, &err) != KC_OK)
        return kc_lua_error(L, &err);
    lua_createtable(L, 0, (int)c.n + 1);
    for (size_t i = 0; i < c.n; i++) {
        lua_pushstring(L, c.props[i].value);
        lua_setfield(L, -2, c.props[i].name);
    }
    /* the wrapper's own options, when not at their defaults */
    kc_kafka_config dflt;
    kc_kafka_config_init(&dflt);
    if (use == KC_KAFKA_CONSUMER && c.max_poll_records != dflt.max_poll_records) {
        lua_pushnumber(L, (lua_Number)c.max_poll_records);
        lua_setfield(L, -2, "max_poll_records");
    }
    if (use == KC_KAFKA_PRODUCER && c.produce_timeout != dflt.produce_timeout) {
        lua_pushnumber(L, c.produce_timeout);
        lua_setfield(L, -2, "produce_timeout");
    }
    kc_kafka_config_clear(&dflt);
    kc_kafka_config_clear(&c);
    return 1;
}

static int l_node_id(lua_State *L)
{
    lua_pushstring(L, kc_store_node_id(kc_lua_check_store(L, 1)));
    return 1;
}

static int l_path(lua_State *L)
{
    lua_pushstring(L, kc_store_path(kc_lua_check_store(L, 1)));
    return 1;
}

/* file_path(option, default_suffix): where the node's file is (spec D1) */
static int l_file_path(lua_State *L)
{
    kc_store *s = kc_lua_check_store(L, 1);
    char *path = NULL;
    kc_err err;
    if (kc_store_file_path(s, luaL_checkstring(L, 2), luaL_checkstring(L, 3), &path, &err) !=
        KC_OK)
        return kc_lua_error(L, &err);
    lua_pushstring(L, path);
    free(path);
    return 1;
}

static int l_store_close(lua_State *L)
{
    lua_store *ls = luaL_checkudata(L, 1, STORE);
    if (ls->borrowers > 0)
        return kc_lua_errorf(L, "store: still used by a kafkacrypto node (close the node first)");
    kc_store_close(ls->s);
    ls->s = NULL;
    return 0;
}

static int l_store_tostring(lua_State *L)
{
    lua_store *ls = luaL_checkudata(L, 1, STORE);
    if (ls->s)
        lua_pushfstring(L, "kafkacrypto store %s (node %s)", kc_store_path(ls->s),
                        kc_store_node_id(ls->s));
    else
        lua_pushliteral(L, "kafkacrypto store (closed)");
    return 1;
}

void kc_lua_open_store(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"load_value", l_load_value},       {"store_value", l_store_value},
        {"load_section", l_load_section},   {"get_kafka_config", l_get_kafka_config},
        {"node_id", l_node_id},             {"path", l_path},
        {"file_path", l_file_path},
        {"close", l_store_close},           {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_store_close}, {"__tostring", l_store_tostring}, {NULL, NULL}};
    kc_lua_class_new(L, STORE, methods, meta);

    lua_pushcfunction(L, l_store_open);
    lua_setfield(L, -2, "store_open");
}
