-- provision a node from a ROT password and a provisioning password (upstream's simple-provision)
--
-- Asks upstream's questions in upstream's order (spec §9.3); every answer can
-- also come from an option, and passwords from files or the environment
-- (never from the command line), for automation:
--
--   KAFKACRYPTO_ROT_PASSWORD=... KAFKACRYPTO_PASSWORD=... \
--     kafkacrypto simple-provision --node-id n1 --role producer --topics "t1 t2" --yes
--
-- Writes NODE.config, NODE.crypto and NODE.seed (in --dir, default the
-- current directory) exactly as upstream's tool does; the node runs on the
-- Python package too. Unlike upstream, the ratchet seed is never printed.
-- With --pkcs11 URI the node key is in a PKCS#11 token and no NODE.crypto
-- is written (such a node runs only here: README "Keys in an HSM").
local P = require "kafkacrypto.tools.provisioning"
local kafkacrypto = require "kafkacrypto"
local chain = require "kafkacrypto.chain"

local t = P.tool {
  name = "simple-provision",
  help = "Provisions a node whose root of trust and provisioners derive from passwords.\n"
    .. "Questions not answered by options are asked on the terminal (or read from stdin).\n"
    .. "Passwords: --rot-password-file/--password-file (first line), else $" .. P.DEFAULT_ROT_PASSWORD_ENV
    .. "/$" .. P.DEFAULT_PASSWORD_ENV .. ", else asked without echo.",
  options = {
    { "--keytype", "N", "1 = Ed25519 (4 is not supported by this build)" },
    { "--node-id", "ID", "the node ID (files ID.config, ID.crypto, ID.seed)" },
    { "--role", "ROLE", "controller, producer, consumer, consumer-limited, prodcon, prodcon-limited" },
    { "--topics", "\"T1 T2\"", "topics (or root topics) the node will use" },
    { "--all-topics", nil, "allow all topics" },
    { "--pathlen", "N", "maximum path length below the node (-1: no limit; default 1)" },
    { "--rot-password-file", "FILE", "root of trust password (12+ characters)" },
    { "--password-file", "FILE", "provisioning password (6+ characters)" },
    { "--dir", "DIR", "where to write the files (default: the current directory)" },
    { "--yes", nil, "no confirmation; defaults for key type and pathlen" },
    P.PKCS11_OPTIONS[1], P.PKCS11_OPTIONS[2],
  },
}
local opts, rest = t:parse(arg)
if #rest > 0 then t:usage_error("unexpected argument %s", rest[1]) end
P.check_pkcs11(t, opts)

local keytype = P.ask_keytype(t, opts, false)
local rot_password = t:password(opts, "rot-password-file", P.DEFAULT_ROT_PASSWORD_ENV,
                                "ROT Password (12+ chars): ", 12)
local ok, rot = pcall(P.password_rot, rot_password, keytype)
if not ok then t:fail("%s", rot) end
local rot_pk = rot:public_key()
local rot_entry = P.rot_entry(rot_pk)
print("ROT public key: " .. P.hex(rot_pk))
local password = t:password(opts, "password-file", P.DEFAULT_PASSWORD_ENV,
                            "Provisioning Password (6+ chars): ", 6)
local provs = P.password_provisioners(password, rot_pk, keytype)

print("Beginning provisioning process. This should be run on the device being provisioned.")
local node_id = P.ask_node_id(t, opts)
local role = P.ask_role(t, opts, node_id, false)

-- the role's provisioner certificate, signed by the root, must validate
local _, prov_name = P.role_usages(role)
local prov_usages = P.role_usages(prov_name)
local prov = provs[prov_name]
local signed = rot:sign(P.cert { max_age = 0, poison = { { "usages", prov_usages } }, key = prov:public_key() })
if not P.check_chain(chain.build { signed }, rot_entry, prov:public_key()) then
  t:fail("Malformed chain for %s. Did you enter your passwords correctly?", role)
end
rot:close()
for _, s in pairs(provs) do s:close() end

local topics = P.ask_topics(t, opts, role, true)
local pathlen = P.ask_pathlen(t, opts, 1)
local lifetime = 316224000
P.confirm(t, opts, topics, lifetime, pathlen)

local request = {
  dir = opts.dir, node_id = node_id, role = role, rot_password = rot_password,
  provisioning_password = password, topics = topics[1] == "^.*$" and {} or topics,
  pathlen = pathlen, lifetime = lifetime, pkcs11 = opts.pkcs11, pkcs11_create = opts["pkcs11-create"],
}
rot_password, password = nil, nil
local err
ok, err = pcall(kafkacrypto.provision, request)
request = nil
collectgarbage()
if not ok then t:fail("%s", err) end

local kcs = kafkacrypto.store(P.path(opts.dir, node_id, ".config"))
local info, why = chain.process(kcs:load_value("chain0", "chains"), { allowlist = { (kcs:load_value("rot0", "allowlist")) } })
local seed = kcs:file_path("ratchet", ".seed")
kcs:close()
if not info then t:fail("the chain written does not validate: %s", why) end
if role:match("^producer") or role:match("^prodcon") then
  print("There is no escrow key for the initial shared secret: keep a copy of "
        .. seed .. " in a secure location (it is not printed).")
end
print(node_id .. " Public Key: " .. info.key)
P.report(opts.dir, node_id, info)
print("Congratulations! Provisioning is complete.")
