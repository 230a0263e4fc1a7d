/* kc_lpattern.h — Lua string patterns whose work is counted, for sandboxes.
 *
 * LuaJIT runs string.find/match/gmatch/gsub in C, where no count hook
 * fires, and Lua patterns backtrack: `a*a*a*a*b` against 200 a's is about
 * 10^8 steps, `.-.-b` against 200 000 characters about 10^10, and a plain
 * find is quadratic. These replacements keep LuaJIT's behaviour (the same
 * pattern syntax, classes, results and error messages; patterns end at a
 * NUL byte as in LuaJIT) but count every step of the matcher (one per
 * pattern item tried at one subject position) and report them to a charge
 * function at least every KC_LPATTERN_CHUNK steps; the charge function
 * stops the call by raising a Lua error. So a pattern costs what it does,
 * and a caller with a budget can refuse it before it runs away. A plain
 * find (no special characters, or `plain` set) is a linear search
 * (memmem), charged its subject length. */
#ifndef KC_LPATTERN_H
#define KC_LPATTERN_H

#include <lua.h>
#include <stdint.h>

#define KC_LPATTERN_CHUNK 1024u

typedef struct kc_lpattern_budget {
    /* Called with the steps done since the last call; raises (lua_error)
     * to stop the running pattern function. */
    void (*charge)(lua_State *L, void *ctx, uint64_t steps);
    void *ctx;
} kc_lpattern_budget;

/* Sets find, match, gmatch and gsub in the table at index t to the counted
 * versions. budget must outlive the state's use of them. */
void kc_lpattern_install(lua_State *L, int t, const kc_lpattern_budget *budget);

#endif
