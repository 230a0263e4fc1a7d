-- Serializers and deserializers, as kafka-python uses them.
--
-- A serializer is either a function(value) -> bytes, or an object with a
-- method :serialize(topic, value); a deserializer a function(bytes) ->
-- value or an object with :deserialize(topic, bytes). As in kafka-python,
-- they also see nil (a Kafka null key or value).

local core = require "kafkacrypto.core"
local errors = require "kafkacrypto.errors"

local serde = {}

local function index(t, k) return t[k] end

-- Userdata methods come from C classes and never change: looked up once
-- per object, so that the per-message path makes no closure and no pcall
-- (both keep LuaJIT from compiling the producer's and consumer's loops).
local userdata_methods = setmetatable({}, { __mode = "k" })

local function method_of(stage, name)
  local t = type(stage)
  if t == "userdata" then
    local cached = userdata_methods[stage]
    if not cached then
      cached = {}
      userdata_methods[stage] = cached
    end
    local m = cached[name]
    if m == nil then
      local ok, f = pcall(index, stage, name)
      m = ok and type(f) == "function" and f or false
      cached[name] = m
    end
    return m or nil
  elseif t == "table" then
    local ok, m = pcall(index, stage, name)
    if ok and type(m) == "function" then return m end
  end
end

local function is_callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

-- Raises unless `stage` can be used as a serializer (`name` = "serialize")
-- or deserializer ("deserialize"); `what` names it in the message.
function serde.check(stage, name, what)
  if stage == nil or is_callable(stage) or method_of(stage, name) then return stage end
  core.error(("%s: expected a function or an object with :%s(topic, value), got %s")
             :format(what, name, type(stage)))
end

-- Applies a serializer (nil = identity).
function serde.serialize(stage, topic, value)
  if stage == nil then return value end
  local m = method_of(stage, "serialize")
  if m then return m(stage, topic, value) end
  return stage(value)
end

-- Applies a deserializer (nil = identity).
function serde.deserialize(stage, topic, bytes)
  if stage == nil then return bytes end
  local m = method_of(stage, "deserialize")
  if m then return m(stage, topic, bytes) end
  return stage(bytes)
end

local function is_stage(v)
  return is_callable(v) or method_of(v, "serialize") or method_of(v, "deserialize")
end

-- Stacks stages into one (de)serializer, applied left to right, like
-- upstream README's CompoundDeSes. Usually you encrypt last on
-- serialization and decrypt first on deserialization:
--   value_serializer   = serde.stack(cjson.encode, kc:value_serializer())
--   value_deserializer = serde.stack(kc:value_deserializer(), cjson.decode)
--
-- Our deserializers return message objects; a plain function stage after
-- one gets the message's plaintext (a string). "Do not forget that
-- exceptions are likely as undecryptable messages appear": when the
-- message is not decrypted, deserialize raises a KafkaCryptoMessageError
-- (kafkacrypto.errors) whose `value` field is the message object, so it can
-- be kept and retried later. To get the message object back instead of an
-- error, make the stack with options:
--   serde.stack{ kc:value_deserializer(), cjson.decode, keep_undecryptable = true }
-- deserialize then returns the undecrypted message object unchanged (test
-- with kafkacrypto.is_message) and skips the remaining stages.
function serde.stack(...)
  local stages, keep = { ... }, false
  local n = select("#", ...)
  local first = stages[1]
  if n == 1 and type(first) == "table" and not is_stage(first) then   -- the options form
    keep = first.keep_undecryptable == true
    stages, n = {}, #first
    for i = 1, n do stages[i] = first[i] end
  end
  local takes_messages = {}   -- objects with :deserialize get message objects as they are
  for i = 1, n do
    if stages[i] == nil then core.error(("serde.stack: stage %d is nil"):format(i)) end
    takes_messages[i] = method_of(stages[i], "deserialize") ~= nil
  end
  local stacked = {}
  -- The producer and consumer run a kafkacrypto stage at the end (serializing)
  -- or start (deserializing) in C, and the others here.
  stacked.first_stage, stacked.last_stage, stacked.count = stages[1], stages[n], n
  -- upto (default: all): the last stage to apply.
  function stacked:serialize(topic, value, upto)
    for i = 1, upto or n do value = serde.serialize(stages[i], topic, value) end
    return value
  end
  -- from (default 1): the first stage to apply.
  function stacked:deserialize(topic, value, from)
    for i = from or 1, n do
      local stage = stages[i]
      if not takes_messages[i] and core.is_message(value) then
        if value:is_cleartext(false) then
          value = value:bytes()
        elseif keep then
          return value
        else
          errors.raise(errors.MESSAGE, ("Message not decrypted! (topic %s: stage %d of the stack "
            .. "needs the plaintext; the message %s)"):format(topic, i,
            value:is_possibly_decryptable() and "may be decrypted when its key arrives"
            or "is not a kafkacrypto message"), { value = value, topic = topic })
        end
      end
      value = serde.deserialize(stage, topic, value)
    end
    return value
  end
  return stacked
end

-- ADVANCED / TESTS. A data path without key exchange:
--   local p = serde.standalone{ seed = "node.seed", crypto = "node.crypto" }
--   local c = serde.standalone{}                -- consume only
--   producer = kafkacrypto.producer{ value_serializer = p:value_serializer() }
--   p:share_keys_with(c, "root")                -- c may now read root's messages
--   consumer = kafkacrypto.consumer{ value_deserializer = c:value_deserializer() }
-- Options: seed (the ratchet file, created if missing, locked while the
-- object or one of its serializers lives; without it the object cannot
-- encrypt), crypto (a .crypto file whose public keys make long key indices,
-- as nodes use; without it indices are short integers).
-- Methods: key_serializer(), value_serializer(), key_deserializer(),
-- value_deserializer(), and share_keys_with(other, root) -> n, which gives
-- `other` the producer keys of `root` made so far (as the key exchange
-- would; the keys never become Lua values). Deserializers never wait for a
-- missing key: only share_keys_with brings keys. Topics map to roots by the
-- rule of kafkacrypto.set_root_rule, whenever it is set.
serde.standalone = core.standalone

return serde
