-- kafkacrypto.core.<name> is runtime/src/lua/kc_lua_<name>.c: one preloaded
-- module per C binding file (HACKING.md lists them), and kafkacrypto.core
-- stays their union.
local lu = require "luaunit"
local h = require "helpers"

TestCoreModules = {}

-- name -> members the module must hold (a sample of each file's functions).
local EXPECTED = {
  bytes = { "bytes" },
  tools = { "cert", "rot_entry", "read_password" },
  log = { "log", "log_set_level", "log_capture_start" },
  kafka = { "producer", "consumer", "broker_start" },
  admin = { "admin", "show_kafka_properties" },
  root = { "root", "set_root_rule" },
  serde = { "message", "standalone", "is_deserializer" },
  store = { "store_open" },
  crypto = { "signing_keys", "sha256", "pack", "unpack" },
  msgpack = { "pack", "unpack", "bin", "null" },
  node = { "node_open", "provision" },
  chain = { "chain_process", "chain_build" },
  authority = { "chainserver_open", "controller_reencrypt" },
  signal = { "catch_signals", "clock" },
  metrics = { "metrics_server" },
}
-- kc_lua.c's own part of kafkacrypto.core
local CORE_OWN = { version = true, settings = true, tunables = true, error = true, where = true }

local function source_root()
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
  return here .. "/../.."
end

function TestCoreModules:test_every_binding_loads_with_its_members()
  for name, members in pairs(EXPECTED) do
    local m = require("kafkacrypto.core." .. name)
    lu.assertEquals(type(m), "table", name)
    for _, k in ipairs(members) do
      lu.assertNotNil(m[k], "kafkacrypto.core." .. name .. " lacks " .. k)
    end
    lu.assertIs(require("kafkacrypto.core." .. name), m)   -- loaded once
  end
end

function TestCoreModules:test_the_preloaded_modules_are_exactly_these()
  local found = {}
  for key in pairs(package.preload) do
    local name = key:match("^kafkacrypto%.core%.(.+)$")
    if name then found[#found + 1] = name end
  end
  table.sort(found)
  local want = {}
  for name in pairs(EXPECTED) do want[#want + 1] = name end
  table.sort(want)
  lu.assertEquals(found, want)
  lu.assertNil(package.preload["kafkacrypto.core.nosuch"])
  lu.assertNotNil(h.error_of(require, "kafkacrypto.core.nosuch"))
end

function TestCoreModules:test_each_module_names_its_file_and_is_documented()
  local root = source_root()
  local hacking = h.read_file(root .. "/HACKING.md")
  for name in pairs(EXPECTED) do
    local file = "runtime/src/lua/kc_lua_" .. name .. ".c"
    local f = io.open(root .. "/" .. file)
    lu.assertNotNil(f, file)
    f:close()
    lu.assertStrContains(hacking, "`kafkacrypto.core." .. name .. "`")
  end
end

function TestCoreModules:test_core_is_the_union_of_the_bindings()
  local core = require "kafkacrypto.core"
  local owner = {}
  for name in pairs(EXPECTED) do
    local m = require("kafkacrypto.core." .. name)
    if name == "crypto" then
      -- the crypto module is core.crypto itself
      for k, v in pairs(core.crypto) do lu.assertEquals(type(m[k]), type(v), "crypto." .. k) end
      owner.crypto = { name }
    elseif name ~= "msgpack" then   -- msgpack's functions are in crypto
      for k, v in pairs(m) do
        lu.assertEquals(type(core[k]), type(v), name .. "." .. k .. " in core")
        owner[k] = owner[k] or {}
        table.insert(owner[k], name)
      end
    end
  end
  for k in pairs(core) do
    if not CORE_OWN[k] then
      lu.assertNotNil(owner[k], "core." .. k .. " belongs to no module")
      lu.assertEquals(#owner[k], 1, "core." .. k .. " is in " .. table.concat(owner[k], ", "))
    end
  end
  local msgpack, crypto = require "kafkacrypto.core.msgpack", require "kafkacrypto.core.crypto"
  for k in pairs(msgpack) do lu.assertNotNil(crypto[k], "crypto lacks msgpack's " .. k) end
end

function TestCoreModules:test_objects_from_a_module_are_the_core_classes()
  local core = require "kafkacrypto.core"
  local bytes = require("kafkacrypto.core.bytes").bytes
  local m = require "kafkacrypto.core.serde"
  lu.assertTrue(core.is_message(m.message("x")))
  lu.assertEquals(tostring(bytes("ab")), "ab")
  lu.assertEquals(getmetatable(bytes("ab")), getmetatable(core.bytes("ab")))
end

-- lua/kafkacrypto/ is grouped: the API at the top, tools/ and authorities/.
TestModuleFolders = {}

function TestModuleFolders:test_old_names_are_aliases_of_the_grouped_modules()
  local moved = {
    cli = "tools.cli", provisioning = "tools.provisioning", kcat = "tools.kcat",
    controller = "authorities.controller", chainserver = "authorities.chainserver",
  }
  for old, new in pairs(moved) do
    local m = require("kafkacrypto." .. new)
    lu.assertEquals(type(m), "table", new)
    lu.assertIs(require("kafkacrypto." .. old), m, old)
  end
end

function TestModuleFolders:test_errors_in_grouped_modules_point_at_the_callers_line()
  for _, name in ipairs{ "controller", "chainserver" } do
    local m = require("kafkacrypto.authorities." .. name)
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() return m.new(nil) end)
    lu.assertFalse(ok)
    lu.assertStrContains(tostring(err), "test_core_modules.lua:" .. line .. ": " .. name .. ".new: expected a table")
  end
end
