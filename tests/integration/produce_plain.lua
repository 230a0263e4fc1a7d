-- Sends N plain messages "key-i<TAB>value-i" to TOPIC (used by test_broker.sh).
--   kafkacrypto --broker HOST:PORT run produce_plain.lua TOPIC N
local kafkacrypto = require "kafkacrypto"
local topic, n = arg[1], tonumber(arg[2])
local producer = kafkacrypto.producer{ linger_ms = 5 }
for i = 1, n do
  producer:send(topic, "key-" .. i, "value-" .. i)
end
producer:flush(30)
producer:close()
print(("sent %d"):format(n))
