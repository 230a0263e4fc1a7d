-- Prints "OFFSET TIMESTAMP_MS HEX(VALUE)" for each message of TOPIC
-- partition 0 from the beginning, until N have come or TIMEOUT seconds
-- passed; exits 0 if N came (test_serve.sh: D3's second copies).
--   kafkacrypto --broker HOST:PORT run keys_copies.lua TOPIC N TIMEOUT
local kafkacrypto = require "kafkacrypto"
local topic, n, timeout = arg[1], tonumber(arg[2]), tonumber(arg[3])
local consumer = kafkacrypto.consumer{ fetch_max_wait_ms = 50 }
consumer:assign{ { topic = topic, partition = 0, offset = "beginning" } }
local seen, started = 0, kafkacrypto.clock()
while seen < n and kafkacrypto.clock() - started < timeout do
  local msg = consumer:poll(0.2)
  if msg then
    seen = seen + 1
    io.write(("%d %d %s\n"):format(msg.offset, msg.timestamp,
                                   (msg.value or ""):gsub(".", function(c)
                                     return ("%02x"):format(c:byte()) end)))
  end
end
consumer:close()
os.exit(seen == n and 0 or 1)
