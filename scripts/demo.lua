-- the demo: provisioning, key exchange and encryption on an embedded broker
--
-- Runs a Kafka broker inside this process. `kafkacrypto demo` or `make run`.
--
-- What it shows, step by step:
--   1. provisioning nodes from one root-of-trust password
--   2. a producer encrypting messages on two root topics
--   3. a consumer that has no key yet, asking for it over Kafka and decrypting
--   4. a consumer provisioned under another root, which never gets a key
--   5. JSON stacked with encryption
-- Node files go to a temporary directory that is removed at the end.

local kafkacrypto = require "kafkacrypto"
local cjson = require "cjson"
local cli = require "kafkacrypto.tools.cli"

cli.parse(cli.tool("demo", [[
usage: kafkacrypto demo
  Shows kafkacrypto at work on a Kafka broker run inside this process (no
  cluster needed), in about ten seconds:
    1. provisioning nodes from one root-of-trust password
    2. a producer encrypting messages on two root topics
    3. a consumer that has no key yet, asking for it over Kafka and decrypting
    4. a consumer provisioned under another root, which never gets a key
    5. JSON stacked with encryption
  Node files go to a temporary directory that is removed at the end.
  `make run` runs it too. Exit status: 0 when every step worked.
]], {}), { ... })

local started = os.time()
local function say(fmt, ...) io.write(fmt:format(...), "\n") io.flush() end
local function hex(s, n)
  return (s:sub(1, n):gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- The library logs what the key exchange does at INFO; we collect those
-- lines and retell the interesting ones.
kafkacrypto.log.set_level("INFO")
local log = kafkacrypto.log.capture()
local told = 0
local function tell_exchange()
  local lines = log:get()
  for i = told + 1, #lines do
    local line = lines[i]
    local root = line:match("Sending new subscribe request%(s%) for root=([^,]+)")
    if root then say("   -> consumer asks for the key of root %q (request on %s.subs, %s.reqs)", root, root, root) end
    root = line:match("Sending current encryption keys for root=([^ ]+) to new receiver")
    if root then say("   <- producer answers on %s.keys: the key, sealed for that consumer", root) end
    root = line:match("Received new encryption key for root=([^,]+)")
    if root then say("   == consumer verified the reply's chain and holds the key of %q", root) end
    local why
    root, why = line:match("Refused key request for root=([^:]+): (.*)")
    if root then
      say("   xx producer refuses a request for %q:", root)
      say("      %s", (why:match("(chain item %d+ .*)") or why):sub(1, 110))
    end
  end
  told = #lines
end

-- 1. Provisioning ---------------------------------------------------------
local dir = os.tmpname()
os.remove(dir)
os.execute(("mkdir -m 700 '%s'"):format(dir))
local ROOT_PASSWORD = "correct horse battery staple"
say("kafkacrypto %s demo", kafkacrypto.version)
say("")
say("1. Provisioning three nodes in %s", dir)
say("   Each node gets three files: NODE.config (the root it trusts and its signed")
say("   certificate chain), NODE.crypto (its own signing key), NODE.seed (the")
say("   ratchet its data keys come from). All derive the root of trust from one")
say("   password, so they trust each other without sharing any secret.")
local function provision(node, role, root_password)
  kafkacrypto.provision{ node_id = node, role = role, dir = dir, topics = { "sensor", "metrics" },
                         rot_password = root_password, provisioning_password = "provisioning" }
  -- ask for a missing key again after 2 s (upstream's default is 60 s)
  local store = kafkacrypto.store(dir .. "/" .. node .. ".config")
  store:store_value("crypto_sub_interval", 2)
  store:close()
end
provision("thermometer", "producer", ROOT_PASSWORD)
say("   thermometer  producer: may send keys for roots sensor, metrics")
provision("dashboard", "consumer", ROOT_PASSWORD)
say("   dashboard    consumer: may request keys for roots sensor, metrics")
provision("intruder", "consumer", "a different root password")
say("   intruder     consumer: provisioned under ANOTHER root password")
say("")

local function node(name)
  return kafkacrypto.new{ config = dir .. "/" .. name .. ".config", key_wait_interval = 0.2 }
end
local thermometer, dashboard, intruder = node("thermometer"), node("dashboard"), node("intruder")

-- One partition per topic keeps the demo's output in order; consumers are
-- assigned partitions directly (a consumer group would take seconds to form).
local broker = kafkacrypto.broker.embedded()
local TOPICS = { "sensor.temperature", "sensor.humidity", "metrics.cpu", "sensor.readings" }
for _, t in ipairs(TOPICS) do broker:create_topic(t, 1) end
local function reader(topics, options)
  local consumer = kafkacrypto.consumer(options or {})
  local parts = {}
  for _, t in ipairs(topics) do parts[#parts + 1] = { topic = t, partition = 0, offset = "beginning" } end
  consumer:assign(parts)
  return consumer
end

-- 2. Producing ----------------------------------------------------------------
say("2. thermometer sends five messages: keys and values are encrypted")
local producer = kafkacrypto.producer{
  key_serializer = thermometer:key_serializer(),
  value_serializer = thermometer:value_serializer(),
}
local sent = {
  { "sensor.temperature", "kitchen", "21.5 C" },
  { "sensor.temperature", "garage", "14.0 C" },
  { "sensor.humidity", "kitchen", "41 %" },
  { "metrics.cpu", "host-1", "load 0.42" },
  { "metrics.cpu", "host-2", "load 1.07" },
}
for _, m in ipairs(sent) do producer:send(m[1], m[2], m[3]) end
producer:flush()
local raw = reader{ "sensor.temperature" }
for msg in raw:messages(10) do
  say("   on the wire, %s value %q is %d bytes: %s...", msg.topic, sent[1][3], #msg.value,
      hex(msg.value, 24))
  say("   (0x01, then msgpack [key index, salt, ciphertext]; the nonce is derived, not sent)")
  break
end
raw:close()
say("   Topic roots \"sensor\" and \"metrics\" (text before the first '.') have separate keys.")
say("")

-- 3. Consuming with key exchange --------------------------------------------------
say("3. dashboard reads them. It has no key yet: its deserializer waits while the")
say("   key exchange runs over Kafka, signed by both nodes' certificate chains.")
local function read(consumer_node, topics, count)
  local consumer = reader(topics, {
    key_deserializer = consumer_node:key_deserializer(),
    value_deserializer = consumer_node:value_deserializer(),
  })
  local got = {}
  for msg in consumer:messages(20) do
    got[#got + 1] = msg
    if #got == count then break end
  end
  consumer:close()
  return got
end
local later = {}
for _, msg in ipairs(read(dashboard, { "sensor.temperature", "metrics.cpu" }, 4)) do
  tell_exchange()
  if msg.value:is_cleartext(false) then
    say("   decrypted %-18s %-8s => %s", msg.topic, msg.key:get_message(), msg.value:get_message())
  else
    say("   %s: key not here yet; message kept to retry", msg.topic)
    later[#later + 1] = msg
  end
end
for _, msg in ipairs(later) do
  -- is_cleartext() retries the deserializer, waiting a little for the key
  if msg.value:is_cleartext() then
    tell_exchange()
    say("   retried   %-18s %-8s => %s", msg.topic, msg.key:get_message(), msg.value:get_message())
  end
end
tell_exchange()
say("")

-- 4. An unauthorised consumer -----------------------------------------------------
say("4. intruder reads the same topic. Its chain is not signed by the root the")
say("   producer trusts, so the producer never answers it.")
for _, msg in ipairs(read(intruder, { "sensor.temperature" }, 1)) do
  tell_exchange()
  local ok, err = pcall(msg.value.get_message, msg.value, false)
  say("   %s: %s", msg.topic, ok and ("decrypted?! " .. err) or "cannot decrypt: " .. tostring(err):match("KafkaCryptoMessageError: (.*)"))
  say("   (msg.value:bytes() still holds the %d raw bytes, to retry later if keys arrive)", #msg.value:bytes())
end
say("")

-- 5. Stacking JSON with encryption ------------------------------------------------
say("5. Serializers stack: JSON first, then encryption (and the reverse to read)")
local json_producer = kafkacrypto.producer{
  value_serializer = kafkacrypto.serde.stack(cjson.encode, thermometer:value_serializer()),
}
json_producer:send("sensor.readings", nil, { room = "kitchen", celsius = 21.5, ok = true })
json_producer:flush()
local json_consumer = reader({ "sensor.readings" }, {
  value_deserializer = kafkacrypto.serde.stack(dashboard:value_deserializer(), cjson.decode),
})
for msg in json_consumer:messages(20) do
  say("   decoded table: room=%s celsius=%s ok=%s", msg.value.room, msg.value.celsius,
      tostring(msg.value.ok))
  break
end
json_consumer:close()
say("")

-- Done ---------------------------------------------------------------------------
producer:close()
json_producer:close()
local stats = dashboard:stats()
for _, n in ipairs{ thermometer, dashboard, intruder } do n:close() end
log:stop()
os.execute(("rm -rf '%s'"):format(dir))
say("Done in %d s: %d key request rounds, %d keys received by dashboard.",
    os.time() - started, stats.requests_sent, stats.keys_received)
say("Next: `kafkacrypto broker`, `kafkacrypto produce/consume --help`, README.md.")
