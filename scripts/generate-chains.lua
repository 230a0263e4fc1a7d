-- print provisioner certificates for an offline root of trust to sign
--
-- From the root of trust's public key and a provisioning password, derives
-- the producer, consumer and prodcon provisioner keys and prints for each:
-- the unsigned provisioner certificate (usages, topics ^.*$, pathlen 2) for
-- the root to sign, the provisioner's SECRET key (as upstream's tool does,
-- on purpose: keep this output private; --no-secret-keys leaves it out),
-- and a self-signed revocation (spec §6.9).
--
-- Sign each certificate with the root (e.g. `kafkacrypto rot-sign HEX` for
-- a password root) and put the signed values in a provision setup file
-- (see `kafkacrypto provision --help`).
local P = require "kafkacrypto.tools.provisioning"
local chain = require "kafkacrypto.chain"

local t = P.tool {
  name = "generate-chains",
  help = "Prints the provisioner certificates a root of trust must sign for `kafkacrypto provision`.\n"
    .. "Password: --password-file (first line), else $" .. P.DEFAULT_PASSWORD_ENV .. ", else asked without echo.",
  options = {
    { "--keytype", "N", "1 = Ed25519 (default)" },
    { "--rot", "HEX", "the root of trust's public key (asked if not given)" },
    { "--password-file", "FILE", "provisioning password (12+ characters)" },
    { "--no-secret-keys", nil, "do not print the provisioner secret keys" },
  },
}
local opts, rest = t:parse(arg)
if #rest > 0 then t:usage_error("unexpected argument %s", rest[1]) end
local keytype = P.ask_keytype(t, opts, true)
local rot, why
if opts.rot then
  rot, why = P.unhex(opts.rot, "--rot")
  if not rot or not chain.fingerprint(rot) then t:usage_error("%s", why or "--rot: not an Ed25519 public key") end
else
  rot, why = P.unhex(t:input("ROT public key (hex): "), "ROT public key")
  if not rot or not chain.fingerprint(rot) then t:fail("%s", why or "ROT public key: not an Ed25519 public key") end
end
local password = t:password(opts, "password-file", P.DEFAULT_PASSWORD_ENV,
                            "Provisioning Password (12+ chars): ", 12)
local ok, provs = pcall(P.password_provisioners, password, rot, keytype)
password = nil
if not ok then t:fail("%s", provs) end

for _, name in ipairs { "producer", "consumer", "prodcon" } do
  local prov = provs[name]
  local pk = prov:public_key()
  local usages = P.role_usages(name)
  local tosign = P.cert { max_age = 0, key = pk,
                          poison = { { "usages", usages }, { "topics", { "^.*$" } }, { "pathlen", 2 } } }
  local revoke_core = prov:sign(P.cert { max_age = 0, key = pk,
                                         poison = { { "usages", { "key-denylist" } }, { "pathlen", 0 } } })
  local revoke = chain.build { P.cert { max_age = 0, key = pk,
                                        poison = { { "usages", { "key-denylist" } }, { "pathlen", 1 } } },
                               revoke_core }
  local secret = opts["no-secret-keys"] and "" or (" (sk: " .. prov:secret_hex() .. ")")
  print(("%s ( %s ): %s%s"):format(name, P.hex(pk), P.hex(tosign), secret))
  print("                Self-Signed Revocation: " .. P.hex(revoke))
  prov:close()
end
print("Once signed, a provisioner's chain is the msgpack list of its one signed value;"
      .. " `kafkacrypto provision` builds it from the signed values in its setup file.")
