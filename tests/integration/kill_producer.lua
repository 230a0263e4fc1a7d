-- The producer of the kill loop (test_kill_loop.sh): a node that rotates
-- its keys fast (run it with a small tunables.crypto_ratchet_interval) and
-- encrypts for two roots until it is killed.
--   kafkacrypto [--set tunables....] run kill_producer.lua NODE.config BROKER
-- Output, one line per write:
--   held ROOT KEYINDEX   a producer key the node holds right after opening
--                        (from oldkeys: every key earlier runs handed out)
--   open                 the node is open (its files were read and are clean)
--   new ROOT KEYINDEX    a key index first used in this run; printed only
--                        after a message was encrypted with it (so after
--                        the node saved it: spec §7.10)
local kafkacrypto = require "kafkacrypto"
local config, broker = assert(arg[1]), assert(arg[2])
local kafka = { bootstrap_servers = broker, security_protocol = "PLAINTEXT" }
local quiet = kafkacrypto.log.capture()
local node = kafkacrypto.new { config = config, producer = kafka, consumer = kafka }
local out = {}
for _, k in ipairs(node:producer_keys()) do
  out[#out + 1] = ("held %s %s\n"):format(k.root, tostring(k.key_index))
end
out[#out + 1] = "open\n"
io.stdout:write(table.concat(out))
io.stdout:flush()
local ser = node:value_serializer()
local roots = { "ka", "kb" }
local seen = {}
local i = 0
while true do
  i = i + 1
  local root = roots[i % 2 + 1]
  local wire = ser:serialize(root .. ".data", "m")
  -- 0x01, then msgpack [bin keyindex, bin salt, bin box]: 93 c4 LEN KI...
  local len = wire:byte(4)
  local ki = wire:sub(5, 4 + len):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
  if not seen[root .. ki] then
    seen[root .. ki] = true
    io.stdout:write(("new %s %s\n"):format(root, ki))
    io.stdout:flush()
  end
  if i % 64 == 0 then quiet:stop() quiet = kafkacrypto.log.capture() end  -- bounded capture
end
