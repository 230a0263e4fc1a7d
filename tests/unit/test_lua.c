/* kc_lua: states, running scripts with errors that name script and line,
 * search paths, the root rule seen from C, and its thread rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_lua.h"
#include "kc_test.h"

static kc_settings settings;
static char logged[2048];

static void capture(void *ctx, kc_log_level level, const char *logger, const char *msg)
{
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s:%s:%s\n", kc_log_level_name(level), logger, msg);
}

static char *script(const char *name, const char *text)
{
    char *path = tc_path(tc_dir, name);
    tc_write_file(path, (const uint8_t *)text, strlen(text));
    return path;
}

static lua_State *new_state(void)
{
    const char *src = getenv("KC_SOURCE_DIR");
    kc_lua_options o = {&settings, src ? src : ".", tc_dir, "/x/kafkacrypto"};
    lua_State *L;
    kc_err err;
    assert_int_equal(kc_lua_new(&L, &o, &err), KC_OK);
    return L;
}

static const char *global_string(lua_State *L, const char *name)
{
    lua_getglobal(L, name);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

static void test_run_with_arguments(void **state)
{
    lua_State *L = new_state();
    char *path = script("args.lua",
                        "local a, b = ...\n"
                        "result = table.concat({arg[-1], arg[0]:match('[^/]+$'), #arg, a, b}, ' ')\n"
                        "json = require('cjson').encode({1})\n"
                        "root = require('kafkacrypto').get_root('one.two')\n");
    char *argv[] = {"first", "second"};
    kc_err err;
    char *tb = NULL;
    assert_int_equal(kc_lua_run_file(L, path, 2, argv, &tb, &err), KC_OK);
    assert_null(tb);
    assert_string_equal(global_string(L, "result"), "/x/kafkacrypto args.lua 2 first second");
    assert_string_equal(global_string(L, "json"), "[1]");
    assert_string_equal(global_string(L, "root"), "one");
    kc_lua_close(L);
    free(path);
}

static void test_errors_name_script_and_line(void **state)
{
    lua_State *L = new_state();
    kc_err err;
    char *tb = NULL;
    char *path = script("boom.lua", "local x = 1\n\nerror('boom')\n");
    assert_int_equal(kc_lua_run_file(L, path, 0, NULL, &tb, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "boom.lua:3: boom"));
    assert_non_null(tb);
    assert_non_null(strstr(tb, "stack traceback"));
    free(tb);
    free(path);

    path = script("syntax.lua", "x = = 1\n");
    assert_int_equal(kc_lua_run_file(L, path, 0, NULL, &tb, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "syntax.lua:1:"));
    free(tb);
    free(path);

    /* errors raised by the library point at the script's line */
    path = script("caller.lua", "local k = require 'kafkacrypto'\n"
                                "k.set_root_rule(function() return 5 end)\n"
                                "k.get_root('a.b')\n");
    assert_int_equal(kc_lua_run_file(L, path, 0, NULL, &tb, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "caller.lua:3: root rule: for topic 'a.b' it returned number"));
    free(tb);
    free(path);

    /* error objects with __tostring */
    path = script("object.lua", "error(setmetatable({}, {__tostring = function() return 'obj' end}))\n");
    assert_int_equal(kc_lua_run_file(L, path, 0, NULL, &tb, &err), KC_ERR_INVALID);
    assert_string_equal(err.msg, "obj");
    free(tb);
    free(path);

    char *missing = tc_path(tc_dir, "missing.lua");
    assert_int_equal(kc_lua_run_file(L, missing, 0, NULL, &tb, &err), KC_ERR_INVALID);
    assert_non_null(strstr(err.msg, "missing.lua"));
    free(missing);
    kc_lua_close(L);
}

static void test_search_paths(void **state)
{
    setenv("KC_LUA_PATH", "/env/dir;/env/t/?.lua", 1);
    free(settings.lua_path);
    settings.lua_path = strdup("/settings/?.lua;");
    lua_State *L = new_state();
    assert_int_equal(luaL_dostring(L, "path = package.path cpath = package.cpath"), 0);
    const char *path = global_string(L, "path");
    char want[1024];
    snprintf(want, sizeof want, "/env/dir/?.lua;/env/dir/?/init.lua;/env/t/?.lua;/settings/?.lua;"
             "%s/?.lua;%s/?/init.lua;", tc_dir, tc_dir);
    assert_memory_equal(path, want, strlen(want));   /* most specific first */
    assert_null(strstr(path, ";./"));
    assert_non_null(strstr(global_string(L, "cpath"), "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so"));
    assert_null(strstr(global_string(L, "cpath"), "./?.so"));
    kc_lua_close(L);
    unsetenv("KC_LUA_PATH");
    free(settings.lua_path);
    settings.lua_path = NULL;
}

struct thread_call {
    const kc_root_rule *rule;
    kc_status status;
    char root[KC_TOPIC_NAME_MAX + 1];
    kc_err err;
};

static void *call_rule(void *arg)
{
    struct thread_call *c = arg;
    c->status = kc_root_of(c->rule, ".", "a_b.c", c->root, &c->err);
    return NULL;
}

static void test_root_rule_from_c(void **state)
{
    lua_State *L = new_state();
    char root[KC_TOPIC_NAME_MAX + 1];
    kc_err err;
    /* before the module is loaded: upstream's rule */
    assert_null(kc_lua_root_rule(L));
    assert_int_equal(kc_root_of(NULL, ".", "a_b.c", root, &err), KC_OK);
    assert_string_equal(root, "a_b");
    assert_int_equal(luaL_dostring(L, "k = require 'kafkacrypto'"), 0);
    const kc_root_rule *rule = kc_lua_root_rule(L);
    assert_non_null(rule);
    assert_int_equal(kc_root_of(rule, "_", "a_b.c", root, &err), KC_OK);
    assert_string_equal(root, "a");   /* default rule, separator from the caller */

    assert_int_equal(luaL_dostring(L, "k.set_root_rule(function(t) return 'r' .. #t end)"), 0);
    assert_int_equal(kc_root_of(rule, ".", "a_b.c", root, &err), KC_OK);
    assert_string_equal(root, "r5");
    /* the same rule answers Lua and C */
    assert_int_equal(luaL_dostring(L, "lua_root = k.get_root('a_b.c')"), 0);
    assert_string_equal(global_string(L, "lua_root"), "r5");

    /* the adapter for kc_serde_config.root_fn answers the same */
    const char *r;
    size_t rlen;
    assert_int_equal(kc_root_serde_fn((void *)rule, "a_b.cdef", 6, &r, &rlen), KC_OK);
    assert_int_equal(rlen, 2);
    assert_memory_equal(r, "r6", 2);
    assert_int_equal(luaL_dostring(L, "k.set_root_rule(function(t) return '' end)"), 0);
    kc_log_set_sink(capture, NULL);
    assert_int_equal(kc_root_serde_fn((void *)rule, "x.y", 3, &r, &rlen), KC_ERR_INVALID);
    kc_log_set_sink(NULL, NULL);
    assert_non_null(strstr(logged, "WARNING:kafkacrypto.root:root rule: topic 'x.y' gave root ''"));
    assert_int_equal(luaL_dostring(L, "k.set_root_rule(function(t) return 'r' .. #t end)"), 0);

    /* a Lua rule is refused on other threads: states are not shared */
    struct thread_call call = {.rule = rule};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, call_rule, &call), 0);
    pthread_join(t, NULL);
    assert_int_equal(call.status, KC_ERR_STATE);
    assert_non_null(strstr(call.err.msg, "a_b.c"));

    /* a separator rule has no such limit */
    assert_int_equal(luaL_dostring(L, "k.set_root_rule('_')"), 0);
    assert_int_equal(pthread_create(&t, NULL, call_rule, &call), 0);
    pthread_join(t, NULL);
    assert_int_equal(call.status, KC_OK);
    assert_string_equal(call.root, "a");
    kc_lua_close(L);
}

static void test_settings_reach_lua(void **state)
{
    kc_err err;
    assert_int_equal(kc_settings_set(&settings, "broker", "127.0.0.1:1", NULL, &err), KC_OK);
    assert_int_equal(kc_settings_set(&settings, "tunables.crypto_sub_interval", "7", NULL, &err),
                     KC_OK);
    lua_State *L = new_state();
    assert_ptr_equal(kc_lua_settings(L), &settings);
    assert_int_equal(luaL_dostring(L, "local k = require 'kafkacrypto' "
                                      "b = k.settings().broker "
                                      "i = tostring(k.tunables().crypto_sub_interval)"), 0);
    assert_string_equal(global_string(L, "b"), "127.0.0.1:1");
    assert_string_equal(global_string(L, "i"), "7");
    kc_lua_close(L);

    /* no settings: defaults */
    lua_State *D;
    assert_int_equal(kc_lua_new(&D, NULL, &err), KC_OK);
    assert_null(kc_lua_settings(D)->broker);
    assert_int_equal(kc_lua_settings(D)->log_level, KC_LOG_WARNING);
    kc_lua_close(D);
}

static int setup(void **state)
{
    kc_settings_init(&settings);
    return tc_setup_dir(state);
}

static int teardown(void **state)
{
    kc_settings_free(&settings);
    return tc_teardown_dir(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_with_arguments),
        cmocka_unit_test(test_errors_name_script_and_line),
        cmocka_unit_test(test_search_paths),
        cmocka_unit_test(test_root_rule_from_c),
        cmocka_unit_test(test_settings_reach_lua),
    };
    return cmocka_run_group_tests_name("lua", tests, setup, teardown);
}
