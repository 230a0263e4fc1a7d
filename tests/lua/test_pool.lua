-- A consumer with deserialize_threads: values decrypted on worker threads,
-- each partition's messages still in offset order, undecryptable and null
-- values in their place, a stack's later stages applied, commits only of
-- what was returned, and bad configurations refused.
local lu = require "luaunit"
local cjson = require "cjson"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"
local serde = kafkacrypto.serde

TestPool = {}

function TestPool:setUp()
  self.dir = h.tmpdir()
  self.kc, self.reader = h.data_paths(self.dir)
end

function TestPool:tearDown()
  self.kc, self.reader = nil, nil
  collectgarbage()
  h.rmtree(self.dir)
end

local PARTS, PER = 3, 40

function TestPool:test_order_per_partition_and_undecryptable_in_place()
  local topic = h.topic("pool")
  h.broker():create_topic(topic, PARTS)
  local producer = h.producer{ value_serializer = self.kc:value_serializer() }
  for seq = 1, PER do
    for p = 0, PARTS - 1 do
      local value = ("p%d #%d "):format(p, seq) .. ("x"):rep(seq * 37 % 3000)
      if seq == 5 then value = nil end
      producer:send(topic, nil, value, p)
    end
  end
  producer:flush()
  self.kc:share_keys_with(self.reader, topic)
  -- not kafkacrypto at all: comes back undecrypted, in its place
  local raw = h.producer()
  raw:send(topic, nil, "plain bytes", 1)
  raw:flush()
  raw:close()
  producer:send(topic, nil, ("p1 #%d "):format(PER + 2), 1)
  producer:flush()
  producer:close()

  local consumer = h.consumer{ value_deserializer = self.reader:value_deserializer(),
                               deserialize_threads = 2, deserialize_in_flight = 8 }
  local tps = {}
  for p = 0, PARTS - 1 do tps[#tps + 1] = { topic = topic, partition = p, offset = "beginning" } end
  consumer:assign(tps)
  local got = h.collect(consumer, PARTS * PER + 2)
  consumer:close()
  lu.assertEquals(#got, PARTS * PER + 2)
  local last = {}
  for _, m in ipairs(got) do
    lu.assertTrue(m.offset > (last[m.partition] or -1), "offset order in partition " .. m.partition)
    last[m.partition] = m.offset
    local seq = m.offset + 1
    if seq == 5 then
      lu.assertNil(m.value)
    elseif m.partition == 1 and seq == PER + 1 then
      lu.assertTrue(kafkacrypto.is_message(m.value))
      lu.assertFalse(m.value:is_cleartext(false))
      lu.assertFalse(m.value:is_possibly_decryptable())
      lu.assertEquals(m.value:bytes(), "plain bytes")
    else
      lu.assertTrue(m.value:is_cleartext(false))
      local text = m.value:get_message()
      lu.assertEquals(text:match("^p(%d) #(%d+) "), tostring(m.partition))
      lu.assertEquals(tonumber(text:match("^p%d #(%d+) ")), seq)
    end
  end
end

function TestPool:test_stack_applies_its_later_stages()
  local topic = h.topic("poolstack")
  local producer = h.producer{ value_serializer = serde.stack(cjson.encode, self.kc:value_serializer()) }
  for i = 1, 10 do producer:send(topic, nil, { n = i }, 0) end
  producer:flush()
  producer:close()
  self.kc:share_keys_with(self.reader, topic)
  local consumer = h.consumer{
    value_deserializer = serde.stack(self.reader:value_deserializer(), cjson.decode),
    deserialize_threads = 1 }
  consumer:assign{ topic = topic, partition = 0, offset = "beginning" }
  local got = h.collect(consumer, 10)
  consumer:close()
  lu.assertEquals(#got, 10)
  for i, m in ipairs(got) do lu.assertEquals(m.value, { n = i }) end
end

-- With a group: a commit covers the messages returned, not those read ahead.
function TestPool:test_commit_covers_only_returned_messages()
  local topic, group = h.topic("poolcommit"), h.topic("g")
  local producer = h.producer{ value_serializer = self.kc:value_serializer() }
  for i = 1, 20 do producer:send(topic, nil, "m" .. i, 0) end
  producer:flush()
  producer:close()
  self.kc:share_keys_with(self.reader, topic)
  local function reader()
    return h.consumer{ value_deserializer = self.reader:value_deserializer(),
                       deserialize_threads = 2, group_id = group, enable_auto_commit = false,
                       auto_offset_reset = "earliest" }
  end
  local consumer = reader()
  consumer:assign{ topic = topic, partition = 0, offset = "stored" }
  local got = h.collect(consumer, 5)
  lu.assertEquals(#got, 5)
  consumer:commit()
  consumer:close()
  consumer = reader()
  consumer:assign{ topic = topic, partition = 0, offset = "stored" }
  local next_one = h.collect(consumer, 1)[1]
  consumer:close()
  lu.assertEquals(next_one.offset, 5)
  lu.assertEquals(next_one.value:get_message(), "m6")
end

function TestPool:test_bad_configurations()
  lu.assertStrContains(h.error_of(h.consumer, { deserialize_threads = 2 }),
                       "must be a kafkacrypto value deserializer")
  lu.assertStrContains(h.error_of(h.consumer, { deserialize_threads = 2,
                                                value_deserializer = function(b) return b end }),
                       "must be a kafkacrypto value deserializer")
  lu.assertStrContains(h.error_of(h.consumer, { deserialize_threads = 2,
                                                value_deserializer = self.reader:key_deserializer() }),
                       "must be a kafkacrypto value deserializer")
  lu.assertStrContains(h.error_of(h.consumer, { deserialize_threads = 0,
                                                value_deserializer = self.reader:value_deserializer() }),
                       "1..64 threads")
end

-- The Kafka surface with the serializers in C: send{} with headers, a
-- timestamp, a partition and a delivery callback encrypts in the send; poll
-- (in C, and on a pool) gives the records' headers, broker and timestamp
-- type with the value decrypted, end-of-partition events after the
-- partition's messages, and poll_batch over both.
local function surface_round(self, threads)
  local topic = h.topic("surface")
  h.broker():create_topic(topic, 2)
  local producer = h.producer{ value_serializer = self.kc:value_serializer() }
  lu.assertTrue(producer._c_ser ~= nil)   -- the in-C path is the one tested
  local delivered = {}
  for i = 1, 3 do
    producer:send{ topic = topic, partition = 1, value = "v" .. i, timestamp = 1700000000000 + i,
                   headers = { { "n", tostring(i) }, { "none" } },
                   on_delivery = function(err, r) delivered[i] = { err, r.offset } end }
  end
  lu.assertEquals(producer:flush(10), 0)
  producer:close()
  lu.assertEquals(delivered, { { nil, 0 }, { nil, 1 }, { nil, 2 } })
  self.kc:share_keys_with(self.reader, topic)
  local consumer = h.consumer{ value_deserializer = self.reader:value_deserializer(),
                               deserialize_threads = threads, enable_partition_eof = true }
  lu.assertTrue(consumer._c_deser ~= nil)
  consumer:assign{ topic = topic, partition = 1, offset = "beginning" }
  local got, deadline = {}, kafkacrypto.clock() + 30
  while #got < 4 and kafkacrypto.clock() < deadline do
    for _, m in ipairs(consumer:poll_batch(4 - #got, 0.5)) do got[#got + 1] = m end
  end
  consumer:close()
  lu.assertEquals(#got, 4)
  for i = 1, 3 do
    local m = got[i]
    lu.assertNil(m.eof)
    lu.assertEquals(m.offset, i - 1)
    lu.assertEquals(m.value:get_message(), "v" .. i)
    lu.assertEquals(m.headers, { { "n", tostring(i) }, { "none" } })
    lu.assertEquals(m.timestamp, 1700000000000 + i)
    lu.assertEquals(m.timestamp_type, "create")
    lu.assertEquals(type(m.broker), "number")
  end
  lu.assertEquals({ got[4].eof, got[4].partition, got[4].offset }, { true, 1, 3 })
end

function TestPool:test_surface_in_c()
  surface_round(self, nil)
end

function TestPool:test_surface_on_pool()
  surface_round(self, 2)
end

-- A pattern subscription leaves the key-exchange topics out before they
-- reach the deserializer, with and without a pool.
function TestPool:test_pattern_leaves_out_key_topics()
  for _, threads in ipairs{ false, 2 } do
    local root = h.topic("poolpat")
    local producer = h.producer()
    for _, t in ipairs{ root .. ".reqs", root .. ".keys", root .. ".data" } do
      h.broker():create_topic(t, 1)
      producer:send(t, nil, t)
    end
    producer:flush()
    producer:close()
    local consumer = h.consumer{ value_deserializer = self.reader:value_deserializer(),
                                 deserialize_threads = threads or nil,
                                 group_id = h.topic("g"), auto_offset_reset = "earliest" }
    consumer:subscribe{ pattern = "^" .. root .. "\\..*" }
    local seen, deadline = {}, kafkacrypto.clock() + 20
    while kafkacrypto.clock() < deadline and #seen < 1 do
      local m = consumer:poll(0.2)
      if m then seen[#seen + 1] = m.value:bytes() end
    end
    local more = consumer:poll(1)
    if more then seen[#seen + 1] = more.value:bytes() end
    consumer:close()
    lu.assertEquals(seen, { root .. ".data" })
  end
end
