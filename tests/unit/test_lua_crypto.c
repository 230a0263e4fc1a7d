/* kafkacrypto.crypto from C's side: runs tests/lua/test_crypto.lua in a
 * plain kc_lua state, so that the ASan/UBSan build checks the handles'
 * memory handling (allocation, wiping, garbage collection) too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>

#include "kc_lua.h"
#include "kc_test.h"

static void test_crypto_lua_suite(void **state)
{
    const char *src = getenv("KC_SOURCE_DIR");
    kc_lua_options o = {NULL, src ? src : ".", NULL, NULL};
    lua_State *L;
    kc_err err;
    assert_int_equal(kc_lua_new(&L, &o, &err), KC_OK);
    lua_pushstring(L, src ? src : ".");
    lua_setglobal(L, "SRC");
    const char *driver =
        "arg = {}\n"
        "package.path = SRC .. '/tests/lua/?.lua;' .. package.path\n"
        "local lu = require 'luaunit'\n"
        "dofile(SRC .. '/tests/lua/test_crypto.lua')\n"
        "local runner = lu.LuaUnit.new()\n"
        "runner:setOutputType('text')\n"
        "runner:runSuite()\n"
        "return runner.result.notSuccessCount, runner.result.successCount\n";
    if (luaL_loadstring(L, driver) != 0 || lua_pcall(L, 0, 2, 0) != 0)
        fail_msg("%s", lua_tostring(L, -1));
    assert_int_equal(lua_tointeger(L, -2), 0);
    assert_true(lua_tointeger(L, -1) >= 8);
    lua_settop(L, 0);
    kc_lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_crypto_lua_suite)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
