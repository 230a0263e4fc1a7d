-- Kafka producer and consumer objects, in the manner of kafka-python's
-- KafkaProducer and KafkaConsumer, over librdkafka.
--
-- Configuration tables take kafka-python option names (bootstrap_servers,
-- group_id, auto_offset_reset, ...) or librdkafka property names
-- ("socket.timeout.ms"), plus the serializers. Options from kafkacrypto.cfg
-- apply first; the table's win. Times are in seconds.

local core = require "kafkacrypto.core"
local errors = require "kafkacrypto.errors"
local serde = require "kafkacrypto.serde"

local kafka = {}

-- Splits a config table into librdkafka options and our own fields.
local function split_config(config, own_names, what)
  if config ~= nil and type(config) ~= "table" then
    core.error(("%s: expected a config table, got %s"):format(what, type(config)))
  end
  local options, own, positional = {}, {}, {}
  for k, v in pairs(config or {}) do
    if own_names[k] then
      own[k] = v
    elseif type(k) == "number" then
      positional[k] = v
    else
      options[k] = v
    end
  end
  return options, own, positional
end

local function check_bytes(v, what, topic)
  if v == nil or type(v) == "string" then return v end
  core.error(("send to %s: %s is a %s after serialization, expected a string or nil "
              .. "(set a %s_serializer)"):format(topic, what, type(v), what))
end

---------------------------------------------------------------------------
-- Producer

local Producer = {}
Producer.__index = Producer

local PRODUCER_OWN = { key_serializer = true, value_serializer = true, on_delivery = true }

-- kafkacrypto.producer{ bootstrap_servers = ..., key_serializer = ...,
--                       value_serializer = ..., on_delivery = function(err, report) }
-- on_delivery, if given, is called (from send, poll, flush and close) once
-- per message with err = nil or a reason, and report = {seq, topic,
-- partition, offset}. Without it, failed deliveries make flush() raise.
function kafka.producer(config)
  local options, own = split_config(config, PRODUCER_OWN, "producer")
  local self = setmetatable({
    key_serializer = serde.check(own.key_serializer, "serialize", "key_serializer"),
    value_serializer = serde.check(own.value_serializer, "serialize", "value_serializer"),
    on_delivery = own.on_delivery,
    _options = options,   -- kafkacrypto.new reads a client's options from here
  }, Producer)
  if self.on_delivery ~= nil and type(self.on_delivery) ~= "function" then
    core.error("producer: on_delivery: expected a function")
  end
  -- A kafkacrypto value serializer (alone or last in a stack) encrypts in
  -- C straight into the send: no Lua string of the ciphertext.
  local vs = self.value_serializer
  local last = type(vs) == "table" and vs.last_stage or vs
  if core.is_serializer(last) then self._c_ser, self._c_before = last, vs ~= last end
  self._handle = core.producer(options, self.on_delivery ~= nil)
  return self
end

function Producer:_report()
  if not self.on_delivery then return end
  for _, r in ipairs(self._handle:deliveries()) do
    self.on_delivery(r.error, r)
  end
end

-- producer:send(topic, key, value[, partition]) or
-- producer:send{ topic = ..., key = ..., value = ..., partition = ... }
-- Returns the message's number, as used in delivery reports.
function Producer:send(topic, key, value, partition)
  if type(topic) == "table" then
    topic, key, value, partition = topic.topic, topic.key, topic.value, topic.partition
  end
  if type(topic) ~= "string" then
    core.error("send: expected a topic name, got " .. type(topic))
  end
  key = check_bytes(serde.serialize(self.key_serializer, topic, key), "key", topic)
  local seq
  if self._c_ser then
    if self._c_before then   -- the stack's stages before the last
      local vs = self.value_serializer
      value = vs:serialize(topic, value, vs.count - 1)
    end
    seq = self._handle:send(topic, key, value, partition, self._c_ser)
  else
    value = check_bytes(serde.serialize(self.value_serializer, topic, value), "value", topic)
    seq = self._handle:send(topic, key, value, partition)
  end
  self:_report()
  return seq
end

-- Serves delivery reports for up to `timeout` seconds (default 0).
function Producer:poll(timeout)
  self._handle:poll(timeout)
  self:_report()
end

-- Waits until every message sent is delivered (or failed), at most
-- `timeout` seconds (default: no limit). Raises when messages remain.
function Producer:flush(timeout)
  local ok, err = pcall(self._handle.flush, self._handle, timeout)
  self:_report()
  if not ok then core.error(tostring(err)) end
end

-- {sent = n, delivered = n, failed = n, last_error = "..."}
function Producer:stats()
  return self._handle:stats()
end

-- Flushes (at most `timeout` seconds, default: no limit) and closes.
function Producer:close(timeout)
  if self._closed then return end
  self._handle:poll(0)
  pcall(self._handle.flush, self._handle, timeout)
  self:_report()
  self._handle:close(timeout)
  self._closed = true
end

---------------------------------------------------------------------------
-- Consumer

local Consumer = {}
Consumer.__index = Consumer

local CONSUMER_OWN = { key_deserializer = true, value_deserializer = true,
                       deserialize_threads = true, deserialize_in_flight = true }

-- kafkacrypto.consumer{ "topic1", "topic2", group_id = ..., value_deserializer = ... }
-- Topics listed first are subscribed to, as KafkaConsumer("topic1", ...)
-- does. Without group_id the consumer has a private group and commits
-- nothing (kafka-python's group_id=None).
--
-- deserialize_threads = n (default: none) decrypts values on n worker
-- threads while poll() returns earlier messages: for a consumer bound by
-- one core's decryption (many partitions, large values). The
-- value_deserializer must then be a kafkacrypto value deserializer or a
-- serde.stack starting with one. Messages of one partition still come in
-- offset order; at most deserialize_in_flight (default 256) are read ahead,
-- and offsets are stored for commits only as messages are returned.
function kafka.consumer(config)
  local options, own, topics = split_config(config, CONSUMER_OWN, "consumer")
  local self = setmetatable({
    key_deserializer = serde.check(own.key_deserializer, "deserialize", "key_deserializer"),
    value_deserializer = serde.check(own.value_deserializer, "deserialize", "value_deserializer"),
    _options = options,
  }, Consumer)
  -- A kafkacrypto value deserializer (alone or first in a stack) decrypts
  -- in C as the record is polled (no Lua string of the ciphertext), or on
  -- the pool's threads; a stack's later stages run in _deserialize.
  local vd = self.value_deserializer
  local first = type(vd) == "table" and vd.first_stage or vd
  if core.is_deserializer(first) then self._c_deser, self._c_rest = first, vd ~= first end
  local threads = own.deserialize_threads
  if threads ~= nil then
    if not self._c_deser then
      core.error("consumer: deserialize_threads: the value_deserializer must be a kafkacrypto "
                 .. "value deserializer or a serde.stack starting with one")
    end
    options["enable.auto.offset.store"] = "false"
  end
  self._handle = core.consumer(options)
  if threads ~= nil then self._handle:use_pool(first, threads, own.deserialize_in_flight) end
  if #topics > 0 then self:subscribe(topics) end
  return self
end

-- consumer:subscribe{"topic1", "topic2"}, consumer:subscribe("topic"),
-- consumer:subscribe{pattern = "^example.*"}. Names starting with "^" are
-- regular expressions. Replaces the previous subscription.
function Consumer:subscribe(topics)
  if type(topics) == "string" then topics = { topics } end
  if type(topics) ~= "table" then
    core.error("subscribe: expected a list of topics or {pattern = ...}")
  end
  local list = {}
  for i, t in ipairs(topics) do list[i] = t end
  if topics.pattern then
    local p = topics.pattern
    list[#list + 1] = p:sub(1, 1) == "^" and p or "^" .. p
  end
  self._handle:subscribe(list)
end

-- consumer:assign{ {topic = "t", partition = 0, offset = "beginning"}, ... }
-- offset: a number, "beginning", "end" (what is produced from now on), or
-- "stored"/nil (the group's committed offset, else auto_offset_reset).
-- Replaces any subscription.
function Consumer:assign(partitions)
  if type(partitions) == "table" and partitions.topic then partitions = { partitions } end
  self._handle:assign(partitions)
end

-- The number of partitions of `topic` in the cluster's metadata, 0 when it
-- does not exist (yet). Waits at most `timeout` seconds (default 5).
function Consumer:partition_count(topic, timeout)
  return self._handle:partition_count(topic, timeout)
end

-- A failing deserializer's error names the record; an error object
-- (kafkacrypto.errors) stays one, with the raw record as err.record (when
-- a kafkacrypto deserializer decrypted the value in C and a later stack
-- stage failed, record.value is that message object: the ciphertext was
-- never made a Lua string).
function Consumer:_deserialize(msg)
  local ok, key = pcall(serde.deserialize, self.key_deserializer, msg.topic, msg.key)
  local ok2, value
  if ok and self._c_rest then           -- decrypted in C; the rest of the stack
    ok2, value = pcall(self.value_deserializer.deserialize, self.value_deserializer, msg.topic,
                       msg.value, 2)
  elseif ok and self._c_deser then      -- decrypted in C
    ok2, value = true, msg.value
  elseif ok then
    ok2, value = pcall(serde.deserialize, self.value_deserializer, msg.topic, msg.value)
  end
  if not (ok and ok2) then
    local err = ok and value or key
    local context = ("%s_deserializer failed on %s[%d] offset %d: "):format(
      ok and "value" or "key", msg.topic, msg.partition, msg.offset)
    local v = msg.value
    if core.is_message(v) and not v:is_cleartext(false) then
      msg.value = v:bytes()   -- decrypted in C: the raw bytes are the message's
    end
    if errors.is(err) then
      err.message, err.record = context .. err.message, msg
      error(err, 0)
    end
    core.error(context .. tostring(err))
  end
  msg.key, msg.value = key, value
  return msg
end

-- Waits up to `timeout` seconds (default 0) for a message: a table
-- {topic, partition, offset, key, value, timestamp (ms)}, or nil.
function Consumer:poll(timeout)
  local msg = self._handle:poll(timeout, self._c_deser)
  if msg then return self:_deserialize(msg) end
end

-- for msg in consumer:messages() do ... end
-- Without a timeout it waits for messages until the consumer is closed;
-- with one, the loop ends when no message came for `timeout` seconds.
function Consumer:messages(timeout)
  return function()
    if self._closed then return nil end
    if timeout ~= nil then return self:poll(timeout) end
    repeat
      local msg = self:poll(1)
      if msg then return msg end
    until self._closed
  end
end

-- Commits the offsets of the messages polled so far, synchronously (for a
-- consumer with group_id and enable_auto_commit = false).
function Consumer:commit()
  self._handle:commit()
end

-- Leaves the group and closes.
function Consumer:close()
  if self._closed then return end
  self._handle:close()
  self._closed = true
end

return kafka
