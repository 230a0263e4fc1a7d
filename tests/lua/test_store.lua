-- kafkacrypto.store: the node store (upstream's KafkaCryptoStore) on a
-- node file written by upstream's simple-provision.py.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"

-- tests/vectors/data/store.json, vectors[1].config_text (node producer1), verbatim
local PRODUCER1_CONFIG = table.concat({
  "[DEFAULT]", "node_id : producer1", "",
  "[producer1]", "mgmt_long_keyindex : True", "cryptokey : file#producer1.crypto",
  "ratchet : file#producer1.seed", "",
  "[producer1-allowlist]", "rot0 : base64#kwDEAZDEIF1cGIGXREdyeo/TKWL0HGrUPKybUvWtxv0XV+fCWvOy", "",
  "[producer1-denylist]", "",
  "[producer1-crypto]", "maxage : 316224000", "",
  "[producer1-kafka]", "bootstrap_servers : ", "security_protocol : SSL", "ssl_cafile : ", "",
  "[producer1-kafka-consumer]", "", "[producer1-kafka-producer]", "",
  "[producer1-kafka-crypto]", "", "[producer1-kafka-crypto-consumer]", "",
  "[producer1-kafka-crypto-producer]", "",
  "[producer1-chains]",
  "chain0 : base64#ksR8xTFOjlmQVaeFRxwHWEqASTbBuOf3w2KUgUhdJ4mKb43zrwY2O0VAOc5lvEIpWiEYT09or6sh+3UPW"
    .. "kOzJizoDpMAxBaRkqZ1c2FnZXORq2tleS1lbmNyeXB0xCAHSGfIJv8ktWhH5JLZsXDQLUXWA/QkHBKL03YbN+UztsSm/2f"
    .. "wszBhCV14L0x33uPq+C1ASYV+Yx+EmGlDDM8CPUTCSrKGSGQDHnm/ZZpaZZxalmkCIXzYjjuvmQgw+sRBCJPLQd8LusAQAA"
    .. "DEOJOSpnVzYWdlc5Gra2V5LWVuY3J5cHSSpnRvcGljc5Kmc2Vuc29yp21ldHJpY3OSp3BhdGhsZW4BxCCYtgtKsPxyc1kzG"
    .. "iwSTePZ9K3oV1KQCG8KRKNCY4hn9Q==",
  "", "" }, "\n")
-- decoded_sections.allowlist.rot0
local ROT0 = "9300c40190c4205d5c1881974447727a8fd32962f41c6ad43cac9b52f5adc6fd1757e7c25af3b2"

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

TestStore = {}

function TestStore:setUp()
  self.dir = h.tmpdir()
  self.path = self.dir .. "/producer1.config"
  h.write_file(self.path, PRODUCER1_CONFIG)
  local cap = kafkacrypto.log.capture()
  self.kcs = kafkacrypto.store(self.path)
  self.open_log = cap:stop()
end

function TestStore:tearDown()
  if self.cap then self.cap:stop() end
  if self.kcs then self.kcs:close() end
  h.rmtree(self.dir)
end

function TestStore:reopen()
  self.kcs:close()
  local cap = kafkacrypto.log.capture()
  self.kcs = kafkacrypto.store(self.path)
  cap:stop()
end

function TestStore:test_reads_upstream_node_file()
  local kcs = self.kcs
  lu.assertEquals(kcs:node_id(), "producer1")
  lu.assertEquals(kcs:path(), self.path)
  lu.assertStrContains(tostring(kcs), "producer1")
  -- typed as upstream reads them
  lu.assertEquals({ kcs:load_value("mgmt_long_keyindex") }, { true, "bool" })
  lu.assertEquals({ kcs:load_value("cryptokey") }, { "file#producer1.crypto", "text" })
  lu.assertEquals({ kcs:load_value("maxage", "crypto") }, { 316224000, "int" })
  local rot0, t = kcs:load_value("rot0", "allowlist")
  lu.assertEquals(t, "bytes")
  lu.assertEquals(hex(rot0), ROT0)
  -- names are case-insensitive through the API; [DEFAULT] is visible everywhere
  lu.assertEquals(kcs:load_value("MaxAge", "crypto"), 316224000)
  lu.assertEquals(kcs:load_value("node_id", "crypto"), "producer1")
  -- missing values: the default, or nil
  lu.assertEquals({ kcs:load_value("value1", nil, "fallback") }, { "fallback" })
  lu.assertNil(kcs:load_value("value1"))
  lu.assertNil(kcs:load_value("maxage"))   -- another section
  -- upstream's CA lookup on open, when ssl_cafile is empty
  local found = false
  for _, line in ipairs(self.open_log) do
    found = found or line == "WARNING:kafkacrypto.cryptostore:  Looking for system CA list."
  end
  lu.assertTrue(found)
  lu.assertIsString(kcs:load_value("ssl_cafile", "kafka"))
end

function TestStore:test_load_section()
  local chains, order = self.kcs:load_section("chains")
  lu.assertEquals(order, { "chain0", "node_id" })   -- own options first, then [DEFAULT]'s
  lu.assertEquals(hex(chains.chain0):sub(1, 12), "92c47cc5314e")
  local crypto = self.kcs:load_section("crypto", false)
  lu.assertEquals(crypto, { maxage = 316224000 })
  local node = self.kcs:load_section(nil)
  lu.assertEquals(node.mgmt_long_keyindex, true)
  lu.assertEquals(node.ratchet, "file#producer1.seed")
  -- a missing section: [DEFAULT]'s options, or nil without defaults
  lu.assertEquals(self.kcs:load_section("nothing"), { node_id = "producer1" })
  lu.assertNil(self.kcs:load_section("nothing", false))
  lu.assertEquals(self.kcs:load_section("denylist", false), {})
end

function TestStore:test_store_value_types()
  local kcs = self.kcs
  kcs:store_value("value1", "value-of-value1")
  kcs:store_value("count", 42)
  kcs:store_value("ratio", 0.143)
  kcs:store_value("big", 2 ^ 60)
  kcs:store_value("enabled", false)
  kcs:store_value("blob", kafkacrypto.bytes("\0\1\2binary"), "crypto")
  kcs:store_value(kafkacrypto.bytes("\255key"), "by bytes name", "allowlist")
  kcs:store_value("NumberText", "123")
  local text = h.read_file(self.path)
  for _, line in ipairs { "value1 : value-of-value1", "count : 42", "ratio : 0.143",
                          "big : 1152921504606846976", "enabled : False",
                          "blob : base64#AAECYmluYXJ5", "base64#/2tleQ== : by bytes name",
                          "numbertext : 123" } do
    lu.assertStrContains(text, "\n" .. line .. "\n")
  end
  self:reopen()
  kcs = self.kcs
  lu.assertEquals({ kcs:load_value("value1") }, { "value-of-value1", "text" })
  lu.assertEquals({ kcs:load_value("count") }, { 42, "int" })
  lu.assertEquals({ kcs:load_value("ratio") }, { 0.143, "float" })
  lu.assertEquals({ kcs:load_value("big") }, { "1152921504606846976", "int" })   -- > 2^53
  lu.assertEquals({ kcs:load_value("enabled") }, { false, "bool" })
  lu.assertEquals({ kcs:load_value("blob", "crypto") }, { "\0\1\2binary", "bytes" })
  lu.assertEquals(kcs:load_value(kafkacrypto.bytes("\255key"), "allowlist"), "by bytes name")
  lu.assertEquals({ kcs:load_value("numbertext") }, { 123, "int" })   -- upstream's quirk
  -- nil deletes
  kcs:store_value("value1", nil)
  lu.assertNil(kcs:load_value("value1"))
  lu.assertNil(h.read_file(self.path):find("value1", 1, true))
  -- an invalid base64# value reads as nil, as upstream's
  kcs:store_value("broken", "base64#not base64!")
  lu.assertEquals({ kcs:load_value("broken", nil, "default") }, { nil, "none" })
end

function TestStore:test_bad_values_are_refused()
  local kcs = self.kcs
  lu.assertStrContains(h.error_of(kcs.store_value, kcs, "t", {}), "store_value: value: expected a string")
  lu.assertStrContains(h.error_of(kcs.store_value, kcs, 5, "x"), "expected an option name")
  lu.assertStrContains(h.error_of(kcs.store_value, kcs, "t", "a\rb"), "t")
  lu.assertStrContains(h.error_of(kcs.load_value, kcs, "t", 5), "section: expected a string")
  lu.assertStrContains(h.error_of(kafkacrypto.bytes, 5), "string expected")
  lu.assertNil(kcs:load_value("t"))   -- nothing was written
end

function TestStore:test_get_kafka_config()
  local kcs = self.kcs
  self.cap = kafkacrypto.log.capture()
  local ca = kcs:load_value("ssl_cafile", "kafka")
  local consumer = kcs:get_kafka_config("consumer")
  -- upstream's file: empty bootstrap_servers is dropped, SSL stays
  lu.assertEquals(consumer["security.protocol"], "SSL")
  lu.assertNil(consumer["bootstrap.servers"])
  lu.assertEquals(consumer["group.id"], "producer1")
  lu.assertEquals(consumer["ssl.ca.location"], ca ~= "" and ca or nil)
  -- said at INFO (routine: issue 10), upstream's wording
  lu.assertNil(self.cap:find("WARNING:kafkacrypto.confluent_kafka_wrapper:Warning: Removing "))
  lu.assertEquals(kcs:get_kafka_config("consumer", "crypto")["group.id"], "producer1.kafkacrypto")
  lu.assertNil(kcs:get_kafka_config("producer")["group.id"])

  -- later sections win, an empty text unsets, typed values become librdkafka text
  kcs:store_value("linger_ms", 5, "kafka-producer")
  kcs:store_value("enable_auto_commit", false, "kafka-consumer")
  kcs:store_value("max_poll_records", 10, "kafka-consumer")
  kcs:store_value("security_protocol", "", "kafka-crypto")
  kcs:store_value("client_id", "mgmt", "kafka-crypto-producer")
  local producer = kcs:get_kafka_config("producer")
  lu.assertEquals(producer["queue.buffering.max.ms"], "5")
  lu.assertNil(producer["client.id"])
  consumer = kcs:get_kafka_config("consumer")
  lu.assertEquals(consumer["enable.auto.commit"], "false")
  lu.assertEquals(consumer.max_poll_records, 10)
  local mgmt = kcs:get_kafka_config("producer", "crypto")
  lu.assertNil(mgmt["security.protocol"])
  lu.assertEquals(mgmt["client.id"], "mgmt")
  lu.assertStrContains(h.error_of(kcs.get_kafka_config, kcs, "admin"),
                       "expected \"consumer\" or \"producer\"")
  kcs:store_value("ssl_password", kafkacrypto.bytes("x"), "kafka")
  lu.assertStrContains(h.error_of(kcs.get_kafka_config, kcs, "producer"), "ssl.key.password holds bytes")
end

-- What the README's "universal configuration file" program does.
function TestStore:test_kafka_config_is_ready_for_clients()
  local kcs = self.kcs
  kcs:store_value("bootstrap_servers", h.broker().bootstrap_servers, "kafka")
  kcs:store_value("security_protocol", "PLAINTEXT", "kafka")
  kcs:store_value("fetch_max_wait_ms", 50, "kafka-consumer")
  local p, c = h.data_paths(self.dir)
  local topic = h.topic("cfg")
  local kafka_config = kcs:get_kafka_config("producer")
  kafka_config.value_serializer = p:value_serializer()
  local producer = kafkacrypto.producer(kafka_config)
  producer:send(topic, nil, "configured", 0)
  producer:flush()
  producer:close()
  p:share_keys_with(c, topic)
  kafka_config = kcs:get_kafka_config("consumer")
  kafka_config.value_deserializer = c:value_deserializer()
  local consumer = kafkacrypto.consumer(kafka_config)
  consumer:assign{ topic = topic, partition = 0, offset = "beginning" }
  lu.assertEquals(h.collect(consumer, 1)[1].value:get_message(), "configured")
  consumer:close()
end

function TestStore:test_open_rules()
  -- one opener at a time, and the node id must match
  lu.assertStrContains(h.error_of(kafkacrypto.store, self.path), "producer1.config")
  self.kcs:close()
  self.kcs:close()   -- idempotent
  lu.assertStrContains(h.error_of(self.kcs.load_value, self.kcs, "x"), "store is closed")
  lu.assertStrContains(h.error_of(kafkacrypto.store, self.path, "other"), "Node ID mismatch")
  lu.assertStrContains(h.error_of(kafkacrypto.store), "expected a config file path or a node id")
  self.kcs = nil
  -- a new file: no temporary root unless asked, and the log level is left alone
  local level = kafkacrypto.log.get_level()
  self.cap = kafkacrypto.log.capture()
  local fresh = kafkacrypto.store(self.dir .. "/fresh.config", "fresh")
  local trusting = kafkacrypto.store(self.dir .. "/trusting.config", "trusting",
                                     { trust_temporary_rot = true })
  lu.assertEquals(fresh:node_id(), "fresh")
  lu.assertEquals(fresh:load_section("allowlist", false), {})
  lu.assertNotNil(trusting:load_value("temporary", "allowlist"))
  lu.assertEquals(fresh:load_value("mgmt_long_keyindex"), true)
  lu.assertEquals(fresh:get_kafka_config("consumer")["security.protocol"], "SSL")
  lu.assertEquals(kafkacrypto.log.get_level(), level)
  fresh:store_value("log_level", "INFO", "crypto")
  fresh:close()
  trusting:close()
  -- apply_log_level: upstream's KafkaCryptoStore sets the level from the file
  local applied = kafkacrypto.store(self.dir .. "/fresh.config", nil, { apply_log_level = true })
  lu.assertEquals(kafkacrypto.log.get_level(), "INFO")
  kafkacrypto.log.set_level(level)
  applied:close()
end
