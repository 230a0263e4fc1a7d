/* kc_sandbox.h — a bounded Lua state for policy and exchange-variant code.
 *
 * One sandbox holds one Lua file that returns a table of hook functions.
 * Each call of a hook (and the loading of the file) runs under pcall with an
 * instruction budget, a wall-time budget and a memory cap; a hook that
 * errors, loops or allocates too much is stopped and the caller gets a
 * kc_err naming the file, the hook and the reason. The JIT is off in
 * sandbox states: LuaJIT does not run count hooks inside compiled traces, so
 * with it on a loop could escape the budget.
 *
 * The environment is small and has no way out of the process: base functions
 * without file loading, `require`, `load*`, `collectgarbage` or fenv access;
 * string (without string.dump), table, math, bit; os.time, os.clock,
 * os.date, os.difftime; `log(msg)` / `log.warning(msg)` (and .debug, .info,
 * .error) on logger "kafkacrypto.policy", `print` as log.info; and
 * `read_file(name)` for data files next to the policy (see below). No io,
 * no ffi, no jit, no coroutines, no debug. pcall/xpcall are wrapped so that
 * a stopped call cannot be caught by the hook itself.
 *
 * read_file(name): a data file in the loaded file's directory, at most
 * KC_SANDBOX_DATA_MAX bytes, by the rule of kc_datafile.h (never a node,
 * temporary or owner-only file: node secrets must never reach Lua).
 * Returns the content, or nil and a message.
 *
 * No call holds its thread much past its time budget, whatever the script
 * does: the budgets are checked before every function call, every 100 VM
 * instructions, every 256 KiB allocated and every 1024 steps of a pattern
 * function; string.find/match/
 * gmatch/gsub are counted versions (kc_lpattern.h: each step is one
 * instruction of the budget); table.sort always compares in Lua; no single
 * value (string, table part, buffer) may exceed KC_SANDBOX_VALUE_MAX bytes,
 * which bounds what any one instruction or library call can do between two
 * checks (a few milliseconds). A call that returns after its deadline is
 * refused like one that was stopped. Errors of stopped or late calls say
 * how long the call took.
 *
 * A sandbox belongs to the thread that uses it; it is not thread-safe. */
#ifndef KC_SANDBOX_H
#define KC_SANDBOX_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kc_err.h"

#define KC_SANDBOX_DEFAULT_INSTRUCTIONS 10000000u  /* per call */
#define KC_SANDBOX_DEFAULT_SECONDS 1.0              /* per call, wall time */
#define KC_SANDBOX_DEFAULT_MEMORY (32u << 20)       /* whole state, bytes */
#define KC_SANDBOX_DATA_MAX (4u << 20)              /* one read_file */
#define KC_SANDBOX_VALUE_MAX ((8u << 20) + 64u)     /* one allocation, bytes */

/* Zero fields take the defaults above. */
typedef struct kc_sandbox_limits {
    uint64_t instructions;
    double seconds;
    size_t memory;
} kc_sandbox_limits;

typedef struct kc_sandbox kc_sandbox;

/* lim may be NULL (defaults). */
kc_status kc_sandbox_new(kc_sandbox **out, const kc_sandbox_limits *lim, kc_err *err);

/* What the loaded file is, as errors name it ("policy file" unless set);
 * label must outlive the sandbox (a string literal). */
void kc_sandbox_set_label(kc_sandbox *s, const char *label);

/* Runs the Lua text file at path (bytecode is refused) under the budget;
 * it must return a table whose function fields are the hooks. Once only
 * per sandbox. Functions registered on the state before this are visible
 * to the file as globals. */
kc_status kc_sandbox_load(kc_sandbox *s, const char *path, kc_err *err);

/* The state, for pushing arguments, reading results and registering extra
 * globals (before kc_sandbox_load). Do not change its hook or allocator. */
lua_State *kc_sandbox_state(kc_sandbox *s);

/* The loaded file's path ("" before kc_sandbox_load). */
const char *kc_sandbox_path(const kc_sandbox *s);

/* true if the loaded table has a function field `hook`. */
bool kc_sandbox_has(kc_sandbox *s, const char *hook);

/* Calls hook with the nargs values on top of the state's stack (which it
 * pops). On KC_OK the nresults results (LUA_MULTRET: all) are left on the
 * stack for the caller to read and pop. On failure nothing is left and err
 * says "policy file F: hook H: <reason>"; the status is KC_ERR_NOTFOUND
 * (no such hook), KC_ERR_DENIED (instruction, time or memory budget
 * exceeded, or the answer came after the deadline) or KC_ERR_INVALID (the
 * hook raised an error). */
kc_status kc_sandbox_call(kc_sandbox *s, const char *hook, int nargs, int nresults,
                          kc_err *err);

/* Bytes the state holds now. */
size_t kc_sandbox_memory(const kc_sandbox *s);

void kc_sandbox_free(kc_sandbox *s);

#endif
