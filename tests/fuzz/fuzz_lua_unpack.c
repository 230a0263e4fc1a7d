/* kafkacrypto.crypto's unpack on arbitrary bytes, as a variant script meets
 * a message from Kafka: never crash, return a value or (nil, reason), and
 * whatever it returns packs again. Also opens the bytes as a keyset box
 * under a fixed key (the keyset parser behind open_keys). */
#include <lauxlib.h>
#include <lualib.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_lua_crypto.h"

static lua_State *L;

static const char driver[] =
    "local crypto, data = ...\n"
    "local v, why = crypto.unpack(data)\n"
    "if v == nil then assert(type(why) == 'string') else crypto.pack(v) end\n"
    "local k = KEY or crypto.key()\n"
    "KEY = k\n"
    "crypto.open_keys(k, data)\n"
    "local ks = crypto.open_keys(k, crypto.secretbox_seal(k, data))\n"
    "if ks then assert(#ks >= 1 and #ks:indices() == #ks) end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
    }
    int top = lua_gettop(L);
    if (luaL_loadstring(L, driver) != 0)
        __builtin_trap();
    kc_lua_push_crypto(L);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 2, 0, 0) != 0) /* an assertion above, or a pack error: a bug */
        __builtin_trap();
    lua_settop(L, top);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
