-- Policies on ordinary nodes, end to end on the broker: a producer whose
-- policy refuses a consumer never answers it (the consumer gets no key),
-- and answers once the consumer's fingerprint is listed
-- (policies/allow-fingerprints.lua). A failing policy file stops the node
-- from opening, naming the file.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local chain = require "kafkacrypto.chain"
local h = require "helpers"

local SRC = os.getenv("KC_SOURCE_DIR") or "."

local fixture
local function setup()
  if fixture then return fixture end
  local dir = h.tmpdir()
  local log = kafkacrypto.log.capture()
  for _, n in ipairs { { "prod", "producer" }, { "cons", "consumer" } } do
    kafkacrypto.provision { dir = dir, node_id = n[1], role = n[2],
                            rot_password = "correct horse battery staple",
                            provisioning_password = "provisioning" }
    local s = kafkacrypto.store(dir .. "/" .. n[1] .. ".config")
    s:store_value("crypto_sub_interval", 1)
    if n[1] == "cons" then
      local info = assert(chain.process(s:load_value("chain0", "chains"),
                                        { allowlist = { (s:load_value("rot0", "allowlist")) } }))
      fixture = { fingerprint = info.fingerprint }
    end
    s:close()
  end
  log:stop()
  fixture.dir = dir
  return fixture
end

local function kafka()
  return { bootstrap_servers = h.broker().bootstrap_servers, security_protocol = "PLAINTEXT" }
end

local function node(name, policies)
  return kafkacrypto.new { config = setup().dir .. "/" .. name .. ".config", producer = kafka(),
                           consumer = kafka(), key_wait_interval = 0.2, policies = policies }
end

-- Does cons get prod's key for a fresh root within `seconds`?
local function gets_key(prod_policies, seconds)
  local prod, cons = node("prod", prod_policies), node("cons")
  local ok, got = pcall(function()
    local topic = h.topic("pol") .. ".data"
    local msg = cons:value_deserializer():deserialize(
      topic, prod:value_serializer():serialize(topic, "reading"))
    local deadline = os.time() + seconds
    repeat
      if msg:is_cleartext() then return msg:get_message() end
    until os.time() > deadline
  end)
  prod:close()
  cons:close()
  if not ok then error(got, 0) end
  return got
end

-- policies/allow-fingerprints.lua with `entries` in its list
local function fingerprint_policy(entries)
  local text = h.read_file(SRC .. "/policies/allow-fingerprints.lua")
  local path = setup().dir .. "/fingerprints.lua"
  local list = {}
  for _, fp in ipairs(entries) do list[#list + 1] = ('  ["%s"] = "test",'):format(fp) end
  h.write_file(path, (text:gsub("local ALLOWED = {\n", function(m)
    return m .. table.concat(list, "\n") .. "\n"
  end)))
  return path
end

TestPolicy = {}

function TestPolicy:test_producer_refuses_unlisted_consumer()
  local f = setup()
  local log = kafkacrypto.log.capture()
  lu.assertNil(gets_key({ fingerprint_policy { ("0"):rep(64) } }, 3))
  log:stop()
  lu.assertNotNil(log:find("WARNING:kafkacrypto.policy:Refused by policy (root=pol"))
  lu.assertNotNil(log:find("signing key " .. f.fingerprint .. " is not in the fingerprint list"))
end

function TestPolicy:test_producer_answers_listed_consumer()
  local f = setup()
  local log = kafkacrypto.log.capture()
  lu.assertEquals(gets_key({ SRC .. "/policies/default.lua",
                             fingerprint_policy { f.fingerprint } }, 20), "reading")
  log:stop()
  lu.assertNil(log:find("Refused by policy"))
end

-- Issue 9 §2: a key_request hook with a backtracking pattern held a
-- producer's management thread for 20-25 s per request. Now each request
-- is refused within the budget, logged with the file, hook and time, and
-- the producer stays responsive (it closes promptly).
function TestPolicy:test_pathological_pattern_does_not_hold_the_producer()
  local f = setup()
  local slow = f.dir .. "/slow.lua"
  h.write_file(slow, "return { key_request = function(req)\n" ..
                     "  return string.find(('a'):rep(200), 'a*a*a*a*b') == nil\nend }\n")
  local log = kafkacrypto.log.capture()
  local prod, cons = node("prod", { slow }), node("cons")
  local topic = h.topic("pol") .. ".data"
  local msg = cons:value_deserializer():deserialize(
    topic, prod:value_serializer():serialize(topic, "reading"))
  local line
  local deadline = os.time() + 20
  repeat
    msg:is_cleartext()
    line = log:find("slow.lua: hook key_request: ")
  until line or os.time() > deadline
  local t0 = os.clock()
  prod:close()
  cons:close()
  log:stop()
  lu.assertNotNil(line, "no refusal logged")
  lu.assertStrContains(line, "WARNING:kafkacrypto.policy:Refused by policy (root=pol")
  local took = tonumber(line:match("%(stopped after ([%d.]+) s%)"))
  lu.assertNotNil(took, line)
  lu.assertTrue(took < 1 + 0.8, line)
  lu.assertFalse(msg:is_cleartext())
  lu.assertTrue(os.clock() - t0 < 5)
end

function TestPolicy:test_bad_policy_file_stops_the_node()
  local f = setup()
  local bad = f.dir .. "/bad.lua"
  h.write_file(bad, "return 'not a table'\n")
  local log = kafkacrypto.log.capture()
  local err = h.error_of(node, "prod", { bad })
  log:stop()
  lu.assertStrContains(err, "bad.lua: expected the file to return a table of hooks, got string")
  lu.assertStrContains(h.error_of(node, "prod", { 42 }), "policies[1]: expected a file name")
end

function TestPolicy:test_zz_cleanup()
  if fixture then h.rmtree(fixture.dir) end
  fixture = nil
end
