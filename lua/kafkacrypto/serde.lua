-- Serializers and deserializers, as kafka-python uses them.
--
-- A serializer is either a function(value) -> bytes, or an object with a
-- method :serialize(topic, value); a deserializer a function(bytes) ->
-- value or an object with :deserialize(topic, bytes). As in kafka-python,
-- they also see nil (a Kafka null key or value).

local core = require "kafkacrypto.core"

local serde = {}

local function method_of(stage, name)
  local t = type(stage)
  if t == "table" or t == "userdata" then
    local ok, m = pcall(function() return stage[name] end)
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

-- Stacks stages into one (de)serializer, applied left to right, like
-- upstream README's CompoundDeSes. Usually you encrypt last on
-- serialization and decrypt first on deserialization:
--   value_serializer   = serde.stack(cjson.encode, kc:value_serializer())
--   value_deserializer = serde.stack(kc:value_deserializer(), cjson.decode)
function serde.stack(...)
  local stages = { ... }
  for i = 1, select("#", ...) do
    if stages[i] == nil then core.error(("serde.stack: stage %d is nil"):format(i)) end
  end
  local stacked = {}
  function stacked:serialize(topic, value)
    for _, stage in ipairs(stages) do value = serde.serialize(stage, topic, value) end
    return value
  end
  function stacked:deserialize(topic, value)
    for _, stage in ipairs(stages) do value = serde.deserialize(stage, topic, value) end
    return value
  end
  return stacked
end

return serde
