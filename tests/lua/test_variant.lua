-- Key-exchange variants: scripts/variants/bound_reply.lua between two nodes on
-- the embedded broker, a node with the default exchange against them, and
-- variant files that are broken or misbehave.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local errors = kafkacrypto.errors
local h = require "helpers"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local BOUND_REPLY = here .. "/../../scripts/variants/bound_reply.lua"

TestVariant = {}

local dir, cap
function TestVariant:setUp()
  dir = h.tmpdir()
  kafkacrypto.log.set_level("INFO")
  cap = kafkacrypto.log.capture()
end

function TestVariant:tearDown()
  cap:stop()
  kafkacrypto.log.set_level("WARNING")
  h.rmtree(dir)
end

local function provision(node)
  kafkacrypto.provision { node_id = node, role = "prodcon", dir = dir,
                          rot_password = "variant test root password",
                          provisioning_password = "provisioning" }
  local store = kafkacrypto.store(dir .. "/" .. node .. ".config")
  store:store_value("crypto_sub_interval", 1)   -- ask again soon (upstream: 60 s)
  store:close()
end

local function node(name, variant, policies)
  provision(name)
  return kafkacrypto.new { config = dir .. "/" .. name .. ".config", key_wait_interval = 0.1,
                           exchange_variant = variant, policies = policies }
end

local function send(n, topic, value)
  local p = kafkacrypto.producer { key_serializer = n:key_serializer(),
                                   value_serializer = n:value_serializer(), linger_ms = 1 }
  p:send(topic, "k", value)
  p:flush()
  p:close()
end

-- Reads one message of topic with n's deserializers; retries decryption
-- (each retry waits for the key a little) until `deadline` seconds.
local function read(n, topic, deadline)
  local c = kafkacrypto.consumer { key_deserializer = n:key_deserializer(),
                                   value_deserializer = n:value_deserializer() }
  c:assign { { topic = topic, partition = 0, offset = "beginning" } }
  local msg = h.collect(c, 1, 20)[1]
  c:close()
  assert(msg, "no message on " .. topic)
  local stop = os.time() + (deadline or 20)
  while not msg.value:is_cleartext() and os.time() < stop do end
  return msg
end

local function wait_for(pred, seconds)
  local stop, idle = os.time() + (seconds or 20), nil
  while not pred() and os.time() < stop do
    idle = idle or kafkacrypto.consumer {}
    idle:poll(0.2)   -- a short sleep
  end
  if idle then idle:close() end
  return pred()
end

function TestVariant:test_two_variant_nodes_exchange_keys_and_a_default_node_fails_cleanly()
  local broker = kafkacrypto.broker.embedded()
  local ra, rb, rd = h.topic("va"), h.topic("vb"), h.topic("vd")
  for _, r in ipairs { ra, rb, rd } do broker:create_topic(r .. ".data", 1) end
  local a, b = node("alice", BOUND_REPLY), node("bob", BOUND_REPLY)
  local d = node("dave")   -- same root of trust, default exchange
  send(a, ra .. ".data", "from alice")
  send(b, rb .. ".data", "from bob")
  send(d, rd .. ".data", "from dave")

  -- the two variant nodes read each other's messages
  lu.assertEquals(read(b, ra .. ".data").value:get_message(), "from alice")
  lu.assertEquals(read(a, rb .. ".data").value:get_message(), "from bob")
  lu.assertNotNil(cap:find("Using the key-exchange variant " .. BOUND_REPLY))
  lu.assertNotNil(cap:find("Sending current encryption keys for root=" .. ra))
  lu.assertNotNil(cap:find("Received new encryption key for root=" .. ra))
  lu.assertTrue(a:stats().replies_sent >= 1 and b:stats().keys_received >= 1)

  -- dave's default request reaches alice, who refuses it and sends nothing
  local dm = read(d, ra .. ".data", 0)
  lu.assertTrue(wait_for(function()
    return cap:find("answer_request refused: request: not a bound-reply/1 message") ~= nil
  end), "alice logged no refusal of dave's request")
  lu.assertFalse(dm.value:is_cleartext())   -- with a retry
  lu.assertTrue(errors.is(select(2, pcall(dm.value.get_message, dm.value, false)), errors.MESSAGE))
  lu.assertEquals(d:stats().keys_received, 0)

  -- and alice's variant request to dave is refused by the default protocol
  local am = read(a, rd .. ".data", 0)
  lu.assertTrue(wait_for(function()
    return cap:find("Failed sending current encryption keys for root=" .. rd) ~= nil
  end), "dave logged no refusal of alice's request")
  lu.assertFalse(am.value:is_cleartext())
  lu.assertTrue(d:stats().refused >= 1)
  lu.assertEquals(d:stats().replies_sent, 0)
  -- nobody crashed: the loops still answer
  send(a, ra .. ".data", "still here")
  a:close()
  b:close()
  d:close()
end

local function variant_file(text)
  local path = dir .. "/variant.lua"
  h.write_file(path, text)
  return path
end

function TestVariant:test_broken_variant_files_are_errors_that_name_them()
  provision("carol")
  local config = dir .. "/carol.config"
  local cases = {
    { nil, "cannot open" },
    { "return {", "unexpected symbol" },
    { "return 42", "expected the file to return a table of hooks" },
    { "return { make_request = function() end, answer_request = function() end }",
      "defines no function accept_reply" },
    { "error('boom')", "boom" },
    { "return { make_request = io.open }", "" },   -- io does not exist in the sandbox
  }
  for i, c in ipairs(cases) do
    local path = c[1] and variant_file(c[1]) or dir .. "/missing.lua"
    local msg = h.error_of(kafkacrypto.new, { config = config, exchange_variant = path })
    lu.assertNotNil(msg, "case " .. i)
    lu.assertStrContains(msg, path)
    lu.assertStrContains(msg, c[2])
    lu.assertNotStrContains(msg, "policy file")   -- it is a variant, and says so
  end
  lu.assertStrContains(h.error_of(kafkacrypto.new, { config = config, exchange_variant = 7 }),
                       "exchange_variant: expected a file name, got number")
end

function TestVariant:test_policies_refuse_in_a_variant_exchange_too()
  -- the variant checks chains through the core, which asks the node's policies
  local deny = dir .. "/deny.lua"
  h.write_file(deny, [[return { key_request = function(req) return false, "closed for tests" end }]])
  local broker = kafkacrypto.broker.embedded()
  local r = h.topic("vp")
  broker:create_topic(r .. ".data", 1)
  local producer = node("gina", BOUND_REPLY, { deny })
  local consumer = node("hugo", BOUND_REPLY)
  send(producer, r .. ".data", "guarded")
  local m = read(consumer, r .. ".data", 0)
  lu.assertTrue(wait_for(function() return cap:find("closed for tests") ~= nil end),
                "the producer's policy was not asked")
  lu.assertFalse(m.value:is_cleartext(false))
  lu.assertEquals(producer:stats().replies_sent, 0)
  lu.assertEquals(consumer:stats().keys_received, 0)
  producer:close()
  consumer:close()
end

function TestVariant:test_hooks_that_fail_or_loop_never_stop_the_loop()
  -- make_request loops, so no request goes out; the node still closes
  local path = variant_file [[
    local calls = 0
    return {
      make_request = function(ctx) calls = calls + 1 while true do end end,
      answer_request = function(ctx, req) return nil, "never" end,
      accept_reply = function(ctx, reply) return {} end,
    }]]
  local broker = kafkacrypto.broker.embedded()
  local r = h.topic("vl")
  broker:create_topic(r .. ".data", 1)
  local producer = node("erin")
  send(producer, r .. ".data", "x")
  local n = node("frank", path)
  local m = read(n, r .. ".data", 0)
  lu.assertTrue(wait_for(function() return cap:find("hook make_request") ~= nil end))
  lu.assertNotNil(cap:find("instruction"))
  lu.assertFalse(m.value:is_cleartext(false))
  lu.assertNotNil(cap:find("Failed to send new subscribe request for root=" .. r))
  lu.assertEquals(n:stats().requests_sent, 0)
  n:close()
  producer:close()
end
