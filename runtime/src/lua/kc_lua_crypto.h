/* kc_lua_crypto.h — cryptographic primitives for Lua with opaque handles
 * (the `kafkacrypto.crypto` module; lua/kafkacrypto/crypto.lua documents
 * the Lua API).
 *
 * Lua composes operations; C keeps every secret. Secrets live behind
 * handles (full userdata whose secret bytes are in kc_secmem's locked pool,
 * wiped by :wipe() or the garbage collector); no function returns them and
 * a handle's tostring shows only public facts. Kinds of handle:
 *   signing key   one of a node's signing keys (sign, public key)
 *   x25519        an ephemeral X25519 key pair (public key, shared key)
 *   key           a 32-byte symmetric key (secretbox, keyed BLAKE2b, derive)
 *   keyset        producer keys: (key index, secret) pairs; indices visible
 * (LuaJIT's FFI can read any memory of the process: a sandbox that runs
 * untrusted code must not offer it.) */
#ifndef KC_LUA_CRYPTO_H
#define KC_LUA_CRYPTO_H

#include <lua.h>

#include "kc_cryptokey.h"
#include "kc_exchange.h"

/* kc_lua_open_crypto (kc_lua.h) adds `crypto` to the core module table. */

/* Pushes the module table (creating the metatables it needs): for states
 * without the core module, such as a sandbox. */
void kc_lua_push_crypto(lua_State *L);

/* Pushes a handle to signing key idx of ck. Borrowed: ck must outlive the
 * state (the management loop's sandbox is closed before the node's key). */
void kc_lua_push_signing_key(lua_State *L, kc_cryptokey *ck, size_t idx);
/* Pushes a keyset handle; it takes the pairs over (keys is emptied). */
void kc_lua_push_keyset(lua_State *L, kc_exchange_keys *keys);
/* A key index as Lua sees it: a number, or a string of its bytes. */
void kc_lua_push_keyidx(lua_State *L, const kc_keyidx *ki);
/* The pairs of the keyset handle at idx, or NULL if it is not one. */
kc_exchange_keys *kc_lua_test_keyset(lua_State *L, int idx);

#endif
