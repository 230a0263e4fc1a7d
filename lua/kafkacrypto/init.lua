-- kafkacrypto: message-layer encryption for Apache Kafka, the Lua API.
--
-- Names follow the Python package's (and kafka-python's), in Lua style:
--
--   local kafkacrypto = require "kafkacrypto"
--   local producer = kafkacrypto.producer{ bootstrap_servers = "127.0.0.1:9092" }
--   producer:send("example001.foo", "a key", "a value")
--   producer:flush()
--
--   local consumer = kafkacrypto.consumer{ "example001.foo", group_id = "g1",
--                                          auto_offset_reset = "earliest" }
--   for msg in consumer:messages(5) do print(msg.topic, msg.key, msg.value) end
--   consumer:close()
--
-- Without bootstrap_servers (here or in kafkacrypto.cfg) clients use an
-- embedded broker started inside this process.

local core = require "kafkacrypto.core"
local kafka = require "kafkacrypto.kafka"

local kafkacrypto = {
  version = core.version,
  producer = kafka.producer,        -- KafkaProducer
  consumer = kafka.consumer,        -- KafkaConsumer
  admin = kafka.admin,              -- create topics, read metadata (librdkafka's Admin API)
  is_key_topic = kafka.is_key_topic,   -- a topic of the key exchange (.reqs .keys .subs, chains, ...)
  show_kafka_properties = core.show_kafka_properties,   -- librdkafka's properties on stdout
  broker = require "kafkacrypto.broker",
  log = require "kafkacrypto.log",
  serde = require "kafkacrypto.serde",
  errors = require "kafkacrypto.errors",
  store = require("kafkacrypto.store").open,   -- KafkaCryptoStore, see store.lua
  bytes = core.bytes,                          -- marks a string as bytes for store_value
  crypto = require "kafkacrypto.crypto",       -- primitives over opaque handles, see crypto.lua
}

-- Message objects (upstream's KafkaCryptoMessage): what our deserializers
-- return for a key or value (nil stays nil).
--   msg:is_cleartext([retry = true])   isCleartext: decrypted? With retry, a
--                                      message that may become decryptable is
--                                      deserialized again first (this may wait
--                                      for its key, see spec §4.4)
--   msg:is_possibly_decryptable()      isPossiblyDecryptable: false for bytes
--                                      that are not a kafkacrypto message
--   msg:get_message([retry = true])    getMessage: the plaintext, or raises a
--                                      KafkaCryptoMessageError (kafkacrypto.errors)
--   msg:bytes(), tostring(msg)         bytes(msg): the plaintext if decrypted,
--                                      else the raw bytes as received
-- A later retry: deserializer:deserialize(topic, msg) deserializes the
-- message object again, in place, and returns it. Given to a serializer, a
-- cleartext message is encrypted and any other is sent unchanged.
kafkacrypto.message = core.message         -- KafkaCryptoMessage(bytes): a cleartext message
kafkacrypto.is_message = core.is_message

-- kafkacrypto.new(node_id, producer, consumer[, options])
--                                        KafkaCrypto(nodeID, kp, kc, config=...)
-- A node: it exchanges keys over Kafka on its own thread and gives the
-- serializers that encrypt and decrypt with them.
--   node_id       the node ID, or nil to take it from the config file
--   producer, consumer
--                 Kafka options of the key exchange's clients: tables, or
--                 kafkacrypto.producer/consumer objects (their options are
--                 used; the node runs clients of its own), or nil. They apply
--                 over the node config's [<node>-kafka...] sections.
--   options.config    NODE.config file, or a kafkacrypto.store object
--                     (default "<node_id>.config")
--   options.key_wait_interval       s a deserializer waits per try for a
--                                   missing key (default 1)
--   options.exchange_variant        a Lua file composing key requests and replies
--                                   instead of the standard exchange (default: the
--                                   settings' exchange_variant); scripts/variants/README.md
--   options.max_key_wait_intervals  tries after the first message (default 0)
--                     (all waits of a root share deser_initial_wait_intervals
--                     - 1 + max_key_wait_intervals intervals, refilled when a
--                     key for the root arrives: made-up key indices cannot
--                     hold a consumer, spec D4)
--   options.allowlist_topic / denylist_topic   apply those topics (default true)
--   options.metrics_listen  "HOST:PORT": serves the node's metrics in the
--                     Prometheus text format at http://HOST:PORT/metrics
--                     (default: kafkacrypto.cfg's metrics_listen; false: none)
--   options.policies  policy files asked before answering key requests and
--                     using key replies, after kafkacrypto.cfg's (they can
--                     only refuse; policies/README.md)
-- kafkacrypto.new{ node_id = ..., config = ..., producer = ..., consumer = ... }
-- is the same. Methods: :key_serializer(), :value_serializer(),
-- :key_deserializer(), :value_deserializer()  (getKeySerializer, ...),
-- :serve_metrics("HOST:PORT") -> port (0 picks a free one), :metrics_port(), :metrics_page(),
-- :node_id(), :stats() (counters: requests_sent, replies_sent, replies_sent_again
-- (D3: each reply is sent once more about 1 s later), keys_received,
-- refused, chains_adopted, list_entries_added, key_indices_given_up,
-- key_indices_replaced; and roots = {ROOT = {requests_answered, replies_sent,
-- requests_refused, requests_not_held}} for the key requests seen per root),
-- :close(), and :producer_keys() -> {{root=, key_index=}, ...}:
-- the producer keys the node holds and serves (earlier runs' from oldkeys
-- included; key_index is hex for long indices), never their secrets.
local function options_of(client)
  if type(client) == "table" and client._options then return client._options end
  return client
end

function kafkacrypto.new(node_id, producer, consumer, options)
  local o
  if type(node_id) == "table" then
    o = node_id
  else
    o = {}
    for k, v in pairs(options or {}) do o[k] = v end
    o.node_id, o.producer, o.consumer = node_id, producer, consumer
  end
  o.producer, o.consumer = options_of(o.producer), options_of(o.consumer)
  local listen = o.metrics_listen
  if listen == nil then listen = core.settings().metrics_listen end
  if listen ~= nil and listen ~= false and type(listen) ~= "string" then
    core.error("new: metrics_listen: expected \"HOST:PORT\" or false")
  end
  o.metrics_listen = nil
  local node = core.node_open(o)
  if listen then
    local ok, err = pcall(node.serve_metrics, node, listen)
    if not ok then
      node:close()
      error(err, 0)
    end
  end
  return node
end

-- kafkacrypto.provision{ node_id = ..., role = ..., rot_password = ...,
--                        provisioning_password = ..., topics = {...},
--                        pathlen = 1, lifetime = seconds, dir = "." }
-- Writes <dir>/<node_id>.config, .crypto and .seed as upstream's
-- simple-provision does: every node provisioned with the same root of
-- trust password trusts the same root. role: "producer", "consumer",
-- "consumer-limited", "prodcon", "prodcon-limited" or "controller".
-- topics: root topics the node may use (default: all).
function kafkacrypto.provision(request)
  return core.provision(request)
end

-- The root topic of a topic: keys are shared per root. By default the text
-- before the first separator ("." unless configured), as upstream:
--   get_root("example001.foo.bar") == "example001"
function kafkacrypto.get_root(topic)
  return core.root(topic)
end

-- Installs the rule used everywhere a root is needed (serializers and key
-- exchange). `rule` is
--   a function(topic) -> root,   e.g. function(t) return t:match("^[^_]+") end
--   a separator string,          e.g. "_"  (upstream's rule, other separator)
--   nil                          upstream's rule with the configured separator
function kafkacrypto.set_root_rule(rule)
  core.set_root_rule(rule)
end

-- Serving until told to stop:
--   kafkacrypto.wait_for_signal([seconds]) -> "SIGINT", "SIGTERM" or nil
--       Waits (no limit when seconds is nil) for SIGINT or SIGTERM and
--       returns its name, or nil when the time is up. From its first call
--       on, these signals no longer end the process: each is remembered
--       until a call returns it (wait_for_signal(0) only checks).
--   kafkacrypto.catch_signals(true|false)
--       Starts catching them without waiting, or gives them back their
--       default effect (ending the process) and forgets those caught.
--   kafkacrypto.clock() -> seconds from an arbitrary start, monotonic and
--       sub-second (for deadlines: os.clock is CPU time, os.time whole seconds)
-- Catching is process-wide; Kafka clients and nodes keep running meanwhile.
kafkacrypto.wait_for_signal = core.wait_for_signal
-- kafkacrypto.metrics_server("HOST:PORT") -> server: :set(text) serves text at
-- /metrics (Prometheus), :port(), :close(). For tools without a node.
kafkacrypto.metrics_server = core.metrics_server
kafkacrypto.catch_signals = core.catch_signals
kafkacrypto.clock = core.clock

-- The runtime settings (kafkacrypto.cfg and command line), read-only copy.
function kafkacrypto.settings()
  return core.settings()
end

-- The protocol tunables (spec §7.2) as configured, by lower-case name.
function kafkacrypto.tunables()
  return core.tunables()
end

return kafkacrypto
