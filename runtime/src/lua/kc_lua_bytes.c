/* kafkacrypto.bytes(s): a Lua string marked as bytes, not text — for the
 * store's typed values and for msgpack's bin. One metatable, made here. */
#include <lauxlib.h>

#include "kc_lua.h"

static const char BYTES[] = KC_LUA_BYTES;

const char *kc_lua_wrapped_bytes(lua_State *L, int idx, size_t *n)
{
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
        return NULL;
    luaL_getmetatable(L, BYTES);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!same)
        return NULL;
    lua_getfield(L, idx, "data");
    const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, n) : NULL;
    lua_pop(L, 1);   /* the wrapper keeps it alive */
    return p;
}

void kc_lua_push_bytes(lua_State *L, const char *p, size_t n)
{
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, p, n);
    lua_setfield(L, -2, "data");
    luaL_getmetatable(L, BYTES);
    lua_setmetatable(L, -2);
}

/* kafkacrypto.bytes(s) -> {data = s} marked as bytes */
static int l_bytes(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TSTRING);   /* a number is not bytes */
    size_t n;
    const char *p = lua_tolstring(L, 1, &n);
    kc_lua_push_bytes(L, p, n);
    return 1;
}

static int l_bytes_tostring(lua_State *L)
{
    size_t n;
    const char *p = kc_lua_wrapped_bytes(L, 1, &n);
    lua_pushlstring(L, p ? p : "", p ? n : 0);
    return 1;
}

void kc_lua_bytes_init(lua_State *L)
{
    if (luaL_newmetatable(L, BYTES)) {
        lua_pushcfunction(L, l_bytes_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}

void kc_lua_open_bytes(lua_State *L)
{
    kc_lua_bytes_init(L);
    lua_pushcfunction(L, l_bytes);
    lua_setfield(L, -2, "bytes");
}
