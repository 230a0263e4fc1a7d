/* The C side of the Lua data path objects: a serde made in C handed to Lua
 * (as the node object will hand its own), the owner it keeps alive, the
 * root rule a serde follows, and the store handle C gets back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kc_lua.h"
#include "kc_serde.h"
#include "kc_test.h"

static kc_settings settings;

static lua_State *new_state(void)
{
    const char *src = getenv("KC_SOURCE_DIR");
    kc_lua_options o = {&settings, src ? src : ".", tc_dir, NULL};
    lua_State *L;
    kc_err err;
    assert_int_equal(kc_lua_new(&L, &o, &err), KC_OK);
    assert_int_equal(luaL_dostring(L, "k = require 'kafkacrypto'"), 0);
    return L;
}

static void run(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != 0)
        fail_msg("%s: %s", code, lua_tostring(L, -1));
}

static const char *global_string(lua_State *L, const char *name)
{
    lua_getglobal(L, name);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

static int owner_collected;
static int owner_gc(lua_State *L)
{
    owner_collected++;
    return 0;
}

/* A producer serde over a seed file and a consumer serde, both made in C
 * with the state's root rule, as the node object makes its own. */
static void new_serdes(lua_State *L, kc_ratchet **r, kc_serde **prod, kc_serde **cons)
{
    char *seed = tc_path(tc_dir, "c.seed");
    kc_err err;
    kc_log_set_level(KC_LOG_CRITICAL);   /* a new seed file draws warnings */
    assert_int_equal(kc_ratchet_open_file(seed, NULL, r, &err), KC_OK);
    kc_log_set_level(KC_LOG_WARNING);
    free(seed);
    kc_serde_config c;
    kc_serde_config_init(&c);
    kc_lua_serde_root(L, &c);
    c.initial_wait_intervals = 0;
    c.ratchet = *r;
    assert_int_equal(kc_serde_new(&c, prod, &err), KC_OK);
    c.ratchet = NULL;
    assert_int_equal(kc_serde_new(&c, cons, &err), KC_OK);
}

static void test_serializers_from_c(void **state)
{
    lua_State *L = new_state();
    kc_ratchet *r;
    kc_serde *prod, *cons;
    new_serdes(L, &r, &prod, &cons);

    /* an owner object whose collection we can see */
    lua_newuserdata(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, owner_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    int owner = lua_gettop(L);
    kc_lua_push_serializer(L, prod, KC_KIND_VALUE, false, owner);
    lua_setglobal(L, "ser");
    kc_lua_push_serializer(L, cons, KC_KIND_VALUE, true, 0);
    lua_setglobal(L, "deser");
    kc_lua_push_serializer(L, cons, KC_KIND_KEY, true, -1);   /* relative index of the owner */
    lua_setglobal(L, "kdeser");
    lua_settop(L, 0);
    /* the objects hold their own references */
    kc_serde_free(prod);
    kc_serde_free(cons);

    run(L, "wire = ser:serialize('room.a', 'hello') "
           "m = deser:deserialize('room.a', wire) "
           "state = tostring(m:is_cleartext()) .. ' ' .. tostring(m:is_possibly_decryptable()) "
           "names = tostring(ser) .. ', ' .. tostring(kdeser)");
    assert_string_equal(global_string(L, "state"), "false true");
    assert_string_equal(global_string(L, "names"),
                        "kafkacrypto value serializer, kafkacrypto key deserializer");

    /* the owner lives as long as a serializer that names it */
    run(L, "kdeser = nil collectgarbage() collectgarbage()");
    assert_int_equal(owner_collected, 0);
    run(L, "ser = nil collectgarbage() collectgarbage()");
    assert_int_equal(owner_collected, 1);
    kc_lua_close(L);
    kc_ratchet_close(r);
}

static void test_serde_follows_the_root_rule(void **state)
{
    kc_err err;
    /* the settings' separator is the default rule's */
    assert_int_equal(kc_settings_set(&settings, "tunables.topic_separator", "_", NULL, &err), KC_OK);
    lua_State *L = new_state();
    kc_serde_config c;
    kc_serde_config_init(&c);
    kc_lua_serde_root(L, &c);
    assert_non_null(c.root_fn);
    assert_string_equal(c.topic_separator, "_");
    kc_serde *s;
    assert_int_equal(kc_serde_new(&c, &s, &err), KC_OK);
    const char *root;
    size_t len;
    assert_int_equal(kc_serde_root_of(s, "lab_x.y", &root, &len, &err), KC_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(root, "lab", 3);
    /* a rule installed later applies to the serde made before */
    run(L, "k.set_root_rule(function(t) return 'r' .. #t end)");
    assert_int_equal(kc_serde_root_of(s, "lab_x.y", &root, &len, &err), KC_OK);
    assert_int_equal(len, 2);
    assert_memory_equal(root, "r7", 2);
    run(L, "k.set_root_rule('.')");
    assert_int_equal(kc_serde_root_of(s, "lab_x.y", &root, &len, &err), KC_OK);
    assert_int_equal(len, 5);
    run(L, "k.set_root_rule(nil)");
    assert_int_equal(kc_serde_root_of(s, "lab_x.y", &root, &len, &err), KC_OK);
    assert_int_equal(len, 3);
    /* a root that is no topic-name prefix is refused, naming the topic */
    run(L, "k.set_root_rule(function() return 'a b' end)");
    kc_log_set_level(KC_LOG_CRITICAL);   /* the refusal is logged as a WARNING */
    assert_int_equal(kc_serde_root_of(s, "lab_x.y", &root, &len, &err), KC_ERR_INVALID);
    kc_log_set_level(KC_LOG_WARNING);
    assert_non_null(strstr(err.msg, "lab_x.y"));
    kc_serde_free(s);
    kc_lua_close(L);
    kc_settings_free(&settings);
    kc_settings_init(&settings);
}

static int check_store(lua_State *L)
{
    kc_lua_check_store(L, 1);
    return 0;
}

static void test_store_handle_for_c(void **state)
{
    lua_State *L = new_state();
    char *path = tc_path(tc_dir, "n.config"), code[512];
    kc_log_set_level(KC_LOG_CRITICAL);   /* a new node file draws warnings */
    snprintf(code, sizeof code, "kcs = k.store('%s', 'n1') kcs:store_value('x', 5)", path);
    run(L, code);
    kc_log_set_level(KC_LOG_WARNING);
    lua_getglobal(L, "kcs");
    kc_store *s = kc_lua_check_store(L, -1);
    assert_string_equal(kc_store_node_id(s), "n1");
    kc_value v = kc_value_none();
    kc_err err;
    assert_int_equal(kc_store_load_value(s, NULL, "x", &v, &err), KC_OK);
    assert_int_equal(v.type, KC_VALUE_INT);
    assert_int_equal(v.i, 5);
    kc_value_clear(&v);
    lua_pop(L, 1);
    /* a closed store or another object is refused with a Lua error */
    run(L, "kcs:close()");
    lua_pushcfunction(L, check_store);
    lua_getglobal(L, "kcs");
    assert_int_not_equal(lua_pcall(L, 1, 0, 0), 0);
    assert_non_null(strstr(lua_tostring(L, -1), "store is closed"));
    lua_pop(L, 1);
    free(path);
    kc_lua_close(L);
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
        cmocka_unit_test(test_serializers_from_c),
        cmocka_unit_test(test_serde_follows_the_root_rule),
        cmocka_unit_test(test_store_handle_for_c),
    };
    return cmocka_run_group_tests_name("lua_serde", tests, setup, teardown);
}
