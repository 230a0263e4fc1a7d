-- Errors with a kind, for the failures upstream raises as named exceptions.
--
-- An error object is a table { kind = ..., message = ..., where = "SCRIPT:LINE: " }
-- (plus fields that depend on the kind); tostring gives
-- "SCRIPT:LINE: KafkaCryptoMessageError: Message not decrypted!". Catch one
-- with pcall and look at its kind:
--
--   local ok, err = pcall(msg.value.get_message, msg.value)
--   if not ok and kafkacrypto.errors.is(err, "KafkaCryptoMessageError") then ... end
--
-- Kinds (upstream's kafkacrypto.exceptions):
--   KafkaCryptoMessageError    a message object was asked for its plaintext but
--                              is not decrypted (msg:get_message(), a stacked
--                              deserializer whose next stage needs the plaintext).
--                              Stacks add err.value: the message object.
--   KafkaCryptoSerializeError  a serializer could not encrypt (a value that is
--                              not bytes, nil or a message object; no producer key).
-- Wrong arguments (a number where a topic is expected) stay plain string errors.

local core = require "kafkacrypto.core"

local errors = {
  MESSAGE = "KafkaCryptoMessageError",
  SERIALIZE = "KafkaCryptoSerializeError",
}

local Error = {}
Error.__index = Error
Error.__tostring = function(e) return (e.where or "") .. e.kind .. ": " .. e.message end

-- A new error object (not raised). `where` defaults to "".
function errors.new(kind, message, where)
  return setmetatable({ kind = kind, message = message, where = where or "" }, Error)
end

-- Raises an error object located at the user's line; `fields` are copied in.
function errors.raise(kind, message, fields)
  local e = errors.new(kind, message, core.where())
  for k, v in pairs(fields or {}) do e[k] = v end
  error(e, 0)
end

-- true if `value` is an error object (of `kind`, when given).
function errors.is(value, kind)
  return getmetatable(value) == Error and (kind == nil or value.kind == kind)
end

return errors
