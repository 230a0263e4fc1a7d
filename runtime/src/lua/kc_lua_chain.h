/* kc_lua_chain.h — the Lua module `kafkacrypto.chain`: the trust decision
 * of kc_chain.h for scripts (tools, controller, chain server, policies).
 * lua/kafkacrypto/chain.lua documents the Lua API. */
#ifndef KC_LUA_CHAIN_H
#define KC_LUA_CHAIN_H

#include <lua.h>

#include "kc_chain.h"

/* Adds chain_process, chain_describe, chain_fingerprint, chain_items,
 * chain_build to the core table on top of the stack. */
void kc_lua_open_chain(lua_State *L);

/* Pushes a table describing a verified chain (never secret material):
 *   key          hex of the leaf key's bytes() form (nil if the leaf is a list)
 *   keys         { hex, ... } every leaf key (denylisted list members dropped)
 *   key_text     upstream's str() of the leaf key, e.g. "(Ed25519, ab..)"
 *   fingerprint  hex(SHA-256(bytes(leaf key))) (nil if the leaf is a list)
 *   rot          hex of the root of trust's key; rot_fingerprint likewise
 *   rot_index    1-based position of that root in the allowlist (nil when
 *                accepted as a self-signed denylist pair)
 *   signers      { hex, ... } signing keys met, root first
 *   topics, usages  { string, ... } the effective (accumulated) lists, or
 *                nil when no certificate restricts them (such a chain
 *                passes no topic/usage check, spec §6.6)
 *   pathlen      remaining pathlen, nil = unlimited
 *   expiry       accumulated max_age (Unix time), 0 = never expires
 *   self_signed  true for a self-signed denylist pair (§6.9)
 *   extra        mp([leaf elements 3..]) as bytes; n_extra their count
 *   printable    the readable accumulated steps, as upstream logs them */
void kc_lua_push_chain_result(lua_State *L, const kc_chain_result *r);

#endif
