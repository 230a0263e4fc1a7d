-- Prints "key<TAB>value" for N messages of TOPIC, then exits 0; exits 1 if
-- they do not all arrive within TIMEOUT seconds (used by test_broker.sh).
--   kafkacrypto --broker HOST:PORT run consume_plain.lua TOPIC N TIMEOUT
local kafkacrypto = require "kafkacrypto"
local topic, n, timeout = arg[1], tonumber(arg[2]), tonumber(arg[3])
local consumer = kafkacrypto.consumer{ topic, group_id = "it-" .. topic,
                                       auto_offset_reset = "earliest",
                                       fetch_max_wait_ms = 50 }
local seen, deadline = 0, os.time() + timeout
while seen < n and os.time() < deadline do
  local msg = consumer:poll(0.5)
  if msg then
    seen = seen + 1
    io.write(msg.key, "\t", msg.value, "\n")
  end
end
consumer:close()
os.exit(seen == n and 0 or 1)
