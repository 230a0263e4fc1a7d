-- Chains and the trust decision (spec §6), as nodes, controllers and chain
-- servers apply them. Nothing here touches a secret key.
--
--   local chain = require "kafkacrypto.chain"
--   local info, why = chain.process(chain_bytes, { topic = "example001",
--       usage = "key-encrypt", allowlist = { rot_entry }, denylist = {} })
--   if info then print(info.fingerprint, table.concat(info.usages, ",")) end
--
-- chain.process(chain, options) -> info | nil, message, report
--   Upstream's process_chain. options (all optional):
--     topic, usage   root topic / usage to check (nil: no check)
--     allowlist      { entry, ... }: mp([max_age, bin(poison), key]) byte
--                    strings, the roots of trust and trusted keys, in order;
--                    nil is upstream's None (nothing is trusted)
--     denylist       { entry, ... } or nil
--     checktime      Unix time for the expiry check (default: now)
--   On failure: message says which chain item failed and why (for the root
--   that got furthest); report has one line per root of trust tried.
--   info (see runtime/src/kc_lua_chain.h):
--     key, keys, key_text, fingerprint, rot, rot_fingerprint, rot_index,
--     signers, topics, usages, pathlen, expiry, self_signed, extra,
--     n_extra, printable
--   topics/usages are the effective lists (nil: unrestricted by any
--   certificate, which passes no topic/usage check); pathlen nil is
--   unlimited; expiry 0 never expires.
--
-- chain.fingerprint(key_bytes) -> hex | nil, message
--   The fingerprint of a signing public key: hex(SHA-256(bytes(key))), where
--   bytes(key) is upstream's bytes() form (the 32 raw bytes of an Ed25519
--   key). Keys are named by this everywhere (info.fingerprint, keyinfo,
--   policies).
-- chain.describe(chain) -> text | nil, message   each item, unverified
-- chain.items(chain) -> { item, ... } | nil, message   the signed items
-- chain.build({ item, ... }) -> chain               mp([bin(item), ...])

local core = require "kafkacrypto.core"

return {
  process = core.chain_process,
  describe = core.chain_describe,
  fingerprint = core.chain_fingerprint,
  items = core.chain_items,
  build = core.chain_build,
}
