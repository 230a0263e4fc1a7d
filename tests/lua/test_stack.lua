-- Stacking serializers: JSON (lua-cjson) with encryption, as upstream
-- README's CompoundDeSes example, and what happens with undecryptable messages.
local lu = require "luaunit"
local cjson = require "cjson"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"
local serde, errors = kafkacrypto.serde, kafkacrypto.errors

TestStack = {}

function TestStack:setUp()
  self.dir = h.tmpdir()
  self.kc, self.reader = h.data_paths(self.dir)   -- a producing node, a reading node
end

function TestStack:tearDown()
  self.kc, self.reader = nil, nil
  collectgarbage()
  h.rmtree(self.dir)
end

-- The README's example, line by line (kc.getKeySerializer() -> kc:key_serializer()).
function TestStack:test_readme_example_through_the_broker()
  local kc, topic = self.kc, h.topic("json")
  local producer = h.producer{ key_serializer = serde.stack(cjson.encode, kc:key_serializer()),
                               value_serializer = serde.stack(cjson.encode, kc:value_serializer()) }
  producer:send(topic, { id = 7 }, { temperature = 21.5, tags = { "a", "b" } }, 0)
  producer:send(topic, "just a string", { n = 2 }, 0)
  producer:flush()
  producer:close()
  kc:share_keys_with(self.reader, topic)

  kc = self.reader
  local consumer = h.consumer{ key_deserializer = serde.stack(kc:key_deserializer(), cjson.decode),
                               value_deserializer = serde.stack(kc:value_deserializer(), cjson.decode) }
  consumer:assign{ topic = topic, partition = 0, offset = "beginning" }
  local got = h.collect(consumer, 2)
  consumer:close()
  lu.assertEquals(got[1].key, { id = 7 })
  lu.assertEquals(got[1].value, { temperature = 21.5, tags = { "a", "b" } })
  lu.assertEquals(got[2].key, "just a string")
  lu.assertEquals(got[2].value, { n = 2 })

  -- the JSON is encrypted on the wire
  local raw = h.consumer()
  raw:assign{ topic = topic, partition = 0, offset = "beginning" }
  local wire = h.collect(raw, 1)[1]
  raw:close()
  lu.assertEquals(wire.value:byte(1), 1)
  lu.assertNil(wire.value:find("temperature", 1, true))
end

-- "Do not forget that exceptions are likely as undecryptable messages appear."
function TestStack:test_undecryptable_message_raises_through_the_consumer()
  local topic = h.topic("nokey")
  local producer = h.producer{ value_serializer = serde.stack(cjson.encode, self.kc:value_serializer()) }
  producer:send(topic, nil, { secret = true }, 0)
  producer:flush()
  producer:close()

  local stacked = serde.stack(self.reader:value_deserializer(), cjson.decode)
  local consumer = h.consumer{ value_deserializer = stacked }
  consumer:assign{ topic = topic, partition = 0, offset = "beginning" }
  local err
  for _ = 1, 150 do
    local ok, e = pcall(consumer.poll, consumer, 0.2)
    if not ok then err = e break end
    lu.assertNil(e)
  end
  consumer:close()
  lu.assertTrue(errors.is(err, "KafkaCryptoMessageError"))
  lu.assertStrContains(err.message, "value_deserializer failed on " .. topic .. "[0] offset 0")
  lu.assertStrContains(err.message, "Message not decrypted!")
  lu.assertStrContains(err.message, "may be decrypted when its key arrives")
  lu.assertStrContains(tostring(err), "test_stack.lua:")   -- the line that polled
  lu.assertEquals(err.record.topic, topic)
  lu.assertEquals(err.record.offset, 0)
  lu.assertEquals(err.record.value:byte(1), 1)              -- the raw record
  lu.assertFalse(err.value:is_cleartext(false))             -- the message object

  -- kept and retried once the key is there: through the stack, as upstream would
  self.kc:share_keys_with(self.reader, topic)
  lu.assertEquals(stacked:deserialize(topic, err.value), { secret = true })
  lu.assertEquals(stacked:deserialize(topic, err.record.value), { secret = true })
end

function TestStack:test_keep_undecryptable_returns_the_message_object()
  local topic = h.topic("keep")
  local wire = serde.stack(cjson.encode, self.kc:value_serializer()):serialize(topic, { 1, 2 })
  local stacked = serde.stack{ self.reader:value_deserializer(), cjson.decode,
                               keep_undecryptable = true }
  local m = stacked:deserialize(topic, wire)
  lu.assertTrue(kafkacrypto.is_message(m))
  lu.assertFalse(m:is_cleartext(false))
  lu.assertEquals(m:bytes(), wire)
  self.kc:share_keys_with(self.reader, topic)
  lu.assertEquals(stacked:deserialize(topic, m), { 1, 2 })
  -- bytes that are not kafkacrypto messages are said to be so
  local plain = serde.stack(self.reader:value_deserializer(), cjson.decode)
  local ok, err = pcall(plain.deserialize, plain, topic, '{"not": "encrypted"}')
  lu.assertFalse(ok)
  lu.assertStrContains(err.message, "is not a kafkacrypto message")
  lu.assertEquals(err.value:bytes(), '{"not": "encrypted"}')
end

function TestStack:test_decrypted_plaintext_goes_to_functions_and_objects_get_messages()
  local topic = h.topic("mixed")
  local seen
  local spy = { deserialize = function(_, t, v) seen = v; return v end }
  local wire = self.kc:value_serializer():serialize(topic, "text")
  self.kc:share_keys_with(self.reader, topic)
  local stacked = serde.stack(self.reader:value_deserializer(), spy, string.upper)
  lu.assertEquals(stacked:deserialize(topic, wire), "TEXT")
  lu.assertTrue(kafkacrypto.is_message(seen))   -- an object stage sees the message object
  -- nil (a Kafka null) reaches function stages, as in kafka-python
  lu.assertEquals(serde.stack(self.reader:value_deserializer(), tostring):deserialize(topic, nil),
                  "nil")
end

function TestStack:test_options_form()
  local s = serde.stack{ string.upper, string.reverse }
  lu.assertEquals(s:serialize("t", "ab"), "BA")
  lu.assertStrContains(h.error_of(serde.stack, cjson.encode, nil, cjson.decode), "stage 2 is nil")
end
