/* kc_sandbox: loading a hook table, calls with arguments and results, and
 * every way a hook is stopped (error, loop, time, memory, swallowed budget
 * errors), plus what the environment does not offer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kc_log.h"
#include "kc_sandbox.h"
#include "kc_test.h"

static char *dir;
static char logged[4096];

static void capture(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s:%s:%s\n", kc_log_level_name(level), logger, msg);
}

static int setup(void **state)
{
    dir = tc_tmpdir();
    kc_log_set_sink(capture, NULL);
    kc_log_set_level(KC_LOG_DEBUG);
    return 0;
}

static int teardown(void **state)
{
    kc_log_set_sink(NULL, NULL);
    kc_log_set_level(KC_LOG_WARNING);
    tc_rmtree(dir);
    free(dir);
    return 0;
}

static char *write_policy(const char *name, const char *text)
{
    char *path = tc_path(dir, name);
    tc_write_file(path, (const uint8_t *)text, strlen(text));
    return path;
}

/* A sandbox with `text` loaded (asserting success). */
static kc_sandbox *loaded(const kc_sandbox_limits *lim, const char *text)
{
    char *path = write_policy("policy.lua", text);
    kc_sandbox *s;
    kc_err err = {0};
    assert_int_equal(kc_sandbox_new(&s, lim, &err), KC_OK);
    if (kc_sandbox_load(s, path, &err) != KC_OK)
        fail_msg("load: %s", err.msg);
    free(path);
    return s;
}

/* Calls hook with no arguments and one result; returns the status. */
static kc_status call0(kc_sandbox *s, const char *hook, kc_err *err)
{
    kc_status st = kc_sandbox_call(s, hook, 0, 1, err);
    if (st == KC_OK)
        lua_pop(kc_sandbox_state(s), 1);
    return st;
}

static void test_call_with_arguments_and_results(void **state)
{
    kc_sandbox *s = loaded(NULL, "local n = 0\n"
                                 "return { add = function(a, b) n = n + 1; return a + b, n end,\n"
                                 "         field = function(t) return t.topic .. '/' .. t.usage end }\n");
    lua_State *L = kc_sandbox_state(s);
    kc_err err = {0};
    assert_true(kc_sandbox_has(s, "add"));
    assert_false(kc_sandbox_has(s, "missing"));
    for (int i = 1; i <= 2; i++) {
        lua_pushinteger(L, 40);
        lua_pushinteger(L, 2);
        assert_int_equal(kc_sandbox_call(s, "add", 2, 2, &err), KC_OK);
        assert_int_equal(lua_tointeger(L, -2), 42);
        assert_int_equal(lua_tointeger(L, -1), i);   /* state persists between calls */
        lua_pop(L, 2);
    }
    lua_newtable(L);
    lua_pushstring(L, "root.x");
    lua_setfield(L, -2, "topic");
    lua_pushstring(L, "key-encrypt");
    lua_setfield(L, -2, "usage");
    assert_int_equal(kc_sandbox_call(s, "field", 1, 1, &err), KC_OK);
    assert_string_equal(lua_tostring(L, -1), "root.x/key-encrypt");
    lua_pop(L, 1);

    lua_pushinteger(L, 1);
    assert_int_equal(kc_sandbox_call(s, "missing", 1, 1, &err), KC_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "no hook missing"));
    assert_int_equal(lua_gettop(L), 0);
    kc_sandbox_free(s);
}

static void test_error_names_file_hook_and_line(void **state)
{
    kc_sandbox *s = loaded(NULL, "return { bad = function() local t = nil; return t.x end,\n"
                                 "         raise = function() error('no way') end,\n"
                                 "         table_error = function() error({}) end }\n");
    kc_err err = {0};
    assert_int_equal(call0(s, "bad", &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "policy file "));
    assert_non_null(strstr(err.msg, "policy.lua: hook bad: "));
    assert_non_null(strstr(err.msg, "policy.lua:1: attempt to index"));
    assert_int_equal(call0(s, "raise", &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "hook raise: "));
    assert_non_null(strstr(err.msg, "no way"));
    assert_int_equal(call0(s, "table_error", &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "hook table_error: error object is not a string"));
    assert_int_equal(lua_gettop(kc_sandbox_state(s)), 0);
    kc_sandbox_free(s);
}

static void test_endless_loop_is_stopped(void **state)
{
    kc_sandbox_limits lim = {.instructions = 100000, .seconds = 5};
    kc_sandbox *s = loaded(&lim, "return { spin = function() while true do end end,\n"
                                 "         ok = function() return 'still works' end }\n");
    kc_err err = {0};
    assert_int_equal(call0(s, "spin", &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "hook spin: instruction budget of 100000 exceeded"));
    /* The state is usable afterwards, with a fresh budget. */
    assert_int_equal(kc_sandbox_call(s, "ok", 0, 1, &err), KC_OK);
    assert_string_equal(lua_tostring(kc_sandbox_state(s), -1), "still works");
    lua_pop(kc_sandbox_state(s), 1);
    assert_int_equal(call0(s, "spin", &err), KC_ERR_DENIED);
    kc_sandbox_free(s);
}

static void test_loop_that_would_be_compiled_is_stopped(void **state)
{
    /* A numeric loop is what LuaJIT compiles into a trace first. */
    kc_sandbox_limits lim = {.instructions = 1000000, .seconds = 5};
    kc_sandbox *s = loaded(&lim, "return { sum = function() local x = 0\n"
                                 "  for i = 1, 1e12 do x = x + i % 7 end return x end }\n");
    kc_err err = {0};
    assert_int_equal(call0(s, "sum", &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "instruction budget"));
    kc_sandbox_free(s);
}

static void test_swallowing_the_budget_error_does_not_help(void **state)
{
    kc_sandbox_limits lim = {.instructions = 200000, .seconds = 5};
    kc_sandbox *s = loaded(&lim,
                           "local function spin() while true do end end\n"
                           "return { p = function() while true do pcall(spin) end end,\n"
                           "         x = function() while true do xpcall(spin, function(e) return e end) end end,\n"
                           "         caught = function() return pcall(error, 'plain') end }\n");
    kc_err err = {0};
    assert_int_equal(call0(s, "p", &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "hook p: instruction budget"));
    assert_int_equal(call0(s, "x", &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "hook x: instruction budget"));
    /* Ordinary errors are still caught by pcall. */
    lua_State *L = kc_sandbox_state(s);
    assert_int_equal(kc_sandbox_call(s, "caught", 0, 2, &err), KC_OK);
    assert_false(lua_toboolean(L, -2));
    assert_string_equal(lua_tostring(L, -1), "plain");
    lua_pop(L, 2);
    kc_sandbox_free(s);
}

static void test_time_budget(void **state)
{
    /* Instructions are plentiful; the wall clock stops it. */
    kc_sandbox_limits lim = {.instructions = UINT64_MAX / 2, .seconds = 0.05};
    kc_sandbox *s = loaded(&lim, "return { spin = function() while true do end end }\n");
    kc_err err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(call0(s, "spin", &err), KC_ERR_DENIED);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_non_null(strstr(err.msg, "hook spin: time budget of 0.05 s exceeded"));
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(took < 1.0);
    kc_sandbox_free(s);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* What the assertions allow past a budget: generous, for loaded machines;
 * the measured times are printed. */
#define MARGIN 0.8

/* Everything a script can make C do for a long time: backtracking patterns
 * (the cases of the review), a quadratic plain find, huge values, and loops
 * of single instructions or library calls that each work on a large value.
 * Instructions are plentiful, so only the clock (or a size limit) stops
 * them; each is refused within its budget plus a small margin. */
static void test_no_call_outlives_its_budget(void **state)
{
    kc_sandbox_limits lim = {.instructions = UINT64_MAX / 2, .seconds = 0.1};
    static const struct { const char *hook, *body; } cases[] = {
        {"find", "string.find(A200, 'a*a*a*a*b')"},
        {"match", "return A200:match('a*a*a*a*b')"},
        {"gmatch", "for x in A200:gmatch('a*a*a*a*b') do end"},
        {"gsub", "return A200:gsub('a*a*a*a*b', 'x')"},
        {"lazy_find", "return A200K:find('.-.-b')"},
        {"lazy_match", "return A200K:match('.-.-b')"},
        {"lazy_gmatch", "for x in A200K:gmatch('.-.-b') do end"},
        {"lazy_gsub", "return A200K:gsub('.-.-b', '%0')"},
        {"gsub_captures", "return A200K:gsub('(.-)(.-)b', '%2%1')"},
        {"gsub_function", "return A200K:gsub('(.-).-b', function(x) return x end)"},
        {"gsub_table", "return A200K:gsub('(.-).-b', {})"},
        {"backreference", "return A200K:find('(.*)%1b')"},
        {"plain_find", "while true do B1:find(B1:sub(2) .. 'b', 1, true) end"},
        {"rep_huge", "return string.rep('x', 2^31 - 2)"},
        {"rep_sep", "return string.rep('x', 2^20, B1)"},
        {"rep_loop", "while true do local x = string.rep('y', 4e6) end"},
        {"compare", "while true do local x = B1 < B2 end"},
        {"concat_op", "while true do local x = B1 .. 'y' end"},
        {"upper", "while true do local x = B1:upper() end"},
        {"tonumber", "local s = (' '):rep(4e6) while true do tonumber(s) end"},
        {"format", "while true do local x = string.format('%q', B1) end"},
        {"table_concat", "local t = {} for i = 1, 100 do t[i] = B1 end return table.concat(t)"},
        {"table_insert", "local t = {} for i = 1, 5e5 do t[i] = i end while true do table.insert(t, 1, 0) t[#t] = nil end"},
        {"sort", "local t = {} for i = 1, 2e5 do t[i] = (i * 7919) % 200003 end while true do table.sort(t) table.sort(t, function(a, b) return a > b end) end"},
        {"sort_strings", "local t = {} for i = 1, 200 do t[i] = B1 .. i end table.sort(t) return #t"},
        {"next", "local t = {} for i = 1, 1e5 do t[i .. ''] = i end for i = 1, 1e5 - 1 do t[i .. ''] = nil end while true do next(t) end"},
        {"garbage", "while true do local t = {} for i = 1, 1000 do t[i] = { i } end end"},
        {"log", "while true do log.debug(B1) end"},
        {"error_message", "while true do pcall(error, B1 .. 'x') end"},
    };
    char text[8192] = "A200 = ('a'):rep(200)\nA200K = ('a'):rep(200000)\n"
                      "B1 = ('x'):rep(4e6 - 1) .. 'a'\nB2 = ('x'):rep(4e6 - 1) .. 'b'\nreturn {\n";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "  %s = function() %s end,\n", cases[i].hook,
                 cases[i].body);
    }
    strcat(text, "  ok = function() return 'ok' end }\n");
    kc_sandbox_limits load_lim = lim;
    load_lim.seconds = 5;   /* building the values is not what is measured */
    kc_sandbox *s = loaded(&load_lim, text);
    kc_sandbox_free(s);
    s = loaded(&lim, text);
    double worst = 0;
    const char *worst_hook = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kc_err err = {0};
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        kc_status st = kc_sandbox_call(s, cases[i].hook, 0, 0, &err);
        double took = seconds_since(&t0);
        if (took > worst) {
            worst = took;
            worst_hook = cases[i].hook;
        }
        char want[64];
        snprintf(want, sizeof want, "policy.lua: hook %s: ", cases[i].hook);
        /* LuaJIT refuses a string over 2 GiB before allocating: an error */
        bool refused = st == KC_ERR_DENIED ||
                       (st == KC_ERR_INVALID && strstr(err.msg, "not enough memory"));
        if (!refused || !strstr(err.msg, want))
            fail_msg("%s: status %d: %s", cases[i].hook, st, err.msg);
        if (st == KC_ERR_DENIED && !strstr(err.msg, "time budget of 0.1 s exceeded (stopped after 0.") &&
            !strstr(err.msg, "a single value of ") && !strstr(err.msg, "memory limit"))
            fail_msg("%s: %s", cases[i].hook, err.msg);
        if (took > lim.seconds + MARGIN)
            fail_msg("%s: took %.3f s: %s", cases[i].hook, took, err.msg);
        if (getenv("KC_SANDBOX_TIMES")) print_message("%-14s %.3f s\n", cases[i].hook, took);
        /* the state still works */
        assert_int_equal(kc_sandbox_call(s, "ok", 0, 0, &err), KC_OK);
    }
    print_message("worst call: %s, %.3f s for a budget of %g s\n", worst_hook, worst, lim.seconds);
    kc_sandbox_free(s);
}

/* A state full of small live values (a whole collection takes about
 * 100 ms) that keeps making garbage: collections run in steps that stop
 * with the call. */
static void test_full_state_collects_in_time(void **state)
{
    kc_sandbox_limits lim = {.instructions = UINT64_MAX / 2, .seconds = 0.3};
    kc_sandbox *s = loaded(&lim, "local keep = {}\n"
                                 "return { fill = function(from) for i = from, from + 4999 do keep[i] = i .. '' end end,\n"
                                 "         churn = function() while true do local x = { 1 } end end }\n");
    lua_State *L = kc_sandbox_state(s);
    kc_err err = {0};
    /* 500 000 strings: set-up, not what is measured, so a call that a
     * loaded machine stretches past the budget is simply made again */
    for (int i = 0; i < 100; i++) {
        kc_status st = KC_ERR_DENIED;
        for (int tries = 0; st != KC_OK && tries < 20; tries++) {
            lua_pushinteger(L, 5000 * i + 1);
            st = kc_sandbox_call(s, "fill", 1, 0, &err);
        }
        if (st != KC_OK)
            fail_msg("fill: %s", err.msg);
    }
    assert_true(kc_sandbox_memory(s) > (20u << 20));
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(call0(s, "churn", &err), KC_ERR_DENIED);
    double took = seconds_since(&t0);
    if (!strstr(err.msg, "hook churn: time budget of 0.3 s exceeded") || took > lim.seconds + MARGIN)
        fail_msg("%.3f s: %s", took, err.msg);
    print_message("full state: stopped after %.3f s for a budget of %g s\n", took, lim.seconds);
    kc_sandbox_free(s);
}

/* With the default budgets the same patterns are stopped by the
 * instruction budget (each pattern step counts as one), whatever the load
 * of the machine. */
static void test_patterns_count_as_instructions(void **state)
{
    kc_sandbox *s = loaded(NULL, "local a = ('a'):rep(200)\n"
                                 "return { find = function() return a:find('a*a*a*a*b') end,\n"
                                 "         ok = function() return ('key = value'):match('^(%w+)%s*=%s*(%w+)$') end }\n");
    kc_err err = {0};
    assert_int_equal(call0(s, "find", &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "hook find: instruction budget of 10000000 exceeded"));
    lua_State *L = kc_sandbox_state(s);
    assert_int_equal(kc_sandbox_call(s, "ok", 0, 2, &err), KC_OK);
    assert_string_equal(lua_tostring(L, -2), "key");
    assert_string_equal(lua_tostring(L, -1), "value");
    lua_pop(L, 2);
    kc_sandbox_free(s);
}

/* table.sort still sorts, but its comparisons are counted: sorting 20 000
 * numbers costs more instructions than filling the table. */
static void test_sort_comparisons_are_counted(void **state)
{
    kc_sandbox_limits lim = {.instructions = 200000, .seconds = 5};
    kc_sandbox *s = loaded(&lim,
                           "return { small = function() local t, u = {3, 1, 2}, {'a', 'c', 'b'}\n"
                           "  table.sort(t) table.sort(u, function(a, b) return a > b end)\n"
                           "  return table.concat(t, ',') .. ' ' .. table.concat(u, ',') end,\n"
                           "  big = function() local t = {} for i = 1, 20000 do t[i] = -i end\n"
                           "    table.sort(t) end }\n");
    kc_err err = {0};
    lua_State *L = kc_sandbox_state(s);
    assert_int_equal(kc_sandbox_call(s, "small", 0, 1, &err), KC_OK);
    assert_string_equal(lua_tostring(L, -1), "1,2,3 c,b,a");
    lua_pop(L, 1);
    assert_int_equal(call0(s, "big", &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "hook big: instruction budget of 200000 exceeded"));
    kc_sandbox_free(s);
}

/* A C function that takes its time and runs no instruction: the only way
 * a call can come back after its deadline unnoticed. */
static int slow_c(lua_State *L)
{
    struct timespec ts = {0, (long)(luaL_checknumber(L, 1) * 1e9)};
    nanosleep(&ts, NULL);
    return 0;
}

static void test_late_answer_is_refused(void **state)
{
    char *path = write_policy("late.lua", "return { answer = function(t) slow(t) return true end }\n");
    kc_sandbox_limits lim = {.seconds = 0.05};
    kc_sandbox *s;
    kc_err err = {0};
    assert_int_equal(kc_sandbox_new(&s, &lim, &err), KC_OK);
    lua_State *L = kc_sandbox_state(s);
    lua_register(L, "slow", slow_c);
    assert_int_equal(kc_sandbox_load(s, path, &err), KC_OK);
    lua_pushnumber(L, 0.1);
    assert_int_equal(kc_sandbox_call(s, "answer", 1, 1, &err), KC_ERR_DENIED);
    assert_int_equal(lua_gettop(L), 0);   /* the answer is dropped */
    if (!strstr(err.msg, "late.lua: hook answer: time budget of 0.05 s exceeded: answered after 0.") ||
        !strstr(err.msg, " s (refused)"))
        fail_msg("%s", err.msg);
    /* in time: accepted */
    lua_pushnumber(L, 0);
    assert_int_equal(kc_sandbox_call(s, "answer", 1, 1, &err), KC_OK);
    assert_true(lua_toboolean(L, -1));
    lua_pop(L, 1);
    kc_sandbox_free(s);
    free(path);
}

static void test_long_log_lines_are_cut(void **state)
{
    logged[0] = 0;
    kc_sandbox *s = loaded(NULL, "return { say = function() log.warning(('z'):rep(5000)) end }\n");
    kc_err err = {0};
    assert_int_equal(kc_sandbox_call(s, "say", 0, 0, &err), KC_OK);
    assert_non_null(strstr(logged, "... (3976 bytes cut)\n"));
    assert_true(strlen(logged) < 1200);
    kc_sandbox_free(s);
}

static void test_memory_cap(void **state)
{
    kc_sandbox_limits lim = {.memory = 4u << 20};
    kc_sandbox *s = loaded(&lim, "local keep = {}\n"
                                 "return { hoard = function() while true do keep[#keep + 1] = {1, 2, 3, 4} end end,\n"
                                 "         big = function() return string.rep('x', 64 * 1024 * 1024) end,\n"
                                 "         churn = function() for i = 1, 20000 do local t = string.rep('y', 1000) .. i end return 'done' end,\n"
                                 "         release = function() keep = nil end }\n");   /* allocates nothing: the state is full */
    kc_err err = {0};
    assert_int_equal(call0(s, "big", &err), KC_ERR_DENIED);
    assert_non_null(strstr(err.msg, "hook big: a single value of "));
    assert_int_equal(call0(s, "hoard", &err), KC_ERR_DENIED);
    if (!strstr(err.msg, "memory limit"))
        fail_msg("hoard: %s", err.msg);
    if (call0(s, "release", &err) != KC_OK)
        fail_msg("release: %s", err.msg);
    /* Garbage (20 MB in total) is collected instead of counting against the cap. */
    if (call0(s, "churn", &err) != KC_OK)
        fail_msg("churn: %s", err.msg);
    assert_true(kc_sandbox_memory(s) <= lim.memory);
    kc_sandbox_free(s);
}

static void test_environment_has_no_way_out(void **state)
{
    kc_sandbox *s = loaded(NULL,
                           "return { probe = function()\n"
                           "  local absent = {}\n"
                           "  for _, name in ipairs({'io', 'require', 'dofile', 'loadfile', 'load',\n"
                           "      'loadstring', 'package', 'debug', 'jit', 'ffi', 'coroutine',\n"
                           "      'collectgarbage', 'setfenv', 'getfenv', 'module', 'newproxy'}) do\n"
                           "    if _G[name] == nil then absent[#absent + 1] = name end\n"
                           "  end\n"
                           "  assert(string.dump == nil and os.execute == nil and os.getenv == nil\n"
                           "         and os.remove == nil and os.exit == nil)\n"
                           "  assert(type(os.time()) == 'number' and type(os.clock()) == 'number')\n"
                           "  assert(os.date('!%Y', 0) == '1970' and bit.band(6, 3) == 2)\n"
                           "  return table.concat(absent, ',')\n"
                           "end }\n");
    lua_State *L = kc_sandbox_state(s);
    kc_err err = {0};
    if (kc_sandbox_call(s, "probe", 0, 1, &err) != KC_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(lua_tostring(L, -1),
                        "io,require,dofile,loadfile,load,loadstring,package,debug,jit,ffi,"
                        "coroutine,collectgarbage,setfenv,getfenv,module,newproxy");
    lua_pop(L, 1);
    kc_sandbox_free(s);
}

static void test_log(void **state)
{
    logged[0] = 0;
    kc_sandbox *s = loaded(NULL, "return { say = function()\n"
                                 "  log('denied', 3); log.warning('careful'); print('p', nil)\n"
                                 "end }\n");
    kc_err err = {0};
    assert_int_equal(kc_sandbox_call(s, "say", 0, 0, &err), KC_OK);
    assert_string_equal(logged, "INFO:kafkacrypto.policy:policy.lua: denied 3\n"
                                "WARNING:kafkacrypto.policy:policy.lua: careful\n"
                                "INFO:kafkacrypto.policy:policy.lua: p nil\n");
    kc_sandbox_free(s);
}

static void test_read_file(void **state)
{
    char *data = write_policy("allowed.txt", "alpha\nbeta\n");
    assert_int_equal(chmod(data, 0644), 0); /* the rule (kc_datafile.h) is tested in test_datafile */
    char *secret = write_policy("node.crypto", "secret");
    char *sub = tc_path(dir, "sub");
    assert_int_equal(mkdir(sub, 0700), 0);
    kc_sandbox *s = loaded(NULL, "return { read = function(name) return read_file(name) end }\n");
    lua_State *L = kc_sandbox_state(s);
    kc_err err = {0};

    lua_pushstring(L, "allowed.txt");
    assert_int_equal(kc_sandbox_call(s, "read", 1, 2, &err), KC_OK);
    assert_string_equal(lua_tostring(L, -2), "alpha\nbeta\n");
    lua_pop(L, 2);

    static const struct { const char *name, *why; } refused[] = {
        {"node.crypto", "never readable"},
        {"x.seed", "never readable"},
        {"../allowed.txt", "without '..'"},
        {"sub/../allowed.txt", "without '..'"},
        {"/etc/passwd", "relative name"},
        {"", "relative name"},
        {"sub", "not a regular file"},
        {"missing.txt", "No such file"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        lua_pushstring(L, refused[i].name);
        assert_int_equal(kc_sandbox_call(s, "read", 1, 2, &err), KC_OK);
        assert_true(lua_isnil(L, -2));
        const char *msg = lua_tostring(L, -1);
        if (!msg || !strstr(msg, refused[i].why))
            fail_msg("%s: %s", refused[i].name, msg ? msg : "(nil)");
        lua_pop(L, 2);
    }
    kc_sandbox_free(s);
    free(data);
    free(secret);
    free(sub);
}

static void test_load_failures(void **state)
{
    kc_sandbox *s;
    kc_err err = {0};
    static const struct { const char *text, *why; kc_status code; } bad[] = {
        {"return 42\n", "expected the file to return a table of hooks, got number", KC_ERR_INVALID},
        {"return {\n", "policy.lua:2:", KC_ERR_INVALID},
        {"error('at load')\n", "loading the file: ", KC_ERR_INVALID},
        {"while true do end\n", "loading the file: instruction budget", KC_ERR_DENIED},
        {"\x1bLJ\x02", "wrong mode", KC_ERR_INVALID},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *path = write_policy("policy.lua", bad[i].text);
        kc_sandbox_limits lim = {.instructions = 100000};
        assert_int_equal(kc_sandbox_new(&s, &lim, &err), KC_OK);
        assert_int_equal(kc_sandbox_load(s, path, &err), bad[i].code);
        if (!strstr(err.msg, bad[i].why) || !strstr(err.msg, "policy file "))
            fail_msg("case %zu: %s", i, err.msg);
        assert_int_equal(kc_sandbox_call(s, "any", 0, 0, &err), KC_ERR_NOTFOUND);
        kc_sandbox_free(s);
        free(path);
    }
    assert_int_equal(kc_sandbox_new(&s, NULL, &err), KC_OK);
    char *missing = tc_path(dir, "missing.lua");
    assert_int_equal(kc_sandbox_load(s, missing, &err), KC_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "missing.lua: cannot open"));
    kc_sandbox_free(s);
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_with_arguments_and_results),
        cmocka_unit_test(test_error_names_file_hook_and_line),
        cmocka_unit_test(test_endless_loop_is_stopped),
        cmocka_unit_test(test_loop_that_would_be_compiled_is_stopped),
        cmocka_unit_test(test_swallowing_the_budget_error_does_not_help),
        cmocka_unit_test(test_time_budget),
        cmocka_unit_test(test_no_call_outlives_its_budget),
        cmocka_unit_test(test_full_state_collects_in_time),
        cmocka_unit_test(test_patterns_count_as_instructions),
        cmocka_unit_test(test_sort_comparisons_are_counted),
        cmocka_unit_test(test_late_answer_is_refused),
        cmocka_unit_test(test_long_log_lines_are_cut),
        cmocka_unit_test(test_memory_cap),
        cmocka_unit_test(test_environment_has_no_way_out),
        cmocka_unit_test(test_log),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_load_failures),
    };
    return cmocka_run_group_tests_name("sandbox", tests, setup, teardown);
}
