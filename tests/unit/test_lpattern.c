/* kc_lpattern: the counted string.find/match/gmatch/gsub give LuaJIT's
 * results and errors (fixed cases and random ones, compared with the
 * stock functions in the same state), and their work is charged as it is
 * done, so a budget stops pathological patterns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>
#include <time.h>

#include "kc_lpattern.h"

typedef struct counter {
    uint64_t steps, limit, calls;
} counter;

static void charge(lua_State *L, void *ctx, uint64_t steps)
{
    counter *c = ctx;
    c->steps += steps;
    c->calls++;
    if (c->steps > c->limit)
        luaL_error(L, "budget of %d steps exceeded", (int)c->limit);
}

/* A state with the stock string library and the counted functions in the
 * global table `counted`. */
static lua_State *new_state(counter *c, kc_lpattern_budget *b)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    b->charge = charge;
    b->ctx = c;
    lua_newtable(L);
    kc_lpattern_install(L, -1, b);
    lua_setglobal(L, "counted");
    return L;
}

static void run(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != 0)
        fail_msg("%s", lua_tostring(L, -1));
}

/* Compares each function on (subject, pattern, extra...) and reports the
 * first difference. Errors compare by message without the position. */
static const char compare_lua[] =
    "local function pack(ok, ...) return { ok = ok, n = select('#', ...), ... } end\n"
    "local function show(r)\n"
    "  local t = {}\n"
    "  for i = 1, r.n do t[#t + 1] = type(r[i]) .. ':' .. tostring(r[i]) end\n"
    "  return tostring(r.ok) .. ' ' .. table.concat(t, ',')\n"
    "end\n"
    "local function norm(r)\n"
    "  if not r.ok and type(r[1]) == 'string' then r[1] = r[1]:gsub('^[^:]*:%d+: ', '') end\n"
    "  return show(r)\n"
    "end\n"
    "local function gm(f, s, p)\n"
    "  local out, n = {}, 0\n"
    "  for a, b, c in f(s, p) do n = n + 1; out[#out + 1] = tostring(a) .. '|' .. tostring(b) .. '|' .. tostring(c)\n"
    "    if n > 100 then break end end\n"
    "  return table.concat(out, ';')\n"
    "end\n"
    "function compare(s, p, r, init)\n"
    "  local cases = {\n"
    "    { 'find', function(lib) return lib.find(s, p, init) end },\n"
    "    { 'find plain', function(lib) return lib.find(s, p, init, true) end },\n"
    "    { 'match', function(lib) return lib.match(s, p, init) end },\n"
    "    { 'gmatch', function(lib) return gm(lib.gmatch, s, p) end },\n"
    "    { 'gsub', function(lib) return lib.gsub(s, p, r) end },\n"
    "    { 'gsub 2', function(lib) return lib.gsub(s, p, r, 2) end },\n"
    "    { 'gsub fn', function(lib) return lib.gsub(s, p, function(a, b) return b and (a .. '<' .. tostring(b) .. '>') or nil end) end },\n"
    "    { 'gsub table', function(lib) return lib.gsub(s, p, { a = 'A', ab = false }) end },\n"
    "  }\n"
    "  for _, c in ipairs(cases) do\n"
    "    local want = norm(pack(pcall(c[2], string)))\n"
    "    local got = norm(pack(pcall(c[2], counted)))\n"
    "    if want ~= got then\n"
    "      return string.format('%s(%q, %q, %q, %s): stock %s, counted %s', c[1], s, p, r, tostring(init), want, got)\n"
    "    end\n"
    "  end\n"
    "end\n";

static void expect_same(lua_State *L, const char *call)
{
    lua_getglobal(L, "compare");
    char code[512];
    snprintf(code, sizeof code, "return %s", call);
    if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, 4, 0) != 0)
        fail_msg("%s", lua_tostring(L, -1));
    lua_call(L, 4, 1);
    if (!lua_isnil(L, -1))
        fail_msg("%s", lua_tostring(L, -1));
    lua_pop(L, 1);
}

static void test_same_results_as_luajit(void **state)
{
    counter c = {.limit = UINT64_MAX};
    kc_lpattern_budget b;
    lua_State *L = new_state(&c, &b);
    run(L, compare_lua);
    static const char *const cases[] = {
        "'hello world', 'o', 'X'", "'hello world', 'l+', '[%0]'", "'hello world', '^h', 'H'",
        "'hello world', 'd$', 'D'", "'hello world', '(o)(r)', '%2%1'", "'a,b,,c', '[^,]*', '<%0>'",
        "'  x  ', '^%s*(.-)%s*$', '%1'", "'key = value', '(%w+)%s*=%s*(%w+)', '%2=%1'",
        "'THE (quick) fox', '%((%a+)%)', '%1'", "'f(a(b)c)d', '%b()', ''", "'THE (quick) fox', '%f[%a]%a+', 'W'",
        "'abc', '()', '-'", "'abc', '()b()', '%1'", "'abc', '', '-'", "'abc', '.-', '-'",
        "'aaa', 'a-b', 'x'", "'aaab', 'a-b', 'x'", "'abc', 'a?b?c?d?', 'x'", "'x=1, y=2', '(%w+)=(%w+)', '%2'",
        "'3b1f e0', '^%x+$', ''", "'3b1f', '^%x+$', ''", "'#comment\\nline', '#.*', ''",
        "'a.b', '.', '%%'", "'a.b', '%.', '%'", "'abc', '[a-b]', '%0%0'", "'a]b', '[]]', 'x'",
        "'a^b', '[%^]', 'x'", "'a-b', '[a-]', 'x'", "'a-b', '[^a-]', 'x'", "'\\0a\\0', '%z', 'x'", "'\\0a\\0', '%Z+', 'x'",
        "'\\1\\2 a', '%c', 'x'", "'a\\0b', 'a\\0c', 'x'", "'abcabc', '(abc)%1', 'x'",
        "'tab\\there', '%s', '_'", "'x', '%g', 'y'", "'A1_b', '%W', '.'", "'\\200\\255', '[\\128-\\255]', 'x'",
        "'abc', 'b', 'x', 2", "'abc', 'b', 'x', 3", "'abc', 'b', 'x', -1", "'abc', 'b', 'x', -10",
        "'abc', 'b', 'x', 10", "'abc', '', 'x', 4", "'abc', '', 'x', 5",
        /* errors */
        "'abc', '%', 'x'", "'abc', '[a', 'x'", "'abc', '(', 'x'", "'abc', ')', 'x'", "'abc', '%1', 'x'",
        "'abc', '%b', 'x'", "'abc', '%f', 'x'", "'abc', '(a)', '%2'", "'abc', 'a', '%'", "'abc', 'a', 'x%'",
        "'abc', '((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))', 'x'",
        "'abc', ('a?'):rep(300), 'x'", "'abc', '(()', 'x'",
        "123, 2, 9", "'abc', 98, 'x'",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_same(L, cases[i]);
    assert_true(c.steps > 0);
    lua_close(L);
}

static void test_random_patterns_agree(void **state)
{
    counter c = {.limit = UINT64_MAX};
    kc_lpattern_budget b;
    lua_State *L = new_state(&c, &b);
    run(L, compare_lua);
    /* Short random subjects and patterns from the special characters: the
     * stock matcher stays fast on these, so any disagreement is ours. */
    run(L, "math.randomseed(9)\n"
           "local chars = { 'a', 'b', '.', '%', '*', '+', '-', '?', '[', ']', '^', '$', '(', ')', 'a', 'b', '%a', '%d', '%b()', '%f[%w]', '%1' }\n"
           "local subj = { 'a', 'b', '(', ')', '1', ' ', 'ab' }\n"
           "for i = 1, 4000 do\n"
           "  local p, s = {}, {}\n"
           "  for j = 1, math.random(0, 6) do p[#p + 1] = chars[math.random(#chars)] end\n"
           "  for j = 1, math.random(0, 8) do s[#s + 1] = subj[math.random(#subj)] end\n"
           "  local why = compare(table.concat(s), table.concat(p), '<%0>', math.random(-3, 4))\n"
           "  if why then error(why, 0) end\n"
           "end\n");
    lua_close(L);
}

/* Each pathological case from the review stops within the step budget and
 * the budget is charged while the work is done (not only at the end). */
static void test_pathological_patterns_are_charged(void **state)
{
    static const char *const cases[] = {
        "counted.find(('a'):rep(200), 'a*a*a*a*b')",
        "counted.match(('a'):rep(200), 'a*a*a*a*b')",
        "for x in counted.gmatch(('a'):rep(200), 'a*a*a*a*b') do end",
        "counted.gsub(('a'):rep(200), 'a*a*a*a*b', 'x')",
        "counted.find(('a'):rep(200000), '.-.-b')",
        "counted.gsub(('a'):rep(200000), '.-.-b', 'x')",
        "counted.gsub(('a'):rep(200000), '(.-)(.-)b', '%2%1')",
        "counted.find(('a'):rep(2000000), ('a'):rep(1000000) .. 'b', 1, true)",
        "counted.find(('a'):rep(100000), '(.*)%1b')",
        "counted.find(('a'):rep(100000), '[' .. ('x'):rep(10000) .. 'a]*b')",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        counter c = {.limit = 1000000};
        kc_lpattern_budget b;
        lua_State *L = new_state(&c, &b);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = luaL_dostring(L, cases[i]);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (rc == 0 || !strstr(lua_tostring(L, -1), "budget of 1000000 steps exceeded"))
            fail_msg("case %zu: %s", i, rc ? lua_tostring(L, -1) : "finished");
        /* stopped at the first charge over the limit; a plain find is
         * charged (linearly) before it runs */
        if (strstr(cases[i], "true)"))
            assert_int_equal(c.steps, 3000001);
        else
            assert_true(c.steps <= c.limit + 8 * KC_LPATTERN_CHUNK);
        if (took > 2.0)
            fail_msg("case %zu took %.3f s", i, took);
        lua_close(L);
    }
}

static void test_ordinary_use_is_cheap(void **state)
{
    counter c = {.limit = UINT64_MAX};
    kc_lpattern_budget b;
    lua_State *L = new_state(&c, &b);
    /* per-root-allowlist.lua's parsing of a 100-line file */
    run(L, "local lines = {}\n"
           "for i = 1, 100 do lines[i] = 'root' .. i .. ' ' .. ('ab'):rep(32) .. ' # c' end\n"
           "local text = table.concat(lines, '\\n')\n"
           "local n = 0\n"
           "for line in counted.gmatch(text, '[^\\n]+') do\n"
           "  line = counted.gsub(line, '#.*', '')\n"
           "  local root, rest = counted.match(line, '^%s*(%S+)%s*(.*)$')\n"
           "  for fp in counted.gmatch(rest, '%S+') do assert(counted.match(fp, '^%x+$')); n = n + 1 end\n"
           "end\n"
           "assert(n == 100)\n");
    /* linear in the text: a few steps per character */
    assert_true(c.steps < 20 * 100 * 80);
    assert_true(c.steps > 100 * 80);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_results_as_luajit),
        cmocka_unit_test(test_random_patterns_agree),
        cmocka_unit_test(test_pathological_patterns_are_charged),
        cmocka_unit_test(test_ordinary_use_is_cheap),
    };
    return cmocka_run_group_tests_name("lpattern", tests, NULL, NULL);
}
