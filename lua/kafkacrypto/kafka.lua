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
local log = require("kafkacrypto.log").logger("kafkacrypto.kafka")

local kafka = {}

local function as_list(partitions)
  if type(partitions) == "table" and partitions.topic then return { partitions } end
  return partitions
end

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
-- partition, offset}; send{..., on_delivery = f} gives one message its own.
-- A failed delivery that no callback receives makes flush() raise.
function kafka.producer(config)
  local options, own = split_config(config, PRODUCER_OWN, "producer")
  local self = setmetatable({
    key_serializer = serde.check(own.key_serializer, "serialize", "key_serializer"),
    value_serializer = serde.check(own.value_serializer, "serialize", "value_serializer"),
    on_delivery = own.on_delivery,
    _options = options,   -- kafkacrypto.new reads a client's options from here
    _callbacks = {},      -- seq -> the message's own on_delivery
    _failed = 0,          -- failures no callback received since the last flush (_last_error)
  }, Producer)
  if self.on_delivery ~= nil and type(self.on_delivery) ~= "function" then
    core.error("producer: on_delivery: expected a function")
  end
  -- A kafkacrypto value serializer (alone or last in a stack) encrypts in
  -- C straight into the send: no Lua string of the ciphertext.
  local vs = self.value_serializer
  local last = type(vs) == "table" and vs.last_stage or vs
  if core.is_serializer(last) then self._c_ser, self._c_before = last, vs ~= last end
  self._handle = core.producer(options, true)
  return self
end

function Producer:_report()
  -- without callbacks only failures need a report (no table per message)
  local reports = self._handle:deliveries(self.on_delivery == nil and next(self._callbacks) == nil)
  if not reports then return end
  for _, r in ipairs(reports) do
    local cb = self._callbacks[r.seq] or self.on_delivery
    self._callbacks[r.seq] = nil
    if cb then
      cb(r.error, r)
    elseif r.error then
      self._failed, self._last_error = self._failed + 1, r.error
      log:warning("Message to topic %s not delivered: %s", r.topic, r.error)
    end
  end
end

local SEND_FIELDS = { topic = true, key = true, value = true, partition = true, headers = true,
                      timestamp = true, on_delivery = true }

-- producer:send(topic, key, value[, partition]) or
-- producer:send{ topic = ..., key = ..., value = ..., partition = ...,
--                headers = { {name, value}, ... }, timestamp = ms,
--                on_delivery = function(err, report) }
-- Headers pass in plaintext (names may repeat; a value may be nil); the
-- serializers see only the key and value. timestamp: ms since 1970
-- (default: now). Any other field is an error. Returns the message's
-- number, as in delivery reports.
function Producer:send(topic, key, value, partition)
  local headers, timestamp, on_delivery
  if type(topic) == "table" then
    for k in pairs(topic) do
      if not SEND_FIELDS[k] then
        core.error(("send: unknown field %s (expected topic, key, value, partition, headers, "
                    .. "timestamp, on_delivery)"):format(tostring(k)))
      end
    end
    local m = topic
    topic, key, value, partition = m.topic, m.key, m.value, m.partition
    headers, timestamp, on_delivery = m.headers, m.timestamp, m.on_delivery
    if on_delivery ~= nil and type(on_delivery) ~= "function" then
      core.error("send: on_delivery: expected a function")
    end
  end
  if type(topic) ~= "string" then
    core.error("send: expected a topic name, got " .. type(topic))
  end
  key = check_bytes(serde.serialize(self.key_serializer, topic, key), "key", topic)
  local seq
  if self._c_ser then   -- encrypted in C straight into the send
    if self._c_before then   -- the stack's stages before the last
      local vs = self.value_serializer
      value = vs:serialize(topic, value, vs.count - 1)
    end
    seq = self._handle:send(topic, key, value, partition, headers, timestamp, self._c_ser)
  else
    value = check_bytes(serde.serialize(self.value_serializer, topic, value), "value", topic)
    seq = self._handle:send(topic, key, value, partition, headers, timestamp)
  end
  if on_delivery then self._callbacks[seq] = on_delivery end
  self:_report()
  return seq
end

-- Serves delivery reports for up to `timeout` seconds (default 0).
function Producer:poll(timeout)
  self._handle:poll(timeout)
  self:_report()
end

-- Waits until every message sent is delivered (or failed), at most
-- `timeout` seconds (default: no limit). Returns the number of messages
-- still queued (0 when all are done). Raises when deliveries failed that
-- no on_delivery callback received.
function Producer:flush(timeout)
  self._handle:flush(timeout)
  self:_report()
  local queued = self._handle:queued()
  if self._failed > 0 then
    local n, why = self._failed, self._last_error
    self._failed = 0
    core.error(("flush: %d message(s) failed since the last flush (last error: %s)")
               :format(n, why))
  end
  return queued
end

-- The latest statistics JSON of librdkafka (set statistics.interval.ms),
-- or nil before the first; poll() or flush() serve them.
function Producer:statistics()
  return self._handle:statistics()
end

-- {sent = n, delivered = n, failed = n, rejected = n, last_error = "..."}:
-- failed counts failed deliveries and sends refused at once (rejected).
function Producer:stats()
  return self._handle:stats()
end

-- Flushes (at most `timeout` seconds, default: no limit) and closes.
function Producer:close(timeout)
  if self._closed then return end
  self._handle:poll(0)
  self._handle:flush(timeout)
  pcall(self._report, self)
  self._handle:close(timeout)
  self._closed = true
end

---------------------------------------------------------------------------
-- Consumer

local Consumer = {}
Consumer.__index = Consumer

local CONSUMER_OWN = { key_deserializer = true, value_deserializer = true, key_topics = true,
                       deserialize_threads = true, deserialize_in_flight = true,
                       poll_key_wait = true, hold_undecryptable = true, hold_max_messages = true,
                       hold_max_bytes = true }
local HOLD_RETRY_EVERY = 0.1   -- s between retries of held messages

-- kafkacrypto.consumer{ "topic1", "topic2", group_id = ..., value_deserializer = ... }
-- Topics listed first are subscribed to, as KafkaConsumer("topic1", ...)
-- does. Without group_id the consumer has a private group and commits
-- nothing (kafka-python's group_id=None). With enable_partition_eof = true
-- (librdkafka's enable.partition.eof), poll() also returns {eof = true,
-- topic, partition, offset} each time a partition's end is reached.
-- key_topics = true: a pattern subscription also delivers the key-exchange
-- topics (.reqs .keys .subs, chains, allowlist, denylist), left out by default.
--
-- deserialize_threads = n (default: none) decrypts values on n worker
-- threads while poll() returns earlier messages: for a consumer bound by
-- one core's decryption (many partitions, large values). The
-- value_deserializer must then be a kafkacrypto value deserializer or a
-- serde.stack starting with one. Messages of one partition still come in
-- offset order; at most deserialize_in_flight (default 256) are read ahead,
-- and offsets are stored for commits only as messages are returned.
-- End-of-partition events keep their place among a partition's messages.
--
-- Missing keys (README "Undecryptable messages"):
-- poll_key_wait = SECONDS (default: the poll's own timeout, at least 1; 0 with
--   hold_undecryptable): the most one poll() call sleeps for missing keys,
--   in total over every message and root it deserializes. Past it, a message whose key has not come is
--   delivered undecrypted (its key is still asked for).
-- hold_undecryptable = SECONDS: such messages are held instead, and
--   delivered decrypted as soon as their key arrives, while decryptable
--   messages flow on; what is still undecryptable after SECONDS is delivered
--   as without the hold. hold_max_messages (default 10000) and
--   hold_max_bytes (default 64 MiB) bound the hold: at the bound the
--   consumer pauses its partitions (no message is dropped) until keys come
--   or held messages time out. consumer:hold_stats() counts them.
function kafka.consumer(config)
  local options, own, topics = split_config(config, CONSUMER_OWN, "consumer")
  local function seconds(name, default)
    local v = own[name]
    if v == nil then return default end
    if type(v) ~= "number" or not (v >= 0) then
      core.error(("consumer: %s: expected seconds >= 0"):format(name))
    end
    return v
  end
  local hold = seconds("hold_undecryptable", nil)
  local self = setmetatable({
    key_deserializer = serde.check(own.key_deserializer, "deserialize", "key_deserializer"),
    value_deserializer = serde.check(own.value_deserializer, "deserialize", "value_deserializer"),
    _options = options,
    _key_topics = own.key_topics,
    _poll_key_wait = seconds("poll_key_wait", hold and 0 or nil),
  }, Consumer)
  if hold then
    local function count(name, default)
      local v = own[name] == nil and default or own[name]
      if type(v) ~= "number" or v < 1 or v % 1 ~= 0 then
        core.error(("consumer: %s: expected a whole number >= 1"):format(name))
      end
      return v
    end
    self._hold = { seconds = hold, max = count("hold_max_messages", 10000),
                   max_bytes = count("hold_max_bytes", 64 * 1024 * 1024),
                   list = {}, first = 1, last = 0, bytes = 0, ready = {},
                   last_retry = -math.huge, paused = nil,
                   held = 0, released = 0, expired = 0, pauses = 0 }
  elseif own.hold_max_messages ~= nil or own.hold_max_bytes ~= nil then
    core.error("consumer: hold_max_messages and hold_max_bytes need hold_undecryptable")
  end
  if options.enable_partition_eof ~= nil then
    options["enable.partition.eof"], options.enable_partition_eof = options.enable_partition_eof, nil
  end
  -- A kafkacrypto value deserializer (alone or first in a stack) decrypts
  -- in C as the record is polled (no Lua string of the ciphertext), or on
  -- the pool's threads; a stack's later stages run in _deserialize.
  local vd = self.value_deserializer
  local first = type(vd) == "table" and vd.first_stage or vd
  if core.is_deserializer(first) then self._c_deser, self._c_rest = first, vd ~= first end
  local threads = own.deserialize_threads
  if threads ~= nil and hold then
    core.error("consumer: deserialize_threads and hold_undecryptable cannot be used together")
  elseif threads ~= nil then
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
  for k in pairs(topics) do
    if type(k) ~= "number" and k ~= "pattern" then
      core.error(("subscribe: unknown field %s (expected topics and pattern)"):format(tostring(k)))
    end
  end
  for i, t in ipairs(topics) do list[i] = t end
  self._pattern = topics.pattern ~= nil
  for _, t in ipairs(list) do
    if t:sub(1, 1) == "^" then self._pattern = true end
  end
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
  self._pattern = false
  self._handle:assign(as_list(partitions))
end

-- Moves the read position of an assigned partition: offset is a number,
-- "beginning", "end", or {timestamp = ms} (the first message at or after
-- that time, else the end).
function Consumer:seek(topic, partition, offset, timeout)
  if type(offset) == "table" then
    if type(offset.timestamp) ~= "number" then
      core.error("seek: expected an offset, \"beginning\", \"end\" or {timestamp = ms}")
    end
    offset = self._handle:offsets_for_times({ { topic = topic, partition = partition,
                                               offset = offset.timestamp } }, timeout)[1].offset
  end
  if offset == nil or offset == "stored" then
    core.error("seek: expected an offset, \"beginning\", \"end\" or {timestamp = ms}")
  end
  self._handle:seek({ { topic = topic, partition = partition, offset = offset } }, timeout)
end

-- pause/resume fetching partitions: {topic =, partition =} or a list of them.
function Consumer:pause(partitions) self._handle:pause(as_list(partitions)) end
function Consumer:resume(partitions) self._handle:resume(as_list(partitions)) end

-- The next offset to read of each partition given (default: the
-- assignment), as a list of {topic, partition, offset}; offset nil when
-- nothing was read yet.
function Consumer:position(partitions)
  return self._handle:position(partitions and as_list(partitions) or self:assignment())
end

-- The group's committed offsets, the same way (waits at most `timeout` s, default 10).
function Consumer:committed(partitions, timeout)
  return self._handle:committed(partitions and as_list(partitions) or self:assignment(), timeout)
end

-- The partitions assigned now: a list of {topic, partition, offset} (the
-- offset given when assigned, nil for a group's stored one).
function Consumer:assignment()
  return self._handle:assignment()
end

-- The low and high watermark offsets of a partition (high: the next offset
-- to be written).
function Consumer:watermarks(topic, partition, timeout)
  return self._handle:watermarks(topic, partition, timeout)
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
function Consumer:_deserialize(msg, raw)
  local ok, key = pcall(serde.deserialize, self.key_deserializer, msg.topic, msg.key)
  local ok2, value
  if raw then                           -- polled as bytes (the hold)
    if ok then ok2, value = pcall(serde.deserialize, self.value_deserializer, msg.topic, msg.value) end
  elseif ok and self._c_rest then           -- decrypted in C; the rest of the stack
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

-- A message object whose key may still come.
local function undecrypted(v)
  return core.is_message(v) and not v:is_cleartext(false) and v:is_possibly_decryptable()
end

-- Deserializes a held entry's parts (bytes, or the message objects of an
-- earlier try): true and the record filled, or false when a part still
-- waits for its key (kept as its message object for the next try).
function Consumer:_try_held(e)
  local parts = {}
  for _, f in ipairs{ "key", "value" } do
    local ok, v = pcall(serde.deserialize, self[f .. "_deserializer"], e.msg.topic, e[f])
    if ok and undecrypted(v) then
      e[f] = v
      return false
    elseif not ok and errors.is(v, errors.MESSAGE) and undecrypted(v.value) then
      e[f] = v.value
      return false
    elseif not ok then
      local m = e.msg
      m.key, m.value = e.key, e.value
      return self:_deserialize(m, true)   -- raises, naming the record
    end
    parts[f] = v
  end
  e.msg.key, e.msg.value = parts.key, parts.value
  return true
end

local function hold_size(msg)
  return #(msg.key or "") + #(msg.value or "") + 64
end

-- The node of a kafkacrypto value deserializer counts held messages per root.
function Consumer:_count_hold(topic, what)
  if self._c_deser then core.count_hold(self._c_deser, topic, what) end
end

-- Pauses the assignment at the hold's bound, resumes it below.
function Consumer:_hold_flow()
  local h = self._hold
  local full = h.last - h.first + 1 >= h.max or h.bytes >= h.max_bytes
  if full and not h.paused then
    h.paused = self:assignment()
    h.pauses = h.pauses + 1
    if #h.paused > 0 then self._handle:pause(h.paused) end
  elseif not full and h.paused then
    local list = h.paused
    h.paused = nil
    -- a rebalance may have taken some away meanwhile
    if #list > 0 then pcall(self._handle.resume, self._handle, list) end
  end
end

-- Retries held messages (oldest first): the decrypted and the timed out go
-- to the ready queue in their order.
function Consumer:_hold_retry(force)
  local h = self._hold
  local now = core.clock()
  if h.first > h.last or (not force and now - h.last_retry < HOLD_RETRY_EVERY) then return end
  h.last_retry = now
  local keep = {}
  for i = h.first, h.last do
    local e = h.list[i]
    h.list[i] = nil
    local out
    if self:_try_held(e) then
      h.released = h.released + 1
      self:_count_hold(e.msg.topic, "released")
      out = e.msg
    elseif now - e.t >= h.seconds then
      h.expired = h.expired + 1
      self:_count_hold(e.msg.topic, "expired")
      out = e   -- delivered as without the hold, by poll
    end
    if out then
      h.bytes = h.bytes - e.size
      h.ready[#h.ready + 1] = out
    else
      keep[#keep + 1] = e
    end
  end
  h.list, h.first, h.last = keep, 1, #keep
  self:_hold_flow()
end

-- With the hold: the next message to deliver (a held one that became
-- ready, else one just polled), or nil when the one polled was held.
function Consumer:_hold_take(msg)
  local h = self._hold
  if msg then
    local e = { msg = msg, key = msg.key, value = msg.value }
    if self:_try_held(e) then
      if #h.ready == 0 then return msg end
      h.ready[#h.ready + 1] = msg
    else
      e.t, e.size = core.clock(), hold_size(msg)
      h.last = h.last + 1
      h.list[h.last] = e
      h.held, h.bytes = h.held + 1, h.bytes + e.size
      self:_count_hold(msg.topic, "held")
      self:_hold_flow()
    end
  end
  local out = table.remove(h.ready, 1)
  if out and out.msg then   -- timed out: as without the hold
    out.msg.key, out.msg.value = out.key, out.value
    return self:_deserialize(out.msg, true)
  end
  return out
end

function Consumer:_poll(timeout)
  -- Key-exchange topics are dropped in C before any decryption (and,
  -- with a pool, before they are queued).
  local skip = self._pattern and not self._key_topics and kafka.is_key_topic or nil
  local h = self._hold
  if not h then
    local msg = self._handle:poll(timeout, self._c_deser, skip)
    if msg and not msg.eof then return self:_deserialize(msg) end
    return msg
  end
  -- With the hold, values are polled as bytes: _try_held deserializes them.
  local deadline = core.clock() + (timeout or 0)
  repeat
    self:_hold_retry(false)
    if #h.ready > 0 then return self:_hold_take(nil) end
    local left = math.max(0, deadline - core.clock())
    -- with messages held, wake up to retry them
    if h.first <= h.last then left = math.min(left, HOLD_RETRY_EVERY) end
    local msg = self._handle:poll(left, nil, skip)
    if msg and msg.eof then return msg end
    if msg then
      local out = self:_hold_take(msg)
      if out then return out end
    end
  until not msg and core.clock() >= deadline
end

-- Waits up to `timeout` seconds (default 0) for a message: a table
-- {topic, partition, offset, key, value, headers = {{name, value}, ...},
-- timestamp (ms), timestamp_type ("create" or "log_append")}, or nil.
-- Sleeps for missing keys at most poll_key_wait (default: timeout, at least 1) seconds in all.
function Consumer:poll(timeout)
  core.limit_key_wait(self._poll_key_wait or math.max(timeout or 0, 1))
  local ok, msg = pcall(self._poll, self, timeout)
  core.limit_key_wait(nil)
  if not ok then error(msg, 0) end
  return msg
end

-- The hold's counters (hold_undecryptable): {held, released, expired,
-- waiting, bytes, pauses, paused}; nil without the hold.
function Consumer:hold_stats()
  local h = self._hold
  if not h then return nil end
  return { held = h.held, released = h.released, expired = h.expired,
           waiting = h.last - h.first + 1, bytes = h.bytes, pauses = h.pauses,
           paused = h.paused ~= nil }
end

-- Up to `max` messages within `timeout` seconds (default 0): a list,
-- maybe empty. Stops early at max.
function Consumer:poll_batch(max, timeout)
  if type(max) ~= "number" or max < 1 then core.error("poll_batch: max: expected a number >= 1") end
  local batch, deadline = {}, core.clock() + (timeout or 0)
  while #batch < max do
    local msg = self:poll(math.max(0, deadline - core.clock()))
    if not msg then break end
    batch[#batch + 1] = msg
  end
  return batch
end

-- True for the topics of the key exchange (with the configured suffixes
-- and management topic names).
function kafka.is_key_topic(topic)
  local t = core.tunables()
  for _, suffix in ipairs{ t.topic_suffix_reqs, t.topic_suffix_keys, t.topic_suffix_subs } do
    if #topic > #suffix and topic:sub(-#suffix) == suffix then return true end
  end
  return topic == t.mgmt_topic_chains or topic == t.mgmt_topic_allowlist
         or topic == t.mgmt_topic_denylist
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

-- Commits, for a consumer with group_id (and enable_auto_commit = false):
-- without offsets those of the messages polled so far, else the given list
-- of {topic, partition, offset} (offset: the next one to read).
-- Synchronous unless async is true (then failures are logged).
function Consumer:commit(offsets, async)
  if offsets == nil and not async then return self._handle:commit() end
  self._handle:commit_offsets(offsets and as_list(offsets) or {}, async)
end

-- Leaves the group and closes.
function Consumer:close()
  if self._closed then return end
  self._handle:close()
  self._closed = true
end

---------------------------------------------------------------------------
-- Admin (librdkafka's Admin API)

local Admin = {}
Admin.__index = Admin

-- kafkacrypto.admin{ bootstrap_servers = ..., ... } (producer options)
function kafka.admin(config)
  local options = split_config(config, {}, "admin")
  return setmetatable({ _handle = core.admin(options) }, Admin)
end

-- admin:create_topics({ {name = "t", partitions = 1, replication = 3,
--                        config = {["cleanup.policy"] = "compact"}}, ... },
--                     {exist_ok = true, timeout = 30})
-- partitions default 1, replication the broker's default. Raises naming
-- each topic that could not be created.
function Admin:create_topics(topics, options)
  options = options or {}
  self._handle:create_topics(topics, options.exist_ok, options.timeout)
end

-- The topics of a root's key exchange: ROOT.reqs, ROOT.keys, ROOT.subs
-- (with the configured suffixes); with management = true also chains,
-- allowlist and denylist. Nodes read partition 0 only, so 1 partition is
-- the default. Existing ones are fine.
function Admin:create_key_topics(root, options)
  options = options or {}
  local t, list = core.tunables(), {}
  local function add(name)
    list[#list + 1] = { name = name, partitions = options.partitions or 1,
                        replication = options.replication, config = options.config }
  end
  for _, suffix in ipairs{ t.topic_suffix_reqs, t.topic_suffix_keys, t.topic_suffix_subs } do
    add(root .. suffix)
  end
  if options.management then
    for _, name in ipairs{ t.mgmt_topic_chains, t.mgmt_topic_allowlist, t.mgmt_topic_denylist } do
      add(name)
    end
  end
  self:create_topics(list, { exist_ok = options.exist_ok ~= false, timeout = options.timeout })
  return list
end

-- {brokers = {{id, host, port}}, topics = {{name, error, partitions =
-- {{id, leader, replicas = {...}, isrs = {...}, error}}}}, controller_id,
-- orig_broker_id, orig_broker_name}: of one topic, or all when nil.
function Admin:metadata(topic, timeout)
  return self._handle:metadata(topic, timeout)
end

function Admin:close()
  self._handle:close()
end

return kafka
