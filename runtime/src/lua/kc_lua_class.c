#include "kc_lua_class.h"

#include <string.h>

void kc_lua_class_new(lua_State *L, const char *name, const luaL_Reg *methods,
                      const luaL_Reg *meta)
{
    if (!luaL_newmetatable(L, name)) {
        lua_pop(L, 1);
        return;
    }
    if (methods) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
    }
    if (meta)
        luaL_register(L, NULL, meta);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}

void *kc_lua_class_push(lua_State *L, const char *name, size_t size)
{
    void *p = lua_newuserdata(L, size);
    memset(p, 0, size);
    luaL_getmetatable(L, name);
    lua_setmetatable(L, -2);
    return p;
}
