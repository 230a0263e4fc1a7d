-- provision a chain server signed by an offline root of trust
--
-- As controller-provision, for a chain server: usages key-encrypt and
-- key-encrypt-subscribe, default pathlen 2, and an empty chainkeys section
-- (the certificates it will re-issue, spec §8.2, §9.4). Like upstream's
-- tool it does not set crypto.maxage.
local P = require "kafkacrypto.tools.provisioning"

P.offline_provision(P.tool {
  name = "chain-server-provision",
  help = "Provisions a chain server: its certificate is signed offline by the root of trust.",
  options = P.OFFLINE_OPTIONS,
}, {
  name = "Chain Server", title = "chain server", role_key = "chain-server",
  usages = { "key-encrypt", "key-encrypt-subscribe" }, pathlen = 2, lifetime = 31622400,
  chainkeys = true,
})
