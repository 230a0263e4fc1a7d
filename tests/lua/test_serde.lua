-- Serializer and deserializer objects over the crypto core, without key
-- exchange: serde.standalone data paths whose keys move with share_keys_with.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"
local serde, errors = kafkacrypto.serde, kafkacrypto.errors

TestSerde = {}

function TestSerde:setUp()
  self.dir = h.tmpdir()
  -- the producer creates its seed and key files; consumers hold only what they are given
  self.p, self.c = h.data_paths(self.dir)
end

function TestSerde:tearDown()
  kafkacrypto.set_root_rule(nil)
  self.p, self.c = nil, nil
  collectgarbage()   -- unlocks the seed file
  h.rmtree(self.dir)
end

function TestSerde:test_encrypted_round_trip_through_the_broker()
  local topic = h.topic("rt") .. ".sub"
  local root = kafkacrypto.get_root(topic)
  local producer = h.producer{ key_serializer = self.p:key_serializer(),
                               value_serializer = self.p:value_serializer() }
  producer:send(topic, "k1", "first value", 0)
  producer:send(topic, nil, "no key", 0)
  producer:send(topic, "k3", "", 0)
  producer:flush()
  producer:close()

  -- on the wire: kafkacrypto messages, not the plaintext
  local raw = h.consumer()
  raw:assign{ topic = topic, partition = 0, offset = "beginning" }
  local wire = h.collect(raw, 3)
  raw:close()
  lu.assertEquals(#wire, 3)
  lu.assertNil(wire[2].key)
  for _, m in ipairs(wire) do
    lu.assertEquals(m.value:byte(1), 1)
    lu.assertNil(m.value:find("value", 1, true))
  end
  lu.assertEquals(#wire[3].value, 1 + 1 + 34 + 18 + 18)   -- long key index, empty box

  -- a consumer without the key: message objects holding the raw bytes
  local consumer = h.consumer{ key_deserializer = self.c:key_deserializer(),
                               value_deserializer = self.c:value_deserializer() }
  consumer:assign{ topic = topic, partition = 0, offset = "beginning" }
  local got = h.collect(consumer, 3)
  consumer:close()
  lu.assertEquals(#got, 3)
  for i, m in ipairs(got) do
    lu.assertFalse(m.value:is_cleartext())
    lu.assertTrue(m.value:is_possibly_decryptable())
    lu.assertEquals(m.value:bytes(), wire[i].value)
    lu.assertTrue(errors.is(select(2, pcall(m.value.get_message, m.value)), errors.MESSAGE))
  end
  lu.assertEquals(got[1].key:bytes(), wire[1].key)
  lu.assertNil(got[2].key)                        -- a null key stays null

  -- the key arrives: the same objects decrypt on retry
  lu.assertEquals(self.p:share_keys_with(self.c, root), 1)
  lu.assertTrue(got[1].key:is_cleartext())
  lu.assertEquals(got[1].key:get_message(), "k1")
  lu.assertEquals(got[1].value:get_message(), "first value")
  lu.assertEquals(tostring(got[2].value), wire[2].value)   -- tostring does not retry,
  lu.assertEquals(got[2].value:get_message(), "no key")    -- get_message does
  lu.assertEquals(tostring(got[2].value), "no key")
  lu.assertEquals(got[3].value:get_message(), "")
  lu.assertEquals(got[3].key:get_message(), "k3")
end

function TestSerde:test_undecryptable_then_key_arrives()
  local topic = h.topic("late")
  local wire = self.p:value_serializer():serialize(topic, "secret plan")
  local deser = self.c:value_deserializer()
  local msg = deser:deserialize(topic, wire)
  lu.assertTrue(kafkacrypto.is_message(msg))
  lu.assertFalse(msg:is_cleartext())
  lu.assertTrue(msg:is_possibly_decryptable())
  lu.assertEquals(msg:bytes(), wire)              -- the raw received bytes
  lu.assertEquals(tostring(msg), wire)
  local ok, err = pcall(msg.get_message, msg)
  lu.assertFalse(ok)
  lu.assertTrue(errors.is(err, "KafkaCryptoMessageError"))
  lu.assertEquals(err.message, "Message not decrypted!")
  lu.assertStrContains(tostring(err), "test_serde.lua:")
  lu.assertStrContains(tostring(err), "KafkaCryptoMessageError: Message not decrypted!")

  -- the key arrives: a retry succeeds, through the message or the deserializer
  self.p:share_keys_with(self.c, topic)
  local again = deser:deserialize(topic, wire)
  lu.assertFalse(msg:is_cleartext(false))         -- no retry asked: unchanged
  lu.assertTrue(msg:is_cleartext())
  lu.assertEquals(msg:get_message(), "secret plan")
  lu.assertEquals(again:get_message(false), "secret plan")
end

function TestSerde:test_later_retry_through_the_deserializer()
  local topic = h.topic("retry")
  local wire = self.p:key_serializer():serialize(topic, "the key")
  local deser = self.c:key_deserializer()
  local msg = deser:deserialize(topic, wire)
  lu.assertIs(deser:deserialize(topic, msg), msg)   -- still no key: the same object back
  lu.assertFalse(msg:is_cleartext(false))
  self.p:share_keys_with(self.c, topic)
  -- upstream README: kc.getKeyDeserializer().deserialize(msg.topic, msg.key)
  lu.assertIs(deser:deserialize(topic, msg), msg)
  lu.assertTrue(msg:is_cleartext(false))
  lu.assertEquals(msg:get_message(false), "the key")
  -- a cleartext message is returned as it is, not deserialized again
  lu.assertIs(deser:deserialize(topic, msg), msg)
  lu.assertEquals(msg:bytes(), "the key")
end

function TestSerde:test_key_and_value_use_their_own_generators()
  local topic = h.topic("kinds")
  self.p:share_keys_with(self.c, topic)   -- nothing yet: no producer key for this root
  local kw = self.p:key_serializer():serialize(topic, "same")
  local vw = self.p:value_serializer():serialize(topic, "same")
  lu.assertNotEquals(kw, vw)
  lu.assertEquals(self.p:share_keys_with(self.c, topic), 1)
  lu.assertEquals(self.c:key_deserializer():deserialize(topic, kw):get_message(), "same")
  lu.assertEquals(self.c:value_deserializer():deserialize(topic, vw):get_message(), "same")
  -- a key's bytes are no value: decryptable later, never now
  local crossed = self.c:value_deserializer():deserialize(topic, kw)
  lu.assertFalse(crossed:is_cleartext())
  lu.assertTrue(crossed:is_possibly_decryptable())
end

function TestSerde:test_malformed_and_foreign_bytes()
  local topic = h.topic("bad")
  local wire = self.p:value_serializer():serialize(topic, "payload")
  self.p:share_keys_with(self.c, topic)
  local deser = self.c:value_deserializer()
  local function classify(bytes)
    local m = deser:deserialize(topic, bytes)
    return m:is_cleartext(), m:is_possibly_decryptable(), m:bytes() == bytes
  end
  lu.assertEquals({ classify(wire) }, { true, true, false })
  local tampered = wire:sub(1, -2) .. string.char((wire:byte(-1) + 1) % 256)
  lu.assertEquals({ classify(tampered) }, { false, true, true })          -- MAC failure
  lu.assertEquals({ classify(wire:sub(1, 20)) }, { false, false, true })  -- truncated
  lu.assertEquals({ classify("plain text") }, { false, false, true })     -- not kafkacrypto
  lu.assertEquals({ classify("") }, { false, false, true })
  lu.assertEquals({ classify("\1\147\1\2") }, { false, false, true })     -- array too short
  -- a message that is not kafkacrypto stays that way
  local foreign = deser:deserialize(topic, "plain text")
  lu.assertFalse(foreign:is_cleartext())
  lu.assertIs(deser:deserialize(topic, foreign), foreign)
  lu.assertFalse(foreign:is_possibly_decryptable())
end

function TestSerde:test_serializer_inputs_and_errors()
  local ser = self.p:value_serializer()
  lu.assertNil(ser:serialize("t1", nil))
  lu.assertNil(self.c:value_deserializer():deserialize("t1", nil))
  local ok, err = pcall(ser.serialize, ser, "t1", { "not bytes" })
  lu.assertFalse(ok)
  lu.assertTrue(errors.is(err, errors.SERIALIZE))
  lu.assertStrContains(err.message, "Passed value is not bytes or a KafkaCryptoMessage")
  -- a consume-only data path cannot encrypt, and never sends plaintext
  local cap = kafkacrypto.log.capture()
  ok, err = pcall(self.c:value_serializer().serialize, self.c:value_serializer(), "t1", "x")
  cap:stop()
  lu.assertNotNil(cap:find("WARNING:kafkacrypto.crypto:Serializer failed for topic t1"))
  lu.assertFalse(ok)
  lu.assertTrue(errors.is(err, errors.SERIALIZE))
  lu.assertStrContains(err.message, "no ratchet")
  -- wrong arguments are plain errors naming what was expected
  lu.assertStrContains(h.error_of(ser.serialize, ser, 42, "x"), "expected a topic name")
  cap = kafkacrypto.log.capture()
  lu.assertStrContains(h.error_of(ser.serialize, ser, "bad topic!", "x"),
                       "topic bad topic!: the root rule failed")
  lu.assertNotNil(cap:find("gave root 'bad topic!'"))
  cap:stop()
  lu.assertStrContains(h.error_of(ser.serialize, {}, "t", "x"), "kafkacrypto.serializer expected")
  local deser = self.c:value_deserializer()
  lu.assertStrContains(h.error_of(deser.deserialize, deser, "t", 7), "expected bytes")
  lu.assertNil(deser.serialize)   -- a deserializer does not serialize
  lu.assertEquals(tostring(ser), "kafkacrypto value serializer")
  lu.assertEquals(tostring(self.c:key_deserializer()), "kafkacrypto key deserializer")
end

function TestSerde:test_serializers_keep_their_data_path_alive()
  local ser, deser = self.p:value_serializer(), self.c:value_deserializer()
  local first = ser:serialize("alive", "first")
  self.p:share_keys_with(self.c, "alive")
  self.p, self.c = nil, nil
  collectgarbage()
  collectgarbage()
  lu.assertEquals(deser:deserialize("alive", first):get_message(), "first")
  lu.assertEquals(deser:deserialize("alive", ser:serialize("alive", "still here")):get_message(),
                  "still here")
end

function TestSerde:test_standalone_options_are_checked()
  -- one seed file, one user
  lu.assertStrContains(h.error_of(serde.standalone, { seed = self.dir .. "/p.seed" }), "p.seed")
  lu.assertStrContains(h.error_of(serde.standalone, { seed = self.dir .. "/no/such/dir/x.seed" }),
                       "x.seed")
  lu.assertStrContains(h.error_of(serde.standalone, { seed = 5 }), "seed: expected a file path")
  lu.assertStrContains(h.error_of(serde.standalone, "x"), "table expected")
  -- without a .crypto file key indices are short integers
  local cap = kafkacrypto.log.capture()
  local short = serde.standalone{ seed = self.dir .. "/short.seed" }
  cap:stop()
  local wire = short:value_serializer():serialize("s", "v")
  lu.assertEquals(wire:sub(1, 3), "\1\147\0")   -- 0x01, array of 3, index 0
end

function TestSerde:test_the_root_rule_decides_which_key_a_topic_uses()
  local base = h.topic("lab")
  local ta, tb = base .. ".a", base .. ".b"
  local ser, deser = self.p:value_serializer(), self.c:value_deserializer()
  -- upstream's rule: both topics are in root `base`, one key for both
  local wa, wb = ser:serialize(ta, "A"), ser:serialize(tb, "B")
  lu.assertEquals(self.p:share_keys_with(self.c, base), 1)
  lu.assertEquals(deser:deserialize(ta, wa):get_message(), "A")
  lu.assertEquals(deser:deserialize(tb, wb):get_message(), "B")

  -- a rule installed later applies to the same objects: every topic its own root
  kafkacrypto.set_root_rule(function(t) return (t:gsub("%.", "_")) end)
  local wa2, wb2 = ser:serialize(ta, "A2"), ser:serialize(tb, "B2")
  lu.assertEquals(self.p:share_keys_with(self.c, base .. "_a"), 1)
  lu.assertEquals(deser:deserialize(ta, wa2):get_message(), "A2")
  lu.assertFalse(deser:deserialize(tb, wb2):is_cleartext())   -- root base_b: no key given
  -- the consumer looks the key up under the rule too: base's key no longer serves ta
  lu.assertFalse(deser:deserialize(ta, wa):is_cleartext())
  kafkacrypto.set_root_rule(nil)
  lu.assertEquals(deser:deserialize(ta, wa):get_message(), "A")

  -- a failing rule fails the serializer, which never sends plaintext
  kafkacrypto.set_root_rule(function() error("no root today") end)
  local cap = kafkacrypto.log.capture()
  local ok, err = pcall(ser.serialize, ser, ta, "x")
  cap:stop()
  lu.assertFalse(ok)
  lu.assertTrue(errors.is(err, errors.SERIALIZE))
  lu.assertNotNil(cap:find("no root today"))
end

function TestSerde:test_separator_rule()
  kafkacrypto.set_root_rule("_")
  local base = h.topic("sep"):gsub("_", "")
  local wire = self.p:value_serializer():serialize(base .. "_x.y", "v")
  lu.assertEquals(self.p:share_keys_with(self.c, base), 1)
  lu.assertEquals(self.c:value_deserializer():deserialize(base .. "_z", wire):get_message(), "v")
end
