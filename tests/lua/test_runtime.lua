-- The runtime around scripts: module, settings, tunables, serde helpers,
-- Debian's Lua modules.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"

TestRuntime = {}

function TestRuntime:test_module_and_version()
  lu.assertStrMatches(kafkacrypto.version, "%d+%.%d+%.%d+")
  lu.assertIs(require "kafkacrypto", kafkacrypto)
  lu.assertIsTable(require "kafkacrypto.core")
end

function TestRuntime:test_lua_cjson_loads()
  local cjson = require "cjson"
  lu.assertEquals(cjson.decode(cjson.encode { a = { 1, 2 } }), { a = { 1, 2 } })
end

function TestRuntime:test_search_path_does_not_use_the_current_directory()
  for entry in package.path:gmatch("[^;]+") do
    lu.assertNotEquals(entry:sub(1, 2), "./", package.path)
  end
  lu.assertStrContains(package.path, "/lua/?.lua")
end

function TestRuntime:test_tunables_have_upstream_defaults()
  local t = kafkacrypto.tunables()
  lu.assertEquals(t.topic_suffix_reqs, ".reqs")
  lu.assertEquals(t.crypto_max_pgen_age, 604800)
  lu.assertEquals(t.mgmt_poll_interval, 500)
  lu.assertEquals(t.mgmt_long_keyindex, true)
  lu.assertEquals(t.deser_initial_wait_intervals, 10)
end

function TestRuntime:test_settings_view()
  local s = kafkacrypto.settings()
  lu.assertIsTable(s.policies)
  lu.assertEquals(s.log_level, "WARNING")
end

function TestRuntime:test_serde_stack_order_and_errors()
  local trace = {}
  local function stage(name) return function(v) trace[#trace + 1] = name; return v .. name end end
  local obj = { serialize = function(_, topic, v) return v .. "[" .. topic .. "]" end,
                deserialize = function(_, topic, v) return v .. "<" .. topic .. ">" end }
  local stacked = kafkacrypto.serde.stack(stage("a"), obj, stage("b"))
  lu.assertEquals(stacked:serialize("t", "x"), "xa[t]b")
  lu.assertEquals(stacked:deserialize("t", "x"), "xa<t>b")
  lu.assertEquals(trace, { "a", "b", "a", "b" })
  lu.assertStrContains(h.error_of(kafkacrypto.serde.stack, stage("a"), nil, stage("b")),
                       "stage 2 is nil")
  lu.assertStrContains(h.error_of(kafkacrypto.serde.check, {}, "serialize", "key_serializer"),
                       "key_serializer: expected a function or an object with :serialize")
end
