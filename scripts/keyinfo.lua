-- show a node's keys, chains, allowlist and denylist in words
--
--   kafkacrypto keyinfo NODE.config
--       the node's signing public keys (from its .crypto or its token), each chain of
--       [NODE-chains] validated now against the node's allowlist and
--       denylist with its effective topics, usages, pathlen and expiry, and
--       the allowlist and denylist entries. Nothing secret is printed.
--   kafkacrypto keyinfo --rot BASE64 --chain BASE64
--       upstream's mode: one root of trust entry and one chain (asked for
--       when not given), validated and walked item by item.
local P = require "kafkacrypto.tools.provisioning"
local kafkacrypto = require "kafkacrypto"
local chain = require "kafkacrypto.chain"

local t = P.tool {
  name = "keyinfo",
  usage = "NODE.config | --rot BASE64 --chain BASE64",
  help = "Shows a node's keys and chains in words, or checks one chain against one root of trust.",
  options = {
    { "--rot", "BASE64", "a root of trust entry (upstream's base64 of mp([0, poison, key]))" },
    { "--chain", "BASE64", "a chain to check against it" },
  },
}
local opts, rest = t:parse(arg)
if #rest > 1 then t:usage_error("unexpected argument %s", rest[2]) end
if #rest == 1 and (opts.rot or opts.chain) then t:usage_error("give NODE.config or --rot/--chain, not both") end

local function when(ts)
  if ts == 0 then return "never" end
  local s = os.date("!%Y-%m-%dT%H:%M:%SZ", ts)
  local left = ts - os.time()
  if left < 0 then return s .. " (EXPIRED)" end
  return ("%s (in %d days)"):format(s, math.floor(left / 86400))
end

local function list(l, none)
  if l == nil then return none end
  if #l == 1 and l[1] == "^.*$" then return "all (^.*$)" end
  return table.concat(l, ", ")
end

-- A verified chain in words; `names` maps an allowlist position to its name.
local function show_valid(info, indent, names)
  local function line(k, v) print(("%s%-9s %s"):format(indent, k .. ":", v)) end
  local rot = info.rot and (info.rot .. (names and info.rot_index and (" (allowlist " .. names[info.rot_index] .. ")") or ""))
  line("root", info.self_signed and "none: a self-signed revocation" or rot)
  line("key", info.key_text or table.concat(info.keys, " "))
  if info.fingerprint then line("fpr", info.fingerprint) end
  line("usages", list(info.usages, "none (this chain passes no usage check)"))
  line("topics", list(info.topics, "none (this chain passes no topic check)"))
  line("pathlen", info.pathlen and tostring(info.pathlen) or "unlimited")
  line("expires", when(info.expiry))
  local direct = false
  for _, u in ipairs(info.usages or {}) do direct = direct or u == "key-encrypt-request" or u == "^.*$" end
  line("direct", direct and "yes: may send key requests to producers directly"
                        or "no: key requests go through a controller")
end

local function show_invalid(c, why, indent)
  print(indent .. "INVALID: " .. why)
  print(indent .. "items (unverified): " .. (chain.describe(c) or "?"))
end

local function entry_line(name, e)
  local keys = P.cert_keys(e)
  local fpr = keys and keys[1] and chain.fingerprint(keys[1])
  print(("  %s: %s%s"):format(name, chain.describe(chain.build { e }),
                              fpr and ("\n    fpr " .. fpr) or ""))
end

if #rest == 0 then
  -- upstream's mode
  local function get(opt, prompt)
    local b, why = P.unbase64(opts[opt] or t:input(prompt), opts[opt] and ("--" .. opt) or prompt)
    if not b then
      if opts[opt] then t:usage_error("%s", why) else t:fail("%s", why) end
    end
    return b
  end
  local rot = get("rot", "ROT entry (base64): ")
  local c = get("chain", "Chain (base64): ")
  if not P.cert_keys(rot) then t:fail("the root of trust entry is not a certificate") end
  local items, why = chain.items(c)
  if not items then t:fail("chain: %s", why) end
  print("Items (root first, unverified):")
  print("  " .. chain.describe(chain.build { rot }))
  for _, it in ipairs(items) do print("  " .. chain.describe(chain.build { it })) end
  local info
  info, why = chain.process(c, { allowlist = { rot } })
  if info then
    print("Valid against this root of trust:")
    show_valid(info, "  ")
  else
    print("INVALID against this root of trust: " .. why)
    os.exit(1)
  end
  os.exit(0)
end

local path = rest[1]
-- (no io.open check first: opening a FIFO for reading would wait for ever)
local ok, kcs = pcall(kafkacrypto.store, path)
if not ok and tostring(kcs):find("No such file", 1, true) then t:usage_error("%s: no such file", path) end
if not ok then t:fail("%s", kcs) end
local node_id = kcs:node_id()
print(("Node %s (%s)"):format(node_id, path))

local function section(name)
  local values, names = kcs:load_section(name, false)
  local entries = {}
  for i, k in ipairs(names or {}) do entries[i] = values[k] end
  return entries, names or {}
end
local allow, allow_names = section("allowlist")
local deny, deny_names = section("denylist")
local chains, chain_names = section("chains")

-- a token's URI, or a .crypto relative to the config's directory, as the node finds it
local keys, crypto
local ref = kcs:load_value("cryptokey")
if type(ref) == "string" and ref:lower():match("^pkcs11:") then
  ok, crypto = true, ref
else
  ok, crypto = pcall(kcs.file_path, kcs, "cryptokey", ".crypto")
end
if ok then
  local quiet = kafkacrypto.log.capture()   -- the file's notes on key types it cannot use
  ok, keys = pcall(require("kafkacrypto.core").cryptokey_keys, crypto)
  quiet:stop()
else
  keys, crypto = crypto, "cryptokey option"
end
print(("Signing keys (%s):"):format((crypto:gsub("([?&])[Pp][Ii][Nn]%-[Vv][Aa][Ll][Uu][Ee]=[^&]*&?", "%1"))))
local key_index = {}
if ok then
  for i, k in ipairs(keys) do
    key_index[P.hex(k)] = i - 1
    print(("  key %d: (Ed25519, %s)\n    fpr %s"):format(i - 1, P.hex(k), chain.fingerprint(k)))
  end
  if #keys == 0 then print("  none") end
else
  print("  cannot read: " .. tostring(keys))
end

print("Chains:")
if #chains == 0 then print("  none: the node is not provisioned (it can only use the temporary root, if trusted)") end
for i, c in ipairs(chains) do
  if type(c) ~= "string" then
    print(("  %s: INVALID: not a base64# value"):format(chain_names[i]))
  else
    local info, why = chain.process(c, { allowlist = allow, denylist = deny })
    if info then
      local k = info.key and key_index[info.key]
      print(("  %s: valid, %s"):format(chain_names[i], k and ("for signing key " .. k)
            or "but it certifies none of this node's signing keys"))
      show_valid(info, "    ", allow_names)
    else
      print(("  %s:"):format(chain_names[i]))
      show_invalid(c, why, "    ")
    end
  end
end

for _, l in ipairs { { "Allowlist", allow, allow_names }, { "Denylist", deny, deny_names } } do
  print(l[1] .. ":")
  if #l[2] == 0 then print("  empty") end
  for i, e in ipairs(l[2]) do
    if type(e) == "string" then entry_line(l[3][i], e) else print(("  %s: not a base64# value"):format(l[3][i])) end
  end
end
kcs:close()
