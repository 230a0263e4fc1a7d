/* kc_lua_class.h — the one way a binding defines a Lua class (a userdata
 * type with methods): its metatable in the registry under the class name,
 * methods in __index, metamethods (__gc, __tostring, __len) beside them, and
 * __name = the class name (what luaL_checkudata's errors and debuggers show).
 * Get an object back with luaL_checkudata(L, idx, name). */
#ifndef KC_LUA_CLASS_H
#define KC_LUA_CLASS_H

#include <lauxlib.h>
#include <stddef.h>

/* Makes the class once per state (a second call changes nothing). methods
 * and meta are {NULL, NULL}-terminated; either may be NULL. The stack is left
 * as it was. */
void kc_lua_class_new(lua_State *L, const char *name, const luaL_Reg *methods,
                      const luaL_Reg *meta);

/* Pushes a new object of class name: size bytes, zeroed, with its metatable. */
void *kc_lua_class_push(lua_State *L, const char *name, size_t size);

#endif
