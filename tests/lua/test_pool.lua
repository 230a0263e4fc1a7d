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
