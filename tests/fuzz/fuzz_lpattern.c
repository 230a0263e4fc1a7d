/* Sandboxed policies and variants match patterns against bytes from the
 * network (request fields, message values): the counted matcher
 * (kc_lpattern) must survive any pattern and subject, stop at its budget,
 * and agree with LuaJIT's own string functions.
 * Input: pattern bytes, a 0x00 separator, subject bytes. Both are kept
 * short so that the stock matcher, which has no budget, stays fast. */
#include <lauxlib.h>
#include <lualib.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kc_lpattern.h"

#define STEP_LIMIT 200000u

static uint64_t charged;

static void charge(lua_State *L, void *ctx, uint64_t steps)
{
    (void)ctx;
    charged += steps;
    if (charged > STEP_LIMIT)
        luaL_error(L, "budget exceeded");
}

static const kc_lpattern_budget budget = {charge, NULL};

/* Runs f(lib, s, p) for both libraries; traps if they disagree (unless
 * the counted one ran out of budget). */
static const char compare_lua[] =
    "local s, p = ...\n"
    "local function pack(ok, ...) return { ok = ok, n = select('#', ...), ... } end\n"
    "local function show(r)\n"
    "  local t = { tostring(r.ok) }\n"
    "  for i = 1, r.n do\n"
    "    local v = r[i]\n"
    "    if not r.ok and type(v) == 'string' then v = v:gsub('^[^:]*:%d+: ', '') end\n"
    "    t[#t + 1] = type(v) .. ':' .. tostring(v)\n"
    "  end\n"
    "  return table.concat(t, ',')\n"
    "end\n"
    "local function gm(f)\n"
    "  local out = {}\n"
    "  for a, b in f(s, p) do out[#out + 1] = tostring(a) .. '|' .. tostring(b)\n"
    "    if #out > 50 then break end end\n"
    "  return table.concat(out, ';')\n"
    "end\n"
    "local calls = {\n"
    "  function(lib) return lib.find(s, p) end,\n"
    "  function(lib) return lib.find(s, p, 2, true) end,\n"
    "  function(lib) return lib.match(s, p, -3) end,\n"
    "  function(lib) return gm(lib.gmatch) end,\n"
    "  function(lib) return lib.gsub(s, p, '<%0%1>') end,\n"
    "  function(lib) return lib.gsub(s, p, function(...) return select('#', ...) > 1 and 'x' or nil end, 3) end,\n"
    "}\n"
    "for i, f in ipairs(calls) do\n"
    "  local want, got = show(pack(pcall(f, string))), show(pack(pcall(f, counted)))\n"
    "  if want ~= got and not got:find('budget exceeded', 1, true) then\n"
    "    error(('call %d: %q %q: stock %s, counted %s'):format(i, s, p, want, got), 0)\n"
    "  end\n"
    "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (!L) {
        L = luaL_newstate();
        luaL_openlibs(L);
        lua_newtable(L);
        kc_lpattern_install(L, -1, &budget);
        lua_setglobal(L, "counted");
        if (luaL_loadstring(L, compare_lua) != 0)
            __builtin_trap();
        lua_setglobal(L, "compare");
    }
    const uint8_t *sep = memchr(data, 0, size);
    size_t plen = sep ? (size_t)(sep - data) : size;
    const uint8_t *subject = sep ? sep + 1 : data + size;
    size_t slen = sep ? size - plen - 1 : 0;
    if (plen > 8 || slen > 32)
        return 0;
    charged = 0;
    lua_getglobal(L, "compare");
    lua_pushlstring(L, (const char *)subject, slen);
    lua_pushlstring(L, (const char *)data, plen);
    if (lua_pcall(L, 2, 0, 0) != 0) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        __builtin_trap();
    }
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
