-- Message objects (upstream's KafkaCryptoMessage): cleartext, undecrypted
-- and foreign messages, retries, and what serializers do with them.
local lu = require "luaunit"
local kafkacrypto = require "kafkacrypto"
local h = require "helpers"
local errors = kafkacrypto.errors

TestMessage = {}

function TestMessage:setUp()
  self.dir = h.tmpdir()
  self.p, self.c = h.data_paths(self.dir)
  self.topic = h.topic("msg")
  self.ser, self.deser = self.p:value_serializer(), self.c:value_deserializer()
end

function TestMessage:tearDown()
  self.p, self.c, self.ser, self.deser = nil, nil, nil, nil
  collectgarbage()
  h.rmtree(self.dir)
end

function TestMessage:test_cleartext_message()
  local m = kafkacrypto.message("plain\0bytes")   -- KafkaCryptoMessage(b"...")
  lu.assertTrue(kafkacrypto.is_message(m))
  lu.assertFalse(kafkacrypto.is_message("plain"))
  lu.assertFalse(kafkacrypto.is_message(nil))
  lu.assertTrue(m:is_cleartext())
  lu.assertTrue(m:is_possibly_decryptable())
  lu.assertEquals(m:get_message(), "plain\0bytes")
  lu.assertEquals(m:bytes(), "plain\0bytes")
  lu.assertEquals(tostring(m), "plain\0bytes")
  lu.assertStrContains(h.error_of(kafkacrypto.message, nil), "string expected")
end

function TestMessage:test_serializing_message_objects()
  -- a cleartext message is encrypted like its bytes
  local wire = self.ser:serialize(self.topic, kafkacrypto.message("hello"))
  lu.assertEquals(wire:byte(1), 1)
  self.p:share_keys_with(self.c, self.topic)
  lu.assertEquals(self.deser:deserialize(self.topic, wire):get_message(), "hello")

  -- a message that is not decrypted goes out unchanged (already encrypted)
  local stranger = kafkacrypto.serde.standalone()
  local undecrypted = stranger:value_deserializer():deserialize(self.topic, wire)
  lu.assertFalse(undecrypted:is_cleartext())
  lu.assertEquals(self.ser:serialize(self.topic, undecrypted), wire)
  -- so does a message that is no kafkacrypto message at all
  local foreign = stranger:value_deserializer():deserialize(self.topic, "raw bytes")
  lu.assertEquals(self.ser:serialize(self.topic, foreign), "raw bytes")
  -- and a decrypted one is encrypted again (with a new salt)
  local decrypted = self.deser:deserialize(self.topic, wire)
  local again = self.ser:serialize(self.topic, decrypted)
  lu.assertNotEquals(again, wire)
  lu.assertEquals(self.deser:deserialize(self.topic, again):get_message(), "hello")
end

function TestMessage:test_nil_passes_through()
  lu.assertNil(self.ser:serialize(self.topic, nil))
  lu.assertNil(self.deser:deserialize(self.topic, nil))
  lu.assertNil(self.p:key_serializer():serialize(self.topic))
end

function TestMessage:test_get_message_error_and_retry_flags()
  local wire = self.ser:serialize(self.topic, "later")
  local m = self.deser:deserialize(self.topic, wire)
  for _, retry in ipairs { false, true } do
    local ok, err = pcall(m.get_message, m, retry)
    lu.assertFalse(ok)
    lu.assertEquals(err.kind, "KafkaCryptoMessageError")
    lu.assertEquals(err.kind, errors.MESSAGE)
    lu.assertTrue(errors.is(err))
    lu.assertFalse(errors.is(err, errors.SERIALIZE))
    lu.assertFalse(errors.is("KafkaCryptoMessageError: a string"))
  end
  self.p:share_keys_with(self.c, self.topic)
  -- without retry nothing changes, even though the key is there now
  lu.assertFalse(m:is_cleartext(false))
  lu.assertStrContains(h.error_of(m.get_message, m, false), "Message not decrypted!")
  lu.assertEquals(m:bytes(), wire)
  -- get_message retries by default
  lu.assertEquals(m:get_message(), "later")
  lu.assertEquals(m:bytes(), "later")
  lu.assertTrue(m:is_cleartext(false))
end

function TestMessage:test_foreign_bytes_are_never_decryptable()
  local m = self.deser:deserialize(self.topic, "\0not ours")
  lu.assertFalse(m:is_cleartext())
  lu.assertFalse(m:is_possibly_decryptable())
  lu.assertEquals(m:bytes(), "\0not ours")
  lu.assertEquals(select(2, pcall(m.get_message, m)).message, "Message not decrypted!")
end

function TestMessage:test_methods_check_their_object()
  local m = kafkacrypto.message("x")
  lu.assertStrContains(h.error_of(m.get_message, "x"), "expected a message object")
  lu.assertStrContains(h.error_of(m.bytes, {}), "expected a message object")
end
