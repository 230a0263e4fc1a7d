-- policies/default.lua — upstream's behaviour: the chain's rights decide.
--
-- The core has already verified the requester's chain (signatures, expiry,
-- topics, usages, pathlen, allowlist and denylist) before any hook runs, so
-- allowing everything here means "whatever a valid chain allows". On a chain
-- server, the grant proposed by the core (the rights of the node's current
-- certificate, the configured lifetime) is issued unchanged.
--
-- Copy this file to start a policy of your own; see policies/README.md.

return {
  -- producer: may this requester get our keys for req.root?
  key_request = function(req) return true end,
  -- consumer: may we use keys this producer sent?
  key_reply = function(req) return true end,
  -- controller: may we re-sign this subscription request?
  reencrypt = function(req) return true end,
  -- chain server: which rights and lifetime to issue
  issue_chain = function(req) return req.grant end,
}
