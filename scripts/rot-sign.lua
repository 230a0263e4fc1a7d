-- sign a certificate with a password-derived root of trust (offline flows)
--
-- The offline provisioning tools (generate-chains, controller-provision,
-- chain-server-provision) print unsigned certificates for the root of trust
-- to sign. Upstream leaves the signing to the operator; when the root is a
-- PasswordROT (as simple-provision makes), this tool signs:
--
--   kafkacrypto rot-sign --show-rot          the root's public key and allowlist entry
--   kafkacrypto rot-sign [HEX]               prints the ROT-signed value of the
--                                            unsigned certificate HEX (asked if not given)
--
-- The password comes from --rot-password-file, $KAFKACRYPTO_ROT_PASSWORD or
-- the terminal (hidden). No secret is printed.
local P = require "kafkacrypto.tools.provisioning"
local chain = require "kafkacrypto.chain"

local t = P.tool {
  name = "rot-sign",
  usage = "[OPTIONS] [UNSIGNED-HEX]",
  help = "Signs an unsigned certificate (hex) with the root of trust derived from a password.",
  options = {
    { "--keytype", "N", "1 = Ed25519 (default)" },
    { "--rot-password-file", "FILE", "root of trust password (12+ characters)" },
    { "--show-rot", nil, "print the root's public key and allowlist entry, sign nothing" },
  },
}
local opts, rest = t:parse(arg)
if #rest > 1 then t:usage_error("unexpected argument %s", rest[2]) end
local keytype = opts.keytype and P.ask_keytype(t, opts) or 1
local unsigned
if rest[1] then
  local why
  unsigned, why = P.unhex(rest[1], "UNSIGNED-HEX")
  if not unsigned then t:usage_error("%s", why) end
end
local password = t:password(opts, "rot-password-file", P.DEFAULT_ROT_PASSWORD_ENV,
                            "ROT Password (12+ chars): ", 12)
local ok, rot = pcall(P.password_rot, password, keytype)
password = nil
if not ok then t:fail("%s", rot) end
local entry = P.rot_entry(rot:public_key())
if opts["show-rot"] then
  print("ROT public key: " .. P.hex(rot:public_key()))
  print("ROT allowlist entry: " .. P.hex(entry))
  os.exit(0)
end
if not unsigned then
  local why
  unsigned, why = P.unhex(t:input("Value to sign (hex): "), "value to sign")
  if not unsigned then t:fail("%s", why) end
end
-- only certificates: the signed value must validate against this root
local signed = rot:sign(unsigned)
rot:close()
local info, why = chain.process(chain.build { signed }, { allowlist = { entry } })
if not info then t:fail("not a certificate this root can sign: %s", why) end
print("ROT Signed Value: " .. P.hex(signed))
