-- The controller path end to end on the broker (spec §7.13, §8.1): a
-- consumer provisioned "consumer-limited" writes its key requests only to
-- <root>.subs; the controller verifies them, asks its policy and forwards
-- approved ones to <root>.reqs, where the producer answers. A policy
-- refusal leaves the consumer without a key; so does having no controller.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local controller = require "kafkacrypto.authorities.controller"
local h = require "helpers"

local ROT = "correct horse battery staple"

local fixture
local function nodes()
  if fixture then return fixture end
  local dir = h.tmpdir()
  local log = kafkacrypto.log.capture()
  for _, n in ipairs { { "prod", "producer" }, { "lim", "consumer-limited" },
                       { "ctl", "controller" } } do
    kafkacrypto.provision { dir = dir, node_id = n[1], role = n[2], rot_password = ROT,
                            provisioning_password = "provisioning" }
    local s = kafkacrypto.store(dir .. "/" .. n[1] .. ".config")
    s:store_value("crypto_sub_interval", 1)   -- ask again after 1 s (upstream: 60 s)
    s:close()
  end
  log:stop()
  fixture = { dir = dir }
  return fixture
end

local function path(name) return nodes().dir .. "/" .. name end

-- provisioned files ask for SSL; the test broker speaks plaintext
local function kafka()
  return { bootstrap_servers = h.broker().bootstrap_servers, security_protocol = "PLAINTEXT" }
end

local function node(name)
  return kafkacrypto.new { config = path(name .. ".config"), producer = kafka(),
                           consumer = kafka(), key_wait_interval = 0.1 }
end

-- A value encrypted by the producer node and read by the consumer node
-- under a fresh root, so keys from an earlier test do not count. Reading
-- it makes the consumer ask for the key. The root's .subs topic is made
-- first: the embedded broker's group coordinator is slow to rebalance onto
-- topics created after a regex subscription (a real cluster is not).
local function encrypted(prod, cons)
  local root = h.topic("ctl")
  h.broker():create_topic(root .. ".subs", 1)
  local topic = root .. ".data"
  local wire = prod:value_serializer():serialize(topic, "secret reading")
  return cons:value_deserializer():deserialize(topic, wire)
end

-- Steps the controller (if any) until msg decrypts or `seconds` pass;
-- returns the plaintext or nil.
local function wait_for_key(msg, ctl, seconds)
  local deadline = os.time() + seconds
  while os.time() <= deadline do
    if ctl then ctl:step(0.2) end
    if msg:is_cleartext() then return msg:get_message() end
  end
end

-- Runs f(prod, lim) with both nodes open, closing them whatever happens.
local function with_nodes(f)
  local prod, lim = node("prod"), node("lim")
  local ok, err = pcall(f, prod, lim)
  prod:close()
  lim:close()
  if not ok then error(err, 0) end
end

TestController = {}

function TestController:test_limited_consumer_gets_keys_only_through_the_controller()
  local log = kafkacrypto.log.capture()
  kafkacrypto.log.set_level("INFO")
  with_nodes(function(prod, lim)
    -- no controller: the request on .subs is never answered
    local msg = encrypted(prod, lim)
    lu.assertNil(wait_for_key(msg, nil, 2))
    local ctl = controller.new { config = path("ctl.config"), kafka = kafka(),
                                 group_id = h.topic("controllers"),
                                 policies = { (os.getenv("KC_SOURCE_DIR") or ".")
                                              .. "/policies/default.lua" } }
    local got = wait_for_key(msg, ctl, 30)
    local stats = ctl:stats()
    ctl:close()
    lu.assertEquals(got, "secret reading")
    lu.assertTrue(stats.forwarded >= 1)
  end)
  kafkacrypto.log.set_level("WARNING")
  log:stop()
  lu.assertNotNil(log:find("INFO:kafkacrypto.controller:Valid consumer key request on topic="))
  lu.assertNil(log:find("Auto commit not disabled"))
end

function TestController:test_policy_refusal_means_no_key()
  local log = kafkacrypto.log.capture()
  local deny = path("deny-lim2.lua")
  h.write_file(deny, [[
return { reencrypt = function(req)
  return false, "no keys for " .. req.fingerprint:sub(1, 8) .. " on " .. req.root
end }
]])
  with_nodes(function(prod, lim)
    local ctl = controller.new { config = path("ctl.config"), kafka = kafka(),
                                 group_id = h.topic("controllers"), policies = { deny } }
    local got = wait_for_key(encrypted(prod, lim), ctl, 3)
    local stats = ctl:stats()
    ctl:close()
    lu.assertNil(got)
    lu.assertEquals(stats.forwarded, 0)
    lu.assertTrue(stats.refused >= 1)
  end)
  log:stop()
  lu.assertNotNil(log:find("WARNING:kafkacrypto.policy:Refused by policy (root=ctl"))
  lu.assertNotNil(log:find("deny-lim2.lua: hook reencrypt: denied: no keys for "))
end

function TestController:test_bad_options()
  nodes()
  local log = kafkacrypto.log.capture()
  lu.assertStrContains(h.error_of(controller.new, {}), "expected a table with config")
  lu.assertStrContains(h.error_of(controller.new, { config = path("ctl.config"), kafka = kafka(),
                                                    policies = { path("missing.lua") } }),
                       "missing.lua: cannot open")
  log:stop()
end

function TestController:test_zz_cleanup()
  if fixture then h.rmtree(fixture.dir) end
  fixture = nil
end
