-- provision a controller signed by an offline root of trust
--
-- Prints "New Controller ( PK ): HEX", the unsigned certificate (usages
-- key-encrypt-request) for the root of trust to sign, reads back the "ROT
-- Signed Value (hex)", checks it against the root and that it certifies
-- this controller's key, and writes ID.config and ID.crypto as upstream's
-- tool does (spec §9.4). The root's public key comes from --rot, --setup
-- or a prompt (upstream pastes it into the script).
local P = require "kafkacrypto.tools.provisioning"

P.offline_provision(P.tool {
  name = "controller-provision",
  help = "Provisions a controller: its certificate is signed offline by the root of trust.",
  options = P.OFFLINE_OPTIONS,
}, {
  name = "Controller", title = "controller", role_key = "controller",
  usages = { "key-encrypt-request" }, pathlen = 1, lifetime = 31622400, maxage = true,
})
