-- provision a node with a configured root and pre-signed provisioners (upstream's provision)
--
-- Upstream's tools/provision.py has the root of trust, the ROT-signed
-- provisioner certificates and an optional escrow key pasted into the
-- script. Here they come from a setup file (--setup FILE):
--
--   ; provision.setup: hex values
--   rot : <root of trust public key>
--   chainrot : <root that signed the provisioners>     (optional, default rot)
--   producer : <ROT-signed producer provisioner cert>  (generate-chains + the root's signature)
--   consumer : <ROT-signed consumer provisioner cert>
--   prodcon : <ROT-signed prodcon provisioner cert>
--   escrow : <escrow public key>                       (optional)
--
-- Questions and defaults are upstream's (consumers limited by default, all
-- topics not allowed by default, lifetime 1 week, 1 year for controllers).
-- With an escrow key the seed is printed sealed to it; without one it is
-- not printed (upstream prints it in the clear). With --pkcs11 URI the
-- node key is in a PKCS#11 token (README "Keys in an HSM").
local P = require "kafkacrypto.tools.provisioning"
local chain = require "kafkacrypto.chain"

local t = P.tool {
  name = "provision",
  usage = "--setup FILE [OPTIONS]",
  help = "Provisions a node with the provisioner certificates of a setup file and a provisioning password.\n"
    .. "Password: --password-file (first line), else $" .. P.DEFAULT_PASSWORD_ENV .. ", else asked without echo.",
  options = {
    { "--setup", "FILE", "the root of trust and signed provisioner certificates (required)" },
    { "--keytype", "N", "1 = Ed25519 (default)" },
    { "--node-id", "ID", "the node ID (files ID.config, ID.crypto, ID.seed)" },
    { "--role", "ROLE", "controller, producer, consumer, consumer-limited, prodcon, prodcon-limited" },
    { "--topics", "\"T1 T2\"", "topics (or root topics) the node will use" },
    { "--all-topics", nil, "allow all topics" },
    { "--pathlen", "N", "maximum path length below the node (-1: no limit; default 1)" },
    { "--password-file", "FILE", "provisioning password (12+ characters)" },
    { "--dir", "DIR", "where to write the files (default: the current directory)" },
    { "--yes", nil, "no confirmation; defaults for key type and pathlen" },
    P.PKCS11_OPTIONS[1], P.PKCS11_OPTIONS[2],
  },
}
local opts, rest = t:parse(arg)
if #rest > 0 then t:usage_error("unexpected argument %s", rest[1]) end
P.check_pkcs11(t, opts)
if not opts.setup then t:usage_error("--setup FILE is required") end
local setup, why = P.read_setup(opts.setup)
if not setup then t:usage_error("--setup: %s", why) end

local keytype = P.ask_keytype(t, opts, true)
if keytype ~= 1 then t:fail("key type %d is not supported by this classical build; use key type 1", keytype) end
print("Beginning provisioning process. This should be run on the device being provisioned.")
local node_id = P.ask_node_id(t, opts)
local role = P.ask_role(t, opts, node_id, true)
local lifetime = role == "controller" and 31622400 or 604800
local usages, prov_name = P.role_usages(role)
if not setup[prov_name] then
  t:fail("A trusted chain for %s is missing: add the ROT-signed %s provisioner certificate ('%s : HEX') to %s "
         .. "(see generate-chains).", role, prov_name, prov_name, opts.setup)
end
local password = t:password(opts, "password-file", P.DEFAULT_PASSWORD_ENV,
                            "Provisioning Password (12+ chars): ", 12)
local provs = P.password_provisioners(password, setup.rot, keytype)
password = nil

-- controllers must be signed by the root itself, other nodes by the chain root
local rot_entry, chainrot_entry = P.rot_entry(setup.rot), P.rot_entry(setup.chainrot)
local check_entry = role == "controller" and rot_entry or chainrot_entry
local prov_chain = chain.build { setup[prov_name] }
if not P.check_chain(prov_chain, check_entry, provs[prov_name]:public_key()) then
  t:fail("Malformed chain for %s. Did you enter your password correctly and have the chain rot set appropriately?", role)
end
local topics = P.ask_topics(t, opts, role, false)
local pathlen = P.ask_pathlen(t, opts, 1)
P.confirm(t, opts, topics, lifetime, pathlen)

-- the key first: a token that is missing or refuses the PIN changes nothing on disk
local ok, pk = pcall(P.node_key, opts.dir, node_id, keytype, opts)
if not ok then t:fail("%s", pk) end
local seed = P.node_file(opts.dir, node_id, "ratchet", ".seed")
local err
ok, err = pcall(function()
  local _, index = P.seed_init(seed)
  if setup.escrow then
    local sealed = P.seed_escrow(seed, setup.escrow)
    print("Escrow key used for initial shared secret. If you lose connectivity for an extended period of time, "
          .. "you will need the following (and the private key for the escrow public key) to access data")
    print("Escrow public key: " .. P.hex(setup.escrow))
    print(("%s escrow value: %s (key index %d)"):format(node_id, P.hex(sealed), index))
  else
    print("No escrow key for initial shared secret: keep a copy of " .. seed
          .. " in a secure location (it is not printed).")
  end
end)
if not ok then t:fail("%s", err) end
local item = provs[prov_name]:sign(P.cert { max_age = os.time() + lifetime, key = pk,
                                            poison = P.node_poison(usages, topics, pathlen) })
for _, s in pairs(provs) do s:close() end
local node_chain = chain.build { setup[prov_name], item }
print(node_id .. " public key: " .. P.hex(pk))
ok, err = pcall(P.write_node, {
  dir = opts.dir, node_id = node_id, chain = node_chain, rot = rot_entry,
  chainrot = check_entry ~= rot_entry and check_entry or nil,
  provisioners = role == "controller" and chainrot_entry ~= rot_entry and chainrot_entry or nil,
  maxage = lifetime, ratchet = true, producer = role:match("^prod") ~= nil, pkcs11 = opts.pkcs11,
})
if not ok then t:fail("%s", err) end
local info = chain.process(node_chain, { allowlist = { check_entry } })
P.report(opts.dir, node_id, info)
print("Congratulations! Provisioning is complete.")
