#include "kc_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kc_datafile.h"
#include "kc_file.h"
#include "kc_log.h"
#include "kc_lpattern.h"

/* The budgets are checked before every function call (a library call can
 * work on a whole value for milliseconds, and may allocate nothing: LuaJIT
 * interns strings, so an identical result is found, not built) and every
 * HOOK_STEP instructions (some single instructions, comparing two long
 * strings say, also take about a millisecond on the largest values). */
#define HOOK_STEP 100
/* The clock is also read after this many bytes allocated, so a few calls
 * that each build a large value are stopped between them. */
#define ALLOC_CHECK_BYTES (256u << 10)
/* A log line from a sandbox is cut to this many bytes. */
#define LOG_MAX 1024

struct kc_sandbox {
    lua_State *L;
    kc_sandbox_limits lim;
    size_t used;           /* bytes held by the state */
    bool enforcing;        /* inside a budgeted call: the cap and budgets apply */
    uint64_t executed;     /* instructions of the current call (in HOOK_STEPs) */
    int step;
    struct timespec start;
    struct timespec deadline;
    size_t allocated;      /* bytes allocated since the clock was last read */
    size_t after_gc;       /* bytes held after the last full collection of this call */
    kc_lpattern_budget patterns;
    char stop[128];        /* why the current call was stopped; "" = not stopped */
    int hooks_ref;         /* registry ref of the loaded table; LUA_NOREF before */
    char *path;
    char *dir;
    const char *name;      /* basename of path, for log lines */
    const char *label;     /* what the file is, for errors: "policy file" by default */
};

static kc_sandbox *sandbox_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* The checks on the way use the coarse clock (a few ns to read; it lags
 * by at most a scheduler tick); the final check the precise one. */
static bool past(const struct timespec *t, clockid_t clock)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static double seconds_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Sets the reason the current call stops (the first one wins); true if
 * the call is stopped. */
static bool check_budgets(kc_sandbox *s, clockid_t clock)
{
    if (!s->stop[0]) {
        if (s->executed > s->lim.instructions)
            snprintf(s->stop, sizeof s->stop, "instruction budget of %llu exceeded",
                     (unsigned long long)s->lim.instructions);
        else if (past(&s->deadline, clock))
            snprintf(s->stop, sizeof s->stop, "time budget of %g s exceeded", s->lim.seconds);
    }
    return s->stop[0] != 0;
}

/* Frees and shrinks always succeed. During a budgeted call growth fails
 * (LuaJIT then raises "not enough memory" in that call, which the stop
 * makes uncatchable) past the state's cap, for a single block larger than
 * KC_SANDBOX_VALUE_MAX (which bounds the work of any one operation on one
 * value), and once the time budget is spent. */
static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    kc_sandbox *s = ud;
    if (nsize == 0) {
        free(ptr);
        s->used -= osize;
        return NULL;
    }
    if (nsize > osize && s->enforcing) {
        if (s->stop[0])
            return NULL;
        if (nsize > KC_SANDBOX_VALUE_MAX) {
            snprintf(s->stop, sizeof s->stop, "a single value of %zu bytes is over the limit "
                     "of %u bytes", nsize, KC_SANDBOX_VALUE_MAX);
            return NULL;
        }
        if (s->used - osize + nsize > s->lim.memory) {
            snprintf(s->stop, sizeof s->stop, "memory limit of %zu bytes exceeded",
                     s->lim.memory);
            return NULL;
        }
        s->allocated += nsize - osize;
        if (s->allocated >= ALLOC_CHECK_BYTES) {
            s->allocated = 0;
            if (check_budgets(s, CLOCK_MONOTONIC_COARSE))
                return NULL;
        }
    }
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    s->used = s->used - osize + nsize;
    return p;
}

/* A whole garbage collection takes about 100 ms with the state full of
 * small live values: it runs in steps with the clock read between them
 * (stopping with the call), and only once the state has grown since the
 * last one. */
static void collect(kc_sandbox *s)
{
    while (!lua_gc(s->L, LUA_GCSTEP, 0) && !check_budgets(s, CLOCK_MONOTONIC_COARSE))
        ;
    s->after_gc = s->used;
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    kc_sandbox *s = sandbox_of(L);
    if (!s->enforcing)
        return;
    if (ar->event == LUA_HOOKCOUNT) {
        s->executed += (uint64_t)s->step;
        /* garbage must not count against the cap */
        if (!check_budgets(s, CLOCK_MONOTONIC_COARSE) && s->used > s->lim.memory / 4 * 3 &&
            s->used > s->after_gc + s->lim.memory / 16)
            collect(s);
    } else {
        check_budgets(s, CLOCK_MONOTONIC_COARSE);   /* a call */
    }
    if (s->stop[0])
        luaL_error(L, "%s", s->stop);
}

/* Pattern functions (kc_lpattern) report their steps here: each counts as
 * one instruction. */
static void charge_pattern(lua_State *L, void *ctx, uint64_t steps)
{
    kc_sandbox *s = ctx;
    if (!s->enforcing)
        return;
    s->executed += steps;
    if (check_budgets(s, CLOCK_MONOTONIC_COARSE))
        luaL_error(L, "%s", s->stop);
}

/* ---- the environment ------------------------------------------------------- */

/* pcall/xpcall that re-raise once the call is stopped, so a hook cannot
 * swallow its own budget error and keep going. */
static int finish_pcall(lua_State *L, int status, int base)
{
    if (status != 0 && sandbox_of(L)->stop[0])
        return lua_error(L);
    lua_pushboolean(L, status == 0);
    lua_insert(L, base);
    return lua_gettop(L) - base + 1;
}

static int sandbox_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    return finish_pcall(L, lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0), 1);
}

static int sandbox_xpcall(lua_State *L)
{
    luaL_checkany(L, 2);
    lua_pushvalue(L, 1);               /* f h args... f */
    lua_pushvalue(L, 2);               /* f h args... f h */
    lua_replace(L, 1);                 /* h h args... f */
    lua_replace(L, 2);                 /* h f args... */
    int status = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 1);
    return finish_pcall(L, status, 2);
}

/* Concatenates tostring() of arguments first.. with spaces. */
static const char *join_args(lua_State *L, int first)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = first; i <= n; i++) {
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        if (!lua_isstring(L, -1))
            luaL_error(L, "'tostring' must return a string");
        if (i > first)
            luaL_addchar(&b, ' ');
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

/* Lines are cut to LOG_MAX bytes: a log sink is not a sandbox's to stall. */
static int log_at(lua_State *L, kc_log_level level, int first)
{
    const char *msg = join_args(L, first);
    size_t n = lua_objlen(L, -1);
    if (n > LOG_MAX)
        kc_log(level, "kafkacrypto.policy", "%s: %.*s... (%zu bytes cut)",
               sandbox_of(L)->name, LOG_MAX, msg, n - LOG_MAX);
    else
        kc_log(level, "kafkacrypto.policy", "%s: %s", sandbox_of(L)->name, msg);
    return 0;
}

static int log_call(lua_State *L) { return log_at(L, KC_LOG_INFO, 2); }  /* arg 1: the table */
static int log_debug(lua_State *L) { return log_at(L, KC_LOG_DEBUG, 1); }
static int log_info(lua_State *L) { return log_at(L, KC_LOG_INFO, 1); }
static int log_warning(lua_State *L) { return log_at(L, KC_LOG_WARNING, 1); }
static int log_error(lua_State *L) { return log_at(L, KC_LOG_ERROR, 1); }

static int fail_read(lua_State *L, const char *name, const char *why)
{
    lua_pushnil(L);
    lua_pushfstring(L, "read_file %s: %s", name, why);
    return 2;
}

/* Makes the string in protected mode, so that hitting the memory cap cannot
 * jump past the buffer's release. */
static int push_data(lua_State *L)
{
    const kc_buf *b = lua_touserdata(L, 1);
    lua_pushlstring(L, (const char *)b->data, b->len);
    lua_setfield(L, LUA_REGISTRYINDEX, "kc.read_file");
    return 0;
}

static int sandbox_read_file(lua_State *L)
{
    kc_sandbox *s = sandbox_of(L);
    const char *name = luaL_checkstring(L, 1);
    if (!s->dir)
        return fail_read(L, name, "no policy file loaded");
    kc_buf data = KC_BUF_INIT;
    kc_err err = {0};
    if (kc_datafile_read(s->dir, name, KC_SANDBOX_DATA_MAX, &data, &err) != KC_OK) {
        kc_buf_free(&data);
        return fail_read(L, name, err.msg);
    }
    int rc = lua_cpcall(L, push_data, &data);
    kc_buf_free(&data);
    if (rc != 0)
        return lua_error(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "kc.read_file");
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "kc.read_file");
    return 1;
}

static void open_lib(lua_State *L, lua_CFunction open)
{
    lua_pushcfunction(L, open);
    lua_call(L, 0, 0);
}

static void set_nil(lua_State *L, int table, const char *name)
{
    if (table < 0)
        table = lua_gettop(L) + table + 1;
    lua_pushnil(L);
    lua_setfield(L, table, name);
}

/* table.sort with its own comparisons runs them in C, unbudgeted (and an
 * adversarial order makes it quadratic): the sandbox's sort always passes
 * a Lua comparator, whose calls the count hook sees. */
static const char sort_wrapper[] =
    "local sort = table.sort\n"
    "local function less(a, b) return a < b end\n"
    "table.sort = function(t, less_than) return sort(t, less_than or less) end\n";

static void build_environment(lua_State *L)
{
    open_lib(L, luaopen_base);
    open_lib(L, luaopen_string);
    open_lib(L, luaopen_table);
    open_lib(L, luaopen_math);
    open_lib(L, luaopen_bit);
    open_lib(L, luaopen_os);

    lua_pushvalue(L, LUA_GLOBALSINDEX);
    int g = lua_gettop(L);
    static const char *const removed[] = {
        "dofile", "loadfile", "load", "loadstring", "require", "module", "collectgarbage",
        "getfenv", "setfenv", "newproxy", "gcinfo", "coroutine", "package", NULL};
    for (const char *const *r = removed; *r; r++)
        set_nil(L, g, *r);

    lua_getfield(L, g, "string");
    set_nil(L, -1, "dump");
    kc_sandbox *s = sandbox_of(L);
    s->patterns.charge = charge_pattern;
    s->patterns.ctx = s;
    kc_lpattern_install(L, -1, &s->patterns);
    lua_pop(L, 1);
    if (luaL_loadbuffer(L, sort_wrapper, sizeof sort_wrapper - 1, "=sandbox") == 0) {
        lua_call(L, 0, 0);
    } else {   /* out of memory: no sort rather than an unbounded one */
        lua_pop(L, 1);
        lua_getfield(L, g, "table");
        set_nil(L, -1, "sort");
        lua_pop(L, 1);
    }

    lua_getfield(L, g, "os");
    lua_createtable(L, 0, 4);
    static const char *const os_kept[] = {"time", "clock", "date", "difftime", NULL};
    for (const char *const *k = os_kept; *k; k++) {
        lua_getfield(L, -2, *k);
        lua_setfield(L, -2, *k);
    }
    lua_setfield(L, g, "os");
    lua_pop(L, 1);

    lua_pushcfunction(L, sandbox_pcall);
    lua_setfield(L, g, "pcall");
    lua_pushcfunction(L, sandbox_xpcall);
    lua_setfield(L, g, "xpcall");
    lua_pushcfunction(L, sandbox_read_file);
    lua_setfield(L, g, "read_file");
    lua_pushcfunction(L, log_info);
    lua_setfield(L, g, "print");

    static const luaL_Reg log_fns[] = {{"debug", log_debug}, {"info", log_info},
                                       {"warning", log_warning}, {"error", log_error},
                                       {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, log_fns);
    lua_newtable(L);
    lua_pushcfunction(L, log_call);
    lua_setfield(L, -2, "__call");
    lua_setmetatable(L, -2);
    lua_setfield(L, g, "log");
    lua_pop(L, 1);
}

/* ---- life cycle -------------------------------------------------------------- */

kc_status kc_sandbox_new(kc_sandbox **out, const kc_sandbox_limits *lim, kc_err *err)
{
    *out = NULL;
    kc_sandbox *s = calloc(1, sizeof *s);
    if (!s)
        return kc_err_set(err, KC_ERR_NOMEM, "sandbox: out of memory");
    s->label = "policy file";
    if (lim)
        s->lim = *lim;
    if (!s->lim.instructions)
        s->lim.instructions = KC_SANDBOX_DEFAULT_INSTRUCTIONS;
    if (!(s->lim.seconds > 0))
        s->lim.seconds = KC_SANDBOX_DEFAULT_SECONDS;
    if (!s->lim.memory)
        s->lim.memory = KC_SANDBOX_DEFAULT_MEMORY;
    s->step = s->lim.instructions < HOOK_STEP ? (int)s->lim.instructions : HOOK_STEP;
    s->hooks_ref = LUA_NOREF;
    s->name = "";
    s->L = lua_newstate(sandbox_alloc, s);
    if (!s->L) {
        free(s);
        return kc_err_set(err, KC_ERR_NOMEM, "sandbox: cannot create a Lua state");
    }
    /* Count hooks do not run inside JIT traces: interpret only. */
    luaJIT_setmode(s->L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    build_environment(s->L);
    *out = s;
    return KC_OK;
}

lua_State *kc_sandbox_state(kc_sandbox *s)
{
    return s->L;
}

void kc_sandbox_set_label(kc_sandbox *s, const char *label)
{
    s->label = label;
}

const char *kc_sandbox_path(const kc_sandbox *s)
{
    return s->path ? s->path : "";
}

size_t kc_sandbox_memory(const kc_sandbox *s)
{
    return s->used;
}

void kc_sandbox_free(kc_sandbox *s)
{
    if (!s)
        return;
    lua_close(s->L);
    free(s->path);
    free(s->dir);
    free(s);
}

/* Runs the function below nargs arguments under the budgets. On failure
 * the stack is back to where the function was and err says why. An answer
 * that comes after the deadline (the last check was before it) is refused
 * like a stopped call: a late answer is no answer. */
static kc_status run_budgeted(kc_sandbox *s, const char *hook, int nargs, int nresults,
                              kc_err *err)
{
    lua_State *L = s->L;
    int base = lua_gettop(L) - nargs - 1;
    s->stop[0] = 0;
    s->executed = 0;
    s->allocated = 0;
    s->after_gc = 0;
    clock_gettime(CLOCK_MONOTONIC, &s->start);
    s->deadline = s->start;
    double whole = (double)(time_t)s->lim.seconds;
    s->deadline.tv_sec += (time_t)whole;
    s->deadline.tv_nsec += (long)((s->lim.seconds - whole) * 1e9);
    if (s->deadline.tv_nsec >= 1000000000L) {
        s->deadline.tv_sec++;
        s->deadline.tv_nsec -= 1000000000L;
    }
    if (s->used > s->lim.memory / 2)
        collect(s);   /* inside the call's time */
    lua_sethook(L, budget_hook, LUA_MASKCOUNT | LUA_MASKCALL, s->step);
    s->enforcing = true;
    int status = lua_pcall(L, nargs, nresults, 0);
    s->enforcing = false;
    lua_sethook(L, NULL, 0, 0);
    if (status == 0 && !check_budgets(s, CLOCK_MONOTONIC))
        return KC_OK;
    double took = seconds_since(&s->start);
    kc_status code = s->stop[0] ? KC_ERR_DENIED : KC_ERR_INVALID;
    const char *why = s->stop[0] ? s->stop : lua_tostring(L, -1);
    if (!why)
        why = "error object is not a string";
    char when[64] = "";
    if (code == KC_ERR_DENIED)
        snprintf(when, sizeof when, status == 0 ? ": answered after %.3f s (refused)"
                                                : " (stopped after %.3f s)", took);
    kc_err_set(err, code, "%s %s: %s %s: %s%s", s->label, kc_sandbox_path(s),
               hook ? "hook" : "loading", hook ? hook : "the file", why, when);
    lua_settop(L, base);
    return code;
}

kc_status kc_sandbox_load(kc_sandbox *s, const char *path, kc_err *err)
{
    if (s->path)
        return kc_err_set(err, KC_ERR_STATE, "%s %s: sandbox already holds %s", s->label, path,
                          s->path);
    s->path = strdup(path);
    const char *slash = strrchr(path, '/');
    s->dir = slash ? strndup(path, (size_t)(slash - path == 0 ? 1 : slash - path))
                   : strdup(".");
    if (!s->path || !s->dir)
        return kc_err_set(err, KC_ERR_NOMEM, "%s %s: out of memory", s->label, path);
    s->name = slash ? s->path + (slash - path) + 1 : s->path;

    lua_State *L = s->L;
    int top = lua_gettop(L);
    kc_buf b = KC_BUF_INIT;
    kc_err why = {0};
    kc_status rst = kc_file_read(path, KC_SANDBOX_DATA_MAX, &b, &why);
    if (rst != KC_OK) {
        /* "file PATH: reason" named as what the file is */
        const char *msg = strncmp(why.msg, "file ", 5) == 0 ? why.msg + 5 : why.msg;
        return kc_err_set(err, rst, "%s %s", s->label, msg);
    }
    lua_pushlstring(L, (const char *)b.data, b.len);
    kc_buf_free(&b);
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    lua_pushfstring(L, "@%s", path);
    int rc = luaL_loadbufferx(L, text, len, lua_tostring(L, -1), "t");
    lua_remove(L, top + 1);
    lua_remove(L, top + 1);
    if (rc != 0) {
        kc_err_set(err, KC_ERR_INVALID, "%s %s: %s", s->label, path, lua_tostring(L, -1));
        lua_settop(L, top);
        return KC_ERR_INVALID;
    }
    kc_status st = run_budgeted(s, NULL, 0, 1, err);
    if (st != KC_OK)
        return st;
    if (!lua_istable(L, -1)) {
        kc_err_set(err, KC_ERR_INVALID,
                   "%s %s: expected the file to return a table of hooks, got %s", s->label,
                   path, luaL_typename(L, -1));
        lua_settop(L, top);
        return KC_ERR_INVALID;
    }
    s->hooks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return KC_OK;
}

/* Pushes the hook function or nil. */
static void push_hook(kc_sandbox *s, const char *hook)
{
    lua_State *L = s->L;
    if (s->hooks_ref == LUA_NOREF) {
        lua_pushnil(L);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->hooks_ref);
    lua_pushstring(L, hook);
    lua_rawget(L, -2);   /* raw: no metamethod of the policy runs unbudgeted */
    lua_remove(L, -2);
}

bool kc_sandbox_has(kc_sandbox *s, const char *hook)
{
    push_hook(s, hook);
    bool yes = lua_isfunction(s->L, -1);
    lua_pop(s->L, 1);
    return yes;
}

kc_status kc_sandbox_call(kc_sandbox *s, const char *hook, int nargs, int nresults,
                          kc_err *err)
{
    lua_State *L = s->L;
    int base = lua_gettop(L) - nargs;
    push_hook(s, hook);
    if (!lua_isfunction(L, -1)) {
        lua_settop(L, base);
        return kc_err_set(err, KC_ERR_NOTFOUND, "%s %s: no hook %s", s->label,
                          kc_sandbox_path(s), hook);
    }
    lua_insert(L, base + 1);
    return run_budgeted(s, hook, nargs, nresults, err);
}
