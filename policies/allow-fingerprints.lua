-- policies/allow-fingerprints.lua — only listed keys get keys.
--
-- Producers answer, and controllers re-sign, requests only from the signing
-- keys listed below (on top of what their chains allow). A fingerprint is
-- the lowercase hex SHA-256 of the requester's signing public key, as
-- `kafkacrypto keyinfo NODE` prints it and as refusals log it.
--
-- Copy the file, fill in ALLOWED, and add it to `policies` in
-- kafkacrypto.cfg (or `--policy FILE` for a controller).

local ALLOWED = {
  -- ["<64 hex digits>"] = "who this is",
}

local function check(req)
  local who = req.fingerprint
  if who and ALLOWED[who] then
    return true
  end
  return false, "signing key " .. tostring(who) .. " is not in the fingerprint list"
end

return {
  key_request = check,
  reencrypt = check,
}
