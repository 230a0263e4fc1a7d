-- What the provisioning tools (scripts/*provision*.lua, generate-chains,
-- keyinfo, rot-sign) share: command lines, upstream's prompts, passwords,
-- password-derived signers and writing a node's files as upstream's tools do
-- (spec §9, §10).
--
--   local P = require "kafkacrypto.tools.provisioning"
--   P.read_password(prompt)       hidden input (no echo on a terminal)
--   P.password_rot(pw[, keytype]) -> signer     PasswordROT
--   P.password_provisioners(pw, rot_pk[, keytype])
--                                 -> {producer=, consumer=, prodcon=} signers
--     signer:public_key(), signer:salt(), signer:sign(msg) -> sig..msg,
--     signer:close() (wipes; also on collection). Secret keys stay in C.
--   P.cert{max_age=, poison={{"usages",{..}},{"topics",{..}},{"pathlen",n}}, key=}
--   P.rot_entry(pk)               mp([0, bin(0x90), pk]), a root's allowlist entry
--   P.cert_keys(cert)            -> {key bytes, ...}, max_age | nil, why (unverified)
--   P.role_usages(role)           -> usages, provisioner name | nil, message
--   P.seed_init(path) -> created, index    a node's .seed (kept if it exists)
--   P.seed_escrow(path, kem_pk) -> sealed, index   the seed sealed to an escrow key
--   P.write_node{...}             see below
local core = require "kafkacrypto.core"
local kafkacrypto = require "kafkacrypto"
local chain = require "kafkacrypto.chain"
local cli = require "kafkacrypto.tools.cli"

local P = {
  read_password = core.read_password,
  password_rot = core.password_rot,
  password_provisioners = core.password_provisioners,
  cert = core.cert,
  rot_entry = core.rot_entry,
  cert_keys = core.cert_keys,
  role_usages = core.role_usages,
  seed_init = core.seed_init,
  seed_escrow = core.seed_escrow,
}

P.DEFAULT_ROT_PASSWORD_ENV = "KAFKACRYPTO_ROT_PASSWORD"
P.DEFAULT_PASSWORD_ENV = "KAFKACRYPTO_PASSWORD"

function P.hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- bytes of a hex text (spaces and a 0x prefix tolerated), or nil, why
function P.unhex(text, what)
  local s = (text or ""):gsub("%s", ""):gsub("^0[xX]", "")
  if s == "" then return nil, what .. ": empty" end
  if #s % 2 == 1 then return nil, what .. ": odd number of hex digits (truncated?)" end
  local bytes = core.unhex(s)
  if not bytes then return nil, what .. ": not hex" end
  return bytes
end

-- bytes of a standard base64 text with padding (spaces ignored), or nil, why
function P.unbase64(text, what)
  local s = (text or ""):gsub("%s", "")
  if s == "" then return nil, what .. ": empty" end
  if #s % 4 ~= 0 then return nil, what .. ": truncated base64 (length not a multiple of 4)" end
  local bytes = core.unbase64(s)
  if not bytes then return nil, what .. ": not base64" end
  return bytes
end

---------------------------------------------------------------------------
-- Command lines

local Tool = {}
Tool.__index = Tool

-- P.tool{ name = "simple-provision", usage = "[OPTIONS]", help = "...",
--         options = { {"--node-id", "ID", "the node ID"}, {"--yes", nil, "..."} } }
function P.tool(spec)
  return setmetatable({ spec = spec }, Tool)
end

function Tool:usage_text()
  local lines = { ("usage: kafkacrypto %s %s"):format(self.spec.name, self.spec.usage or "[OPTIONS]") }
  if self.spec.help then lines[#lines + 1] = self.spec.help end
  if #self.spec.options > 0 then lines[#lines + 1] = "options:" end
  for _, o in ipairs(self.spec.options) do
    local left = o[2] and (o[1] .. " " .. o[2]) or o[1]
    lines[#lines + 1] = ("  %-28s %s"):format(left, o[3])
  end
  lines[#lines + 1] = ("  %-28s %s"):format("-h, --help", "this text")
  return table.concat(lines, "\n") .. "\n"
end

-- The tool as kafkacrypto.tools.cli sees it (built once).
function Tool:cli()
  if not self._cli then
    local specs = {}
    for _, o in ipairs(self.spec.options) do specs[o[1]] = { value = o[2] ~= nil } end
    self._cli = cli.tool(self.spec.name, self:usage_text(), specs, true)
  end
  return self._cli
end

-- One error line, the usage, exit 2.
function Tool:usage_error(fmt, ...)
  cli.usage_error(self:cli(), fmt, ...)
end

-- One error line, exit 1 (a failure after the arguments were accepted).
function Tool:fail(fmt, ...)
  cli.fail(self:cli(), fmt:format(...))
end

-- Parses argv: returns {option name without "--" = value or true}, {positional}.
function Tool:parse(argv)
  local parsed, opts, rest = cli.parse(self:cli(), argv), {}, {}
  for k, v in pairs(parsed) do
    if type(k) == "number" then rest[k] = v else opts[k:sub(3)] = v end
  end
  return opts, rest
end

-- A number option within [min, max] (integers only), or the default.
function Tool:int_option(opts, name, default, min, max)
  local v = opts[name]
  if v == nil then return default end
  local n = tonumber(v)
  if not n or n % 1 ~= 0 or n < min or (max and n > max) then
    self:usage_error("--%s %s: expected an integer%s", name, v,
                     max and (" from %d to %d"):format(min, max) or (" >= %d"):format(min))
  end
  return n
end

---------------------------------------------------------------------------
-- Prompts (upstream's wording; answers may also come from a pipe)

-- Reads one line after printing `prompt`; end of input aborts the tool.
function Tool:input(prompt)
  io.stdout:write(prompt)
  io.stdout:flush()
  local line = io.read("*l")
  if line == nil then
    io.stdout:write("\n")
    self:fail("end of input at the prompt %q", prompt)
  end
  return line
end

-- Length in characters (UTF-8), as upstream counts them.
local function chars(s) return #s:gsub("[\128-\191]", "") end

-- A password: from the file given by option `file_opt`, the environment
-- variable `env`, or the terminal (hidden), repeating until long enough.
-- Passwords from files or the environment that are too short are errors.
function Tool:password(opts, file_opt, env, prompt, min)
  local pw, source
  if opts[file_opt] then
    local f, err = io.open(opts[file_opt], "rb")
    if not f then self:usage_error("--%s: %s", file_opt, err) end
    pw = (f:read("*l") or ""):gsub("\r$", "")
    f:close()
    source = "--" .. file_opt
  elseif env and os.getenv(env) then
    pw, source = os.getenv(env), env
  end
  if source then
    if chars(pw) < min then
      self:usage_error("%s: the password needs %d or more characters", source, min)
    end
    return pw
  end
  repeat
    pw = P.read_password(prompt)
    if pw == nil then self:fail("end of input at the prompt %q", prompt) end
  until chars(pw) >= min
  return pw
end

function P.ask_keytype(t, opts, invalid_is_one)
  if opts.keytype then
    local kt = t:int_option(opts, "keytype", 1, 1, 4)
    if kt ~= 1 and kt ~= 4 then t:usage_error("--keytype %d: expected 1 or 4", kt) end
    return kt
  end
  if opts.yes then return 1 end
  while true do
    local kt = t:input("Key type (1 = Ed25519 (default), 4 = Ed25519+SLH-DSA-SHAKE-128f)? ")
    local n = tonumber(kt)
    if kt == "" or (invalid_is_one and not n) then return 1 end
    if n == 1 or n == 4 then return n end
    if invalid_is_one then return 1 end
  end
end

function P.ask_node_id(t, opts)
  local id = opts["node-id"]
  if id then
    if id == "" or id:find("/") then t:usage_error("--node-id %q: expected a non-empty name without '/'", id) end
    return id
  end
  repeat id = t:input("Node ID: ") until #id > 0 and not id:find("/")
  return id
end

local MENU_ROLES = { "controller", "producer", "consumer", "prodcon" }

-- The role: --role, or upstream's menu and "limited" question.
function P.ask_role(t, opts, node_id, limited_default)
  if opts.role then
    local usages, why = P.role_usages(opts.role)
    if not usages then t:usage_error("--role %s", why) end
    return opts.role
  end
  print("Is nodeID = " .. node_id .. " a:")
  print("1. Controller")
  print("2. Producer")
  print("3. Consumer")
  print("4. Consumer and Producer")
  local choice
  repeat choice = tonumber(t:input("? ")) until choice and MENU_ROLES[choice]
  local role = MENU_ROLES[choice]
  if choice == 3 or choice == 4 then
    local q = limited_default and "Limit the consumer to only functioning with controllers (Y/n)? "
      or "Limit the consumer to only functioning with controllers (y/N)? "
    local a = t:input(q):sub(1, 1):lower()
    local limited = limited_default and a ~= "n" or (not limited_default and a == "y")
    if limited then role = role .. "-limited" end
  end
  return role
end

-- Root topics of a list of topic names: each cut at its first ".",
-- duplicates dropped (order kept).
function P.roots_of(words)
  local roots, seen = {}, {}
  for w in words:gmatch("%S+") do
    local r = w:match("^[^.]*")
    if r ~= "" and not seen[r] then
      seen[r] = true
      roots[#roots + 1] = r
    end
  end
  return roots
end

-- Topics: --topics "a b.c" (--all-topics for every topic), or the prompt.
-- all_default: what an empty answer to "allow all topics?" means.
function P.ask_topics(t, opts, what, all_default)
  if opts["all-topics"] then return { "^.*$" } end
  if opts.topics then
    local roots = P.roots_of(opts.topics)
    if #roots == 0 then t:usage_error("--topics: no topic given (use --all-topics to allow all)") end
    return roots
  end
  while true do
    local roots = P.roots_of(t:input("Enter a space separated list of topics this " .. what .. " will use: "))
    if #roots > 0 then return roots end
    local a = t:input(all_default and "Are you sure you want to allow all topics (Y/n)?"
                      or "Are you sure you want to allow all topics (y/N)?"):sub(1, 1):lower()
    if (all_default and a ~= "n") or (not all_default and a == "y") then return { "^.*$" } end
  end
end

-- An integer from --NAME, else the default with --yes, else asked until valid.
local function ask_int(t, opts, name, prompt, default, valid)
  if opts[name] then return t:int_option(opts, name, default, -1) end
  if opts.yes then return default end
  while true do
    local a = t:input(prompt:format(default))
    if a == "" then return default end
    local n = tonumber(a)
    if n and n % 1 == 0 and valid(n) then return n end
  end
end

function P.ask_pathlen(t, opts, default)
  return ask_int(t, opts, "pathlen", "Enter a maximum pathlength (-1 for no limit; default %d):",
                 default, function(n) return n >= -1 end)
end

function P.ask_lifetime(t, opts, default)
  return ask_int(t, opts, "lifetime", "Enter a maximum lifetime in seconds (-1 for no limit; default %d):",
                 default, function(n) return n == -1 or n > 0 end)
end

local function days(seconds)
  local d = seconds / 86400
  return d % 1 == 0 and ("%.1f"):format(d) or tostring(d)
end

-- The summary and "Are you sure ... (yes/no)?"; "no" aborts (exit 1).
function P.confirm(t, opts, topics, lifetime, pathlen)
  print("Root topics will be:")
  print("['" .. table.concat(topics, "', '") .. "']")
  if lifetime and lifetime ~= -1 then
    print("Lifetime of initial crypto configuration will be " .. days(lifetime) .. " days.")
  else
    print("No maximum lifetime")
  end
  if pathlen ~= -1 then print("Maximum pathlength is " .. pathlen) else print("No maximum pathlength") end
  print("")
  if opts.yes then return end
  local a
  repeat
    a = t:input("Are you sure all the information above is correct (yes/no)? "):sub(1, 1):lower()
  until a == "y" or a == "n"
  if a == "n" then t:fail("Aborting per user request.") end
end

-- The poison of a node certificate: usages, topics, pathlen (the tools' order).
function P.node_poison(usages, topics, pathlen)
  local poison = { { "usages", usages } }
  if #topics > 0 then poison[#poison + 1] = { "topics", topics } end
  if pathlen ~= -1 then poison[#poison + 1] = { "pathlen", pathlen } end
  return poison
end

---------------------------------------------------------------------------
-- Node files

function P.path(dir, node_id, suffix)
  return (dir and dir .. "/" or "") .. node_id .. suffix
end

-- The node file an existing config names (option "cryptokey" or "ratchet"),
-- else NODE_ID..suffix beside the config: the file the node will use, so
-- the chain certifies its key (upstream always uses NODE_ID..suffix in the
-- working directory).
function P.node_file(dir, node_id, option, suffix)
  local cfg = P.path(dir, node_id, ".config")
  local f = io.open(cfg, "rb")
  if not f then return P.path(dir, node_id, suffix) end
  f:close()
  local kcs = kafkacrypto.store(cfg, node_id)
  local ok, path = pcall(kcs.file_path, kcs, option, suffix)
  kcs:close()
  if not ok then error(path, 0) end
  return path
end

-- The node's signing public key of `keytype` (its .crypto created or
-- extended as needed) and its index, as upstream's tools pick it. With
-- opts.pkcs11 (a pkcs11: URI) the key is the token's (created there with
-- opts.pkcs11_create) and no .crypto is written.
function P.node_key(dir, node_id, keytype, opts)
  if opts and opts.pkcs11 then
    if keytype ~= 1 then error("--pkcs11: a token key is Ed25519 (key type 1)", 0) end
    return core.pkcs11_key(opts.pkcs11, opts["pkcs11-create"] and true or false), 0
  end
  local keys = core.cryptokey_keys(P.node_file(dir, node_id, "cryptokey", ".crypto"), keytype)
  return keys[1], 0
end

-- The options of a tool that can keep the node key in a PKCS#11 token.
P.PKCS11_OPTIONS = {
  { "--pkcs11", "URI", "keep the node key in a PKCS#11 token: an RFC 7512 pkcs11: URI with module-path= "
    .. "(PIN: pin-source=file:PATH or $KAFKACRYPTO_PKCS11_PIN; never pin-value)" },
  { "--pkcs11-create", nil, "create the key named by --pkcs11 in the token (non-extractable)" },
}

-- Checks the --pkcs11 options of a parsed command line.
function P.check_pkcs11(t, opts)
  if opts["pkcs11-create"] and not opts.pkcs11 then t:usage_error("--pkcs11-create needs --pkcs11 URI") end
  if opts.pkcs11 and not opts.pkcs11:lower():match("^pkcs11:") then
    t:usage_error("--pkcs11: expected a pkcs11: URI")
  end
end

-- P.write_node{ dir=, node_id=, idx=0, chain=, rot=, chainrot=, provisioners=,
--               maxage=, ratchet=bool, producer=bool, chainkeys=bool, pkcs11=URI }
-- Writes NODE.config as upstream's tools do (spec §9.3, §9.4): the chain as
-- chain<idx>, the root as rot<idx> (chainrot<idx>/provisioners<idx> when
-- given), removes the temporary root, cryptokey/ratchet file references
-- (relative to the config's directory, as upstream writes them: the node
-- directory can be moved),
-- crypto.maxage, mgmt_long_keyindex for producers, an empty chainkeys section.
function P.write_node(w)
  local idx = tostring(w.idx or 0)
  local kcs = kafkacrypto.store(P.path(w.dir, w.node_id, ".config"), w.node_id)
  local ok, err = pcall(function()
    local B = kafkacrypto.bytes
    kcs:store_value("chain" .. idx, B(w.chain), "chains")
    if w.pkcs11 then   -- the chain certifies the token's key ('%' interpolates in the file)
      kcs:store_value("cryptokey", (w.pkcs11:gsub("%%", "%%%%")))
    elseif kcs:load_value("cryptokey") == nil then
      kcs:store_value("cryptokey", "file#" .. w.node_id .. ".crypto")
    end
    kcs:store_value("rot" .. idx, B(w.rot), "allowlist")
    if kcs:load_value("temporary", "allowlist") ~= nil then
      print("Found temporary ROT, removing.")
      kcs:store_value("temporary", nil, "allowlist")
    end
    if w.maxage and w.maxage > 0 then kcs:store_value("maxage", w.maxage, "crypto") end
    if w.chainrot and w.chainrot ~= w.rot then
      kcs:store_value("chainrot" .. idx, B(w.chainrot), "allowlist")
    end
    if w.provisioners then kcs:store_value("provisioners" .. idx, B(w.provisioners), "allowlist") end
    if w.ratchet and kcs:load_value("ratchet") == nil then
      kcs:store_value("ratchet", "file#" .. w.node_id .. ".seed")
    end
    if w.producer then kcs:store_value("mgmt_long_keyindex", true) end
    if w.chainkeys then   -- creates the (empty) section, as upstream
      kcs:store_value("test", "test", "chainkeys")
      kcs:store_value("test", nil, "chainkeys")
    end
  end)
  kcs:close()
  if not ok then error(err, 0) end
end

-- Checks a chain against one root entry: it must validate (no topic/usage
-- check) and end in `key`. Returns the chain's info or nil, why.
function P.check_chain(c, rot, key)
  local info, why = chain.process(c, { allowlist = { rot } })
  if not info then return nil, why end
  if info.key ~= P.hex(key) then
    return nil, ("the chain certifies key %s, expected %s"):format(
      info.key and info.key:sub(1, 16) or "(a list)", P.hex(key):sub(1, 16))
  end
  return info
end

---------------------------------------------------------------------------
-- Pre-configured roots (what upstream pastes into its tool scripts)

-- A setup file: "name : value" lines (";" or "#" starts a comment), hex values:
--   rot       the root of trust's public key                     (required)
--   chainrot  the root that signed the provisioner certificates  (default: rot)
--   producer, consumer, prodcon
--             the ROT-signed provisioner certificates (from generate-chains
--             and the root's signature, e.g. rot-sign)
--   escrow    an escrow public key: print the seed sealed to it (default: none)
-- Returns {rot=bytes, chainrot=, producer=, consumer=, prodcon=, escrow=} or
-- nil, why.
function P.read_setup(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local setup, n = {}, 0
  local known = { rot = true, chainrot = true, producer = true, consumer = true, prodcon = true, escrow = true }
  for line in f:lines() do
    n = n + 1
    line = line:gsub("\r$", "")
    if not line:match("^%s*$") and not line:match("^%s*[;#]") then
      local name, value = line:match("^%s*([%w_-]+)%s*:%s*(.-)%s*$")
      if not name then f:close() return nil, ("%s:%d: expected 'name : hex value'"):format(path, n) end
      if not known[name] then
        f:close()
        return nil, ("%s:%d: unknown name '%s' (expected rot, chainrot, producer, consumer, prodcon or escrow)"):format(path, n, name)
      end
      local bytes, why = P.unhex(value, ("%s:%d: %s"):format(path, n, name))
      if not bytes then f:close() return nil, why end
      setup[name] = bytes
    end
  end
  f:close()
  if not setup.rot then return nil, path .. ": no 'rot' (the root of trust's public key)" end
  for _, k in ipairs { "rot", "chainrot" } do
    if setup[k] and not chain.fingerprint(setup[k]) then
      return nil, ("%s: %s: not an Ed25519 public key (32 bytes)"):format(path, k)
    end
  end
  setup.chainrot = setup.chainrot or setup.rot
  return setup
end

-- The root of trust's public key: --rot HEX, the setup file's, or asked.
function P.ask_rot(t, opts)
  if opts.setup then
    local setup, why = P.read_setup(opts.setup)
    if not setup then t:usage_error("--setup: %s", why) end
    return setup.rot, setup
  end
  local rot, why
  if opts.rot then
    rot, why = P.unhex(opts.rot, "--rot")
    if not rot or not chain.fingerprint(rot) then t:usage_error("%s", why or "--rot: not an Ed25519 public key") end
    return rot
  end
  rot, why = P.unhex(t:input("ROT public key (hex): "), "ROT public key")
  if not rot or not chain.fingerprint(rot) then t:fail("%s", why or "ROT public key: not an Ed25519 public key") end
  return rot
end

-- controller-provision and chain-server-provision (spec §9.4): the node's
-- certificate is printed for the offline root to sign; the signed value is
-- read back, checked against the root, and the node files written.
-- kind: {name=, title=, role_key=, usages=, pathlen=, lifetime=, maxage=bool, chainkeys=bool}
function P.offline_provision(t, kind)
  local opts, rest = t:parse(arg)
  if #rest > 0 then t:usage_error("unexpected argument %s", rest[1]) end
  local keytype = P.ask_keytype(t, opts, true)
  local rot = P.ask_rot(t, opts)
  local rot_entry = P.rot_entry(rot)
  local signed_given
  if opts["signed-file"] then
    local f, err = io.open(opts["signed-file"], "rb")
    if not f then t:usage_error("--signed-file: %s", err) end
    signed_given = f:read("*a")
    f:close()
  end
  print(("Beginning provisioning process. This should be run on the %s device being provisioned."):format(kind.title))
  local node_id = P.ask_node_id(t, opts)
  local topics = P.ask_topics(t, opts, kind.role_key, false)
  local pathlen = P.ask_pathlen(t, opts, kind.pathlen)
  local lifetime = P.ask_lifetime(t, opts, kind.lifetime)
  P.confirm(t, opts, topics, lifetime, pathlen)
  if keytype ~= 1 then t:fail("key type %d is not supported by this classical build; use key type 1", keytype) end

  local ok, pk = pcall(P.node_key, opts.dir, node_id, keytype)
  if not ok then t:fail("%s", pk) end
  local max_age = lifetime ~= -1 and os.time() + lifetime or 0
  local cert = P.cert { max_age = max_age, key = pk, poison = P.node_poison(kind.usages, topics, pathlen) }
  print(("New %s ( %s ): %s"):format(kind.name, P.hex(pk), P.hex(cert)))
  local signed, why = P.unhex(signed_given or t:input("ROT Signed Value (hex):"), "ROT Signed Value")
  if not signed then t:fail("%s", why) end
  local c = chain.build { signed }
  local info
  info, why = P.check_chain(c, rot_entry, pk)
  if not info then t:fail("Malformed ROT Signed Value: %s", why) end
  print(node_id .. " public key: " .. P.hex(pk))
  ok, why = pcall(P.write_node, { dir = opts.dir, node_id = node_id, chain = c, rot = rot_entry,
                                  maxage = kind.maxage and lifetime or nil, chainkeys = kind.chainkeys })
  if not ok then t:fail("%s", why) end
  P.report(opts.dir, node_id, info)
  print(("Congratulations! %s provisioning is complete."):format(kind.name))
end

P.OFFLINE_OPTIONS = {
  { "--keytype", "N", "1 = Ed25519 (default)" },
  { "--rot", "HEX", "the root of trust's public key (asked if neither this nor --setup)" },
  { "--setup", "FILE", "a provision setup file (its 'rot' is used; see provision --help)" },
  { "--node-id", "ID", "the node ID (files ID.config, ID.crypto)" },
  { "--topics", "\"T1 T2\"", "topics (or root topics) it will serve" },
  { "--all-topics", nil, "all topics" },
  { "--pathlen", "N", "maximum path length below it (-1: no limit)" },
  { "--lifetime", "SECONDS", "certificate lifetime (-1: never expires)" },
  { "--signed-file", "FILE", "read the ROT Signed Value (hex) from FILE instead of asking" },
  { "--dir", "DIR", "where to write the files (default: the current directory)" },
  { "--yes", nil, "no confirmation; defaults for key type, pathlen, lifetime" },
}

-- Prints the node's files and its chain in words.
function P.report(dir, node_id, info)
  print(("Node %s: configuration in %s"):format(node_id, P.path(dir, node_id, ".config")))
  if info then
    print(("  chain: root %s, usages %s, topics %s, pathlen %s, expires %s"):format(
      info.rot:sub(1, 16), table.concat(info.usages or {}, ","), table.concat(info.topics or {}, ","),
      info.pathlen or "unlimited", info.expiry == 0 and "never" or os.date("!%Y-%m-%dT%H:%M:%SZ", info.expiry)))
  end
end

return P
