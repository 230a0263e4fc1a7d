-- A Kafka broker inside this process (librdkafka's mock cluster on
-- 127.0.0.1), for scripts and tests:
--
--   local broker = kafkacrypto.broker.start{ topics = { "a", "b" }, partitions = 1 }
--   local producer = kafkacrypto.producer{ bootstrap_servers = broker.bootstrap_servers }
--   ...
--   broker:stop()
--
-- It is a test broker: topics are created with 4 partitions on first use
-- (create them first for another count), a new consumer group takes 3 s to
-- form, nothing is compacted and a partition keeps about 5 MiB.

local core = require "kafkacrypto.core"

local broker = {}

local Broker = {}
Broker.__index = Broker

local function wrap(handle, port)
  return setmetatable({
    _handle = handle,
    bootstrap_servers = port and ("127.0.0.1:" .. port) or handle:bootstrap(),
  }, Broker)
end

-- Creates `name` with `partitions` partitions (default 1); an existing
-- topic is left as it is.
function Broker:create_topic(name, partitions)
  self._handle:create_topic(name, partitions or 1)
end

-- Creates the key-passing topics of `root` (root.subs, root.reqs,
-- root.keys) and the management topics, with one partition each.
function Broker:create_key_topics(root)
  self._handle:create_key_topics(root)
end

function Broker:stop()
  self._handle:stop()
end

-- broker.start{ topics = {...} or {name = partitions, ...}, partitions = 1,
--               port = N } -> a new broker, independent of the embedded one.
-- port adds a fixed bootstrap port (relayed to the broker's own).
function broker.start(options)
  options = options or {}
  local handle = core.broker_start()
  handle:create_key_topics()
  local default = options.partitions or 1
  for k, v in pairs(options.topics or {}) do
    if type(k) == "number" then
      handle:create_topic(v, default)
    else
      handle:create_topic(k, v)
    end
  end
  local port = options.port and handle:listen(options.port)
  return wrap(handle, port)
end

-- The process's embedded broker, which clients without bootstrap_servers
-- use (started now if needed).
function broker.embedded()
  return wrap(core.broker_embedded())
end

return broker
