/* kc_lua_crypto_args.h — argument checks shared by the files of the
 * `kafkacrypto.crypto` module (kc_lua_crypto.c, kc_lua_msgpack.c): errors
 * name the function and the argument ("crypto.pack: argument 1 (value):
 * expected ..., got a key handle"). */
#ifndef KC_LUA_CRYPTO_ARGS_H
#define KC_LUA_CRYPTO_ARGS_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

/* A handle's description ("a key handle"), else the Lua type name. */
const char *kc_lua_crypto_type_of(lua_State *L, int idx);
/* Raises "crypto.<fn>: argument <idx> (<arg>): expected <expected>, got ...". */
int kc_lua_crypto_arg_error(lua_State *L, const char *fn, int idx, const char *arg,
                            const char *expected);
/* A Lua string or a kafkacrypto.bytes wrapper (NULL: neither). */
const char *kc_lua_crypto_test_bytes(lua_State *L, int idx, size_t *n);
/* The same, or an argument error. */
const uint8_t *kc_lua_crypto_check_bytes(lua_State *L, int idx, const char *fn, const char *arg,
                                         size_t *n);

/* Adds pack, unpack, bin and null (kc_lua_msgpack.c) to the table on top. */
void kc_lua_msgpack_register(lua_State *L);

#endif
