-- The node API (upstream's KafkaCrypto object) and provisioning:
-- kafkacrypto.new, its serializers, stats and close, kafkacrypto.provision,
-- and two nodes exchanging keys over the broker. (The store's own methods
-- are in test_store.lua, retries on standalone data paths in test_serde.lua.)
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"
local errors = kafkacrypto.errors

local ROT_PASSWORD = "node test root password"

-- f(...) with the warnings it draws captured (new node files, node
-- start-up: upstream's lines), errors passed on.
local function quietly(f, ...)
  local cap = kafkacrypto.log.capture()
  local result = { pcall(f, ...) }
  cap:stop()
  if not result[1] then error(result[2], 0) end
  return unpack(result, 2)
end

-- NODE.config, .crypto and .seed of a node in dir, provisioned under the
-- test root (or another root password).
local function provision(dir, node, role, rot_password)
  quietly(kafkacrypto.provision, {
    node_id = node, role = role, dir = dir, rot_password = rot_password or ROT_PASSWORD,
    provisioning_password = "provisioner" })
  return dir .. "/" .. node .. ".config"
end

-- The broker of the run for the nodes' key exchange clients too (the node
-- files ask for TLS, as simple-provision writes them; the test broker
-- speaks plaintext).
local function kafka()
  return { bootstrap_servers = h.broker().bootstrap_servers, security_protocol = "PLAINTEXT" }
end

local function open(config, extra)
  local o = { config = config, producer = kafka(), consumer = kafka(), key_wait_interval = 0.05 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return quietly(kafkacrypto.new, o)
end

-- Nodes opened by a test are closed and its files removed after it.
local function set_up(self)
  self.dir = h.tmpdir()
  self.nodes = {}
end

local function tear_down(self)
  for _, n in ipairs(self.nodes) do n:close() end
  collectgarbage()
  h.rmtree(self.dir)
end

local function keep(self, node)
  self.nodes[#self.nodes + 1] = node
  return node
end

TestNode = {}

TestNode.setUp, TestNode.tearDown = set_up, tear_down

function TestNode:test_positional_form_with_client_objects()
  local producer, consumer = h.producer(kafka()), h.consumer(kafka())
  -- upstream: KafkaCrypto(nodeID, kp, kc, config=...)
  local node = keep(self, quietly(kafkacrypto.new, "np", producer, consumer,
                                  { config = provision(self.dir, "np", "producer") }))
  lu.assertEquals(node:node_id(), "np")
  lu.assertEquals(tostring(node), "kafkacrypto node np")
  producer:close()
  consumer:close()
end

function TestNode:test_table_form_takes_the_node_id_from_the_file()
  local node = keep(self, open(provision(self.dir, "nt", "consumer")))
  lu.assertEquals(node:node_id(), "nt")
  -- a node ID that is not the file's is refused
  local err = h.error_of(quietly, kafkacrypto.new, "someone-else", nil, nil,
                         { config = provision(self.dir, "nt2", "consumer") })
  lu.assertNotNil(err)
  lu.assertStrContains(err, "someone-else")
end

function TestNode:test_config_may_be_a_store_object()
  local store = kafkacrypto.store(provision(self.dir, "ns", "producer"))
  local node = quietly(kafkacrypto.new, { config = store, producer = kafka(),
                                          consumer = kafka() })
  lu.assertEquals(node:node_id(), "ns")
  node:close()
  -- the store comes back to the script once the node is closed
  lu.assertEquals(store:load_value("node_id"), "ns")
  store:close()
end

function TestNode:test_serializer_objects()
  local node = keep(self, open(provision(self.dir, "nser", "prodcon")))
  local topic = h.topic("ser")
  for _, name in ipairs{ "key_serializer", "value_serializer" } do
    local s = node[name](node)
    local wire = s:serialize(topic, "plaintext")
    lu.assertEquals(wire:byte(1), 1)                 -- a kafkacrypto message
    lu.assertNil(wire:find("plaintext", 1, true))
    lu.assertNil(s:serialize(topic, nil))             -- nil stays nil
  end
  for _, name in ipairs{ "key_deserializer", "value_deserializer" } do
    local d = node[name](node)
    local msg = d:deserialize(topic, "not encrypted")  -- foreign bytes: a message object
    lu.assertTrue(kafkacrypto.is_message(msg))
    lu.assertFalse(msg:is_cleartext(false))
    lu.assertFalse(msg:is_possibly_decryptable())
    lu.assertEquals(msg:bytes(), "not encrypted")
  end
end

function TestNode:test_stats_start_at_zero()
  local node = keep(self, open(provision(self.dir, "nstat", "consumer")))
  local st = node:stats()
  -- the provisioned chain's lifetime, less the seconds since
  lu.assertTrue(st.chain_expires_in_seconds > 0 and st.chain_expires_in_seconds < math.huge)
  st.chain_expires_in_seconds = nil
  lu.assertEquals(st, { requests_sent = 0, replies_sent = 0, keys_received = 0,
                                  refused = 0, chains_adopted = 0, list_entries_added = 0,
                                  key_indices_given_up = 0, key_indices_replaced = 0,
                                  replies_sent_again = 0, roots = {} })
end

function TestNode:test_close_is_final_and_idempotent()
  local config = provision(self.dir, "nclose", "producer")
  local node = open(config, { key_wait_interval = 1 })
  local ser, deser = node:value_serializer(), node:value_deserializer()
  local topic = h.topic("closing")
  local wire = ser:serialize(topic, "before")
  node:close()
  node:close()
  lu.assertEquals(tostring(node), "kafkacrypto node (closed)")
  for _, method in ipairs{ "key_serializer", "value_serializer", "key_deserializer",
                           "value_deserializer", "node_id", "stats" } do
    local err = h.error_of(node[method], node)
    lu.assertNotNil(err, method)
    lu.assertStrContains(err, "kafkacrypto node is closed")
  end
  -- serializers taken before refuse cleanly; deserializers do not wait
  local err = h.error_of(quietly, ser.serialize, ser, h.topic("after"), "x")
  lu.assertNotNil(err)
  lu.assertStrContains(err, "the node of this serializer is closed")
  local started = os.time()
  lu.assertFalse(deser:deserialize(topic, wire):is_cleartext())
  lu.assertTrue(os.time() - started <= 1)
  -- the files are free again: the node opens anew
  keep(self, open(config))
end

function TestNode:test_bad_new_arguments()
  local config = provision(self.dir, "nbad", "producer")
  local cases = {
    { {}, "new: expected a node ID or a config" },
    { { config = 5 }, "new: config: expected a file name or a kafkacrypto.store, got number" },
    { { node_id = {} }, "new: node_id: expected a string, got table" },
    { { config = config, producer = "x" }, "new: producer:" },
    { { config = config, consumer = 1 }, "new: consumer:" },
    { { config = config, key_wait_interval = "soon" },
      "new: key_wait_interval: expected a number, got string" },
    { { config = self.dir .. "/missing.config" }, "missing.config" },
  }
  for _, c in ipairs(cases) do
    local err = h.error_of(quietly, kafkacrypto.new, c[1])
    lu.assertNotNil(err, c[2])
    lu.assertStrContains(err, c[2])
  end
  lu.assertStrContains(h.error_of(kafkacrypto.new, nil, nil, nil, { config = 5 }), "config")
end

TestProvision = {}

function TestProvision:setUp() self.dir = h.tmpdir() end
function TestProvision:tearDown() h.rmtree(self.dir) end

function TestProvision:request(extra)
  local r = { node_id = "n", role = "producer", rot_password = ROT_PASSWORD,
              provisioning_password = "provisioner", dir = self.dir }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

function TestProvision:test_every_role_writes_the_node_files()
  local cap = kafkacrypto.log.capture()   -- new node files draw warnings
  for _, role in ipairs{ "controller", "producer", "consumer", "consumer-limited", "prodcon",
                         "prodcon-limited" } do
    local node_id = "role-" .. role
    kafkacrypto.provision(self:request{ node_id = node_id, role = role, topics = { "sensor.x" } })
    for _, ext in ipairs{ ".config", ".crypto", ".seed" } do
      lu.assertNotNil(io.open(self.dir .. "/" .. node_id .. ext), role .. ext)
    end
    local store = kafkacrypto.store(self.dir .. "/" .. node_id .. ".config")
    lu.assertEquals(store:node_id(), node_id)
    local chains = store:load_section("chains", false)
    local allow = store:load_section("allowlist", false)
    lu.assertNotNil(chains, role)
    lu.assertNotNil(allow, role)
    store:close()
  end
  cap:stop()
end

function TestProvision:test_bad_arguments_name_the_field()
  local cases = {
    { { node_id = false }, "provision: node_id: expected a string, got nil" },
    { { node_id = true }, "provision: node_id: expected a string, got boolean" },
    { { role = "boss" }, "provision: role 'boss': expected controller" },
    { { rot_password = "" }, "provision: rot_password must not be empty" },
    { { rot_password = "short" }, "root of trust password needs 12" },
    { { provisioning_password = {} }, "provision: provisioning_password: expected a string" },
    { { provisioning_password = "abc" }, "provisioning password needs 6" },
    { { topics = { "ok", 5 } }, "provision: topics[2]: expected a string" },
    { { pathlen = "one" }, "provision: pathlen: expected a number, got string" },
    { { lifetime = {} }, "provision: lifetime: expected a number, got table" },
    { { dir = {} }, "provision: dir: expected a string, got table" },
  }
  local cap = kafkacrypto.log.capture()
  for _, c in ipairs(cases) do
    local r = self:request(c[1])
    for k, v in pairs(c[1]) do if v == false then r[k] = nil end end
    local err = h.error_of(kafkacrypto.provision, r)
    lu.assertNotNil(err, c[2])
    lu.assertStrContains(err, c[2])
  end
  lu.assertStrContains(h.error_of(kafkacrypto.provision, "n"),
                       "provision: expected a table")
  cap:stop()
end

TestNodeExchange = {}

TestNodeExchange.setUp, TestNodeExchange.tearDown = set_up, tear_down

-- upstream README: a producer and a consumer node, keys exchanged over
-- Kafka; a message that arrived before its key decrypts on a later retry
-- through the deserializer.
function TestNodeExchange:test_two_nodes_exchange_keys_and_decrypt()
  local topic = h.topic("xr") .. ".readings"
  local pcfg = provision(self.dir, "xprod", "producer")
  local prod = open(pcfg)
  local producer = h.producer{ key_serializer = prod:key_serializer(),
                               value_serializer = prod:value_serializer() }
  producer:send(topic, "k", "first reading", 0)
  producer:flush()
  producer:close()
  -- the producer leaves before anyone asked for its key
  prod:close()

  -- later misses wait up to 4 x 0.05 s inside the deserializer
  local cons = keep(self, open(provision(self.dir, "xcons", "consumer"),
                               { key_wait_interval = 0.05, max_key_wait_intervals = 4 }))
  local deser = cons:value_deserializer()
  local consumer = h.consumer{ key_deserializer = cons:key_deserializer(),
                               value_deserializer = deser }
  consumer:assign{ topic = topic, partition = 0, offset = "beginning" }
  local msg = h.collect(consumer, 1)[1]
  consumer:close()
  lu.assertNotNil(msg)
  lu.assertFalse(msg.value:is_cleartext(false))
  lu.assertTrue(msg.value:is_possibly_decryptable())
  lu.assertTrue(errors.is(select(2, pcall(msg.value.get_message, msg.value, false)),
                          errors.MESSAGE))

  -- back again, it serves the old key once it produces to the root (§7.10)
  prod = keep(self, open(pcfg))
  lu.assertEquals(prod:value_serializer():serialize(topic, "second reading"):byte(1), 1)
  local deadline = os.time() + 20
  while not msg.value:is_cleartext(false) and os.time() <= deadline do
    lu.assertIs(deser:deserialize(topic, msg.value), msg.value)
  end
  lu.assertEquals(msg.value:get_message(false), "first reading")
  lu.assertEquals(msg.key:get_message(), "k")
  lu.assertTrue(cons:stats().requests_sent >= 1)
  lu.assertTrue(cons:stats().keys_received >= 1)
  lu.assertTrue(prod:stats().replies_sent >= 1)
  -- nothing refused but the copies of the reply (the producer, back, answers
  -- the request and its D5 copy; each reply also goes out again, D3), which
  -- the consumer counts as replies not for an outstanding request of its own
  local p = prod:stats()
  lu.assertTrue(cons:stats().refused <= p.replies_sent + p.replies_sent_again - 1)
end

function TestNodeExchange:test_a_node_under_another_root_gets_no_key()
  local topic = h.topic("xo") .. ".data"
  local prod = keep(self, open(provision(self.dir, "xprod", "producer")))
  local wire = prod:value_serializer():serialize(topic, "for us only")
  local rogue = keep(self, open(provision(self.dir, "xrogue", "consumer",
                                          "a different root password"),
                                { key_wait_interval = 0.1, max_key_wait_intervals = 5 }))
  local msg = rogue:value_deserializer():deserialize(topic, wire)
  for _ = 1, 4 do   -- each retry waits up to 0.5 s for the key
    lu.assertFalse(msg:is_cleartext())
  end
  lu.assertTrue(rogue:stats().requests_sent >= 1)
  lu.assertEquals(rogue:stats().keys_received, 0)
  lu.assertEquals(prod:stats().replies_sent, 0)
end
